"""Sockets of the ENUMER DNS gateway: UDP loops, a TCP listener (RFC 7766), worker processes.

The UDP hot path is a loop per socket: raw bytes in, pre-built bytes out
(``wire.respond``).  Where it can, the loop reads and answers 64 datagrams per
system call, and where the optional C extension was built (``_fastloop.c``)
the loop itself runs in C and answers the common queries without Python;
otherwise it is a blocking ``recvfrom``/``respond``/``sendto`` loop.

Worker processes (``udp_workers > 1``): the GIL caps one process at one core,
so the gateway can fork N processes that all read the same UDP sockets (one
socket per address shared by all workers, rather than SO_REUSEPORT sockets
per worker, so that no queued datagram is lost when a worker is replaced).
A worker gets the answer table by ``fork`` and never sees later changes, so
a supervisor thread in the parent re-forks all workers whenever the view
object or any source's ``generation``/``serial`` changes (at most once per
``worker_refresh_interval`` seconds, so answers lag the parent by about that
much) and at least every ``worker_max_age`` seconds (the status text a
worker serves is a snapshot taken at fork time).  New workers start first;
then the old ones are told to stop through a pipe and exit between two
packets, so a re-fork loses nothing.  A worker also exits when the parent
dies (the pipe closes).  Workers count into shared-memory blocks of the
parent's ``Metrics``; their log lines reach the parent through a pipe.

Because a worker is forked from a threaded process,
``AnswerSource.answer``/``generation``/``serial`` must not take locks that
another thread may hold (a dict lookup is fine); a worker stuck on one
anyway only stops reading (the others take its share) and is replaced at the
next re-fork.  The parent serves TCP; with ``udp_workers <= 1`` the parent
serves UDP in a thread (one per socket) and there is no fork at all: there the
C loop asks now and then whether the tables changed and, if so, is handed
them afresh.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from enumer.dns import mmsg

try:  # the optional C build of the worker loop (setup.py); Python does the same without it
    from enumer.dns import _fastloop
except ImportError:  # pragma: no cover - depends on the machine that installed us
    _fastloop = None  # type: ignore[assignment]
from enumer.dns.metrics import (
    DROPPED,
    ERRORS,
    NRCODES,
    QUERIES_TCP,
    QUERIES_UDP,
    RATELIMIT_DROPS,
    RATELIMIT_SLIPS,
    RCODE_BASE,
    TCP_CONNECTIONS,
    TCP_REJECTED,
    TRUNCATED,
    Metrics,
)
from enumer.dns.ratelimit import DROP, RateLimitConfig, RateLimiter
from enumer.dns.wire import (
    EDNS_UDP_SIZE,
    NXDOMAIN,
    SOA_POINTER_OFFSETS,
    GatewayView,
    rcode_name,
    respond,
    response_rcode,
    servfail,
    slip_response,
    soa_template,
    summarize,
)

__all__ = ["GatewayServer", "ServerConfig"]

ViewProvider = Callable[[], GatewayView]
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
    udp_workers: int = 1  # > 1: that many forked UDP worker processes (see module doc)
    ratelimit: RateLimitConfig = field(default_factory=RateLimitConfig)
    query_log: bool = False
    max_udp: int = EDNS_UDP_SIZE  # largest UDP response with EDNS (512 without)
    worker_refresh_interval: float = 1.0  # least seconds between two re-forks
    worker_max_age: float = 60.0  # re-fork workers at least this often


def _addr_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bind_error(proto: str, host: str, port: int, exc: OSError) -> OSError:
    err = OSError(f"cannot bind {proto} {_addr_text(host, port)}: {exc.strerror or exc}")
    err.errno = exc.errno
    return err


def _log_line(transport: str, addr: tuple[str, int], packet: bytes, rcode: str) -> str:
    name, qtype = summarize(packet)
    return (
        f"{transport} {_addr_text(addr[0], addr[1])} {name} "
        f"{_QTYPES.get(qtype, f'TYPE{qtype}')} {rcode}"
    )


@dataclass(frozen=True)
class UdpDuty:
    """What every UDP loop needs besides its socket: where answers come from
    (``provider``), where they are counted (``block``), the rate limiter,
    the largest UDP answer, and the query and error logs."""

    provider: ViewProvider
    block: memoryview
    limiter: RateLimiter | None
    max_udp: int
    qlog: Log | None
    errlog: Log

    def answer(
        self, data: bytes, addr: tuple[str, int] | Callable[[], tuple[str, int]], view: GatewayView
    ) -> bytes | None:
        """The answer to one datagram (None: send nothing): rate limits, ``respond``, counters.

        ``addr`` may be a function giving the sender, so that the batched
        loops decode a raw address only when the rate limiter needs it.
        """
        block, limiter = self.block, self.limiter
        block[QUERIES_UDP] += 1
        ip = ""
        now = 0.0
        try:
            if limiter is not None:
                ip = (addr if isinstance(addr, tuple) else addr())[0]
                now = time.monotonic()
                if not limiter.allow_query(ip, now):
                    block[RATELIMIT_DROPS] += 1
                    return None
            resp = respond(data, view, self.max_udp)
            if resp is None:
                block[DROPPED] += 1
                return None
            if limiter is not None:
                verdict = limiter.check_response(ip, resp, now)
                if verdict:
                    if verdict == DROP:
                        block[RATELIMIT_DROPS] += 1
                        return None
                    block[RATELIMIT_SLIPS] += 1
                    resp = slip_response(resp)
        except Exception as exc:  # a bug: SERVFAIL, count, keep serving
            block[ERRORS] += 1
            if block[ERRORS] <= 10 or block[ERRORS] % 1000 == 0:
                self.errlog(f"error answering a UDP query: {exc!r}")
            resp = servfail(data)
            if resp is None:
                return None
        block[RCODE_BASE + _rcode(resp)] += 1
        if resp[2] & 0x02:
            block[TRUNCATED] += 1
        return resp

    def send(
        self,
        data: bytes,
        addr: tuple[str, int],
        sendto: Callable[[bytes, tuple[str, int]], int],
    ) -> None:
        """Answer one datagram with ``sendto`` (the unbatched loops)."""
        resp = self.answer(data, addr, self.provider())
        if resp is None:
            return
        try:
            sendto(resp, addr)
        except OSError:
            self.block[ERRORS] += 1
        self.log_query(addr, resp)

    def log_query(self, addr: tuple[str, int], resp: bytes) -> None:
        if self.qlog is not None:
            self.qlog(_log_line("udp", addr, resp, rcode_name(_rcode(resp))))

    def receive_error(self, exc: OSError) -> None:
        self.block[ERRORS] += 1
        self.errlog(f"UDP receive error: {exc}")


def _rcode(resp: bytes) -> int:
    return min(response_rcode(resp), NRCODES - 1) if resp[11] else resp[3] & 0x0F


def _serve_udp(sock: socket.socket, duty: UdpDuty, stop_fd: int) -> None:
    """The UDP loop of a thread, until the server stops.

    With the C loop built, it runs here too (following the tables as they
    change, see :func:`_serve_in_c`) and returns when ``stop_fd`` reaches
    EOF; should it fail, the thread goes on with the plain loop.  The plain
    loop returns when the socket is shut down (``recvfrom`` -> ``(b"", None)``).
    """
    if _fastloop is not None and mmsg.available():
        _set_receive_timeout(sock)
        try:
            _serve_in_c(sock, stop_fd, duty, follow_tables=True)
            return
        except Exception as exc:  # a bug: keep serving, in Python
            duty.errlog(f"C UDP loop failed, serving in Python: {exc!r}")
    recvfrom = sock.recvfrom
    sendto = sock.sendto
    while True:
        try:
            data, addr = recvfrom(65535)
        except OSError as exc:
            if sock.fileno() < 0:
                return
            duty.receive_error(exc)
            time.sleep(0.01)
            continue
        if data:
            duty.send(data, addr, sendto)
        elif addr is None:
            return  # shut down by stop()
        else:
            duty.block[DROPPED] += 1


def _serve_udp_worker(socks: list[socket.socket], stop_fd: int, duty: UdpDuty) -> None:
    """The UDP loop of a worker process, on sockets shared with other workers.

    With one socket (the common case) see :func:`_serve_one_socket`.  With
    several: epoll (one waiter woken per packet) on the sockets and on
    ``stop_fd``; readable sockets are drained with non-blocking reads (the
    shared socket itself stays blocking).  Where Linux offers them, the reads
    and the answers go 64 at a time through ``recvmmsg``/``sendmmsg``
    (:mod:`enumer.dns.mmsg`), else one by one with ``MSG_DONTWAIT``.  The
    parent closes the other end of ``stop_fd`` to retire the worker: it then
    returns between two batches, so no datagram it took is lost.
    """
    if len(socks) == 1 and mmsg.available():
        _serve_one_socket(socks[0], stop_fd, duty)
        return
    ep = select.epoll()
    drains: dict[int, Callable[[], None]] = {}
    for sock in socks:
        ep.register(sock.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
        drain = _batched_drain(sock, duty) if mmsg.available() else _plain_drain(sock, duty)
        drains[sock.fileno()] = drain
    ep.register(stop_fd, select.EPOLLIN)
    while True:
        for fd, _events in ep.poll():
            if fd == stop_fd:
                return
            drains[fd]()


#: How long a worker blocked on its socket waits before it looks at its stop pipe.
STOP_CHECK_SECONDS = 0.2
#: Under load, the stop pipe is looked at every this many batches (or
#: STOP_CHECK_SECONDS, whichever comes first).
STOP_CHECK_BATCHES = 256


def _serve_one_socket(sock: socket.socket, stop_fd: int, duty: UdpDuty) -> None:
    """The common case, one UDP socket: workers block in ``recvmmsg`` itself.

    No epoll: the kernel wakes one blocked reader per datagram, and a woken
    worker takes every queued datagram at once, so a busy worker makes two
    system calls per batch and an idle one sleeps.  ``SO_RCVTIMEO`` bounds
    the sleep so that the worker notices a closed stop pipe (retirement or
    the parent's death) within :data:`STOP_CHECK_SECONDS`.
    """
    _set_receive_timeout(sock)
    os.set_blocking(stop_fd, False)
    if _fastloop is not None:
        _serve_in_c(sock, stop_fd, duty)
        return
    answer = _batch_answerer(sock, duty)
    batches = 0
    monotonic = time.monotonic
    next_check = monotonic() + STOP_CHECK_SECONDS
    while True:
        n = answer(True)
        batches += 1
        if n and batches < STOP_CHECK_BATCHES and monotonic() < next_check:
            continue
        batches = 0
        next_check = monotonic() + STOP_CHECK_SECONDS
        try:
            if os.read(stop_fd, 1) == b"":
                return  # the parent closed the pipe
        except BlockingIOError:
            pass


def _set_receive_timeout(sock: socket.socket) -> None:
    """Bound each blocking read so that a loop looks at its stop pipe (and, in a
    thread, at the tables) at least every :data:`STOP_CHECK_SECONDS`."""
    usec = int(STOP_CHECK_SECONDS * 1e6)
    sock.setsockopt(
        socket.SOL_SOCKET,
        socket.SO_RCVTIMEO,
        struct.pack("@ll", usec // 1_000_000, usec % 1_000_000),
    )


def _serve_in_c(
    sock: socket.socket, stop_fd: int, duty: UdpDuty, follow_tables: bool = False
) -> None:
    """The same loop in C (``_fastloop.c``), which answers the common queries itself.

    The C code answers the common NAPTR queries exactly as ``wire.respond``
    does (hits, and NXDOMAIN where the source says its dict is complete:
    ``fast_answers_complete``), and only from zones whose source exposes its
    answers as a plain dict (``fast_answers``); everything else comes back
    to :meth:`UdpDuty.answer`.  With a rate limiter, C answers only loopback
    clients (which the limiter exempts: the usual local resolver in front of
    the gateway) and leaves the others to Python; with a query log, every
    query goes to Python.

    A worker's view never changes (it is re-forked instead).  In a thread of
    the process that updates the tables (``follow_tables``), C asks each
    time it looks at the stop pipe whether the view or its tables changed,
    and then gets zones built afresh: a change is served within
    :data:`STOP_CHECK_SECONDS` (one changed in place in a dict, at once).
    """
    assert _fastloop is not None
    limiter = duty.limiter
    loopback_only = limiter is not None
    use_c = duty.qlog is None and (limiter is None or limiter.config.exempt_loopback)

    def fallback(data: bytes, raw_sender: bytes) -> bytes | None:
        def sender() -> tuple[str, int]:
            return mmsg.address(raw_sender)

        resp = duty.answer(data, sender, duty.provider())
        if resp is not None and duty.qlog is not None:
            duty.log_query(sender(), resp)
        return resp

    while True:
        view = duty.provider()
        stamp = view.stamp()

        def stale() -> bool:
            return duty.provider() is not view or view.stamp() != stamp  # noqa: B023

        again = _fastloop.serve(
            sock.fileno(),
            stop_fd,
            _c_zones(view) if use_c else {},
            fallback,
            duty.block,
            (QUERIES_UDP, RCODE_BASE, RCODE_BASE + NXDOMAIN, DROPPED, ERRORS),
            STOP_CHECK_BATCHES,
            STOP_CHECK_SECONDS,
            loopback_only,
            SOA_POINTER_OFFSETS,
            stale if follow_tables else None,
        )
        if not again:
            return


def _c_zones(view: GatewayView) -> dict[bytes, tuple[dict[bytes, bytes], int, bytes | None]]:
    """What the C loop answers from: per fast-path zone suffix, the answers dict,
    the digit cap, and the SOA for NXDOMAIN when the dict is complete."""
    zones: dict[bytes, tuple[dict[bytes, bytes], int, bytes | None]] = {}
    for suffix, (source, max_digits) in view._fast.items():
        answers = getattr(source, "fast_answers", None)
        if isinstance(answers, dict):
            complete = getattr(source, "fast_answers_complete", False) is True
            soa = soa_template(source.serial, view.negative_ttl) if complete else None
            zones[suffix] = (answers, max_digits, soa)
    return zones


def _plain_drain(sock: socket.socket, duty: UdpDuty) -> Callable[[], None]:
    """Up to 64 waiting datagrams answered one ``recvfrom``/``sendto`` pair each."""
    recvfrom, sendto = sock.recvfrom, sock.sendto
    dontwait = socket.MSG_DONTWAIT

    def drain() -> None:
        for _i in range(64):
            try:
                data, addr = recvfrom(65535, dontwait)
            except BlockingIOError:
                return
            except OSError as exc:
                duty.receive_error(exc)
                return
            if data:
                duty.send(data, addr, sendto)
            else:
                duty.block[DROPPED] += 1

    return drain


def _batched_drain(sock: socket.socket, duty: UdpDuty) -> Callable[[], None]:
    """Batches until the socket is empty (a short batch), for the epoll loop."""
    answer = _batch_answerer(sock, duty)
    full = mmsg.BATCH

    def drain() -> None:
        while answer(False) == full:
            pass

    return drain


def _batch_answerer(sock: socket.socket, duty: UdpDuty) -> Callable[[bool], int]:
    """The hot path of a worker in Python: a batch in, :meth:`UdpDuty.answer` on each,
    a batch out.

    Returns a function that handles one batch (``wait``: block for the
    first datagram) and returns its size.  A worker's view never changes (it
    is re-forked instead), so it is bound once here.
    """
    io = mmsg.BatchSocket(sock)
    recv, datagram, reply, flush, sender = io.recv, io.datagram, io.reply, io.flush, io.sender
    view, block, answer_one = duty.provider(), duty.block, duty.answer
    qlog = duty.qlog

    def answer(wait: bool) -> int:
        try:
            n = recv(wait)
        except OSError as exc:
            duty.receive_error(exc)
            time.sleep(0.01)
            return 0
        for i in range(n):
            data = datagram(i)
            if not data:  # empty, or longer than any query we answer
                block[DROPPED] += 1
                continue
            resp = answer_one(data, partial(sender, i), view)
            if resp is not None:
                reply(i, resp)
                if qlog is not None:
                    duty.log_query(sender(i), resp)
        if n:
            block[ERRORS] += flush(n)
        return n

    return answer


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


class _Worker:
    def __init__(self, pid: int, block: memoryview, stop_w: int) -> None:
        self.pid = pid
        self.block = block
        self.stop_w = stop_w  # closing it asks the worker to exit


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
        self._stopping = False
        self._stop_event = threading.Event()
        self._conn_lock = threading.Lock()
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._workers: list[_Worker] = []
        self._worker_stamp: object = None
        self._worker_started = 0.0
        self._last_fork = 0.0
        self._log_w = -1
        # Closing the write end stops the UDP threads' C loops (they read EOF).
        self._thread_stop_r, self._thread_stop_w = os.pipe()
        os.set_blocking(self._thread_stop_r, False)
        self._supervisor: threading.Thread | None = None
        self._started = False

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
            self._start_workers()
        else:
            limiter = RateLimiter(self.config.ratelimit) if self.config.ratelimit.enabled else None
            for sock in self._udp:
                duty = UdpDuty(
                    self.view_provider,
                    self.metrics.block,
                    limiter,
                    self.config.max_udp,
                    qlog,
                    self.log,
                )
                self._thread(
                    f"enumer-udp-{sock.getsockname()[1]}",
                    _serve_udp,
                    sock,
                    duty,
                    self._thread_stop_r,
                )
        for lsock in self._tcp:
            self._thread(f"enumer-tcp-{lsock.getsockname()[1]}", self._accept_loop, lsock)

    def stop(self) -> None:
        """Stop workers, close every socket, join the threads."""
        self._stopping = True
        self._stop_event.set()
        if self._supervisor is not None:
            self._supervisor.join(10)
        self._retire(self._workers)
        self._workers = []
        if self._log_w >= 0:  # the log reader thread sees EOF once no worker holds it
            os.close(self._log_w)
            self._log_w = -1
        if self._thread_stop_w >= 0:
            os.close(self._thread_stop_w)
            self._thread_stop_w = -1
        for sock in (*self._udp, *self._tcp):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._conn_lock:
            conns = list(self._conns.items())
        for conn, _thread in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in (*self._threads, *(t for _c, t in conns)):
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

    # -- TCP ----------------------------------------------------------------
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
                try:
                    resp = respond(query, self.view_provider(), None)
                except Exception as exc:
                    block[ERRORS] += 1
                    self.log(f"error answering a TCP query: {exc!r}")
                    resp = servfail(query)
                if resp is None:
                    block[DROPPED] += 1
                    continue
                rcode = min(response_rcode(resp), NRCODES - 1)
                block[RCODE_BASE + rcode] += 1
                conn.settimeout(idle)
                conn.sendall(len(resp).to_bytes(2, "big") + resp)
                if self.config.query_log:
                    self.log(_log_line("tcp", addr, resp, rcode_name(rcode)))
        except OSError:
            pass
        finally:
            conn.close()
            with self._conn_lock:
                self._conns.pop(conn, None)

    # -- UDP worker processes -------------------------------------------------
    def _start_workers(self) -> None:
        r, w = os.pipe()
        os.set_blocking(w, False)
        self._log_w = w
        self._thread("enumer-worker-log", self._read_worker_log, r)
        # The supervisor thread forks every worker, the first ones included.
        ready = threading.Event()
        failure: list[BaseException] = []
        self._supervisor = threading.Thread(
            target=self._supervise, args=(ready, failure), name="enumer-workers", daemon=True
        )
        self._supervisor.start()
        ready.wait()
        if failure:
            self.stop()
            raise failure[0]

    def _read_worker_log(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as stream:
            for line in stream:
                self.log(line.decode("utf-8", "replace").rstrip("\n"))

    def _supervise(self, ready: threading.Event, failure: list[BaseException]) -> None:
        cfg = self.config
        try:
            self._refork(self.view_provider())
            if not self._workers:
                raise OSError("cannot start any UDP worker process")
        except BaseException as exc:
            failure.append(exc)
            return
        finally:
            ready.set()
        while not self._stop_event.wait(min(0.2, cfg.worker_refresh_interval)):
            try:
                self._reap()
                view = self.view_provider()
                stamp = (id(view), view.stamp())
                now = time.monotonic()
                age = now - self._worker_started
                stale = stamp != self._worker_stamp or age > cfg.worker_max_age
                missing = len(self._workers) < cfg.udp_workers
                if (stale or missing) and now - self._last_fork >= cfg.worker_refresh_interval:
                    self._refork(view)
            except Exception as exc:
                self.log(f"UDP worker supervisor: {exc!r}")

    def _refork(self, view: GatewayView) -> None:
        """Start a full set of workers on ``view``, then stop the previous ones."""
        stamp = (id(view), view.stamp())
        try:
            text = view.status()
        except Exception as exc:
            text = f"status unavailable: {exc!r}"
        self._last_fork = time.monotonic()
        old = self._workers
        new: list[_Worker] = []
        try:
            for _i in range(self.config.udp_workers):
                new.append(self._fork(view, text))
        except OSError as exc:  # keep serving with what we have; retried later
            self._workers = old + new
            self.log(f"cannot fork a UDP worker: {exc}")
            return
        self._workers = new
        self._worker_stamp = stamp
        self._worker_started = time.monotonic()
        self._retire(old)

    def _fork(self, view: GatewayView, status_text: str) -> _Worker:
        block = self.metrics.add_worker_block()
        stop_r, stop_w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(stop_r)
            os.close(stop_w)
            self.metrics.retire_worker_block(block)
            raise
        if pid:
            os.close(stop_r)
            return _Worker(pid, block, stop_w)
        # --- child: serve UDP until told to stop, never return ---
        code = 0
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            # Keep stdio, the log pipe, the stop pipe and the UDP sockets; close
            # every other descriptor (TCP listeners and connections, other
            # workers' stop pipes, other components' sockets) so that the
            # parent closing them really closes them.  The parent's death
            # closes the stop pipe: the worker exits with it.
            log_fd = self._log_w
            keep = sorted({log_fd, stop_r, *(sock.fileno() for sock in self._udp)})
            low = 3
            for fd in keep:
                if fd >= low:
                    os.closerange(low, fd)
                    low = fd + 1
            os.closerange(low, os.sysconf("SC_OPEN_MAX"))
            view.status = lambda: status_text

            def child_log(line: str) -> None:
                with contextlib.suppress(OSError):  # pipe full: drop the line
                    os.write(log_fd, (line.replace("\n", " ")[:3000] + "\n").encode())

            cfg = self.config
            limiter = (
                RateLimiter(cfg.ratelimit, scale=cfg.udp_workers) if cfg.ratelimit.enabled else None
            )
            qlog = child_log if cfg.query_log else None
            duty = UdpDuty(lambda: view, block, limiter, cfg.max_udp, qlog, child_log)
            _serve_udp_worker(self._udp, stop_r, duty)
        except BaseException as exc:
            code = 1
            # Say why in the parent's log: a worker that dies in silence is
            # only a restart loop to the operator.
            with contextlib.suppress(Exception):
                os.write(self._log_w, f"UDP worker {os.getpid()} failed: {exc!r}\n".encode())
        finally:
            os._exit(code)

    def _reap(self) -> None:
        for worker in list(self._workers):
            try:
                pid, status = os.waitpid(worker.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = worker.pid, 0
            if pid:
                self.log(f"UDP worker {worker.pid} exited (status {status}); restarting")
                self._workers.remove(worker)
                with contextlib.suppress(OSError):
                    os.close(worker.stop_w)
                self.metrics.retire_worker_block(worker.block)

    def _retire(self, workers: list[_Worker], grace: float = 3.0) -> None:
        """Ask workers to exit (they finish the packet at hand), SIGKILL after ``grace``."""
        for worker in workers:
            with contextlib.suppress(OSError):
                os.close(worker.stop_w)
        deadline = time.monotonic() + grace
        for worker in workers:
            try:
                while not os.waitpid(worker.pid, os.WNOHANG)[0]:
                    if time.monotonic() > deadline:
                        os.kill(worker.pid, signal.SIGKILL)
                        os.waitpid(worker.pid, 0)
                        break
                    time.sleep(0.005)
            except (ChildProcessError, ProcessLookupError):
                pass
            self.metrics.retire_worker_block(worker.block)
