"""The gateway's answer table: every served number compiled to answer bytes.

Queries never touch storage or cryptography.  The table is compiled from the
store through the resolver (the same code as ``enumer lookup``), each
signature verified once and cached, and then kept current block by block:
only the numbers a change touches are recompiled, and the new bytes are
published in place, one slot store per number.

The answers live in a flat table file (:mod:`enumer.dns.flat`) that every
gateway process maps: workers share one copy, the C loop reads it directly,
and the file is the snapshot (a restart maps it, checks it and serves).

Keys are the digits in DNS label order (``b"53995390081"`` for +18009359935),
so the server's hot path uses the query's label bytes as they come.  Values
are NAPTR RRs whose owner is the compression pointer to the question
(``c00c``), ready to follow the question in a response.

Toll-free entries match patterns, not numbers, so they are applied on a miss
and the result kept in a bounded cache.
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing as mp
import os
import re
import signal
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from enumer.bound import utc_day
from enumer.dns import memory
from enumer.dns.flat import CLEAN, Damaged, Entries, FlatTable
from enumer.dns.signed import SignedZone, signed_path
from enumer.dns.tablestate import Journaled, TableState, new_token, state_path
from enumer.dns.wire import C_IN, T_NAPTR
from enumer.naptr import DEFAULT_TTL, Naptr
from enumer.nvs import NameReader, NameRecord, tip_time
from enumer.records import EnumName
from enumer.resolver import Resolver
from enumer.substitution import SubstitutionExpression
from enumer.trust import SigStatus, TollFreeTable

OWNER_POINTER = b"\xc0\x0c"
TOLLFREE_CACHE_LIMIT = 65536
SNAPSHOT_VERSION = 6
_ENUM_IN_TEXT = re.compile(r"enum:([0-9]{1,64}):")


def rr_bytes(naptr: Naptr) -> bytes:
    """One answer RR: owner pointer, type, class, TTL, RDLENGTH, RDATA."""
    rdata = naptr.to_wire()
    return OWNER_POINTER + struct.pack("!HHIH", T_NAPTR, C_IN, naptr.ttl, len(rdata)) + rdata


def key_of(digits: str) -> bytes:
    """The table key of a number: its digits reversed, as ASCII."""
    return digits[::-1].encode()


def answer_bytes(
    naptrs: Iterable[Naptr], digits: str, expand: bool, memo: dict[Naptr, bytes]
) -> bytes:
    """The answer section of a number; ``expand`` bakes the number into each regexp.

    RRs that cannot be encoded (a field over 255 bytes) or, when expanding,
    whose regexp cannot be applied, are left out: a gateway must not serve
    what a PBX cannot parse (SPEC section 9).
    """
    parts = []
    aus = "+" + digits
    for naptr in naptrs:
        if expand:
            try:
                expanded = SubstitutionExpression.from_text(naptr.regexp).expanded(aus)
            except ValueError:
                continue
            if expanded is None:
                continue
            naptr = Naptr(
                naptr.order,
                naptr.preference,
                naptr.flags,
                naptr.service,
                expanded.to_text(),
                naptr.replacement,
                naptr.ttl,
            )
        found = memo.get(naptr)
        if found is None:
            try:
                found = rr_bytes(naptr)
            except ValueError:
                continue
            if len(memo) < 100_000:
                memo[naptr] = found
        parts.append(found)
    return b"".join(parts)


# -- parallel full builds ------------------------------------------------------------


@runtime_checkable
class RangeReader(NameReader, Protocol):
    """A store that a full build can read in parallel (``nvs.ledger.Ledger``): counted,
    cut into ranges, each range read by a forked worker on a connection of its own.
    A store without these (e.g. a node's names read over JSON-RPC) is read whole
    in the parent."""

    def count_prefix(self, prefix: str) -> int:
        """How many names (any state) start with ``prefix``."""
        ...

    def split_points(self, prefix: str, parts: int) -> list[str]:
        """Names cutting those starting with ``prefix`` into ``parts`` similar ranges."""
        ...

    def iter_range(self, low: str, high: str) -> Iterator[NameRecord]:
        """Every name with ``low <= name < high`` (any state), in name order."""
        ...

    def reopen(self) -> None:
        """A fresh connection, in a forked process."""
        ...


#: The table being built, inherited by forked workers (set only during a build).
_BUILDING: tuple[AnswerTable, int] | None = None


def _worker_start() -> None:
    """In a forked worker: default signal handling (the gateway's handlers would keep a
    worker alive on SIGTERM) and a store connection of its own (SQLite connections
    must not cross fork)."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    assert _BUILDING is not None
    store = _BUILDING[0].store
    assert isinstance(store, RangeReader)
    store.reopen()


def _worker_compile(bounds: tuple[str, str]) -> Compiled:
    """In a worker: compile every number whose names lie in ``[low, high)``."""
    assert _BUILDING is not None
    table, tip = _BUILDING
    store = table.store
    assert isinstance(store, RangeReader)
    records = store.iter_range(*bounds)
    total = Compiled()
    for groups in table._iter_chunks(1000, records):
        total.add(table._compute_chunk(groups, tip))
    return total


def _number_start(name: str) -> str:
    """A range bound that does not split a number: all of ``enum:D:*`` sorts after it."""
    parsed = EnumName.parse(name)
    return f"enum:{parsed.digits}:" if parsed else name


@dataclass
class Compiled:
    """Part of a full build: the answers of some numbers (a worker's result).

    Answers travel already encoded as table file entries, with their keys'
    hashes: the parent shares the cores with the workers, so it only appends
    the bytes and, at the end, fills the index (:meth:`FlatTable.write`).
    """

    answers: Entries = field(default_factory=Entries)
    revoked: list[str] = field(default_factory=list)  # numbers with a revoked signature
    #: Numbers whose decision changes by itself on a UTC day (ordinal): a VSIG expires.
    expiring: dict[str, int] = field(default_factory=dict)
    #: Freshness: the OSIG time accepted per record name (SPEC 11).
    accepted: dict[str, int] = field(default_factory=dict)
    numbers: int = 0
    records: int = 0
    signature_checks: int = 0

    def add(self, other: Compiled) -> None:
        self.answers.extend(other.answers)
        self.revoked.extend(other.revoked)
        self.expiring.update(other.expiring)
        self.accepted.update(other.accepted)
        self.numbers += other.numbers
        self.records += other.records
        self.signature_checks += other.signature_checks


@dataclass
class BuildStats:
    records: int = 0
    numbers: int = 0
    served: int = 0
    signature_checks: int = 0
    seconds: float = 0.0
    from_snapshot: bool = False


@dataclass
class AnswerTable:
    """An :class:`enumer.dns.wire.AnswerSource` for one zone mode.

    ``resolver.require_signature`` decides between a ``$enum`` (verified)
    and a ``~enum`` (unsigned) table.
    """

    resolver: Resolver
    expand_regexp: bool = False
    #: Where the table file lives (it is also the snapshot); None: an unlinked temporary file.
    path: Path | None = None
    answers: FlatTable = field(default_factory=lambda: FlatTable.create(None, (), 0))
    generation: int = 0
    serial: int = 0
    synced_height: int = -1
    synced_stamp: int = -1  # the store's change stamp the table is compiled to
    built_at: float = 0.0
    revoked: set[str] = field(default_factory=set)  # numbers with a revoked signature
    #: Numbers served by a VSIG that expires: digits -> the UTC day (ordinal) their
    #: decision changes, so the table recompiles them when the chain reaches it.
    expiring: Journaled = field(default_factory=Journaled)
    chain_day: int = 0  # the UTC day (ordinal) of the chain time of the last compile
    stats: BuildStats = field(default_factory=BuildStats)
    #: Why the last :meth:`load` refused its file ("" when it did not).
    refused: str = ""
    #: The signed side (``--dnssec-keys``): signed whenever the answers change.
    dnssec: SignedZone | None = None
    #: Keys whose answer changed since a zone publisher last took them
    #: (:func:`enumer.dns.xfr.take_changes`), so that a block costs the
    #: publisher O(changes), not a copy of the table; None until a publisher
    #: asks, and again when everything may have changed (a build or a load).
    changed_keys: list[bytes] | None = None
    #: Where the per-record state (freshness, expiry) is kept beside the table file
    #: (:mod:`enumer.dns.tablestate`): None for a temporary table, or another's file.
    state: TableState | None = None
    #: The token the table file's metadata and its state database share.
    state_token: str = ""
    _tollfree_cache: dict[bytes, bytes | None] = field(default_factory=dict)
    # The toll-free entries as of the last compile: the query path must not make
    # the resolver (re)load them from the store.
    _tollfree: TollFreeTable = field(default_factory=TollFreeTable)
    _memo: dict[Naptr, bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not isinstance(self.resolver.accepted, Journaled):  # so commits write changes only
            self.resolver.accepted = Journaled(self.resolver.accepted)

    @property
    def store(self) -> NameReader:
        return self.resolver.store

    @property
    def accepted(self) -> Journaled:
        accepted = self.resolver.accepted
        assert isinstance(accepted, Journaled)
        return accepted

    # -- the query path ---------------------------------------------------------

    @property
    def fast_answers(self) -> FlatTable:
        """The answers as the mapped table, for the C worker loop: a hit there is
        exactly what :meth:`answer` returns; a miss must still go through it."""
        return self.answers

    @property
    def fast_answers_complete(self) -> bool:
        """Whether a number missing from :attr:`fast_answers` is not served at all
        (no toll-free list could answer it), so the C loop may say NXDOMAIN."""
        return not self._tollfree.entries

    def answer(self, key: bytes) -> bytes | None:
        """Answer RRs of the number whose digits in label order are ``key``."""
        found: bytes | None = self.answers.get(key)
        if found is not None:
            return found
        tollfree = self._tollfree
        if not tollfree.entries:
            return None
        if key in self._tollfree_cache:
            return self._tollfree_cache[key]
        digits = key[::-1].decode("ascii", "replace")
        entry = tollfree.match(digits)
        rrs = None
        if entry is not None:
            rrs = (
                answer_bytes(
                    (d.naptr(DEFAULT_TTL) for d in entry.directives),
                    digits,
                    self.expand_regexp,
                    self._memo,
                )
                or None
            )
        if len(self._tollfree_cache) >= TOLLFREE_CACHE_LIMIT:
            self._tollfree_cache.clear()
        self._tollfree_cache[key] = rrs
        return rrs

    def __len__(self) -> int:
        return len(self.answers)

    # -- compiling ------------------------------------------------------------

    def _compute(self, digits: str, records: list[NameRecord], tip: int) -> tuple[bytes, bool, int]:
        """(answer RRs, whether a signature is revoked, the day the decision changes
        by itself or 0) of one number."""
        verdicts = self.resolver.examine(records, tip, self.resolver.chain_time)
        naptrs = [n for v in verdicts if v.verified for n in v.naptrs]
        revoked = any(s.status is SigStatus.REVOKED for v in verdicts for s in v.signatures) or any(
            v.bound is not None and v.bound.revoked for v in verdicts
        )
        changes = [v.bound.changes_on for v in verdicts if v.bound and v.bound.changes_on]
        rrs = answer_bytes(naptrs, digits, self.expand_regexp, self._memo) if naptrs else b""
        return rrs, revoked, min(changes, default=0)

    def _compile(self, digits: str, records: list[NameRecord], tip: int) -> None:
        """Recompile one number into the live table."""
        rrs, revoked, changes_on = self._compute(digits, records, tip)
        self._absorb(digits, rrs, revoked)
        if changes_on:
            self.expiring[digits] = changes_on
        else:
            self.expiring.pop(digits, None)

    def _absorb(self, digits: str, rrs: bytes, revoked: bool) -> None:
        if revoked:
            self.revoked.add(digits)
        else:
            self.revoked.discard(digits)
        key = key_of(digits)
        if self.changed_keys is not None:
            self.changed_keys.append(key)
        if not rrs:
            self.answers.delete(key)
            return
        self.answers = self.answers.put_growing(key, rrs)

    def _meta(self) -> dict[str, object]:
        """What the table file keeps besides the answers: the revoked numbers (few),
        and the token of the state database that holds the per-record state."""
        return {"revoked": sorted(self.revoked), "state": self.state_token}

    def _commit(self, height: int, stamp: int) -> None:
        """Mark the file as reflecting ``height`` and ``stamp`` (flushed, clean); the
        state database first gets the entries that changed."""
        if self.state is not None:
            self.state.write(self.accepted, self.expiring)
        else:  # nothing to write them to: only forget what changed
            self.accepted.take()
            self.expiring.take()
        self.answers = self.answers.commit_growing(height, stamp, self._meta())

    def _new_state(self, path: Path | None) -> None:
        """Start the state database of a table file about to be written at ``path``
        (None: a temporary table, whose state stays in memory)."""
        if self.state is not None and (path is None or self.state.path != state_path(path)):
            self.state.close()
            self.state = None
        self.state_token = new_token()
        if path is not None:
            if self.state is None:
                self.state = TableState(state_path(path))
            self.state.replace(self.state_token, self.accepted, self.expiring)

    def _iter_chunks(
        self, size: int, records: Iterable[NameRecord] | None = None
    ) -> Iterator[list[tuple[str, list[NameRecord]]]]:
        """ENUM records (default: all) grouped by number (names of a number are
        contiguous), in chunks of ``size`` numbers."""
        chunk: list[tuple[str, list[NameRecord]]] = []
        current: str | None = None
        group: list[NameRecord] = []
        for record in self.store.iter_prefix("enum:") if records is None else records:
            parsed = EnumName.parse(record.name)
            if parsed is None:
                continue
            if parsed.digits != current:
                if current is not None:
                    chunk.append((current, group))
                    if len(chunk) >= size:
                        yield chunk
                        chunk = []
                current, group = parsed.digits, []
            group.append(record)
        if current is not None:
            chunk.append((current, group))
        if chunk:
            yield chunk

    def build(
        self,
        workers: int | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        chunk: int = 2000,
    ) -> BuildStats:
        """Compile every number from scratch (first start, or a verifier changed).

        Parsing and the ECDSA checks dominate, so chunks of numbers are
        compiled in forked worker processes (one per core), each with its own
        store connection; the parent only reads records and collects bytes.
        The result is swapped in whole: queries keep the old table until the
        new one is complete.
        """
        started = time.monotonic()
        self.changed_keys = None  # every answer may change: a publisher diffs them all
        self.resolver.forget()
        height = self.store.height()
        self._read_chain_time()
        stamp = self.store.change_stamp()  # read first: later writes are caught next time
        for name in self.resolver.trust.verifiers:  # warm before forking
            self.resolver.verifier(name)
        built = Compiled()
        # Progress counts records; the total is known when the store can count them.
        store = self.store
        total = store.count_prefix("enum:") if isinstance(store, RangeReader) else 0
        workers = workers or os.cpu_count() or 1
        if workers > 1 and isinstance(store, RangeReader) and "fork" in mp.get_all_start_methods():
            # Workers read their own ranges of names: the parent only collects bytes.
            # Small ranges, so that no worker idles long while the last ones finish.
            points = store.split_points("enum:", workers * 32)
            bounds = ["enum:", *(_number_start(p) for p in points), "enum;"]
            ranges = [(lo, hi) for lo, hi in itertools.pairwise(bounds) if lo < hi]
            global _BUILDING
            _BUILDING = (self, height)
            try:
                pool = mp.get_context("fork").Pool(workers, initializer=_worker_start)
                try:
                    results = pool.imap_unordered(_worker_compile, ranges, chunksize=1)
                    self._collect(results, built, total, progress)
                    pool.close()  # every range is done: let the workers exit on their own
                finally:
                    pool.terminate()
                    pool.join()
            finally:
                _BUILDING = None
        else:
            chunks = self._iter_chunks(chunk)
            self._collect((self._compute_chunk(c, height) for c in chunks), built, total, progress)
        self.revoked = set(built.revoked)
        self.expiring = Journaled(built.expiring)
        self.accepted.update(built.accepted)
        # The new file is renamed over the old one: readers keep the old mapping
        # until they take this one.  Another process's file (a running gateway's,
        # seen by ``zone export``) is left alone: this table goes to a temporary file.
        path = self.path
        if path is not None and not self.answers.owns and FlatTable.written_elsewhere(path):
            path = None
        self._new_state(path)
        self.answers = FlatTable.write(
            path,
            built.answers,
            height=height,
            stamp=stamp,
            meta=self._meta(),
            fingerprint=self.fingerprint(),
        )
        self.stats = BuildStats(
            records=built.records,
            numbers=built.numbers,
            served=len(built.answers),
            signature_checks=built.signature_checks,
            seconds=time.monotonic() - started,
        )
        memory.trim()  # what the build freed (before signing, which needs room)
        if self.dnssec is not None:
            self.dnssec.sign_all(self.answers, workers)
        self._changed(height, stamp)
        return self.stats

    def _compute_chunk(self, groups: list[tuple[str, list[NameRecord]]], tip: int) -> Compiled:
        """Compile a chunk of numbers (each with its records) for a full build."""
        before = self.resolver.cache.checks
        out = Compiled(numbers=len(groups))
        accepted = self.resolver.accepted
        for digits, records in groups:
            rrs, revoked, changes_on = self._compute(digits, records, tip)
            if rrs:
                out.answers.add(key_of(digits), rrs)
            if revoked:
                out.revoked.append(digits)
            if changes_on:
                out.expiring[digits] = changes_on
            if accepted:
                for record in records:
                    when = accepted.get(record.name)
                    if when is not None:
                        out.accepted[record.name] = when
            out.records += len(records)
        # The cache of a build is not kept: a rebuild happens when verifiers change.
        self.resolver.cache.entries.clear()
        out.signature_checks = self.resolver.cache.checks - before
        return out

    def _collect(
        self,
        results: Iterable[Compiled],
        built: Compiled,
        total: int,
        progress: Callable[[str, int, int], None] | None,
    ) -> None:
        for part in results:
            built.add(part)
            if progress:
                progress("checking records", built.records, max(total, built.records))
        if progress and built.records < total:  # the names that are not ENUM records
            progress("checking records", total, total)

    def _read_chain_time(self) -> None:
        """Fix the chain time (the tip's block time) every decision of this compile
        is made at: VSIG not-after dates are read against it (SPEC 11)."""
        now = tip_time(self.store)
        self.resolver.chain_time = now
        self.chain_day = utc_day(now).toordinal()

    def _changed(self, height: int, stamp: int) -> None:
        self.synced_height = max(self.synced_height, height)
        self.synced_stamp = max(self.synced_stamp, stamp)
        self.serial = height
        self.built_at = time.time()
        self._tollfree = self.resolver.tollfree  # loaded here, on the updating thread
        self._tollfree_cache = {}
        self.generation += 1
        if self.dnssec is not None:
            self.dnssec.presign_soa(self.serial)

    def refresh(self) -> set[str]:
        """Apply what changed on the chain since the last sync; returns the numbers touched.

        Called by the gateway's update loop.  A change of a trusted ``ver:``
        record rebuilds everything (its key or SRL policy changes every
        verdict); an SRL record recompiles the numbers it lists and those now
        revoked; a toll-free record reloads the toll-free lists.
        """
        with self._lock:
            height = self.store.height()
            stamp = self.store.change_stamp()  # read first: later writes are caught next time
            day_before = self.chain_day
            self._read_chain_time()
            new_day = self.chain_day != day_before
            if height == self.synced_height and stamp == self.synced_stamp and not new_day:
                if self.dnssec is not None and self.dnssec.due(time.time()):
                    self.dnssec.sign_all(self.answers)  # renew before they expire
                    self.generation += 1
                return set()
            changed = self.store.changed_since(self.synced_stamp)
            expired = self.store.expiring_between(max(self.synced_height, 0), height)
            touched: set[str] = set()
            if new_day:  # VSIGs expire with the chain's days, not with records
                touched.update(d for d, day in self.expiring.items() if day <= self.chain_day)
            rebuild = False
            forget = False
            tollfree_names = {s.record_name for s in self.resolver.tollfree_sources}
            for record in [*changed, *expired]:
                parsed = EnumName.parse(record.name)
                if parsed is not None:
                    touched.add(parsed.digits)
                elif record.name in self.resolver.trust:
                    rebuild = True
                elif record.name in tollfree_names:
                    forget = True
                elif not record.name.startswith("ver:"):
                    # Possibly an SRL record: recompile what it lists and what was revoked.
                    forget = True
                    touched.update(_ENUM_IN_TEXT.findall(record.value))
                    touched.update(self.revoked)
            if rebuild:
                self.build()
                return {"*"}
            if forget:
                self.resolver.forget()
            for digits in touched:
                self._compile(digits, self.store.records_for_number(digits), height)
            self._commit(max(self.synced_height, height), max(self.synced_stamp, stamp))
            if self.dnssec is not None:
                if self.dnssec.due(time.time()):
                    self.dnssec.sign_all(self.answers)
                else:
                    self.dnssec.update(self.answers, touched)
                    self.dnssec.commit(self.answers.height, self.answers.stamp, self.state_token)
            self._changed(height, stamp)
            return touched

    # -- persistence -----------------------------------------------------------

    def fingerprint(self) -> str:
        """What the compiled answers depend on besides the chain."""
        r = self.resolver
        parts = [
            str(SNAPSHOT_VERSION),
            r.store.network_name,
            r.trust.to_text(),
            "|".join(s.location for s in r.tollfree_sources),
            str(r.exact_srl),
            str(r.require_signature),
            r.policy.value,
            str(self.expand_regexp),
        ]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]

    def save(self, path: Path) -> None:
        """Make sure the table is on disk at ``path``, so that a restart maps it and serves.

        A table built at ``path`` already is (every change is committed there):
        nothing to do.  Otherwise the table is written there and used from there on.
        """
        if self.answers.path == path and (self.answers.state == CLEAN or self.answers.private):
            return  # the file is current, or another process writes it
        if not self.answers.owns and FlatTable.written_elsewhere(path):
            return
        self._new_state(path)
        self.answers = FlatTable.create(
            path,
            self.answers.items(),
            len(self.answers),
            height=self.synced_height,
            stamp=self.synced_stamp,
            meta=self._meta(),
            fingerprint=self.fingerprint(),
        )
        self.path = path

    def load(self, path: Path) -> bool:
        """Map a table file made with the same configuration and serve from it;
        False (and :attr:`refused` says why) when it is missing, damaged, from
        another configuration or ahead of the store: the caller builds anew."""
        self.refused = ""
        self.changed_keys = None
        try:
            table = FlatTable.open(path, writable=True)
            meta = table.meta
            if not isinstance(meta, dict):
                raise Damaged("no metadata")
            revoked, token = set(meta["revoked"]), str(meta["state"])
        except (Damaged, KeyError, TypeError, ValueError) as exc:
            self.refused = str(exc) if path.exists() else "no snapshot"
            return False
        if table.fingerprint != self.fingerprint():
            self.refused = "made with another configuration"
            return False
        if table.height > self.store.height() or table.stamp > self.store.change_stamp():
            self.refused = "ahead of the store (another or a rewound chain)"
            return False
        if not state_path(path).exists():
            self.refused = "its state database is missing"
            return False
        try:
            state = TableState(state_path(path), writable=table.owns)
        except sqlite3.Error as exc:
            self.refused = f"its state database: {exc}"
            return False
        try:
            if state.token() != token:
                self.refused = "its state database is of another table file"
                return False
            accepted, expiring = state.read()
        except sqlite3.Error as exc:
            self.refused = f"its state database: {exc}"
            return False
        finally:
            if not table.owns or self.refused:
                state.close()
        if self.state is not None:
            self.state.close()
        self.state = state if table.owns else None  # another's file: changes stay here
        self.state_token = token
        self.answers = table
        self.path = path
        self.revoked = revoked
        self.expiring = expiring
        for name, when in self.accepted.items():  # accepted here before: kept (and written)
            accepted.setdefault(name, when)
        self.resolver.accepted = accepted
        self.synced_height = table.height
        self.stats = BuildStats(numbers=len(table), served=len(table), from_snapshot=True)
        signed = self.dnssec  # the signatures kept beside the file, else new ones
        if signed is not None and not signed.resume(signed_path(path), table, token):
            signed.sign_all(self.answers)
        self._changed(table.height, table.stamp)
        return True

    def save_signed(self) -> None:
        """Keep the signatures beside the table file (``<snapshot>.signed``), so that a
        restart serves them instead of signing again: written once after a signing
        (a copy of its file), then committed in place with every change."""
        with self._lock:
            answers = self.answers
            if self.dnssec is not None and answers.owns and answers.path is not None:
                self.dnssec.persist(
                    signed_path(answers.path), answers.height, answers.stamp, self.state_token
                )
