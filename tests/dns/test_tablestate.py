"""The per-record state beside the table file: a block writes what it changed, a
restart reads it back, a state of another table (or a broken one) is refused."""

from __future__ import annotations

import gc
import sqlite3
from pathlib import Path

from tests.dns.test_bound_gateway import (  # noqa: F401 - the store fixture is used by name
    STRICT_NUMBER,
    make_table,
    publish_strict,
    store,
)

from enumer.bound import Policy
from enumer.dns.flat import MIN_ROOM
from enumer.dns.table import AnswerTable, key_of
from enumer.dns.tablestate import Journaled, TableState, state_path
from enumer.nvs.ledger import Ledger

#: Enough accepted OSIG times that their marshalled size exceeds the free room a table
#: file starts with (MIN_ROOM): kept in the file's metadata, a commit could not fit them.
MANY = MIN_ROOM // 16


def strict_table(ledger: Ledger, path: Path) -> AnswerTable:
    return make_table(ledger, Policy.STRICT, path)


def restart(table: AnswerTable, ledger: Ledger, path: Path) -> AnswerTable:
    """The gateway stopped (its lock on the file gone) and started again on ``path``."""
    del table
    gc.collect()
    fresh = make_table(ledger, Policy.STRICT, path, build=False)
    assert fresh.load(path), fresh.refused
    return fresh


def test_journaled_remembers_what_was_set_and_removed() -> None:
    d = Journaled({"a": 1, "b": 2})
    assert d.changes() == ([], [])
    d["c"] = 3
    d.update({"a": 5})
    d.pop("b")
    d.pop("absent", None)
    setting, removing = d.changes()
    assert sorted(setting) == [("a", 5), ("c", 3)] and removing == [("b",)]
    d.take()
    assert d.changes() == ([], [])
    d.clear()
    assert sorted(d.changes()[1]) == [("a",), ("c",)]


def test_a_block_writes_only_the_state_it_changed_and_a_restart_reads_it_all(
    store: Ledger,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.snapshot"
    table = strict_table(store, path)
    assert table.answer(key_of(STRICT_NUMBER)) is not None
    # As if a big chain's strictly signed records had been accepted already.
    table.accepted.update({f"enum:1{n:010d}:0": 1_700_000_000 + n for n in range(MANY)})
    publish_strict(store, "enum:15550009999:0", "first")
    assert "15550009999" in table.refresh()  # the commit writes them all once
    assert table.state is not None
    size, writes = path.stat().st_size, table.state.db.total_changes
    publish_strict(store, "enum:15550009998:0", "second")
    assert table.refresh() == {"15550009998"}
    assert table.state.db.total_changes - writes <= 2  # this record's time (and expiry)
    assert path.stat().st_size - size < MIN_ROOM  # the file got the answer, not the state
    accepted = dict(table.accepted)
    assert len(accepted) > MANY
    fresh = restart(table, store, path)
    assert fresh.accepted == accepted
    assert fresh.answer(key_of("15550009998")) is not None
    assert fresh.accepted.changes() == ([], [])  # read back: nothing to write again


def test_a_state_database_of_another_table_or_broken_is_refused_then_rebuilt(
    store: Ledger,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.snapshot"
    table = strict_table(store, path)
    want = dict(table.answers.items())
    del table
    gc.collect()
    state = TableState(state_path(path))
    state.replace("another", Journaled(), Journaled())
    state.close()
    other = make_table(store, Policy.STRICT, path, build=False)
    assert not other.load(path)
    assert other.refused == "its state database is of another table file"
    state_path(path).write_bytes(b"not a database" * 100)
    for extra in ("-wal", "-shm"):
        state_path(path).with_name(state_path(path).name + extra).unlink(missing_ok=True)
    assert not other.load(path)
    assert other.refused.startswith("its state database:")
    state_path(path).unlink()
    assert not other.load(path) and other.refused == "its state database is missing"
    assert not state_path(path).exists()  # refusing it made no empty one
    other.build(workers=1)  # what the gateway does then: both files written anew
    assert sqlite3.connect(state_path(path)).execute("SELECT count(*) FROM accepted").fetchone()
    again = restart(other, store, path)
    assert dict(again.answers.items()) == want
