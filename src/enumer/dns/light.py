"""Light mode (``enumer serve --upstream URL ...``): poll untrusted upstreams, keep an index.

The HTTP edge of SPEC 12's light gateway.  Each upstream (an Emercoin node or
an ENUMER record feed: the same JSON-RPC, see :mod:`enumer.dns.feed`) is polled
on its own; what it returned is kept per upstream in ``views.sqlite`` (its last
good view survives its outages), and the rules of :mod:`enumer.light` turn the
views into the accepted index, a mirror :class:`Ledger` the answer table is
built from as a full gateway's is built from the chain.

Incremental: a record feed is asked for the names written since the change
stamp of the last poll (``name_changes``), and only those are fetched and judged
again: a poll costs what changed, not the size of the feed.  An Emercoin node has
no change list (its ``name_filter maxage`` keeps names by registration height, so
it misses updates): when its tip moves it is listed again.  A listing (the first
poll of each upstream, and see :meth:`LightSync._relist_reason`) reads large
``name_filter`` pages with values cut to :data:`LISTED_VALUE` bytes, and fetches in
``name_show`` batches only the names whose registration, expiry or value start
differ from the view.  The first sync of a million records is therefore a hundred
pages and a thousand batches, not a request per name.

Hostile upstreams: every answer is bounded (bytes and total seconds, in
:class:`RpcClient`), checked for shape, chain (``getblockchaininfo``'s ``chain``)
and progress (a page that brings no new name ends the listing as a loop), and an
upstream that fails keeps its last view and is reported; nothing it sent in a
failed poll is used.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from enumer import crypto
from enumer.bound import BoundVerdict, judge_bound
from enumer.dns.metrics import Metrics
from enumer.dns.mirror import SyncResult
from enumer.emercoin import CHAIN_TO_NETWORK, NETWORK_TO_CHAIN
from enumer.light import (
    Choice,
    How,
    Seen,
    UpstreamState,
    accept_record,
    chain_time,
    choose_verifier,
    merge_srl,
    staleness,
)
from enumer.nvs import NameRecord, NvsError
from enumer.nvs.ledger import Ledger
from enumer.nvs.node import limit_value
from enumer.nvs.rpc import (
    MethodNotFoundError,
    RateLimitedError,
    RpcClient,
    RpcConfig,
    RpcError,
    RpcTransportError,
    regex_escape,
)
from enumer.resolver import Resolver
from enumer.sqlite_util import connect, immediate_transaction, rows_in
from enumer.trust import SignatureCache, SrlConfig, SrlState, TollFreeSource, TrustList

#: Names per ``name_filter`` page and per ``name_show`` batch.
PAGE: Final = 10_000
SHOW_BATCH: Final = 1000
#: Bytes of each value a listing carries: a record whose start changed is fetched
#: again, also when its registration and expiry stayed (an update adding no days).
LISTED_VALUE: Final = 64
#: What a listing gives per name: registration height, expiry height, and the hash of
#: its value's start (``hash()``: a listing of a million names holds a number per
#: name, not a string; the hash key is this process's own, so an upstream cannot aim
#: at a collision).
Listed = tuple[int, int, int]
#: Bounds of one answer from an upstream: bytes and seconds for the whole exchange.
MAX_RESPONSE_BYTES: Final = 64 << 20
DEFAULT_TIMEOUT: Final = 15.0
#: The most names one upstream's listing may hold (a feed looping pages stops earlier).
MAX_NAMES: Final = 20_000_000
#: Names one ``name_changes`` answer may hold (a feed's page), and the largest stamp
#: asked for (the node's integers are 32-bit): asking from it answers no names, only
#: the stamp to start from.
MAX_CHANGES: Final = 20_000
MAX_STAMP: Final = 2**31 - 1
#: A full listing of each upstream at least this often (seconds), whatever its change
#: list says: what an upstream left out of it is caught then.
DEFAULT_RELIST: Final = 3600.0
#: A full listing asked for by an upstream's own answers (its tip went down, its store
#: or stamp went back) waits this long after the last one (or --upstream-relist, if
#: shorter).
FORCED_RELIST_GAP: Final = 60.0
PERIODIC: Final = "the periodic full listing"
#: HTTP 429: the longest Retry-After waited for within a poll, and how many times in a
#: row; a longer one skips the upstream's polls until then, at most MAX_BACKOFF.
MAX_RETRY_AFTER: Final = 10.0
RETRIES_429: Final = 3
MAX_BACKOFF: Final = 900.0
#: Notes (disagreements) logged per sync; the rest are counted.
NOTES_PER_SYNC: Final = 20
LIGHT_INDEX_DIR: Final = "light-index"
VIEWS_FILE: Final = "views.sqlite"

Log = Callable[[str], None]


class UpstreamError(NvsError):
    """An upstream gave something unusable (wrong chain, bad shape, looping pages)."""

    def __init__(self, message: str) -> None:
        super().__init__(-1, message)


_VIEWS_SCHEMA = """
CREATE TABLE IF NOT EXISTS views (
    upstream TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, address TEXT NOT NULL,
    txid TEXT NOT NULL, registered_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
    time INTEGER NOT NULL, PRIMARY KEY (name, upstream)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS upstreams (
    upstream TEXT PRIMARY KEY, height INTEGER NOT NULL, tip_time INTEGER NOT NULL,
    last_success REAL NOT NULL, disagreements INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS accepted (name TEXT PRIMARY KEY, osig_time INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (
    upstream TEXT PRIMARY KEY, store TEXT NOT NULL, stamp INTEGER NOT NULL,
    changes INTEGER NOT NULL, listed_at REAL NOT NULL, tip_hash TEXT NOT NULL);
"""
# cursors: where each upstream's view stands in its change list (a record feed's
# name_changes stamp, -1: none), whether it has one, when it was last listed in
# full, and its tip's block hash then.  (A views file made before this table is
# given it, empty: each upstream is listed once in full.)


class Views:
    """What each upstream last returned (``views.sqlite``), and the OSIG high-water marks."""

    def __init__(self, path: Path) -> None:
        self.db = connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        with immediate_transaction(self.db):
            for statement in _VIEWS_SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)

    def close(self) -> None:
        self.db.close()

    def differing(
        self, upstream: str, listed: dict[str, Listed], moved: int = 0
    ) -> tuple[list[str], list[str]]:
        """(names whose listing differs from one upstream's view: new ones, another
        registration, expiry or start of the value; names of the view not listed).

        A listing's expiry heights are its pages' ``expires_in`` counted from the tip
        at its start: when the tip ``moved`` by some blocks while the pages came, a
        later page's heights are up to that many lower, and that alone is no change
        (else one block during a listing of a million names would fetch and judge
        them all again)."""
        rows = self.db.execute(
            "SELECT name, registered_at, expires_at, value FROM views WHERE upstream=?",
            (upstream,),
        )
        differ: list[str] = []
        unlisted: list[str] = []
        present: set[str] = set()
        for name, registered, expires, value in rows:
            meta = listed.get(name)
            if meta is None:
                unlisted.append(name)
                continue
            present.add(name)
            if (
                registered != meta[0]
                or not 0 <= expires - meta[1] <= moved
                or hash(limit_value(value, LISTED_VALUE)) != meta[2]
            ):
                differ.append(name)
        differ.extend(n for n in listed if n not in present)
        return differ, unlisted

    def put(self, upstream: str, records: Iterable[NameRecord], gone: Iterable[str]) -> None:
        with immediate_transaction(self.db):
            self.db.executemany(
                "INSERT OR REPLACE INTO views VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        upstream,
                        r.name,
                        r.value,
                        r.address,
                        r.txid,
                        r.registered_at,
                        r.expires_at,
                        r.time,
                    )
                    for r in records
                ),
            )
            self.db.executemany(
                "DELETE FROM views WHERE name=? AND upstream=?", ((n, upstream) for n in gone)
            )

    def records(self, names: list[str]) -> dict[str, dict[str, NameRecord]]:
        """name -> upstream -> record, for ``names``."""
        out: dict[str, dict[str, NameRecord]] = {}
        query = (
            "SELECT upstream, name, value, address, txid, registered_at, expires_at, time "
            "FROM views WHERE name IN ({})"
        )
        for up, name, value, address, txid, reg, exp, t in rows_in(self.db, query, names):
            out.setdefault(name, {})[up] = NameRecord(name, value, address, txid, reg, reg, exp, t)
        return out

    def names(self, prefix: str = "") -> Iterator[str]:
        rows = self.db.execute(
            "SELECT DISTINCT name FROM views WHERE name >= ? AND name < ? ORDER BY name",
            (prefix, prefix + "\U0010ffff"),
        )
        return (str(r[0]) for r in rows)

    def forget_others(self, keep: list[str]) -> tuple[int, list[str]]:
        """Drop the views of every upstream not in ``keep`` (one no longer configured):
        (how many upstreams, the names they had a view of, to be judged again)."""
        # The small tables name every upstream that ever answered (the views table has
        # no index by upstream: scanning it would cost every restart seconds at 1M).
        known = self.db.execute("SELECT upstream FROM upstreams UNION SELECT upstream FROM cursors")
        others = [str(r[0]) for r in known if r[0] not in keep]
        names: set[str] = set()
        with immediate_transaction(self.db):
            for upstream in others:
                rows = self.db.execute("SELECT name FROM views WHERE upstream=?", (upstream,))
                names.update(str(r[0]) for r in rows)
                for table in ("views", "upstreams", "cursors"):
                    self.db.execute(f"DELETE FROM {table} WHERE upstream=?", (upstream,))
        return len(others), sorted(names)

    def state(self, upstream: str) -> tuple[int, int, float, int] | None:
        row = self.db.execute(
            "SELECT height, tip_time, last_success, disagreements FROM upstreams WHERE upstream=?",
            (upstream,),
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), float(row[2]), int(row[3]))

    def set_state(self, upstream: str, height: int, tip: int, at: float, disagree: int) -> None:
        with immediate_transaction(self.db):
            self.db.execute(
                "INSERT OR REPLACE INTO upstreams VALUES (?, ?, ?, ?, ?)",
                (upstream, height, tip, at, disagree),
            )

    def cursor(self, upstream: str) -> tuple[str, int, bool, float, str] | None:
        row = self.db.execute(
            "SELECT store, stamp, changes, listed_at, tip_hash FROM cursors WHERE upstream=?",
            (upstream,),
        ).fetchone()
        if row is None:
            return None
        return str(row[0]), int(row[1]), bool(row[2]), float(row[3]), str(row[4])

    def set_cursor(
        self, upstream: str, store: str, stamp: int, changes: bool, listed_at: float, tip: str
    ) -> None:
        with immediate_transaction(self.db):
            self.db.execute(
                "INSERT OR REPLACE INTO cursors VALUES (?, ?, ?, ?, ?, ?)",
                (upstream, store, stamp, int(changes), listed_at, tip),
            )

    def accepted_times(self, names: list[str]) -> dict[str, int]:
        query = "SELECT name, osig_time FROM accepted WHERE name IN ({})"
        return {str(n): int(t) for n, t in rows_in(self.db, query, names)}

    def set_accepted(self, times: dict[str, int]) -> None:
        if times:
            with immediate_transaction(self.db):
                self.db.executemany(
                    "INSERT OR REPLACE INTO accepted VALUES (?, ?)", list(times.items())
                )


def _int(row: dict[str, Any], key: str, what: str) -> int:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UpstreamError(f"{what}: {key} is not an integer ({str(value)[:40]!r})")
    return value


@dataclass
class Upstream:
    """One upstream: its client and what the gateway knows of it."""

    number: int
    url: str
    client: RpcClient
    key: str = ""
    height: int = -1
    tip_time: int = 0
    last_success: float = 0.0
    disagreements: int = 0
    error: str = ""
    listed: bool = False  # whether the view is complete at ``height``
    #: The records this upstream disagrees with the accepted choice on, now.
    disagreeing: set[str] = field(default_factory=set)
    seen_names: int = 0
    #: Its change list (a record feed's ``name_changes``): the store it belongs to,
    #: the stamp the view is complete at (-1: none), and whether it has one (None:
    #: not known yet; False: an Emercoin node, listed again at each block).
    store: str = ""
    stamp: int = -1
    changes: bool | None = None
    #: When the view was last listed in full, and the tip's block hash then.
    listed_at: float = 0.0
    tip_hash: str = ""
    #: Whether it answers ``getblockhash`` and ``getblock`` (None: not asked yet).
    hash_check: bool | None = None
    has_getblock: bool | None = None
    #: Full listings since the gateway started (a metric).
    relists: int = 0
    #: Not asked before this time (it answered HTTP 429 with a long Retry-After).
    retry_at: float = 0.0
    retry_note: str = ""
    #: The SRL prefixes its view was listed with.
    prefixes: set[str] = field(default_factory=set)

    @classmethod
    def open(cls, number: int, url: str, timeout: float, max_bytes: int) -> Upstream:
        config = RpcConfig.from_url(url)
        client = RpcClient(
            config,
            timeout=timeout,
            max_response_bytes=max_bytes,
            retry_after=(MAX_RETRY_AFTER, RETRIES_429),
        )
        return cls(number, url, client, key=config.url)

    def state(self) -> UpstreamState:
        return UpstreamState(
            self.number,
            self.key,
            self.height,
            self.tip_time,
            self.last_success,
            self.disagreements,
            self.error,
        )

    def tip(self, network: str) -> tuple[int, int, str]:
        """(height, tip time, tip block hash), refusing an upstream of another chain."""
        info = self.client.getblockchaininfo()
        chain = info.get("chain")
        if not isinstance(chain, str):
            raise UpstreamError("getblockchaininfo has no chain")
        if CHAIN_TO_NETWORK.get(chain, chain) != network:
            mine = NETWORK_TO_CHAIN.get(network, network)
            raise UpstreamError(f"it is on chain {chain!r}, this gateway on {mine!r}")
        height = _int(info, "blocks", "getblockchaininfo")
        tip_time = -1
        if self.has_getblock is not False:
            try:
                block = self.client.getblock(str(info.get("bestblockhash", "")))
                tip_time = _int(block, "time", "getblock")
                self.has_getblock = True
            except MethodNotFoundError:  # a record feed: mediantime is its tip's time
                self.has_getblock = False
        if tip_time < 0:
            tip_time = _int(info, "mediantime", "getblockchaininfo")
        return height, tip_time, str(info.get("bestblockhash", ""))[:100]

    def block_hash(self, height: int) -> str | None:
        """``getblockhash height`` (None: the upstream has no such call, as a feed)."""
        if self.hash_check is False:
            return None
        try:
            answer = self.client.call("getblockhash", height)
        except MethodNotFoundError:
            self.hash_check = False
            return None
        self.hash_check = True
        if not isinstance(answer, str):
            raise UpstreamError("getblockhash did not answer a string")
        return answer

    def changes_since(self, since: int, height: int) -> tuple[str, int, dict[str, Listed]]:
        """A record feed's ``name_changes``: (its store, the stamp to ask from next
        time, name -> (registered_at, expires_at) of every name written after
        ``since``).  :class:`MethodNotFoundError` from an Emercoin node."""
        answer = self.client.call("name_changes", min(since, MAX_STAMP))
        if not isinstance(answer, dict):
            raise UpstreamError("name_changes did not answer an object")
        store, rows = answer.get("store"), answer.get("names")
        if not isinstance(store, str) or not isinstance(rows, list):
            raise UpstreamError("name_changes answered no store or no list of names")
        stamp = _int(answer, "stamp", "name_changes")
        if len(rows) > MAX_CHANGES:
            raise UpstreamError(f"name_changes answered {len(rows)} names, over {MAX_CHANGES}")
        out: dict[str, Listed] = {}
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("name"), str):
                raise UpstreamError("name_changes answered a row without a name")
            out[row["name"]] = (
                _int(row, "registered_at", "name_changes"),
                height + _int(row, "expires_in", "name_changes"),
                0,
            )
        return store[:200], stamp, out

    def list_names(self, regexp: str, height: int) -> dict[str, Listed]:
        """name -> (registered_at, expires_at, start of the value) of every name
        matching ``regexp``, paged."""
        out: dict[str, Listed] = {}
        start = 0
        while True:
            rows = self.client.name_filter(regexp, 0, start, PAGE, maxvaluelen=LISTED_VALUE)
            if not isinstance(rows, list):
                raise UpstreamError(f"name_filter {regexp!r} did not answer a list")
            fresh = 0
            for row in rows:
                if not isinstance(row, dict) or not isinstance(row.get("name"), str):
                    raise UpstreamError(f"name_filter {regexp!r} answered a row without a name")
                name = row["name"]
                if name not in out:
                    fresh += 1
                value = row.get("value", "")
                out[name] = (
                    _int(row, "registered_at", "name_filter"),
                    height + _int(row, "expires_in", "name_filter"),
                    hash(value) if isinstance(value, str) else 0,
                )
            if len(rows) > PAGE:
                raise UpstreamError(f"name_filter {regexp!r} answered {len(rows)} rows for {PAGE}")
            if rows and not fresh:
                raise UpstreamError(
                    f"name_filter {regexp!r} from={start} repeats names it already listed "
                    "(looping pages): listing abandoned"
                )
            if len(out) > MAX_NAMES:
                raise UpstreamError(f"name_filter {regexp!r} lists over {MAX_NAMES} names")
            if len(rows) < PAGE:
                return out
            start += len(rows)

    def show(self, names: list[str], height: int) -> Iterator[tuple[str, NameRecord | None]]:
        """``name_show`` of ``names`` in batches: the record, or None when it is absent."""
        for i in range(0, len(names), SHOW_BATCH):
            part = names[i : i + SHOW_BATCH]
            answers = self.client.batch([("name_show", [n]) for n in part])
            for name, answer in zip(part, answers, strict=True):
                if isinstance(answer, RpcError):
                    if answer.code == -4:
                        yield name, None
                        continue
                    raise UpstreamError(f"name_show {name}: {answer}")
                yield name, _shown(name, answer, height)


def _shown(name: str, answer: Any, height: int) -> NameRecord | None:
    if not isinstance(answer, dict) or answer.get("name") != name:
        raise UpstreamError(f"name_show {name} answered another name or no object")
    value, address = answer.get("value"), answer.get("address")
    if not isinstance(value, str) or not isinstance(address, str):
        raise UpstreamError(f"name_show {name}: value or address is not a string")
    if answer.get("deleted"):
        return None
    expires_at = answer.get("expires_at")
    if not isinstance(expires_at, int) or isinstance(expires_at, bool) or not expires_at:
        expires_at = height + _int(answer, "expires_in", f"name_show {name}")
    return NameRecord(
        name,
        value,
        address,
        str(answer.get("txid", "")),
        height,
        height,
        expires_at,
        _int(answer, "time", f"name_show {name}") if "time" in answer else 0,
    )


@dataclass
class LightSync:
    """Polls every upstream and keeps the accepted index (see the module docstring)."""

    upstreams: list[Upstream]
    quorum: int
    trust: TrustList
    tollfree: tuple[TollFreeSource, ...]
    index: Ledger
    views: Views
    log: Log
    exact_srl: bool = False
    cache: SignatureCache = field(default_factory=SignatureCache)
    last_result: SyncResult | None = None
    #: Names written to a view and not judged yet.
    dirty: set[str] = field(default_factory=set)
    _stale: list[str] = field(default_factory=list)
    #: The last choice per ENUM name, when kept (``lookup`` explains them).
    choices: dict[str, Choice] | None = None
    #: Seconds between two full listings of an upstream that has a change list.
    relist_every: float = DEFAULT_RELIST

    def __post_init__(self) -> None:
        # An upstream taken out of the configuration no longer counts: its view goes,
        # and what it had a say in is judged again by the first poll.
        dropped, names = self.views.forget_others([u.key for u in self.upstreams])
        if dropped:
            self.dirty.update(names)
            self.log(
                f"dropped the views of {dropped} upstream(s) no longer configured: "
                f"{len(names)} names are judged again"
            )
        prefixes = set(self._srl_prefixes())
        for u in self.upstreams:
            saved = self.views.state(u.key)
            if saved is not None:
                u.height, u.tip_time, u.last_success, u.disagreements = saved
                u.listed = True
                u.prefixes = set(prefixes)  # what it was listed with, as far as known
            cursor = self.views.cursor(u.key)
            if cursor is not None and u.listed:
                u.store, u.stamp, u.changes, u.listed_at, u.tip_hash = cursor

    @property
    def network(self) -> str:
        return self.index.network_name

    def states(self) -> list[UpstreamState]:
        return [u.state() for u in self.upstreams]

    # -- polling ----------------------------------------------------------------------------

    def _srl_prefixes(self) -> list[str]:
        """The literal start of every SRL record name of the accepted verifiers."""
        out = []
        for verifier in self.trust.verifiers:
            record = self._current(verifier)
            config = SrlConfig.from_value(record.value if record else "")
            if config.state is SrlState.ACTIVE:
                out.append(config.template.split("%", 1)[0])
        return out

    def _specific(self) -> list[str]:
        """The names shown directly, not listed: verifiers, toll-free records outside enum:."""
        return [
            *self.trust.verifiers,
            *(n for s in self.tollfree if (n := s.record_name) and not n.startswith("enum:")),
        ]

    def _poll(self, u: Upstream) -> None:
        """One upstream's changes since its last poll, written to its view; every name
        written is added to :attr:`dirty` at once, so that a poll failing half-way still
        has what it wrote judged (nothing an upstream said is lost or skipped).

        A record feed answers ``name_changes``: only the names written since the stamp
        of the last poll are shown again, whatever the tip did.  An Emercoin node has no
        such call (its ``maxage`` keeps names by registration height, so it misses
        updates): it is listed in full when its tip moves.  Either is listed in full on
        the first poll, when its tip goes down or its block at the last height seen
        changes (a reorganisation), when its store or stamp goes back, and every
        :attr:`relist_every` seconds (what a change list left out is caught then)."""
        now = time.time()
        if now < u.retry_at:
            raise UpstreamError(u.retry_note)
        height, tip_time, tip_hash = u.tip(self.network)
        why = self._relist_reason(u, height, tip_hash, now)
        if why is None and u.changes is not False:
            try:
                store, stamp, changed = u.changes_since(u.stamp, height)
            except MethodNotFoundError:
                u.changes = False
                if u.stamp >= 0:
                    why = "it has no change list any more"
            except (RpcError, UpstreamError) as exc:
                if isinstance(exc, RpcTransportError):
                    raise
                why = f"its change list failed ({exc})"
            else:
                u.changes = True
                if store != u.store:
                    why = f"its store is another one ({store!r}, was {u.store!r})"
                elif stamp < u.stamp:
                    why = f"its change stamp went back from {u.stamp} to {stamp}"
                elif self._apply_changes(u, changed, height):
                    u.stamp = stamp
                    u.height, u.tip_time, u.tip_hash = height, tip_time, tip_hash
                    return
                else:
                    why = "a verifier's SRL template changed"
        if why is None and height == u.height:  # an Emercoin node: no new block
            u.tip_time = tip_time
            return
        if why is not None and u.listed:
            gap = min(FORCED_RELIST_GAP, self.relist_every)
            if not why.startswith(PERIODIC) and now - u.listed_at < gap:
                # An upstream flipping its store, stamp or tip would make every poll a
                # full listing of it, which the other upstreams' polls wait behind.
                raise UpstreamError(
                    f"it asks to be listed in full again ({why}): at most every {gap:g} s, "
                    "its last view is kept until then"
                )
            self.log(f"upstream {u.number} ({u.key}): listing it in full: {why}")
        self._relist(u, height, tip_time, tip_hash)

    def _relist_reason(self, u: Upstream, height: int, tip_hash: str, now: float) -> str | None:
        """Why ``u``'s view must be listed in full now, or None."""
        if not u.listed:
            return "first listing"
        if u.changes is not False and u.stamp < 0:
            return "no change stamp yet"
        if height < u.height:
            return f"its tip went down from {u.height} to {height}"
        if u.tip_hash and tip_hash and height == u.height and tip_hash != u.tip_hash:
            return f"its block at height {height} changed"
        if u.tip_hash and height > u.height >= 0:
            seen = u.block_hash(u.height)
            if seen is not None and seen != u.tip_hash:
                return f"its block at height {u.height} changed (a reorganisation)"
        if u.changes and now - u.listed_at >= self.relist_every:
            return f"{PERIODIC} (every {self.relist_every:g} s)"
        return None

    def _fetch(
        self, u: Upstream, names: list[str], meta: dict[str, Listed], height: int
    ) -> list[NameRecord]:
        """``name_show`` of ``names`` into ``u``'s view (registration heights from the
        listing ``meta``); the records found."""
        shown: list[NameRecord] = []
        for i in range(0, len(names), SHOW_BATCH * 10):
            part = names[i : i + SHOW_BATCH * 10]
            found = list(u.show(part, height))
            keep = []
            for name, record in found:
                if record is not None:
                    listed = meta.get(name)
                    if listed is not None:
                        record = replace(record, registered_at=listed[0], height=listed[0])
                    keep.append(record)
            self.dirty.update(part)
            self.views.put(u.key, keep, [n for n, r in found if r is None])
            shown.extend(keep)
        return shown

    def _apply_changes(self, u: Upstream, changed: dict[str, Listed], height: int) -> bool:
        """Show the changed names a light gateway keeps (ENUM, SRL under the prefixes
        listed, verifiers, toll-free records) into the view.  False when a verifier
        now names an SRL template its view was not listed with (then list in full)."""
        specific = set(self._specific())
        prefixes = ("enum:", *sorted(u.prefixes))
        names = [n for n in changed if n in specific or n.startswith(prefixes)]
        shown = self._fetch(u, names, changed, height)
        for record in shown:
            config = SrlConfig.from_value(record.value)
            if (
                record.name in self.trust
                and config.state is SrlState.ACTIVE
                and config.template.split("%", 1)[0] not in u.prefixes
            ):
                return False
        return True

    def _relist(self, u: Upstream, height: int, tip_time: int, tip_hash: str) -> None:
        """The whole view of ``u`` again: its change stamp first (what changes while
        it is listed is fetched next time), then every name listed, and only the
        names whose listing differs from the view shown."""
        store, stamp = "", -1
        if u.changes is not False:
            try:
                store, stamp, _ = u.changes_since(MAX_STAMP, height)
                u.changes = True
            except MethodNotFoundError:
                u.changes = False
            except UpstreamError:
                pass
            except RpcError as exc:
                if isinstance(exc, RpcTransportError):
                    raise
        specific = self._specific()
        # The few names shown directly (verifiers, toll-free records outside enum:), first:
        # the SRL templates of the verifiers this upstream shows are listed too.
        records: list[NameRecord] = []
        absent: list[str] = []
        for name, record in u.show(specific, height):
            (absent.append(name) if record is None else records.append(record))
        prefixes = set(self._srl_prefixes())
        for record in records:
            config = SrlConfig.from_value(record.value)
            if record.name in self.trust and config.state is SrlState.ACTIVE:
                prefixes.add(config.template.split("%", 1)[0])
        listed: dict[str, Listed] = {}
        for prefix in ["enum:", *sorted(prefixes)]:
            listed.update(u.list_names("^" + regex_escape(prefix), height))
        moved = abs(u.tip(self.network)[0] - height)  # blocks that came during the listing
        wanted, unlisted = self.views.differing(u.key, listed, moved)
        gone = [n for n in unlisted if n not in specific]
        self.dirty.update(gone, specific)
        self.views.put(u.key, records, [*gone, *absent])
        self._fetch(u, wanted, listed, height)
        u.height, u.tip_time, u.tip_hash, u.listed = height, tip_time, tip_hash, True
        u.seen_names = len(listed)
        u.store, u.stamp, u.prefixes = store, stamp, prefixes
        u.listed_at = time.time()
        u.relists += 1

    # -- accepting --------------------------------------------------------------------------

    def _seen(self, by_upstream: dict[str, NameRecord]) -> list[Seen]:
        out = []
        for u in self.upstreams:
            if not u.listed:
                continue  # never answered completely: it has no view to agree or differ
            record = by_upstream.get(u.key)
            if record is not None and (u.height > record.expires_at):
                record = None  # expired at that upstream's tip
            out.append(Seen(u.number, record))
        return out

    def _current(self, name: str) -> NameRecord | None:
        try:
            record = self.index.show(name)
        except NvsError:
            return None
        return None if record.deleted else record

    def _report(self, name: str, choice: Choice, notes: list[str]) -> None:
        """Keep the notes, and per upstream the set of records it disagrees on now
        (a record it agrees on again leaves the set): its ``disagreed`` count."""
        notes.extend(choice.notes)
        for u in self.upstreams:
            if u.number in choice.disagreeing:
                u.disagreeing.add(name)
            elif name in u.disagreeing:
                u.disagreeing.discard(name)
            else:
                continue
            u.disagreements = len(u.disagreeing)

    def _store(
        self,
        name: str,
        choice: Choice,
        changes: list[NameRecord],
        current: NameRecord | None = None,
        known: bool = False,
    ) -> None:
        """Queue the index change that makes ``name`` what ``choice`` accepted
        (``current``: the index's record, read here unless ``known``)."""
        if not known:
            current = self._current(name)
        wanted = choice.record
        if wanted is None:
            if current is not None:
                changes.append(replace(current, value="", expires_at=0, deleted=True))
            return
        if current is None or (current.value, current.address, current.expires_at) != (
            wanted.value,
            wanted.address,
            wanted.expires_at,
        ):
            changes.append(wanted)

    def _judge(self, resolver: Resolver, when: int) -> Callable[[NameRecord], BoundVerdict]:
        network = crypto.network_by_name(self.network)

        def judge(record: NameRecord) -> BoundVerdict:
            return judge_bound(
                record.name,
                record.address,
                record.value,
                self.trust,
                resolver.verifier,
                resolver.srl_value,
                self.cache,
                when,
                network,
                self.exact_srl,
            )

        return judge

    def _poll_names(self, u: Upstream, names: list[str]) -> None:
        """Only ``names`` of one upstream (``lookup --upstream``: one number's records)."""
        height, tip_time, _ = u.tip(self.network)
        found = list(u.show(names, height))
        self.dirty.update(names)
        self.views.put(
            u.key, [r for _, r in found if r is not None], [n for n, r in found if r is None]
        )
        u.height, u.tip_time, u.listed = height, tip_time, True

    def sync_names(self, names: list[str]) -> SyncResult:
        """One sync of ``names`` (and the trusted verifiers) only."""
        wanted = [*self.trust.verifiers, *names]
        return self.sync_once(lambda u: self._poll_names(u, wanted))

    def poll_all(self) -> SyncResult:
        """The gateway's update step: every upstream polled, the changes judged."""
        return self.sync_once()

    def sync_once(self, poll: Callable[[Upstream], None] | None = None) -> SyncResult:
        started = time.monotonic()
        answered = 0
        for u in self.upstreams:
            try:
                (poll or self._poll)(u)
            except (NvsError, OSError, ValueError) as exc:
                if isinstance(exc, RateLimitedError):
                    wait = min(exc.retry_after, MAX_BACKOFF)
                    u.retry_at = time.time() + wait
                    u.retry_note = f"it asked not to be asked for {wait:.0f} s (HTTP 429)"
                message = f"upstream {u.number} ({u.key}): {exc}"
                if message != u.error:
                    self.log(f"{message}; keeping its last view (height {u.height})")
                u.error = message
                continue
            u.error = ""
            u.last_success = time.time()
            answered += 1
        changed, self.dirty = self.dirty, set()
        notes: list[str] = []
        changes: list[NameRecord] = []
        verifiers_changed = False
        views_of = self.views.records
        for name in self.trust.verifiers:
            seen = self._seen(views_of([name]).get(name, {}))
            choice = choose_verifier(name, seen, self.trust.pin(name), self._current(name))
            self._report(name, choice, notes)
            before = len(changes)
            self._store(name, choice, changes)
            verifiers_changed |= len(changes) > before
        if changes:  # the accepted verifiers name the SRL records to merge
            self.index.put_records(changes)
            changes = []
        prefixes = self._srl_prefixes()
        srl_names = sorted(n for n in changed if n.startswith(tuple(prefixes)) and prefixes)
        srl_views = views_of(srl_names)
        for name in srl_names:
            choice = merge_srl(name, self._seen(srl_views.get(name, {})))
            self._report(name, choice, notes)
            self._store(name, choice, changes)
        if changes:
            self.index.put_records(changes)
        when = chain_time(int(time.time()), [u.tip_time for u in self.upstreams if u.height >= 0])
        resolver = Resolver(self.index, self.trust, self.tollfree, exact_srl=self.exact_srl)
        judge = self._judge(resolver, when)
        # A verifier's new key changes every verdict: then every name is judged again.
        judged = set(self.views.names("enum:")) if verifiers_changed else set()
        judged |= changed
        judged -= {*self.trust.verifiers, *srl_names}
        enum_names = sorted(judged)
        total = 0
        for i in range(0, len(enum_names), SHOW_BATCH * 10):
            part = enum_names[i : i + SHOW_BATCH * 10]
            views = views_of(part)
            times = self.views.accepted_times(part)
            accepted: dict[str, int] = {}
            batch: list[NameRecord] = []
            held = {n: r for n, r in self.index.show_many(part).items() if not r.deleted}
            for name in part:
                current = held.get(name)
                choice = accept_record(
                    name,
                    self._seen(views.get(name, {})),
                    self.quorum,
                    judge,
                    times.get(name),
                    current,
                    lazy=self.choices is None,
                )
                self._report(name, choice, notes)
                self._store(name, choice, batch, current, known=True)
                if self.choices is not None:
                    self.choices[name] = choice
                if choice.record is not None and choice.how is How.STRICT:
                    verdict = judge(choice.record)
                    if verdict.accepted_time is not None:
                        accepted[name] = verdict.accepted_time
            self.views.set_accepted(accepted)
            if batch:
                self.index.put_records(batch)
            total += len(batch)
        top = max((u.height for u in self.upstreams), default=0)
        if answered or self.index.height() == 0:
            self.index.set_tip(max(top, 0), when)
        for u in self.upstreams:
            if u.height >= 0:
                self.views.set_state(u.key, u.height, u.tip_time, u.last_success, u.disagreements)
            if u.listed:
                self.views.set_cursor(
                    u.key, u.store, u.stamp, bool(u.changes), u.listed_at, u.tip_hash
                )
        for note in notes[:NOTES_PER_SYNC]:
            self.log(f"disagreement: {note}")
        if len(notes) > NOTES_PER_SYNC:
            self.log(f"... and {len(notes) - NOTES_PER_SYNC} more disagreements this poll")
        stale = staleness(self.states())
        if stale != self._stale:  # said when it changes, not at every poll
            self._stale = stale
            self.log("staleness: " + ("; ".join(stale) if stale else "every upstream is current"))
        if not answered:
            errors = "; ".join(u.error for u in self.upstreams)
            raise UpstreamError(f"no upstream answered: {errors}")
        result = SyncResult(
            top, total + len(changes), self.index.count(), time.monotonic() - started
        )
        self.last_result = result
        return result

    # -- reporting ----------------------------------------------------------------------------

    def add_metrics(self, metrics: Metrics) -> None:
        """Per upstream (label ``upstream="N"``): height, tip time, seconds since its last
        success, records it disagreed on, and whether it is failing now."""

        def per(fn: Callable[[UpstreamState], float]) -> Callable[[], list[tuple[str, float]]]:
            return lambda: [(f'{{upstream="{s.number}"}}', fn(s)) for s in self.states()]

        def per_upstream(fn: Callable[[Upstream], float]) -> Callable[[], list[tuple[str, float]]]:
            return lambda: [(f'{{upstream="{u.number}"}}', fn(u)) for u in self.upstreams]

        now = time.time
        metrics.labelled_gauge(
            "upstream_height", "Tip height an upstream reported", per(lambda s: s.height)
        )
        metrics.labelled_gauge(
            "upstream_tip_time", "Tip block time an upstream reported", per(lambda s: s.tip_time)
        )
        metrics.labelled_gauge(
            "upstream_last_success_age_seconds",
            "Seconds since an upstream last answered a poll completely",
            per(lambda s: now() - s.last_success if s.last_success else -1),
        )
        metrics.labelled_gauge(
            "upstream_disagreements",
            "Records an upstream disagreed on",
            per(lambda s: s.disagreements),
        )
        metrics.labelled_gauge(
            "upstream_failing",
            "1 while an upstream's polls fail",
            per(lambda s: float(bool(s.error))),
        )
        metrics.labelled_gauge(
            "upstream_full_listings",
            "Full listings of an upstream since the start (the polls between fetch only "
            "what a record feed says changed)",
            per_upstream(lambda u: u.relists),
        )
        metrics.labelled_gauge(
            "upstream_blocks_behind",
            "Blocks an upstream is below the highest upstream",
            per(lambda s: max(u.height for u in self.upstreams) - s.height),
        )

    def status_text(self) -> str:
        """The upstreams part of ``status.enum``: ``upstreams 1 h120 ok 2s ago, 2 ...``."""
        parts = []
        now = time.time()
        for s in self.states():
            seen = f"{now - s.last_success:.0f}s ago" if s.last_success else "never"
            state = "failing" if s.error else "ok"
            parts.append(
                f"{s.number} height {s.height} tip {s.tip_time} {state} {seen} "
                f"disagreed {s.disagreements}"
            )
        return f"quorum {self.quorum}; upstreams " + ", ".join(parts)


def light_index(
    store_path: Path,
    urls: list[str],
    quorum: int | None,
    network: str,
    trust: TrustList,
    tollfree: tuple[TollFreeSource, ...],
    exact_srl: bool,
    timeout: float,
    log: Log,
    max_bytes: int = MAX_RESPONSE_BYTES,
    relist_every: float = DEFAULT_RELIST,
) -> tuple[Path, LightSync]:
    """The accepted index of a light gateway (``<store>/light-index/<network>/``) and its
    sync.  A first start syncs before serving (there is nothing true to serve yet); a
    restart serves the index (and its snapshots) at once and syncs in the update loop."""
    from enumer.conf import ConfigError

    if not urls:
        raise ConfigError("--upstream: give at least one upstream URL")
    wanted = len(urls) if quorum is None else quorum
    if not 1 <= wanted <= len(urls):
        raise ConfigError(f"--quorum {wanted}: must be between 1 and the {len(urls)} upstream(s)")
    try:
        upstreams = [Upstream.open(i + 1, url, timeout, max_bytes) for i, url in enumerate(urls)]
    except NvsError as exc:
        raise ConfigError(f"--upstream: {exc}") from None
    index_dir = store_path / LIGHT_INDEX_DIR / network
    index = Ledger(index_dir, network=network, mirror=True)
    try:
        views = Views(index_dir / VIEWS_FILE)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open {index_dir / VIEWS_FILE}: {exc}") from None
    sync = LightSync(upstreams, wanted, trust, tollfree, index, views, log, exact_srl)
    sync.relist_every = relist_every
    if index.height() == 0:
        try:
            result = sync.sync_once()
        except NvsError as exc:
            raise ConfigError(
                f"no upstream can be used yet and the light index is empty: {exc}"
            ) from None
        log(
            f"first sync: {result.names} names accepted from {len(urls)} upstream(s) at "
            f"height {result.height} ({result.seconds:.1f}s)"
        )
    return index_dir, sync


def light_lookup(
    where: Path,
    urls: list[str],
    quorum: int | None,
    network: str,
    trust: TrustList,
    tollfree: tuple[TollFreeSource, ...],
    digits: str,
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[Ledger, LightSync]:
    """``enumer lookup --upstream ...``: the records of one number (``enum:<digits>:0``
    up to the first index no upstream shows), its verifiers, their SRL records and the
    toll-free records, fetched from every upstream and accepted by the light rules into
    a throw-away index in ``where``."""
    from enumer.conf import ConfigError

    wanted = len(urls) if quorum is None else quorum
    if not 1 <= wanted <= len(urls):
        raise ConfigError(f"--quorum {wanted}: must be between 1 and the {len(urls)} upstream(s)")
    upstreams = [
        Upstream.open(i + 1, url, timeout, MAX_RESPONSE_BYTES) for i, url in enumerate(urls)
    ]
    index = Ledger(where, network=network, mirror=True)
    sync = LightSync(upstreams, wanted, trust, tollfree, index, Views(where / VIEWS_FILE), _quiet)
    sync.choices = {}
    names = [n for s in tollfree if (n := s.record_name)]
    qno = 0
    while qno < 100:  # emcdns stops at the first missing index
        batch = [f"enum:{digits}:{i}" for i in range(qno, qno + 10)]
        sync.sync_names([*names, *batch])
        present = [n for n in batch if sync.views.records([n])]
        names.extend(batch)
        if len(present) < len(batch):
            break
        qno += 10
    srl: list[str] = []
    for verifier in trust.verifiers:
        record = sync._current(verifier)
        config = SrlConfig.from_value(record.value if record else "")
        if config.state is SrlState.ACTIVE:
            srl.extend(config.record_name(n) for n in names if n.startswith("enum:"))
    if srl:
        sync.sync_names([*names, *dict.fromkeys(srl)])
    return index, sync


def _quiet(message: str) -> None:
    """``lookup`` reports through its own output, not log lines."""
