"""Issue 18's gateway defects, each on real sockets: TCP that survives a failed
connection set-up (1), a bounded ``/metrics`` (6), per-client TCP limits and an
idle timeout that shortens as the table fills (8), and a rate limiter that can
be tested and used from loopback (9).

Distinct loopback addresses (127.0.0.0/8 is all loopback on Linux) stand for
distinct clients: 127.0.1.x and 127.0.2.x are other /24 networks than 127.0.0.x.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
from tests.dns.test_serve import ask
from tests.dns.test_server import closed_by_peer, read_tcp_message, running
from tests.support import ENUMER, start_gateway, stop

from enumer.dns import tcp
from enumer.dns.metrics import (
    METRICS_REJECTED,
    QUERIES_TCP,
    RATELIMIT_DROPS,
    RATELIMIT_SLIPS,
    TCP_REJECTED,
    TCP_SHED,
    Metrics,
    serve_metrics,
)
from enumer.dns.ratelimit import RateLimitConfig, RateLimiter

HIT = "53995390081.enum"
BIG = "00009997771.enum"  # 12 NAPTRs: over 512 bytes


def connect_from(port: int, source: str, timeout: float = 3.0) -> socket.socket:
    return socket.create_connection(
        ("127.0.0.1", port), timeout=timeout, source_address=(source, 0)
    )


def tcp_query(sock: socket.socket, name: str = HIT) -> dns.message.Message:
    wire = dns.message.make_query(name, "NAPTR").to_wire()
    sock.sendall(struct.pack(">H", len(wire)) + wire)
    return read_tcp_message(sock)


def udp_from(source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    return sock


# --- 1: a failed connection set-up never ends TCP ------------------------------------


def test_tcp_answers_after_a_thread_cannot_be_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``RuntimeError: can't start new thread`` (a pids limit, a memory limit) while a
    connection comes in used to end the accept loop for good: TCP never answered again."""
    with running() as r:
        real_start = threading.Thread.start
        failed: list[str] = []

        def start_once(self: threading.Thread) -> None:
            if not failed:
                failed.append(self.name)
                raise RuntimeError("can't start new thread")
            real_start(self)

        monkeypatch.setattr(threading.Thread, "start", start_once)
        for _ in range(3):
            assert r.tcp(HIT).rcode() == dns.rcode.NOERROR
        monkeypatch.undo()
        assert r.udp(HIT).rcode() == dns.rcode.NOERROR


def test_a_connection_that_cannot_be_set_up_is_shed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any failure while taking on one connection closes that connection (the newest),
    counts it and says so in one log line; the listener goes on."""
    with running() as r:
        real = tcp.Connection
        failures = 0

        def failing_twice(*args: object) -> tcp.Connection:
            nonlocal failures
            if failures < 2:
                failures += 1
                raise RuntimeError("no memory for this one")
            return real(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(tcp, "Connection", failing_twice)
        for _ in range(2):
            with connect_from(r.port, "127.0.0.1") as sock:
                assert closed_by_peer(sock)
        assert r.tcp(HIT).rcode() == dns.rcode.NOERROR
        assert r.metrics.value(TCP_SHED) == 2
        shed_lines = [line for line in r.lines if "shed" in line]
        assert len(shed_lines) == 1, r.lines
        assert "no memory for this one" in shed_lines[0]


def test_out_of_descriptors_sheds_the_newest_connection() -> None:
    """EMFILE on accept: the newest connection is accepted on a reserved descriptor and
    closed at once (not left in the backlog to spin on), and serving goes on."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with running(tcp_idle_timeout=5.0) as r:
        held: list[socket.socket] = []
        try:
            with connect_from(r.port, "127.0.0.1") as probe:
                assert tcp_query(probe).rcode() == dns.rcode.NOERROR
            # Connections until the process runs out of descriptors: the client
            # ends and the server ends share the limit (one process).
            in_use = len(os.listdir("/proc/self/fd"))
            resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 12, hard))
            with contextlib.suppress(OSError):
                for _ in range(40):
                    held.append(connect_from(r.port, "127.0.0.1"))
            deadline = time.monotonic() + 3
            while r.metrics.value(TCP_SHED) == 0:
                assert time.monotonic() < deadline, r.lines
                time.sleep(0.05)
        finally:
            for sock in held:
                sock.close()
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        time.sleep(0.2)
        assert r.tcp(HIT).rcode() == dns.rcode.NOERROR
        assert any("shed" in line for line in r.lines)


# --- 6: /metrics is bounded ------------------------------------------------------------


def scrape(address: tuple[str, int]) -> str:
    host, port = address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=3) as resp:
        return str(resp.read().decode())


def test_metrics_connections_are_capped_and_time_out() -> None:
    """Idle connections to ``/metrics`` used to hold a thread each for ever."""
    metrics = Metrics()
    endpoint = serve_metrics("127.0.0.1", 0, metrics, max_clients=4, idle_timeout=0.5)
    try:
        idle = [socket.create_connection(endpoint.address, timeout=3) for _ in range(10)]
        try:
            time.sleep(0.2)
            serving = [t for t in threading.enumerate() if "process_request" in t.name]
            assert 1 <= len(serving) <= 4
            start = time.monotonic()
            assert all(closed_by_peer(sock, 4.0) for sock in idle)
            assert time.monotonic() - start < 5.0  # the idle timeout (0.5 s), not ours
        finally:
            for sock in idle:
                sock.close()
        assert metrics.value(METRICS_REJECTED) >= 1  # turned away, not queued
        assert "enumer_metrics_rejected_total" in scrape(endpoint.address)
    finally:
        endpoint()


def test_a_scrape_gets_through_slow_senders(capfd: pytest.CaptureFixture[str]) -> None:
    """Connections that trickle their request (a byte now and then, never idle for a
    whole timeout) fill the table; a scrape then closes those open longer than the
    timeout instead of being turned away for as long as they keep trickling (and the
    handlers cut off that way print no traceback)."""
    metrics = Metrics()
    endpoint = serve_metrics("127.0.0.1", 0, metrics, max_clients=3, idle_timeout=0.6)
    slow = [socket.create_connection(endpoint.address, timeout=3) for _ in range(3)]
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            for sock in slow:
                sock.sendall(b"G")
            time.sleep(0.2)
        assert "enumer_dns_queries_total" in scrape(endpoint.address)
        assert all(closed_by_peer(sock, 1.0) for sock in slow)
        assert metrics.value(METRICS_REJECTED) == 3
    finally:
        for sock in slow:
            sock.close()
        endpoint()
    assert "Traceback" not in capfd.readouterr().err


# --- 8: one client cannot take all TCP ----------------------------------------------------


def test_one_network_cannot_take_every_tcp_connection() -> None:
    exempt_none = RateLimitConfig(exempt=())
    with running(max_tcp_clients=8, max_tcp_per_client=3, ratelimit=exempt_none) as r:
        hog: list[socket.socket] = []
        try:
            for i in range(8):
                hog.append(connect_from(r.port, f"127.0.0.{10 + i}"))  # one /24
            time.sleep(0.2)
            served = 0
            for sock in hog:
                with contextlib.suppress(OSError, EOFError):
                    tcp_query(sock)
                    served += 1
            assert served == 3
            assert r.metrics.value(TCP_REJECTED) == 5
            # Another network still gets in, and is answered.
            for source in ("127.0.1.5", "127.0.2.5"):
                with connect_from(r.port, source) as other:
                    assert tcp_query(other).rcode() == dns.rcode.NOERROR
        finally:
            for sock in hog:
                sock.close()


def test_exempt_clients_have_no_per_client_limit() -> None:
    """A resolver on the same machine (loopback is exempt by default) may open as many
    connections as the table holds."""
    with running(max_tcp_clients=8, max_tcp_per_client=2) as r:
        socks = [connect_from(r.port, "127.0.0.1") for _ in range(5)]
        try:
            assert all(tcp_query(s).rcode() == dns.rcode.NOERROR for s in socks)
        finally:
            for sock in socks:
                sock.close()


def test_idle_timeout_shortens_as_the_table_fills() -> None:
    """RFC 7766 section 6.2: the fuller the table, the sooner idle connections go."""
    exempt_none = RateLimitConfig(exempt=())
    with running(max_tcp_clients=4, tcp_idle_timeout=8.0, ratelimit=exempt_none) as r:
        with connect_from(r.port, "127.0.1.1") as lone:
            assert not closed_by_peer(lone, 2.0)  # a quarter full: the full 8 s
            assert tcp_query(lone).rcode() == dns.rcode.NOERROR
        time.sleep(0.2)
        crowd = [connect_from(r.port, f"127.0.{2 + i}.1") for i in range(4)]
        try:
            start = time.monotonic()
            assert all(closed_by_peer(sock, 4.0) for sock in crowd)
            assert time.monotonic() - start < 4.0  # full: a tenth of it, 0.8 s
        finally:
            for sock in crowd:
                sock.close()
        assert r.tcp(HIT).rcode() == dns.rcode.NOERROR


def test_tcp_connection_limits_meet_rfc_7766_defaults() -> None:
    """The defaults: 256 connections in all, 32 per client network, 10 s idle."""
    with running() as r:
        config = r.server.config
        assert (config.max_tcp_clients, config.max_tcp_per_client) == (256, 32)
        assert config.tcp_idle_timeout == 10.0


# --- 9: the rate limiter from loopback ------------------------------------------------


def blast_from(source: str, port: int, packets: list[bytes], pace: float = 0.0) -> list[bytes]:
    """Send every packet from ``source``, then collect what comes back."""
    got: list[bytes] = []
    with udp_from(source) as sock:
        sock.setblocking(False)
        for packet in packets:
            sock.sendto(packet, ("127.0.0.1", port))
            if pace:
                time.sleep(pace)
                with contextlib.suppress(BlockingIOError):
                    while True:
                        got.append(sock.recv(65535))
        sock.settimeout(0.5)
        with contextlib.suppress(TimeoutError):
            while True:
                got.append(sock.recv(65535))
    return got


def misses(n: int, base: int = 70000000000) -> list[bytes]:
    return [dns.message.make_query(f"{base + i}.enum", "NAPTR").to_wire() for i in range(n)]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_pbx_resolver_dialling_missing_numbers_loses_nothing(workers: int) -> None:
    """30 numbers without records a second from one site's resolver, for 2 s, with the
    default limits: every NXDOMAIN is sent, none slipped."""
    limits = RateLimitConfig(enabled=True, exempt=())
    with running(ratelimit=limits, udp_workers=workers, tcp=False) as r:
        got = blast_from("127.0.0.20", r.port, misses(60), pace=1 / 30)
        replies = [dns.message.from_wire(p) for p in got]
        assert len(replies) == 60
        assert all(m.rcode() == dns.rcode.NXDOMAIN and not m.flags & dns.flags.TC for m in replies)
        assert r.metrics.value(RATELIMIT_DROPS) == r.metrics.value(RATELIMIT_SLIPS) == 0


def test_the_limiter_holds_from_loopback_per_network() -> None:
    """With nothing exempt, a flood of misses from one 127.0.0.x client is limited, the
    /24 shares the negative bucket, and another /24 is untouched."""
    limits = RateLimitConfig(enabled=True, exempt=(), rrl_negatives_per_second=10)
    with running(ratelimit=limits, tcp=False) as r:
        flood = blast_from("127.0.0.30", r.port, misses(200))
        assert 10 <= len(flood) < 150  # the burst, then every 2nd slips
        assert r.metrics.value(RATELIMIT_SLIPS) > 0 and r.metrics.value(RATELIMIT_DROPS) > 0
        neighbour = blast_from("127.0.0.31", r.port, misses(10, 71000000000))
        full = [p for p in neighbour if not p[2] & 0x02]
        assert len(full) <= 7 and len(neighbour) > len(full)  # same /24: the bucket is shared
        elsewhere = blast_from("127.0.5.31", r.port, misses(10, 72000000000))
        replies = [dns.message.from_wire(p) for p in elsewhere]
        assert len(replies) == 10 and all(m.rcode() == dns.rcode.NXDOMAIN for m in replies)


def test_exempt_networks_are_an_option() -> None:
    limiter = RateLimiter(
        RateLimitConfig(enabled=True, qps_per_client=1, burst=1, exempt=("127.0.0.2/32",))
    )
    assert all(limiter.allow_query("127.0.0.2", 0.0) for _ in range(5))
    assert limiter.allow_query("127.0.0.3", 0.0) and not limiter.allow_query("127.0.0.3", 0.0)
    assert not limiter.exempts_all_loopback()
    assert RateLimiter(RateLimitConfig()).exempts_all_loopback()  # the default
    with pytest.raises(ValueError, match="not-a-network"):
        RateLimitConfig(exempt=("not-a-network",))


def test_serve_ratelimit_exempt_option(demo_store: Path) -> None:
    """``enumer serve --ratelimit-exempt CIDR``: the named client is exempt, the rest of
    loopback is limited like any client."""
    gateway = start_gateway(demo_store, "--qps", "2", "--ratelimit-exempt", "127.0.0.40/32")
    try:
        query = dns.message.make_query(HIT, "NAPTR").to_wire()
        exempt = blast_from("127.0.0.40", gateway.port, [query] * 30)
        limited = blast_from("127.0.0.41", gateway.port, [query] * 30)
        assert len(exempt) == 30
        assert 1 <= len(limited) <= 10  # a burst of 2 * qps, then 2 a second
        assert ask(gateway, HIT).rcode() == dns.rcode.NOERROR  # 127.0.0.1: a fresh bucket
    finally:
        stop(gateway.process)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.0.0.0/33", "error: --ratelimit-exempt: '10.0.0.0/33' is not an IP network"),
        ("example.com", "error: --ratelimit-exempt: 'example.com' is not an IP network"),
    ],
)
def test_serve_ratelimit_exempt_bad_value(tmp_path: Path, value: str, message: str) -> None:
    """Checked before anything else: one line, exit status 1."""
    run = subprocess.run(
        [
            *ENUMER,
            "--store",
            str(tmp_path),
            "serve",
            "--port",
            "0",
            "--quiet",
            "--ratelimit-exempt",
            value,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1, run
    assert run.stderr.strip().splitlines() == [message]


def test_serve_ratelimit_exempt_none(demo_store: Path) -> None:
    """``--ratelimit-exempt none``: loopback too is limited (a gateway behind a local proxy
    that should not be)."""
    gateway = start_gateway(demo_store, "--qps", "2", "--ratelimit-exempt", "none")
    try:
        query = dns.message.make_query(HIT, "NAPTR").to_wire()
        assert 1 <= len(blast_from("127.0.0.1", gateway.port, [query] * 30)) <= 10
    finally:
        stop(gateway.process)


def test_a_client_that_does_not_read_holds_up_only_itself() -> None:
    """10,000 pipelined queries for a 12-NAPTR number (about 12 MB of answers, more than
    the kernel's socket buffers take) sent without reading: past MAX_PENDING bytes of
    answers the gateway stops reading that client (instead of buffering without bound)
    while it answers others; once the client reads, every answer comes, in order."""
    count = 10_000
    miss = count // 2
    names = ["1.enum" if i == miss else BIG for i in range(count)]
    wire = b"".join(raw_query(i, name) for i, name in enumerate(names))
    with running(tcp_idle_timeout=10.0) as r, socket.socket() as greedy:
        # A small receive buffer, so that the kernel takes little of the answers for it.
        greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        greedy.settimeout(10)
        greedy.connect(("127.0.0.1", r.port))
        sender = threading.Thread(target=greedy.sendall, args=(wire,), daemon=True)
        sender.start()
        time.sleep(0.5)
        assert r.tcp(HIT).rcode() == dns.rcode.NOERROR  # others are served meanwhile
        assert r.metrics.value(QUERIES_TCP) < count  # it was not read (nor answered) whole
        reader = greedy.makefile("rb")
        answers = []
        for _ in range(count):
            (length,) = struct.unpack(">H", reader.read(2))
            answers.append(reader.read(length))
        sender.join(5)
    assert [struct.unpack(">H", a[:2])[0] for a in answers] == list(range(count))
    rcodes = [a[3] & 0x0F for a in answers]
    assert rcodes[miss] == dns.rcode.NXDOMAIN
    assert rcodes.count(dns.rcode.NOERROR) == count - 1
    assert all(struct.unpack(">H", a[6:8])[0] == 12 for i, a in enumerate(answers) if i != miss)


def raw_query(qid: int, name: str) -> bytes:
    """A framed NAPTR query, built without dnspython (thousands of them)."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    message = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\x00\x00\x23\x00\x01"
    return struct.pack(">H", len(message)) + message
