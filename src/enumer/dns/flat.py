"""A flat, memory-mapped map of bytes keys to bytes values: the gateway's answer table.

Why a file: at millions of numbers a Python dict costs several times the data
(objects, hashes, refcounts), is copied page by page into every forked worker
as soon as refcounts touch it, and must be parsed again on every restart.
This file is the table itself: every process maps it (``MAP_SHARED``), so N
workers cost one copy; the C loop (``_fastloop.c``, ``table_lookup``) reads
it in place; and a restart maps it, checks it, and serves.

Layout (little-endian, offsets from the start of the file)::

    0     header, one 4 KiB page (HEADER below; a CRC32 of its bytes before it)
    4096  index: ``nslots`` (a power of two) u64 slots, open addressing,
          linear probing; 0 is an empty slot, 1 a deleted one (tombstone),
          anything else ``tag << 40 | entry offset`` with ``tag`` the top
          24 bits of the key's hash
    ...   page sums: a CRC32 (u32) of each 4 KiB page of the index; the
          header holds the CRC32 of this array
    ...   blob (from ``blob_off``, 4 KiB aligned): entries
          ``klen u8, key, vlen u32, value``, then free room up to the end of
          the file (sparse: it costs neither disk nor memory until written)

The hash is zlib's CRC32 of the key, mixed by MurmurHash3's 32-bit finalizer
(CRC is linear; the finalizer keeps runs of similar numbers from landing in
runs of slots).  Slot ``hash & (nslots - 1)`` is the first probed.

Changes are made in place by the one writer (the gateway's update thread),
lock-free for readers in any process: a new value is appended to the free
room first, then one aligned 8-byte store publishes it in its slot (a
reader sees the old entry or the new one, never a mix; x86-64 keeps stores
in order).  A delete stores a tombstone.  A change of k numbers thus writes
O(k) bytes.  When the free room or the slots run out, :meth:`FlatTable.compacted`
writes a new generation of the file (renamed over the old one; processes
that still map the old one keep serving it until they take the new one).

Crash safety: the header says ``DIRTY`` while a change is being written and
``CLEAN`` once it is flushed (:meth:`FlatTable.commit`); a file that is not
clean, has a wrong header, index page or size, is refused (:class:`Damaged`)
and the caller rebuilds it.  Values are not checksummed (reading them all
would make a restart as slow as the table is big); lookups bound every read
by the file's size, so a damaged value is wrong bytes, never a crash.
"""

from __future__ import annotations

import fcntl
import marshal
import mmap
import os
import struct
import sys
import tempfile
import zlib
from array import array
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "CLEAN",
    "MAGIC",
    "VERSION",
    "Damaged",
    "Entries",
    "FlatTable",
    "Full",
    "TableWriter",
    "copy_changed",
    "table_hash",
]

MAGIC = b"ENUMTBL\x00"
VERSION = 1
PAGE = 4096
CLEAN, DIRTY = 0, 1
EMPTY, DELETED = 0, 1
OFFSET_BITS = 40
OFFSET_MASK = (1 << OFFSET_BITS) - 1
MAX_KEY = 255

# magic, version, state, height, stamp, count, used, nslots, index_off, sums_off,
# blob_off, blob_end, capacity, meta_off, meta_len, generation, sums_crc,
# fingerprint (16 bytes); then the CRC32 of all that (HEADER_CRC_AT).
HEADER = struct.Struct("<8sIIqqQQQQQQQQQQQI16s")
HEADER_CRC_AT = HEADER.size
_U32 = struct.Struct("<I")
#: Slots in use (live and deleted) at most this share of all slots, else compact.
MAX_LOAD = 0.8
#: A new file's slots: this many per key (a load of 1/1.5 to 1/3 after a build).
SLOTS_PER_KEY = 1.5
#: Free room a new file gets for later changes: this share of its entries, at least MIN_ROOM.
ROOM_SHARE = 0.25
MIN_ROOM = 4 << 20
#: Bytes of entries a compaction gathers before writing them out.
COPY_PART = 4 << 20


class Damaged(Exception):
    """The file is not a complete, consistent table: never serve it, rebuild it."""


class Full(Exception):
    """No free room or slots left for a change: compact the table first, with at least
    :attr:`needed` bytes of room."""

    def __init__(self, needed: int = 0) -> None:
        super().__init__(f"no room for {needed} more bytes or for another key")
        self.needed = needed


def table_hash(key: bytes) -> int:
    """The 32-bit hash of a key (``table_hash`` in ``_fastloop.c`` computes the same)."""
    h = zlib.crc32(key)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def _round_up(n: int, to: int = PAGE) -> int:
    return (n + to - 1) // to * to


def _nslots(count: int) -> int:
    n = 8
    while n < count * SLOTS_PER_KEY:
        n *= 2
    return n


class FlatTable(Mapping[bytes, bytes]):
    """One mapped table file: a read-only :class:`~collections.abc.Mapping` for
    every process, plus :meth:`put`/:meth:`delete`/:meth:`commit` for the one
    that writes (``writable``).

    ``mapping`` (read-only ``mmap``) is what the C loop is given; ``meta`` is
    what the writer stored besides the answers (anything marshal can write).
    """

    def __init__(self, path: Path | None, fd: int, writable: bool, private: bool = False) -> None:
        if sys.byteorder != "little":  # the slots are read as native u64
            raise Damaged("the table format is little-endian only")
        self.path = path
        #: Where a new generation of an unlinked table goes (its writer's directory).
        self.directory: Path | None = None
        size = os.fstat(fd).st_size
        if size < PAGE:
            raise Damaged(f"{size} bytes: shorter than the header")
        #: The file's one writer holds an exclusive flock on it through this descriptor
        #: (None: another process writes it, or nobody may).
        self._lock_fd: int | None = None
        #: Changes stay in this process (another process is the file's writer).
        self.private = private
        if private:  # copy-on-write pages: the file never sees this process's changes
            self._rw: mmap.mmap | None = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
            self.mapping = self._rw
        else:
            self.mapping = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
            self._rw = mmap.mmap(fd, size, access=mmap.ACCESS_WRITE) if writable else None
        self.size = size
        self._dirty_pages: set[int] = set()  # index pages changed since the last commit
        self._read_header()

    # -- opening and checking ----------------------------------------------------

    @classmethod
    def open(cls, path: Path, writable: bool = False) -> FlatTable:
        """Map an existing file and check it (header, size, every index page): raises
        :class:`Damaged` when it must not be served.

        ``writable``: become the file's one writer (an exclusive ``flock``, held while
        this object lives); when another process already is (a running gateway, while
        ``enumer zone export`` reads the same store), the table is mapped copy-on-write
        instead (:attr:`private`): changes stay in this process, the file is untouched.
        """
        try:
            fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
        except OSError as exc:
            raise Damaged(f"cannot open: {exc.strerror}") from exc
        locked = False
        if writable:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except BlockingIOError:
                pass
        try:
            table = cls(path, fd, writable, private=writable and not locked)
        except BaseException as exc:
            os.close(fd)  # and with it the lock
            if isinstance(exc, OSError | ValueError):
                raise Damaged(str(exc)) from exc
            raise
        if locked:
            table._lock_fd = fd
        else:
            os.close(fd)
        try:
            table.check()
        except BaseException:
            table.__del__()  # a refused file keeps no lock
            raise
        return table

    @staticmethod
    def written_elsewhere(path: Path) -> bool:
        """Whether another open table holds the writer's lock on the file at ``path``."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    @property
    def owns(self) -> bool:
        """Whether this object is the writer of its file (changes reach the file)."""
        return self._lock_fd is not None

    def __del__(self) -> None:
        if getattr(self, "_lock_fd", None) is not None:
            os.close(self._lock_fd)  # type: ignore[arg-type]
            self._lock_fd = None

    def _read_header(self) -> None:
        raw = self.mapping[: HEADER_CRC_AT + 4]
        fields = HEADER.unpack_from(raw)
        (crc,) = _U32.unpack_from(raw, HEADER_CRC_AT)
        if fields[0] != MAGIC:
            raise Damaged("not an answer table (bad magic)")
        if fields[1] != VERSION:
            raise Damaged(f"table format version {fields[1]}, expected {VERSION}")
        if zlib.crc32(raw[:HEADER_CRC_AT]) != crc:
            raise Damaged("header checksum mismatch")
        (
            _,
            _,
            self.state,
            self.height,
            self.stamp,
            self.count,
            self.used,
            self.nslots,
            self.index_off,
            self.sums_off,
            self.blob_off,
            self.blob_end,
            self.capacity,
            self.meta_off,
            self.meta_len,
            self.generation,
            self.sums_crc,
            fp,
        ) = fields
        self.fingerprint = fp.rstrip(b"\0").decode("ascii", "replace")
        n = self.nslots
        pages = _round_up(n * 8) // PAGE
        if (
            n < 8
            or n & (n - 1)
            or self.index_off != PAGE
            or self.sums_off != PAGE + n * 8
            or self.blob_off != _round_up(self.sums_off + pages * 4)
            or not self.blob_off <= self.blob_end <= self.capacity
            or self.meta_off + self.meta_len > self.blob_end
            or self.count > self.used
            or self.used >= n
        ):
            raise Damaged("inconsistent header")
        if self.size != self.capacity:
            raise Damaged(f"{self.size} bytes, the header says {self.capacity} (truncated?)")
        self._slots = memoryview(self.mapping)[self.index_off : self.sums_off].cast("Q")
        self._mask = n - 1

    def check(self) -> None:
        """Raise :class:`Damaged` unless the file is clean and every index page matches
        its sum (reads the index once: about 1.3 s per 100 million numbers)."""
        if self.state != CLEAN:
            raise Damaged("left in the middle of a change (the writer stopped)")
        sums = self.mapping[self.sums_off : self.sums_off + self._pages() * 4]
        if zlib.crc32(sums) != self.sums_crc:
            raise Damaged("index checksum mismatch (page sums)")
        crc32 = zlib.crc32
        view = memoryview(self.mapping)
        for page in range(self._pages()):
            at = self.index_off + page * PAGE
            (want,) = _U32.unpack_from(sums, page * 4)
            if crc32(view[at : min(at + PAGE, self.sums_off)]) != want:
                raise Damaged(f"index checksum mismatch (page {page})")

    def _pages(self) -> int:
        return _round_up(self.nslots * 8) // PAGE

    @property
    def meta(self) -> Any:
        """What :meth:`commit` (or :meth:`create`) stored besides the answers."""
        if not self.meta_len:
            return None
        try:
            return marshal.loads(self.mapping[self.meta_off : self.meta_off + self.meta_len])
        except (EOFError, ValueError, TypeError) as exc:
            raise Damaged(f"unreadable metadata: {exc}") from exc

    # -- reading ------------------------------------------------------------------

    def _find(self, key: bytes) -> tuple[int, int]:
        """(slot index, entry offset) of ``key``; entry offset 0 when absent, and then
        the slot index is where it would go (the first deleted or empty slot)."""
        h = table_hash(key)
        tag = h >> 8
        mask = self._mask
        slots, mm = self._slots, self.mapping
        i = h & mask
        free = -1
        klen = len(key)
        for _ in range(self.nslots):
            s = slots[i]
            if s == EMPTY:
                return (i if free < 0 else free), 0
            if s == DELETED:
                if free < 0:
                    free = i
            elif s >> OFFSET_BITS == tag:
                off = s & OFFSET_MASK
                if mm[off] == klen and mm[off + 1 : off + 1 + klen] == key:
                    return i, off
            i = (i + 1) & mask
        return free, 0

    def _value(self, off: int) -> bytes:
        mm = self.mapping
        at = off + 1 + mm[off]
        (vlen,) = _U32.unpack_from(mm, at)
        return mm[at + 4 : at + 4 + vlen]

    def get(self, key: bytes, default: Any = None) -> Any:
        off = self._find(key)[1]
        return self._value(off) if off else default

    def __getitem__(self, key: bytes) -> bytes:
        off = self._find(key)[1]
        if not off:
            raise KeyError(key)
        return self._value(off)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self._find(key)[1] != 0

    def __len__(self) -> int:
        return int(self.count)

    def _entries(self) -> Iterator[int]:
        """Offsets of the live entries, in slot order (slots read 64 Ki at a time)."""
        slots = self._slots
        for start in range(0, self.nslots, 1 << 16):
            for s in slots[start : start + (1 << 16)].tolist():
                if s > DELETED:
                    yield s & OFFSET_MASK

    def __iter__(self) -> Iterator[bytes]:
        mm = self.mapping
        for off in self._entries():
            yield mm[off + 1 : off + 1 + mm[off]]

    def items(self) -> Iterator[tuple[bytes, bytes]]:  # type: ignore[override]
        """Every (key, value), in slot order: for a copy, ``dict(table.items())`` is
        twice as fast as ``dict(table)`` (which looks every key up again)."""
        mm = self.mapping
        unpack = _U32.unpack_from
        for off in self._entries():
            at = off + 1 + mm[off]
            yield mm[off + 1 : at], mm[at + 4 : at + 4 + unpack(mm, at)[0]]

    def release(self) -> None:
        """Drop this process's resident pages of the file (they stay in the page cache,
        and a lookup maps them again): after a walk of the whole table, such as the
        signing, they would count in the process's RSS though serving needs few."""
        self.mapping.madvise(mmap.MADV_DONTNEED)
        if self._rw is not None and self._rw is not self.mapping:
            self._rw.madvise(mmap.MADV_DONTNEED)

    # -- writing (one writer) ---------------------------------------------------------

    def _writer(self) -> mmap.mmap:
        if self._rw is None:
            raise ValueError("the table was opened read-only")
        if self.state != DIRTY:
            self.state = DIRTY
            self._write_header()
        return self._rw

    def put(self, key: bytes, value: bytes) -> None:
        """Publish ``value`` for ``key`` (readers see it at once); :class:`Full` when
        there is no room left (nothing written then)."""
        if len(key) > MAX_KEY:
            raise ValueError(f"key of {len(key)} bytes (at most {MAX_KEY})")
        i, off = self._find(key)
        entry = bytes([len(key)]) + key + _U32.pack(len(value)) + value
        new_slot = off == 0 and self._slots[i] == EMPTY
        if self.blob_end + len(entry) > self.capacity or (
            new_slot and self.used + 1 > self.nslots * MAX_LOAD
        ):
            raise Full(len(entry))
        rw = self._writer()
        at = self.blob_end
        rw[at : at + len(entry)] = entry
        self.blob_end += len(entry)
        self._store(i, (table_hash(key) >> 8) << OFFSET_BITS | at)
        if off == 0:
            self.count += 1
            self.used += new_slot

    def put_growing(self, key: bytes, value: bytes) -> FlatTable:
        """:meth:`put`, on a new generation (:meth:`compacted`) when this one has no
        room left; returns the table that holds the change."""
        try:
            self.put(key, value)
        except Full as full:
            grown = self.compacted(room=full.needed)
            grown.put(key, value)
            return grown
        return self

    def delete(self, key: bytes) -> None:
        """Remove ``key`` (a tombstone in its slot); nothing happens when it is absent."""
        i, off = self._find(key)
        if off:
            self._writer()
            self._store(i, DELETED)
            self.count -= 1

    def _store(self, i: int, slot: int) -> None:
        """One aligned 8-byte store (memoryview item assignment): the publication."""
        assert self._rw is not None
        memoryview(self._rw)[self.index_off : self.sums_off].cast("Q")[i] = slot
        self._dirty_pages.add(i * 8 // PAGE)

    def commit(self, height: int, stamp: int, meta: Any = None) -> None:
        """End a change: page sums, metadata and the height it reflects, flushed,
        then the header marked clean (and flushed).  :class:`Full` when the metadata
        does not fit (the change is then still dirty: compact)."""
        rw = self._writer()
        if meta is not None:
            blob = marshal.dumps(meta)
            if self.blob_end + len(blob) > self.capacity:
                raise Full(len(blob))
            rw[self.blob_end : self.blob_end + len(blob)] = blob
            self.meta_off, self.meta_len = self.blob_end, len(blob)
            self.blob_end += len(blob)
        sums = memoryview(rw)[self.sums_off : self.sums_off + self._pages() * 4].cast("I")
        for page in sorted(self._dirty_pages):
            at = self.index_off + page * PAGE
            sums[page] = zlib.crc32(rw[at : min(at + PAGE, self.sums_off)])
        self._dirty_pages.clear()
        self.sums_crc = zlib.crc32(sums)
        sums.release()
        self.height, self.stamp = height, stamp
        if not self.private:
            rw.flush()  # the kernel writes the dirty pages only
        self.state = CLEAN
        self._write_header()
        if not self.private:
            rw.flush(0, PAGE)

    def commit_growing(self, height: int, stamp: int, meta: Any = None) -> FlatTable:
        """:meth:`commit`, on a new generation when the metadata does not fit; returns
        the table committed."""
        try:
            self.commit(height, stamp, meta)
        except Full as full:
            grown = self.compacted(room=full.needed)
            grown.commit(height, stamp, meta)
            return grown
        return self

    def _write_header(self) -> None:
        assert self._rw is not None
        raw = HEADER.pack(
            MAGIC,
            VERSION,
            self.state,
            self.height,
            self.stamp,
            self.count,
            self.used,
            self.nslots,
            self.index_off,
            self.sums_off,
            self.blob_off,
            self.blob_end,
            self.capacity,
            self.meta_off,
            self.meta_len,
            self.generation,
            self.sums_crc,
            self.fingerprint.encode("ascii")[:16],
        )
        self._rw[: HEADER_CRC_AT + 4] = raw + _U32.pack(zlib.crc32(raw))

    def compacted(self, room: int = 0, path: Path | None = None) -> FlatTable:
        """A new generation of this table (live entries only, fresh slots and room
        for ``room`` more bytes), renamed over this one's path (or written to
        ``path``, where it is kept from then on); written in parts of a few MiB, so
        a copy of the entries never sits in memory."""
        writer = TableWriter(
            path or (self.path if self.owns else None),  # only the writer replaces the file
            self.count,
            self.directory,
        )
        part = Entries()
        for key, value in self.items():
            part.add(key, value)
            if len(part.blob) >= COPY_PART:
                writer.add(part)
                part = Entries()
        writer.add(part)
        return writer.finish(
            height=self.height,
            stamp=self.stamp,
            meta=self.meta,
            fingerprint=self.fingerprint,
            generation=self.generation + 1,
            room=room,
        )

    # -- creating -------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: Path | None,
        items: Iterable[tuple[bytes, bytes]],
        count: int = 0,
        *,
        height: int = -1,
        stamp: int = -1,
        meta: Any = None,
        fingerprint: str = "",
        generation: int = 1,
        room: int = 0,
        keys: int = 0,
    ) -> FlatTable:
        """Write a table of the items to ``path`` (atomically: a new file renamed over
        it) or, with no path, to an unlinked temporary file; return it mapped for
        writing.  ``room`` (bytes) and ``keys`` reserve space for later changes beyond
        the defaults; ``count`` (how many items, if known) only sizes the first buffer."""
        entries = Entries()
        for key, value in items:
            entries.add(key, value)
        return cls.write(
            path,
            entries,
            height=height,
            stamp=stamp,
            meta=meta,
            fingerprint=fingerprint,
            generation=generation,
            room=room,
            keys=keys,
        )

    @classmethod
    def write(
        cls,
        path: Path | None,
        entries: Entries,
        *,
        height: int = -1,
        stamp: int = -1,
        meta: Any = None,
        fingerprint: str = "",
        generation: int = 1,
        room: int = 0,
        keys: int = 0,
    ) -> FlatTable:
        """:meth:`create` from entries already encoded (a build's workers encode theirs,
        so that the parent only fills the index).  Keys must be distinct."""
        writer = TableWriter(path, max(len(entries), keys))
        writer.add(entries)
        return writer.finish(
            height=height,
            stamp=stamp,
            meta=meta,
            fingerprint=fingerprint,
            generation=generation,
            room=room,
        )


def copy_changed(
    last: dict[bytes, bytes], source: Mapping[bytes, bytes], keys: Iterable[bytes]
) -> dict[bytes, bytes]:
    """A copy of ``last`` (an earlier copy of ``source``) with the ``keys`` changed
    since read from ``source`` again: a C-level dict copy and k lookups, not a walk
    of the table (the zone versions of transfers)."""
    out = dict(last)
    for key in keys:
        value = source.get(key)
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


class TableWriter:
    """A new table file written part by part: each part's bytes go to the file as they
    come, so only the keys' hashes and offsets (12 bytes a key) stay in memory.

    The index comes before the entries, so its size is fixed up front: ``keys``,
    how many distinct keys the parts will hold at most.  ``path`` None: an
    unlinked temporary file in ``directory`` (default: the system's).
    """

    def __init__(self, path: Path | None, keys: int, directory: Path | None = None) -> None:
        self.path = path
        self.nslots = _nslots(keys)
        self.keys = keys
        self.sums_off = PAGE + self.nslots * 8
        self.pages = _round_up(self.nslots * 8) // PAGE
        self.blob_off = _round_up(self.sums_off + self.pages * 4)
        self.blob_len = 0
        self.hashes = array("I")
        self.offsets = array("Q")
        if path is None:
            fd, name = tempfile.mkstemp(prefix="enumer-table-", dir=directory)
            os.unlink(name)
            self.tmp: Path | None = None
        else:
            self.tmp = path.with_name(path.name + ".new")
            fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self.fd = fd
        self.directory = directory if path is None else path.parent

    def add(self, entries: Entries) -> None:
        """Write a part's entries after those before it (keys distinct across parts)."""
        if len(self.hashes) + len(entries) > self.keys:
            self.abort()
            raise ValueError(f"more than the {self.keys} keys the table was sized for")
        try:
            os.pwrite(self.fd, entries.blob, self.blob_off + self.blob_len)
        except BaseException:
            self.abort()
            raise
        base = self.blob_len
        self.hashes.extend(entries.hashes)
        self.offsets.extend(o + base for o in entries.offsets)
        self.blob_len += len(entries.blob)

    def abort(self) -> None:
        """Drop the file (a failed build leaves nothing behind)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)

    def finish(
        self,
        *,
        height: int = -1,
        stamp: int = -1,
        meta: Any = None,
        fingerprint: str = "",
        generation: int = 1,
        room: int = 0,
    ) -> FlatTable:
        """Fill the index, write the header and (with a path) rename the file into
        place; return it mapped for writing.  ``room``: bytes kept free for changes
        beyond the default share."""
        fd, path, tmp = self.fd, self.path, self.tmp
        count, nslots, blob_off = len(self.hashes), self.nslots, self.blob_off
        try:
            slots = memoryview(bytearray(nslots * 8)).cast("Q")
            mask = nslots - 1
            for h, at in zip(self.hashes, self.offsets, strict=True):
                i = h & mask
                while slots[i]:
                    i = (i + 1) & mask
                slots[i] = (h >> 8) << OFFSET_BITS | (blob_off + at)
            self.hashes, self.offsets = array("I"), array("Q")
            metablob = marshal.dumps(meta) if meta is not None else b""
            meta_off = blob_off + self.blob_len
            os.pwrite(fd, metablob, meta_off)
            end = meta_off + len(metablob)
            capacity = _round_up(end + max(room, MIN_ROOM, int(self.blob_len * ROOM_SHARE)))
            index = slots.tobytes()
            os.pwrite(fd, index, PAGE)
            sums = b"".join(
                _U32.pack(zlib.crc32(index[p * PAGE : (p + 1) * PAGE])) for p in range(self.pages)
            )
            os.pwrite(fd, sums, self.sums_off)
            raw = HEADER.pack(
                MAGIC,
                VERSION,
                CLEAN,
                height,
                stamp,
                count,
                count,
                nslots,
                PAGE,
                self.sums_off,
                blob_off,
                end,
                capacity,
                meta_off,
                len(metablob),
                generation,
                zlib.crc32(sums),
                fingerprint.encode("ascii")[:16],
            )
            os.pwrite(fd, raw + _U32.pack(zlib.crc32(raw)), 0)
            os.ftruncate(fd, capacity)  # the free room stays a hole until written
            if tmp is not None:
                os.fsync(fd)
                assert path is not None
                fcntl.flock(fd, fcntl.LOCK_EX)  # nobody else has it open yet
                os.replace(tmp, path)
            table = FlatTable(path, fd, writable=True)
            table.directory = self.directory
        except BaseException:
            self.abort()
            raise
        if tmp is not None:
            table._lock_fd = fd  # the writer's lock, as long as the table lives
        else:
            os.close(fd)
        self.fd = -1
        return table


class Entries:
    """Table entries encoded as the file holds them (``klen, key, vlen, value``), with
    each key's hash and offset: what a build's worker sends its parent, which then
    only fills the index and writes the bytes (:meth:`FlatTable.write`)."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.hashes = array("I")
        self.offsets = array("Q")

    def add(self, key: bytes, value: bytes) -> None:
        if len(key) > MAX_KEY:
            raise ValueError(f"key of {len(key)} bytes (at most {MAX_KEY})")
        blob = self.blob
        self.hashes.append(table_hash(key))
        self.offsets.append(len(blob))
        blob += bytes((len(key),))
        blob += key
        blob += _U32.pack(len(value))
        blob += value

    def extend(self, other: Entries) -> None:
        """Append another part's entries (their offsets shifted past these)."""
        base = len(self.blob)
        self.blob += other.blob
        self.hashes.extend(other.hashes)
        self.offsets.extend(o + base for o in other.offsets)

    def __len__(self) -> int:
        return len(self.hashes)
