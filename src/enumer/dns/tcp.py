"""The gateway's TCP side (RFC 7766): 2-byte length framing, pipelined queries answered in order.

TCP carries what does not fit UDP (answers over 512 bytes, or over the
client's EDNS size, come back truncated and the client retries here) and is
never rate limited.  Each listener has an accept thread; each connection a
thread of its own, closed after ``tcp_idle_timeout`` seconds without a
complete query, and at most ``max_tcp_clients`` connections are open at once
(more are closed at once and counted).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from enumer.dns.metrics import (
    DROPPED,
    ERRORS,
    QUERIES_TCP,
    RCODE_BASE,
    TCP_CONNECTIONS,
    TCP_REJECTED,
    Metrics,
)
from enumer.dns.serving import Log, ServerConfig, ViewProvider, log_line, rcode_of
from enumer.dns.wire import rcode_name, respond, servfail

__all__ = ["TcpService"]


class TcpService:
    """Serves DNS over TCP on already bound, listening sockets."""

    def __init__(
        self,
        listeners: list[socket.socket],
        view_provider: ViewProvider,
        config: ServerConfig,
        metrics: Metrics,
        log: Log,
    ) -> None:
        self.listeners = listeners
        self.view_provider = view_provider
        self.config = config
        self.metrics = metrics
        self.log = log
        self._stopping = False
        self._conn_lock = threading.Lock()
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for lsock in self.listeners:
            thread = threading.Thread(
                target=self._accept_loop,
                args=(lsock,),
                name=f"enumer-tcp-{lsock.getsockname()[1]}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop accepting, close every connection, join the threads (the caller closes
        the listening sockets)."""
        self._stopping = True
        for lsock in self.listeners:
            with contextlib.suppress(OSError):
                lsock.shutdown(socket.SHUT_RDWR)
        with self._conn_lock:
            conns = list(self._conns.items())
        for conn, _thread in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in (*self._threads, *(t for _c, t in conns)):
            if thread is not threading.current_thread() and thread.ident is not None:
                thread.join(5)

    def _accept_loop(self, lsock: socket.socket) -> None:
        while not self._stopping:
            try:
                conn, addr = lsock.accept()
            except OSError:
                if self._stopping or lsock.fileno() < 0:
                    return
                time.sleep(0.05)  # e.g. EMFILE: do not spin
                continue
            if self._stopping:
                conn.close()
                return
            with self._conn_lock:
                full = len(self._conns) >= self.config.max_tcp_clients
                if not full:
                    thread = threading.Thread(
                        target=self._serve_tcp, args=(conn, addr), name="enumer-tcp", daemon=True
                    )
                    self._conns[conn] = thread
            if full:
                self.metrics.inc(TCP_REJECTED)
                conn.close()
                continue
            self.metrics.inc(TCP_CONNECTIONS)
            thread.start()

    def _serve_tcp(self, conn: socket.socket, addr: tuple[str, int]) -> None:
        """One TCP connection: 2-byte length framing, any number of queries in order."""
        block = self.metrics.block
        idle = self.config.tcp_idle_timeout
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while not self._stopping:
                head = _recv_exact(conn, 2, idle)
                if head is None:
                    break
                length = (head[0] << 8) | head[1]
                if length < 12:
                    break  # cannot be a DNS message: malformed framing
                query = _recv_exact(conn, length, idle)
                if query is None:
                    break
                block[QUERIES_TCP] += 1
                transfer = self.config.transfer
                if transfer is not None and transfer(conn, addr, query):
                    continue
                try:
                    resp = respond(query, self.view_provider(), None)
                except Exception as exc:
                    block[ERRORS] += 1
                    self.log(f"error answering a TCP query: {exc!r}")
                    resp = servfail(query)
                if resp is None:
                    block[DROPPED] += 1
                    continue
                rcode = rcode_of(resp)
                block[RCODE_BASE + rcode] += 1
                conn.settimeout(idle)
                conn.sendall(len(resp).to_bytes(2, "big") + resp)
                if self.config.query_log:
                    self.log(log_line("tcp", addr, resp, rcode_name(rcode)))
        except OSError:
            pass
        finally:
            conn.close()
            with self._conn_lock:
                self._conns.pop(conn, None)


def _recv_exact(conn: socket.socket, n: int, timeout: float) -> bytes | None:
    """Exactly ``n`` bytes within ``timeout`` seconds, or None (EOF, timeout)."""
    buf = b""
    deadline = time.monotonic() + timeout
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        conn.settimeout(remaining)
        try:
            chunk = conn.recv(n - len(buf))
        except TimeoutError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf
