"""The gateway's TCP side (RFC 7766): 2-byte length framing, pipelined queries answered in order.

TCP carries what does not fit UDP (answers over 512 bytes, or over the
client's EDNS size, come back truncated and the client retries here) and is
never rate limited.  It is served by one thread running one event loop (a
``selectors`` loop over the listeners and every connection), not a thread per
connection: a connection costs a descriptor and a few buffers, so no limit on
threads (a pids or TasksMax limit, memory) can stop TCP while UDP goes on.

Bounds, so that no client can take TCP from the others:

* at most ``max_tcp_clients`` connections in all, and ``max_tcp_per_client``
  from one client network (IPv4 /24, IPv6 /56; the rate limiter's exempt
  networks, by default loopback, are not limited per client);
* a connection is closed after ``tcp_idle_timeout`` seconds without a
  complete query or progress in sending it its answers, and that timeout
  shortens as the table fills (RFC 7766 section 6.2): the full timeout up to
  half full, then down to a tenth of it when full.  A slow sender (a byte
  now and then) gains nothing: only a complete query counts;
* a client that does not read its answers is not read from either once
  :data:`MAX_PENDING` bytes of answers wait for it.

Any failure while taking on one connection (no memory, no descriptor, a
bug) closes that connection, the newest, counts it in
``enumer_dns_tcp_shed_total`` and is logged (one line, then at most one a
minute with the count); the loop goes on.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable

from enumer.dns.metrics import (
    DROPPED,
    ERRORS,
    QUERIES_TCP,
    RCODE_BASE,
    TCP_CONNECTIONS,
    TCP_REJECTED,
    TCP_SHED,
    Metrics,
)
from enumer.dns.ratelimit import ExemptNetworks, client_network
from enumer.dns.serving import Log, ServerConfig, ViewProvider, log_line, rcode_of
from enumer.dns.wire import rcode_name, respond, servfail

__all__ = ["MAX_PENDING", "Connection", "TcpService", "idle_timeout"]

#: Answers waiting for a client that does not read; past this, its queries wait too.
MAX_PENDING = 256 * 1024
#: How often the loop looks for idle connections (seconds).
SWEEP_SECONDS = 0.1
#: Seconds between two log lines about shed connections.
SHED_LOG_SECONDS = 60.0
#: Running out of these on accept means: shed the newest connection.
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def idle_timeout(base: float, open_connections: int, capacity: int) -> float:
    """The idle timeout with ``open_connections`` of ``capacity`` in use: ``base`` up to
    half full, then shorter, down to a tenth of ``base`` when full (RFC 7766 6.2)."""
    fill = open_connections / max(capacity, 1)
    if fill <= 0.5:
        return base
    return base * max(0.1, 2.0 * (1.0 - fill))


class Connection:
    """One client connection: what it sent that is not a whole query yet, the answers
    not yet sent, and when it last made progress."""

    __slots__ = ("addr", "inbuf", "last_active", "network", "outbuf", "peer_closed", "sock")

    def __init__(
        self, sock: socket.socket, addr: tuple[str, int], network: str | bytes | None
    ) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.addr = addr
        self.network = network  # None: exempt from the per-client limit
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.last_active = time.monotonic()
        self.peer_closed = False


class TcpService:
    """Serves DNS over TCP on already bound, listening sockets, in one thread."""

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
        self._exempt = ExemptNetworks(config.ratelimit.exempt)
        self._selector = selectors.DefaultSelector()
        self._conns: dict[int, Connection] = {}
        self._listening: dict[int, socket.socket] = {}
        self._per_network: dict[str | bytes, int] = {}
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._reserve_fd = -1  # kept free to accept (and close) a connection on EMFILE
        self._shed_since_log = 0
        self._shed_logged_at = -SHED_LOG_SECONDS

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        for lsock in self.listeners:
            lsock.setblocking(False)
            self._listening[lsock.fileno()] = lsock
            self._selector.register(lsock, selectors.EVENT_READ, None)
        os.set_blocking(self._wake_r, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._reserve()
        port = self.listeners[0].getsockname()[1] if self.listeners else 0
        self._thread = threading.Thread(target=self._run, name=f"enumer-tcp-{port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and close every connection (the caller closes the listeners)."""
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        for conn in list(self._conns.values()):
            self._close(conn)
        self._selector.close()
        for fd in (self._wake_r, self._wake_w, self._reserve_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake_r = self._wake_w = self._reserve_fd = -1

    # -- the loop ------------------------------------------------------------------
    def _run(self) -> None:
        next_sweep = time.monotonic() + SWEEP_SECONDS
        while not self._stopping:
            try:
                events = self._selector.select(SWEEP_SECONDS)
            except OSError as exc:  # pragma: no cover - EINTR is retried by Python
                self.log(f"TCP event loop: {exc}")
                time.sleep(SWEEP_SECONDS)
                continue
            for key, mask in events:
                conn = key.data
                try:
                    if conn is None:
                        if key.fd == self._wake_r:
                            with contextlib.suppress(OSError):
                                os.read(self._wake_r, 64)
                        else:
                            self._accept(self._listening[key.fd])
                    else:
                        if mask & selectors.EVENT_WRITE:
                            self._writable(conn)
                        if mask & selectors.EVENT_READ and conn.sock.fileno() >= 0:
                            self._receive(conn)
                except Exception as exc:  # a bug in one connection: close it, keep serving
                    self.metrics.inc(ERRORS)
                    self.log(f"TCP connection failed: {exc!r}")
                    if conn is not None:
                        self._close(conn)
            now = time.monotonic()
            if now >= next_sweep:
                next_sweep = now + SWEEP_SECONDS
                self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Close the connections idle for longer than the current idle timeout."""
        cfg = self.config
        limit = idle_timeout(cfg.tcp_idle_timeout, len(self._conns), cfg.max_tcp_clients)
        for conn in [c for c in self._conns.values() if now - c.last_active > limit]:
            self._close(conn)

    # -- accepting -----------------------------------------------------------------
    def _accept(self, lsock: socket.socket) -> None:
        for _ in range(64):  # what is waiting, without starving the connections
            try:
                sock, addr = lsock.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._shed_waiting(lsock, exc)
                return  # ECONNABORTED and the like: the client gave up
            self._take(sock, addr)

    def _take(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        """Take on a new connection, or close it at once (full, or it cannot be set up)."""
        cfg = self.config
        ip = addr[0]
        network = None if ip in self._exempt else client_network(ip)
        full = len(self._conns) >= cfg.max_tcp_clients or (
            network is not None and self._per_network.get(network, 0) >= cfg.max_tcp_per_client
        )
        if full or self._stopping:
            self.metrics.inc(TCP_REJECTED)
            sock.close()
            return
        try:
            conn = Connection(sock, addr, network)
            self._selector.register(sock, selectors.EVENT_READ, conn)
        except Exception as exc:  # no memory, a descriptor limit in epoll, a bug
            sock.close()
            self._shed(exc)
            return
        self._conns[sock.fileno()] = conn
        if network is not None:
            self._per_network[network] = self._per_network.get(network, 0) + 1
        self.metrics.inc(TCP_CONNECTIONS)

    def _reserve(self) -> None:
        if self._reserve_fd < 0:
            with contextlib.suppress(OSError):
                self._reserve_fd = os.open(os.devnull, os.O_RDONLY)

    def _shed_waiting(self, lsock: socket.socket, exc: OSError) -> None:
        """Out of descriptors: free the reserved one, accept the newest connection on it
        and close it, so that it is refused rather than left waiting to time out."""
        if self._reserve_fd >= 0:
            os.close(self._reserve_fd)
            self._reserve_fd = -1
            with contextlib.suppress(OSError):
                sock, _addr = lsock.accept()
                sock.close()
            self._reserve()
        self._shed(exc)
        if self._reserve_fd < 0:
            time.sleep(0.01)  # nothing to accept with: do not spin on the listener

    def _shed(self, exc: BaseException) -> None:
        self.metrics.inc(TCP_SHED)
        self._shed_since_log += 1
        now = time.monotonic()
        if now - self._shed_logged_at >= SHED_LOG_SECONDS:
            self.log(
                f"TCP: shed {self._shed_since_log} new connection(s), "
                f"could not take them on: {exc!r}"
            )
            self._shed_since_log = 0
            self._shed_logged_at = now

    # -- a connection --------------------------------------------------------------
    def _receive(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            conn.peer_closed = True  # answer what came, then close
        conn.inbuf += data
        self._answer_waiting(conn)

    def _writable(self, conn: Connection) -> None:
        if self._flush(conn):
            self._answer_waiting(conn)  # the queries held back while answers were pending

    def _answer_waiting(self, conn: Connection) -> None:
        """Answer the complete queries in the input, in order, and send what can go;
        queries wait while :data:`MAX_PENDING` bytes of answers do."""
        block = self.metrics.block
        while True:
            buf = conn.inbuf
            pos = 0
            while len(buf) - pos >= 2 and len(conn.outbuf) < MAX_PENDING:
                length = (buf[pos] << 8) | buf[pos + 1]
                if length < 12:  # cannot be a DNS message: malformed framing
                    self._close(conn)
                    return
                if len(buf) - pos - 2 < length:
                    break
                query = bytes(buf[pos + 2 : pos + 2 + length])
                pos += 2 + length
                conn.last_active = time.monotonic()
                block[QUERIES_TCP] += 1
                transfer = self.config.transfer
                handled = transfer(query, conn.addr) if transfer is not None else None
                if isinstance(handled, bytes):
                    conn.outbuf += len(handled).to_bytes(2, "big") + handled
                    continue
                if handled is not None:
                    self._hand_over(conn, handled)
                    return
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
                conn.outbuf += len(resp).to_bytes(2, "big")
                conn.outbuf += resp
                if self.config.query_log:
                    self.log(log_line("tcp", conn.addr, resp, rcode_name(rcode)))
            del buf[:pos]
            held = len(conn.outbuf) >= MAX_PENDING and len(buf) >= 2
            if not self._flush(conn) or not held or len(conn.outbuf) >= MAX_PENDING:
                break
        if conn.sock.fileno() < 0:
            return
        if conn.peer_closed and not conn.outbuf and len(conn.inbuf) < 2 + 12:
            self._close(conn)  # every whole query answered: nothing more can come
            return
        # Read while few answers wait (and the client may send more); write while any do.
        events = 0
        if not conn.peer_closed and len(conn.outbuf) < MAX_PENDING:
            events |= selectors.EVENT_READ
        if conn.outbuf:
            events |= selectors.EVENT_WRITE
        if not events:
            self._close(conn)  # the peer closed and left a part of a query: done
            return
        if self._selector.get_key(conn.sock).events != events:
            self._selector.modify(conn.sock, events, conn)

    def _flush(self, conn: Connection) -> bool:
        """Send what the socket takes of the pending answers; False when it is closed."""
        if not conn.outbuf:
            return conn.sock.fileno() >= 0
        try:
            sent = conn.sock.send(conn.outbuf)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            self._close(conn)
            return False
        if sent:
            del conn.outbuf[:sent]
            conn.last_active = time.monotonic()
        return True

    def _hand_over(self, conn: Connection, job: Callable[[socket.socket, bytes], None]) -> None:
        """Give the connection to a zone transfer's own thread (with the answers it
        still has to send, in order): a transfer never holds up this loop."""
        try:
            sock = conn.sock.dup()
        except OSError:
            self._close(conn)
            return
        pending = bytes(conn.outbuf)
        self._close(conn)
        sock.setblocking(True)
        threading.Thread(target=job, args=(sock, pending), name="enumer-xfr", daemon=True).start()

    def _close(self, conn: Connection) -> None:
        fd = conn.sock.fileno()
        if fd < 0:
            return
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(conn.sock)
        if self._conns.pop(fd, None) is not None and conn.network is not None:
            left = self._per_network.get(conn.network, 1) - 1
            if left > 0:
                self._per_network[conn.network] = left
            else:
                self._per_network.pop(conn.network, None)
        conn.sock.close()
