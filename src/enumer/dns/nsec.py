"""The NSEC chain of a signed zone: its served names in canonical order, packed.

At a million numbers a list of Python strings costs about 72 bytes a name (a
string object and a pointer); the gateway keeps the chain as long as it
serves, so it is packed instead: one ``bytearray`` of fixed-width records,
each a name's digits padded with NUL bytes.  NUL sorts before every digit,
so the records' byte order is the names' text order, which is their DNS
canonical order (see :mod:`enumer.dns.dnssec`): a bisection over the records
finds the NSEC that covers any name, at about 15 bytes a name.  It is made
from the table's keys (:meth:`Chain.of_keys`).

The apex is the empty name (all NULs), always first.  Sort keys such as
``"18*"`` (the wildcard at ``8.1``), ``"5~"`` or ``"!"`` (see
:func:`enumer.dns.signed.sort_key`) are looked up the same way; only names of
digits are ever stored.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

#: The narrowest record: E.164 numbers have at most 15 digits.  A longer name
#: inserted later widens every record once.
MIN_WIDTH = 15


class _Records(Sequence[bytes]):
    """The records of a chain as a sequence of bytes, for :mod:`bisect`."""

    def __init__(self, data: bytearray, width: int) -> None:
        self.data, self.width = data, width

    def __len__(self) -> int:
        return len(self.data) // self.width

    @overload
    def __getitem__(self, i: int) -> bytes: ...
    @overload
    def __getitem__(self, i: slice) -> list[bytes]: ...
    def __getitem__(self, i: int | slice) -> bytes | list[bytes]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        w = self.width
        return bytes(self.data[i * w : (i + 1) * w])


class Chain(Sequence[str]):
    """The sorted served names of a zone (the apex ``""`` first): NSEC owners and nexts.

    A sequence of the names (``chain[i]``, ``chain[lo:hi]``, ``len(chain)``).
    ``names`` must be sorted and distinct (``["", *sorted_names(keys)]``).
    """

    def __init__(self, names: Iterable[str] = ("",)) -> None:
        listed = names if isinstance(names, list) else list(names)
        self.width = w = max(MIN_WIDTH, max(map(len, listed), default=0))
        self.data = bytearray(b"".join(n.encode("ascii").ljust(w, b"\0") for n in listed))

    @classmethod
    def of_keys(cls, keys: Iterable[bytes]) -> Chain:
        """The chain of a table's keys (digits in label order) and the apex.

        Sorted and packed as bytes (ASCII digits sort as their text): a million
        keys never become strings.
        """
        names = sorted(key[::-1] for key in keys)
        chain = cls(())
        chain.width = w = max(MIN_WIDTH, max(map(len, names), default=0))
        chain.data = bytearray(bytes(w) + b"".join(n.ljust(w, b"\0") for n in names))
        return chain

    def copy(self) -> Chain:
        """A chain of its own with the same names (one copy of the bytes)."""
        other = Chain(())
        other.width, other.data = self.width, bytearray(self.data)
        return other

    def _pack(self, name: str) -> bytes:
        """``name`` as a record; a longer one cut to the width (which bisects the same:
        every stored name fits the width)."""
        return name.encode("ascii")[: self.width].ljust(self.width, b"\0")

    def _records(self) -> _Records:
        return _Records(self.data, self.width)

    # -- the sequence -------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.data) // self.width

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        w, data = self.width, self.data
        if isinstance(i, slice):
            lo, hi, step = i.indices(len(self))
            if step != 1:
                return [self[j] for j in range(lo, hi, step)]
            raw = bytes(data[lo * w : hi * w])
            return [raw[k : k + w].rstrip(b"\0").decode("ascii") for k in range(0, len(raw), w)]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("chain index out of range")
        return bytes(data[i * w : (i + 1) * w]).rstrip(b"\0").decode("ascii")

    def __iter__(self) -> Iterator[str]:
        for lo in range(0, len(self), 4096):
            yield from self[lo : lo + 4096]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Chain):
            return NotImplemented
        if self.width == other.width:
            return self.data == other.data
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.index(name) >= 0

    # -- lookups --------------------------------------------------------------------

    def next_of(self, i: int) -> str:
        return self[i + 1] if i + 1 < len(self) else ""

    def covering(self, name: str) -> int:
        """Index of the NSEC whose span holds ``name`` (the last owner <= ``name``)."""
        return bisect.bisect_right(self._records(), self._pack(name)) - 1

    def index(self, name: str) -> int:  # type: ignore[override]
        """Index of ``name`` in the chain, or -1."""
        if len(name) > self.width:
            return -1
        packed = self._pack(name)
        records = self._records()
        i = bisect.bisect_left(records, packed)
        return i if i < len(records) and records[i] == packed else -1

    def denial(self, name: str, cap: int | None = None) -> tuple[bool, list[int]]:
        """(name exists as an empty non-terminal, NSEC indexes proving the answer) for a
        name not in the chain: NODATA for a non-terminal, else NXDOMAIN with the
        NSEC covering the name and the one covering the wildcard at its closest
        encloser (RFC 4035 3.1.3.2, 5.4).  ``cap``: how many leading characters of
        ``name`` are labels (a sort position such as ``"5~"`` has more)."""
        cap = len(name) if cap is None else cap
        i = self.covering(name)
        nxt = self.next_of(i)
        if cap == len(name) and nxt.startswith(name):
            return True, [i]
        encloser = min(cap, max(_common(name, self[i]), _common(name, nxt)))
        j = self.covering(name[:encloser] + "*")
        return False, [i] if j == i else [i, j]

    # -- changes (on a copy: readers keep the chain they took) ------------------------

    def insert(self, name: str) -> int:
        """Add ``name`` (if absent); returns its index."""
        if len(name) > self.width:
            self._widen(len(name))
        packed = self._pack(name)
        records = self._records()
        i = bisect.bisect_left(records, packed)
        if i >= len(records) or records[i] != packed:
            at = i * self.width
            self.data[at:at] = packed
        return i

    def remove(self, name: str) -> int:
        """Remove ``name``; returns the index of its predecessor (or -1 if absent)."""
        i = self.index(name)
        if i > 0:
            del self.data[i * self.width : (i + 1) * self.width]
            return i - 1
        return -1

    def _widen(self, width: int) -> None:
        names = list(self)
        self.width = width
        self.data = bytearray(b"".join(n.encode("ascii").ljust(width, b"\0") for n in names))


def _common(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
