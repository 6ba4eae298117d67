"""The SQLite conventions every ENUMER state file follows, written once.

The embedded ledger and the verification service's state (and its users) are
SQLite files that several processes and threads may open at the same time.
They all connect the same way (explicit transactions, a generous lock wait,
usable from the thread that did not open it) and write inside ``BEGIN
IMMEDIATE`` transactions, so a read-check-write cannot race another writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: How long a connection waits for another writer's lock before it gives up.
LOCK_WAIT_SECONDS = 30.0


def connect(path: str | Path, read_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (``isolation_level=None``: callers issue
    ``BEGIN IMMEDIATE`` themselves) that waits up to :data:`LOCK_WAIT_SECONDS`
    for a lock and may be used from any thread (callers serialise access).
    ``read_only``: the file must exist and is never written through it."""
    target = f"{Path(path).resolve().as_uri()}?mode=ro" if read_only else path
    db = sqlite3.connect(
        target,
        isolation_level=None,
        timeout=LOCK_WAIT_SECONDS,
        check_same_thread=False,
        uri=read_only,
    )
    db.execute(f"PRAGMA busy_timeout={int(LOCK_WAIT_SECONDS * 1000)}")
    return db


@contextmanager
def immediate_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """Everything inside committed together or not at all (a connection opened with
    ``isolation_level=None``).

    ``BEGIN IMMEDIATE`` takes the write lock at once, so a read-check-write inside
    cannot race another connection writing the same file.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


#: Values one ``IN (...)`` list takes in :func:`rows_in` (SQLite's parameter limit
#: was 999 before 3.32).
IN_CHUNK = 500


def rows_in(db: sqlite3.Connection, query: str, values: Sequence[str]) -> Iterator[Any]:
    """The rows of ``query`` for all ``values``, where ``{}`` in the query stands for
    the ``IN`` list: asked in chunks, one key lookup per value, however far apart the
    values are in the index."""
    for i in range(0, len(values), IN_CHUNK):
        part = values[i : i + IN_CHUNK]
        yield from db.execute(query.format(",".join("?" * len(part))), part)
