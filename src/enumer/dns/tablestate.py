"""Per-name state of an answer table, kept beside its file so that a block writes only
what it changed.

Freshness (SPEC 11) keeps the newest OSIG time accepted for every strictly signed
record, and expiry the chain day on which each bound verdict changes by itself: one
entry per record, millions on a big chain.  Written into the table file's metadata,
every commit (every block) would rewrite them all and soon fill the file's free room.
Here they live in an SQLite database next to the table file (``<table>.state``), and a
commit writes only the entries set or removed since the last one.

The table file's metadata and the database carry the same random token: a load takes
the pair only when the tokens agree, so a crash between the two writes costs a
rebuild, never a table served with another table's freshness bar.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from enumer.sqlite_util import connect, immediate_transaction

__all__ = ["Journaled", "TableState", "new_token", "state_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS token (one INTEGER PRIMARY KEY CHECK (one = 1), value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accepted (name TEXT PRIMARY KEY, time INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS expiring (digits TEXT PRIMARY KEY, day INTEGER NOT NULL) WITHOUT ROWID;
"""


def state_path(table_path: Path) -> Path:
    return table_path.with_name(table_path.name + ".state")


def new_token() -> str:
    return secrets.token_hex(8)


class Journaled(dict[str, int]):
    """A dict that remembers the keys set or removed since :meth:`take`, so that the
    state database is told only those."""

    def __init__(self, items: Mapping[str, int] | Iterable[tuple[str, int]] = ()) -> None:
        super().__init__(items)
        self.touched: set[str] = set()

    def __setitem__(self, key: str, value: int) -> None:
        super().__setitem__(key, value)
        self.touched.add(key)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.touched.add(key)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self.touched.add(key)
        return super().pop(key, *default)

    def update(self, *others: Any, **more: int) -> None:
        changes = dict(*others, **more)
        super().update(changes)
        self.touched.update(changes)

    def clear(self) -> None:
        self.touched.update(self)
        super().clear()

    def changes(self) -> tuple[list[tuple[str, int]], list[tuple[str]]]:
        """(keys set, with their values; keys removed) since the last :meth:`take`."""
        setting = [(k, self[k]) for k in self.touched if k in self]
        removing = [(k,) for k in self.touched if k not in self]
        return setting, removing

    def take(self) -> None:
        """Forget the changes: they are written."""
        self.touched = set()


class TableState:
    """The state database of one table file (one writer: the process that owns it)."""

    def __init__(self, path: Path, writable: bool = True) -> None:
        self.path = path
        self.db = connect(path, read_only=not writable)
        if writable:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def token(self) -> str:
        row = self.db.execute("SELECT value FROM token").fetchone()
        return str(row[0]) if row else ""

    def read(self) -> tuple[Journaled, Journaled]:
        """(accepted OSIG time per record name, the day each number's verdict changes)."""
        accepted = Journaled(self.db.execute("SELECT name, time FROM accepted"))
        expiring = Journaled(self.db.execute("SELECT digits, day FROM expiring"))
        return accepted, expiring

    def replace(self, token: str, accepted: Journaled, expiring: Journaled) -> None:
        """Everything anew (a build, or the table written to another file)."""
        db = self.db
        with immediate_transaction(db):
            db.execute("DELETE FROM accepted")
            db.execute("DELETE FROM expiring")
            db.executemany("INSERT INTO accepted VALUES (?, ?)", accepted.items())
            db.executemany("INSERT INTO expiring VALUES (?, ?)", expiring.items())
            db.execute("INSERT OR REPLACE INTO token VALUES (1, ?)", (token,))
        accepted.take()
        expiring.take()

    def write(self, accepted: Journaled, expiring: Journaled) -> None:
        """What changed since the last write (a commit of the table); on an error the
        changes are kept for the next one."""
        (a_set, a_gone), (e_set, e_gone) = accepted.changes(), expiring.changes()
        if a_set or a_gone or e_set or e_gone:
            db = self.db
            with immediate_transaction(db):
                db.executemany("INSERT OR REPLACE INTO accepted VALUES (?, ?)", a_set)
                db.executemany("DELETE FROM accepted WHERE name = ?", a_gone)
                db.executemany("INSERT OR REPLACE INTO expiring VALUES (?, ?)", e_set)
                db.executemany("DELETE FROM expiring WHERE digits = ?", e_gone)
        accepted.take()
        expiring.take()
