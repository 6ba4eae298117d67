"""The gateway: answer tables per zone mode, the view the server reads, the update loop.

The server (:mod:`enumer.dns.server`) only ever sees a :class:`GatewayView`
of pre-built tables; :class:`Gateway` builds them from the store, keeps them
current (a poll of the chain height several times a second for the embedded
store, a sync of the node's names into a local mirror index otherwise) and
swaps in a new view when the configuration is reloaded (SIGHUP).  The
process around it (options, sockets, signals) is ``enumer serve`` in
:mod:`enumer.dns.command`.
"""

from __future__ import annotations

import re
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from enumer import __version__
from enumer.conf import ConfigError
from enumer.dns.config import GatewayConfig
from enumer.dns.dnssec import DEFAULT_REFRESH, DEFAULT_VALIDITY, KeySet
from enumer.dns.mirror import ChainMirror, SyncResult
from enumer.dns.signed import SignedZone, signed_path
from enumer.dns.table import AnswerTable
from enumer.dns.wire import GatewayView
from enumer.emercoin import CHAIN_TO_NETWORK
from enumer.nvs import NvsError
from enumer.nvs.ledger import LEDGER_FILE, Ledger
from enumer.nvs.rpc import RpcClient, RpcTransportError
from enumer.resolver import Resolver
from enumer.trust import SignatureCache

#: How often the embedded store is polled for new blocks (a change is served within 1 s).
EMBEDDED_POLL_SECONDS = 0.25
#: How often a changed table is written to its snapshot.
SNAPSHOT_EVERY_SECONDS = 300.0
#: While updates keep failing, how often the log says so again (with the staleness).
FAILURE_REPORT_SECONDS = 60.0


def log(message: str) -> None:
    """One line per event on stderr, with a UTC timestamp."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sys.stderr.write(f"{stamp} enumer: {message}\n")
    sys.stderr.flush()


#: How often a build's progress is logged when stderr is not a terminal.
PROGRESS_LOG_SECONDS = 5.0

ProgressCallback = Callable[[str, int, int], None]


@contextmanager
def build_progress(enabled: bool) -> Iterator[ProgressCallback | None]:
    """How a full build shows its progress (``what, done, total``).

    On a terminal, a bar with the rate and time left; in a log (stderr not a
    terminal), a line every few seconds and one at the end, so a service
    manager's journal is not flooded.
    """
    if not enabled:
        yield None
        return
    if sys.stderr.isatty():
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def draw(what: str, done: int, total: int) -> None:
                if what not in tasks:
                    tasks[what] = bar.add_task(what, total=total or None)
                bar.update(tasks[what], completed=done, total=total or None)

            yield draw
        return
    last = [time.monotonic()]

    def write(what: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_LOG_SECONDS and done != total:
            return
        last[0] = now
        share = f"{done}/{total} ({100 * done // max(total, 1)}%)" if total else str(done)
        log(f"{what}: {share}")

    yield write


class Gateway:
    """Tables per zone mode, the view the server reads, and the loop that updates them."""

    def __init__(
        self,
        store_path: Path,
        make_config: Callable[[], GatewayConfig],
        expand_regexp: bool,
        poll: float,
        progress: bool,
        sync: Callable[[], SyncResult] | None = None,
        report_every: float = FAILURE_REPORT_SECONDS,
        dnssec: KeySet | None = None,
        dnssec_times: tuple[int, int] = (DEFAULT_VALIDITY, DEFAULT_REFRESH),
        extra_status: Callable[[], str] | None = None,
        signature_cache: SignatureCache | None = None,
    ) -> None:
        #: Signature results already known (a light gateway's, made while accepting
        #: the records): the first build checks nothing twice.
        self.signature_cache = signature_cache
        self.store_path = store_path
        self.dnssec = dnssec
        self.dnssec_times = dnssec_times
        #: More of the status text (a light gateway's upstreams), before ``error:``.
        self.extra_status = extra_status
        self.report_every = report_every
        #: time.monotonic() of the first failed update of the current outage, else None.
        self.failing_since: float | None = None
        self._reported_at = 0.0
        self.sync = sync
        self.make_config = make_config
        self.expand_regexp = expand_regexp
        self.poll = poll
        self.progress = progress
        self.config = make_config()
        self.tables: dict[bool, AnswerTable] = {}
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._saved: dict[bool, int] = {}
        self.last_error = ""
        self.view = self._make_view()
        self.last_sync = time.time()  # the tables were just compiled or loaded

    # -- building -----------------------------------------------------------------

    def _snapshot_path(self, table: AnswerTable) -> Path:
        return self.store_path / f"gateway-{table.fingerprint()}.snapshot"

    def _table(self, verified: bool) -> AnswerTable:
        store = Ledger(self.store_path, create=False)
        resolver = Resolver(
            store,
            self.config.trust,
            self.config.tollfree,
            exact_srl=self.config.exact_srl,
            require_signature=verified,
            policy=self.config.signatures,
        )
        if self.signature_cache is not None:
            resolver.cache = self.signature_cache
        table = AnswerTable(resolver, self.expand_regexp)
        if self.dnssec is not None and self.signed_label() in {
            z.label.lower() for z in self.config.zones if z.verified == verified
        }:
            validity, refresh = self.dnssec_times
            table.dnssec = SignedZone(self.dnssec, validity, refresh)
        path = self._snapshot_path(table)
        table.path = path  # the table file is the snapshot
        if table.load(path):
            touched = table.refresh()
            log(
                f"loaded {len(table)} answers from {path.name} (height {table.synced_height}, "
                f"{len(touched)} numbers updated since)"
            )
        else:
            if table.refused != "no snapshot":
                log(f"snapshot {path.name} refused ({table.refused}): building the table")
            with build_progress(self.progress) as show:
                stats = table.build(progress=show)
            log(
                f"compiled {stats.served} served numbers from {stats.records} records "
                f"({stats.signature_checks} signatures checked) in {stats.seconds:.1f}s"
            )
            self._save(verified, table)
        for problem in resolver.tollfree.problems:
            log(f"toll-free: {problem}")
        if table.dnssec is None and table.answers.owns:
            signed_path(path).unlink(missing_ok=True)  # kept by a start with keys: stale
        if table.dnssec is not None:
            signed = table.dnssec
            until = time.strftime("%Y-%m-%d %H:%M", time.gmtime(signed.expiry()))
            keys = f"keys {signed.key_text()}; valid until {until} UTC"
            if table.stats.from_snapshot and not signed.not_reused:
                log(
                    f"kept the signatures of {len(signed)} answers of {signed.keyset.zone} ({keys})"
                )
            else:
                if signed.not_reused:
                    log(f"signatures beside {path.name} not reused ({signed.not_reused})")
                log(
                    f"signed {len(signed)} answers of {signed.keyset.zone} in "
                    f"{signed.seconds:.1f}s ({keys})"
                )
        return table

    def signed_label(self) -> str | None:
        """The served zone label the DNSSEC keys sign (``enum`` of ``enum.enumer.org.``)."""
        return self.dnssec.zone.split(".", 1)[0] if self.dnssec is not None else None

    def signed_zones(self) -> list[SignedZone]:
        return [t.dnssec for t in self.tables.values() if t.dnssec is not None]

    def _make_view(self) -> GatewayView:
        zones: dict[str, tuple[Any, Any]] = {}
        for zone in self.config.zones:
            if zone.verified not in self.tables:
                self.tables[zone.verified] = self._table(zone.verified)
            zones[zone.label] = (zone, self.tables[zone.verified])
        return GatewayView(zones=zones, suffixes=self.config.suffixes, status=self.status)

    def status(self) -> str:
        """The ``status.enumer`` TXT: what ``enumer doctor`` compares with the chain.

        ``error:`` comes last, so that a reader can split the rest at ``; ``.
        """
        table = next(iter(self.tables.values()), None)
        height = table.synced_height if table else -1
        served = sum(len(t) for t in self.tables.values())
        age = time.time() - self.last_sync
        text = (
            f"enumer {__version__}; height {height}; served numbers {served}; "
            f"synced {age:.0f}s ago; zones {zones_text(self.config)}; "
            f"trust {self.config.trust.to_text()}"
        )
        for signed in self.signed_zones():
            expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(signed.expiry()))
            text += (
                f"; dnssec {signed.keyset.zone} keys {signed.key_text()}; "
                f"signatures expire {expiry}"
            )
        if self.extra_status is not None:
            text += "; " + self.extra_status()
        return text + (f"; error: {self.last_error}" if self.last_error else "")

    def index_age(self) -> float:
        return time.time() - self.last_sync

    def failing_seconds(self) -> float:
        """How long updates have been failing (0 while they work), for the metrics."""
        since = self.failing_since
        return 0.0 if since is None else time.monotonic() - since

    def _failed(self, exc: Exception) -> None:
        """Log an update failure: its start and each new reason once, and while it
        lasts a reminder every :attr:`report_every` seconds with how stale the
        served data is, so that a gateway stuck on refused credentials is never quiet."""
        now = time.monotonic()
        message = str(exc)
        if self.failing_since is None:
            self.failing_since = now
            log(f"update failed, serving the last good data: {message}")
            self._reported_at = now
        elif message != self.last_error:
            log(f"updates still failing, now: {message}")
            self._reported_at = now
        elif now - self._reported_at >= self.report_every:
            table = next(iter(self.tables.values()), None)
            height = table.synced_height if table else -1
            log(
                f"updates failing for {now - self.failing_since:.0f}s; serving the data of "
                f"height {height}, synced {self.index_age():.0f}s ago: {message}"
            )
            self._reported_at = now
        self.last_error = message

    def _recovered(self) -> None:
        if self.failing_since is not None:
            lasted = time.monotonic() - self.failing_since
            log(f"updates work again, after failing for {lasted:.0f}s")
            self.failing_since = None

    # -- updating -----------------------------------------------------------------

    def _save(self, verified: bool, table: AnswerTable) -> None:
        try:
            table.save(self._snapshot_path(table))
            self._saved[verified] = table.generation
        except (OSError, sqlite3.Error) as exc:
            log(f"cannot write snapshot: {exc}")

    def update_once(self) -> None:
        if self.sync is not None:
            result = self.sync()
            if result.changed:
                log(
                    f"node height {result.height}: {result.changed} name(s) changed "
                    f"({result.seconds:.1f}s)"
                )
        for table in self.tables.values():
            signed_at = table.dnssec.signed_at if table.dnssec is not None else 0.0
            touched = table.refresh()
            if touched:
                what = "all numbers" if "*" in touched else f"{len(touched)} number(s)"
                log(f"height {table.synced_height}: recompiled {what}")
            signed = table.dnssec
            if signed is not None and signed.signed_at != signed_at:
                log(
                    f"signed {len(signed)} answers of {signed.keyset.zone} again in "
                    f"{signed.seconds:.1f}s (keys {signed.key_text()})"
                )
            if signed is not None and signed.keyset.problem:
                log(
                    f"dnssec keys not re-read, still signing with the old ones: "
                    f"{signed.keyset.problem}"
                )
                signed.keyset.problem = ""
        self.last_sync = time.time()
        self.last_error = ""
        self._recovered()

    def run_updates(self) -> None:
        """The update loop: poll, recompile, snapshot; keep serving on errors."""
        last_snapshot = time.monotonic()
        while not self._stop.wait(self.poll):
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            try:
                self.update_once()
            except Exception as exc:  # keep serving the last good answers
                self._failed(exc)
            self.keep_signatures(fresh_only=True)
            if time.monotonic() - last_snapshot > SNAPSHOT_EVERY_SECONDS:
                last_snapshot = time.monotonic()
                self.save_all()

    def save_all(self) -> None:
        """The snapshots (every few minutes and at the end): the tables that changed,
        and the signatures of signed tables, kept beside them for the next start."""
        for verified, table in self.tables.items():
            if self._saved.get(verified) != table.generation:
                self._save(verified, table)
        self.keep_signatures()

    def keep_signatures(self, fresh_only: bool = False) -> None:
        """Keep the signatures of signed tables beside their snapshots (``fresh_only``:
        only those of a signing not yet kept, copied once on the update thread right
        after it, so that a crash soon after a start does not cost a signing)."""
        for table in self.tables.values():
            signed = table.dnssec
            if signed is None or (fresh_only and signed.kept):
                continue
            try:
                table.save_signed()
            except OSError as exc:
                log(f"cannot keep the signatures: {exc}")

    def reload(self) -> None:
        """SIGHUP: re-read the configuration; rebuild tables whose inputs changed."""
        try:
            config = self.make_config()
        except ConfigError as exc:
            log(f"reload refused, keeping the old configuration: {exc}")
            return
        inputs = (config.trust, config.tollfree, config.exact_srl, config.signatures)
        old = self.config
        if inputs != (old.trust, old.tollfree, old.exact_srl, old.signatures):
            self.tables = {}
        self.config = config
        self.view = self._make_view()
        log("configuration reloaded")

    def request_reload(self) -> None:
        self._reload.set()

    def stop(self) -> None:
        self._stop.set()


def zones_text(config: GatewayConfig) -> str:
    """The served zones as ``emcdnsallowed`` writes them: ``$enum|~test``."""
    return "|".join(("$" if z.verified else "~") + z.label for z in config.zones)


#: Where each mirrored node's index lives: ``<store>/node-index/<chain>-<node id>/``.
NODE_INDEX_DIR = "node-index"
#: In each index directory: the endpoint (``host:port``) of the node last mirrored there.
ENDPOINT_FILE = "endpoint"


def node_identity(client: RpcClient) -> str:
    """What tells this node's chain from another's: its genesis block hash (the first 16
    hex digits), or its endpoint where the node does not answer ``getblockhash 0``.

    Mainnet, testnet and regtest each have their own genesis block, so one store can
    mirror nodes of every chain side by side.  A transport failure is raised: the
    node is unreachable, not anonymous.
    """
    try:
        genesis = client.call("getblockhash", 0)
    except RpcTransportError:
        raise
    except NvsError:
        genesis = None
    if isinstance(genesis, str) and re.fullmatch(r"[0-9a-fA-F]{16,}", genesis):
        return genesis[:16].lower()
    return re.sub(r"[^0-9A-Za-z.]+", "-", client.config.endpoint).strip("-")


def _last_index_of(root: Path, endpoint: str) -> Path | None:
    """The index most recently written for the node at ``endpoint``, if any."""
    found = []
    for directory in root.glob("*/"):
        try:
            if (directory / ENDPOINT_FILE).read_text().strip() != endpoint:
                continue
            found.append(((directory / LEDGER_FILE).stat().st_mtime, directory))
        except OSError:
            continue
    return max(found)[1] if found else None


def node_index(
    client: RpcClient, store_path: Path, config: GatewayConfig
) -> tuple[Path, Callable[[], SyncResult], float]:
    """The local index of a node's names, synced once.

    Each node has its own index, ``<store>/node-index/<chain>-<node id>`` (see
    :func:`node_identity`), so switching the gateway between a mainnet, a testnet
    and a regtest node needs no clean-up and never mixes their names.

    A node that cannot be reached is not fatal when an index from an earlier
    run against it exists: the gateway serves it and says how stale it is.  With
    no index and no node there is nothing true to serve, so that is an error.
    """
    root = store_path / NODE_INDEX_DIR
    endpoint = client.config.endpoint
    try:
        chain = str(client.getblockchaininfo().get("chain", "main"))
        network: str | None = CHAIN_TO_NETWORK.get(chain, chain)
        index_dir = root / f"{network}-{node_identity(client)}"
    except NvsError as exc:
        last = _last_index_of(root, endpoint)
        if last is None:
            raise ConfigError(
                f"cannot reach the Emercoin node and there is no local index "
                f"of it yet in {root}: {exc}"
            ) from None
        index_dir, network = last, None
    index = Ledger(index_dir, network=network, mirror=True)
    try:
        (index_dir / ENDPOINT_FILE).write_text(endpoint + "\n")
    except OSError as exc:
        log(f"cannot note the node's endpoint in {index_dir}: {exc}")
    mirror = ChainMirror(client, index, config.trust, config.tollfree)
    try:
        result = mirror.sync_once()
        log(
            f"synced {result.names} names from the node at height {result.height} "
            f"({result.changed} changed, {result.seconds:.1f}s)"
        )
    except NvsError as exc:
        if index.height() == 0:
            raise ConfigError(
                f"the Emercoin node cannot be used yet and the local index is empty: {exc}"
            ) from None
        log(f"node unavailable, serving the local index from height {index.height()}: {exc}")
    # When the index was last in step with the node, as the staleness to report.
    return index_dir, mirror.sync_once, index.synced_at() or 0.0
