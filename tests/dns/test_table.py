"""The answer table: compiled once, verified once, kept current block by block."""

from __future__ import annotations

import gc
import struct
from pathlib import Path

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from enumer import demo
from enumer.dns.flat import FlatTable
from enumer.dns.table import AnswerTable, key_of
from enumer.nvs.ledger import Ledger
from enumer.resolver import Resolver
from enumer.trust import TollFreeSource, TrustList
from enumer.verifier import append_signature, revoke, sign_name, update_keeping_owner


def decode(rrs: bytes) -> list[tuple[int, str]]:
    """(ttl, NAPTR text) of each RR in an answer section with c00c owners."""
    out = []
    pos = 0
    while pos < len(rrs):
        assert rrs[pos : pos + 2] == b"\xc0\x0c"
        rtype, rclass, ttl, length = struct.unpack("!HHIH", rrs[pos + 2 : pos + 12])
        assert (rtype, rclass) == (35, 1)
        rdata = dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.NAPTR, rrs, pos + 12, length)
        out.append((ttl, rdata.to_text()))
        pos += 12 + length
    return out


@pytest.fixture
def store(tmp_path: Path) -> Ledger:
    ledger = Ledger(tmp_path / "store")
    demo.seed(ledger)
    return ledger


def make_table(store: Ledger, **kwargs: object) -> AnswerTable:
    resolver = Resolver(
        store,
        TrustList.from_text(demo.DEMO_VERIFIER),
        TollFreeSource.parse_list("@" + demo.DEMO_TOLLFREE),
    )
    table = AnswerTable(resolver, **kwargs)  # type: ignore[arg-type]
    table.build(workers=1)
    return table


def test_build_serves_exactly_the_verified_numbers(store: Ledger) -> None:
    table = make_table(store)
    assert decode(table.answer(key_of("18009359935")) or b"") == [
        (86400, '100 10 "u" "E2U+sip" "!^(.*)$!sip:\\\\1@pbx.example.com!" .')
    ]
    two = decode(table.answer(key_of("17771234567")) or b"")
    assert [ttl for ttl, _ in two] == [600, 600]
    assert "owner.example.com" in decode(table.answer(key_of("15550001234")) or b"")[0][1]
    assert table.answer(key_of("15551234567")) is None  # unsigned
    assert table.answer(key_of("15550001111")) is None  # revoked
    assert table.answer(key_of("19999999999")) is None
    assert "15550001111" in table.revoked


def test_tollfree_is_matched_on_a_miss_and_anchored(store: Ledger) -> None:
    table = make_table(store)
    found = decode(table.answer(key_of("18005551234")) or b"")
    assert "tollfree.example.net" in found[0][1]
    assert table.answer(key_of("118005551234")) is None  # must match the whole number
    assert len(decode(table.answer(key_of("18881234567")) or b"")) == 2


def test_refresh_serves_a_new_signed_record_and_verifies_only_it(store: Ledger) -> None:
    table = make_table(store)
    checks = table.resolver.cache.checks
    store.name_new("enum:12025550199:0", "E2U+sip=100|10|!^.*$!sip:new@example.org!", 10)
    assert table.refresh() == {"12025550199"}
    assert table.answer(key_of("12025550199")) is None  # not signed yet
    append_signature(
        store,
        demo.DEMO_VERIFIER,
        "enum:12025550199:0",
        sign_name(store, demo.DEMO_VERIFIER, "enum:12025550199:0"),
    )
    generation = table.generation
    table.refresh()
    assert table.generation > generation
    assert "sip:new@example.org" in decode(table.answer(key_of("12025550199")) or b"")[0][1]
    assert table.resolver.cache.checks == checks + 1


def test_refresh_applies_revocation_and_expiry(store: Ledger) -> None:
    table = make_table(store)
    revoke(store, demo.DEMO_VERIFIER, "enum:18009359935:0")
    table.refresh()
    assert table.answer(key_of("18009359935")) is None
    # Expiry: every demo record lives 3650 days.
    store.generate(3650 * 175 + 10)
    table.refresh()
    assert table.answer(key_of("12025550100")) is None


def test_verifier_rekey_invalidates_everything(store: Ledger) -> None:
    table = make_table(store)
    other = store.get_new_address("legacy")
    update_keeping_owner(store, demo.DEMO_VERIFIER, "moved", 0, to=other, force=True)
    assert table.refresh() == {"*"}
    assert len(table) == 0


def test_tollfree_record_change_takes_effect_without_restart(store: Ledger) -> None:
    table = make_table(store)
    assert table.answer(key_of("18005551234")) is not None
    update_keeping_owner(store, demo.DEMO_TOLLFREE, "=1999\\d{7}\nE2U+sip=1|1|!^.*$!sip:x@y!", 0)
    table.refresh()
    assert table.answer(key_of("18005551234")) is None
    assert table.answer(key_of("19991234567")) is not None


def test_expand_regexp_bakes_in_the_number(store: Ledger) -> None:
    table = make_table(store, expand_regexp=True)
    [(_, text)] = decode(table.answer(key_of("18009359935")) or b"")
    assert "\\\\1" not in text
    assert "sip:+18009359935@pbx.example.com" in text


def test_snapshot_round_trip_and_catch_up(store: Ledger, tmp_path: Path) -> None:
    table = make_table(store)
    path = tmp_path / "table.snapshot"
    table.save(path)
    store.name_delete("enum:12025550100:0")
    fresh = AnswerTable(table.resolver)
    assert fresh.load(path)
    assert fresh.answer(key_of("12025550100")) is not None  # as of the snapshot
    fresh.refresh()
    assert fresh.answer(key_of("12025550100")) is None
    assert fresh.answer(key_of("18009359935")) == table.answer(key_of("18009359935"))
    # Another configuration must not reuse the snapshot.
    other = AnswerTable(Resolver(store, TrustList.from_text("ver:enum")))
    assert not other.load(path)
    path.write_bytes(b"garbage")
    assert not AnswerTable(table.resolver).load(path)


def test_parallel_build_gives_the_same_table(store: Ledger) -> None:
    one = make_table(store)
    resolver = Resolver(
        store,
        TrustList.from_text(demo.DEMO_VERIFIER),
        TollFreeSource.parse_list("@" + demo.DEMO_TOLLFREE),
    )
    two = AnswerTable(resolver)
    two.build(workers=2, chunk=1)
    assert two.answers == one.answers


def test_a_rebuild_forgets_a_lifted_revocation(store: Ledger) -> None:
    table = make_table(store)
    assert "15550001111" in table.revoked
    verifier = table.resolver.verifier(demo.DEMO_VERIFIER)
    update_keeping_owner(store, verifier.srl.record_name("enum:15550001111:0"), "lifted", 0)
    table.build(workers=1)
    assert "15550001111" not in table.revoked
    assert table.answer(key_of("15550001111")) is not None


@pytest.mark.parametrize("workers", [1, 2])
def test_build_reports_its_progress_up_to_the_total(store: Ledger, workers: int) -> None:
    seen: list[tuple[str, int, int]] = []
    table = AnswerTable(Resolver(store, TrustList.from_text(demo.DEMO_VERIFIER)))
    stats = table.build(workers=workers, chunk=1, progress=lambda *event: seen.append(event))
    total = store.count_prefix("enum:")
    assert total >= stats.records > 3
    assert len(seen) > 2  # one event per part, then the end
    assert seen[-1] == ("checking records", total, total)
    assert seen.count(seen[-1]) == 1  # the end is reported once
    done = [d for _, d, _ in seen]
    assert done == sorted(done)
    assert all(t == total for _, _, t in seen)


def test_the_table_file_is_the_snapshot_and_a_restart_serves_the_same_bytes(
    store: Ledger, tmp_path: Path
) -> None:
    """Built at its path, changed in place block by block: a restart maps that file
    (no compile, no signature check) and answers every number as before."""
    path = tmp_path / "t.snapshot"
    resolver = Resolver(
        store,
        TrustList.from_text(demo.DEMO_VERIFIER),
        TollFreeSource.parse_list("@" + demo.DEMO_TOLLFREE),
    )
    table = AnswerTable(resolver, path=path)
    table.build(workers=1)
    store.name_delete("enum:12025550100:0")
    revoke(store, demo.DEMO_VERIFIER, "enum:18009359935:0")
    assert table.refresh() >= {"12025550100", "18009359935"}
    table.save(path)  # nothing to write: every change is already in the file
    fresh = AnswerTable(make_table(store).resolver)
    checks = fresh.resolver.cache.checks
    assert fresh.load(path), fresh.refused
    assert fresh.stats.from_snapshot and fresh.resolver.cache.checks == checks
    assert dict(fresh.answers.items()) == dict(table.answers.items())
    assert len(fresh.answers) >= 3
    for key in [*table.answers, key_of("12025550100"), key_of("18009359935")]:
        assert fresh.answer(key) == table.answer(key)
    assert fresh.answer(key_of("18009359935")) is None
    assert fresh.revoked == table.revoked and "18009359935" in fresh.revoked


@pytest.mark.parametrize("damage", ["truncated", "index", "dirty"])
def test_a_damaged_snapshot_is_refused_then_rebuilt(
    store: Ledger, tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "t.snapshot"
    table = make_table(store)
    table.save(path)
    want = dict(table.answers.items())
    if damage == "dirty":  # the writer died between a change and its commit
        table.answers.put(b"1", b"x")
    else:
        with open(path, "r+b") as fh:
            if damage == "truncated":
                fh.truncate(path.stat().st_size - 1)
            else:
                fh.seek(4096 + 16)
                fh.write(b"\xff")
    resolver = table.resolver
    del table  # the writer is gone (its lock with it), as when the gateway restarts
    gc.collect()
    broken = AnswerTable(resolver, path=path)
    assert not broken.load(path)
    assert broken.refused
    assert not FlatTable.written_elsewhere(path)  # a refused file leaves no lock behind
    broken.build(workers=1)  # what the gateway does then: the file is written anew
    del broken
    gc.collect()
    again = AnswerTable(resolver, path=path)
    assert again.load(path), again.refused
    assert dict(again.answers.items()) == want


def test_a_second_process_on_a_served_table_never_writes_its_file(
    store: Ledger, tmp_path: Path
) -> None:
    """``enumer zone export`` beside a running gateway: it loads the table (a private
    copy), catches up and even rebuilds without touching the gateway's file."""
    path = tmp_path / "t.snapshot"
    served = AnswerTable(make_table(store).resolver, path=path)
    served.build(workers=1)
    inode = path.stat().st_ino
    before = dict(served.answers.items())
    store.name_delete("enum:12025550100:0")
    other = AnswerTable(make_table(store).resolver, path=path)
    assert other.load(path) and other.answers.private
    other.refresh()
    assert other.answer(key_of("12025550100")) is None
    other.build(workers=1)
    other.save(path)
    assert path.stat().st_ino == inode
    assert dict(served.answers.items()) == before  # the gateway's table, as it was
    assert served.answer(key_of("12025550100")) is not None
    served.refresh()  # the gateway's own change reaches its file
    assert served.answer(key_of("12025550100")) is None
    reopened = AnswerTable(make_table(store).resolver, path=path)
    assert reopened.load(path) and reopened.answer(key_of("12025550100")) is None
