"""The embedded NVS ledger: Emercoin's name semantics on one SQLite file.

It behaves like a development chain with automine:

* every write is mined at once into a new block, so readers (a gateway in
  another process) see it immediately and can track changes by height;
* the height also advances with the wall clock at 175 blocks a day, so names
  expire in real days;
* :meth:`Ledger.generate` advances it explicitly, like regtest's ``generate``.

Crash safety comes from SQLite: WAL journal, one ``BEGIN IMMEDIATE``
transaction per operation, so a write happens whole or not at all and readers
never see half of one.  The wallet (secp256k1 keys) lives in the same file,
readable by the owner only.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

import re2

from enumer.cparse import re2_message
from enumer.crypto import (
    Address,
    AddressKind,
    CryptoError,
    Network,
    PrivateKey,
    network_by_name,
)
from enumer.emercoin import BLOCKS_PER_DAY
from enumer.nvs import (
    RPC_DATABASE_ERROR,
    RPC_INTERNAL_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_MISC_ERROR,
    RPC_WALLET_ERROR,
    NameOperation,
    NameRecord,
    NvsError,
    check_name_and_value,
    name_not_found,
)
from enumer.records import EnumName
from enumer.sqlite_util import connect, immediate_transaction, rows_in

LEDGER_FILE = "ledger.sqlite"
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS names (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    address TEXT NOT NULL,
    txid TEXT NOT NULL,
    height INTEGER NOT NULL,
    registered_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    time INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    number TEXT,
    qno INTEGER
);
CREATE INDEX IF NOT EXISTS names_by_number ON names(number, qno) WHERE number IS NOT NULL;
CREATE INDEX IF NOT EXISTS names_by_height ON names(height);
CREATE INDEX IF NOT EXISTS names_by_expiry ON names(expires_at);
CREATE INDEX IF NOT EXISTS names_in_index_order
    ON names(length(CAST(name AS BLOB)), name) WHERE deleted=0;
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    txid TEXT NOT NULL,
    height INTEGER NOT NULL,
    time INTEGER NOT NULL,
    address TEXT NOT NULL,
    operation TEXT NOT NULL,
    days_added INTEGER,
    value TEXT
);
CREATE INDEX IF NOT EXISTS history_by_name ON history(name, seq);
CREATE TABLE IF NOT EXISTS keys (
    key_hash TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    compressed INTEGER NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS wallet_names (name TEXT PRIMARY KEY);
"""
# wallet_names: the names this wallet sent an operation for.  The node's name_list
# shows them all, as "transferred" when another address holds them now, also
# when the wallet registered a name straight to a foreign address.  (A store
# made before this table is given it, empty, when it is next opened.)

_NAME_COLUMNS = "name, value, address, txid, height, registered_at, expires_at, time, deleted"


def _record(row: sqlite3.Row | tuple[Any, ...]) -> NameRecord:
    return NameRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], bool(row[8]))


class FilterRegexpError(NvsError):
    """``name_filter`` was given a regexp that does not compile; ``reason`` is RE2's."""

    def __init__(self, regexp: str, reason: str) -> None:
        super().__init__(RPC_MISC_ERROR, f"invalid regular expression {regexp!r}: {reason}")
        self.regexp = regexp
        self.reason = reason


class Ledger:
    """An embedded NVS store in directory ``path`` (created on first use).

    Implements :class:`enumer.nvs.NameStore`.  One instance per thread; any
    number of processes may open the same store.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        network: str | None = None,
        create: bool = True,
        mirror: bool = False,
    ) -> None:
        self.path = Path(path)
        db = self.path / LEDGER_FILE
        created = not db.exists()
        if created:
            if not create:
                raise NvsError(RPC_MISC_ERROR, f"no ENUMER store at {self.path}")
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = self._connect()
        if created:
            os.chmod(db, 0o600)  # only ours to change; a reader may not own the file
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # Opening an initialised store only reads: a reader (a gateway, a lookup)
            # must not queue behind a long write for the write lock it does not need.
            stored = self._meta("network") if self._initialised() else None
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise NvsError(RPC_MISC_ERROR, f"{db} is not a usable ENUMER store: {exc}") from None
        if stored is None:
            with self._write():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                stored = self._meta("network")
                if stored is None:
                    stored = network_by_name(network or "mainnet").name
                    self._set_meta("network", stored)
                    self._set_meta("schema", SCHEMA_VERSION)
                    self._set_meta("genesis_time", str(int(time.time())))
                    self._set_meta("mined", "0")
                if mirror:
                    self._set_meta("mode", "mirror")
        if network is not None and network != stored:
            raise NvsError(RPC_MISC_ERROR, f"store {self.path} is a {stored} store, not {network}")
        self.network: Network = network_by_name(self._meta("network") or "mainnet")
        self.network_name = self.network.name
        self._genesis = int(self._meta("genesis_time") or 0)
        #: A mirror of another chain (a node's index): its height is the node's, set by
        #: :meth:`set_tip`, and it does not advance with the clock.
        self.mirror = self._meta("mode") == "mirror"
        if mirror and not self.mirror:
            raise NvsError(RPC_MISC_ERROR, f"store {self.path} is a ledger, not a node index")

    # -- plumbing -------------------------------------------------------------

    def _initialised(self) -> bool:
        """Whether every table and index of the schema exists (a read, no lock)."""
        wanted = set(re.findall(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)", _SCHEMA))
        present = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master")}
        return wanted <= present

    def _connect(self) -> sqlite3.Connection:
        return connect(self.path / LEDGER_FILE)

    def reopen(self) -> None:
        """A fresh connection, e.g. in a forked process (connections must not cross fork)."""
        self._db = self._connect()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _write(self) -> AbstractContextManager[None]:
        """One atomic write: the whole block or nothing."""
        return immediate_transaction(self._db)

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- height -----------------------------------------------------------------

    def height(self) -> int:
        """Blocks mined by writes and ``generate`` plus 175 a day of wall-clock time
        (for a mirror: the mirrored chain's tip)."""
        if self.mirror:
            return int(self._meta("tip") or 0)
        mined = int(self._meta("mined") or 0)
        elapsed = max(0, int(time.time()) - self._genesis)
        return mined + elapsed * BLOCKS_PER_DAY // 86400

    def set_tip(self, height: int, block_time: int | None = None) -> None:
        """A mirror's tip: the height of the chain it mirrors (and when it was synced),
        and the tip's block time when known."""
        with self._write():
            self._set_meta("tip", str(height))
            self._set_meta("synced_at", str(time.time()))
            if block_time is not None:
                self._set_meta("tip_time", str(int(block_time)))

    def tip_time(self) -> int:
        """The block time of the tip: a ledger mines its blocks on the wall clock, so
        it is now; a mirror's is the mirrored tip's, as last synced."""
        if self.mirror:
            stored = self._meta("tip_time")
            if stored is not None:
                return int(stored)
        return int(time.time())

    def synced_at(self) -> float | None:
        """When a mirror was last synced with its chain (None: never)."""
        value = self._meta("synced_at")
        return float(value) if value else None

    def change_stamp(self) -> int:
        """A number that grows with every write; :meth:`changed_since` takes it.

        On a ledger it is the height (every write is mined into a new block).  A
        mirror stamps each batch of changes with its own counter instead of the
        mirrored chain's height: a change fetched while a block arrived may belong
        to a block above the height the sync read, and stamping it with that
        height could hide it from a reader that already synced to it.
        """
        if self.mirror:
            return int(self._meta("stamp") or 0)
        return self.height()

    def generate(self, blocks: int) -> int:
        """Advance the chain by ``blocks`` empty blocks; returns the new height."""
        if blocks < 0:
            raise NvsError(RPC_MISC_ERROR, "number of blocks must not be negative")
        with self._write():
            self._set_meta("mined", str(int(self._meta("mined") or 0) + blocks))
        return self.height()

    def _mine(self) -> int:
        """Inside a write: the height of the block this operation goes into."""
        self._set_meta("mined", str(int(self._meta("mined") or 0) + 1))
        return self.height()

    # -- reads --------------------------------------------------------------------

    def show(self, name: str) -> NameRecord:
        row = self._db.execute(
            f"SELECT {_NAME_COLUMNS} FROM names WHERE name=?", (name,)
        ).fetchone()
        if row is None:
            raise name_not_found()
        return _record(row)

    def show_many(self, names: list[str]) -> dict[str, NameRecord]:
        """The records of those of ``names`` that exist (any state), by name: one
        key lookup each, however far apart the names are (a range scan between
        two changed names would read every name between them)."""
        query = f"SELECT {_NAME_COLUMNS} FROM names WHERE name IN ({{}})"
        return {(r := _record(row)).name: r for row in rows_in(self._db, query, names)}

    def history(self, name: str, full: bool = False) -> list[NameOperation]:
        try:
            record = self.show(name)
        except NvsError:
            raise name_not_found(RPC_DATABASE_ERROR) from None
        rows = self._db.execute(
            "SELECT seq, name, txid, height, time, address, operation, days_added, value "
            "FROM history WHERE name=? ORDER BY seq",
            (name,),
        ).fetchall()
        if not full:
            if not record.is_active(self.height()):
                raise NvsError(
                    RPC_MISC_ERROR, "record for this name exists, but this name is not active"
                )
            # Only the current registration: from its name_new on.
            starts = [i for i, r in enumerate(rows) if r[6] == "name_new"]
            rows = rows[starts[-1] :] if starts else rows
        return [NameOperation(r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in rows]

    def records_for_number(self, digits: str) -> list[NameRecord]:
        rows = self._db.execute(
            f"SELECT {_NAME_COLUMNS} FROM names WHERE number=? ORDER BY qno", (digits,)
        ).fetchall()
        return [_record(r) for r in rows]

    def changed_since(self, height: int, limit: int | None = None) -> list[NameRecord]:
        """Names (deleted ones too) written after change stamp ``height``; at most
        ``limit`` of them, the oldest changes first (a record feed's ``name_changes``)."""
        query = f"SELECT {_NAME_COLUMNS} FROM names WHERE height>? ORDER BY height"
        if limit is None:
            rows = self._db.execute(query + ", name", (height,)).fetchall()
        else:  # in the index's order, no sort: O(limit) however many changed
            rows = self._db.execute(query + " LIMIT ?", (height, limit)).fetchall()
        return [_record(r) for r in rows]

    def store_id(self) -> str:
        """What tells this store from another one at the same place (one rebuilt from
        scratch): its network and creation time.  A reader that keeps a change stamp
        of it starts over when this changes."""
        return f"{self.network_name}-{self._genesis}"

    def expiring_between(self, low: int, high: int) -> list[NameRecord]:
        rows = self._db.execute(
            f"SELECT {_NAME_COLUMNS} FROM names WHERE deleted=0 AND "
            "expires_at >= ? AND expires_at < ?",
            (low, high),
        ).fetchall()
        return [_record(r) for r in rows]

    def iter_prefix(self, prefix: str) -> Iterator[NameRecord]:
        # Range scan on the primary key: prefix <= name < prefix + U+10FFFF.
        return self.iter_range(prefix, prefix + "\U0010ffff")

    def iter_range(self, low: str, high: str) -> Iterator[NameRecord]:
        """Every name with ``low <= name < high`` (any state), in name order."""
        cursor = self._db.execute(
            f"SELECT {_NAME_COLUMNS} FROM names WHERE name >= ? AND name < ? ORDER BY name",
            (low, high),
        )
        for row in cursor:
            yield _record(row)

    def count_prefix(self, prefix: str) -> int:
        """How many names (any state) start with ``prefix``: the total of a progress bar."""
        row = self._db.execute(
            "SELECT count(*) FROM names WHERE name >= ? AND name < ?",
            (prefix, prefix + "\U0010ffff"),
        ).fetchone()
        return int(row[0])

    def split_points(self, prefix: str, parts: int) -> list[str]:
        """Names that cut the names starting with ``prefix`` into ``parts`` similar ranges
        (for reading them in parallel); ascending, without duplicates."""
        high = prefix + "\U0010ffff"
        total = self.count_prefix(prefix)
        points: list[str] = []
        at = 0  # the index of the last point (0: the prefix itself, before every name)
        # Each point is found from the one before, so the index is walked once in
        # all (an OFFSET from the start each time walks it ``parts`` / 2 times).
        for k in range(1, parts):
            target = k * total // parts
            if target == at:
                continue
            if points:
                query = "SELECT name FROM names WHERE name > ? AND name < ? ORDER BY name"
                skip = target - at - 1
            else:
                query = "SELECT name FROM names WHERE name >= ? AND name < ? ORDER BY name"
                skip = target
            row = self._db.execute(
                query + " LIMIT 1 OFFSET ?", (points[-1] if points else prefix, high, skip)
            ).fetchone()
            if row is None:
                break
            points.append(str(row[0]))
            at = target
        return points

    def filter(
        self, regexp: str = "", maxage: int = 0, start: int = 0, count: int = 0
    ) -> list[NameRecord]:
        """``name_filter``: regex search on names, by registration, expired kept, deleted not."""
        options = re2.Options()
        options.log_errors = False  # RE2 would log to stderr on its own
        try:
            pattern = re2.compile(regexp, options) if regexp else None
        except re2.error as exc:
            raise FilterRegexpError(regexp, re2_message(exc)) from None
        tip = self.height()
        rows = self._db.execute(
            f"SELECT {_NAME_COLUMNS} FROM names WHERE deleted=0 ORDER BY registered_at, name"
        ).fetchall()
        out = []
        for row in rows:
            record = _record(row)
            if pattern is not None and not pattern.search(record.name):
                continue
            if maxage and tip - record.registered_at >= maxage:
                continue
            out.append(record)
        out = out[start:]
        return out[:count] if count else out

    def scan(self, start: str = "") -> list[NameRecord]:
        """``name_scan``: the node's order (shorter names first), deleted excluded."""
        rows = self._db.execute(
            f"SELECT {_NAME_COLUMNS} FROM names WHERE deleted=0 AND "
            "(length(CAST(name AS BLOB)) > ? OR (length(CAST(name AS BLOB)) = ? AND name >= ?)) "
            "ORDER BY length(CAST(name AS BLOB)), name",
            (len(start.encode()), len(start.encode()), start),
        ).fetchall()
        return [_record(r) for r in rows]

    def index_order_page(self, after: tuple[int, str], limit: int) -> list[NameRecord]:
        """Up to ``limit`` undeleted names after key ``after`` in the node's index order
        (``(byte length, name)``: shorter names first), for paging ``name_filter``
        without sorting the whole store for every page; ``(-1, "")`` starts."""
        length, name = after
        rows = self._db.execute(
            f"SELECT {_NAME_COLUMNS} FROM names WHERE deleted=0 AND "
            "length(CAST(name AS BLOB)) >= ? AND (length(CAST(name AS BLOB)) > ? OR name > ?) "
            "ORDER BY length(CAST(name AS BLOB)), name LIMIT ?",
            (length, length, name, limit),
        ).fetchall()
        return [_record(r) for r in rows]

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM names").fetchone()[0])

    # -- settings (gateway defaults kept with the store, e.g. by the demo) -------

    def setting(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        with self._write():
            self._db.execute(
                "INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", (key, value)
            )

    # -- wallet -------------------------------------------------------------------

    def _address(self, address: str) -> Address:
        try:
            return Address.from_text(address, self.network)
        except CryptoError:
            raise NvsError(RPC_INVALID_ADDRESS_OR_KEY, "emercoin address is invalid") from None

    def is_mine(self, address: str) -> bool:
        try:
            key_hash = Address.from_text(address, self.network).key_hash
        except CryptoError:
            return False
        row = self._db.execute("SELECT 1 FROM keys WHERE key_hash=?", (key_hash.hex(),))
        return row.fetchone() is not None

    def _store_key(self, key: PrivateKey) -> None:
        key_hash = key.address(self.network).key_hash.hex()
        self._db.execute(
            "INSERT OR IGNORE INTO keys(key_hash, secret, compressed, created) VALUES (?, ?, ?, ?)",
            (key_hash, key.secret_hex(), int(key.compressed), int(time.time())),
        )

    def get_new_address(self, kind: str = "bech32") -> str:
        """A fresh key; ``bech32`` gives a P2WPKH address, ``legacy`` a P2PKH one."""
        if kind not in ("bech32", "legacy"):
            raise NvsError(RPC_INVALID_ADDRESS_OR_KEY, f"unknown address type '{kind}'")
        key = PrivateKey.generate()
        with self._write():
            self._store_key(key)
        address_kind = AddressKind.P2WPKH if kind == "bech32" else AddressKind.P2PKH
        return key.address(self.network, address_kind).to_text()

    def import_key(self, wif: str) -> str:
        """Add a key given as WIF; returns its P2PKH address on this store's network."""
        try:
            key, _ = PrivateKey.from_wif(wif)
        except CryptoError:
            raise NvsError(RPC_INVALID_ADDRESS_OR_KEY, "Invalid private key encoding") from None
        with self._write():
            self._store_key(key)
        return key.address(self.network).to_text()

    def _key_for(self, address: str) -> PrivateKey:
        key_hash = self._address(address).key_hash.hex()
        row = self._db.execute(
            "SELECT secret, compressed FROM keys WHERE key_hash=?", (key_hash,)
        ).fetchone()
        if row is None:
            raise NvsError(RPC_WALLET_ERROR, "Private key not available")
        return PrivateKey.from_hex(row[0], compressed=bool(row[1]))

    def sign_message(self, address: str, message: str) -> str:
        """Emercoin ``signmessage``: the key never leaves the store."""
        return self._key_for(address).sign_message(message)

    def dump_privkey(self, address: str) -> str:
        return self._key_for(address).to_wif(self.network)

    def list_names(self) -> list[dict[str, Any]]:
        """``name_list``: names the wallet holds, held or sent an operation for (say,
        registered straight to a foreign address), by name; deleted ones omitted."""
        tip = self.height()
        sent = {row[0] for row in self._db.execute("SELECT name FROM wallet_names")}
        out: list[dict[str, Any]] = []
        for record in self.iter_prefix(""):
            if record.deleted:
                continue
            mine = self.is_mine(record.address)
            if not mine and record.name not in sent:
                held = self._db.execute(
                    "SELECT address FROM history WHERE name=?", (record.name,)
                ).fetchall()
                if not any(self.is_mine(a[0]) for a in held):
                    continue
            entry: dict[str, Any] = {"name": record.name, "value": record.value}
            if not mine:
                entry["transferred"] = True
            entry["address"] = record.address
            entry["expires_in"] = record.expires_at - tip
            if record.expires_at - tip <= 0:
                entry["expired"] = True
            out.append(entry)
        return out

    # -- writes -------------------------------------------------------------------

    def _owner(self, to: str | None) -> str:
        """The to-address, checked; a fresh wallet address when None (the node's way)."""
        if to is None or to == "":
            key = PrivateKey.generate()
            self._store_key(key)
            return key.address(self.network, AddressKind.P2WPKH).to_text()
        if to == "legacy":
            key = PrivateKey.generate()
            self._store_key(key)
            return key.address(self.network).to_text()
        return self._address(to).to_text()

    def _txid(self, name: str, operation: str, height: int) -> str:
        seed = f"{name}\0{operation}\0{height}\0".encode() + os.urandom(16)
        return hashlib.sha256(hashlib.sha256(seed).digest()).hexdigest()

    def _apply(
        self,
        name: str,
        operation: str,
        value: str | None,
        days: int | None,
        address: str,
        registered_at: int | None,
        expires_at: int,
        height: int,
    ) -> str:
        txid = self._txid(name, operation, height)
        now = int(time.time())
        parsed = EnumName.parse(name)
        self._db.execute(
            "INSERT INTO history(name, txid, height, time, address, operation, days_added, "
            "value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (name, txid, height, now, address, operation, days, value),
        )
        self._db.execute("INSERT OR IGNORE INTO wallet_names(name) VALUES (?)", (name,))
        deleted = operation == "name_delete"
        self._db.execute(
            "INSERT INTO names(name, value, address, txid, height, registered_at, expires_at, "
            "time, deleted, number, qno) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value=excluded.value, address=excluded.address, "
            "txid=excluded.txid, height=excluded.height, "
            "registered_at=coalesce(?, names.registered_at), expires_at=excluded.expires_at, "
            "time=excluded.time, deleted=excluded.deleted",
            (
                name,
                value or "",
                address,
                txid,
                height,
                registered_at or height,
                expires_at,
                now,
                int(deleted),
                parsed.digits if parsed else None,
                parsed.index if parsed else None,
                registered_at,
            ),
        )
        return txid

    def put_records(self, records: Iterable[NameRecord]) -> int:
        """Store records as they are (owner, txid, heights kept), in one transaction.

        For mirrors of another chain and bulk loads (benchmarks): no ownership
        or expiry checks, one history entry per record.  The tip moves past
        the highest height written, so readers tracking changes see them.
        """
        count = 0
        top = 0
        with self._write():
            stamp = int(self._meta("stamp") or 0) + 1
            if self.mirror:
                self._set_meta("stamp", str(stamp))
            for r in records:
                if self.mirror:
                    r = replace(r, height=stamp)
                parsed = EnumName.parse(r.name)
                self._db.execute(
                    "INSERT OR REPLACE INTO names(name, value, address, txid, height, "
                    "registered_at, expires_at, time, deleted, number, qno) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        r.name,
                        r.value,
                        r.address,
                        r.txid,
                        r.height,
                        r.registered_at,
                        r.expires_at,
                        r.time,
                        int(r.deleted),
                        parsed.digits if parsed else None,
                        parsed.index if parsed else None,
                    ),
                )
                self._db.execute(
                    "INSERT INTO history(name, txid, height, time, address, operation, "
                    "days_added, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        r.name,
                        r.txid,
                        r.height,
                        r.time,
                        r.address,
                        "name_delete" if r.deleted else "name_new",
                        None if r.deleted else (r.expires_at - r.registered_at) // BLOCKS_PER_DAY,
                        None if r.deleted else r.value,
                    ),
                )
                count += 1
                top = max(top, r.height)
            behind = top - self.height()
            if behind > 0 and not self.mirror:
                self._set_meta("mined", str(int(self._meta("mined") or 0) + behind))
        return count

    def name_new(self, name: str, value: str, days: int, to: str | None = None) -> str:
        check_name_and_value(name, value)
        if days < 1:
            raise NvsError(RPC_INTERNAL_ERROR, "rental days must be greater than 0.\n")
        if value == "":
            raise NvsError(RPC_INTERNAL_ERROR, "value must not be empty")
        with self._write():
            tip = self.height()
            try:
                current = self.show(name)
            except NvsError:
                current = None
            if current is not None and current.is_active(tip):
                raise NvsError(RPC_INTERNAL_ERROR, "name_new on an unexpired name")
            owner = self._owner(to)
            height = self._mine()
            return self._apply(
                name, "name_new", value, days, owner, height, height + BLOCKS_PER_DAY * days, height
            )

    def _owned_active(self, name: str, operation: str) -> NameRecord:
        try:
            current = self.show(name)
        except NvsError:
            current = None
        if current is None or not current.is_active(self.height()):
            raise NvsError(RPC_INTERNAL_ERROR, f"{operation} on an inactive name")
        if not self.is_mine(current.address):
            raise NvsError(RPC_INTERNAL_ERROR, "prev name tx is not yours or is not spendable")
        return current

    def name_update(self, name: str, value: str, days: int, to: str | None = None) -> str:
        check_name_and_value(name, value)
        if days < 0:
            raise NvsError(RPC_INTERNAL_ERROR, "rental days must not be negative.\n")
        if value == "":
            raise NvsError(RPC_INTERNAL_ERROR, "value must not be empty")
        with self._write():
            current = self._owned_active(name, "name_update")
            owner = self._owner(to)
            height = self._mine()
            return self._apply(
                name,
                "name_update",
                value,
                days,
                owner,
                None,
                current.expires_at + BLOCKS_PER_DAY * days,
                height,
            )

    def name_delete(self, name: str) -> str:
        with self._write():
            current = self._owned_active(name, "name_delete")
            height = self._mine()
            return self._apply(
                name, "name_delete", None, None, current.address, None, current.expires_at, height
            )
