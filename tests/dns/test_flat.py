"""The flat table file: any keys and values round-trip, changes in place, damage refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enumer.dns import flat
from enumer.dns.flat import PAGE, Damaged, Entries, FlatTable, Full, TableWriter

keys = st.binary(min_size=1, max_size=64) | st.text("0123456789", min_size=1, max_size=64).map(
    str.encode
)
values = st.binary(min_size=1, max_size=600)
tables = st.dictionaries(keys, values, max_size=300)
#: A change: a value for a key, or None (delete it).
changes = st.lists(st.tuples(keys, st.none() | values), max_size=200)


def same(table: FlatTable, want: dict[bytes, bytes], probes: list[bytes]) -> None:
    assert len(table) == len(want)
    assert dict(table.items()) == want
    assert set(table) == set(want)
    for key in [*want, *probes]:
        assert table.get(key) == want.get(key)
        assert (key in table) == (key in want)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=tables, edits=changes, probes=st.lists(keys, max_size=20))
def test_any_table_round_trips_through_changes_and_reopening(
    tmp_path_factory: pytest.TempPathFactory,
    start: dict[bytes, bytes],
    edits: list[tuple[bytes, bytes | None]],
    probes: list[bytes],
) -> None:
    path = tmp_path_factory.mktemp("flat") / "t"
    table = FlatTable.create(path, start.items(), len(start), height=3, stamp=4, meta=[1])
    same(table, start, probes)
    want = dict(start)
    for key, value in edits:
        if value is None:
            table.delete(key)
            want.pop(key, None)
            continue
        try:
            table.put(key, value)
        except Full:  # as the answer table does: a new generation, then the change
            table = table.compacted(room=len(value))
            table.put(key, value)
        want[key] = value
    same(table, want, probes)
    table.commit(5, 6, {"meta": True})
    again = FlatTable.open(path)
    same(again, want, probes)
    assert (again.height, again.stamp, again.meta) == (5, 6, {"meta": True})


def test_a_reader_sees_the_writers_changes_at_once(tmp_path: Path) -> None:
    """Two mappings of one file (as a worker and the updating thread have)."""
    path = tmp_path / "t"
    writer = FlatTable.create(path, [(b"1", b"a")], 1)
    reader = FlatTable.open(path)
    writer.put(b"1", b"b")
    writer.put(b"2", b"c")
    writer.delete(b"2")
    assert reader.get(b"1") == b"b" and reader.get(b"2") is None


def test_a_full_table_says_so_and_writes_nothing(tmp_path: Path) -> None:
    table = FlatTable.create(tmp_path / "t", [], 0)  # 8 slots: at most 6 in use
    for n in range(6):
        table.put(str(n).encode(), b"x")
    blob_end = table.blob_end
    with pytest.raises(Full):
        table.put(b"new", b"x")
    assert table.blob_end == blob_end and b"new" not in table
    table.put(b"1", b"replaced")  # a key that has a slot still fits
    assert table.get(b"1") == b"replaced"


def _damaged(path: Path, how: str) -> None:
    table = FlatTable.open(path)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        if how == "truncated":
            fh.truncate(size - PAGE)
        elif how == "index":
            fh.seek(table.index_off + 8 * (table.nslots // 2) + 3)
            byte = fh.read(1)
            fh.seek(-1, os.SEEK_CUR)
            fh.write(bytes([byte[0] ^ 0x10]))
        elif how == "header":
            fh.seek(16)
            fh.write(b"\x01")
        elif how == "magic":
            fh.seek(0)
            fh.write(b"X")
        elif how == "empty":
            fh.truncate(0)


@pytest.mark.parametrize("how", ["truncated", "index", "header", "magic", "empty"])
def test_a_damaged_file_is_refused(tmp_path: Path, how: str) -> None:
    path = tmp_path / "t"
    items = {str(n).encode(): b"v" * (n % 7 + 1) for n in range(5000)}
    FlatTable.create(path, items.items(), len(items))
    FlatTable.open(path).check()
    _damaged(path, how)
    with pytest.raises(Damaged):
        FlatTable.open(path)


def test_a_change_left_half_done_is_refused(tmp_path: Path) -> None:
    """The writer stopped between a change and its commit: the file says DIRTY."""
    path = tmp_path / "t"
    table = FlatTable.create(path, [(b"1", b"a")], 1)
    table.put(b"2", b"b")
    with pytest.raises(Damaged, match="middle of a change"):
        FlatTable.open(path)
    table.commit(1, 1)
    assert FlatTable.open(path).get(b"2") == b"b"


def test_one_writer_per_file_and_the_others_change_a_private_copy(tmp_path: Path) -> None:
    """A second process (``zone export`` beside a running gateway) that opens the file
    for writing gets copy-on-write pages: its changes never reach the file."""
    path = tmp_path / "t"
    writer = FlatTable.create(path, [(b"1", b"a")], 1)
    assert writer.owns and FlatTable.written_elsewhere(path)
    other = FlatTable.open(path, writable=True)
    assert other.private and not other.owns
    other.put(b"1", b"changed")
    other.put(b"2", b"new")
    other.commit(9, 9)
    assert other.get(b"1") == b"changed" and other.get(b"2") == b"new"
    assert writer.get(b"1") == b"a" and writer.get(b"2") is None
    again = FlatTable.open(path)
    assert again.height == -1 and again.get(b"1") == b"a"
    assert other.compacted().path is None  # only the writer replaces the file
    del writer
    assert not FlatTable.written_elsewhere(path)
    assert FlatTable.open(path, writable=True).owns


def _entries(items: list[tuple[bytes, bytes]]) -> Entries:
    out = Entries()
    for key, value in items:
        out.add(key, value)
    return out


def test_a_table_written_in_parts_is_the_table_written_at_once(tmp_path: Path) -> None:
    items = [(f"{n:05d}".encode(), bytes([n % 251]) * (n % 97 + 1)) for n in range(3000)]
    whole = FlatTable.write(tmp_path / "whole", _entries(items), height=9, meta={"m": 1})
    writer = TableWriter(tmp_path / "parts", len(items))
    for lo in range(0, len(items), 700):
        writer.add(_entries(items[lo : lo + 700]))
    parts = writer.finish(height=9, meta={"m": 1})
    assert (tmp_path / "whole").read_bytes() == (tmp_path / "parts").read_bytes()
    again = FlatTable.open(tmp_path / "parts")
    same(again, dict(items), [b"nope", b"03000"])
    assert not list(tmp_path.glob("*.new")) and len(parts) == len(whole)


def test_more_keys_than_the_writer_was_sized_for_leave_no_file(tmp_path: Path) -> None:
    writer = TableWriter(tmp_path / "t", 2)
    writer.add(_entries([(b"1", b"a"), (b"2", b"b")]))
    with pytest.raises(ValueError, match="more than the 2 keys"):
        writer.add(_entries([(b"3", b"c")]))
    assert list(tmp_path.iterdir()) == []


def test_an_unlinked_table_compacts_in_parts_into_its_own_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table with no path (the signed entries) gets its next generation beside the
    first, gathered a part at a time; the old mapping still reads the old entries."""
    monkeypatch.setattr(flat, "COPY_PART", 1000)
    items = {f"{n:04d}".encode(): b"v" * 50 for n in range(400)}
    writer = TableWriter(None, len(items), tmp_path)
    writer.add(_entries(list(items.items())))
    table = writer.finish()
    assert table.path is None and table.directory == tmp_path
    assert list(tmp_path.iterdir()) == []  # unlinked at once: nothing to clean up
    maps = Path("/proc/self/maps").read_text()
    assert f"{tmp_path}/enumer-table-" in maps and "(deleted)" in maps
    newer = table.compacted(room=10)
    assert newer.generation == 2 and newer.directory == tmp_path
    newer.put(b"0001", b"changed")
    same(newer, {**items, b"0001": b"changed"}, [b"x"])
    assert table.get(b"0001") == b"v" * 50
