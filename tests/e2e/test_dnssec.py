"""DNSSEC end to end (issue 15): real validators trust ``enumer serve --dnssec-keys``.

The demo store, with a number's extension and neighbours added, served signed
by a gateway whose keys ``enumer dnssec keygen`` made.  Debian's Unbound and
BIND, configured by what ``enumer pbx unbound|bind --dnssec`` prints, forward
``enum.`` to it and validate: a served number is NOERROR with AD, a missing
one NXDOMAIN with AD, another type NODATA with AD.  A proxy that changes one
byte of the NAPTR on the way makes the answer SERVFAIL; so does a resolver
whose clock (faketime) is past the signatures' expiry.  With aggressive
negative caching, an NXDOMAIN does not hide a served neighbour.  ``delv``
validates the same answers; ``ldns-verify-zone`` and ``dnssec-verify`` accept
the exported zone; NSD takes the signed zone by AXFR and Unbound validates
through it.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.dnssec
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import httpx
import pytest

from enumer import demo
from enumer.nvs.ledger import Ledger
from enumer.verifier import append_signature, sign_name
from tests.calling.test_doctor import wait_for_dns
from tests.e2e.test_secondaries import Secondary, _start, serial, start_nsd, wait_for
from tests.support import (
    ENUMER,
    Gateway,
    free_port,
    named_options,
    need,
    start_gateway,
    start_named,
    start_unbound,
    stop,
    unbound_conf,
)

pytestmark = pytest.mark.e2e

SERVED = "5.3.9.9.5.3.9.0.0.8.1.enum."  # 18009359935
EXTENSION = "1.5.3.9.9.5.3.9.0.0.8.1.enum."  # 180093599351, added below
NEIGHBOUR = "7.3.9.9.5.3.9.0.0.8.1.enum."  # 18009359937, added below
MISSING = "6.3.9.9.5.3.9.0.0.8.1.enum."  # 18009359936: between the two
MISSING_FAR = "9.9.9.9.9.9.9.5.5.5.1.enum."
UNSIGNED = "7.6.5.4.3.2.1.5.5.5.1.enum."  # 15551234567: an unsigned record only
ADDED = {"enum:180093599351:0": "extension", "enum:18009359937:0": "neighbour"}


def cli(store: Path, *args: str) -> str:
    result = subprocess.run(
        [*ENUMER, "--store", str(store), *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@dataclass
class World:
    store: Path
    keys: Path
    gateway: Gateway
    metrics: int = 0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    store = tmp_path_factory.mktemp("dnssec") / "store"
    with Ledger(store) as ledger:
        demo.seed(ledger)
        ledger.set_setting("enumtrust", demo.DEMO_VERIFIER)
        for name, who in ADDED.items():
            ledger.name_new(name, f"E2U+sip=100|10|!^.*$!sip:{who}@pbx.example.org!", 365)
            append_signature(ledger, "demo", name, sign_name(ledger, "demo", name))
    made = cli(store, "dnssec", "keygen", "--zone", "enum", "--split").split()
    assert len(made) == 2 and all(m.startswith("Kenum.+013+") for m in made)
    keys = store / "dnssec"
    metrics = free_port()
    gateway = start_gateway(
        store,
        "--dnssec-keys",
        str(keys),
        "--xfr-allow",
        "127.0.0.1",
        "--metrics",
        f"127.0.0.1:{metrics}",
    )
    try:
        yield World(store, keys, gateway, metrics)
    finally:
        stop(gateway.process)


def stanza(world: World, kind: str, port: int) -> str:
    return cli(world.store, "pbx", kind, "--dnssec", "--gateway", f"127.0.0.1:{port}")


@pytest.fixture
def resolver(request: pytest.FixtureRequest, world: World, tmp_path: Path) -> Iterator[int]:
    """A validating Unbound or BIND forwarding ``enum.`` to the gateway (or ``target``)."""
    kind, target, options, prefix = request.param
    yield from run_resolver(world, tmp_path, kind, target or world.gateway.port, options, prefix)


def run_resolver(
    world: World,
    directory: Path,
    kind: str,
    target: int,
    options: str = "",
    prefix: list[str] | None = None,
) -> Iterator[int]:
    port = free_port()
    text = stanza(world, "bind" if kind == "named" else "unbound", target)
    if kind == "named":
        conf = directory / "named.conf"
        conf.write_text(
            named_options(directory, port, extra="dnssec-validation yes;\n" + options) + text
        )
        process = start_named(conf)
    else:
        conf = directory / "unbound.conf"
        body = text.replace("server:\n", "", 1)
        conf.write_text(unbound_conf(directory, port, options) + body)
        binary = need("unbound")
        process = (
            subprocess.Popen(
                [*(prefix or []), binary, "-d", "-c", str(conf)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            if prefix
            else start_unbound(conf)
        )
    try:
        wait_for_dns(port, process)
        yield port
    finally:
        stop(process)


def ask(port: int, name: str, rdtype: str = "NAPTR") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=10)


def validated(reply: dns.message.Message) -> bool:
    return bool(reply.flags & dns.flags.AD)


BOTH = [("unbound", None, "", None), ("named", None, "", None)]


@pytest.mark.parametrize("resolver", BOTH, indirect=True, ids=["unbound", "bind"])
def test_validating_resolvers_trust_the_answers(resolver: int) -> None:
    reply = ask(resolver, SERVED)
    assert reply.rcode() == dns.rcode.NOERROR and validated(reply)
    assert "sip:\\\\1@pbx.example.com" in reply.answer[0].to_text()
    for name in (EXTENSION, NEIGHBOUR):
        reply = ask(resolver, name)
        assert reply.rcode() == dns.rcode.NOERROR and validated(reply), name
    for name in (MISSING, MISSING_FAR, UNSIGNED):
        reply = ask(resolver, name)
        assert reply.rcode() == dns.rcode.NXDOMAIN and validated(reply), name
    reply = ask(resolver, SERVED, "TXT")
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer and validated(reply)
    reply = ask(resolver, "8.1.enum.")  # an empty non-terminal on the way to numbers
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer and validated(reply)


class TamperingProxy:
    """A UDP proxy to the gateway that changes one byte of every NAPTR answer's RDATA."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.altered = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                data, client = self.sock.recvfrom(4096)
            except OSError:
                return
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
                up.settimeout(3)
                up.sendto(data, ("127.0.0.1", self.target))
                try:
                    reply = bytearray(up.recv(65535))
                except OSError:
                    continue
            at = reply.find(b"pbx.example.com")  # the regexp of the served number
            if at > 0:
                reply[at] ^= 0x01  # "qbx": one byte of the NAPTR
                self.altered += 1
            self.sock.sendto(bytes(reply), client)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("kind", ["unbound", "named"])
def test_an_answer_altered_on_the_path_is_servfail(world: World, tmp_path: Path, kind: str) -> None:
    proxy = TamperingProxy(world.gateway.port)
    try:
        tcp_off = "tcp-upstream: no" if kind == "unbound" else ""
        for port in run_resolver(world, tmp_path, kind, proxy.port, tcp_off):
            assert ask(port, SERVED).rcode() == dns.rcode.SERVFAIL
            assert proxy.altered >= 1
            reply = ask(port, NEIGHBOUR)  # an untouched answer through the same proxy
            assert reply.rcode() == dns.rcode.NOERROR and validated(reply)
    finally:
        proxy.close()


def test_expired_signatures_are_servfail(world: World, tmp_path: Path) -> None:
    """The resolver's clock 30 days on: the gateway's signatures (14 days) have expired.
    One day on they are still good (faketime itself breaks nothing)."""
    for shift, valid in (("+1d", True), ("+30d", False)):
        later = [need("faketime"), "-f", shift]
        (tmp_path / shift).mkdir()
        for port in run_resolver(world, tmp_path / shift, "unbound", world.gateway.port, "", later):
            for name, rcode in ((SERVED, dns.rcode.NOERROR), (MISSING, dns.rcode.NXDOMAIN)):
                reply = ask(port, name)
                if valid:
                    assert reply.rcode() == rcode and validated(reply), (shift, name)
                else:
                    assert reply.rcode() == dns.rcode.SERVFAIL, (shift, name)


def test_aggressive_negative_caching_does_not_hide_a_neighbour(
    world: World, tmp_path: Path
) -> None:
    """After the NXDOMAIN of a number between two served ones (and below a served
    number's node), the cached NSEC spans must not swallow either of them."""
    options = "aggressive-nsec: yes\nharden-below-nxdomain: yes"
    for port in run_resolver(world, tmp_path, "unbound", world.gateway.port, options):
        for name in (MISSING, "2.5.3.9.9.5.3.9.0.0.8.1.enum.", "0.5.3.9.9.5.3.9.0.0.8.1.enum."):
            reply = ask(port, name)
            assert reply.rcode() == dns.rcode.NXDOMAIN and validated(reply), name
        for name in (SERVED, EXTENSION, NEIGHBOUR):
            reply = ask(port, name)
            assert reply.rcode() == dns.rcode.NOERROR and validated(reply), name
            assert reply.answer[0].rdtype == dns.rdatatype.NAPTR


def anchor_file(world: World, path: Path) -> Path:
    block = cli(world.store, "dnssec", "ds").split("// named.conf\n", 1)[1]
    path.write_text(block)
    return path


def test_delv_validates_the_answers(world: World, tmp_path: Path) -> None:
    anchors = anchor_file(world, tmp_path / "anchors.conf")

    def delv(name: str, rdtype: str = "NAPTR") -> str:
        return (
            subprocess.run(
                [
                    need("delv"),
                    "-a",
                    str(anchors),
                    "+root=enum",
                    "@127.0.0.1",
                    "-p",
                    str(world.gateway.port),
                    name,
                    rdtype,
                ],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout
            + "\n"
        )

    assert "; fully validated" in delv(SERVED) and "pbx.example.com" in delv(SERVED)
    assert "negative response, fully validated" in delv(MISSING)
    assert "NXDOMAIN" in delv(MISSING)
    assert "negative response, fully validated" in delv(SERVED, "TXT")
    assert "; fully validated" in delv("enum.", "DNSKEY")


def test_the_exported_zone_passes_ldns_verify_zone_and_dnssec_verify(
    world: World, tmp_path: Path
) -> None:
    out = tmp_path / "enum.zone"
    cli(world.store, "zone", "export", "--quiet", "--dnssec-keys", str(world.keys), "-o", str(out))
    text = out.read_text()
    assert " IN DNSKEY 257 3 13 " in text and " IN DNSKEY 256 3 13 " in text
    assert f"{SERVED} 86400 IN RRSIG NAPTR 13 12 86400 " in text
    ldns = subprocess.run(
        [need("ldns-verify-zone"), str(out)], capture_output=True, text=True, timeout=60
    )
    assert ldns.returncode == 0, ldns.stdout + ldns.stderr
    verify = subprocess.run(
        [need("dnssec-verify"), "-o", "enum", str(out)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and "Zone fully signed" in verify.stdout + verify.stderr


def test_nsd_serves_the_signed_zone_and_unbound_validates_through_it(
    world: World, tmp_path: Path
) -> None:
    """NSD takes the signed zone by AXFR, then a change by NOTIFY and a signed IXFR (the
    new number, its predecessor's NSEC, the apex); Unbound validates through NSD."""
    store = tmp_path / "store"
    subprocess.run(["cp", "-a", str(world.store), str(store)], check=True)
    for snap in store.glob("gateway-*.snapshot"):
        snap.unlink()
    directory = tmp_path / "nsd"
    directory.mkdir()
    port = free_port()
    gateway = start_gateway(
        store,
        "--dnssec-keys",
        str(store / "dnssec"),
        "--xfr-allow",
        "127.0.0.1",
        "--notify",
        f"127.0.0.1:{port}",
    )
    secondary = start_nsd_plain(directory, port, gateway.port)
    try:
        wait_for("nsd to load", lambda: serial(port) == serial(gateway.port) > 0, 60)
        direct = ask(port, SERVED)
        assert any(r.rdtype == dns.rdatatype.RRSIG for r in direct.answer)
        for resolver in run_resolver(world, tmp_path, "unbound", port):
            for name in (SERVED, NEIGHBOUR):
                reply = ask(resolver, name)
                assert reply.rcode() == dns.rcode.NOERROR and validated(reply), name
            reply = ask(resolver, MISSING)
            assert reply.rcode() == dns.rcode.NXDOMAIN and validated(reply)
            # a change: MISSING's number gets a signed record (between SERVED and NEIGHBOUR)
            before = serial(gateway.port)
            name = "enum:18009359936:0"
            with Ledger(store) as ledger:
                ledger.name_new(name, "E2U+sip=100|10|!^.*$!sip:new@pbx.example.org!", 365)
                append_signature(ledger, "demo", name, sign_name(ledger, "demo", name))
            wait_for("the gateway's new serial", lambda b=before: serial(gateway.port) > b, 60)
            wait_for("nsd's IXFR", lambda: serial(port) == serial(gateway.port), 60)
            for probe in (MISSING, SERVED, EXTENSION):
                direct = ask(port, probe)
                assert direct.rcode() == dns.rcode.NOERROR and direct.answer, probe
            fresh = ask(resolver, "9.8.7.6.5.4.3.2.1.0.9.enum.")  # a denial from the new chain
            assert fresh.rcode() == dns.rcode.NXDOMAIN and validated(fresh)
        for resolver in run_resolver(world, tmp_path / "nsd", "unbound", port):
            reply = ask(resolver, MISSING)
            assert reply.rcode() == dns.rcode.NOERROR and validated(reply)
            assert "sip:new@pbx.example.org" in reply.answer[0].to_text()
            reply = ask(resolver, "5.3.9.9.5.3.9.0.0.8.1.enum.", "TXT")  # SERVED's new NSEC
            assert reply.rcode() == dns.rcode.NOERROR and validated(reply)
    finally:
        stop(secondary.process)
        stop(gateway.process)
    log = gateway.log.read_text()
    assert "IXFR of enum." in log and "IXFR-as-AXFR" not in log, log


def start_nsd_plain(directory: Path, port: int, primary: int) -> Secondary:
    """NSD taking the zone without TSIG (the gateway allows 127.0.0.1)."""
    secondary = start_nsd(directory, port, primary)
    stop(secondary.process)
    conf = directory / "nsd.conf"
    conf.write_text(conf.read_text().replace(" xfr-key\n", " NOKEY\n"))
    secondary.process = _start([need("nsd"), "-d", "-c", str(conf)], secondary.log)
    return secondary


def signing_tags(port: int, name: str, rdtype: str = "NAPTR") -> set[int]:
    """Key tags of the RRSIGs the gateway itself gives for ``name``."""
    reply = ask(port, name, rdtype)
    return {
        r.key_tag for rrset in reply.answer if rrset.rdtype == dns.rdatatype.RRSIG for r in rrset
    }


def dnskey_tags(port: int) -> set[int]:
    reply = ask(port, "enum.", "DNSKEY")
    return {
        dns.dnssec.key_id(r)
        for rrset in reply.answer
        if rrset.rdtype == dns.rdatatype.DNSKEY
        for r in rrset
    }


def test_a_zsk_rollover_by_pre_publication(world: World, tmp_path: Path) -> None:
    """docs/dnssec.md's ZSK rollover, on a gateway of its own, with a validating Unbound
    whose cache holds the DNSKEY set throughout: publish the new ZSK before it signs,
    let it sign, retire the old one with BIND's dnssec-settime (our files are BIND's)."""
    store = tmp_path / "store"
    subprocess.run(["cp", "-a", str(world.store), str(store)], check=True)
    keys = store / "dnssec"
    gateway = start_gateway(store, "--dnssec-keys", str(keys))
    try:
        port = gateway.port
        before = dnskey_tags(port)
        (old_zsk,) = signing_tags(port, SERVED)
        assert len(before) == 2 and old_zsk in before
        made = cli(store, "dnssec", "keygen", "--zone", "enum", "--zsk", "--activate-in", "6")
        new_zsk = int(made.strip().rsplit("+", 1)[1])
        # the old ZSK stops signing when the new one starts (dnssec-settime -I)
        private = (keys / f"{made.strip()}.private").read_text()
        activate = next(
            line.split()[1] for line in private.splitlines() if line.startswith("Activate:")
        )
        old_file = next(keys.glob(f"Kenum.+013+{old_zsk:05d}.key"))
        subprocess.run(
            [need("dnssec-settime"), "-I", activate, str(old_file)], check=True, capture_output=True
        )
        wait_for("the new ZSK published", lambda: dnskey_tags(port) == before | {new_zsk})
        assert signing_tags(port, SERVED) == {old_zsk}  # published, not yet signing
        for resolver in run_resolver(world, tmp_path, "unbound", port):
            reply = ask(resolver, SERVED)  # Unbound now caches the three-key DNSKEY set
            assert reply.rcode() == dns.rcode.NOERROR and validated(reply)
            wait_for("the new ZSK signing", lambda: signing_tags(port, NEIGHBOUR) == {new_zsk})
            reply = ask(resolver, NEIGHBOUR)  # signed by the new ZSK, validated from cache
            assert reply.rcode() == dns.rcode.NOERROR and validated(reply)
            subprocess.run(
                [need("dnssec-settime"), "-D", "now", str(old_file)],
                check=True,
                capture_output=True,
            )
            wait_for("the old ZSK removed", lambda: old_zsk not in dnskey_tags(port))
            reply = ask(resolver, EXTENSION)
            assert reply.rcode() == dns.rcode.NOERROR and validated(reply)
            assert signing_tags(port, MISSING_FAR, "NAPTR") == set()  # a denial: no answer
    finally:
        stop(gateway.process)
    log = gateway.log.read_text()
    assert "signed" in log and "again" in log
    assert "PrivateKey" not in log and all(
        line.split(":", 1)[1].strip() not in log
        for path in keys.glob("*.private")
        for line in path.read_text().splitlines()
        if line.startswith("PrivateKey")
    )


def test_status_and_metrics_show_the_keys_and_the_earliest_expiry(world: World) -> None:
    query = dns.message.make_query("status.enumer", "TXT", "CH")
    reply = dns.query.udp(query, "127.0.0.1", port=world.gateway.port, timeout=5)
    status = b"".join(b"".join(r.strings) for r in reply.answer[0]).decode()
    tags = {int(p.stem.rsplit("+", 1)[1]): p for p in world.keys.glob("*.key")}
    assert "; dnssec enum. keys " in status and "; signatures expire 20" in status
    for tag in tags:
        assert f"13/{tag} " in status
    assert "ksk active" in status and "zsk active" in status
    text = httpx.get(f"http://127.0.0.1:{world.metrics}/metrics", timeout=5).text
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("enumer_dnssec_")
    }
    assert 13 * 86400 < values["enumer_dnssec_signature_expiry_seconds"] <= 14 * 86400
    assert values["enumer_dnssec_keys_published"] == 2
    assert values["enumer_dnssec_keys_active"] == 2
    assert values["enumer_dnssec_signed_answers"] >= 9


def test_a_restart_serves_the_kept_signatures_and_unbound_validates_them(
    world: World, tmp_path: Path
) -> None:
    """The signatures are kept beside the snapshot soon after the signing; a restart
    serves them without signing, and a validating Unbound trusts what it serves; a
    start without keys removes them."""
    store = tmp_path / "store"
    subprocess.run(["cp", "-a", str(world.store), str(store)], check=True)
    for old in store.glob("gateway-*.snapshot.signed"):
        old.unlink()  # the world gateway's: this one keeps its own
    first = start_gateway(store, "--dnssec-keys", str(store / "dnssec"), "--poll", "0.2")
    try:
        deadline = time.monotonic() + 20
        while not list(store.glob("gateway-*.snapshot.signed")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(store.glob("gateway-*.snapshot.signed")), first.log.read_text()
        assert "signed " in first.log.read_text()
    finally:
        stop(first.process)
    again = start_gateway(store, "--dnssec-keys", str(store / "dnssec"))
    try:
        log = again.log.read_text()
        assert "kept the signatures of" in log and "not reused" not in log, log
        (tmp_path / "unbound").mkdir()
        for port in run_resolver(world, tmp_path / "unbound", "unbound", again.port, ""):
            for name, rcode in ((SERVED, dns.rcode.NOERROR), (MISSING, dns.rcode.NXDOMAIN)):
                reply = ask(port, name)
                assert reply.rcode() == rcode and validated(reply), name
    finally:
        stop(again.process)
    plain = start_gateway(store)  # no keys: what was kept for them goes
    stop(plain.process)
    assert not list(store.glob("gateway-*.snapshot.signed"))
