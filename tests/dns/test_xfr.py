"""Zone transfers from a real ``enumer serve`` on loopback (SPEC 12): AXFR, IXFR, NOTIFY, access.

The client side is dnspython (``dns.query.xfr``) and raw sockets; the server
is the console script on a free port, with the demo store.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.xfr
import pytest
from tests.support import ENUMER, Gateway, free_port, start_gateway, stop

from enumer.nvs import NameRecord
from enumer.nvs.ledger import Ledger

SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="
KEY_FILE = f'key "xfr-key" {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};\n'


def enumer(store: Path, *args: str) -> str:
    result = subprocess.run(
        [*ENUMER, "--store", str(store), *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def primary(demo_store: Path) -> Iterator[Gateway]:
    gateway = start_gateway(
        demo_store, "--xfr-allow", "127.0.0.1/32", "--suffix", ".enumer.org", "--xfr-timeout", "1"
    )
    try:
        yield gateway
    finally:
        stop(gateway.process)


def axfr(port: int, zone: str = "enum", **kwargs: object) -> list[dns.message.Message]:
    return list(dns.query.xfr("127.0.0.1", zone, port=port, timeout=10, lifetime=30, **kwargs))  # type: ignore[arg-type]


def records(messages: list[dns.message.Message]) -> list[tuple[str, str, int, str]]:
    """(owner, type, ttl, rdata) of every RR of a transfer, in order."""
    out = []
    for message in messages:
        for rrset in message.answer:
            for rdata in rrset:
                out.append(
                    (
                        rrset.name.to_text(),
                        dns.rdatatype.to_text(rrset.rdtype),
                        rrset.ttl,
                        rdata.to_text(),
                    )
                )
    return out


def gateway_answer(port: int, name: str) -> dns.message.Message:
    query = dns.message.make_query(name, "NAPTR")
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=5)


def soa_serial(port: int, zone: str = "enum") -> int:
    reply = dns.query.udp(dns.message.make_query(zone, "SOA"), "127.0.0.1", port=port, timeout=5)
    return int(reply.answer[0][0].serial)


def wait_serial_above(port: int, serial: int, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = soa_serial(port)
        if now > serial:
            return now
        time.sleep(0.1)
    raise AssertionError(f"serial stayed at {serial}")


def wait_log(gateway: Gateway, text: str, timeout: float = 10.0) -> None:
    """The gateway logs a transfer after its last message: wait for the line."""
    deadline = time.monotonic() + timeout
    while text not in gateway.log.read_text():
        assert time.monotonic() < deadline, gateway.log.read_text()
        time.sleep(0.05)


def test_axfr_holds_exactly_what_the_gateway_answers(primary: Gateway) -> None:
    messages = axfr(primary.port, relativize=False)
    rrs = records(messages)
    assert rrs[0][1] == "SOA" and rrs[-1] == rrs[0]
    assert ("enum.", "NS", 86400, "localhost.") in rrs
    # The zone's SOA is the gateway's own SOA answer.
    soa = dns.query.udp(dns.message.make_query("enum", "SOA"), "127.0.0.1", port=primary.port)
    assert soa.answer[0][0].to_text() == rrs[0][3] and soa.answer[0].ttl == rrs[0][2]
    owners = {owner for owner, kind, _ttl, _rdata in rrs if kind == "NAPTR"}
    assert "5.3.9.9.5.3.9.0.0.8.1.enum." in owners
    assert "4.3.2.1.5.5.5.1.enum." not in owners  # unsigned: not served
    assert "1.1.1.1.0.0.0.5.5.5.1.enum." not in owners  # revoked through the SRL
    for owner in owners:
        reply = gateway_answer(primary.port, owner)
        expected = sorted((rrset.ttl, r.to_text()) for rrset in reply.answer for r in rrset)
        got = sorted((ttl, rdata) for o, kind, ttl, rdata in rrs if o == owner and kind == "NAPTR")
        assert got == expected, owner
    served = re.search(r"served numbers (\d+)", primary.log.read_text())
    assert served is not None and len(owners) == int(served.group(1))
    # The same zone below the gateway suffix.
    suffixed = records(axfr(primary.port, "enum.enumer.org", relativize=False))
    assert sum(1 for r in suffixed if r[1] == "NAPTR") == sum(1 for r in rrs if r[1] == "NAPTR")
    assert all(r[0].endswith(".enum.enumer.org.") or r[0] == "enum.enumer.org." for r in suffixed)


def test_ixfr_carries_only_the_change_and_falls_back_to_axfr(primary: Gateway) -> None:
    before = soa_serial(primary.port)
    enumer(primary.store, "record", "new", "+1 202 555 0199", "--sip", "sip:new@pbx.example.org")
    enumer(primary.store, "verifier", "sign", "demo", "enum:12025550199:0", "--append")
    # Two blocks (the record, then its signature) may reach the gateway in two polls: wait
    # for the signed number itself, then read the serial that carries it.
    wait_serial_above(primary.port, before)
    deadline = time.monotonic() + 15
    while not gateway_answer(primary.port, "9.9.1.0.5.5.5.2.0.2.1.enum").answer:
        assert time.monotonic() < deadline, primary.log.read_text()
        time.sleep(0.1)
    after = soa_serial(primary.port)
    wait_log(primary, f"zone serial {after}: enum.")  # the transfer zone follows the table
    messages = list(
        dns.query.xfr(
            "127.0.0.1", "enum", "IXFR", port=primary.port, serial=before, relativize=False
        )
    )
    rrs = records(messages)
    soas = [int(r[3].split()[2]) for r in rrs if r[1] == "SOA"]
    assert soas[0] == after and soas[-1] == after and before in soas
    naptrs = [r for r in rrs if r[1] == "NAPTR"]
    assert [r[0] for r in naptrs] == ["9.9.1.0.5.5.5.2.0.2.1.enum."]
    assert "sip:new@pbx.example.org" in naptrs[0][3]
    wait_log(primary, "IXFR of enum. serial")
    # Up to date: one SOA.
    current = records(
        list(dns.query.xfr("127.0.0.1", "enum", "IXFR", port=primary.port, serial=after))
    )
    assert [r[1] for r in current] == ["SOA"]
    # A serial the journal never had: the whole zone, AXFR style.
    old = records(list(dns.query.xfr("127.0.0.1", "enum", "IXFR", port=primary.port, serial=3)))
    assert [r[1] for r in old[:2]] == ["SOA", "NS"] and len(old) > 5
    wait_log(primary, "IXFR-as-AXFR")


def test_refusals(primary: Gateway) -> None:
    port = primary.port
    # A source address outside --xfr-allow.
    with pytest.raises(dns.xfr.TransferError) as refused:
        axfr(port, source="127.0.0.2")
    assert refused.value.rcode == dns.rcode.REFUSED
    # A zone that is not served.
    with pytest.raises(dns.xfr.TransferError) as other:
        axfr(port, "example")
    assert other.value.rcode == dns.rcode.REFUSED
    # AXFR over UDP.
    query = dns.message.make_query("enum", "AXFR")
    reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=5)
    assert reply.rcode() == dns.rcode.REFUSED and not reply.answer
    # IXFR whose authority SOA is malformed (RDATA cut short).
    ixfr = dns.message.make_query("enum", "IXFR").to_wire()
    zone = b"\x04enum\x00"
    bad_soa = zone + struct.pack(">HHIH", 6, 1, 0, 3) + b"\x00\x00\x00"
    wire = ixfr[:8] + b"\x00\x01" + ixfr[10:] + bad_soa
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(len(wire).to_bytes(2, "big") + wire)
        head = conn.recv(2)
        data = conn.recv(int.from_bytes(head, "big"))
    assert data[3] & 0x0F == dns.rcode.FORMERR
    # IXFR without any SOA.
    reply = dns.query.tcp(dns.message.make_query("enum", "IXFR"), "127.0.0.1", port=port)
    assert reply.rcode() == dns.rcode.FORMERR
    # The gateway still answers.
    assert gateway_answer(port, "53995390081.enum").answer


def idle_child(pid: int, timeout: float = 10.0) -> int | None:
    """A child of ``pid`` in the idle scheduling class (the process the gateway forks
    to write a whole-zone transfer, once it has moved itself there), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                try:
                    if os.sched_getscheduler(int(child)) == os.SCHED_IDLE:
                        return int(child)
                except ProcessLookupError:
                    continue
        time.sleep(0.02)
    return None


def test_a_client_that_stops_reading_is_dropped(tmp_path: Path) -> None:
    store = tmp_path / "big"
    # Unsigned records served by a ~test zone: a zone of several megabytes, fast to make.
    with Ledger(store, network="regtest") as ledger:
        ledger.put_records(
            NameRecord(
                f"enum:1555{n:07d}:0",
                f"E2U+sip=100|10|!^(.*)$!sip:\\1@host-{n}.example.com!",
                "n" * 34,
                f"{n:064x}",
                1,
                1,
                100_000_000,
                0,
            )
            for n in range(30_000)
        )
    gateway = start_gateway(
        store, "--allowed", "~enum", "--xfr-allow", "127.0.0.1", "--xfr-timeout", "3", timeout=120
    )
    try:
        stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(("127.0.0.1", gateway.port))
        wire = dns.message.make_query("enum", "AXFR").to_wire()
        stuck.sendall(len(wire).to_bytes(2, "big") + wire)
        # While it is stuck, queries are answered over UDP and TCP.
        assert gateway_answer(gateway.port, "1.0.0.0.0.0.0.5.5.5.1.enum").answer
        query = dns.message.make_query("1.0.0.0.0.0.0.5.5.5.1.enum", "NAPTR")
        assert dns.query.tcp(query, "127.0.0.1", port=gateway.port, timeout=5).answer
        # The stuck transfer's child yields the CPU to the queries (idle class).
        assert idle_child(gateway.process.pid) is not None
        deadline = time.monotonic() + 20
        while "abandoned" not in gateway.log.read_text():
            assert time.monotonic() < deadline, gateway.log.read_text()
            time.sleep(0.1)
        # The connection is closed: reading drains what was sent, then EOF or a reset.
        stuck.settimeout(5)
        try:
            while stuck.recv(1 << 16):
                pass
        except ConnectionResetError:
            pass
        stuck.close()
        try:
            assert len(axfr(gateway.port)) > 10  # and a reading client gets the zone
        except EOFError:
            raise AssertionError(gateway.log.read_text()) from None
    finally:
        stop(gateway.process)


def test_tsig_keys_decide_who_transfers(demo_store: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "xfr.key"
    key_file.write_text(KEY_FILE)
    gateway = start_gateway(demo_store, "--tsig-key", str(key_file), "--xfr-allow", "key:xfr-key")
    try:
        good = dns.tsigkeyring.from_text({"xfr-key": SECRET})
        signed = axfr(gateway.port, keyring=good, keyname="xfr-key")
        assert signed[0].had_tsig
        plain = dns.message.make_query("5.3.9.9.5.3.9.0.0.8.1.enum", "NAPTR")
        assert dns.query.udp(plain, "127.0.0.1", port=gateway.port, timeout=5).answer
        assert ("5.3.9.9.5.3.9.0.0.8.1", "NAPTR") in {(r[0], r[1]) for r in records(signed)}
        # A secondary's signed SOA probe is answered signed (dnspython checks the MAC).
        probe = dns.message.make_query("enum", "SOA")
        probe.use_tsig(good, keyname="xfr-key")
        for send in (dns.query.udp, dns.query.tcp):
            reply = send(probe, "127.0.0.1", port=gateway.port, timeout=5)
            assert reply.had_tsig and reply.answer[0].rdtype == dns.rdatatype.SOA
        with pytest.raises(dns.xfr.TransferError) as unsigned:
            axfr(gateway.port)
        assert unsigned.value.rcode == dns.rcode.REFUSED
        wrong = dns.tsigkeyring.from_text({"xfr-key": "d3JvbmctZ3JvbmctIHdyb25nIHdyb25nIHdyb25n"})
        query = dns.message.make_query("enum", "AXFR")
        query.use_tsig(wrong, keyname="xfr-key")
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as conn:
            wire = query.to_wire()
            conn.sendall(len(wire).to_bytes(2, "big") + wire)
            head = conn.recv(2)
            data = conn.recv(int.from_bytes(head, "big"))
        assert data[3] & 0x0F == dns.rcode.NOTAUTH
        wait_log(gateway, "TSIG BadSignature: NOTAUTH")
    finally:
        stop(gateway.process)


def test_bad_transfer_options_are_one_line_errors(demo_store: Path, tmp_path: Path) -> None:
    for args, message in (
        (["--xfr-allow", "nonsense"], "--xfr-allow: 'nonsense'"),
        (["--xfr-allow", "key:nokey"], "no such key"),
        (["--notify", "host.example:53"], "--notify: 'host.example'"),
        (["--tsig-key", str(tmp_path / "missing.key")], "--tsig-key: cannot read"),
        (["--ns", "bad name!."], "bad label"),
    ):
        result = subprocess.run(
            [*ENUMER, "--store", str(demo_store), "serve", "--port", str(free_port()), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_notify_is_sent_on_each_new_serial_and_retried(demo_store: Path, tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(10)
    target = listener.getsockname()[1]
    metrics_port = free_port()
    gateway = start_gateway(
        demo_store,
        "--notify",
        f"127.0.0.1:{target}",
        "--xfr-allow",
        "127.0.0.1",
        "--metrics",
        f"127.0.0.1:{metrics_port}",
    )
    try:
        first, _ = listener.recvfrom(4096)
        notify = dns.message.from_wire(first)
        assert notify.opcode() == dns.opcode.NOTIFY and notify.flags & dns.flags.AA
        serial = int(notify.answer[0][0].serial)
        assert serial == soa_serial(gateway.port)
        # Not answered: it comes again; answered: it stops.
        again, peer = listener.recvfrom(4096)
        assert dns.message.from_wire(again).id == notify.id
        listener.sendto(dns.message.make_response(dns.message.from_wire(again)).to_wire(), peer)
        enumer(demo_store, "name", "delete", "enum:12025550100:0")
        while True:
            data, peer = listener.recvfrom(4096)
            message = dns.message.from_wire(data)
            if message.id != notify.id:
                break
        new_serial = int(message.answer[0][0].serial)
        assert new_serial > serial
        listener.sendto(dns.message.make_response(message).to_wire(), peer)
        axfr(gateway.port)
        # The transfer is recorded once its (idle-class) child has reported back,
        # a moment after the client has read the last message.
        secondary = re.compile(
            r'enumer_zone_secondary_serial\{secondary="127.0.0.1".*\} ' + str(new_serial)
        )
        deadline = time.monotonic() + 10
        while True:
            url = f"http://127.0.0.1:{metrics_port}/metrics"
            text = urllib.request.urlopen(url).read().decode()
            if secondary.search(text) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert f'enumer_zone_serial{{zone="enum."}} {new_serial}' in text
        assert secondary.search(text), text
    finally:
        stop(gateway.process)
        listener.close()


def test_export_writes_the_zone_the_gateway_transfers(demo_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "enum.zone"
    result = subprocess.run(
        [*ENUMER, "--store", str(demo_store), "zone", "export", "-o", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "left out of the zone: =1800555\\d{4}" in result.stderr
    text = out.read_text()
    assert text.startswith("; ENUMER zone enum. serial ")
    assert '5.3.9.9.5.3.9.0.0.8.1 86400 IN NAPTR 100 10 "u" "E2U+sip" ' in text
    assert "53995390081 " not in text
    compact = subprocess.run(
        [
            *ENUMER,
            "--store",
            str(demo_store),
            "zone",
            "export",
            "--compact-names",
            "--quiet",
            "--suffix",
            ".enumer.org",
            "--ns",
            "ns1.example.net.",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "$ORIGIN enum.enumer.org." in compact.stdout
    assert "\n53995390081 86400 IN NAPTR" in compact.stdout
    assert "@ 86400 IN NS ns1.example.net." in compact.stdout
    bad = subprocess.run(
        [*ENUMER, "--store", str(demo_store), "zone", "export", "--zone", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("error: --zone: 'nope'")
