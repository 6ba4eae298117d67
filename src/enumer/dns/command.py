"""``enumer serve``: the gateway process — configuration, answer tables, update loop, signals.

The server (:mod:`enumer.dns.server`) only ever sees a :class:`GatewayView`
of pre-built tables; this module builds them from the store, keeps them
current (a poll of the chain height several times a second for the embedded
store) and swaps in a new view when the configuration is reloaded (SIGHUP).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import click
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
from enumer.conf import ConfigError, parse_bind
from enumer.dns.config import GatewayConfig, read_conf
from enumer.dns.metrics import Metrics, serve_metrics
from enumer.dns.mirror import CHAINS, ChainMirror, SyncResult
from enumer.dns.primary import Primary, TransferSettings, transfer_options
from enumer.dns.ratelimit import RateLimitConfig
from enumer.dns.server import GatewayServer, ServerConfig
from enumer.dns.table import AnswerTable
from enumer.dns.wire import GatewayView
from enumer.nvs import NvsError
from enumer.nvs.ledger import LEDGER_FILE, Ledger
from enumer.nvs.rpc import RpcClient, RpcConfig
from enumer.resolver import Resolver

#: How often the embedded store is polled for new blocks (a change is served within 1 s).
EMBEDDED_POLL_SECONDS = 0.25
#: How often a changed table is written to its snapshot.
SNAPSHOT_EVERY_SECONDS = 300.0


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
    ) -> None:
        self.store_path = store_path
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
        )
        table = AnswerTable(resolver, self.expand_regexp)
        path = self._snapshot_path(table)
        if table.load(path):
            touched = table.refresh()
            log(
                f"loaded {len(table)} answers from {path.name} (height {table.synced_height}, "
                f"{len(touched)} numbers updated since)"
            )
        else:
            with build_progress(self.progress) as show:
                stats = table.build(progress=show)
            log(
                f"compiled {stats.served} served numbers from {stats.records} records "
                f"({stats.signature_checks} signatures checked) in {stats.seconds:.1f}s"
            )
            self._save(verified, table)
        for problem in resolver.tollfree.problems:
            log(f"toll-free: {problem}")
        return table

    def _make_view(self) -> GatewayView:
        zones: dict[str, tuple[Any, Any]] = {}
        for zone in self.config.zones:
            if zone.verified not in self.tables:
                self.tables[zone.verified] = self._table(zone.verified)
            zones[zone.label] = (zone, self.tables[zone.verified])
        return GatewayView(zones=zones, suffixes=self.config.suffixes, status=self.status)

    def status(self) -> str:
        table = next(iter(self.tables.values()), None)
        height = table.synced_height if table else -1
        served = sum(len(t) for t in self.tables.values())
        age = time.time() - self.last_sync
        text = (
            f"enumer {__version__}; height {height}; served numbers {served}; synced {age:.0f}s ago"
        )
        return text + (f"; error: {self.last_error}" if self.last_error else "")

    def index_age(self) -> float:
        return time.time() - self.last_sync

    # -- updating -----------------------------------------------------------------

    def _save(self, verified: bool, table: AnswerTable) -> None:
        try:
            table.save(self._snapshot_path(table))
            self._saved[verified] = table.generation
        except OSError as exc:
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
            touched = table.refresh()
            if touched:
                what = "all numbers" if "*" in touched else f"{len(touched)} number(s)"
                log(f"height {table.synced_height}: recompiled {what}")
        self.last_sync = time.time()
        self.last_error = ""

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
                if str(exc) != self.last_error:
                    log(f"update failed, serving the last good data: {exc}")
                self.last_error = str(exc)
            if time.monotonic() - last_snapshot > SNAPSHOT_EVERY_SECONDS:
                last_snapshot = time.monotonic()
                self.save_all()

    def save_all(self) -> None:
        for verified, table in self.tables.items():
            if self._saved.get(verified) != table.generation:
                self._save(verified, table)

    def reload(self) -> None:
        """SIGHUP: re-read the configuration; rebuild tables whose inputs changed."""
        try:
            config = self.make_config()
        except ConfigError as exc:
            log(f"reload refused, keeping the old configuration: {exc}")
            return
        inputs = (config.trust, config.tollfree, config.exact_srl)
        if inputs != (self.config.trust, self.config.tollfree, self.config.exact_srl):
            self.tables = {}
        self.config = config
        self.view = self._make_view()
        log("configuration reloaded")

    def request_reload(self) -> None:
        self._reload.set()

    def stop(self) -> None:
        self._stop.set()


def _rate_limit(enabled: bool, qps: float) -> RateLimitConfig:
    return RateLimitConfig(enabled=enabled, qps_per_client=qps, burst=2 * qps)


def _node_index(
    client: RpcClient, store_path: Path, config: GatewayConfig
) -> tuple[Path, Callable[[], SyncResult], float]:
    """The local index of a node's names (``<store>/node-index``), synced once.

    A node that cannot be reached is not fatal when an index from an earlier
    run exists: the gateway serves it and says how stale it is.  With no index
    and no node there is nothing true to serve, so that is an error.
    """
    index_dir = store_path / "node-index"
    have_index = (index_dir / LEDGER_FILE).exists()
    try:
        chain = str(client.getblockchaininfo().get("chain", "main"))
        network: str | None = CHAINS.get(chain, chain)
    except NvsError as exc:
        if not have_index:
            raise ConfigError(
                f"cannot reach the Emercoin node and there is no local index "
                f"yet at {index_dir}: {exc}"
            ) from None
        network = None
    index = Ledger(index_dir, network=network, mirror=True)
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


def register(cli: click.Group) -> None:
    """Add ``serve`` to the ``enumer`` command group."""

    @cli.command()
    @click.option(
        "--nvs",
        default=None,
        help="Serve the chain of this Emercoin node (JSON-RPC URL, "
        "http://user:pass@127.0.0.1:6662/).",
    )
    @click.option(
        "--conf",
        "conf",
        type=click.Path(path_type=Path),
        default=None,
        help="Read emcdns*/enum* keys from this emercoin.conf; without --store it also "
        "names the node (rpc* keys or the .cookie file).",
    )
    @click.option(
        "--poll",
        type=click.FloatRange(0.1, 3600),
        default=10.0,
        show_default=True,
        help="Seconds between two polls of the node.",
    )
    @click.option(
        "--bind",
        "binds",
        multiple=True,
        help="Address to listen on, IPv4 or IPv6 (repeatable; default 127.0.0.1).",
    )
    @click.option(
        "--port",
        type=click.IntRange(0, 65535),
        default=None,
        help="Port (default 5335, emcdnsport).",
    )
    @click.option(
        "--exact-srl",
        is_flag=True,
        help="Revoke only names listed on an SRL line of their own (the reference "
        "matches substrings: listing enum:X:10 also revokes enum:X:1).",
    )
    @click.option(
        "--allowed",
        default=None,
        help="Served zones, e.g. '$enum|~test' (emcdnsallowed; default $enum).",
    )
    @click.option(
        "--suffix",
        default=None,
        help="Gateway suffix: '.enumer.org' or '.e164.org|.enum' (emcdnssuffix).",
    )
    @click.option(
        "--trust",
        default=None,
        help="Trusted verifiers (enumtrust; default ver:enum or the store's setting).",
    )
    @click.option("--tollfree", default=None, help="Toll-free sources (enumtollfree).")
    @click.option("--metrics", default=None, help="Prometheus endpoint ADDR:PORT.")
    @click.option(
        "--expand-regexp",
        is_flag=True,
        help="Answer with the number baked into each regexp (no back-references).",
    )
    @click.option(
        "--ratelimit/--no-ratelimit",
        default=True,
        show_default=True,
        help="Per-client rate and response-rate limits (loopback exempt).",
    )
    @click.option(
        "--qps",
        type=float,
        default=100.0,
        show_default=True,
        help="Queries per second allowed per client when rate limiting.",
    )
    @click.option(
        "--udp-workers",
        type=click.IntRange(1, 16),
        default=1,
        show_default=True,
        help="UDP serving: 1 is a thread of this process, N > 1 forks N worker processes.",
    )
    @click.option("--query-log", is_flag=True, help="Log every query (emcdnsverbose).")
    @click.option("--quiet", is_flag=True, help="No progress lines while compiling.")
    @transfer_options
    @click.pass_obj
    def serve(
        obj: Any,
        /,
        nvs: str | None,
        conf: Path | None,
        poll: float,
        exact_srl: bool,
        binds: tuple[str, ...],
        port: int | None,
        allowed: str | None,
        suffix: str | None,
        trust: str | None,
        tollfree: str | None,
        metrics: str | None,
        expand_regexp: bool,
        ratelimit: bool,
        qps: float,
        udp_workers: int,
        query_log: bool,
        quiet: bool,
        **zone_options: Any,
    ) -> None:
        """Run the ENUM DNS gateway on UDP and TCP (default 127.0.0.1:5335)."""
        transfers = TransferSettings.pop(zone_options)
        store_path: Path = obj.store_path
        nvs = nvs if nvs is not None else obj.nvs
        conf = conf if conf is not None else obj.conf
        use_node = nvs is not None or (conf is not None and not obj.store_explicit)
        saved: dict[str, str] = {}
        if not use_node:
            if not (store_path / LEDGER_FILE).exists():
                raise ConfigError(
                    f"no ENUMER store at {store_path} (create one with "
                    "'enumer demo seed' or 'enumer name new ...')"
                )
            with Ledger(store_path, create=False) as store:
                saved = {
                    k: v
                    for k in ("enumtrust", "enumtollfree")
                    if (v := store.setting(k)) is not None
                }

        def make_config() -> GatewayConfig:
            conf_values = read_conf(conf) if conf is not None else None
            built = GatewayConfig.build(
                conf_values,
                binds=binds,
                port=port,
                allowed=allowed,
                suffix=suffix,
                trust=trust,
                tollfree=tollfree,
                store_defaults=saved,
            )
            built.exact_srl = exact_srl
            return built

        config = make_config()
        metrics_addr = parse_bind(metrics, 9153) if metrics else None
        for skipped in config.skipped_zones:
            log(f"zone {skipped} is an EmerDNS zone: not served by ENUMER")
        sync = None
        if use_node:
            rpc = RpcConfig.from_url(nvs) if nvs is not None else RpcConfig.from_conf(conf or "")
            store_path, sync, synced_at = _node_index(
                RpcClient(rpc, timeout=30.0), store_path, config
            )
        gateway = Gateway(
            store_path,
            make_config,
            expand_regexp,
            poll if use_node else EMBEDDED_POLL_SECONDS,
            not quiet,
            sync,
        )
        if use_node:
            gateway.last_sync = synced_at
        counters = Metrics()
        counters.gauge(
            "answer_table_numbers",
            "Numbers with a compiled answer",
            lambda: sum(len(t) for t in gateway.tables.values()),
        )
        counters.gauge(
            "index_age_seconds", "Seconds since the last successful sync", gateway.index_age
        )
        counters.gauge(
            "chain_height",
            "Chain height of the compiled answers",
            lambda: max((t.synced_height for t in gateway.tables.values()), default=-1),
        )
        primary = None
        if transfers.allow or transfers.targets:
            primary = Primary(
                transfers,
                lambda: gateway.tables,
                lambda: (gateway.config.zones, gateway.config.suffixes),
                store_path,
                expand_regexp,
                log,
                lambda: gateway.view,
            )
            primary.start()
            primary.add_metrics(counters)
        server = GatewayServer(
            lambda: gateway.view,
            ServerConfig(
                binds=config.binds,
                udp_workers=udp_workers,
                ratelimit=_rate_limit(ratelimit, qps),
                query_log=query_log or config.query_log,
                transfer=primary.transfer if primary else None,
                signed=primary.signed if primary and transfers.keys else None,
            ),
            counters,
            log,
        )
        server.start()
        if primary:
            primary.serving()
        stop_metrics = serve_metrics(*metrics_addr, counters) if metrics_addr else None
        done = threading.Event()

        def on_term(signum: int, frame: FrameType | None) -> None:
            done.set()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            gateway.request_reload()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        signal.signal(signal.SIGHUP, on_hup)
        updater = threading.Thread(target=gateway.run_updates, name="updates", daemon=True)
        updater.start()
        where = ", ".join(f"{proto} {host}:{p}" for proto, host, p in server.bound)
        zones = "|".join(("$" if z.verified else "~") + z.label for z in config.zones)
        log(
            f"ready: serving {gateway.status()} on {where}; zones {zones}; "
            f"trust {config.trust.to_text()}"
        )
        try:
            while not done.wait(0.5):
                pass
        finally:
            log("stopping")
            gateway.stop()
            updater.join(timeout=10)
            if primary:
                primary.stop()
            server.stop()
            if stop_metrics:
                stop_metrics()
            gateway.save_all()
            log("stopped")
