"""Counters and gauges of the DNS gateway, in Prometheus text format.

Counters live in small blocks of shared memory (an anonymous ``mmap`` seen
through a ``memoryview`` of unsigned 64-bit integers), so the hot path is a
plain ``block[INDEX] += 1`` and forked UDP worker processes (see
``workers.py``) can count into blocks the parent process reads.  One writer per
block; increments from several threads of one process go through the GIL and
may in rare cases lose a count, which is fine for monitoring.
"""

from __future__ import annotations

import mmap
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = [
    "DROPPED",
    "ERRORS",
    "NCOUNTERS",
    "NRCODES",
    "QUERIES_TCP",
    "QUERIES_UDP",
    "RATELIMIT_DROPS",
    "RATELIMIT_SLIPS",
    "RCODE_BASE",
    "TCP_CONNECTIONS",
    "TCP_REJECTED",
    "TRUNCATED",
    "Metrics",
    "MetricsEndpoint",
    "serve_metrics",
]

# Counter indexes in a block.
QUERIES_UDP = 0
QUERIES_TCP = 1
RATELIMIT_DROPS = 2
RATELIMIT_SLIPS = 3
ERRORS = 4
TRUNCATED = 5
DROPPED = 6  # packets not answered by design: responses, runts
TCP_CONNECTIONS = 7
TCP_REJECTED = 8
RCODE_BASE = 16  # responses with rcode r count at RCODE_BASE + r (r < 32)
NRCODES = 32
NCOUNTERS = RCODE_BASE + NRCODES

_BLOCK_BYTES = NCOUNTERS * 8

_RCODE_NAMES = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
    16: "BADVERS",
}


class Metrics:
    """Gateway counters (``block[...] += 1``) and callback gauges; ``render()`` for Prometheus."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._retired = [0] * NCOUNTERS  # totals of worker blocks that were given back
        self._workers: list[memoryview] = []
        self.block = self.new_block()
        self._gauges: dict[str, tuple[str, Callable[[], float | None]]] = {}
        self._labelled: dict[str, tuple[str, Callable[[], list[tuple[str, float]]]]] = {}

    # -- counters --------------------------------------------------------
    @staticmethod
    def new_block() -> memoryview:
        """A zeroed counter block in memory shared with processes forked later."""
        return memoryview(mmap.mmap(-1, _BLOCK_BYTES)).cast("Q")

    def add_worker_block(self) -> memoryview:
        """A block for a worker process; its counts appear in ``render()``."""
        block = self.new_block()
        with self._lock:
            self._workers.append(block)
        return block

    def retire_worker_block(self, block: memoryview) -> None:
        """The worker owning ``block`` has exited: keep its totals, free the block."""
        with self._lock:
            if block in self._workers:
                self._workers.remove(block)
                for i in range(NCOUNTERS):
                    self._retired[i] += block[i]

    def inc(self, index: int, amount: int = 1) -> None:
        self.block[index] += amount

    def count_rcode(self, rcode: int) -> None:
        self.block[RCODE_BASE + min(rcode, NRCODES - 1)] += 1

    def totals(self) -> list[int]:
        """Sum over this process's block, live worker blocks and retired workers."""
        with self._lock:
            total = list(self._retired)
            for block in (self.block, *self._workers):
                for i in range(NCOUNTERS):
                    total[i] += block[i]
        return total

    def value(self, index: int) -> int:
        return self.totals()[index]

    def responses(self) -> dict[str, int]:
        """Responses sent, by rcode name."""
        total = self.totals()
        out: dict[str, int] = {}
        for r in range(NRCODES):
            count = total[RCODE_BASE + r]
            if count:
                out[_RCODE_NAMES.get(r, f"RCODE{r}")] = count
        return out

    # -- gauges ----------------------------------------------------------
    def gauge(self, name: str, help_text: str, fn: Callable[[], float | None]) -> None:
        """A gauge ``enumer_<name>`` read from ``fn()`` at render time (None: not shown).

        E.g. ``answer_table_numbers``, ``index_age_seconds``, ``chain_height``.
        """
        with self._lock:
            self._gauges[name] = (help_text, fn)

    add_gauge = gauge

    def labelled_gauge(
        self, name: str, help_text: str, fn: Callable[[], list[tuple[str, float]]]
    ) -> None:
        """A gauge with samples per label set: ``fn()`` gives ``('{zone="enum."}', value)``."""
        with self._lock:
            self._labelled[name] = (help_text, fn)

    # -- exposition ------------------------------------------------------
    def render(self) -> str:
        total = self.totals()
        lines: list[str] = []

        def counter(name: str, help_text: str, samples: list[tuple[str, int]]) -> None:
            lines.append(f"# HELP enumer_{name} {help_text}")
            lines.append(f"# TYPE enumer_{name} counter")
            for labels, v in samples:
                lines.append(f"enumer_{name}{labels} {v}")

        counter(
            "dns_queries_total",
            "DNS queries received, by transport.",
            [('{transport="udp"}', total[QUERIES_UDP]), ('{transport="tcp"}', total[QUERIES_TCP])],
        )
        rcodes = [
            (f'{{rcode="{name}"}}', total[RCODE_BASE + r]) for r, name in _RCODE_NAMES.items()
        ]
        rcodes += [
            (f'{{rcode="RCODE{r}"}}', total[RCODE_BASE + r])
            for r in range(NRCODES)
            if r not in _RCODE_NAMES and total[RCODE_BASE + r]
        ]
        counter("dns_responses_total", "DNS responses sent, by rcode.", rcodes)
        counter(
            "dns_ratelimit_drops_total",
            "Queries or responses dropped by rate limiting.",
            [("", total[RATELIMIT_DROPS])],
        )
        counter(
            "dns_ratelimit_slips_total",
            "Rate-limited responses sent truncated (RRL slip).",
            [("", total[RATELIMIT_SLIPS])],
        )
        counter(
            "dns_errors_total", "Internal errors while handling a query.", [("", total[ERRORS])]
        )
        counter("dns_truncated_total", "UDP responses sent with TC set.", [("", total[TRUNCATED])])
        counter(
            "dns_dropped_total",
            "Packets not answered by design (responses, runts).",
            [("", total[DROPPED])],
        )
        counter(
            "dns_tcp_connections_total", "TCP connections accepted.", [("", total[TCP_CONNECTIONS])]
        )
        counter(
            "dns_tcp_rejected_total",
            "TCP connections closed at once: too many clients.",
            [("", total[TCP_REJECTED])],
        )
        with self._lock:
            gauges = sorted(self._gauges.items())
        for name, (help_text, fn) in gauges:
            try:
                value = fn()
            except Exception:
                value = None
            if value is None:
                continue
            lines.append(f"# HELP enumer_{name} {help_text}")
            lines.append(f"# TYPE enumer_{name} gauge")
            lines.append(f"enumer_{name} {_fmt(value)}")
        with self._lock:
            labelled = sorted(self._labelled.items())
        for name, (help_text, samples_fn) in labelled:
            try:
                samples = samples_fn()
            except Exception:
                continue
            lines.append(f"# HELP enumer_{name} {help_text}")
            lines.append(f"# TYPE enumer_{name} gauge")
            lines.extend(f"enumer_{name}{labels} {_fmt(v)}" for labels, v in samples)
        return "\n".join(lines) + "\n"


def _fmt(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class MetricsEndpoint:
    """A running ``/metrics`` HTTP endpoint; call it to stop it."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        host, port = httpd.server_address[:2]
        self.address: tuple[str, int] = (str(host), int(port))

    def __call__(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def serve_metrics(addr: str, port: int, metrics: Metrics) -> MetricsEndpoint:
    """Serve ``GET /metrics`` over HTTP in a thread; returns the function that stops it.

    ``port=0`` binds an ephemeral port: see the returned object's ``address``.
    Any other path gets 404.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404, "not found")
                return
            body = metrics.render().encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        daemon_threads = True

    httpd = Server((addr, port), Handler)
    thread = threading.Thread(
        target=httpd.serve_forever, args=(0.1,), name="enumer-metrics", daemon=True
    )
    thread.start()
    return MetricsEndpoint(httpd, thread)
