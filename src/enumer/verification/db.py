"""The verification service's own state: one SQLite file, crash-safe and tamper-evident.

What lives here, and why it is shaped this way:

- ``meta``: the random secret that keys the code digests (created with the
  file), so a stolen state file does not give the short codes away.
- ``requests``: every field of a request, with ``token_hash`` (never the
  token, which is the owner's key to the request) and ``code_digest`` (never
  the code), and ``owner_registered_at`` (the record's ``registered_at`` when it
  was signed, to notice a re-registration of the name by someone else).
- ``audit``: the append-only log. Each entry's ``hash`` is SHA-256 over the
  previous entry's hash and the canonical JSON of the entry, so an edited or
  removed entry breaks the chain; SQLite triggers refuse UPDATE and DELETE so
  that no code path of the service can rewrite history by mistake.
- ``rate_events``: one row per counted event, for sliding-window limits.

The file runs in WAL mode with ``synchronous=FULL``: a committed transaction
survives a power cut. Every state change goes into the same transaction as
its audit entry (:meth:`StateDB.transaction`), so a crash leaves both or
neither. The operators' tables (users, sessions, API keys) belong to the web
layer, which opens the same file with its own connection.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enumer.sqlite_util import connect, immediate_transaction
from enumer.verification.model import RateLimit, State, VerificationError, token_digest

#: Bumped with every schema change; kept in ``PRAGMA user_version``. Version 2 keeps
#: the requests' tokens as SHA-256 hashes (``token_hash``); version 1 kept them in clear.
SCHEMA_VERSION = 2
#: ``prev_hash`` of the first audit entry.
GENESIS_HASH = "0" * 64
SECRET_KEY = "code_secret"
#: The largest row id SQLite stores (a signed 64-bit INTEGER); a larger one names nothing.
MAX_ROW_ID = 2**63 - 1

_STATES = ", ".join(f"'{s.value}'" for s in State)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    digits TEXT NOT NULL,
    owner TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ({_STATES})),
    challenge TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    code_expires REAL,
    attempts_left INTEGER NOT NULL DEFAULT 0,
    calls_made INTEGER NOT NULL DEFAULT 0,
    signature TEXT,
    sig_line TEXT,
    signed_at REAL,
    active_at REAL,
    reverify_due REAL,
    reason TEXT NOT NULL DEFAULT '',
    client TEXT NOT NULL,
    code_digest TEXT,
    owner_registered_at INTEGER
);
CREATE INDEX IF NOT EXISTS requests_by_name ON requests(name, id);
CREATE INDEX IF NOT EXISTS requests_by_state ON requests(state, id);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    request_id INTEGER REFERENCES requests(id),
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS audit_by_request ON audit(request_id, seq);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS rate_events (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS rate_events_by_key ON rate_events(key, at);
"""

#: The columns of ``requests``, in schema order.
REQUEST_COLUMNS: tuple[str, ...] = (
    "id",
    "token_hash",
    "name",
    "digits",
    "owner",
    "state",
    "challenge",
    "created",
    "updated",
    "code_expires",
    "attempts_left",
    "calls_made",
    "signature",
    "sig_line",
    "signed_at",
    "active_at",
    "reverify_due",
    "reason",
    "client",
    "code_digest",
    "owner_registered_at",
)


def canonical_json(data: Any) -> str:
    """The one JSON text of ``data`` that hashes agree on: sorted keys, no blanks."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def entry_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash and the canonical JSON of an audit entry."""
    return hashlib.sha256((prev_hash + canonical_json(entry)).encode()).hexdigest()


@dataclass(frozen=True)
class AuditRow:
    """One audit entry as stored."""

    seq: int
    at: float
    actor: str
    action: str
    request_id: int | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def hashed_part(self) -> dict[str, Any]:
        """What the hash covers: everything but the hashes themselves."""
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "request_id": self.request_id,
            "detail": self.detail,
        }


def _audit_row(row: Sequence[Any]) -> AuditRow:
    return AuditRow(
        int(row[0]),
        float(row[1]),
        str(row[2]),
        str(row[3]),
        None if row[4] is None else int(row[4]),
        json.loads(row[5]),
        str(row[6]),
        str(row[7]),
    )


_AUDIT_COLUMNS = "seq, at, actor, action, request_id, detail, prev_hash, hash"


@dataclass(frozen=True)
class RateRefusal:
    """Which limit refused an event, and how long until the window has room again."""

    key: str
    limit: RateLimit
    retry_after: float


class StateDB:
    """The state file at ``path`` (created, with its directory, on first open).

    One connection, usable from any thread; the caller serialises access (the
    service holds one lock around every use). Writes must happen inside
    :meth:`transaction`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Created owner-only before SQLite opens it: it holds the code secret.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        try:
            self._db = connect(self.path)
        except sqlite3.Error as exc:
            raise VerificationError(f"cannot open the state file {self.path}: {exc}", 500) from None
        try:
            self._setup()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise VerificationError(
                f"{self.path} is not a usable verification state file: {exc}", 500
            ) from None
        except VerificationError:
            self._db.close()
            raise

    def _setup(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise VerificationError(
                f"{self.path} has schema version {version}, newer than this enumer "
                f"({SCHEMA_VERSION}): upgrade enumer",
                500,
            )
        if version < SCHEMA_VERSION:
            migrated = False
            with self.transaction():
                # Read again under the write lock: another process may have just created it.
                version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
                if version == 1:
                    self._hash_tokens()
                    migrated = True
                elif version < SCHEMA_VERSION:
                    for statement in _split_statements(_SCHEMA):
                        self._db.execute(statement)
                    self._db.execute(
                        "INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)",
                        (SECRET_KEY, secrets.token_hex(32)),
                    )
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            if migrated:
                # Rewrite the file so that no freed page keeps a token in clear.
                self._db.execute("VACUUM")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (SECRET_KEY,)).fetchone()
        if row is None:
            raise VerificationError(f"{self.path} has no code secret: the file is damaged", 500)
        self._secret = bytes.fromhex(str(row[0]))

    def _hash_tokens(self) -> None:
        """Schema 1 -> 2: each request's token replaced by its hash (in the transaction).

        ``secure_delete`` zeroes the cells the clear tokens leave behind; the
        caller vacuums afterwards.
        """
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute("ALTER TABLE requests RENAME COLUMN token TO token_hash")
        rows = self._db.execute("SELECT id, token_hash FROM requests").fetchall()
        self._db.executemany(
            "UPDATE requests SET token_hash=? WHERE id=?",
            [(token_digest(str(token)), request_id) for request_id, token in rows],
        )

    def close(self) -> None:
        self._db.close()

    @property
    def secret(self) -> bytes:
        """The key of :func:`~enumer.verification.model.code_digest` (never leaves the file)."""
        return self._secret

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit: everything inside is committed together or not at all.

        ``BEGIN IMMEDIATE`` takes the write lock at once, so a read-check-write
        inside cannot race another connection (the web layer's) writing the file.
        """
        if self._db.in_transaction:
            raise RuntimeError("nested state transaction")
        with immediate_transaction(self._db):
            yield

    def _writing(self) -> None:
        # A write outside a transaction would commit on its own, apart from its audit entry.
        if not self._db.in_transaction:
            raise RuntimeError("state writes must happen inside StateDB.transaction()")

    # -- requests ---------------------------------------------------------------------------

    def insert_request(self, values: Mapping[str, Any]) -> int:
        """A new request row; returns its id."""
        self._writing()
        _check_columns(values)
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cursor = self._db.execute(
            f"INSERT INTO requests({names}) VALUES ({marks})", tuple(values.values())
        )
        assert cursor.lastrowid is not None
        return int(cursor.lastrowid)

    def update_request(self, request_id: int, changes: Mapping[str, Any]) -> None:
        self._writing()
        _check_columns(changes)
        if "id" in changes:
            raise ValueError("a request's id does not change")
        if not changes:
            return
        assignments = ", ".join(f"{name}=?" for name in changes)
        self._db.execute(
            f"UPDATE requests SET {assignments} WHERE id=?", (*changes.values(), request_id)
        )

    def request(self, request_id: int) -> dict[str, Any] | None:
        if not 0 < request_id <= MAX_ROW_ID:
            return None  # SQLite cannot even take it as a parameter
        return self._one("WHERE id=?", (request_id,))

    def request_by_token(self, token: str) -> dict[str, Any] | None:
        """The request whose token (the owner's, in clear) hashes to its ``token_hash``."""
        return self._one("WHERE token_hash=?", (token_digest(token),))

    def _one(self, where: str, args: tuple[Any, ...]) -> dict[str, Any] | None:
        rows = self._select(where, args)
        return rows[0] if rows else None

    def _select(self, where: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        cursor = self._db.execute(
            f"SELECT {', '.join(REQUEST_COLUMNS)} FROM requests {where}", tuple(args)
        )
        return [dict(zip(REQUEST_COLUMNS, row, strict=True)) for row in cursor]

    def requests(
        self,
        states: Sequence[State] = (),
        name: str | None = None,
        search: str = "",
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Requests newest first, filtered by state, exact name, and a search text
        found in the name, the digits or the owner address."""
        clauses: list[str] = []
        args: list[Any] = []
        if states:
            clauses.append(f"state IN ({', '.join('?' for _ in states)})")
            args.extend(s.value for s in states)
        if name is not None:
            clauses.append("name=?")
            args.append(name)
        if search:
            pattern = "%" + _like_escape(search) + "%"
            clauses.append(
                "(name LIKE ? ESCAPE '\\' OR digits LIKE ? ESCAPE '\\' OR owner LIKE ? ESCAPE '\\')"
            )
            args.extend((pattern, pattern, pattern))
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        where += " ORDER BY id DESC"
        if limit is not None:
            where += " LIMIT ?"
            args.append(limit)
        return self._select(where, args)

    # -- audit ------------------------------------------------------------------------------

    def append_audit(
        self,
        at: float,
        actor: str,
        action: str,
        request_id: int | None,
        detail: Mapping[str, Any],
    ) -> AuditRow:
        """Chain one entry to the log (inside the transaction of the change it records)."""
        self._writing()
        last = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev_hash = (1, GENESIS_HASH) if last is None else (int(last[0]) + 1, str(last[1]))
        # Round-trip through JSON so the stored detail is exactly what the hash covers.
        detail_text = canonical_json(dict(detail))
        row = AuditRow(
            seq, float(at), actor, action, request_id, json.loads(detail_text), prev_hash, ""
        )
        digest = entry_hash(prev_hash, row.hashed_part())
        self._db.execute(
            f"INSERT INTO audit({_AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, row.at, actor, action, request_id, detail_text, prev_hash, digest),
        )
        return AuditRow(seq, row.at, actor, action, request_id, row.detail, prev_hash, digest)

    def audit(self, limit: int | None = None, request_id: int | None = None) -> list[AuditRow]:
        """Entries newest first, optionally of one request."""
        if request_id is not None and not 0 < request_id <= MAX_ROW_ID:
            return []
        where, args = ("WHERE request_id=?", [request_id]) if request_id is not None else ("", [])
        sql = f"SELECT {_AUDIT_COLUMNS} FROM audit {where} ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [_audit_row(r) for r in self._db.execute(sql, args)]

    def iter_audit(self) -> Iterator[AuditRow]:
        """Every entry, oldest first (for exports and the chain check)."""
        cursor = self._db.execute(f"SELECT {_AUDIT_COLUMNS} FROM audit ORDER BY seq")
        for row in cursor:
            yield _audit_row(row)

    def audit_problem(self) -> str | None:
        """Where the hash chain breaks (one line), or None when every entry checks out.

        Catches an edited entry (its hash no longer matches), a removed or
        inserted one (the next ``prev_hash`` or the numbering no longer fits).
        Cutting entries off the end leaves a valid shorter chain: compare the
        last hash with an exported copy to notice that.
        """
        prev_hash = GENESIS_HASH
        expected_seq = 1
        # Read everything first: a generator kept open across statements is fragile.
        for row in list(self.iter_audit()):
            if row.seq != expected_seq:
                return f"audit entry {expected_seq} is missing (next is {row.seq})"
            if row.prev_hash != prev_hash:
                return f"audit entry {row.seq} does not follow entry {row.seq - 1}"
            if entry_hash(row.prev_hash, row.hashed_part()) != row.hash:
                return f"audit entry {row.seq} was altered"
            prev_hash = row.hash
            expected_seq += 1
        return None

    # -- rate limits ------------------------------------------------------------------------

    def rate_check(self, limits: Sequence[tuple[str, RateLimit]], now: float) -> RateRefusal | None:
        """Count one event under every key, unless one of them is over its limit.

        All or nothing: an event refused by one limit is counted by none, so a
        refused attempt does not eat another budget. Old rows of the keys are
        pruned on the way.
        """
        self._writing()
        for key, limit in limits:
            self._db.execute(
                "DELETE FROM rate_events WHERE key=? AND at<=?", (key, now - limit.seconds)
            )
            count, oldest = self._db.execute(
                "SELECT count(*), min(at) FROM rate_events WHERE key=?", (key,)
            ).fetchone()
            if int(count) >= limit.count:
                return RateRefusal(key, limit, max(0.0, float(oldest) + limit.seconds - now))
        self._db.executemany(
            "INSERT INTO rate_events(key, at) VALUES (?, ?)", [(key, now) for key, _ in limits]
        )
        return None

    def prune_rate_events(self, before: float) -> int:
        """Drop events older than every window (keys nobody uses any more)."""
        self._writing()
        return int(self._db.execute("DELETE FROM rate_events WHERE at<=?", (before,)).rowcount)

    def rate_events(self, key: str) -> int:
        """How many events are counted under ``key`` (for tests and the console)."""
        row = self._db.execute("SELECT count(*) FROM rate_events WHERE key=?", (key,)).fetchone()
        return int(row[0])


def _check_columns(values: Mapping[str, Any]) -> None:
    unknown = set(values) - set(REQUEST_COLUMNS)
    if unknown:
        raise ValueError(f"unknown request columns: {', '.join(sorted(unknown))}")


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _split_statements(script: str) -> list[str]:
    """The schema's statements; a trigger body's ``;`` does not end its statement."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
