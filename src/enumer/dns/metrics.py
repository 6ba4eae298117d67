"""Counters and gauges of the DNS gateway, in Prometheus text format.

Counters live in small blocks of shared memory (an anonymous ``mmap`` seen
through a ``memoryview`` of unsigned 64-bit integers), so the hot path is a
plain ``block[INDEX] += 1`` and forked UDP worker processes (see
``workers.py``) can count into blocks the parent process reads.  One writer per
block; increments from several threads of one process go through the GIL and
may in rare cases lose a count, which is fine for monitoring.
"""

from __future__ import annotations

import contextlib
import mmap
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from enumer.dns.wire import RCODE_NAMES

__all__ = [
    "DROPPED",
    "ERRORS",
    "METRICS_REJECTED",
    "NCOUNTERS",
    "NRCODES",
    "QUERIES_TCP",
    "QUERIES_UDP",
    "RATELIMIT_DROPS",
    "RATELIMIT_SLIPS",
    "RCODE_BASE",
    "TCP_CONNECTIONS",
    "TCP_REJECTED",
    "TCP_SHED",
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
TCP_REJECTED = 8  # too many connections, in all or from the client's network
TCP_SHED = 9  # connections closed because taking them on failed (no thread, memory, fds)
METRICS_REJECTED = 10  # /metrics connections refused or closed: too many, or idle
RCODE_BASE = 16  # responses with rcode r count at RCODE_BASE + r (r < 32)
NRCODES = 32
NCOUNTERS = RCODE_BASE + NRCODES

_BLOCK_BYTES = NCOUNTERS * 8


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
                out[RCODE_NAMES.get(r, f"RCODE{r}")] = count
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
        rcodes = [(f'{{rcode="{name}"}}', total[RCODE_BASE + r]) for r, name in RCODE_NAMES.items()]
        rcodes += [
            (f'{{rcode="RCODE{r}"}}', total[RCODE_BASE + r])
            for r in range(NRCODES)
            if r not in RCODE_NAMES and total[RCODE_BASE + r]
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
            "TCP connections closed at once: too many in all or from the client's network.",
            [("", total[TCP_REJECTED])],
        )
        counter(
            "dns_tcp_shed_total",
            "TCP connections closed at once: taking them on failed (descriptors, memory).",
            [("", total[TCP_SHED])],
        )
        counter(
            "metrics_rejected_total",
            "Connections to /metrics closed: too many at once, or idle too long.",
            [("", total[METRICS_REJECTED])],
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


#: At most this many connections to /metrics at once (one thread each).
METRICS_MAX_CLIENTS = 16
#: Seconds a /metrics connection may take to send its request, between two reads.
METRICS_IDLE_TIMEOUT = 10.0


def serve_metrics(
    addr: str,
    port: int,
    metrics: Metrics,
    max_clients: int = METRICS_MAX_CLIENTS,
    idle_timeout: float = METRICS_IDLE_TIMEOUT,
) -> MetricsEndpoint:
    """Serve ``GET /metrics`` over HTTP in a thread; returns the function that stops it.

    ``port=0`` binds an ephemeral port: see the returned object's ``address``.
    Any other path gets 404.  Bounded like the DNS side: each connection has a
    thread of its own for one request (HTTP/1.0), at most ``max_clients`` at
    once, and a read waits at most ``idle_timeout`` seconds.  With the table
    full, a new connection first closes the connections that have been open
    longer than ``idle_timeout`` (slow senders); if none has, it is itself
    closed at once.  Both count in ``enumer_metrics_rejected_total``; a thread
    that cannot be started only loses its connection.
    """
    block = metrics.block

    class Handler(BaseHTTPRequestHandler):
        timeout = idle_timeout  # each read of the request (StreamRequestHandler)

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
        block_on_close = False

        def __init__(self) -> None:
            super().__init__((addr, port), Handler)
            self._open: dict[socket.socket, float] = {}  # connection -> when it came
            self._open_lock = threading.Lock()

        def process_request(self, request: Any, client_address: Any) -> None:
            now = time.monotonic()
            with self._open_lock:
                if len(self._open) >= max_clients:
                    for old, since in list(self._open.items()):
                        if now - since > idle_timeout:
                            _shut_down(old)
                            del self._open[old]
                            block[METRICS_REJECTED] += 1
                full = len(self._open) >= max_clients
                if not full:
                    self._open[request] = now
            if full:
                block[METRICS_REJECTED] += 1
                self.shutdown_request(request)
                return
            try:
                super().process_request(request, client_address)
            except Exception:  # e.g. RuntimeError: can't start new thread
                self._forget(request)
                block[METRICS_REJECTED] += 1
                self.shutdown_request(request)

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            try:
                super().process_request_thread(request, client_address)
            finally:
                self._forget(request)

        def _forget(self, request: socket.socket) -> None:
            with self._open_lock:
                self._open.pop(request, None)

        def handle_error(self, request: Any, client_address: Any) -> None:
            """A connection that failed: mostly one closed above (a slow sender) or by
            its client while answered.  Nothing to do, and no traceback on stderr."""

    httpd = Server()
    thread = threading.Thread(
        target=httpd.serve_forever, args=(0.1,), name="enumer-metrics", daemon=True
    )
    thread.start()
    return MetricsEndpoint(httpd, thread)


def _shut_down(sock: socket.socket) -> None:
    """Shut a connection down: its thread then sees EOF, or an error, and closes it."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
