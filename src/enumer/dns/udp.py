"""The gateway's UDP side: one loop per socket, raw bytes in, pre-built bytes out.

THE HOT PATH.  Almost every datagram a gateway gets is a PBX's (or its
resolver's) NAPTR query for one number, and the answer to it was built long
before it arrived (``table.py``); a loop here only moves bytes: read,
``wire.respond`` (or the C loop's own copy of its fast path), write.  Keep
this module that small: no storage, no cryptography, no allocation beyond
the reply, and every decision that can be taken before the packet arrives
taken then (the view, the rate limiter, the log are bound once per loop).

Where it can, a loop reads and answers 64 datagrams per system call
(``recvmmsg``/``sendmmsg``, :mod:`enumer.dns.mmsg`), and where the optional C
extension was built (``_fastloop.c``) the loop itself runs in C and answers
the common queries without Python; otherwise it is a blocking
``recvfrom``/``respond``/``sendto`` loop.

Four loops, chosen by what the machine offers and where they run:

* :func:`serve_udp`: a thread of the gateway process (``udp_workers`` 1),
  in C when built, following the tables as they change;
* :func:`serve_udp_worker`: a forked worker process (``workers.py``), on one
  socket blocked in ``recvmmsg`` itself, on several under epoll.

Every answer goes through :meth:`UdpDuty.answer` (rate limits, counters)
unless the C loop answered it.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from mmap import mmap
from typing import Any

from enumer.dns import mmsg
from enumer.dns.flat import FlatTable

try:  # the optional C build of the loop (setup.py); Python does the same without it
    from enumer.dns import _fastloop
except ImportError:  # pragma: no cover - depends on the machine that installed us
    _fastloop = None  # type: ignore[assignment]
from enumer.dns.metrics import (
    DROPPED,
    ERRORS,
    QUERIES_UDP,
    RATELIMIT_DROPS,
    RATELIMIT_SLIPS,
    RCODE_BASE,
    TRUNCATED,
)
from enumer.dns.ratelimit import DROP, RateLimiter
from enumer.dns.serving import Log, ViewProvider, log_line, rcode_of
from enumer.dns.signed import SignedZone
from enumer.dns.wire import (
    NXDOMAIN,
    SOA_POINTER_OFFSETS,
    FastAnswerSource,
    GatewayView,
    rcode_name,
    respond,
    servfail,
    slip_response,
    soa_template,
)

__all__ = [
    "STOP_CHECK_BATCHES",
    "STOP_CHECK_SECONDS",
    "UdpDuty",
    "serve_udp",
    "serve_udp_worker",
]


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
    #: Answers queries that carry TSIG (``ServerConfig.signed``); None: plain ``respond``.
    signed: Callable[[bytes, GatewayView, int | None], bytes | None] | None = None

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
            resp = None
            if self.signed is not None and data[10:12] != b"\x00\x00":
                resp = self.signed(data, view, self.max_udp)
            if resp is None:
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
        block[RCODE_BASE + rcode_of(resp)] += 1
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
            self.qlog(log_line("udp", addr, resp, rcode_name(rcode_of(resp))))

    def receive_error(self, exc: OSError) -> None:
        self.block[ERRORS] += 1
        self.errlog(f"UDP receive error: {exc}")


def serve_udp(sock: socket.socket, duty: UdpDuty, stop_fd: int) -> None:
    """The UDP loop of a thread, until the server stops.

    With the C loop built, it runs here too (following the tables as they
    change, see :func:`_serve_in_c`) and returns when ``stop_fd`` reaches
    EOF; should it fail, the thread goes on with the plain loop.  The plain
    loop returns when the socket is shut down (``recvfrom`` -> ``(b"", None)``).
    """
    if _fastloop is not None and mmsg.available():
        set_receive_timeout(sock)
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


def serve_udp_worker(socks: list[socket.socket], stop_fd: int, duty: UdpDuty) -> None:
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
    set_receive_timeout(sock)
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


def set_receive_timeout(sock: socket.socket) -> None:
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
    use_c = duty.qlog is None and (limiter is None or limiter.exempts_all_loopback())

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


def _c_zones(view: GatewayView) -> dict[bytes, tuple[Any, ...]]:
    """What the C loop answers from: per fast-path zone suffix whose source is a
    :class:`FastAnswerSource`, the answers (a dict, or the read-only mapping of a
    flat table file, which C reads in place), the digit cap, and the SOA for
    NXDOMAIN when the answers are complete."""
    zones: dict[bytes, tuple[Any, ...]] = {}
    for suffix, source, max_digits in view.fast_zones():
        if isinstance(source, FastAnswerSource):
            found = _c_map(source.fast_answers)
            if not isinstance(found, dict | mmap):
                continue  # another kind of mapping: Python answers from it
            complete = source.fast_answers_complete
            soa = soa_template(source.serial, view.negative_ttl) if complete else None
            signed = getattr(source, "dnssec", None)
            if isinstance(signed, SignedZone) and signed.origin == suffix:
                zones[suffix] = (found, max_digits, soa, _c_map(signed.entries))  # DO=1 too
            else:
                zones[suffix] = (found, max_digits, soa)
    return zones


def _c_map(answers: Mapping[bytes, bytes]) -> object:
    """What C reads a map from: a flat table's read-only mapping, or the map itself."""
    return answers.mapping if isinstance(answers, FlatTable) else answers


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
