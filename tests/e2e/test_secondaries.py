"""Standard secondaries behind ``enumer serve`` (SPEC 12): Debian's NSD, Knot and BIND.

Each takes the zone by AXFR from the gateway on loopback, answers a sample of
queries exactly as the gateway does, then receives four changes (a record
signed, one revoked through the SRL, one deleted, a toll-free list edit) by
NOTIFY and IXFR and serves them.  The time from the gateway answering a change
to the secondary answering it is printed (``-s`` shows it).  A secondary that
is further behind than the journal keeps falls back to AXFR and converges.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from enumer.dns.wire import ZoneSpec
from enumer.dns.xfr import notify_message
from enumer.dns.zone import Apex, Origin
from tests.support import ENUMER, Gateway, free_port, named_options, need, start_gateway, stop

pytestmark = pytest.mark.e2e

#: An expressible toll-free entry (fixed digits, then any digits) next to the demo's
#: fixed-length ones, which a zone cannot hold; 17771234567 is served below it.
TOLLFREE_FILE = "=1777\\d*\nE2U+sip=100|10|!^(.*)$!sip:\\1@tf1777.example.net!\n"

#: Names asked of the gateway and of each secondary: served, several NAPTRs with their
#: own TTL, unsigned, revoked, missing, toll-free (wildcard, and the nodes below it).
SAMPLE = (
    "5.3.9.9.5.3.9.0.0.8.1.enum.",  # 18009359935 served
    "0.0.1.0.5.5.5.2.0.2.1.enum.",  # 12025550100 served, revoked below
    "7.6.5.4.3.2.1.7.7.7.1.enum.",  # 17771234567: two NAPTRs, TTL 600; deleted below
    "4.3.2.1.0.0.0.5.5.5.1.enum.",  # 15550001234: the owner's signed :1
    "7.6.5.4.3.2.1.5.5.5.1.enum.",  # 15551234567 unsigned: NXDOMAIN
    "1.1.1.1.0.0.0.5.5.5.1.enum.",  # 15550001111 revoked: NXDOMAIN
    "9.9.9.9.9.9.9.5.5.5.1.enum.",  # missing: NXDOMAIN
    "0.0.0.0.0.0.0.7.7.7.1.enum.",  # toll-free 1777...
    "0.0.0.0.0.0.1.7.7.7.1.enum.",  # toll-free below a node of a served number
    "1.7.7.7.1.enum.",  # toll-free: an empty non-terminal's own number
    "9.9.1.0.5.5.5.2.0.2.1.enum.",  # 12025550199: signed below
    "1.0.0.0.0.0.0.9.9.9.1.enum.",  # 19990000001: toll-free after the list edit
)


def answer(port: int, name: str, rdtype: str = "NAPTR") -> tuple[Any, ...]:
    """What a server says about ``name``: rcode, AA, sorted (TTL, rdata), authority SOA."""
    query = dns.message.make_query(name, rdtype)
    query.flags &= ~dns.flags.RD
    reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=3)
    answers = sorted((rrset.ttl, r.to_text()) for rrset in reply.answer for r in rrset)
    # Negative answers carry the zone's SOA; a secondary may add its NS to positive ones.
    soa = [
        (rrset.ttl, r.to_text())
        for rrset in reply.authority
        if rrset.rdtype == dns.rdatatype.SOA
        for r in rrset
    ]
    return (dns.rcode.to_text(reply.rcode()), bool(reply.flags & dns.flags.AA), answers, soa)


def serial(port: int) -> int:
    try:
        reply = dns.query.udp(
            dns.message.make_query("enum", "SOA"), "127.0.0.1", port=port, timeout=1
        )
    except (OSError, dns.exception.Timeout):
        return -1
    return int(reply.answer[0][0].serial) if reply.answer else -1


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - started


def enumer(store: Path, *args: str) -> None:
    result = subprocess.run(
        [*ENUMER, "--store", str(store), *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


@dataclass
class Secondary:
    kind: str
    port: int
    process: subprocess.Popen[str]
    log: Path


def _start(argv: list[str], log: Path) -> subprocess.Popen[str]:
    handle = open(log, "a")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        argv, stdout=handle, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


#: The TSIG key the gateway and the NSD and Knot secondaries share (tsig-keygen's format).
SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="
KEY_FILE = f'key "xfr-key" {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};\n'


def start_nsd(directory: Path, port: int, primary: int) -> Secondary:
    """NSD as in docs/public-gateway.md: the zone from the primary, signed with the key."""
    conf = directory / "nsd.conf"
    conf.write_text(
        f"""server:
  ip-address: 127.0.0.1@{port}
  zonesdir: "{directory}"
  pidfile: "{directory}/nsd.pid"
  database: ""
  xfrdfile: "{directory}/xfrd.state"
  zonelistfile: "{directory}/zone.list"
  username: ""
  chroot: ""
  verbosity: 2
  xfrd-reload-timeout: 0
remote-control:
  control-enable: no
key:
  name: xfr-key
  algorithm: hmac-sha256
  secret: "{SECRET}"
zone:
  name: enum
  zonefile: "enum.zone"
  request-xfr: 127.0.0.1@{primary} xfr-key
  allow-notify: 127.0.0.1 NOKEY
"""
    )
    log = directory / "nsd.log"
    return Secondary("nsd", port, _start([need("nsd"), "-d", "-c", str(conf)], log), log)


def start_knot(directory: Path, port: int, primary: int) -> Secondary:
    """Knot as in docs/public-gateway.md: the zone from the primary, signed with the key."""
    conf = directory / "knot.conf"
    conf.write_text(
        f"""server:
    rundir: "{directory}"
    listen: 127.0.0.1@{port}
log:
  - target: stdout
    any: info
database:
    storage: "{directory}/db"
key:
  - id: xfr-key
    algorithm: hmac-sha256
    secret: {SECRET}
remote:
  - id: primary
    address: 127.0.0.1@{primary}
    key: xfr-key
acl:
  - id: notify_from_primary
    address: 127.0.0.1
    action: notify
template:
  - id: default
    storage: "{directory}"
zone:
  - domain: enum
    master: primary
    acl: notify_from_primary
"""
    )
    (directory / "db").mkdir(exist_ok=True)  # Knot's journal: IXFR changes are stored there
    log = directory / "knot.log"
    return Secondary("knot", port, _start([need("knotd"), "-c", str(conf)], log), log)


def start_bind(directory: Path, port: int, primary: int) -> Secondary:
    """BIND allowed by its address (the gateway's --xfr-allow 127.0.0.1), no key."""
    conf = directory / "named.conf"
    conf.write_text(
        named_options(directory, port, recursion=False, extra="notify no;")
        + f"""zone "enum" {{
    type secondary;
    primaries {{ 127.0.0.1 port {primary}; }};
    file "{directory}/enum.db";
    allow-notify {{ 127.0.0.1; }};
}};
"""
    )
    user = ["-u", "root"] if os.geteuid() == 0 else []
    log = directory / "named.log"
    argv = [need("named"), "-g", "-c", str(conf), *user]
    return Secondary("bind", port, _start(argv, log), log)


STARTERS = {"nsd": start_nsd, "knot": start_knot, "bind": start_bind}


@pytest.fixture
def tollfree(tmp_path: Path) -> Path:
    path = tmp_path / "tf.txt"
    path.write_text(TOLLFREE_FILE)
    return path


def _gateway(store: Path, tollfree: Path, port: int, kind: str, *extra: str) -> Gateway:
    key = store.parent / "xfr.key"
    key.write_text(KEY_FILE)
    # NSD and Knot sign with the key; BIND is let in by its address.
    allow = "127.0.0.1" if kind == "bind" else "key:xfr-key"
    return start_gateway(
        store,
        "--tollfree",
        f"@enum:tollfree|{tollfree}",
        "--tsig-key",
        str(key),
        "--xfr-allow",
        allow,
        "--notify",
        f"127.0.0.1:{port}",
        *extra,
    )


@pytest.fixture(params=sorted(STARTERS))
def pair(
    request: pytest.FixtureRequest, demo_store: Path, tollfree: Path, tmp_path: Path
) -> Iterator[tuple[Gateway, Secondary]]:
    port = free_port()
    gateway = _gateway(demo_store, tollfree, port, request.param)
    directory = tmp_path / request.param
    directory.mkdir()
    secondary = STARTERS[request.param](directory, port, gateway.port)
    try:
        yield gateway, secondary
    finally:
        stop(secondary.process)
        stop(gateway.process)


def test_secondary_serves_the_zone_and_every_change_by_ixfr(
    pair: tuple[Gateway, Secondary],
) -> None:
    gateway, secondary = pair
    wait_for(
        f"{secondary.kind} to load the zone",
        lambda: serial(secondary.port) == serial(gateway.port) > 0,
        timeout=60,
    )
    for name in SAMPLE:
        assert answer(secondary.port, name) == answer(gateway.port, name), name
    served = answer(secondary.port, SAMPLE[0], "A")
    assert served == answer(gateway.port, SAMPLE[0], "A") and served[0] == "NOERROR"
    wait_for("the AXFR's log line", lambda: "AXFR of enum. serial" in gateway.log.read_text())

    store = gateway.store
    changes: list[tuple[str, list[tuple[str, ...]], str]] = [
        (
            "a record signed",
            [
                ("record", "new", "+1 202 555 0199", "--sip", "sip:new@pbx.example"),
                ("verifier", "sign", "demo", "enum:12025550199:0", "--append"),
            ],
            "9.9.1.0.5.5.5.2.0.2.1.enum.",
        ),
        (
            "a signature revoked through the SRL",
            [("verifier", "revoke", "demo", "enum:12025550100:0")],
            "0.0.1.0.5.5.5.2.0.2.1.enum.",
        ),
        (
            "a record deleted",
            [("name", "delete", "enum:17771234567:0")],
            "7.6.5.4.3.2.1.7.7.7.1.enum.",
        ),
        (
            "a toll-free list edited",
            [
                (
                    "name",
                    "update",
                    "enum:tollfree",
                    "=1999\\d*\nE2U+sip=100|10|!^(.*)$!sip:\\1@tf1999.example.net!",
                    "3650",
                )
            ],
            "1.0.0.0.0.0.0.9.9.9.1.enum.",
        ),
    ]
    for what, commands, name in changes:
        before = answer(gateway.port, name)

        def write(commands: list[tuple[str, ...]] = commands) -> None:
            for command in commands:
                enumer(store, *command)

        worker = threading.Thread(target=write)
        worker.start()
        # Both servers are polled while the change is written: the clock starts
        # when the gateway answers with it and stops when the secondary does.
        seen: dict[str, float] = {}
        deadline = time.monotonic() + 60
        while "secondary" not in seen:
            assert time.monotonic() < deadline, f"{secondary.kind} never served {what}"
            now_gateway = answer(gateway.port, name)
            if "gateway" not in seen and now_gateway != before:
                seen["gateway"] = time.monotonic()
                expected = now_gateway
            if "gateway" in seen and answer(secondary.port, name)[:3] == expected[:3]:
                seen["secondary"] = time.monotonic()
            time.sleep(0.005)
        worker.join()
        delay = seen["secondary"] - seen["gateway"]
        print(f"{secondary.kind}: {what}: served {delay:.2f}s after the gateway")
        assert delay < 10
    wait_for("the serials to agree", lambda: serial(secondary.port) == serial(gateway.port))
    for name in SAMPLE:
        assert answer(secondary.port, name) == answer(gateway.port, name), name
    log = gateway.log.read_text()
    assert len(re.findall(r"\bAXFR of enum\. serial", log)) == 1, log + secondary.log.read_text()
    ixfrs = re.findall(r"\bIXFR of enum\. serial \d+ to 127\.0\.0\.1 \(from serial \d+\)", log)
    assert ixfrs, log
    assert "IXFR-as-AXFR" not in log
    if secondary.kind == "knot":
        assert "IXFR, incoming" in secondary.log.read_text()


def test_a_secondary_behind_the_journal_falls_back_to_axfr(
    demo_store: Path, tollfree: Path, tmp_path: Path
) -> None:
    port = free_port()
    gateway = _gateway(demo_store, tollfree, free_port(), "nsd", "--xfr-journal", "1")
    secondary = start_nsd(tmp_path, port, gateway.port)  # not notified by the gateway
    try:
        wait_for("nsd to load", lambda: serial(port) == serial(gateway.port) > 0, timeout=60)
        old = serial(port)
        enumer(demo_store, "name", "delete", "enum:18009359935:0")
        wait_for("a new serial", lambda: serial(gateway.port) > old)
        enumer(demo_store, "name", "delete", "enum:12025550100:0")
        wait_for("a second serial", lambda: serial(gateway.port) > old + 1)
        # The transfer zone is built just after the answer table: NOTIFY only once it is
        # (the gateway's own NOTIFY waits for it too), or the secondary may fetch the one before.
        wait_for(
            "the zone at the new serial",
            lambda: f"zone serial {serial(gateway.port)}: enum." in gateway.log.read_text(),
        )
        # The NOTIFY a newly configured --notify would send (RFC 1996, with the SOA).
        wire = notify_message(7, Origin("enum.", ZoneSpec("enum")), Apex(), serial(gateway.port))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(wire, ("127.0.0.1", port))
            assert sock.recv(512)[:2] == wire[:2]
        try:
            wait_for("nsd to converge", lambda: serial(port) == serial(gateway.port))
        except AssertionError:
            raise AssertionError(gateway.log.read_text() + secondary.log.read_text()) from None
        for name in SAMPLE:
            assert answer(port, name) == answer(gateway.port, name), name
        line = f"IXFR-as-AXFR of enum. serial {serial(port)} to 127.0.0.1 (from serial {old})"
        wait_for("the fallback's log line", lambda: line in gateway.log.read_text())
    finally:
        stop(secondary.process)
        stop(gateway.process)


@pytest.mark.parametrize("suffix", [None, ".enumer.org"])
def test_export_passes_the_zone_checkers_of_bind_nsd_and_knot(
    demo_store: Path, tollfree: Path, tmp_path: Path, suffix: str | None
) -> None:
    out = tmp_path / "enum.zone"
    args = ["zone", "export", "-o", str(out), "--quiet", "--tollfree", f"@enum:tollfree|{tollfree}"]
    args += ["--compact-names", "--suffix", suffix] if suffix else []
    enumer(demo_store, *args)
    origin = "enum" + (suffix or "")
    text = out.read_text()
    assert "*.7.7.7.1 86400 IN NAPTR" in text
    for argv in (
        [need("named-checkzone"), origin, str(out)],
        [need("nsd-checkzone"), origin, str(out)],
        [need("kzonecheck"), "-o", origin, str(out)],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (argv, result.stdout, result.stderr)
