"""The probes of ``enumer doctor``: each hop asked once, with a short timeout.

This is the I/O edge of :mod:`enumer.calling.doctor`: DNS questions to the
resolver and the gateway (NAPTR through :func:`enumer.calling.route.ask`, the
resolver's ``version.bind``, the gateway's ``status.enumer``), JSON-RPC to the
chain source, and ``lookup``'s resolver on the records. The independent probes
run in parallel, so a run takes about one timeout when a hop is silent and a
fraction of a second when everything answers; the records are read after the
gateway's status, whose trust list they are judged with.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Final, TypeVar

import dns.exception
import dns.message
import dns.query
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from enumer.calling.doctor import ChainProbe, Probes, RecordsProbe, StatusInfo
from enumer.calling.pbx import PbxError, normalisation_rules, normalise
from enumer.calling.route import QUERY_FAILURES, Outcome, QueryResult, Suffix, ask
from enumer.conf import ConfigError, read_emercoin_conf
from enumer.e164 import E164
from enumer.nvs import NameReader, NvsError
from enumer.nvs.ledger import LEDGER_FILE, Ledger
from enumer.nvs.rpc import (
    NodeAuthError,
    NodeConnectionError,
    NodeDownloadingError,
    NodeStore,
    NodeTimeoutError,
    NodeWarmingUpError,
    RpcClient,
    RpcConfig,
    RpcConfigError,
    RpcError,
)
from enumer.resolver import Resolver, TollFreeLoadError
from enumer.trust import TollFreeSource, TrustError, TrustList

__all__ = ["DEFAULT_PROBE_TIMEOUT", "DoctorSetup", "ProbeError", "default_resolver", "run_probes"]

DEFAULT_PROBE_TIMEOUT: Final = 1.0
"""Seconds per probe: a resolver or gateway on the PBX's network answers in milliseconds."""

SETTING_TRUST: Final = "enumtrust"
SETTING_TOLLFREE: Final = "enumtollfree"

T = TypeVar("T")


class ProbeError(ValueError):
    """A probe that cannot even be set up (no resolver configured, a bad chain source)."""


def default_resolver(resolv_conf: str = "/etc/resolv.conf") -> tuple[str, int]:
    """The first nameserver of ``/etc/resolv.conf``: the one a PBX's resolver library asks."""
    try:
        resolver = dns.resolver.Resolver(filename=resolv_conf, configure=True)
    except (dns.resolver.NoResolverConfiguration, OSError):
        raise ProbeError(f"no nameserver in {resolv_conf}: give --resolver ADDR[:PORT]") from None
    for server in resolver.nameservers:
        return str(server), 53
    raise ProbeError(f"no nameserver in {resolv_conf}: give --resolver ADDR[:PORT]")


@dataclass
class DoctorSetup:
    """What the command line chose."""

    dialled: str
    resolver: tuple[str, int]
    gateway: tuple[str, int]
    zone: str = "enum"
    pbx: str | None = None
    region: str | None = None
    area_code: str | None = None
    trust: str | None = None
    #: Node URLs (``--nvs``, ``--upstream``) and emercoin.conf files (``--conf``).
    nodes: list[str] = field(default_factory=list)
    conf: Path | None = None
    store: Path | None = None
    network: str | None = None
    timeout: float = DEFAULT_PROBE_TIMEOUT


# -- DNS -----------------------------------------------------------------------------------


def ask_txt(
    name: str, server: tuple[str, int], timeout: float, rdclass: str = "IN", tcp: bool = False
) -> str:
    """The first TXT record of ``name`` at ``server``, its strings joined (over TCP only
    with ``tcp``: rate limits apply to UDP, never to TCP)."""
    query = dns.message.make_query(name, dns.rdatatype.TXT, rdclass)
    host, port = server
    try:
        if tcp:
            response = dns.query.tcp(query, host, port=port, timeout=timeout)
        else:
            response, _ = dns.query.udp_with_fallback(query, host, port=port, timeout=timeout)
    except dns.exception.Timeout:
        raise ProbeError(f"no answer within {timeout:g} s") from None
    except QUERY_FAILURES as exc:
        raise ProbeError(f"query failed: {exc or exc.__class__.__name__}") from None
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            for rdata in rrset:
                return b"".join(rdata.strings).decode("utf-8", "replace")
    raise ProbeError(f"no TXT record {name} (rcode {response.rcode()})")


def _version(server: tuple[str, int], timeout: float) -> str | None:
    try:
        return ask_txt("version.bind", server, timeout, "CH")
    except ProbeError:
        return None


def _answers_tcp(server: tuple[str, int], timeout: float) -> bool:
    """Whether the gateway answers its status over TCP."""
    try:
        ask_txt("status.enumer", server, timeout, tcp=True)
    except ProbeError:
        return False
    return True


def _status(server: tuple[str, int], timeout: float) -> tuple[StatusInfo | None, str | None]:
    try:
        return StatusInfo.parse(ask_txt("status.enumer", server, timeout)), None
    except ProbeError as exc:
        return None, str(exc)


# -- the chain source ----------------------------------------------------------------------


def _node_probe(config: RpcConfig, label: str, kind: str, timeout: float) -> ChainProbe:
    """``getblockchaininfo`` at a node: chain, height, initial block download, credentials."""
    credentials = config.describe_auth()
    endpoint = config.endpoint

    def failed(error_kind: str, exc: Exception) -> ChainProbe:
        return ChainProbe(
            label, kind, credentials, error=str(exc), error_kind=error_kind, endpoint=endpoint
        )

    try:
        with RpcClient(config, timeout=timeout) as client:
            info = client.getblockchaininfo()
    except NodeDownloadingError as exc:
        return failed("ibd", exc)
    except NodeWarmingUpError as exc:
        return failed("warmup", exc)
    except NodeAuthError as exc:
        return failed("auth", exc)
    except NodeTimeoutError as exc:
        return failed("timeout", exc)
    except NodeConnectionError as exc:
        return failed("connection", exc)
    except RpcConfigError as exc:
        # A missing .cookie means the node is not running (it writes one at start).
        return failed("connection" if "cookie file" in str(exc) else "config", exc)
    except RpcError as exc:
        return failed("protocol", exc)

    def number(key: str) -> int | None:
        value = info.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    ibd = info.get("initialblockdownload")
    return ChainProbe(
        label,
        kind,
        credentials,
        chain=str(info.get("chain")) if info.get("chain") is not None else None,
        height=number("blocks"),
        headers=number("headers"),
        ibd=ibd if isinstance(ibd, bool) else None,
        endpoint=endpoint,
    )


def _store_probe(path: Path | None) -> ChainProbe:
    if path is None or not (path / LEDGER_FILE).exists():
        return ChainProbe(
            f"embedded store {path}" if path else "embedded store",
            "store",
            error=f"no chain source: no --nvs, --conf or --upstream, and no store at {path}",
            error_kind="missing",
        )
    try:
        with Ledger(path, create=False) as ledger:
            return ChainProbe(
                f"embedded store {path}", "store", chain=ledger.network_name, height=ledger.height()
            )
    except (OSError, NvsError, ValueError) as exc:
        return ChainProbe(f"embedded store {path}", "store", error=str(exc), error_kind="config")


def _sources(setup: DoctorSetup) -> list[tuple[RpcConfig | None, str, str]]:
    """(config, label, kind) of every chain source to ask; config None: the embedded store."""
    sources: list[tuple[RpcConfig | None, str, str]] = []
    try:
        if setup.conf is not None:
            config = RpcConfig.from_conf(setup.conf, setup.network)
            sources.append((config, f"node {config.url} (from {setup.conf})", "node"))
        for index, url in enumerate(setup.nodes):
            config = RpcConfig.from_url(url)
            kind = "node" if index == 0 and len(setup.nodes) == 1 else "upstream"
            sources.append((config, f"{kind} {config.url}", kind))
    except RpcConfigError as exc:
        raise ProbeError(str(exc)) from None
    return sources or [(None, f"embedded store {setup.store}", "store")]


# -- the records ---------------------------------------------------------------------------


def _trust(
    setup: DoctorSetup, status: StatusInfo | None, saved: dict[str, str]
) -> tuple[TrustList, str]:
    """The trust list to judge the records with: the one the gateway serves with."""
    try:
        if setup.trust is not None:
            return TrustList.from_text(setup.trust), "--trust"
        served = status.trust_list if status is not None else None
        if served is not None:
            return served, "the gateway's status"
        if SETTING_TRUST in saved:
            return TrustList.from_text(saved[SETTING_TRUST]), "the saved enumtrust"
    except TrustError as exc:
        raise ProbeError(str(exc)) from None
    return TrustList(), "the default"


def read_records(
    store: NameReader,
    source: str,
    digits: str,
    trust: TrustList,
    trust_from: str,
    tollfree: str,
) -> RecordsProbe:
    """``lookup``'s resolution of the number, with the lapsed records beside it."""
    try:
        resolver = Resolver(store, trust, TollFreeSource.parse_list(tollfree))
        tip = store.height()
        records = store.records_for_number(digits)
        resolution = resolver.resolve(digits, records)
    except (NvsError, OSError, TollFreeLoadError, TrustError, ValueError) as exc:
        return RecordsProbe(source, -1, trust, trust_from, error=str(exc))
    active = {r.name: r.value for r in records if r.is_active(tip)}
    lapsed = tuple(r for r in records if not r.is_active(tip))
    return RecordsProbe(source, tip, trust, trust_from, resolution, lapsed, active)


def _saved_settings(setup: DoctorSetup) -> dict[str, str]:
    """``enumtrust``/``enumtollfree`` as the gateway would read them: emercoin.conf or the store."""
    saved: dict[str, str] = {}
    if setup.store is not None and (setup.store / LEDGER_FILE).exists() and setup.conf is None:
        try:
            with Ledger(setup.store, create=False) as ledger:
                for key in (SETTING_TRUST, SETTING_TOLLFREE):
                    value = ledger.setting(key)
                    if value is not None:
                        saved[key] = value
        except (OSError, NvsError, ValueError):
            pass
    if setup.conf is not None:
        try:
            values = read_emercoin_conf(setup.conf).values(setup.network)
        except ConfigError:
            values = {}
        saved.update({k: v for k, v in values.items() if k in (SETTING_TRUST, SETTING_TOLLFREE)})
    return saved


# -- the run -------------------------------------------------------------------------------


def _normalise(setup: DoctorSetup, probes: Probes) -> None:
    """The number as ``enumer route`` reads it, and as the generated dialplan would."""
    try:
        probes.number = E164.from_text(
            setup.dialled, default_region=setup.region, area_code=setup.area_code
        )
    except ValueError as exc:
        probes.number_error = str(exc)
        return
    if setup.region is not None:
        try:
            rules = normalisation_rules(setup.region, setup.area_code)
        except PbxError:
            return
        probes.dialplan_checked = True
        digits = "".join(c for c in setup.dialled if c.isdigit() or c == "+")
        probes.dialplan_digits = normalise(digits, rules)


def run_probes(setup: DoctorSetup) -> tuple[Probes, float]:
    """Ask every hop; the probes and the seconds the run took."""
    started = time.monotonic()
    probes = Probes(
        dialled=setup.dialled,
        zone=setup.zone,
        resolver_addr=setup.resolver,
        gateway_addr=setup.gateway,
        pbx=setup.pbx,
        region=setup.region,
        area_code=setup.area_code,
        timeout=setup.timeout,
    )
    _normalise(setup, probes)
    sources = _sources(setup)
    timeout = setup.timeout
    number = probes.number
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="doctor") as pool:

        def start(call: Callable[[], T]) -> Future[T]:
            return pool.submit(call)

        def naptr(server: tuple[str, int], cd: bool = False) -> Future[QueryResult] | None:
            if number is None:
                return None
            zone = setup.zone
            return start(
                lambda: ask(number, Suffix(zone, server), timeout=timeout, checking_disabled=cd)
            )

        resolver_f = naptr(setup.resolver)
        gateway_f = naptr(setup.gateway)
        version_f = start(lambda: _version(setup.resolver, timeout))
        status_f = start(lambda: _status(setup.gateway, timeout))
        chain_f = [
            start(partial(_node_probe, config, label, kind, timeout))
            if config is not None
            else start(lambda: _store_probe(setup.store))
            for config, label, kind in sources
        ]
        probes.resolver = resolver_f.result() if resolver_f else None
        probes.gateway = gateway_f.result() if gateway_f else None
        if probes.gateway is not None and probes.gateway.outcome is Outcome.TIMEOUT:
            # Silent over UDP: down, or dropping this client's queries (rate limiting)?
            probes.gateway_tcp = _answers_tcp(setup.gateway, timeout)
        probes.resolver_version = version_f.result()
        probes.status, probes.status_error = status_f.result()
        probes.chain = [f.result() for f in chain_f]
        res = probes.resolver
        if res is not None and res.outcome.value in ("error", "timeout") and number is not None:
            cd_f = naptr(setup.resolver, cd=True)
            probes.resolver_cd = cd_f.result() if cd_f else None
    if number is not None:
        probes.records = _records(setup, probes, sources, number.digits)
    return probes, time.monotonic() - started


def _records(
    setup: DoctorSetup,
    probes: Probes,
    sources: Sequence[tuple[RpcConfig | None, str, str]],
    digits: str,
) -> RecordsProbe | None:
    """The records from the first reachable chain source (none reachable: not read)."""
    saved = _saved_settings(setup)
    trust, trust_from = _trust(setup, probes.status, saved)
    tollfree = saved.get(SETTING_TOLLFREE, "")
    for (config, label, _), probe in zip(sources, probes.chain, strict=True):
        if not probe.reachable:
            continue
        if config is None:
            assert setup.store is not None
            with Ledger(setup.store, create=False) as ledger:
                return read_records(ledger, label, digits, trust, trust_from, tollfree)
        node = NodeStore(RpcClient(config, timeout=setup.timeout))
        try:
            return read_records(node, label, digits, trust, trust_from, tollfree)
        finally:
            node.close()
    first = probes.chain[0] if probes.chain else None
    return RecordsProbe(
        first.label if first else "-",
        -1,
        trust,
        trust_from,
        error=f"the chain source does not answer ({first.error if first else 'none'})",
    )
