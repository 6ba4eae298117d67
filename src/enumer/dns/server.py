"""Sockets of the ENUMER DNS gateway: UDP loops, a TCP listener (RFC 7766), worker processes.

The UDP hot path is a blocking ``recvfrom``/``respond``/``sendto`` loop per
socket and thread: raw bytes in, pre-built bytes out (``wire.respond``).

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
serves UDP in a thread and there is no fork at all.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
    GatewayView,
    rcode_name,
    respond,
    response_rcode,
    servfail,
    slip_response,
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


def _udp_packet(
    data: bytes,
    addr: tuple[str, int],
    sendto: Callable[[bytes, tuple[str, int]], int],
    provider: ViewProvider,
    block: memoryview,
    limiter: RateLimiter | None,
    max_udp: int,
    qlog: Log | None,
    errlog: Log,
) -> None:
    """Answer one UDP datagram: rate limits, ``respond``, counters, ``sendto``."""
    block[QUERIES_UDP] += 1
    ip = ""
    now = 0.0
    try:
        if limiter is not None:
            ip = addr[0]
            now = time.monotonic()
            if not limiter.allow_query(ip, now):
                block[RATELIMIT_DROPS] += 1
                return
        resp = respond(data, provider(), max_udp)
        if resp is None:
            block[DROPPED] += 1
            return
        if limiter is not None:
            verdict = limiter.check_response(ip, resp, now)
            if verdict:
                if verdict == DROP:
                    block[RATELIMIT_DROPS] += 1
                    return
                block[RATELIMIT_SLIPS] += 1
                resp = slip_response(resp)
    except Exception as exc:  # a bug: SERVFAIL, count, keep serving
        block[ERRORS] += 1
        if block[ERRORS] <= 10 or block[ERRORS] % 1000 == 0:
            errlog(f"error answering a UDP query: {exc!r}")
        failed = servfail(data)
        if failed is None:
            return
        resp = failed
    rcode = resp[3] & 0x0F
    if resp[11]:
        rcode = min(response_rcode(resp), NRCODES - 1)
    block[RCODE_BASE + rcode] += 1
    if resp[2] & 0x02:
        block[TRUNCATED] += 1
    try:
        sendto(resp, addr)
    except OSError:
        block[ERRORS] += 1
    if qlog is not None:
        qlog(_log_line("udp", addr, resp, rcode_name(rcode)))


def _serve_udp(
    sock: socket.socket,
    provider: ViewProvider,
    block: memoryview,
    limiter: RateLimiter | None,
    max_udp: int,
    qlog: Log | None,
    errlog: Log,
) -> None:
    """The UDP loop of a thread: until the socket is shut down (``recvfrom`` -> ``(b"", None)``)."""
    recvfrom = sock.recvfrom
    sendto = sock.sendto
    while True:
        try:
            data, addr = recvfrom(65535)
        except OSError as exc:
            if sock.fileno() < 0:
                return
            block[ERRORS] += 1
            errlog(f"UDP receive error: {exc}")
            time.sleep(0.01)
            continue
        if data:
            _udp_packet(data, addr, sendto, provider, block, limiter, max_udp, qlog, errlog)
        elif addr is None:
            return  # shut down by stop()
        else:
            block[DROPPED] += 1


def _serve_udp_worker(
    socks: list[socket.socket],
    stop_fd: int,
    provider: ViewProvider,
    block: memoryview,
    limiter: RateLimiter | None,
    max_udp: int,
    qlog: Log | None,
    errlog: Log,
) -> None:
    """The UDP loop of a worker process, on sockets shared with other workers.

    epoll (one waiter woken per packet) on the sockets and on ``stop_fd``;
    readable sockets are drained with non-blocking reads (``MSG_DONTWAIT``:
    the shared socket itself stays blocking), at most 64 packets at a time.
    The parent closes the other end of ``stop_fd`` to retire the worker: it
    then returns between two packets, so no datagram it took is lost.
    """
    ep = select.epoll()
    by_fd = {}
    for sock in socks:
        ep.register(sock.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
        by_fd[sock.fileno()] = (sock.recvfrom, sock.sendto)
    ep.register(stop_fd, select.EPOLLIN)
    dontwait = socket.MSG_DONTWAIT
    while True:
        for fd, _events in ep.poll():
            if fd == stop_fd:
                return
            recvfrom, sendto = by_fd[fd]
            for _i in range(64):
                try:
                    data, addr = recvfrom(65535, dontwait)
                except BlockingIOError:
                    break
                except OSError as exc:
                    block[ERRORS] += 1
                    errlog(f"UDP receive error: {exc}")
                    break
                if data:
                    _udp_packet(data, addr, sendto, provider, block, limiter, max_udp, qlog, errlog)
                else:
                    block[DROPPED] += 1


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
                self._thread(
                    f"enumer-udp-{sock.getsockname()[1]}",
                    _serve_udp,
                    sock,
                    self.view_provider,
                    self.metrics.block,
                    limiter,
                    self.config.max_udp,
                    qlog,
                    self.log,
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
            _serve_udp_worker(
                self._udp, stop_r, lambda: view, block, limiter, cfg.max_udp, qlog, child_log
            )
        except BaseException:
            code = 1
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
