"""The gateway's sockets: real UDP and TCP on loopback, answers decoded with dnspython."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enumer.dns.metrics import (
    ERRORS,
    QUERIES_TCP,
    QUERIES_UDP,
    RATELIMIT_DROPS,
    RATELIMIT_SLIPS,
    TCP_REJECTED,
    TRUNCATED,
    Metrics,
    serve_metrics,
)
from enumer.dns.ratelimit import RateLimitConfig, RateLimiter
from enumer.dns.server import GatewayServer, ServerConfig
from enumer.dns.wire import GatewayView, SuffixRule, ZoneSpec

MAIN = '100 10 "u" "E2U+sip" "!^(.*)$!sip:\\\\1@tollfree.example.com!" .'
STATUS = "enumer test status"


def naptr_rr(text: str, ttl: int = 86400) -> bytes:
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.NAPTR, text).to_wire()
    assert rdata is not None
    return b"\xc0\x0c" + struct.pack(">HHIH", 35, 1, ttl, len(rdata)) + rdata


class Source:
    def __init__(self) -> None:
        self.generation = 1
        self.serial = 100
        big = b"".join(
            naptr_rr(
                f'{100 + i} 10 "u" "E2U+sip" '
                f'"!^(.*)$!sip:\\\\1@host{i:02d}.long-domain-name-for-truncation.example.com!" .'
            )
            for i in range(12)
        )
        self.answers = {b"53995390081": naptr_rr(MAIN), b"00009997771": big}

    def answer(self, key: bytes) -> bytes | None:
        return self.answers.get(key)


class Broken(Source):
    def answer(self, key: bytes) -> bytes | None:
        if key == b"666":
            raise RuntimeError("boom")
        return super().answer(key)


def make_view(source: Source | None = None) -> GatewayView:
    return GatewayView(
        zones={"enum": (ZoneSpec("enum"), source or Source())},
        suffixes=(SuffixRule("enumer.org"),),
        status=lambda: STATUS,
    )


class Running:
    def __init__(self, server: GatewayServer, metrics: Metrics, lines: list[str]) -> None:
        self.server = server
        self.metrics = metrics
        self.lines = lines

    @property
    def port(self) -> int:
        return self.server.bound[0][2]

    def udp(self, name: str, rdtype: str = "NAPTR", **kw: object) -> dns.message.Message:
        q = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
        return dns.query.udp(q, "127.0.0.1", timeout=3, port=self.port)

    def tcp(self, name: str, rdtype: str = "NAPTR", **kw: object) -> dns.message.Message:
        q = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
        return dns.query.tcp(q, "127.0.0.1", timeout=3, port=self.port)


@contextlib.contextmanager
def running(
    view: GatewayView | None = None,
    provider: Callable[[], GatewayView] | None = None,
    **cfg: object,
) -> Iterator[Running]:
    the_view = view or make_view()
    lines: list[str] = []
    metrics = Metrics()
    cfg.setdefault("binds", [("127.0.0.1", 0)])
    config = ServerConfig(**cfg)  # type: ignore[arg-type]
    server = GatewayServer(provider or (lambda: the_view), config, metrics, lines.append)
    server.start()
    try:
        yield Running(server, metrics, lines)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def srv() -> Iterator[Running]:
    with running(tcp_idle_timeout=2.0) as r:
        yield r


def tcp_connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=3)
    return sock


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def read_tcp_message(sock: socket.socket) -> dns.message.Message:
    (length,) = struct.unpack(">H", recv_exact(sock, 2))
    return dns.message.from_wire(recv_exact(sock, length))


def closed_by_peer(sock: socket.socket, within: float = 3.0) -> bool:
    sock.settimeout(within)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


# --- basic answers ----------------------------------------------------------------


def test_udp_and_tcp_answers(srv: Running) -> None:
    for ask in (srv.udp, srv.tcp):
        r = ask("5.3.9.9.5.3.9.0.0.8.1.enum")
        assert r.rcode() == dns.rcode.NOERROR
        assert r.flags & dns.flags.AA
        assert [rd.to_text() for rd in r.answer[0]] == [
            dns.rdata.from_text("IN", "NAPTR", MAIN).to_text()
        ]
        assert ask("53995390081.enum.enumer.org").rcode() == dns.rcode.NOERROR
        assert ask("1.enum").rcode() == dns.rcode.NXDOMAIN
        assert ask("example.com", "A").rcode() == dns.rcode.REFUSED


def test_chaos_version_bind_and_status(srv: Running) -> None:
    for name in ("version.bind", "status.enumer", "id.server"):
        q = dns.message.make_query(name, "TXT", "CH")
        r = dns.query.udp(q, "127.0.0.1", timeout=3, port=srv.port)
        assert r.answer[0][0].strings == (STATUS.encode(),)


def test_truncated_over_udp_then_complete_over_tcp(srv: Running) -> None:
    before = srv.metrics.value(TRUNCATED)
    r = srv.udp("0.0.0.0.9.9.9.7.7.7.1.enum")
    assert r.flags & dns.flags.TC
    assert 0 < len(r.answer[0]) < 12  # whole RRs, a packet dnspython parses
    assert srv.metrics.value(TRUNCATED) == before + 1
    r = srv.udp("0.0.0.0.9.9.9.7.7.7.1.enum", use_edns=0, payload=1232)
    assert not r.flags & dns.flags.TC  # fits in 1232 bytes with EDNS
    assert len(r.answer[0]) == 12
    r = srv.udp("0.0.0.0.9.9.9.7.7.7.1.enum", use_edns=0, payload=800)
    assert r.flags & dns.flags.TC
    assert r.edns == 0
    r = srv.tcp("0.0.0.0.9.9.9.7.7.7.1.enum")
    assert not r.flags & dns.flags.TC
    assert len(r.answer[0]) == 12


def test_tcp_pipelining(srv: Running) -> None:
    names = ["53995390081.enum", "1.enum", "0.0.0.0.9.9.9.7.7.7.1.enum"]
    queries = [dns.message.make_query(n, "NAPTR") for n in names]
    wire = b"".join(struct.pack(">H", len(w)) + w for w in (q.to_wire() for q in queries))
    with tcp_connect(srv.port) as sock:
        sock.sendall(wire)  # three queries in one segment
        answers = [read_tcp_message(sock) for _ in queries]
        assert [a.id for a in answers] == [q.id for q in queries]
        assert [a.rcode() for a in answers] == [0, dns.rcode.NXDOMAIN, 0]
        assert len(answers[2].answer[0]) == 12
        # the connection stays usable
        q = dns.message.make_query("53995390081.enum", "NAPTR")
        sock.sendall(struct.pack(">H", len(q.to_wire())) + q.to_wire())
        assert read_tcp_message(sock).id == q.id


def test_tcp_malformed_length_and_short_read_close(srv: Running) -> None:
    with tcp_connect(srv.port) as sock:
        sock.sendall(b"\x00\x05hello")
        assert closed_by_peer(sock)
    with tcp_connect(srv.port) as sock:
        sock.sendall(b"\x00\x40" + b"x" * 10)
        sock.shutdown(socket.SHUT_WR)
        assert closed_by_peer(sock)


def test_tcp_idle_timeout() -> None:
    with running(tcp_idle_timeout=0.3) as r, tcp_connect(r.port) as sock:
        start = time.monotonic()
        assert closed_by_peer(sock, 3.0)
        assert time.monotonic() - start < 2.5


def test_tcp_client_limit() -> None:
    with running(max_tcp_clients=2) as r:
        socks = [tcp_connect(r.port) for _ in range(2)]
        try:
            for sock in socks:  # both are served
                q = dns.message.make_query("53995390081.enum", "NAPTR").to_wire()
                sock.sendall(struct.pack(">H", len(q)) + q)
                assert read_tcp_message(sock).rcode() == 0
            with tcp_connect(r.port) as third:
                assert closed_by_peer(third)
            assert r.metrics.value(TCP_REJECTED) == 1
        finally:
            for sock in socks:
                sock.close()


def test_ipv6_loopback() -> None:
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    with running(binds=[("::1", 0)]) as r:
        assert r.server.bound[0][:2] == ("udp", "::1")
        q = dns.message.make_query("53995390081.enum", "NAPTR")
        assert dns.query.udp(q, "::1", timeout=3, port=r.port).rcode() == 0
        assert dns.query.tcp(q, "::1", timeout=3, port=r.port).rcode() == 0


def test_bind_error_is_clear() -> None:
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 0))
    port = blocker.getsockname()[1]
    try:
        server = GatewayServer(
            make_view, ServerConfig(binds=[("127.0.0.1", port)]), Metrics(), print
        )
        with pytest.raises(OSError) as info:
            server.start()
        assert str(info.value) == f"cannot bind UDP 127.0.0.1:{port}: Address already in use"
    finally:
        blocker.close()


def test_query_log_and_errors_do_not_stop_the_loop() -> None:
    with running(make_view(Broken()), query_log=True) as r:
        assert r.udp("666.enum").rcode() == dns.rcode.SERVFAIL
        assert r.tcp("666.enum").rcode() == dns.rcode.SERVFAIL
        assert r.udp("53995390081.enum").rcode() == 0
        assert r.metrics.value(ERRORS) == 2

        def logged(pred: Callable[[str], bool]) -> bool:
            deadline = time.monotonic() + 3  # lines are written after the answer is sent
            while not any(pred(line) for line in list(r.lines)):
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.01)
            return True

        assert logged(lambda line: "boom" in line)
        assert logged(
            lambda line: (
                line.startswith("udp 127.0.0.1:")
                and line.endswith("53995390081.enum. NAPTR NOERROR")
            )
        )
        assert logged(
            lambda line: line.startswith("tcp ") and line.endswith("666.enum. NAPTR SERVFAIL")
        )


def test_view_provider_is_followed() -> None:
    views = [make_view()]
    with running(provider=lambda: views[-1]) as r:
        assert r.udp("53995390081.enum").rcode() == 0
        empty = Source()
        empty.answers.clear()
        views.append(make_view(empty))
        assert r.udp("53995390081.enum").rcode() == dns.rcode.NXDOMAIN


# --- rate limiting -------------------------------------------------------------------


def blast(port: int, packets: list[bytes], wait: float = 0.5) -> list[bytes]:
    """Send all packets at once, then collect what comes back within ``wait``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for p in packets:
            sock.sendto(p, ("127.0.0.1", port))
        got = []
        sock.settimeout(wait)
        with contextlib.suppress(TimeoutError):
            while True:
                got.append(sock.recv(4096))
        return got


def test_query_rate_limit_drops() -> None:
    cfg = RateLimitConfig(enabled=True, qps_per_client=5, burst=5, exempt=())
    with running(ratelimit=cfg) as r:
        packets = [dns.message.make_query(f"{i}.enum", "NAPTR").to_wire() for i in range(40)]
        got = blast(r.port, packets)
        assert 5 <= len(got) < 20
        assert r.metrics.value(RATELIMIT_DROPS) >= 20
        assert r.metrics.value(QUERIES_UDP) == 40
        # TCP is never limited
        assert r.tcp("53995390081.enum").rcode() == 0


def test_response_rate_limit_slips() -> None:
    cfg = RateLimitConfig(
        enabled=True,
        qps_per_client=10_000,
        burst=10_000,
        rrl_responses_per_second=2,
        slip=2,
        exempt=(),
    )
    with running(ratelimit=cfg) as r:
        q = dns.message.make_query("53995390081.enum", "NAPTR")
        got = [dns.message.from_wire(p) for p in blast(r.port, [q.to_wire()] * 20)]
        full = [m for m in got if m.answer]
        slipped = [m for m in got if m.flags & dns.flags.TC]
        assert 2 <= len(full) <= 4
        assert len(slipped) >= 7
        assert all(not m.answer and len(m.question) == 1 for m in slipped)
        assert len(got) < 20
        assert r.metrics.value(RATELIMIT_SLIPS) >= 7
        assert r.metrics.value(RATELIMIT_DROPS) >= 7


def test_loopback_is_exempt_by_default() -> None:
    cfg = RateLimitConfig(enabled=True, qps_per_client=1, burst=1, rrl_responses_per_second=1)
    with running(ratelimit=cfg) as r:
        q = dns.message.make_query("53995390081.enum", "NAPTR").to_wire()
        assert len(blast(r.port, [q] * 10)) == 10


def test_rate_limiter_prefixes_and_memory_bound() -> None:
    cfg = RateLimitConfig(enabled=True, qps_per_client=1, burst=1, max_entries=100)
    rl = RateLimiter(cfg)
    assert rl.allow_query("192.0.2.1", 0.0)
    assert not rl.allow_query("192.0.2.1", 0.1)
    assert rl.allow_query("192.0.2.1", 1.2)  # refilled
    assert rl.allow_query("192.0.2.2", 0.1)  # another /32
    assert rl.allow_query("2001:db8::1", 0.0)
    assert not rl.allow_query("2001:db8::2", 0.1)  # same /64
    assert rl.allow_query("2001:db8:0:1::1", 0.1)  # another /64
    assert rl.allow_query("127.0.0.1", 0.0) and rl.allow_query("127.0.0.1", 0.0)  # exempt
    for i in range(1000):
        rl.allow_query(f"10.{i // 256}.{i % 256}.1", 0.0)
    assert len(rl._queries) <= 100


# --- metrics ---------------------------------------------------------------------------


def test_metrics_endpoint(srv: Running) -> None:
    srv.metrics.gauge("chain_height", "Chain height of the answers", lambda: 4242)
    srv.metrics.gauge("index_age_seconds", "Seconds since the last sync", lambda: 1.5)
    srv.udp("53995390081.enum")
    srv.tcp("1.enum")
    stop = serve_metrics("127.0.0.1", 0, srv.metrics)
    try:
        host, port = stop.address
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=3) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = resp.read().decode()
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://{host}:{port}/other", timeout=3)
        assert info.value.code == 404
    finally:
        stop()
    assert "# TYPE enumer_dns_queries_total counter" in text
    samples = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert int(samples['enumer_dns_queries_total{transport="udp"}']) >= 1
    assert int(samples['enumer_dns_queries_total{transport="tcp"}']) >= 1
    assert int(samples['enumer_dns_responses_total{rcode="NOERROR"}']) >= 1
    assert int(samples['enumer_dns_responses_total{rcode="NXDOMAIN"}']) >= 1
    assert samples["enumer_chain_height"] == "4242"
    assert samples["enumer_index_age_seconds"] == "1.5"
    assert "enumer_dns_ratelimit_drops_total" in samples
    assert "enumer_dns_errors_total" in samples


# --- worker processes ------------------------------------------------------------------


def test_udp_worker_processes_follow_generation() -> None:
    source = Source()
    view = make_view(source)
    with running(view, udp_workers=2, worker_refresh_interval=0.1) as r:
        pids = r.server.worker_pids
        assert len(pids) == 2 and os.getpid() not in pids
        for _ in range(6):
            assert r.udp("53995390081.enum").rcode() == 0
        assert r.tcp("53995390081.enum").rcode() == 0  # TCP stays in the parent
        # an update in the parent reaches the workers by a re-fork
        source.answers[b"12345"] = naptr_rr(MAIN)
        source.generation += 1
        deadline = time.monotonic() + 10
        while r.udp("54321.enum".replace("54321", "12345")).rcode() != 0:
            assert time.monotonic() < deadline, "workers never saw the new generation"
            time.sleep(0.05)
        new_pids = r.server.worker_pids
        assert set(new_pids).isdisjoint(pids)
        assert r.metrics.value(QUERIES_UDP) >= 7  # counted in the workers, seen here
        assert r.metrics.value(QUERIES_TCP) == 1
        q = dns.message.make_query("status.enumer", "TXT", "CH")
        got = dns.query.udp(q, "127.0.0.1", timeout=3, port=r.port)
        assert got.answer[0][0].strings == (STATUS.encode(),)
    for pid in pids + new_pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped: no zombies left


# --- fuzzing a running server --------------------------------------------------------

VALID = [
    dns.message.make_query("53995390081.enum", "NAPTR").to_wire(),
    dns.message.make_query("5.3.9.9.5.3.9.0.0.8.1.enum", "NAPTR", use_edns=0).to_wire(),
    dns.message.make_query("version.bind", "TXT", "CH").to_wire(),
]


def mutated() -> st.SearchStrategy[bytes]:
    def apply(base: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
        data = bytearray(base)
        for pos, value in edits:
            if pos < len(data):
                data[pos] = value
        return bytes(data[: max(len(data) - cut, 0)])

    return st.builds(
        apply,
        st.sampled_from(VALID),
        st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), max_size=5),
        st.integers(0, 10),
    )


FUZZ = st.one_of(st.binary(max_size=200), mutated())


def still_answers(port: int) -> None:
    q = dns.message.make_query("53995390081.enum", "NAPTR")
    assert dns.query.udp(q, "127.0.0.1", timeout=3, port=port).rcode() == 0
    assert dns.query.tcp(q, "127.0.0.1", timeout=3, port=port).rcode() == 0


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(FUZZ, min_size=1, max_size=8))
def test_fuzz_udp(srv: Running, packets: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for p in packets:
            sock.sendto(p, ("127.0.0.1", srv.port))
        q = dns.message.make_query("53995390081.enum", "NAPTR")
        sock.sendto(q.to_wire(), ("127.0.0.1", srv.port))
        sock.settimeout(3)
        while True:  # answers to the fuzz (if any) first, then ours
            raw = sock.recv(65535)
            if raw[:2] == q.to_wire()[:2] and dns.message.from_wire(raw).answer:
                break
            dns.message.from_wire(raw)  # whatever came back is well formed


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(FUZZ, min_size=1, max_size=4), st.booleans())
def test_fuzz_tcp(srv: Running, packets: list[bytes], raw_length: bool) -> None:
    with tcp_connect(srv.port) as sock:
        for p in packets:
            frame = p if raw_length else struct.pack(">H", len(p)) + p
            with contextlib.suppress(OSError):
                sock.sendall(frame)
    still_answers(srv.port)


def test_still_answers_after_fuzzing(srv: Running) -> None:
    still_answers(srv.port)
    assert srv.metrics.value(ERRORS) == 0
