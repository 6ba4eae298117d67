"""``enumer serve`` as a process: configuration errors, reload, restart, live updates."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest
from tests.support import ENUMER, Gateway, free_port, start_gateway, stop

from enumer.dns import gateway as gateway_module


def ask(
    gateway: Gateway, name: str, rdtype: str = "NAPTR", tcp: bool = False, rdclass: str = "IN"
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, rdclass)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, "127.0.0.1", port=gateway.port, timeout=5)


def naptr_texts(response: dns.message.Message) -> list[str]:
    return [rd.to_text() for rrset in response.answer for rd in rrset]


def enumer(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ENUMER, "--store", str(store), *args], capture_output=True, text=True, timeout=60
    )


def test_serves_the_demo_numbers(demo_gateway: Gateway) -> None:
    main = ask(demo_gateway, "53995390081.enum")
    assert naptr_texts(main) == ['100 10 "u" "E2U+sip" "!^(.*)$!sip:\\\\1@pbx.example.com!" .']
    assert main.answer[0].ttl == 86400
    squatted = ask(demo_gateway, "4.3.2.1.0.0.0.5.5.5.1.enum")
    assert "owner.example.com" in naptr_texts(squatted)[0]
    two = ask(demo_gateway, "76543217771.enum", tcp=True)
    assert [rrset.ttl for rrset in two.answer] == [600]
    assert len(naptr_texts(two)) == 2
    for unsigned_or_revoked in ("76543215551.enum", "11110005551.enum"):
        negative = ask(demo_gateway, unsigned_or_revoked)
        assert negative.rcode() == dns.rcode.NXDOMAIN
        assert negative.authority[0].rdtype == dns.rdatatype.SOA
    tollfree = ask(demo_gateway, "43215550081.enum")
    assert "tollfree.example.net" in naptr_texts(tollfree)[0]
    assert ask(demo_gateway, "example.com", "A").rcode() == dns.rcode.REFUSED


def test_status_query_reports_height_and_size(demo_gateway: Gateway) -> None:
    status = ask(demo_gateway, "version.bind", "TXT", rdclass="CH")
    text = b"".join(status.answer[0][0].strings).decode()
    assert "served numbers 7" in text  # the demo: 4 numbers, 3 with bound signatures
    assert "height" in text


def test_a_change_is_served_within_a_second(demo_gateway: Gateway) -> None:
    store = demo_gateway.store
    assert enumer(store, "verifier", "revoke", "demo", "enum:18009359935:0").returncode == 0
    deadline = time.monotonic() + 1.0
    while ask(demo_gateway, "53995390081.enum").rcode() != dns.rcode.NXDOMAIN:
        assert time.monotonic() < deadline, "revocation not served within 1 s"
        time.sleep(0.05)
    # A toll-free list change takes effect without a restart.
    new_list = "=1800555\\d{4}\nE2U+sip=100|10|!^(.*)$!sip:\\1@tf2.example.net!\n"
    assert enumer(store, "name", "update", "enum:tollfree", new_list, "0").returncode == 0
    deadline = time.monotonic() + 1.0
    while "tf2.example.net" not in "".join(naptr_texts(ask(demo_gateway, "43215550081.enum"))):
        assert time.monotonic() < deadline, "toll-free change not served within 1 s"
        time.sleep(0.05)


def test_restart_loads_the_snapshot(demo_store: Path) -> None:
    first = start_gateway(demo_store)
    stop(first.process)
    assert "stopped" in first.log.read_text()
    second = start_gateway(demo_store)
    try:
        assert "loaded 7 answers" in second.log.read_text()
        assert naptr_texts(ask(second, "53995390081.enum"))
    finally:
        stop(second.process)


def _raw_answers(gateway: Gateway, names: list[str]) -> list[bytes]:
    """Each name's UDP answer as bytes (query id fixed)."""
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for name in names:
            query = dns.message.make_query(name, "NAPTR")
            query.id = 4242
            sock.sendto(query.to_wire(), ("127.0.0.1", gateway.port))
            out.append(sock.recv(65535))
    return out


DEMO_NAMES = [
    "53995390081.enum",
    "4.3.2.1.0.0.0.5.5.5.1.enum",
    "76543217771.enum",
    "76543215551.enum",
    "43215550081.enum",
]


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_a_damaged_snapshot_is_refused_rebuilt_and_serves_the_same_bytes(
    demo_store: Path, damage: str
) -> None:
    """A restart maps the table file and serves the bytes it served before; a file cut
    short or with a changed index byte is refused (logged), rebuilt, and serves them too."""
    first = start_gateway(demo_store)
    try:
        before = _raw_answers(first, DEMO_NAMES)
    finally:
        stop(first.process)
    second = start_gateway(demo_store)
    try:
        assert "loaded 7 answers" in second.log.read_text()
        assert _raw_answers(second, DEMO_NAMES) == before
    finally:
        stop(second.process)
    [snapshot] = demo_store.glob("gateway-*.snapshot")
    with open(snapshot, "r+b") as fh:
        if damage == "truncated":
            fh.truncate(snapshot.stat().st_size // 2)
        else:
            fh.seek(4096 + 8)  # in the index
            byte = fh.read(1)
            fh.seek(4096 + 8)
            fh.write(bytes([byte[0] ^ 0x40]))
    third = start_gateway(demo_store)
    try:
        log = third.log.read_text()
        assert f"snapshot {snapshot.name} refused" in log
        assert ("truncated" if damage == "truncated" else "index checksum") in log
        assert "compiled 7 served numbers" in log
        assert _raw_answers(third, DEMO_NAMES) == before
    finally:
        stop(third.process)


def test_sighup_reloads_the_trust_list(demo_store: Path, tmp_path: Path) -> None:
    conf = tmp_path / "emercoin.conf"
    conf.write_text("enumtrust=ver:demo\nemcdnsallowed=$enum\n")
    gateway = start_gateway(demo_store, "--conf", str(conf))
    try:
        assert naptr_texts(ask(gateway, "53995390081.enum"))
        conf.write_text("enumtrust=ver:nobody\nemcdnsallowed=$enum\n")
        os.killpg(gateway.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while ask(gateway, "53995390081.enum").rcode() != dns.rcode.NXDOMAIN:
            assert time.monotonic() < deadline, gateway.log.read_text()
            time.sleep(0.1)
        # A broken file is refused and the running configuration kept.
        conf.write_text("emcdnsallowed=@@@\n")
        os.killpg(gateway.process.pid, signal.SIGHUP)
        time.sleep(1.0)
        assert "reload refused" in gateway.log.read_text()
        assert gateway.process.poll() is None
    finally:
        stop(gateway.process)


def test_unsigned_zone_and_suffix(demo_store: Path) -> None:
    gateway = start_gateway(demo_store, "--allowed", "$enum|~test", "--suffix", ".enumer.org")
    try:
        unsigned = ask(gateway, "76543215551.test")
        assert "unsigned.example.com" in naptr_texts(unsigned)[0]
        assert ask(gateway, "76543215551.enum").rcode() == dns.rcode.NXDOMAIN
        assert naptr_texts(ask(gateway, "53995390081.ENUM.enumer.org"))
    finally:
        stop(gateway.process)


def test_metrics_endpoint(demo_store: Path) -> None:
    port = free_port()
    gateway = start_gateway(demo_store, "--metrics", f"127.0.0.1:{port}")
    try:
        ask(gateway, "53995390081.enum")
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        text = body.decode()
        assert 'enumer_dns_responses_total{rcode="NOERROR"} 1' in text
        assert "enumer_answer_table_numbers 7" in text
    finally:
        stop(gateway.process)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--allowed", "enum"], "emcdnsallowed: bad zone 'enum'"),
        (["--suffix", "bad suffix"], "emcdnssuffix: bad domain suffix"),
        (["--trust", "enum"], "is not a verifier name"),
        (["--bind", "not-an-ip"], "bind address 'not-an-ip'"),
        (["--conf", "/nonexistent/emercoin.conf"], "cannot read /nonexistent/emercoin.conf"),
    ],
)
def test_bad_configuration_is_one_line(demo_store: Path, args: list[str], message: str) -> None:
    result = enumer(demo_store, "serve", "--port", str(free_port()), *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert "internal error" not in lines[0]


def test_port_in_use_is_a_clear_error(demo_gateway: Gateway) -> None:
    result = enumer(demo_gateway.store, "serve", "--port", str(demo_gateway.port), "--quiet")
    assert result.returncode == 1
    assert "Address already in use" in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_no_store_is_an_error(tmp_path: Path) -> None:
    result = enumer(tmp_path / "missing", "serve")
    assert result.returncode == 1
    assert result.stderr.startswith("error: no ENUMER store")


def test_lookup_json_and_gateway_agree(demo_gateway: Gateway) -> None:
    looked = json.loads(enumer(demo_gateway.store, "lookup", "17771234567", "--json").stdout)
    served = naptr_texts(ask(demo_gateway, "76543217771.enum"))
    assert len(looked["naptr"]) == len(served) == 2
    assert looked["uri"] == "sip:+17771234567@a.example.com"
    _ = sys  # the console script is the same interpreter


def test_exact_srl_option(demo_store: Path) -> None:
    """The reference revokes enum:X:1 when enum:X:10 is listed; --exact-srl does not."""
    from enumer.nvs import get_active
    from enumer.nvs.ledger import Ledger
    from enumer.trust import SrlConfig

    # +15550001234 is served from :1; list only ":10" in the SRL record of :1's bucket.
    with Ledger(demo_store) as store:
        verifier = get_active(store, "ver:demo")
        assert verifier is not None
        bucket = SrlConfig.from_value(verifier.value).record_name("enum:15550001234:1")
        current = get_active(store, bucket)
        if current is None:
            store.name_new(bucket, "enum:15550001234:10\n", 10, verifier.address)
        else:
            store.name_update(bucket, current.value + "\nenum:15550001234:10\n", 0, current.address)
    substring = start_gateway(demo_store)
    try:
        assert ask(substring, "4.3.2.1.0.0.0.5.5.5.1.enum").rcode() == dns.rcode.NXDOMAIN
    finally:
        stop(substring.process)
    exact = start_gateway(demo_store, "--exact-srl")
    try:
        assert naptr_texts(ask(exact, "4.3.2.1.0.0.0.5.5.5.1.enum"))
    finally:
        stop(exact.process)


def test_build_progress_in_a_log_is_a_line_every_few_seconds(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter([0.0, 1.0, 6.0, 7.0, 8.0])
    monkeypatch.setattr(gateway_module.time, "monotonic", lambda: next(clock))
    with gateway_module.build_progress(True) as show:
        assert show is not None
        for done in (10, 20, 30):  # at 1 s (too soon), 6 s (logged), 7 s (too soon)
            show("checking records", done, 40)
        show("checking records", 40, 40)  # the end is always logged
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("enumer: ")[1] for line in lines] == [
        "checking records: 20/40 (50%)",
        "checking records: 40/40 (100%)",
    ]
    with gateway_module.build_progress(False) as nothing:
        assert nothing is None


def test_first_build_draws_a_progress_bar_on_a_terminal(demo_store: Path) -> None:
    """The demo store has no snapshot yet, so the gateway builds its table."""
    controller, terminal = pty.openpty()
    port = free_port()
    process = subprocess.Popen(
        [*ENUMER, "--store", str(demo_store), "serve", "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"ready:" not in seen and time.monotonic() < deadline:
            if select.select([controller], [], [], 0.5)[0]:
                try:
                    seen += os.read(controller, 65536)
                except OSError:
                    break
    finally:
        stop(process)
        os.close(controller)
    text = seen.decode("utf-8", "replace")
    assert "ready:" in text, text
    assert "checking records" in text and "━" in text, text  # the bar, not a log line
    assert "checking records:" not in text, text
