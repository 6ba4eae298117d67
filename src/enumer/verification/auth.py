"""Who may use the operator console and the operator API: users, sessions, API keys.

The tables live in the service's own SQLite file (``users``, ``sessions``,
``api_keys``, ``login_events``) so that one file holds everything a verifier
must back up. What is kept of a secret is never enough to use it:

- passwords: argon2id hashes (``argon2-cffi``'s defaults, rehashed on login
  when the parameters change);
- session tokens and API keys: SHA-256 of 256 random bits. A hash of that
  much entropy cannot be reversed, and a plain hash lets a request be looked
  up by its token in one indexed read (a slow hash would not);
- the CSRF token of a session is stored as it is: it proves nothing without
  the session cookie it belongs to.

Users can be disabled (their sessions end, their keys stop working, the
user and the keys stay for a later enable) or removed (with their sessions
and keys), and keys revoked one by one; each takes effect at the next request,
because every request looks its session or key up, and each is audited. A key
is named by its *key id*, the first 12 hex digits of its hash: enough to pick
it out, nothing to use it with.

A user name that does not exist costs the same argon2 verification as a wrong
password, so response times do not tell which user names exist. Failed
sign-ins are counted per client address; past the limit the client gets 429
before any password is checked, so the limit also bounds the CPU an attacker
can make the service spend on argon2.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from enumer.sqlite_util import connect
from enumer.verification.model import RateLimit, token_digest
from enumer.verification.model import VerificationError as RefusedError

ROLES = ("operator", "admin")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 takes anything; a megabyte "password" is a CPU attack
IDLE_SECONDS = 12 * 3600
#: Failed sign-ins allowed per client address in the window, then 429.
LOGIN_LIMIT = RateLimit(10, 15 * 60)
API_KEY_PREFIX = "enk_"
#: How many hex digits of a key's hash name it (``revoke-key``, the console).
KEY_ID_DIGITS = 12

_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('operator', 'admin')),
    created REAL NOT NULL,
    disabled REAL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    client TEXT NOT NULL,
    created REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    label TEXT NOT NULL,
    created REAL NOT NULL,
    last_used REAL
);
CREATE TABLE IF NOT EXISTS login_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    client TEXT NOT NULL,
    username TEXT NOT NULL,
    ok INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS login_events_client ON login_events (client, at);
"""


class AuthError(RefusedError):
    """A refused sign-in, key or user operation; ``status`` is the HTTP answer."""


@dataclass(frozen=True)
class User:
    username: str
    role: str
    created: float
    keys: int = 0  # API keys the user holds (list_users only)
    disabled: float | None = None  # when an admin disabled the user (list_users only)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class Session:
    """A signed-in browser: its user and the token its forms must carry."""

    user: User
    csrf: str
    created: float
    last_seen: float


@dataclass(frozen=True)
class ApiKey:
    """What is known of an API key after it was shown: never the key itself."""

    id: str  # the first KEY_ID_DIGITS hex digits of its hash
    username: str
    label: str
    created: float
    last_used: float | None


#: Called for what belongs in the service's audit log: (actor, action, detail).
EventHook = Callable[[str, str, dict[str, Any]], object]


def state_audit(db_path: str | Path, clock: Callable[[], float] = time.time) -> EventHook:
    """An :data:`EventHook` that appends to the service's audit log in ``db_path``.

    Sign-ins and user changes belong in the same tamper-evident log as the
    decisions they enable. This hook writes through its own connection to the
    state file; each entry goes in with ``BEGIN IMMEDIATE``, so it chains
    correctly even while the service writes through its connection.
    """
    from enumer.verification.db import StateDB

    state = StateDB(db_path)
    lock = threading.Lock()

    def record(actor: str, action: str, detail: dict[str, Any]) -> None:
        with lock, state.transaction():
            state.append_audit(clock(), actor, action, None, detail)

    return record


def key_id(key: str) -> str:
    """The name of an API key that cannot be used as one: the start of its hash."""
    return token_digest(key)[:KEY_ID_DIGITS]


def check_username(username: str) -> str:
    if not _USERNAME.fullmatch(username):
        raise AuthError(
            f"bad user name {username[:70]!r}: 1-64 letters, digits, '.', '_', '@' or '-'"
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"the password is too short: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AuthError(f"the password is too long: at most {MAX_PASSWORD} characters")
    return password


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AuthError(f"bad role {role!r}: operator or admin")
    return role


class Auth:
    """Users, sessions and API keys in the SQLite file at ``db_path``. Thread-safe."""

    def __init__(
        self,
        db_path: str | Path,
        clock: Callable[[], float] = time.time,
        idle_seconds: float = IDLE_SECONDS,
        login_limit: RateLimit = LOGIN_LIMIT,
        hasher: PasswordHasher | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        self.clock = clock
        self.idle_seconds = idle_seconds
        self.login_limit = login_limit
        self.hasher = hasher or PasswordHasher()
        self.on_event = on_event
        self._lock = threading.Lock()
        path = Path(db_path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            # Owner-only before SQLite opens it, as the service creates it: the file
            # holds the hashes and the service's code secret.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = connect(path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(users)")}
            if "disabled" not in columns:  # a file made before users could be disabled
                self._db.execute("ALTER TABLE users ADD COLUMN disabled REAL")
        self._dummy: str | None = None

    # -- plumbing ------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction under the lock (BEGIN IMMEDIATE: no upgrade deadlocks)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _dummy_hash(self) -> str:
        """A hash in the current parameters: what an unknown user's password is checked
        against, so that the answer takes as long as for a real user. Made on first use
        (it costs a full argon2 hash, which the admin commands never need)."""
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_hex(16))
        return self._dummy

    def _event(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(actor, action, detail)

    # -- users ---------------------------------------------------------------------------

    def add_user(
        self, username: str, password: str, role: str, by: str = "cli", replace: bool = False
    ) -> User:
        """A new user (or, with ``replace``, a new password and role, ending its sessions)."""
        check_username(username)
        check_password(password)
        check_role(role)
        password_hash = self.hasher.hash(password)
        now = self.clock()
        with self._write() as db:
            exists = db.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone()
            if exists and not replace:
                raise AuthError(f"user {username} exists", 409)
            if exists:
                db.execute(
                    "UPDATE users SET password_hash = ?, role = ? WHERE username = ?",
                    (password_hash, role, username),
                )
                db.execute("DELETE FROM sessions WHERE username = ?", (username,))
            else:
                db.execute(
                    "INSERT INTO users (username, password_hash, role, created) VALUES (?,?,?,?)",
                    (username, password_hash, role, now),
                )
        action = "user.replaced" if exists else "user.added"
        self._event(by, action, {"user": username, "role": role})
        return User(username, role, now)

    def get_user(self, username: str) -> User | None:
        with self._lock:
            row = self._db.execute(
                "SELECT username, role, created FROM users WHERE username = ?", (username,)
            ).fetchone()
        return User(row[0], row[1], row[2]) if row else None

    def list_users(self) -> list[User]:
        with self._lock:
            rows = self._db.execute(
                "SELECT u.username, u.role, u.created, "
                "(SELECT count(*) FROM api_keys k WHERE k.username = u.username), u.disabled "
                "FROM users u ORDER BY u.username"
            ).fetchall()
        return [User(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def _existing(self, db: sqlite3.Connection, username: str) -> tuple[str, float | None]:
        row = db.execute(
            "SELECT role, disabled FROM users WHERE username = ?", (username,)
        ).fetchone()
        if row is None:
            raise AuthError(f"no user {username[:64]}", 404)
        return str(row[0]), row[1]

    def disable_user(self, username: str, by: str = "cli") -> None:
        """End the user's sessions and stop their keys at once; both come back with
        :meth:`enable_user` (a new sign-in for the sessions)."""
        with self._write() as db:
            self._existing(db, username)
            db.execute("UPDATE users SET disabled = ? WHERE username = ?", (self.clock(), username))
            ended = db.execute("DELETE FROM sessions WHERE username = ?", (username,)).rowcount
        self._event(by, "user.disabled", {"user": username, "sessions_ended": ended})

    def enable_user(self, username: str, by: str = "cli") -> None:
        with self._write() as db:
            self._existing(db, username)
            db.execute("UPDATE users SET disabled = NULL WHERE username = ?", (username,))
        self._event(by, "user.enabled", {"user": username})

    def remove_user(self, username: str, by: str = "cli") -> None:
        """Delete the user with their sessions and API keys (the audit log keeps their name)."""
        with self._write() as db:
            role, _ = self._existing(db, username)
            keys = db.execute("SELECT count(*) FROM api_keys WHERE username = ?", (username,))
            revoked = int(keys.fetchone()[0])
            db.execute("DELETE FROM sessions WHERE username = ?", (username,))
            db.execute("DELETE FROM api_keys WHERE username = ?", (username,))
            db.execute("DELETE FROM users WHERE username = ?", (username,))
        self._event(by, "user.removed", {"user": username, "role": role, "keys_revoked": revoked})

    # -- sign-in and sessions ------------------------------------------------------------

    def _failures(self, client: str, now: float) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM login_events WHERE client = ? AND ok = 0 AND at > ?",
            (client, now - self.login_limit.seconds),
        ).fetchone()
        return int(row[0])

    def login(self, username: str, password: str, client: str) -> tuple[str, Session]:
        """Check the password; returns the new session's token (for the cookie) and session.

        AuthError 429 past the failure limit for ``client``, 401 for a wrong
        user name or password (one message for both).
        """
        now = self.clock()
        with self._lock:
            if self._failures(client, now) >= self.login_limit.count:
                raise AuthError("too many failed sign-ins from your address; try again later", 429)
            row = self._db.execute(
                "SELECT password_hash, role, created, disabled FROM users WHERE username = ?",
                (username,),
            ).fetchone()
        stored = row[0] if row else self._dummy_hash()
        ok = False
        if len(password) <= MAX_PASSWORD:
            try:
                ok = self.hasher.verify(stored, password) and row is not None
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                ok = False
        if ok and row is not None and row[3] is not None:
            # The right password, so saying why is no leak; no session, no failure counted.
            self._event(f"operator:{username}", "login.refused", {"reason": "user disabled"})
            raise AuthError("this user is disabled; ask an admin", 403)
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        with self._write() as db:
            db.execute(
                "INSERT INTO login_events (at, client, username, ok) VALUES (?,?,?,?)",
                (now, client, username[:64], int(ok)),
            )
            db.execute("DELETE FROM login_events WHERE at < ?", (now - 86400,))
            db.execute("DELETE FROM sessions WHERE last_seen < ?", (now - self.idle_seconds,))
            if ok:
                if self.hasher.check_needs_rehash(stored):
                    db.execute(
                        "UPDATE users SET password_hash = ? WHERE username = ?",
                        (self.hasher.hash(password), username),
                    )
                db.execute(
                    "INSERT INTO sessions (token_hash, username, csrf, client, created, last_seen)"
                    " VALUES (?,?,?,?,?,?)",
                    (token_digest(token), username, csrf, client, now, now),
                )
        if not ok:
            self._event(f"anonymous@{client}", "login.failed", {"user": username[:64]})
            raise AuthError("wrong user name or password", 401)
        assert row is not None
        self._event(f"operator:{username}", "login", {"client": client})
        return token, Session(User(username, row[1], row[2]), csrf, now, now)

    def session(self, token: str | None) -> Session | None:
        """The live session a cookie names (its idle clock restarted), or None."""
        if not token:
            return None
        now = self.clock()
        with self._write() as db:
            row = db.execute(
                "SELECT s.csrf, s.created, s.last_seen, u.username, u.role, u.created "
                "FROM sessions s JOIN users u ON u.username = s.username "
                "WHERE s.token_hash = ? AND u.disabled IS NULL",
                (token_digest(token),),
            ).fetchone()
            if row is None:
                return None
            if now - row[2] > self.idle_seconds:
                db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_digest(token),))
                return None
            db.execute(
                "UPDATE sessions SET last_seen = ? WHERE token_hash = ?", (now, token_digest(token))
            )
        return Session(User(row[3], row[4], row[5]), row[0], row[1], now)

    def logout(self, token: str | None) -> None:
        if not token:
            return
        with self._write() as db:
            row = db.execute(
                "SELECT username FROM sessions WHERE token_hash = ?", (token_digest(token),)
            ).fetchone()
            db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_digest(token),))
        if row:
            self._event(f"operator:{row[0]}", "logout", {})

    # -- API keys ------------------------------------------------------------------------

    def add_key(self, username: str, label: str = "", by: str = "cli") -> str:
        """A new API key for ``username``; returned once, only its hash is kept
        (:func:`key_id` of it names the key from then on)."""
        if self.get_user(username) is None:
            raise AuthError(f"no user {username}", 404)
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        with self._write() as db:
            db.execute(
                "INSERT INTO api_keys (key_hash, username, label, created) VALUES (?,?,?,?)",
                (token_digest(key), username, label[:100], self.clock()),
            )
        detail = {"user": username, "label": label[:100], "key": key_id(key)}
        self._event(by, "key.added", detail)
        return key

    def list_keys(self, username: str | None = None) -> list[ApiKey]:
        """The API keys (of one user), oldest first, by their key ids."""
        where, args = ("WHERE username = ?", (username,)) if username else ("", ())
        with self._lock:
            rows = self._db.execute(
                "SELECT key_hash, username, label, created, last_used FROM api_keys "
                f"{where} ORDER BY created, rowid",
                args,
            ).fetchall()
        return [ApiKey(r[0][:KEY_ID_DIGITS], r[1], r[2], r[3], r[4]) for r in rows]

    def revoke_key(self, key: str, by: str = "cli") -> ApiKey:
        """Delete one API key, named by its key id (or given whole); it stops at once."""
        ident = key_id(key) if key.startswith(API_KEY_PREFIX) else key.strip().lower()
        if not re.fullmatch(f"[0-9a-f]{{{KEY_ID_DIGITS}}}", ident):
            raise AuthError(f"bad key id {key[:40]!r}: {KEY_ID_DIGITS} hex digits", 400)
        with self._write() as db:
            row = db.execute(
                "SELECT key_hash, username, label, created, last_used FROM api_keys "
                "WHERE substr(key_hash, 1, ?) = ?",
                (KEY_ID_DIGITS, ident),
            ).fetchone()
            if row is None:
                raise AuthError(f"no API key {ident}", 404)
            db.execute("DELETE FROM api_keys WHERE key_hash = ?", (row[0],))
        revoked = ApiKey(ident, row[1], row[2], row[3], row[4])
        self._event(
            by, "key.revoked", {"user": revoked.username, "label": revoked.label, "key": ident}
        )
        return revoked

    def api_user(self, key: str | None) -> User | None:
        """The user an ``Authorization: Bearer`` key belongs to, or None."""
        if not key or not key.startswith(API_KEY_PREFIX) or len(key) > 200:
            return None
        digest = token_digest(key)
        with self._write() as db:
            row = db.execute(
                "SELECT k.key_hash, u.username, u.role, u.created FROM api_keys k "
                "JOIN users u ON u.username = k.username "
                "WHERE k.key_hash = ? AND u.disabled IS NULL",
                (digest,),
            ).fetchone()
            if row is None or not hmac.compare_digest(row[0], digest):
                return None
            db.execute(
                "UPDATE api_keys SET last_used = ? WHERE key_hash = ?", (self.clock(), digest)
            )
        return User(row[1], row[2], row[3])
