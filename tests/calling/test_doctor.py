"""``enumer doctor`` against real hops, each configured right and then wrong.

The demo store behind a real ``enumer serve``; Debian's BIND and Unbound on
loopback forwarding the ``enum`` zone to it (right, to a wrong port, without
the forward zone, validating without ``validate-except``, caching a negative
answer); ``enumer node`` behind ``enumer serve --nvs``, then stopped; the
demo's unsigned and revoked records, one signed by an untrusted verifier and
one that Asterisk cannot parse. In each case doctor must name the right hop
and fix, in text and in JSON. The servers are shared by the whole module.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import pytest

from enumer import demo
from enumer.calling.doctor import Diagnosis, StatusInfo, diagnose, render_text
from enumer.calling.pbx import DialplanConfig, bind_stanza, unbound_stanza
from enumer.calling.probes import DoctorSetup, default_resolver, run_probes
from enumer.nvs.ledger import Ledger
from enumer.verifier import append_signature, create_verifier, sign_name
from tests.conftest import CliRunner, assert_one_error_line
from tests.support import (
    ENUMER,
    Gateway,
    free_port,
    named_options,
    start_gateway,
    start_named,
    start_unbound,
    stop,
    unbound_conf,
)

pytestmark = pytest.mark.e2e

UNTRUSTED = "+12025550142"  # signed by ver:other, the gateway trusts ver:demo
UNTRUSTED_NAME = "enum:12025550142:0"
ASTERISK_BREAKS = "+12025550188"  # \d in the ERE: Asterisk drops the answer
ASTERISK_NAME = "enum:12025550188:0"
CACHED = "+12025550177"  # signed while a resolver still holds its NXDOMAIN
CACHED_NAME = "enum:12025550177:0"
REVOKED_LATER = "+12025550166"  # revoked while a resolver still holds its answer
REVOKED_LATER_NAME = "enum:12025550166:0"
EXPIRING = "+12025550155"  # signed, rented for 10 days only
EXPIRING_NAME = "enum:12025550155:0"


def enumer_cli(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ENUMER, "--store", str(store), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@dataclass
class World:
    store: Path
    gateway: Gateway

    @property
    def gateway_addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.gateway.port)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The demo store with three more records, served by ``enumer serve``."""
    store = tmp_path_factory.mktemp("doctor") / "store"
    with Ledger(store) as ledger:  # what `enumer demo seed`, `record new` and `verifier` do
        demo.seed(ledger)
        ledger.set_setting("enumtrust", demo.DEMO_VERIFIER)
        ledger.set_setting("enumtollfree", "@" + demo.DEMO_TOLLFREE)
        create_verifier(ledger, "other", "another verifier", 3650)
        for name, regexp in (
            (UNTRUSTED_NAME, "!^.*$!sip:other@pbx.example.org!"),
            (ASTERISK_NAME, "!^\\+1(\\d+)$!sip:\\1@pbx.example.org!"),
            (CACHED_NAME, "!^.*$!sip:cached@pbx.example.org!"),
            (REVOKED_LATER_NAME, "!^.*$!sip:revoked@pbx.example.org!"),
            (EXPIRING_NAME, "!^.*$!sip:expiring@pbx.example.org!"),
        ):
            ledger.name_new(name, f"E2U+sip=100|10|{regexp}", 10 if name == EXPIRING_NAME else 365)
        signed = [("other", UNTRUSTED_NAME)] + [
            ("demo", name) for name in (ASTERISK_NAME, REVOKED_LATER_NAME, EXPIRING_NAME)
        ]
        for ident, name in signed:
            append_signature(ledger, ident, name, sign_name(ledger, ident, name))
    gateway = start_gateway(store)
    try:
        yield World(store, gateway)
    finally:
        stop(gateway.process)


def wait_for_dns(port: int, process: subprocess.Popen[str]) -> None:
    """Until the server answers CH TXT version.bind (BIND and Unbound both do)."""
    deadline = time.monotonic() + 30
    query = dns.message.make_query("version.bind", dns.rdatatype.TXT, "CH")
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stdout.read() if process.stdout else "exited")
        try:
            dns.query.udp(query, "127.0.0.1", port=port, timeout=0.3)
            return
        except (OSError, dns.exception.Timeout):
            time.sleep(0.1)
    raise AssertionError("the resolver did not start")


def _resolver(kind: str, directory: Path, options: str, body: str) -> Iterator[int]:
    """BIND (``named``) or Unbound on a free port with ``options`` and ``body``; its port."""
    port = free_port()
    conf = directory / f"{kind}.conf"
    if kind == "named":
        conf.write_text(named_options(directory, port, extra=options) + body)
        process = start_named(conf)
    else:
        conf.write_text(unbound_conf(directory, port, options) + body)
        process = start_unbound(conf)
    try:
        wait_for_dns(port, process)
        yield port
    finally:
        stop(process)


def stanza(kind: str, gateway_port: int) -> str:
    """What ``enumer pbx bind|unbound --gateway 127.0.0.1:PORT`` prints, as it is."""
    config = DialplanConfig(gateway=("127.0.0.1", gateway_port))
    return bind_stanza(config) if kind == "named" else unbound_stanza(config)


@pytest.fixture(scope="module")
def resolvers(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """Every resolver setup of the module, by name: its port."""
    gw = world.gateway.port
    nowhere = free_port()
    off = "dnssec-validation no;"
    setups = {
        "bind": ("named", off, stanza("named", gw)),
        "bind-no-zone": ("named", off, ""),
        "bind-wrong-port": ("named", off, stanza("named", nowhere)),
        "bind-validating": ("named", "dnssec-validation auto;", stanza("named", gw)),
        "unbound": ("unbound", "", stanza("unbound", gw)),
        "unbound-no-zone": ("unbound", "do-not-query-localhost: no", ""),
    }
    started: list[Iterator[int]] = []
    ports: dict[str, int] = {}
    try:
        for name, (kind, options, body) in setups.items():
            runner = _resolver(kind, tmp_path_factory.mktemp(name), options, body)
            ports[name] = next(runner)
            started.append(runner)
        yield ports
    finally:
        for runner in started:
            next(runner, None)


def run_doctor(world: World, number: str, resolver: int | None = None, **options: Any) -> Diagnosis:
    """The doctor as the command runs it, in this process (the servers are real)."""
    setup = DoctorSetup(
        dialled=number,
        resolver=("127.0.0.1", resolver if resolver is not None else world.gateway.port),
        gateway=options.pop("gateway", world.gateway_addr),
        store=options.pop("store", world.store),
        **options,
    )
    probes, seconds = run_probes(setup)
    diagnosis = diagnose(probes)
    diagnosis.seconds = seconds
    return diagnosis


def assert_names(diagnosis: Diagnosis, hop: str, *fix: str) -> dict[str, Any]:
    """The first failing hop is ``hop``, its fix contains ``fix``, in JSON and in text."""
    data = json.loads(json.dumps(diagnosis.to_json()))
    text = render_text(diagnosis)
    assert data["first_failure"] == hop, text
    for part in fix:
        assert part in data["fix"], text
    failing = [h for h in data["hops"] if h["status"] == "fail"]
    assert failing[0]["hop"] == hop
    assert f"FAIL {hop}" in text
    assert f"first hop to mend: {hop}: {data['fix']}" in text
    return data


# -- everything right ------------------------------------------------------------------------


@pytest.mark.parametrize("resolver", ["bind", "unbound"])
def test_passes_when_every_hop_is_right(
    world: World, resolvers: dict[str, int], resolver: str
) -> None:
    diagnosis = run_doctor(world, "+1 800 935 9935", resolvers[resolver], pbx="freeswitch")
    text = render_text(diagnosis)
    assert diagnosis.over_enumer, text
    assert diagnosis.first_failure is None, text
    data = diagnosis.to_json()
    assert data["verdict"] == "enumer"
    assert data["dial"] == "sofia/${use_profile}/+18009359935@pbx.example.com"
    assert [h["hop"] for h in data["hops"]] == [
        "dialplan", "resolver", "gateway", "status", "chain", "records", "pbx",
    ]  # fmt: skip
    assert {h["status"] for h in data["hops"]} == {"ok"}, text
    version = "unbound" if resolver == "unbound" else "9."
    assert version in data["hops"][1]["details"][0]
    assert "verdict: called over ENUMER: sofia/${use_profile}/+18009359935@pbx.example.com" in text
    assert data["seconds"] < 3


def test_the_command_exit_status_and_json(
    world: World, resolvers: dict[str, int], enumer: CliRunner
) -> None:
    common = [
        "--gateway",
        f"127.0.0.1:{world.gateway.port}",
        "--resolver",
        f"127.0.0.1:{resolvers['bind']}",
    ]
    good = enumer(
        "doctor", "+18009359935", *common, "--pbx", "kamailio", "--json", store=world.store
    )
    assert good.returncode == 0, good.stderr
    data = good.json()
    assert data["verdict"] == "enumer" and data["uri"] == "sip:+18009359935@pbx.example.com"
    assert data["compat"]["summary"]["kamailio"]["status"] == "yes"
    bad = enumer("doctor", "+15551234567", *common, store=world.store)
    assert bad.returncode == 1, bad.stderr
    assert "FAIL records" in bad.stdout
    assert bad.stdout.rstrip().splitlines()[-1].startswith("first hop to mend: records: ")
    assert "--resolver" in assert_one_error_line(
        enumer("doctor", "+18009359935", "--resolver", "resolver.example"), 2
    )
    assert "one chain source" in assert_one_error_line(
        enumer(
            "doctor",
            "+18009359935",
            "--nvs",
            "http://127.0.0.1:1/",
            "--upstream",
            "http://127.0.0.1:2/",
        ),
        2,
    )
    assert "pbx" in assert_one_error_line(enumer("doctor", "+18009359935", "--pbx", "sipx"), 2)


def test_the_default_resolver_is_the_first_nameserver(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search example.net\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n")
    assert default_resolver(str(conf)) == ("192.0.2.53", 53)


# -- the resolver ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resolver", "fix"),
    [
        ("bind-no-zone", "forwarders { 127.0.0.1 port {gw}; }"),
        ("bind-wrong-port", "forwarders { 127.0.0.1 port {gw}; }"),
        ("unbound-no-zone", "forward-addr: 127.0.0.1@{gw}"),
    ],
)
def test_a_resolver_that_does_not_reach_the_gateway(
    world: World, resolvers: dict[str, int], resolver: str, fix: str
) -> None:
    diagnosis = run_doctor(world, "+18009359935", resolvers[resolver], timeout=0.7)
    data = assert_names(diagnosis, "resolver", fix.replace("{gw}", str(world.gateway.port)))
    assert data["verdict"] == "pstn"
    assert [h["status"] for h in data["hops"][2:6]] == ["ok", "ok", "ok", "ok"]
    assert data["seconds"] < 4


def test_a_validating_resolver_without_validate_except(
    world: World, resolvers: dict[str, int]
) -> None:
    diagnosis = run_doctor(world, "+18009359935", resolvers["bind-validating"], timeout=2)
    data = assert_names(diagnosis, "resolver", 'validate-except { "enum"; };')
    assert "DNSSEC" in data["hops"][1]["summary"]


def test_a_resolver_caching_a_negative_answer(world: World, resolvers: dict[str, int]) -> None:
    port = resolvers["bind"]
    before = run_doctor(world, CACHED, port)  # BIND now caches the NXDOMAIN for 300 s
    assert_names(before, "records", "enumer verifier sign demo enum:12025550177:0 --append")
    enumer_cli(world.store, "verifier", "sign", "demo", CACHED_NAME, "--append")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        diagnosis = run_doctor(world, CACHED, port)
        if diagnosis.hops[2].summary.startswith("agrees with the records (1 route"):
            break
        time.sleep(0.2)
    data = assert_names(diagnosis, "resolver", "rndc flushname 7.7.1.0.5.5.5.2.0.2.1.enum")
    assert "cached" in data["hops"][1]["summary"]


def test_a_resolver_serving_a_revoked_record_from_its_cache(
    world: World, resolvers: dict[str, int]
) -> None:
    port = resolvers["bind"]
    assert run_doctor(world, REVOKED_LATER, port).over_enumer  # BIND caches it for a day
    enumer_cli(world.store, "verifier", "revoke", "demo", REVOKED_LATER_NAME)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        diagnosis = run_doctor(world, REVOKED_LATER, port)
        if diagnosis.hops[2].summary.startswith("agrees with the records (NXDOMAIN"):
            break
        time.sleep(0.2)
    data = assert_names(diagnosis, "resolver", "rndc flushname 6.6.1.0.5.5.5.2.0.2.1.enum")
    assert "serves a cached answer the gateway no longer gives" in data["hops"][1]["summary"]
    assert data["hops"][5]["summary"].endswith("the signature of ver:demo is revoked (SRL)")
    # The PBX would still call the revoked route until the cache forgets it.
    assert data["verdict"] == "enumer" and data["uri"] == "sip:revoked@pbx.example.org"


# -- the gateway and the chain source ----------------------------------------------------------


def test_a_gateway_that_is_not_running(world: World) -> None:
    port = free_port()
    diagnosis = run_doctor(world, "+18009359935", port, gateway=("127.0.0.1", port), timeout=0.5)
    data = assert_names(diagnosis, "gateway", f"enumer serve --bind 127.0.0.1 --port {port}")
    assert data["hops"][1]["status"] == "skip"
    assert data["verdict"] == "pstn"


def test_a_gateway_rate_limiting_the_client(world: World) -> None:
    """Silent over UDP, answering over TCP: the limiter drops this client's queries, and the
    fix is to exempt the resolver, not to start a gateway."""
    limited = start_gateway(world.store, "--ratelimit-exempt", "none", "--qps", "1")
    halt = threading.Event()

    def flood() -> None:  # a busy client at the same address as the doctor
        query = dns.message.make_query("53995390081.enum", "NAPTR").to_wire()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            while not halt.is_set():
                sock.sendto(query, ("127.0.0.1", limited.port))
                halt.wait(0.01)

    flooder = threading.Thread(target=flood)
    flooder.start()
    try:
        time.sleep(0.5)  # the client's bucket is empty
        diagnosis = run_doctor(
            world, "+18009359935", gateway=("127.0.0.1", limited.port), timeout=0.5
        )
    finally:
        halt.set()
        flooder.join()
        stop(limited.process)
    data = assert_names(diagnosis, "gateway", "--ratelimit-exempt")
    gateway_hop = next(h for h in data["hops"] if h["hop"] == "gateway")
    assert "rate-limiting this client" in gateway_hop["summary"]


def test_a_zone_the_gateway_does_not_serve(world: World) -> None:
    diagnosis = run_doctor(world, "+18009359935", zone="e164")
    data = assert_names(diagnosis, "gateway", "enumer serve --allowed '$e164'")
    assert data["hops"][3]["status"] == "fail"
    assert "the zone e164 is not served" in data["hops"][3]["summary"]


def test_status_fields() -> None:
    info = StatusInfo.parse(
        "enumer 0.1.0; height 12; served numbers 4; synced 7s ago; zones $enum|~test; "
        "trust ver:demo|ver:x; error: cannot connect; refused"
    )
    assert (info.height, info.served, info.synced_ago) == (12, 4, 7.0)
    assert info.zones == ("$enum", "~test") and info.serves("test") and not info.serves("e164")
    assert info.trust == "ver:demo|ver:x" and info.error == "cannot connect; refused"
    old = StatusInfo.parse("enumer 0.0.9; height 3; served numbers 1; synced 0s ago")
    assert old.zones is None and old.serves("enum") is None and old.trust_list is None


USER, PASSWORD = "doctor", "pass word"


@pytest.fixture(scope="module")
def node_world(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[subprocess.Popen[str], str, Gateway]]:
    """``enumer node`` on a copy of the store, and ``enumer serve --nvs`` mirroring it."""
    where = tmp_path_factory.mktemp("node")
    shutil.copytree(world.store, where / "node", ignore=shutil.ignore_patterns("gateway-*"))
    port = free_port()
    log = where / "node.log"
    with open(log, "w") as handle:
        node = subprocess.Popen(
            [*ENUMER, "--store", str(where / "node"), "node", "--rpcport", str(port),
             "--rpcuser", USER, "--rpcpassword", PASSWORD],
            stdout=handle, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while "ready" not in log.read_text():
        assert node.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    url = f"http://{USER}:pass%20word@127.0.0.1:{port}/"
    gateway = start_gateway(where / "gateway", "--nvs", url, "--trust", "ver:demo", "--poll", "0.5")
    try:
        yield node, url, gateway
    finally:
        stop(gateway.process)
        stop(node)


def test_a_node_behind_the_gateway_then_stopped(
    world: World, node_world: tuple[subprocess.Popen[str], str, Gateway], tmp_path: Path
) -> None:
    node, url, gateway = node_world
    addr = ("127.0.0.1", gateway.port)
    healthy = run_doctor(world, "+18009359935", gateway.port, gateway=addr, nodes=[url], store=None)
    assert healthy.over_enumer and healthy.first_failure is None, render_text(healthy)
    chain = healthy.to_json()["hops"][4]
    assert chain["status"] == "ok" and "initial block download no" in chain["details"][0]
    assert "rpcuser 'doctor'" in chain["details"][0] and PASSWORD not in json.dumps(
        healthy.to_json()
    )
    # Wrong credentials, and the node named by an emercoin.conf.
    wrong = url.replace("pass%20word", "wrong")
    refused = run_doctor(
        world, "+18009359935", gateway.port, gateway=addr, nodes=[wrong], store=None
    )
    assert_names(refused, "chain", "rpcuser/rpcpassword in emercoin.conf")
    conf = tmp_path / "emercoin.conf"
    rpcport = url.rsplit(":", 1)[1].strip("/")
    conf.write_text(f"rpcport={rpcport}\nrpcuser={USER}\nrpcpassword={PASSWORD}\n")
    from_conf = run_doctor(world, "+18009359935", gateway.port, gateway=addr, conf=conf, store=None)
    assert from_conf.first_failure is None, render_text(from_conf)
    assert from_conf.hops[4].where == f"node http://127.0.0.1:{rpcport}/ (from {conf})"
    # Two upstreams, one of them down: the chain hop warns and names it; the records are
    # read from the other one.
    dead = f"http://127.0.0.1:{free_port()}/"
    both = run_doctor(
        world, "+18009359935", gateway.port, gateway=addr, nodes=[url, dead], store=None
    )
    chain = both.to_json()["hops"][4]
    assert chain["status"] == "warn" and chain["where"] == f"upstream {dead}"
    assert chain["summary"].startswith("1 of 2 sources fail: cannot connect")
    assert both.over_enumer and both.to_json()["hops"][5]["status"] == "ok"
    stop(node)
    time.sleep(1.5)  # the gateway polls every 0.5 s and then reports the outage
    down = run_doctor(world, "+18009359935", gateway.port, gateway=addr, nodes=[url], store=None)
    data = assert_names(down, "chain", "start the node")
    # The gateway keeps serving its index: the call still goes over ENUMER.
    assert data["verdict"] == "enumer"
    assert data["hops"][3]["status"] == "warn" and "cannot update" in data["hops"][3]["summary"]
    assert data["hops"][5]["status"] == "skip"
    assert "but chain fails" in render_text(down)


# -- the records --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "summary", "fix"),
    [
        (
            "+15551234567",
            "enum:15551234567:0 is not signed",
            "enumer verifier sign demo enum:15551234567:0 --append",
        ),
        (
            "+15550001111",
            "the signature of ver:demo is revoked (SRL)",
            "enumer record new +15550001111",
        ),
        (
            UNTRUSTED,
            "signed by ver:other, which the gateway does not trust (ver:demo)",
            "enumtrust=ver:demo|ver:other",
        ),
        ("+19995550000", "no record enum:19995550000:N", "enumer record new +19995550000"),
    ],
)
def test_records_that_are_not_served(
    world: World, resolvers: dict[str, int], number: str, summary: str, fix: str
) -> None:
    diagnosis = run_doctor(world, number, resolvers["bind"])
    data = assert_names(diagnosis, "records", fix)
    assert summary in data["hops"][5]["summary"]
    assert data["verdict"] == "pstn" and data["reason"].startswith("records: ")
    assert [h["status"] for h in data["hops"][1:5]] == ["ok", "ok", "ok", "ok"]


def test_a_record_about_to_expire_is_served_with_a_warning(world: World) -> None:
    diagnosis = run_doctor(world, EXPIRING)
    assert diagnosis.over_enumer and diagnosis.first_failure is None
    records = diagnosis.to_json()["hops"][5]
    assert records["status"] == "warn"
    assert "enum:12025550155:0 expires in" in records["summary"]
    assert records["fix"] == (
        f"renew it: enumer name show {EXPIRING_NAME} --json | jq -r .value | "
        f"enumer name update {EXPIRING_NAME} - 365"
    )
    assert f"fix: {records['fix']}" in render_text(diagnosis)


def test_a_record_the_chosen_pbx_cannot_use(world: World) -> None:
    asterisk = run_doctor(world, ASTERISK_BREAKS, pbx="asterisk")
    data = assert_names(asterisk, "pbx", f"enumer record check {ASTERISK_BREAKS}")
    assert "POSIX regexes have no \\d" in data["hops"][6]["summary"]
    assert data["verdict"] == "pstn"
    freeswitch = run_doctor(world, ASTERISK_BREAKS, pbx="freeswitch")
    assert (
        freeswitch.over_enumer
        and freeswitch.dial == "sofia/${use_profile}/2025550188@pbx.example.org"
    )


def test_a_number_the_dialplan_cannot_normalise(world: World) -> None:
    diagnosis = run_doctor(world, "555 0100", region="US", pbx="kamailio")
    assert_names(diagnosis, "dialplan", "enumer pbx kamailio --region US")
    local = run_doctor(world, "555 0100", region="US", area_code="202", pbx="kamailio")
    assert local.hops[0].summary == (
        "555 0100 is +12025550100: the PBX must ask NAPTR 0.0.1.0.5.5.5.2.0.2.1.enum"
    )
    assert local.hops[0].details == ['dialplan: $rU = "+12025550100"; enum_query("enum.");']
    assert local.over_enumer
