"""The worker processes' UDP loops answer exactly what ``wire.respond`` answers.

Four loops serve UDP in worker processes, chosen by what the machine offers:
the C loop (``_fastloop.c``, which answers fast-path queries itself), the same
batched loop in Python, batched reads under epoll (several sockets), and the
plain ``recvfrom``/``sendto`` loop.  Each one is run here on real sockets and
every reply is compared byte for byte with ``respond`` on the same view.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.dns.test_server import MAIN, Running, Source, naptr_rr, running

from enumer.dns import mmsg, udp
from enumer.dns.dnssec import KeySet, generate, write_key
from enumer.dns.flat import FlatTable
from enumer.dns.metrics import DROPPED, QUERIES_UDP, RATELIMIT_DROPS, RCODE_BASE, Metrics
from enumer.dns.ratelimit import DEFAULT_EXEMPT, RateLimitConfig
from enumer.dns.signed import SignedZone
from enumer.dns.wire import EDNS_UDP_SIZE, GatewayView, ZoneSpec, respond


class FastSource(Source):
    """test_server's source (a one-NAPTR number and one over 512 bytes), plus a
    two-NAPTR number; it offers its dict to the C loop and answers some misses
    only in Python, like a toll-free list."""

    def __init__(self) -> None:
        super().__init__()
        two = naptr_rr(MAIN) + naptr_rr('100 20 "u" "E2U+pstn:tel" "!^(.*)$!tel:\\\\1!" .', 600)
        self.answers[b"4321"] = two

    fast_answers_complete = False

    @property
    def fast_answers(self) -> dict[bytes, bytes]:
        return self.answers

    def answer(self, key: bytes) -> bytes | None:
        found = self.answers.get(key)
        if found is None and key.startswith(b"800"):  # only Python knows these
            return naptr_rr(MAIN)
        return found


class CompleteSource(FastSource):
    """A source whose dict is every answer it has (an answer table without a
    toll-free list): the C loop answers its misses with NXDOMAIN itself."""

    fast_answers_complete = True

    def answer(self, key: bytes) -> bytes | None:
        return self.answers.get(key)


class MappedSource(CompleteSource):
    """The same answers in a flat table file (``enumer.dns.flat``), as the gateway's
    answer table keeps them: C reads the mapping in place, Python through ``get``."""

    def __init__(self, keys: int = 0) -> None:
        super().__init__()
        self.table = FlatTable.create(None, self.answers.items(), len(self.answers), keys=keys)

    @property
    def fast_answers(self) -> FlatTable:  # type: ignore[override]
        return self.table

    def answer(self, key: bytes) -> bytes | None:
        found: bytes | None = self.table.get(key)
        return found


def make_view(flat: MappedSource | None = None) -> GatewayView:
    return GatewayView(
        zones={
            "enum": (ZoneSpec("enum"), FastSource()),
            "short": (ZoneSpec("short", max_digits=6), FastSource()),
            "full": (ZoneSpec("full", max_digits=12), CompleteSource()),
            "wide": (ZoneSpec("wide", max_digits=64), CompleteSource()),
            "flat": (ZoneSpec("flat", max_digits=64), flat or MappedSource()),
        },
        negative_ttl=120,
    )


def wire_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\x00"


def query(
    name: str,
    qtype: int = 35,
    qclass: int = 1,
    flags: int = 0x0100,
    edns: bool = False,
    qid: int | None = None,
) -> bytes:
    qid = random.randrange(65536) if qid is None else qid
    header = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 1 if edns else 0)
    q = header + wire_name(name) + struct.pack(">HH", qtype, qclass)
    if edns:
        q += b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
    return q


CASES = [
    query("53995390081.enum"),  # a hit: the fast path
    query("53995390081.enum", flags=0x0000),  # RD off
    query("53995390081.enum", flags=0x0110),  # CD on
    query("53995390081.enum", flags=0x0010),
    query("4321.enum"),  # two RRs
    query("00009997771.enum"),  # answer over 512 bytes: truncated by the general path
    query("00009997771.enum", edns=True),  # fits with EDNS
    query("53995390081.enum", edns=True),
    query("5.3.9.9.5.3.9.0.0.8.1.enum"),  # dotted: general path
    query("53995390081.ENUM"),  # upper-case zone
    query("53995390081.enum", qtype=1),  # A: NODATA
    query("53995390081.enum", qclass=3),  # CH
    query("99999999999.enum"),  # miss: NXDOMAIN
    query("80012345.enum"),  # miss in the dict, answered by the source in Python
    query("53995390081.short"),  # over the zone's digit cap
    query("4321.short"),  # within it
    query("12a4.enum"),  # not digits
    query("enum"),  # the apex
    query("53995390081.other"),  # not ours: REFUSED
    query("53995390081.enum", flags=0x2900),  # opcode UPDATE
    # A complete zone: C answers hits and misses, compact and dotted.
    query("53995390081.full"),  # 20: a hit
    query("5.3.9.9.5.3.9.0.0.8.1.full"),  # dotted hit
    query("99999999999.full"),  # NXDOMAIN, SOA pointing at offset 25
    query("9.9.9.full", flags=0x0110),  # dotted NXDOMAIN (offset 18), RD and CD
    query("7.full"),  # one digit: both forms
    query("80012345.full"),  # no Python-only answers here: NXDOMAIN
    query("5.3.9.9.5.3.9.0.0.8.1.enum.full"),  # not a number of "full"
    query("5.39.9.full"),  # mixed labels: the general path
    query("1234567890123.full"),  # over the digit cap: the general path
    query("1.2.3.4.5.6.7.8.9.0.1.2.3.full"),  # dotted, over the cap
    query("00009997771.full"),  # answer over 512 bytes: truncated by the general path
    query("99999999999.full", edns=True),  # EDNS: the general path
    query("99999999999.FULL"),  # upper case: the general path
    query("99999999999.full", qtype=6),  # SOA type
    query("4.3.2.1.full"),  # dotted, two RRs
    query("1" * 64 + ".wide"),  # a "label" of 64 bytes: FORMERR from the general path
    # A complete zone whose answers are a mapped flat table: C looks them up in place.
    query("53995390081.flat"),  # 36: a hit
    query("4.3.2.1.flat"),  # dotted, two RRs
    query("99999999999.flat"),  # NXDOMAIN with the SOA
    query("00009997771.flat"),  # over 512 bytes: the general path truncates
    query("53995390081.flat", edns=True),  # EDNS: the general path
]


def replies(port: int, packets: list[bytes], timeout: float = 2.0) -> list[bytes | None]:
    out: list[bytes | None] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        for packet in packets:
            sock.sendto(packet, ("127.0.0.1", port))
            try:
                out.append(sock.recv(65535))
            except TimeoutError:
                out.append(None)
    return out


LOOPS = ["c", "c-thread", "python-batch", "epoll", "plain"]


@pytest.fixture(params=LOOPS)
def loop_server(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Running]:
    kind = request.param
    binds = [("127.0.0.1", 0)]
    workers = 2
    if kind.startswith("c"):
        if udp._fastloop is None:
            pytest.fail("the C loop is not built (setup.py; needs a C compiler)")
        if kind == "c-thread":
            workers = 1  # a thread of the server's own process
    elif kind == "python-batch":
        monkeypatch.setattr(udp, "_fastloop", None)
    elif kind == "epoll":
        binds.append(("127.0.0.1", 0))  # two sockets: epoll over batched drains
    else:
        monkeypatch.setenv("ENUMER_NO_MMSG", "1")
    view = make_view()
    with running(view, udp_workers=workers, tcp=False, binds=binds) as r:
        yield r


def test_every_loop_answers_like_respond(loop_server: Running) -> None:
    view = make_view()
    got = replies(loop_server.port, CASES)
    for packet, reply in zip(CASES, got, strict=True):
        assert reply == respond(packet, view, EDNS_UDP_SIZE), packet

    def rcode_and_answers(reply: bytes | None) -> tuple[int, int]:
        assert reply is not None
        return reply[3] & 0x0F, int.from_bytes(reply[6:8], "big")

    assert rcode_and_answers(got[0]) == (0, 1)  # the fast path
    assert rcode_and_answers(got[4]) == (0, 2)
    assert got[5] is not None and got[5][2] & 0x02  # truncated over plain UDP
    assert rcode_and_answers(got[6]) == (0, 12)
    assert rcode_and_answers(got[13]) == (0, 1)  # a dict miss that Python answers
    assert rcode_and_answers(got[12]) == (3, 0)  # NXDOMAIN
    assert rcode_and_answers(got[14])[1] == 0  # over the digit cap
    assert rcode_and_answers(got[15]) == (0, 2)
    assert rcode_and_answers(got[20]) == rcode_and_answers(got[21]) == (0, 1)
    assert rcode_and_answers(got[22]) == (3, 0) == rcode_and_answers(got[25])
    assert rcode_and_answers(got[34]) == (0, 2)
    assert rcode_and_answers(got[35]) == (1, 0)
    assert rcode_and_answers(got[36]) == (0, 1)
    assert rcode_and_answers(got[37]) == (0, 2)
    assert rcode_and_answers(got[38]) == (3, 0)


def test_the_c_loop_answers_the_common_queries_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """With Python unable to answer, C still answers hits (compact and dotted, in
    any zone with a dict) and the misses of a complete zone; a miss that a
    toll-free list might answer, EDNS or an answer over 512 bytes gets nothing."""
    if udp._fastloop is None:
        pytest.fail("the C loop is not built (setup.py; needs a C compiler)")

    class Mute(udp.UdpDuty):
        def answer(self, *args: object, **kwargs: object) -> bytes | None:
            return None

    monkeypatch.setattr(udp, "UdpDuty", Mute)
    handled_in_c = [CASES[i] for i in (0, 4, 8, 20, 21, 22, 23, 24, 25, 34, 36, 37, 38)]
    for_python = [CASES[i] for i in (12, 13, 30, 31, 39, 40)]
    with running(make_view(), udp_workers=2, tcp=False) as r:
        queries = r.metrics.value(QUERIES_UDP)
        nxdomain = r.metrics.value(RCODE_BASE + 3)
        got = replies(r.port, handled_in_c + for_python, timeout=0.5)
        assert r.metrics.value(QUERIES_UDP) - queries == len(handled_in_c)
        assert r.metrics.value(RCODE_BASE + 3) - nxdomain == 5
    view = make_view()
    assert got[: len(handled_in_c)] == [respond(p, view, EDNS_UDP_SIZE) for p in handled_in_c]
    assert got[len(handled_in_c) :] == [None] * len(for_python)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_c_loop_in_a_thread_follows_the_tables(workers: int) -> None:
    """In a thread (``udp_workers`` 1) C gets fresh zones when the tables change;
    workers are re-forked instead.  Either way a change shows within a second."""
    if udp._fastloop is None:
        pytest.fail("the C loop is not built (setup.py; needs a C compiler)")
    view = make_view()
    full = view.zones["full"][1]
    assert isinstance(full, CompleteSource)
    hit, miss = query("53995390081.full"), query("12345.full")

    def settled(predicate: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + 5.0  # ends at once when it holds; slack for ASan and load
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return False

    with running(view, udp_workers=workers, tcp=False, worker_refresh_interval=0.1) as r:
        assert replies(r.port, [miss])[0] == respond(miss, view, EDNS_UDP_SIZE)
        # A new table (as a rebuild makes): new dict, new generation and serial.
        full.answers = {**full.answers, b"12345": naptr_rr(MAIN)}
        full.generation += 1
        full.serial += 1
        assert settled(lambda: replies(r.port, [miss])[0] == respond(miss, view, EDNS_UDP_SIZE))
        assert respond(miss, view, EDNS_UDP_SIZE)[7] == 1  # type: ignore[index]
        # A new serial alone changes the SOA of negative answers.
        full.serial += 1
        gone = query("54321.full")
        assert settled(lambda: replies(r.port, [gone])[0] == respond(gone, view, EDNS_UDP_SIZE))
        assert replies(r.port, [hit])[0] == respond(hit, view, EDNS_UDP_SIZE)


def test_every_loop_survives_mutated_packets(loop_server: Running) -> None:
    """Random byte flips of real queries: same reply as respond(), or silence for both."""
    view = make_view()
    rng = random.Random(1234)
    packets = []
    for _ in range(150):
        packet = bytearray(rng.choice(CASES))
        for _flip in range(rng.randint(1, 3)):
            packet[rng.randrange(len(packet))] = rng.randrange(256)
        if rng.random() < 0.2:
            packet = packet[: rng.randrange(len(packet))]
        packets.append(bytes(packet))
    expected = [respond(p, view, EDNS_UDP_SIZE) for p in packets]
    answered = [p for p, e in zip(packets, expected, strict=True) if e is not None]
    got = replies(loop_server.port, answered)
    assert got == [e for e in expected if e is not None]
    # and the silent ones stay silent, without harming the worker
    silent = [p for p, e in zip(packets, expected, strict=True) if e is None][:5]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        for packet in silent:
            sock.sendto(packet, ("127.0.0.1", loop_server.port))
            with pytest.raises(TimeoutError):
                sock.recv(65535)
    assert replies(loop_server.port, CASES[:1])[0] is not None


def test_fast_path_queries_are_counted(loop_server: Running) -> None:
    before = loop_server.metrics.value(QUERIES_UDP)
    noerror = loop_server.metrics.value(RCODE_BASE)
    got = replies(loop_server.port, [CASES[0]] * 20 + [CASES[12]])
    assert all(got)
    assert loop_server.metrics.value(QUERIES_UDP) - before == 21
    assert loop_server.metrics.value(RCODE_BASE) - noerror == 20


def test_oversized_datagrams(loop_server: Running) -> None:
    """Longer than a batch slot: the batched loops drop it (counted); the plain one
    reads 64 KiB and answers whatever ``respond`` says."""
    packet = CASES[0] + b"\x00" * (mmsg.SLOT + 100)
    dropped = loop_server.metrics.value(DROPPED)
    reply = replies(loop_server.port, [packet])[0]
    if reply is None:
        assert loop_server.metrics.value(DROPPED) == dropped + 1
    else:
        assert reply == respond(packet, make_view(), EDNS_UDP_SIZE)
    assert replies(loop_server.port, CASES[:1])[0] is not None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="recvmmsg is Linux only")
def test_c_loop_is_built_where_a_compiler_is() -> None:
    """CI machines have gcc: the optional extension must have been built there."""
    if shutil.which("cc") or shutil.which("gcc"):
        assert udp._fastloop is not None
    assert mmsg.available()


@pytest.mark.parametrize("exempt", [True, False])
def test_rate_limits_hold_in_worker_loops(exempt: bool) -> None:
    """With a rate limiter the C loop answers only loopback clients that the limiter
    exempts; a loopback client that is not exempt is limited like any other."""
    config = RateLimitConfig(
        enabled=True, qps_per_client=1, burst=3, rrl_responses_per_second=1000, slip=0,
        exempt=DEFAULT_EXEMPT if exempt else (),
    )  # fmt: skip
    with running(make_view(), udp_workers=2, tcp=False, ratelimit=config) as r:
        answered = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.5)
            for _ in range(30):
                sock.sendto(CASES[0], ("127.0.0.1", r.port))
            with contextlib.suppress(TimeoutError):
                while True:
                    answered.append(sock.recv(65535))
        if exempt:
            assert len(answered) == 30
            assert answered[0] == respond(CASES[0], make_view(), EDNS_UDP_SIZE)
            assert r.metrics.value(RATELIMIT_DROPS) == 0
        else:  # burst 3, scaled over 2 workers: a handful at most
            assert 1 <= len(answered) <= 6
            assert r.metrics.value(RATELIMIT_DROPS) >= 24


def test_a_failing_worker_says_why_in_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("worker cannot start")

    monkeypatch.setattr(udp, "serve_udp_worker", broken)
    with running(make_view(), udp_workers=2, tcp=False) as r:
        deadline = time.monotonic() + 10
        while not any("worker cannot start" in line for line in r.lines):
            assert time.monotonic() < deadline, r.lines
            time.sleep(0.05)
    line = next(line for line in r.lines if "worker cannot start" in line)
    assert "failed: RuntimeError('worker cannot start')" in line


@pytest.fixture(scope="module")
def c_thread_server() -> Iterator[Running]:
    if udp._fastloop is None:
        pytest.fail("the C loop is not built (setup.py; needs a C compiler)")
    with running(make_view(), udp_workers=1, tcp=False) as r:
        yield r


_KNOWN = ["53995390081", "4321", "00009997771", "80012345"]
_numbers = st.one_of(
    st.sampled_from(_KNOWN),
    st.text(alphabet="0123456789", min_size=1, max_size=16),
    st.text(alphabet="0123456789", min_size=60, max_size=66),
)


@st.composite
def _queries(draw: st.DrawFn) -> bytes:
    """Well-formed queries around what the C loop answers: numbers known and
    not, compact, dotted or split in other ways, every zone and some that are
    not ours, case, flags, types and EDNS."""
    digits = draw(_numbers)
    form = draw(st.sampled_from(["compact", "dotted", "split"]))
    if form == "compact":
        labels = [digits]
    elif form == "dotted":
        labels = list(digits)
    else:
        cut = draw(st.integers(1, len(digits)))
        labels = [digits[:cut], digits[cut:]] if cut < len(digits) else [digits]
    zone = draw(st.sampled_from(["enum", "short", "full", "wide", "flat", "FULL", "Enum", "other"]))
    flags = draw(st.sampled_from([0x0000, 0x0100, 0x0110, 0x0010, 0x0900]))
    qtype = draw(st.sampled_from([35, 35, 35, 1, 6, 255]))
    edns = draw(st.booleans())
    qid = draw(st.integers(0, 0xFFFF))
    return query(".".join([*labels, zone]), qtype=qtype, flags=flags, edns=edns, qid=qid)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(packet=_queries())
def test_the_c_loop_answers_generated_queries_like_respond(
    c_thread_server: Running, packet: bytes
) -> None:
    assert replies(c_thread_server.port, [packet]) == [respond(packet, make_view(), EDNS_UDP_SIZE)]


def test_the_c_loop_checks_label_lengths_itself() -> None:
    """Given a digit cap over 63 (a caller's mistake), C still does not take a 64-byte
    "label" (which is not one) for digits: Python gets the datagram."""
    if udp._fastloop is None:
        pytest.fail("the C loop is not built (setup.py; needs a C compiler)")
    d63, d64 = b"1" * 63, b"1" * 64
    zones = {b"\x04wide\x00": ({d63: naptr_rr(MAIN), d64: naptr_rr(MAIN)}, 100, None)}
    to_python: list[bytes] = []

    def fallback(data: bytes, sender: bytes) -> bytes | None:
        to_python.append(data)
        return None

    block = Metrics.new_block()
    stop_r, stop_w = os.pipe()
    os.set_blocking(stop_r, False)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        udp.set_receive_timeout(sock)
        args = (sock.fileno(), stop_r, zones, fallback, block, (0, 16, 19, 6, 4))
        loop = threading.Thread(
            target=udp._fastloop.serve, args=(*args, 256, 0.2, False, (0, 0, 0), None)
        )
        loop.start()
        try:
            long_label = query(d64.decode() + ".wide")
            answered = replies(sock.getsockname()[1], [query(d63.decode() + ".wide"), long_label])
        finally:
            os.close(stop_w)
            loop.join(5)
            os.close(stop_r)
    assert answered[0] is not None and answered[0][7] == 1  # 63 digits: C answers
    assert answered[1] is None and to_python == [long_label]


# -- the mapped flat table: in-place changes and new generations, followed by every loop


def _rrs(draw: st.DrawFn) -> bytes:
    """One to nine NAPTR RRs (some answers then exceed 512 bytes: Python's)."""
    n = draw(st.integers(1, 9))
    texts = [
        f'{draw(st.integers(0, 65535))} 10 "u" "E2U+sip" '
        f'"!^.*$!sip:{draw(st.text("abcdefgh", min_size=1, max_size=40))}@example.com!" .'
        for _ in range(n)
    ]
    return b"".join(naptr_rr(t, draw(st.integers(0, 86400))) for t in texts)


@st.composite
def _changes(draw: st.DrawFn) -> list[tuple[bytes, bytes | None]]:
    """Puts (an answer) and deletes (None) of numbers, old and new."""
    keys = st.one_of(
        st.sampled_from([b"53995390081", b"4321", b"1"]),
        st.text("0123456789", min_size=1, max_size=64).map(str.encode),
    )
    return [
        (draw(keys), None if draw(st.integers(0, 3)) == 0 else _rrs(draw))
        for _ in range(draw(st.integers(1, 6)))
    ]


@pytest.fixture(scope="module")
def flat_servers() -> Iterator[tuple[MappedSource, list[Running]]]:
    """One mapped source served by the C loop in a thread and in two workers."""
    if udp._fastloop is None:
        pytest.fail("the C loop is not built (setup.py; needs a C compiler)")
    source = MappedSource(keys=1000)  # room for every change the examples make
    view = make_view(source)
    with (
        running(view, udp_workers=1, tcp=False) as thread,
        running(view, udp_workers=2, tcp=False, worker_refresh_interval=0.1) as workers,
    ):
        yield source, [thread, workers]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(changes=_changes())
def test_the_c_loop_serves_a_mapped_table_changed_in_place_like_respond(
    flat_servers: tuple[MappedSource, list[Running]],
    changes: list[tuple[bytes, bytes | None]],
) -> None:
    """Changes written into the mapping are what the next query gets from the loop in a
    thread (C reads the mapping, Python's response cache goes with the generation), and,
    once re-forked on the new generation (within a second), from the workers: byte for
    byte what ``respond`` answers from the same table."""
    source, (thread, workers) = flat_servers
    for key, rrs in changes:
        if rrs is None:
            source.table.delete(key)
        else:
            source.table.put(key, rrs)
    source.table.commit(1, 1)
    source.generation += 1
    view = make_view(source)
    packets = [query(k.decode() + ".flat") for k, _ in changes]
    packets += [query(".".join(k.decode()) + ".flat") for k, _ in changes if len(k) < 40]
    want = [respond(p, view, EDNS_UDP_SIZE) for p in packets]
    assert replies(thread.port, packets) == want
    # Until the workers forked before the change have exited, one of them may still
    # take a query (its Python path answers from the response cache of the generation
    # it was forked at): wait until all workers serve this generation, then ask.
    deadline = time.monotonic() + 10.0
    now = view.stamp()  # the fixture's view has the same sources' stamps
    while workers.server.workers_settled_on != now and time.monotonic() < deadline:
        time.sleep(0.02)
    assert workers.server.workers_settled_on == now
    assert replies(workers.port, packets) == want


def test_the_c_loop_follows_new_generations_of_a_mapped_table() -> None:
    """A compaction writes a new file: workers are re-forked on it, a thread takes it
    at its next look; meanwhile the old mapping keeps serving its last answers."""
    if udp._fastloop is None:
        pytest.fail("the C loop is not built (setup.py; needs a C compiler)")
    source = MappedSource()
    view = make_view(source)
    hit, new = query("53995390081.flat"), query("12345.flat")
    with (
        running(view, udp_workers=1, tcp=False) as thread,
        running(view, udp_workers=2, tcp=False, worker_refresh_interval=0.1) as workers,
    ):
        for generation in range(3):
            old = source.table
            source.table = old.compacted()  # a new generation, as when room runs out
            source.table.put(b"12345", naptr_rr(MAIN, 60 + generation))
            source.table.commit(2, 2)
            source.generation += 1
            assert old.get(b"12345") != source.table.get(b"12345")
            expected = [respond(new, view, EDNS_UDP_SIZE), respond(hit, view, 1232)]
            for server in (thread, workers):
                # Forked workers move to the new generation one at a time, and either
                # may answer a query: done when ten probes in a row get the new bytes.
                deadline = time.monotonic() + 10.0
                streak = 0
                while streak < 10:
                    assert time.monotonic() < deadline, (generation, server)
                    streak = streak + 1 if replies(server.port, [new, hit]) == expected else 0
                    time.sleep(0.02)


# -- DNSSEC: DO=1 hits of a signed zone are answered in C too -------------------------


class SignedSource(CompleteSource):
    """A complete zone signed with a key (``enumer.dns.signed``): C answers DO=1 hits
    from its entries, Python everything else signed (denials, truncation)."""

    def __init__(self, keys: Path) -> None:
        super().__init__()
        self.answers[b"4321"] = naptr_rr(MAIN)
        self.dnssec = SignedZone(KeySet.load(keys))
        self.dnssec.sign_all(self.answers, workers=1)
        self.dnssec.presign_soa(self.serial)  # as the table does: not in each worker


def do_query(
    name: str,
    qtype: int = 35,
    flags: int = 0x0100,
    size: int = 1232,
    opt_flags: int = 0x8000,
    version: int = 0,
    options: bytes = b"",
) -> bytes:
    header = struct.pack(">HHHHHH", random.randrange(65536), flags, 1, 0, 0, 1)
    opt = struct.pack(">BHHBBHH", 0, 41, size, 0, version, opt_flags, len(options)) + options
    return header + wire_name(name) + struct.pack(">HH", qtype, 1) + opt


DO_CASES = [
    do_query("5.3.9.9.5.3.9.0.0.8.1.enum"),  # 0: a DO=1 hit, dotted: C
    do_query("4.3.2.1.enum"),  # 1: another hit: C
    do_query("4.3.2.1.enum", flags=0x0010),  # 2: RD off, CD on: C
    do_query("5.3.9.9.5.3.9.0.0.8.1.enum", size=512),  # 3: still fits 512: C
    do_query("0.0.0.0.9.9.9.7.7.7.1.enum"),  # 4: over 1232 signed: Python truncates
    do_query("9.9.9.enum"),  # 5: NXDOMAIN with NSECs: Python
    do_query("4.3.2.1.enum", qtype=16),  # 6: NODATA: Python
    do_query("53995390081.enum"),  # 7: compact: Python, unsigned
    do_query("4.3.2.1.ENUM"),  # 8: upper case: Python
    do_query("4.3.2.1.enum", opt_flags=0),  # 9: EDNS without DO: Python
    do_query("4.3.2.1.enum", version=1),  # 10: BADVERS: Python
    do_query("4.3.2.1.enum", options=b"\x00\x0a\x00\x08" + bytes(8)),  # 11: a cookie: Python
    query("4.3.2.1.enum"),  # 12: no EDNS: C, unsigned
]


@pytest.fixture
def signed_keys(tmp_path: Path) -> Path:
    write_key(generate("enum"), tmp_path / "keys")
    return tmp_path / "keys"


def signed_view(keys: Path) -> GatewayView:
    return GatewayView(zones={"enum": (ZoneSpec("enum"), SignedSource(keys))}, negative_ttl=120)


@pytest.mark.parametrize("kind", ["c", "c-thread", "python-batch"])
def test_do_queries_of_a_signed_zone_are_answered_like_respond(
    kind: str, signed_keys: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if kind != "python-batch" and udp._fastloop is None:
        pytest.fail("the C loop is not built (setup.py; needs a C compiler)")
    if kind == "python-batch":
        monkeypatch.setattr(udp, "_fastloop", None)
    view = signed_view(signed_keys)
    with running(view, udp_workers=1 if kind == "c-thread" else 2, tcp=False) as r:
        got = replies(r.port, DO_CASES)
    for packet, reply in zip(DO_CASES, got, strict=True):
        assert reply == respond(packet, view, EDNS_UDP_SIZE), packet
    assert all(reply is not None for reply in got)
    assert (
        got[0] is not None
        and got[0][7] == 2
        and got[0][-11:] == bytes.fromhex("00002904d0000080000000")
    )  # NAPTR + RRSIG, our OPT with DO
    assert got[4] is not None and got[4][2] & 0x02  # TC


@pytest.mark.parametrize("entries", ["flat table", "dict"])
def test_the_c_loop_answers_do_hits_itself(
    entries: str, signed_keys: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the signed entries' mapped file (as signed) or from a dict of them."""
    if udp._fastloop is None:
        pytest.fail("the C loop is not built (setup.py; needs a C compiler)")

    class Mute(udp.UdpDuty):
        def answer(self, *args: object, **kwargs: object) -> bytes | None:
            return None

    monkeypatch.setattr(udp, "UdpDuty", Mute)
    in_c = [DO_CASES[i] for i in (0, 1, 2, 3, 12)]
    for_python = [DO_CASES[i] for i in (4, 5, 6, 7, 8, 9, 10, 11)]
    view = signed_view(signed_keys)
    signed = view.zones["enum"][1].dnssec  # type: ignore[attr-defined]
    assert isinstance(signed.entries, FlatTable)
    if entries == "dict":
        signed.entries = dict(signed.entries.items())
    with running(view, udp_workers=2, tcp=False) as r:
        got = replies(r.port, in_c + for_python, timeout=0.5)
    assert got[: len(in_c)] == [respond(p, view, EDNS_UDP_SIZE) for p in in_c]
    assert got[len(in_c) :] == [None] * len(for_python)
