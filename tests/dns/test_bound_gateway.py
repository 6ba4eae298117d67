"""Bound signatures at the gateway (SPEC 11): compat and strict answer tables, the
hostile cases, VSIG expiry with the chain's time, and the same decisions whether
the gateway reads the embedded store, ``enumer node`` or ``serve --nvs``."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
from tests.nvs.test_sync import Node, naptrs, run
from tests.support import free_port, start_gateway, stop

from enumer import demo
from enumer.bound import Policy, utc_day
from enumer.dns.table import AnswerTable, key_of
from enumer.emercoin import BLOCKS_PER_DAY
from enumer.nvs import NameRecord
from enumer.nvs.ledger import Ledger
from enumer.owner import sealed
from enumer.resolver import Resolver
from enumer.trust import TollFreeSource, TrustList
from enumer.verifier import append_bound, sign_bound, update_keeping_owner

STRICT_NUMBER = "15550002001"  # SIG + VSIG + OSIG
COMPAT_ONLY = ("15550002002", "15550002003", "18009359935")  # stale, transferred, SIG= only
E2U = "E2U+sip=100|10|!^.*$!sip:{}@pbx.example.com!"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(tmp_path / "store")
    demo.seed(ledger)
    yield ledger
    ledger.close()


def make_table(
    store: Ledger, policy: Policy, path: Path | None = None, build: bool = True
) -> AnswerTable:
    """A table of the demo trust list (built, unless ``build`` is false), at ``path``."""
    resolver = Resolver(
        store,
        TrustList.from_text(demo.DEMO_VERIFIER),
        TollFreeSource.parse_list("@" + demo.DEMO_TOLLFREE),
        policy=policy,
    )
    table = AnswerTable(resolver, path=path)
    if build:
        table.build(workers=1)
    return table


def served(table: AnswerTable, digits: str) -> bool:
    return table.answer(key_of(digits)) is not None


def publish_strict(store: Ledger, name: str, host: str) -> str:
    """A record as its owner and the demo verifier make it: sealed, SIG + VSIG."""
    owner = store.get_new_address()
    value = sealed(store, name, E2U.format(host), owner)
    assert isinstance(value, str)
    store.name_new(name, value, 1, owner)
    append_bound(store, demo.DEMO_VERIFIER, name, sign_bound(store, demo.DEMO_VERIFIER, name))
    return owner


def test_strict_table_serves_exactly_the_strictly_valid_records(store: Ledger) -> None:
    compat, strict = make_table(store, Policy.COMPAT), make_table(store, Policy.STRICT)
    assert served(compat, STRICT_NUMBER) and served(strict, STRICT_NUMBER)
    for digits in COMPAT_ONLY:
        assert served(compat, digits), digits
        assert not served(strict, digits), digits
    assert served(strict, "18005551234")  # toll-free lists are trusted by configuration
    assert set(strict.answers) == {key_of(STRICT_NUMBER)}
    assert strict.fingerprint() != compat.fingerprint()  # snapshots are kept apart


def test_route_change_with_renewed_osig_is_served_and_without_it_is_not(store: Ledger) -> None:
    name = "enum:14155550100:0"
    publish_strict(store, name, "old")
    table = make_table(store, Policy.STRICT)
    assert b"old@pbx" in (table.answer(key_of("14155550100")) or b"")
    # A relay-like rewrite (or an owner who forgot to reseal): the OSIG is stale.
    current = store.show(name)
    rewritten = current.value.replace("old@", "new@")
    update_keeping_owner(store, name, rewritten, 0)
    assert table.refresh() == {"14155550100"}
    assert not served(table, "14155550100")
    # The owner renews the OSIG: served again, without a new verification.
    resealed = sealed(store, name, rewritten, current.address)
    assert isinstance(resealed, str)
    update_keeping_owner(store, name, resealed, 0)
    table.refresh()
    assert b"new@pbx" in (table.answer(key_of("14155550100")) or b"")
    assert table.resolver.accepted[name] > 0  # freshness: the newest OSIG accepted


def test_copied_sig_and_vsig_on_a_reregistered_name(store: Ledger) -> None:
    name = "enum:14155550101:0"
    publish_strict(store, name, "victim")
    copied = [
        line for line in store.show(name).value.split("\n") if line.startswith(("SIG=", "VSIG="))
    ]
    compat, strict = make_table(store, Policy.COMPAT), make_table(store, Policy.STRICT)
    # The name lapses; a stranger registers it again with the old lines and an OSIG of its own.
    store.generate(2 * BLOCKS_PER_DAY)
    compat.refresh()
    strict.refresh()
    assert not served(compat, "14155550101")
    squatter = store.get_new_address()
    value = sealed(store, name, "\n".join([E2U.format("squatter"), *copied]), squatter)
    assert isinstance(value, str)
    store.name_new(name, value, 10, squatter)
    compat.refresh()
    strict.refresh()
    assert b"squatter@pbx" in (compat.answer(key_of("14155550101")) or b"")  # SIG= alone
    assert not served(strict, "14155550101")
    verdict = Resolver(
        store, TrustList.from_text(demo.DEMO_VERIFIER), policy=Policy.STRICT, explain=True
    ).resolve("14155550101")
    assert "VSIG names owner " in verdict.records[0].reason
    assert f"but the record is owned by {squatter}" in verdict.records[0].reason


def _mirror(path: Path, records: list[NameRecord], tip: int, tip_time: int) -> Ledger:
    index = Ledger(path, "mainnet", mirror=True)
    index.put_records(records)
    index.set_tip(tip, tip_time)
    return index


def test_vsig_expires_with_the_chain_time_of_the_tip(store: Ledger, tmp_path: Path) -> None:
    """The decision follows the tip's block time (a mirror stores the node's), not the
    local clock, and the table recompiles the number when the chain's day passes."""
    name = "enum:14155550102:0"
    publish_strict(store, name, "dated")
    vsig = next(x for x in store.show(name).value.split("\n") if x.startswith("VSIG="))
    last_day = vsig.split("|")[1]
    end = int(
        dt.datetime.combine(
            dt.date.fromisoformat(last_day), dt.time(23, 59, 59), dt.UTC
        ).timestamp()
    )
    records = [store.show("ver:demo"), store.show(name), *store.iter_prefix("srl:")]
    index = _mirror(tmp_path / "index", records, store.height(), end)
    table = make_table(index, Policy.STRICT)
    assert served(table, "14155550102")
    assert table.expiring == {"14155550102": utc_day(end).toordinal() + 1}
    index.set_tip(store.height(), end + 1)  # the next block is a day later: expired
    assert table.refresh() == {"14155550102"}
    assert not served(table, "14155550102")
    reason = Resolver(index, TrustList.from_text(demo.DEMO_VERIFIER), policy=Policy.STRICT).resolve(
        "14155550102"
    )
    assert f"VSIG of ver:demo expired on {last_day}" in reason.records[0].reason


# -- the same decisions over a node -------------------------------------------------------------


def ask_rcode(port: int, digits: str) -> int:
    query = dns.message.make_query(f"{digits[::-1]}.enum", "NAPTR")
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=3).rcode()


def test_node_and_serve_nvs_decide_as_the_embedded_store(tmp_path: Path) -> None:
    seeded = tmp_path / "seeded"
    result = run("--store", str(seeded), "--network", "regtest", "demo", "seed")
    assert result.returncode == 0, result.stderr
    node_store = tmp_path / "node"
    shutil.copytree(seeded, node_store)
    node = Node(node_store, free_port(), tmp_path / "node.log")
    node.start()
    gateways = []
    try:
        common = ("--trust", "ver:demo", "--signatures", "strict")
        embedded = start_gateway(seeded, *common)
        gateways.append(embedded)
        mirrored = start_gateway(tmp_path / "gw", "--nvs", node.url, "--poll", "0.3", *common)
        gateways.append(mirrored)
        for digits in (STRICT_NUMBER, *COMPAT_ONLY):
            want = digits == STRICT_NUMBER
            for gw in (embedded, mirrored):
                assert (naptrs(gw, digits) is not None) is want, (gw.store, digits)
            assert naptrs(embedded, digits) == naptrs(mirrored, digits)
            looked = node.cli_json(
                "lookup", digits, "--trust", "ver:demo", "--signatures", "strict", "--json"
            )
            assert (looked["uri"] is not None) is want, digits
        assert ask_rcode(mirrored.port, "15550002002") == dns.rcode.NXDOMAIN
        assert node.rpc("getblock", node.rpc("getbestblockhash"))["height"] == node.height()
    finally:
        for gw in gateways:
            stop(gw.process)
        node.stop()
