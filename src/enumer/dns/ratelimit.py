"""Per-client rate limiting for the UDP side of the gateway (SPEC 9: NAPTR answers amplify).

Two token buckets, both keyed by client prefix and both bounded in memory:

* query rate: ``qps_per_client`` with ``burst`` per IPv4 /32 or IPv6 /64;
  over the limit the query is dropped unanswered;
* response rate (RRL, as in BIND): ``rrl_responses_per_second`` identical
  responses per IPv4 /24 or IPv6 /56.  "Identical" means the same question
  (case-folded) for positive answers, and one shared bucket per rcode for
  negative answers and errors, so random-number floods cannot escape it.
  Over the limit the response is dropped, except every ``slip``-th one, which
  goes out as an empty truncated response (TC) so real resolvers retry over
  TCP, where no limits apply.

Negative answers (NXDOMAIN, and NODATA: NOERROR without an answer) have a
bucket of their own, ``rrl_negatives_per_second`` per /24 or /56, sized for
the normal client rather than the attacker: a PBX site's resolver whose
callers dial numbers without records sends one distinct miss per call, and
30 a second must all be answered (docs/gateway.md).  Such answers are small
(the question and an SOA, about 3 times the query), so the higher rate
amplifies little.

The networks in ``exempt`` (by default loopback: the local resolver in front
of the gateway) are not limited at all; ``enumer serve --ratelimit-exempt``.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from itertools import islice
from typing import TypeVar

from enumer.dns.wire import question_end

_K = TypeVar("_K")

__all__ = [
    "DEFAULT_EXEMPT",
    "DROP",
    "SEND",
    "SLIP",
    "ExemptNetworks",
    "RateLimitConfig",
    "RateLimiter",
    "client_network",
]

SEND = 0
DROP = 1
SLIP = 2

_NEGATIVE = frozenset({0, 3})  # rcodes of negative answers: NODATA (NOERROR, empty), NXDOMAIN


#: Clients never limited unless configured otherwise: loopback, IPv4 and IPv6.
DEFAULT_EXEMPT: tuple[str, ...] = ("127.0.0.0/8", "::1/128")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ExemptNetworks:
    """A set of IP networks (``"127.0.0.0/8"``, ``"::1"``) and whether an address is in one.

    IPv4-mapped IPv6 addresses (``::ffff:127.0.0.1``) count as their IPv4
    address.  Raises ValueError naming the text that is not a network.
    """

    def __init__(self, networks: tuple[str, ...]) -> None:
        parsed: list[_Network] = []
        for text in networks:
            try:
                parsed.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{text!r} is not an IP network") from None
        self.networks = tuple(parsed)
        self._seen: dict[str, bool] = {}

    def __contains__(self, ip: str) -> bool:
        found = self._seen.get(ip)
        if found is None:
            found = self._lookup(ip)
            if len(self._seen) >= 65_536:
                self._seen.clear()
            self._seen[ip] = found
        return found

    def _lookup(self, ip: str) -> bool:
        if not self.networks:
            return False
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.networks)

    def covers(self, network: str) -> bool:
        """Whether every address of ``network`` is exempt (in one of the networks)."""
        wanted = ipaddress.ip_network(network)
        return any(
            wanted.version == net.version
            and wanted.prefixlen >= net.prefixlen
            and wanted.network_address in net
            for net in self.networks
        )


@dataclass(frozen=True)
class RateLimitConfig:
    enabled: bool = False
    qps_per_client: float = 100.0
    burst: float = 200.0
    rrl_responses_per_second: float = 20.0
    rrl_negatives_per_second: float = 100.0  # NXDOMAIN and NODATA per /24 (see above)
    slip: int = 2  # every Nth rate-limited response is sent truncated; 0 never
    exempt: tuple[str, ...] = DEFAULT_EXEMPT  # networks never limited
    max_entries: int = 100_000  # buckets per table; the oldest go first beyond it

    def __post_init__(self) -> None:
        ExemptNetworks(self.exempt)  # raises ValueError on a bad network, at configuration


def _prefixes(ip: str) -> tuple[str | bytes, str | bytes]:
    """(query-rate key, RRL key): IPv4 /32 and /24, IPv6 /64 and /56."""
    if ":" not in ip:
        return ip, ip[: ip.rfind(".")]
    if ip.startswith("::ffff:") and "." in ip:  # IPv4-mapped
        v4 = ip[7:]
        return v4, v4[: v4.rfind(".")]
    try:
        raw = socket.inet_pton(socket.AF_INET6, ip.split("%", 1)[0])
    except OSError:
        return ip, ip
    return raw[:8], raw[:7]


def client_network(ip: str) -> str | bytes:
    """The network a client is counted by: its IPv4 /24 or IPv6 /56 (a site)."""
    return _prefixes(ip)[1]


class RateLimiter:
    """Token buckets per client prefix.  ``scale`` divides the rates (for N worker processes)."""

    def __init__(self, config: RateLimitConfig, scale: float = 1.0) -> None:
        self.config = config
        scale = max(scale, 1.0)
        self.rate = config.qps_per_client / scale
        self.burst = max(config.burst / scale, 1.0)
        self.rrl_rate = config.rrl_responses_per_second / scale
        self.rrl_burst = max(self.rrl_rate, 1.0)
        self.negative_rate = config.rrl_negatives_per_second / scale
        self.negative_burst = max(self.negative_rate, 1.0)
        self.exempt = ExemptNetworks(config.exempt)
        self.slip = max(config.slip, 0)
        self.max_entries = max(config.max_entries, 16)
        self._clients: dict[str, tuple[str | bytes, str | bytes] | None] = {}
        self._queries: dict[str | bytes, list[float]] = {}
        self._responses: dict[tuple[str | bytes, int, bytes], list[float]] = {}

    def _client(self, ip: str) -> tuple[str | bytes, str | bytes] | None:
        """Prefix keys of a client, or None when it is exempt."""
        try:
            return self._clients[ip]
        except KeyError:
            pass
        keys = None if ip in self.exempt else _prefixes(ip)
        if len(self._clients) >= self.max_entries:
            self._clients.clear()
        self._clients[ip] = keys
        return keys

    def _trim(self, table: dict[_K, list[float]]) -> None:
        if len(table) >= self.max_entries:
            for key in list(islice(table, len(table) // 10 + 1)):
                del table[key]

    def _take(
        self, table: dict[_K, list[float]], key: _K, burst: float, rate: float, now: float
    ) -> list[float] | None:
        """Spend one token of ``key``'s bucket ([tokens, last time, times limited]);
        None when there was one, else the (empty) bucket."""
        bucket = table.get(key)
        if bucket is None:
            self._trim(table)
            table[key] = [burst - 1.0, now, 0.0]
            return None
        tokens = min(burst, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return None
        bucket[0] = tokens
        return bucket

    def exempts_all_loopback(self) -> bool:
        """Whether every loopback client is exempt (then the C loop may answer them)."""
        return self.exempt.covers("127.0.0.0/8") and self.exempt.covers("::1/128")

    def allow_query(self, ip: str, now: float) -> bool:
        """Query-rate bucket of the client's /32 or /64: False means drop the query."""
        keys = self._client(ip)
        if keys is None:
            return True
        return self._take(self._queries, keys[0], self.burst, self.rate, now) is None

    def check_response(self, ip: str, response: bytes, now: float) -> int:
        """RRL verdict for a response about to be sent: SEND, DROP or SLIP."""
        keys = self._client(ip)
        if keys is None:
            return SEND
        rcode = response[3] & 0x0F
        burst, rate = self.rrl_burst, self.rrl_rate
        if rcode == 0 and response[7]:  # an answer: keyed by the question
            end = question_end(response)
            identity = response[12:end].lower() if end > 0 else b""
        else:  # negative answers and errors share one bucket per rcode
            identity = b""
            if rcode in _NEGATIVE:
                burst, rate = self.negative_burst, self.negative_rate
        key = (keys[1], rcode, identity)
        bucket = self._take(self._responses, key, burst, rate, now)
        if bucket is None:
            return SEND
        bucket[2] += 1.0  # rate-limited responses of this bucket so far
        if self.slip and bucket[2] % self.slip == 0:
            return SLIP
        return DROP
