"""What the gateway's UDP, TCP and worker modules share: the server configuration,
the two callables they are given (the current view, the log), and the query log line.

``server.py`` composes them; this module is the bottom of the gateway's
socket layer and imports none of its siblings.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from enumer.dns.metrics import NRCODES
from enumer.dns.ratelimit import RateLimitConfig
from enumer.dns.wire import EDNS_UDP_SIZE, GatewayView, response_rcode, summarize

__all__ = ["Log", "ServerConfig", "ViewProvider", "addr_text", "log_line", "rcode_of"]

#: The view to answer from now (a new object whenever the configuration changes).
ViewProvider = Callable[[], GatewayView]
#: Where one log line goes.
Log = Callable[[str], None]

_QTYPES = {
    1: "A",
    2: "NS",
    5: "CNAME",
    6: "SOA",
    12: "PTR",
    15: "MX",
    16: "TXT",
    28: "AAAA",
    33: "SRV",
    35: "NAPTR",
    41: "OPT",
    251: "IXFR",
    252: "AXFR",
    255: "ANY",
}


@dataclass
class ServerConfig:
    binds: list[tuple[str, int]] = field(default_factory=lambda: [("127.0.0.1", 5335)])
    tcp: bool = True
    tcp_idle_timeout: float = 10.0
    max_tcp_clients: int = 256
    max_tcp_per_client: int = 32  # per IPv4 /24 or IPv6 /56, outside ratelimit.exempt
    udp_workers: int = 1  # > 1: that many forked UDP worker processes (see workers.py)
    ratelimit: RateLimitConfig = field(default_factory=RateLimitConfig)
    query_log: bool = False
    max_udp: int = EDNS_UDP_SIZE  # largest UDP response with EDNS (512 without)
    worker_refresh_interval: float = 1.0  # least seconds between two re-forks
    worker_max_age: float = 60.0  # re-fork workers at least this often
    #: Zone transfers (``enumer.dns.primary``): given a TCP query and its client, None
    #: (answer it as usual), an answer, or a job that takes the connection over in a
    #: thread of its own (``job(sock, answers_pending)``: a transfer, then close).
    transfer: (
        Callable[[bytes, tuple[str, int]], bytes | Callable[[socket.socket, bytes], None] | None]
        | None
    ) = None
    #: TSIG-signed queries (a secondary's SOA probe): (query, view, max UDP) -> signed answer.
    signed: Callable[[bytes, GatewayView, int | None], bytes | None] | None = None


def addr_text(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 host."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def rcode_of(resp: bytes) -> int:
    """The (extended, when there is an OPT record) rcode of a response, capped for counting."""
    return min(response_rcode(resp), NRCODES - 1) if resp[11] else resp[3] & 0x0F


def log_line(transport: str, addr: tuple[str, int], packet: bytes, rcode: str) -> str:
    """The query log's line for one answered query (``--query-log``)."""
    name, qtype = summarize(packet)
    return (
        f"{transport} {addr_text(addr[0], addr[1])} {name} "
        f"{_QTYPES.get(qtype, f'TYPE{qtype}')} {rcode}"
    )
