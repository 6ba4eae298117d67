"""``enumer serve``: the gateway process — options, the node or store, sockets, signals.

What it serves and how it stays current is :class:`enumer.dns.gateway.Gateway`.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import click

from enumer.bound import POLICY_HELP, POLICY_NAMES, Policy
from enumer.cliutil import Context, pass_ctx
from enumer.conf import ConfigError, parse_bind
from enumer.dns.config import GatewayConfig, read_conf
from enumer.dns.dnssec import DEFAULT_REFRESH, DEFAULT_VALIDITY, DnssecError, KeySet
from enumer.dns.feed import DEFAULT_FEED_RATE, serve_feed
from enumer.dns.gateway import (
    EMBEDDED_POLL_SECONDS,
    FAILURE_REPORT_SECONDS,
    Gateway,
    log,
    node_index,
)
from enumer.dns.light import DEFAULT_RELIST, DEFAULT_TIMEOUT, MAX_RESPONSE_BYTES, light_index
from enumer.dns.metrics import Metrics, serve_metrics
from enumer.dns.primary import Primary, TransferSettings, transfer_options
from enumer.dns.ratelimit import DEFAULT_EXEMPT, RateLimitConfig
from enumer.dns.server import GatewayServer, ServerConfig
from enumer.dns.signed import SignedZone
from enumer.emercoin import CHAIN_TO_NETWORK, DEFAULT_RPC_PORT
from enumer.nvs.ledger import LEDGER_FILE, Ledger
from enumer.nvs.rpc import RpcClient, RpcConfig


def _rate_limit(enabled: bool, qps: float, exempt: tuple[str, ...]) -> RateLimitConfig:
    """The limiter of ``--ratelimit``/``--qps``/``--ratelimit-exempt`` (a value may hold
    several networks separated by commas or blanks; ``none`` exempts no one)."""
    networks = DEFAULT_EXEMPT
    if exempt:
        words = [w for value in exempt for w in value.replace(",", " ").split()]
        networks = tuple(w for w in words if w.lower() != "none")
    try:
        return RateLimitConfig(enabled=enabled, qps_per_client=qps, burst=2 * qps, exempt=networks)
    except ValueError as exc:
        raise ConfigError(f"--ratelimit-exempt: {exc}") from None


@click.command("serve")
@click.option(
    "--nvs",
    default=None,
    help="Serve the chain of this Emercoin node (JSON-RPC URL, http://user:pass@127.0.0.1:6662/).",
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
    "--signatures",
    type=click.Choice(POLICY_NAMES),
    default=Policy.COMPAT.value,
    show_default=True,
    help=POLICY_HELP,
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
    help="Per-client rate and response-rate limits (see --ratelimit-exempt).",
)
@click.option(
    "--ratelimit-exempt",
    "ratelimit_exempt",
    multiple=True,
    metavar="CIDR",
    help="Networks never rate limited nor limited per client on TCP (repeatable or "
    "comma-separated; 'none' for no network; default loopback, 127.0.0.0/8 and ::1).",
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
@click.option(
    "--failure-report-every",
    "report_every",
    type=click.FloatRange(0.1, 86400),
    default=FAILURE_REPORT_SECONDS,
    hidden=True,
    help="Seconds between two log lines while updates keep failing (tests shorten it).",
)
@click.option(
    "--dnssec-keys",
    "dnssec_keys",
    type=click.Path(path_type=Path),
    default=None,
    help="Sign the zone of the K<zone>+<alg>+<id> key files in this directory "
    "(enumer dnssec keygen; docs/dnssec.md).",
)
@click.option(
    "--dnssec-validity",
    type=click.IntRange(60, 90 * 86400),
    default=DEFAULT_VALIDITY,
    show_default=True,
    help="Seconds a signature is valid; all are renewed after --dnssec-refresh.",
)
@click.option(
    "--dnssec-refresh",
    type=click.IntRange(10, 90 * 86400),
    default=DEFAULT_REFRESH,
    show_default=True,
    help="Seconds after which every signature is made again (less than the validity).",
)
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    metavar="URL",
    help="Light mode, no node: read the records from this Emercoin node or ENUMER record "
    "feed (JSON-RPC URL; repeatable). None is trusted: see docs/light-gateway.md.",
)
@click.option(
    "--quorum",
    type=click.IntRange(1, 64),
    default=None,
    help="Light mode: upstreams that must return the same value and owner before a record "
    "valid only by SIG= is served (default: all of them).",
)
@click.option(
    "--upstream-timeout",
    type=click.FloatRange(0.5, 600),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Light mode: seconds one answer of an upstream may take in all.",
)
@click.option(
    "--upstream-chain",
    type=click.Choice(["main", "test", "regtest"]),
    default="main",
    show_default=True,
    help="Light mode: the chain the upstreams must be on.",
)
@click.option(
    "--upstream-relist",
    type=click.FloatRange(1, 7 * 86400),
    default=DEFAULT_RELIST,
    show_default=True,
    help="Light mode: seconds between two full listings of a record feed (polls in "
    "between fetch only its changes; an Emercoin node is listed at each block).",
)
@click.option(
    "--upstream-max-bytes",
    type=click.IntRange(1024, 1 << 31),
    default=MAX_RESPONSE_BYTES,
    hidden=True,
    help="Light mode: the largest answer read from an upstream (tests lower it).",
)
@click.option(
    "--feed",
    default=None,
    metavar="ADDR:PORT",
    help="Publish the served records read-only as a record feed (the node's JSON-RPC "
    "subset) on ADDR:PORT (default port 6662), for light gateways.",
)
@click.option("--feed-user", default=None, help="Feed: basic-auth user (with --feed-password).")
@click.option(
    "--feed-password",
    default=None,
    envvar="ENUMER_FEED_PASSWORD",
    help="Feed: basic-auth password (or ENUMER_FEED_PASSWORD); none: an open feed.",
)
@click.option(
    "--feed-rate",
    type=click.FloatRange(1, 1_000_000),
    default=DEFAULT_FEED_RATE,
    show_default=True,
    help="Feed: requests per second per client address (twice as many in a burst).",
)
@transfer_options
@pass_ctx
def serve(
    obj: Context,
    /,
    nvs: str | None,
    conf: Path | None,
    poll: float,
    exact_srl: bool,
    signatures: str,
    binds: tuple[str, ...],
    port: int | None,
    allowed: str | None,
    suffix: str | None,
    trust: str | None,
    tollfree: str | None,
    metrics: str | None,
    expand_regexp: bool,
    ratelimit: bool,
    ratelimit_exempt: tuple[str, ...],
    qps: float,
    udp_workers: int,
    query_log: bool,
    quiet: bool,
    report_every: float,
    dnssec_keys: Path | None,
    dnssec_validity: int,
    dnssec_refresh: int,
    upstreams: tuple[str, ...],
    quorum: int | None,
    upstream_timeout: float,
    upstream_chain: str,
    upstream_relist: float,
    upstream_max_bytes: int,
    feed: str | None,
    feed_user: str | None,
    feed_password: str | None,
    feed_rate: float,
    **zone_options: Any,
) -> None:
    """Run the ENUM DNS gateway on UDP and TCP (default 127.0.0.1:5335)."""
    transfers = TransferSettings.pop(zone_options)
    keyset = None
    if dnssec_keys is not None:
        if dnssec_refresh >= dnssec_validity:
            raise ConfigError("--dnssec-refresh must be less than --dnssec-validity")
        try:
            keyset = KeySet.load(dnssec_keys)
        except DnssecError as exc:
            raise ConfigError(f"--dnssec-keys: {exc}") from None
    store_path: Path = obj.store_path
    limits = _rate_limit(ratelimit, qps, ratelimit_exempt)
    nvs = nvs if nvs is not None else obj.nvs
    conf = conf if conf is not None else obj.conf
    light_mode = bool(upstreams)
    if light_mode and nvs is not None:
        raise ConfigError("--upstream (light mode) and --nvs exclude each other")
    if quorum is not None and not light_mode:
        raise ConfigError("--quorum applies to light mode: give --upstream URL")
    use_node = not light_mode and (nvs is not None or (conf is not None and not obj.store_explicit))
    saved: dict[str, str] = {}
    if not use_node and not light_mode:
        if not (store_path / LEDGER_FILE).exists():
            raise ConfigError(
                f"no ENUMER store at {store_path} (create one with "
                "'enumer demo seed' or 'enumer name new ...')"
            )
        with Ledger(store_path, create=False) as store:
            saved = {
                k: v for k in ("enumtrust", "enumtollfree") if (v := store.setting(k)) is not None
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
        built.signatures = Policy(signatures)
        return built

    config = make_config()
    if keyset is not None and keyset.zone.split(".", 1)[0] not in {
        z.label.lower() for z in config.zones
    }:
        raise ConfigError(f"--dnssec-keys: the keys sign {keyset.zone}, not a served zone")
    metrics_addr = parse_bind(metrics, 9153) if metrics else None
    for skipped in config.skipped_zones:
        log(f"zone {skipped} is an EmerDNS zone: not served by ENUMER")
    sync = None
    light = None
    if light_mode:
        store_path, light = light_index(
            store_path,
            list(upstreams),
            quorum,
            CHAIN_TO_NETWORK[upstream_chain],
            config.trust,
            config.tollfree,
            config.exact_srl,
            upstream_timeout,
            log,
            upstream_max_bytes,
            upstream_relist,
        )
        sync = light.poll_all
    if use_node:
        rpc = RpcConfig.from_url(nvs) if nvs is not None else RpcConfig.from_conf(conf or "")
        store_path, sync, synced_at = node_index(RpcClient(rpc, timeout=30.0), store_path, config)
    gateway = Gateway(
        store_path,
        make_config,
        expand_regexp,
        poll if use_node or light_mode else EMBEDDED_POLL_SECONDS,
        not quiet,
        sync,
        report_every,
        keyset,
        (dnssec_validity, dnssec_refresh),
        light.status_text if light is not None else None,
        light.cache if light is not None else None,
    )
    if use_node:
        gateway.last_sync = synced_at
    counters = Metrics()
    counters.gauge(
        "answer_table_numbers",
        "Numbers with a compiled answer",
        lambda: sum(len(t) for t in gateway.tables.values()),
    )
    counters.gauge("index_age_seconds", "Seconds since the last successful sync", gateway.index_age)
    counters.gauge(
        "update_failing_seconds",
        "Seconds the updates (the node, for --nvs/--conf) have been failing; 0 when they work",
        gateway.failing_seconds,
    )
    if keyset is not None:

        def signed_value(read: Callable[[SignedZone], float]) -> Callable[[], float | None]:
            def value() -> float | None:
                zones = gateway.signed_zones()
                return read(zones[0]) if zones else None

            return value

        for name, text, read in (
            (
                "dnssec_signature_expiry_seconds",
                "Seconds until the earliest signature of the signed zone expires",
                lambda s: s.expiry() - time.time(),
            ),
            ("dnssec_signed_answers", "Numbers with a signed answer", lambda s: len(s)),
            ("dnssec_sign_seconds", "Seconds the last full signing took", lambda s: s.seconds),
            (
                "dnssec_keys_published",
                "DNSSEC keys in the zone's DNSKEY set",
                lambda s: len(s.keyset.published(time.time())),
            ),
            (
                "dnssec_keys_active",
                "DNSSEC keys signing (KSK/CSK and ZSK)",
                lambda s: len({k.tag for group in s.keys for k in group}),
            ),
        ):
            counters.gauge(name, text, signed_value(read))
    counters.gauge(
        "chain_height",
        "Chain height of the compiled answers",
        lambda: max((t.synced_height for t in gateway.tables.values()), default=-1),
    )
    if light is not None:
        light.add_metrics(counters)
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
            ratelimit=limits,
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
    feed_server = None
    if feed is not None:
        if feed_user is not None and feed_password is None:
            raise ConfigError("--feed-user needs --feed-password (or ENUMER_FEED_PASSWORD)")
        feed_server = serve_feed(
            store_path,
            parse_bind(feed, DEFAULT_RPC_PORT),
            config.trust,
            config.tollfree,
            feed_user,
            feed_password,
            feed_rate,
        )
        counters.gauge(
            "feed_records_served",
            "Records the record feed returned (name_show and name_filter)",
            lambda: feed_server.served_records if feed_server else 0,
        )
        log(f"record feed on {feed_server.url} ({'basic auth' if feed_password else 'open'})")
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
    log(f"ready: serving on {where}: {gateway.status()}")
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
        if feed_server is not None:
            feed_server.close()
        gateway.save_all()
        log("stopped")
