"""``enumer serve --nvs`` mirroring a real ``enumer node``: processes, HTTP and DNS on loopback.

Every scenario runs the real programs: ``enumer node`` on a copy of a seeded
regtest store, ``enumer serve --nvs URL --poll 0.3`` on a store of its own
(its index is ``<store>/node-index``), the ``enumer --nvs URL ...`` commands
that change the names, and dnspython asking the gateway over UDP.  A change
must reach the DNS answer within :data:`WAIT` seconds; the tests poll with a
deadline and never assert after a fixed sleep.

The node and gateway that scenarios without lasting side effects share are
module-scoped; scenarios that change what everything else relies on (the
verifier's key, the height, the node's life) get fresh ones.

The last tests drive the gateway's update step (``ChainMirror.sync_once`` then
``AnswerTable.refresh``) in-process against the real node, to place a write at an
exact point of a sync: a block that arrives while a sync is under way.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import dns.message
import dns.query
import dns.rcode
import dns.rdtypes.IN.NAPTR
import httpx
import pytest
from tests.support import ENUMER, Gateway, free_port, start_gateway, stop

from enumer.crypto import REGTEST, AddressKind, PrivateKey
from enumer.dns.mirror import ChainMirror
from enumer.dns.table import AnswerTable, key_of
from enumer.emercoin import BLOCKS_PER_DAY
from enumer.nvs.ledger import Ledger
from enumer.nvs.rpc import RpcClient, RpcConfig
from enumer.resolver import Resolver
from enumer.trust import TollFreeSource, TrustList

USER = "enumer-test"
PASSWORD = "node-secret-4711"
WRONG_PASSWORD = "not-the-password"
#: Seconds a change may take to reach the DNS answer: the gateway polls every 0.3 s; the
#: margin is for a loaded machine (each wait ends as soon as the answer changes).
WAIT = 8.0
POLL = "0.3"
TRUST = "ver:demo"
TOLLFREE = "@enum:tollfree"

#: The demo's numbers (``enumer demo seed``), a toll-free one of each demo list and one
#: that nothing answers.
DEMO_NUMBERS = ("18009359935", "12025550100", "17771234567", "15550001234")
UNSERVED_DEMO_NUMBERS = ("15551234567", "15550001111")
TOLLFREE_NUMBERS = ("18005551234", "18885550000")
MISSING_NUMBER = "19995550000"
#: Names in the seeded store: ver:demo, enum:tollfree, 10 ENUM records, 1 SRL record.
DEMO_NAMES = 13

Naptr = tuple[int, int, str, str, str, str, int]
T = TypeVar("T")


# -- processes ------------------------------------------------------------------------


def _env() -> dict[str, str]:
    """The environment without ENUMER_* settings of the developer running the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENUMER_")}
    env["PYTHONWARNINGS"] = "ignore"
    return env


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ENUMER, *args], capture_output=True, text=True, timeout=60, env=_env(), check=False
    )


@dataclass
class Node:
    """``enumer node`` on ``store`` (regtest, user/password auth), restartable on its port."""

    store: Path
    port: int
    log: Path
    process: subprocess.Popen[str] | None = None
    network: str = "regtest"

    def url_with(self, password: str) -> str:
        return f"http://{USER}:{password}@127.0.0.1:{self.port}/"

    @property
    def url(self) -> str:
        return self.url_with(PASSWORD)

    def start(self, timeout: float = 30.0) -> None:
        before = self.log.read_text().count(" ready") if self.log.exists() else 0
        with open(self.log, "a") as handle:
            self.process = subprocess.Popen(
                [
                    *ENUMER,
                    "--store",
                    str(self.store),
                    "--network",
                    self.network,
                    "node",
                    "--rpcport",
                    str(self.port),
                    "--rpcuser",
                    USER,
                    "--rpcpassword",
                    PASSWORD,
                ],
                stdout=handle,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
                env=_env(),
            )
        deadline = time.monotonic() + timeout
        while self.log.read_text().count(" ready") == before:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"enumer node did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def rpc(self, method: str, *params: Any) -> Any:
        """One JSON-RPC call; the result, or AssertionError with the node's error."""
        reply = httpx.post(
            f"http://127.0.0.1:{self.port}/",
            json={"jsonrpc": "1.0", "id": "test", "method": method, "params": list(params)},
            auth=(USER, PASSWORD),
            timeout=30,
        )
        body = reply.json()
        assert body["error"] is None, (method, params, body["error"])
        return body["result"]

    def height(self) -> int:
        return int(self.rpc("getblockcount"))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``enumer --nvs URL ARGS``, which must succeed."""
        result = run("--nvs", self.url, *args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args).stdout)

    def cli_error(self, *args: str) -> str:
        """``enumer --nvs URL ARGS``, which must fail with exactly one ``error:`` line."""
        result = run("--nvs", self.url, *args)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
        assert "Traceback" not in result.stderr
        return lines[0]


@pytest.fixture(scope="module")
def seeded_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A regtest store with the demo data, copied for every node."""
    store = tmp_path_factory.mktemp("seeded") / "store"
    result = run("--store", str(store), "--network", "regtest", "demo", "seed")
    assert result.returncode == 0, result.stderr
    return store


def _node_on_copy(seeded_store: Path, where: Path) -> Iterator[Node]:
    where.mkdir(parents=True, exist_ok=True)
    store = where / "node"
    shutil.copytree(seeded_store, store)
    node = Node(store, free_port(), where / "node.log")
    node.start()
    try:
        yield node
    finally:
        node.stop()


def mirror_gateway(node: Node, store: Path, password: str = PASSWORD, *extra: str) -> Gateway:
    """``enumer --store STORE serve --nvs URL`` with the demo's trust and toll-free list."""
    return start_gateway(
        store,
        "--nvs",
        node.url_with(password),
        "--trust",
        TRUST,
        "--tollfree",
        TOLLFREE,
        "--poll",
        POLL,
        *extra,
    )


@pytest.fixture(scope="module")
def node(seeded_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """The node shared by the scenarios that only add their own names."""
    yield from _node_on_copy(seeded_store, tmp_path_factory.mktemp("shared"))


@pytest.fixture(scope="module")
def gateway(node: Node) -> Iterator[Gateway]:
    gw = mirror_gateway(node, node.store.parent / "gateway")
    try:
        yield gw
    finally:
        stop(gw.process)


@pytest.fixture
def fresh_node(seeded_store: Path, tmp_path: Path) -> Iterator[Node]:
    yield from _node_on_copy(seeded_store, tmp_path)


@pytest.fixture
def fresh_gateway(fresh_node: Node) -> Iterator[Gateway]:
    gw = mirror_gateway(fresh_node, fresh_node.store.parent / "gateway")
    try:
        yield gw
    finally:
        stop(gw.process)


# -- DNS --------------------------------------------------------------------------------


def ask(gw: Gateway, name: str, rdtype: str = "NAPTR", rdclass: str = "IN") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, rdclass)
    return dns.query.udp(query, "127.0.0.1", port=gw.port, timeout=3)


def naptrs(gw: Gateway, digits: str) -> set[Naptr] | None:
    """The NAPTR set the gateway answers for ``digits``; None for NXDOMAIN."""
    response = ask(gw, digits[::-1] + ".enum")
    if response.rcode() == dns.rcode.NXDOMAIN:
        return None
    assert response.rcode() == dns.rcode.NOERROR, response
    out: set[Naptr] = set()
    for rrset in response.answer:
        for rd in rrset:
            assert isinstance(rd, dns.rdtypes.IN.NAPTR.NAPTR)
            out.add(
                (
                    rd.order,
                    rd.preference,
                    rd.flags.decode(),
                    rd.service.decode(),
                    rd.regexp.decode(),
                    rd.replacement.to_text(),
                    rrset.ttl,
                )
            )
    return out


def answer_text(gw: Gateway, digits: str) -> str | None:
    """The regexps of the answer joined, for "is host X in the answer"; None for NXDOMAIN."""
    found = naptrs(gw, digits)
    return None if found is None else " ".join(sorted(n[4] for n in found))


def status(gw: Gateway, name: str = "version.bind") -> str:
    response = ask(gw, name, "TXT", "CH")
    return b"".join(response.answer[0][0].strings).decode()


def status_height(gw: Gateway) -> int:
    found = re.search(r"height (-?\d+)", status(gw))
    assert found, status(gw)
    return int(found.group(1))


def synced_ago(text: str) -> int:
    found = re.search(r"synced (\d+)s ago", text)
    assert found, text
    return int(found.group(1))


def wait_for(
    what: str, probe: Callable[[], T], gw: Gateway | None = None, timeout: float = WAIT
) -> T:
    """Poll ``probe`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            log = gw.log.read_text()[-3000:] if gw else ""
            raise AssertionError(f"{what}: not within {timeout} s (last {value!r})\n{log}")
        time.sleep(0.05)


def wait_status(gw: Gateway, what: str, wanted: Callable[[str], bool]) -> str:
    """Wait until the status TXT satisfies ``wanted``; returns it."""

    def probe() -> str:
        text = status(gw)
        return text if wanted(text) else ""

    return wait_for(what, probe, gw)


def wait_height(gw: Gateway, height: int) -> None:
    """Wait until the gateway's answers are at ``height`` or above."""
    wait_for(f"gateway at height {height}", lambda: status_height(gw) >= height, gw)


def wait_synced(gw: Gateway, node: Node) -> int:
    """Wait until the gateway's answers are at least at the node's current height."""
    height = node.height()
    wait_height(gw, height)
    return height


def wait_served(gw: Gateway, digits: str, text: str) -> None:
    wait_for(f"+{digits} answered with {text}", lambda: text in (answer_text(gw, digits) or ""), gw)


def wait_nxdomain(gw: Gateway, digits: str) -> None:
    wait_for(f"+{digits} NXDOMAIN", lambda: naptrs(gw, digits) is None, gw)


# -- names --------------------------------------------------------------------------------


def foreign_address() -> str:
    """A valid regtest address whose key no wallet here holds."""
    return PrivateKey.generate().address(REGTEST, AddressKind.P2WPKH).to_text()


def publish(node: Node, digits: str, host: str, *options: str) -> str:
    """``record new`` + ``verifier sign demo --append``, as a user does; the record's name."""
    name = node.cli("record", "new", digits, "--sip", f"sip:{digits}@{host}", *options).stdout
    assert name.strip() == f"enum:{digits}:0", name
    node.cli("verifier", "sign", "demo", name.strip(), "--append")
    return name.strip()


def lookup_naptrs(node: Node, digits: str) -> set[Naptr]:
    """What ``enumer --store NODEDIR lookup`` (the embedded gateway's resolver) answers."""
    result = run("--store", str(node.store), "lookup", digits, "--json")
    assert result.returncode == 0, result.stderr
    return {
        (
            n["order"],
            n["preference"],
            n["flags"],
            n["service"],
            n["regexp"],
            n["replacement"],
            n["ttl"],
        )
        for n in json.loads(result.stdout)["naptr"]
    }


# -- 1-7, 9: one node, one gateway ---------------------------------------------------------------


def test_first_sync_serves_what_the_embedded_gateway_serves(node: Node, gateway: Gateway) -> None:
    first = gateway.log.read_text()
    assert f"synced {DEMO_NAMES} names from the node" in first, first
    wait_synced(gateway, node)
    numbers = (*DEMO_NUMBERS, *UNSERVED_DEMO_NUMBERS, *TOLLFREE_NUMBERS, MISSING_NUMBER)
    with ThreadPoolExecutor(4) as pool:  # one process per lookup: run them side by side
        found = pool.map(lambda d: lookup_naptrs(node, d), numbers)
        looked_up = dict(zip(numbers, found, strict=True))
    for digits, expected in looked_up.items():
        served = naptrs(gateway, digits)
        assert (served or set()) == expected, digits
        assert (served is None) == (not expected), digits
    # Both sides agree, and they agree on the demo's meaning (not both wrong the same way).
    assert "pbx.example.com" in str(answer_text(gateway, "18009359935"))
    assert "owner.example.com" in str(answer_text(gateway, "15550001234"))
    assert {n[6] for n in naptrs(gateway, "17771234567") or set()} == {600}
    assert len(naptrs(gateway, "17771234567") or set()) == 2
    for digits in UNSERVED_DEMO_NUMBERS:
        assert naptrs(gateway, digits) is None, digits
    assert "served numbers" in status(gateway, "status.enumer")


def test_new_signed_record_is_served(node: Node, gateway: Gateway) -> None:
    digits = "14155550123"
    name = node.cli("record", "new", digits, "--sip", "sip:alice@new.example.org").stdout.strip()
    assert name == f"enum:{digits}:0"
    wait_synced(gateway, node)
    assert naptrs(gateway, digits) is None, "an unsigned record must not be served"
    node.cli("verifier", "sign", "demo", name, "--append")
    wait_served(gateway, digits, "sip:alice@new.example.org")
    assert naptrs(gateway, digits) == lookup_naptrs(node, digits)


def test_update_of_a_directive_is_served(node: Node, gateway: Gateway) -> None:
    digits = "14155550124"
    name = publish(node, digits, "before.example.org")
    wait_served(gateway, digits, "before.example.org")
    value = node.rpc("name_show", name)["value"]
    node.cli("name", "update", name, value.replace("before.example.org", "after.example.org"), "0")
    wait_served(gateway, digits, "after.example.org")
    assert "before.example.org" not in str(answer_text(gateway, digits))


def test_transfer_to_a_foreign_address_keeps_the_record_served(
    node: Node, gateway: Gateway
) -> None:
    digits = "14155550125"
    name = publish(node, digits, "moving.example.org")
    wait_served(gateway, digits, "moving.example.org")
    served = naptrs(gateway, digits)
    value = node.rpc("name_show", name)["value"]
    new_owner = foreign_address()
    node.cli("name", "update", name, value, "0", "--to", new_owner)
    assert node.rpc("name_show", name)["address"] == new_owner
    wait_synced(gateway, node)
    # The signature is over the name, not the owner: still served, the same answer.
    assert naptrs(gateway, digits) == served


def test_srl_revocation_is_nxdomain(node: Node, gateway: Gateway) -> None:
    digits = "14155550126"
    name = publish(node, digits, "revoked.example.org")
    wait_served(gateway, digits, "revoked.example.org")
    node.cli("verifier", "revoke", "demo", name)
    wait_nxdomain(gateway, digits)


def test_toll_free_list_change_is_served_without_restart(node: Node, gateway: Gateway) -> None:
    wait_served(gateway, "18005551234", "tollfree.example.net")
    value = node.rpc("name_show", "enum:tollfree")["value"]
    node.cli("name", "update", "enum:tollfree", value.replace("@tollfree.", "@tf2."), "0")
    wait_served(gateway, "18005551234", "tf2.example.net")
    assert gateway.process.poll() is None
    assert "tf888.example.net" in str(answer_text(gateway, "18885550000"))


def test_deletion_is_nxdomain(node: Node, gateway: Gateway) -> None:
    digits = "14155550127"
    name = publish(node, digits, "deleted.example.org")
    wait_served(gateway, digits, "deleted.example.org")
    node.cli("name", "delete", name)
    wait_nxdomain(gateway, digits)


# -- 6: the verifier re-keyed ----------------------------------------------------------------


def test_rekeyed_verifier_unserves_every_signed_number(
    fresh_node: Node, fresh_gateway: Gateway
) -> None:
    for digits in DEMO_NUMBERS:
        assert naptrs(fresh_gateway, digits), digits
    value = fresh_node.rpc("name_show", TRUST)["value"]
    new_key = fresh_node.rpc("getnewaddress")
    refused = fresh_node.cli_error("name", "update", TRUST, value, "0", "--to", new_key)
    assert "refusing to move ver:demo" in refused and "--force" in refused
    fresh_node.cli("name", "update", TRUST, value, "0", "--to", new_key, "--force")
    for digits in DEMO_NUMBERS:
        wait_nxdomain(fresh_gateway, digits)
    # Toll-free lists are trusted by configuration, not by the verifier's key.
    assert "tollfree.example.net" in str(answer_text(fresh_gateway, "18005551234"))


# -- 8: expiry --------------------------------------------------------------------------------


def test_expiry_at_the_right_height(fresh_node: Node, fresh_gateway: Gateway) -> None:
    node, gw = fresh_node, fresh_gateway
    miner = foreign_address()
    # The node's height also moves with the clock (175 blocks a day, one every ~8 minutes):
    # when such a block lands while we look at the last active height, look again with
    # another record.
    for digits in ("14155550140", "14155550141", "14155550142"):
        name = publish(node, digits, "expiring.example.org", "--days", "1")
        registered = node.rpc("name_history", name)[0]["height"]
        expires_at = node.rpc("name_show", name)["expires_at"]
        assert expires_at == registered + BLOCKS_PER_DAY
        wait_served(gw, digits, "expiring.example.org")
        node.rpc("generatetoaddress", expires_at - node.height(), miner)
        wait_height(gw, expires_at)
        before = status_height(gw)
        answer = answer_text(gw, digits)
        after = status_height(gw)
        if not before == after == expires_at:
            continue
        assert answer and "expiring.example.org" in answer, "expired one block early"
        node.rpc("generatetoaddress", 1, miner)
        wait_nxdomain(gw, digits)
        assert node.rpc("name_show", name).get("expired") is True
        return
    pytest.fail("the node's clock moved the height during every attempt")


# -- 10: the node goes away and comes back ----------------------------------------------------


def test_node_down_keeps_serving_then_recovers(fresh_node: Node, fresh_gateway: Gateway) -> None:
    node, gw = fresh_node, fresh_gateway
    before = naptrs(gw, "18009359935")
    assert before
    assert "error" not in status(gw)
    node.stop()
    text = wait_status(gw, "the node's failure in the status", lambda t: "error:" in t)
    assert "cannot connect" in text, text
    assert naptrs(gw, "18009359935") == before
    # Staleness: the age of the last good sync grows while the node is away.
    stale = wait_status(gw, "staleness in the status", lambda t: synced_ago(t) >= 2)
    assert "error:" in stale, stale
    assert naptrs(gw, "18009359935") == before
    assert naptrs(gw, "15551234567") is None
    assert "update failed, serving the last good data" in gw.log.read_text()
    node.start()
    publish(node, "14155550150", "recovered.example.org")
    wait_served(gw, "14155550150", "recovered.example.org")
    recovered = wait_status(gw, "status without error", lambda t: "error" not in t)
    assert synced_ago(recovered) <= 1, recovered


# -- 11: wrong password ------------------------------------------------------------------------


def test_wrong_password_without_index_is_one_error_line(node: Node, tmp_path: Path) -> None:
    store = tmp_path / "gateway"
    result = run(
        "--store",
        str(store),
        "serve",
        "--nvs",
        node.url_with(WRONG_PASSWORD),
        "--port",
        str(free_port()),
        "--trust",
        TRUST,
        "--tollfree",
        TOLLFREE,
        "--poll",
        POLL,
        "--quiet",
    )
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "credentials" in lines[0], lines[0]
    assert WRONG_PASSWORD not in result.stderr and PASSWORD not in result.stderr


@dataclass
class IndexedStore:
    store: Path
    #: time.time() when the gateway that wrote the index stopped
    stopped_at: float


@pytest.fixture(scope="module")
def indexed_store(node: Node, tmp_path_factory: pytest.TempPathFactory) -> IndexedStore:
    """A gateway store whose node index an earlier good run wrote."""
    store = tmp_path_factory.mktemp("indexed") / "gateway"
    gw = mirror_gateway(node, store)
    try:
        assert naptrs(gw, "18009359935")
    finally:
        stop(gw.process)
    assert (store / "node-index").is_dir()
    return IndexedStore(store, time.time())


def test_wrong_password_with_index_serves_it(node: Node, indexed_store: IndexedStore) -> None:
    gw = mirror_gateway(node, indexed_store.store, WRONG_PASSWORD)
    try:
        assert "node unavailable, serving the local index" in gw.log.read_text()
        assert "pbx.example.com" in str(answer_text(gw, "18009359935"))
        assert naptrs(gw, "15551234567") is None
        text = wait_status(gw, "the node problem in the status", lambda t: "error:" in t)
        assert "credentials" in text, text
        assert WRONG_PASSWORD not in gw.log.read_text()
    finally:
        stop(gw.process)


def test_stale_index_reports_its_age(node: Node, indexed_store: IndexedStore) -> None:
    """Started on an old index with the node unusable, the status must not say "synced 0s ago"."""
    # Make the index measurably old (set-up, not an assertion).
    time.sleep(max(0.0, indexed_store.stopped_at + 3.0 - time.time()))
    age = time.time() - indexed_store.stopped_at
    gw = mirror_gateway(node, indexed_store.store, WRONG_PASSWORD)
    try:
        text = wait_status(gw, "the node problem in the status", lambda t: "error:" in t)
        assert synced_ago(text) >= int(age), (
            f"the index was last synced {age:.1f}s ago, the status says: {text}"
        )
    finally:
        stop(gw.process)


# -- 12: the CLI against the node -------------------------------------------------------------


def test_cli_name_commands_against_the_node(node: Node) -> None:
    name, gone = "test:sync-cli", "test:sync-cli-deleted"
    txid = node.cli("name", "new", name, "first value", "1").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", txid), txid
    text = node.cli("name", "show", name).stdout
    assert f"name: {name}" in text and f"txid: {txid}" in text and "first value" in text
    error = node.cli_error("name", "new", name, "again", "1")
    assert error == "error: name_new on an unexpired name"

    update = node.cli("name", "update", name, "second value", "2").stdout
    assert re.fullmatch(r"[0-9a-f]{64}\n", update), update
    history = node.cli_json("name", "history", name, "--json")
    assert [(h["operation"], h["value"], h["days_added"]) for h in history] == [
        ("name_new", "first value", 1),
        ("name_update", "second value", 2),
    ]
    shown = node.cli_json("name", "show", name, "--json")
    assert shown["value"] == "second value"
    assert shown["address"] == history[0]["address"]  # the owner is kept
    assert shown["expires_at"] == history[0]["height"] + 3 * BLOCKS_PER_DAY

    # Given away: the wallet is not the owner any more; the node's refusal, one line.
    node.cli("name", "update", name, "given away", "0", "--to", foreign_address())
    not_yours = "error: prev name tx is not yours or is not spendable"
    assert node.cli_error("name", "update", name, "mine again", "0") == not_yours
    assert node.cli_error("name", "delete", name) == not_yours

    # Deleted: gone from name_list, every operation on it refused like the node does.
    node.cli("name", "new", gone, "short-lived", "1")
    assert re.fullmatch(r"[0-9a-f]{64}\n", node.cli("name", "delete", gone).stdout)
    listed = {e["name"]: e for e in node.cli_json("name", "list", "--json")}
    assert listed[name]["transferred"] is True and listed[name]["value"] == "given away"
    assert gone not in listed
    assert node.cli_error("name", "update", gone, "v", "1") == (
        "error: name_update on an inactive name"
    )
    assert node.cli_error("name", "delete", gone) == "error: name_delete on an inactive name"
    assert node.cli_error("name", "history", gone) == (
        "error: record for this name exists, but this name is not active"
    )
    full = node.cli_json("name", "history", gone, "--full", "--json")
    assert [h["operation"] for h in full] == ["name_new", "name_delete"]
    node.cli("name", "new", gone, "registered again", "1")
    assert node.cli_error("name", "show", "test:never-registered") == (
        "error: failed to read from name DB"
    )


# -- the mirror's consistency: a block that arrives during a sync ------------------------------


class RacingClient(RpcClient):
    """An RpcClient that lets ``during`` run once right after it read the tip: a new block
    that arrives while a sync is under way (on a real node, blocks come at any time)."""

    during: Callable[[], None] | None = None

    def getblockcount(self) -> int:
        tip = super().getblockcount()
        act, self.during = self.during, None
        if act is not None:
            act()
        return tip


@pytest.mark.parametrize("change", ["update", "delete"])
def test_change_mined_during_a_sync_reaches_the_answers(
    node: Node, tmp_path: Path, change: str
) -> None:
    """The gateway's own loop (ChainMirror.sync_once, then AnswerTable.refresh), in-process
    against the real node over HTTP, with one write landing in the middle of a sync."""
    digits = "1415555016" + ("1" if change == "update" else "2")
    name = publish(node, digits, "before.example.org")
    trust = TrustList.from_text(TRUST)
    tollfree = TollFreeSource.parse_list(TOLLFREE)
    client = RacingClient(RpcConfig.from_url(node.url), timeout=30)
    index = Ledger(tmp_path / "node-index", network="regtest", mirror=True)
    reader = Ledger(tmp_path / "node-index", create=False)
    try:
        mirror = ChainMirror(client, index, trust, tollfree)
        mirror.sync_once()
        table = AnswerTable(Resolver(reader, trust, tollfree, require_signature=True), False)
        table.build()
        assert b"before.example.org" in (table.answer(key_of(digits)) or b"")

        def write() -> None:
            if change == "delete":
                node.rpc("name_delete", name)
            else:
                shown = node.rpc("name_show", name)
                new_value = shown["value"].replace("before.", "after.")
                node.rpc("name_update", name, new_value, 0, shown["address"])

        client.during = write
        miner = foreign_address()
        for _ in range(3):  # the sync the write races with, then quiet ones, a block each
            mirror.sync_once()
            table.refresh()
            node.rpc("generatetoaddress", 1, miner)
        mirror.sync_once()
        table.refresh()
        assert client.during is None
        answer = table.answer(key_of(digits))
        mirrored = index.show(name)
        if change == "delete":
            assert mirrored.deleted
            assert answer is None, f"deleted {name} still served (index: {mirrored})"
        else:
            assert "after.example.org" in mirrored.value
            assert answer is not None and b"after.example.org" in answer, (
                f"updated {name} still served with the old value (index: {mirrored})"
            )
    finally:
        client.close()
        index.close()
        reader.close()


# -- issue 11: what a real Emercoin node showed ---------------------------------------------------


def test_one_store_mirrors_nodes_of_different_chains(node: Node, tmp_path: Path) -> None:
    """Item 1: each node has its own index in the store, keyed by chain and genesis."""
    store = tmp_path / "gateway"
    regtest = mirror_gateway(node, store)
    try:
        assert naptrs(regtest, "18009359935")
    finally:
        stop(regtest.process)
    main_store = tmp_path / "mainnet-node"
    seeded = run("--store", str(main_store), "--network", "mainnet", "demo", "seed")
    assert seeded.returncode == 0, seeded.stderr
    mainnet = Node(main_store, free_port(), tmp_path / "mainnet.log", network="mainnet")
    mainnet.start()
    try:
        publish(mainnet, "14155550177", "mainnet.example.org")
        gw = mirror_gateway(mainnet, store)  # the same store: no clean-up in between
        try:
            wait_served(gw, "14155550177", "mainnet.example.org")
        finally:
            stop(gw.process)
    finally:
        mainnet.stop()
    back = mirror_gateway(node, store)
    try:
        assert naptrs(back, "18009359935")
        assert naptrs(back, "14155550177") is None  # mainnet's record stays in its index
    finally:
        stop(back.process)
    kinds = sorted(p.name.split("-")[0] for p in (store / "node-index").iterdir() if p.is_dir())
    assert kinds == ["mainnet", "regtest"], kinds


def _env_gateway(env_store: Path, log: Path, *args: str) -> Gateway:
    """``enumer serve ARGS`` with ``ENUMER_STORE=env_store`` and no ``--store``."""
    port = free_port()
    handle = open(log, "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [*ENUMER, "serve", "--port", str(port), "--quiet", *args],
        stdout=handle,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**_env(), "ENUMER_STORE": str(env_store)},
    )
    deadline = time.monotonic() + 60
    while "ready:" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise AssertionError(f"gateway did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return Gateway(port, env_store, process, log)


def test_conf_names_the_node_over_enumer_store_and_its_new_cookie_is_read(
    seeded_store: Path, tmp_path: Path
) -> None:
    """Items 2 and 3: ``serve --conf`` uses the node its emercoin.conf names although
    ENUMER_STORE is set, and after the node restarts with a new .cookie the gateway
    reads it, recovers, and logs the end of the outage with its duration."""
    store = tmp_path / "node"
    shutil.copytree(seeded_store, store)
    node = Node(store, free_port(), tmp_path / "node.log")

    def start_cookie_node() -> subprocess.Popen[str]:
        before = node.log.read_text().count(" ready") if node.log.exists() else 0
        with open(node.log, "a") as handle:
            process = subprocess.Popen(
                [
                    *ENUMER,
                    "--store",
                    str(store),
                    "--network",
                    "regtest",
                    "node",
                    "--rpcport",
                    str(node.port),
                ],
                stdout=handle,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
                env=_env(),
            )
        wait_for(
            "the cookie node's ready line", lambda: node.log.read_text().count(" ready") > before
        )
        return process

    conf = tmp_path / "emercoin.conf"
    conf.write_text(f"regtest=1\n[regtest]\nrpcport={node.port}\nrpccookiefile={store}/.cookie\n")
    process = start_cookie_node()
    gw = None
    try:
        gw = _env_gateway(
            tmp_path / "env-store",
            tmp_path / "gateway.log",
            "--conf",
            str(conf),
            "--trust",
            TRUST,
            "--tollfree",
            TOLLFREE,
            "--poll",
            POLL,
        )
        assert naptrs(gw, "18009359935")
        first_cookie = (store / ".cookie").read_text()
        stop(process)
        wait_status(gw, "the outage in the status", lambda t: "error:" in t)
        process = start_cookie_node()
        assert (store / ".cookie").read_text() != first_cookie
        made = run(
            "--conf", str(conf), "record", "new", "14155550188", "--sip", "sip:x@cookie.example"
        )
        assert made.returncode == 0, made.stderr
        signed = run(
            "--conf", str(conf), "verifier", "sign", "demo", made.stdout.strip(), "--append"
        )
        assert signed.returncode == 0, signed.stderr
        wait_served(gw, "14155550188", "cookie.example")
        wait_for(
            "the end of the outage in the log", lambda: "updates work again" in gw.log.read_text()
        )
        assert re.search(r"updates work again, after failing for \d+s", gw.log.read_text())
        assert gw.log.read_text().count("update failed, serving the last good data") == 1
    finally:
        if gw is not None:
            stop(gw.process)
        stop(process)


def test_refused_url_credentials_are_reported_until_they_work(
    node: Node, indexed_store: IndexedStore
) -> None:
    """Item 3: credentials in the URL cannot be re-read, so the failure and the staleness
    are reported again and again (log, status, metrics), not once."""
    metrics_port = free_port()
    gw = mirror_gateway(
        node,
        indexed_store.store,
        WRONG_PASSWORD,
        "--failure-report-every",
        "0.5",
        "--metrics",
        f"127.0.0.1:{metrics_port}",
    )
    try:
        wait_for(
            "two reminders in the log",
            lambda: gw.log.read_text().count("updates failing for") >= 2,
            gw,
        )
        reminder = [
            line for line in gw.log.read_text().splitlines() if "updates failing for" in line
        ][-1]
        assert re.search(
            r"serving the data of height \d+, synced \d+s ago: .*credentials", reminder
        )
        assert "error:" in status(gw) and "credentials" in status(gw)

        def failing_seconds() -> float:
            body = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            found = re.search(r"^enumer_update_failing_seconds (\S+)$", body, re.MULTILINE)
            assert found, body
            return float(found.group(1))

        wait_for("a failing time in the metrics", lambda: failing_seconds() > 0.5, gw)
        assert WRONG_PASSWORD not in gw.log.read_text()
    finally:
        stop(gw.process)
    stale = run(
        "--nvs", f"http://__cookie__:{'ab' * 32}@127.0.0.1:{node.port}/", "name", "show", "x"
    )
    assert stale.returncode == 1
    assert "a cookie given in the URL is stale once the node restarts" in stale.stderr, stale.stderr


class PendingNode:
    """The public network as a user meets it: the node behind, except that the
    registration of the names in ``pending`` waits in the mempool, so a second one is
    refused with the node's error (``shared/reference/rpc/err_name_update_pending``)."""

    def __init__(self, node: Node, pending: set[str]) -> None:
        upstream = f"http://127.0.0.1:{node.port}/"

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = json.loads(body)
                if (
                    isinstance(request, dict)
                    and request.get("method") == "name_new"
                    and request.get("params", [None])[0] in pending
                ):
                    status, reply = (
                        500,
                        json.dumps(
                            {
                                "result": None,
                                "error": {
                                    "code": -32603,
                                    "message": "there are 1 pending operations on that name, "
                                    "including " + "a2" * 32,
                                },
                                "id": request.get("id"),
                            }
                        ).encode(),
                    )
                else:
                    answer = httpx.post(
                        upstream,
                        content=body,
                        headers={
                            "Authorization": self.headers.get("Authorization", ""),
                            "Content-Type": "application/json",
                        },
                        timeout=30,
                    )
                    status, reply = answer.status_code, answer.content
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://{USER}:{PASSWORD}@127.0.0.1:{self.server.server_address[1]}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_record_new_skips_a_name_pending_in_the_mempool(node: Node) -> None:
    """Item 4: a name whose registration is still pending counts as taken."""
    proxy = PendingNode(node, {"enum:14155550100:0"})
    try:
        made = run(
            "--nvs", proxy.url, "record", "new", "14155550100", "--sip", "sip:a@pending.example"
        )
    finally:
        proxy.close()
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "enum:14155550100:1"
    # the directive is the value's first line (record new may seal it with an OSIG line)
    value = node.rpc("name_show", "enum:14155550100:1")["value"]
    assert value.splitlines()[0].endswith("sip:a@pending.example!"), value
