"""The ENUMER DNS gateway's sockets, composed: UDP, TCP (RFC 7766) and UDP worker processes.

This module binds the addresses and puts the three sides together; each
lives in a module of its own:

* ``udp.py``: the hot path, one loop per UDP socket, raw bytes in and
  pre-built bytes out (in C where the optional extension was built);
* ``tcp.py``: the TCP listener, length-framed and pipelined queries;
* ``workers.py``: with ``udp_workers > 1``, forked worker processes that
  share the UDP sockets, and the supervisor that re-forks them when the
  tables change.

The parent serves TCP; with ``udp_workers <= 1`` the parent serves UDP in a
thread (one per socket) and there is no fork at all: there the C loop asks
now and then whether the tables changed and, if so, is handed them afresh.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
from collections.abc import Callable

from enumer.dns import udp
from enumer.dns.metrics import Metrics
from enumer.dns.ratelimit import RateLimiter
from enumer.dns.serving import Log, ServerConfig, ViewProvider, addr_text
from enumer.dns.tcp import TcpService
from enumer.dns.workers import WorkerPool

__all__ = ["GatewayServer", "ServerConfig"]


def _bind_error(proto: str, host: str, port: int, exc: OSError) -> OSError:
    err = OSError(f"cannot bind {proto} {addr_text(host, port)}: {exc.strerror or exc}")
    err.errno = exc.errno
    return err


class GatewayServer:
    """UDP and TCP listeners answering with ``wire.respond`` on the provider's current view."""

    def __init__(
        self, view_provider: ViewProvider, config: ServerConfig, metrics: Metrics, log: Log
    ) -> None:
        self.view_provider = view_provider
        self.config = config
        self.metrics = metrics
        self.log = log
        self.bound: list[tuple[str, str, int]] = []
        self._udp: list[socket.socket] = []
        self._tcp: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._workers: WorkerPool | None = None
        self._tcp_service: TcpService | None = None
        # Closing the write end stops the UDP threads' C loops (they read EOF).
        self._thread_stop_r, self._thread_stop_w = os.pipe()
        os.set_blocking(self._thread_stop_r, False)
        self._started = False

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the UDP worker processes (none with ``udp_workers`` 1)."""
        return self._workers.pids if self._workers is not None else []

    @property
    def workers_settled_on(self) -> object:
        """The view stamp (:meth:`GatewayView.stamp`) all UDP workers serve, once the
        workers of earlier stamps have exited; None during a re-fork or without workers."""
        return self._workers.settled if self._workers is not None else None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        """Bind every address (UDP, and TCP on the same port), start serving; return when ready."""
        if self._started:
            raise RuntimeError("server already started")
        try:
            for host, port in self.config.binds:
                self._bind(host, port)
        except BaseException:
            self._close_sockets()
            raise
        self._started = True
        qlog = self.log if self.config.query_log else None
        if self.config.udp_workers > 1:
            self._workers = WorkerPool(
                self._udp, self.view_provider, self.config, self.metrics, self.log
            )
            try:
                self._workers.start()
            except BaseException:
                self.stop()
                raise
        else:
            limiter = RateLimiter(self.config.ratelimit) if self.config.ratelimit.enabled else None
            for sock in self._udp:
                duty = udp.UdpDuty(
                    self.view_provider,
                    self.metrics.block,
                    limiter,
                    self.config.max_udp,
                    qlog,
                    self.log,
                    self.config.signed,
                )
                self._thread(
                    f"enumer-udp-{sock.getsockname()[1]}",
                    udp.serve_udp,
                    sock,
                    duty,
                    self._thread_stop_r,
                )
        if self._tcp:
            self._tcp_service = TcpService(
                self._tcp, self.view_provider, self.config, self.metrics, self.log
            )
            self._tcp_service.start()

    def stop(self) -> None:
        """Stop workers, close every socket, join the threads."""
        if self._workers is not None:
            self._workers.stop()
        if self._thread_stop_w >= 0:
            os.close(self._thread_stop_w)
            self._thread_stop_w = -1
        for sock in self._udp:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._tcp_service is not None:
            self._tcp_service.stop()
        for thread in self._threads:
            if thread is not threading.current_thread() and thread.ident is not None:
                thread.join(5)
        self._close_sockets()

    def __enter__(self) -> GatewayServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- binding -----------------------------------------------------------
    def _bind(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _attempt in range(20 if port == 0 else 1):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            if family == socket.AF_INET6:
                udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            with contextlib.suppress(OSError):
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            try:
                udp.bind((host, port))
            except OSError as exc:
                udp.close()
                raise _bind_error("UDP", host, port, exc) from exc
            actual = int(udp.getsockname()[1])
            tcp = None
            if self.config.tcp:
                tcp = socket.socket(family, socket.SOCK_STREAM)
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    tcp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    tcp.bind((host, actual))
                    tcp.listen(128)
                except OSError as exc:
                    tcp.close()
                    udp.close()
                    if port == 0 and exc.errno == errno.EADDRINUSE:
                        continue  # the ephemeral UDP port is taken for TCP: try another
                    raise _bind_error("TCP", host, actual, exc) from exc
            self._udp.append(udp)
            self.bound.append(("udp", host, actual))
            if tcp is not None:
                self._tcp.append(tcp)
                self.bound.append(("tcp", host, actual))
            return
        raise OSError(f"cannot bind UDP and TCP {host} on one ephemeral port")

    def _close_sockets(self) -> None:
        for sock in (*self._udp, *self._tcp):
            sock.close()
        for fd in (self._thread_stop_r, self._thread_stop_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._thread_stop_r = self._thread_stop_w = -1

    def _thread(self, name: str, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
