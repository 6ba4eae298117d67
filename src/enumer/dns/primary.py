"""``enumer serve`` as a hidden primary: the transfer options and the pieces they start.

Kept apart from the gateway so ``serve`` gains transfers with a few lines:
:func:`transfer_options` adds the options, :func:`start_primary` starts the
zone publisher and the NOTIFY sender and returns the hook the TCP server calls
for each query (:attr:`enumer.dns.server.ServerConfig.transfer`).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import dns.name
import dns.tsig

from enumer.conf import ConfigError
from enumer.dns.metrics import Metrics
from enumer.dns.wire import GatewayView, SuffixRule, ZoneSpec, respond
from enumer.dns.xfr import (
    DEFAULT_JOURNAL,
    DEFAULT_SEND_TIMEOUT,
    AccessList,
    Notifier,
    TableLike,
    TransferService,
    XfrError,
    ZonePublisher,
    is_transfer,
    parse_target,
    read_tsig_keys,
)
from enumer.dns.zone import (
    DEFAULT_EXPIRE,
    DEFAULT_MINIMUM,
    DEFAULT_MNAME,
    DEFAULT_NS,
    DEFAULT_REFRESH,
    DEFAULT_RETRY,
    DEFAULT_RNAME,
    Apex,
    Origin,
    ZoneError,
    origins,
)

F = TypeVar("F", bound=Callable[..., Any])


def apex_options(func: F) -> F:
    """``--ns``, ``--soa-*`` and ``--compact-names``: the same on ``serve`` and ``zone export``."""
    options = [
        click.option(
            "--ns",
            "ns",
            multiple=True,
            help=f"Name server of the zone apex, repeatable (default {DEFAULT_NS}).",
        ),
        click.option(
            "--soa-mname",
            default=DEFAULT_MNAME,
            show_default=True,
            help="SOA MNAME, the primary's name (relative names are below the zone).",
        ),
        click.option(
            "--soa-rname",
            default=DEFAULT_RNAME,
            show_default=True,
            help="SOA RNAME (mailbox; relative names are below the zone).",
        ),
        click.option("--soa-refresh", type=int, default=DEFAULT_REFRESH, show_default=True),
        click.option("--soa-retry", type=int, default=DEFAULT_RETRY, show_default=True),
        click.option("--soa-expire", type=int, default=DEFAULT_EXPIRE, show_default=True),
        click.option(
            "--soa-minimum",
            type=int,
            default=DEFAULT_MINIMUM,
            show_default=True,
            help="SOA MINIMUM: the negative-caching TTL.",
        ),
        click.option(
            "--compact-names",
            is_flag=True,
            help="Also put each number under its one-label emcdns name (53995390081.enum).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def apex_from(options: dict[str, Any]) -> Apex:
    """The :class:`Apex` of the ``--ns``/``--soa-*`` values (a bad value is one line)."""
    try:
        return Apex(
            ns=tuple(options.pop("ns")) or (DEFAULT_NS,),
            mname=options.pop("soa_mname"),
            rname=options.pop("soa_rname"),
            refresh=options.pop("soa_refresh"),
            retry=options.pop("soa_retry"),
            expire=options.pop("soa_expire"),
            minimum=options.pop("soa_minimum"),
        )
    except ZoneError as exc:
        raise ConfigError(str(exc)) from None


def transfer_options(func: F) -> F:
    """``--xfr-allow``, ``--notify``, ``--tsig-key``, ``--xfr-journal``, ``--xfr-timeout``,
    and the apex options (``--ns``, ``--soa-*``, ``--compact-names``)."""
    options = [
        click.option(
            "--xfr-allow",
            "xfr_allow",
            multiple=True,
            metavar="CIDR|key:NAME",
            help="Who may transfer the zones (AXFR/IXFR): an address or network, or "
            "key:NAME for requests signed with that --tsig-key key (repeatable; default nobody).",
        ),
        click.option(
            "--notify",
            "notify",
            multiple=True,
            metavar="ADDR[:PORT]",
            help="Secondary to NOTIFY on every new serial (repeatable; port 53 by default).",
        ),
        click.option(
            "--tsig-key",
            "tsig_key",
            multiple=True,
            type=click.Path(path_type=Path, dir_okay=False),
            help="File with TSIG keys in BIND's 'key' statement format (tsig-keygen).",
        ),
        click.option(
            "--xfr-journal",
            "xfr_journal",
            type=click.IntRange(0, 100_000),
            default=DEFAULT_JOURNAL,
            show_default=True,
            help="Serials whose differences are kept for IXFR (older ones get AXFR).",
        ),
        click.option(
            "--xfr-timeout",
            "xfr_timeout",
            type=click.FloatRange(0.1, 3600),
            default=DEFAULT_SEND_TIMEOUT,
            show_default=True,
            help="Seconds a transfer waits for a secondary that stops reading.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return apex_options(func)


@dataclass
class TransferSettings:
    """The transfer options of ``serve``, checked."""

    allow: AccessList
    keys: dict[dns.name.Name, dns.tsig.Key]
    targets: list[tuple[str, int]]
    apex: Apex
    compact: bool
    journal: int
    timeout: float

    @classmethod
    def pop(cls, options: dict[str, Any]) -> TransferSettings:
        """Take the transfer and apex options out of ``serve``'s keyword arguments."""
        try:
            keys: dict[dns.name.Name, dns.tsig.Key] = {}
            for path in options.pop("tsig_key"):
                keys.update(read_tsig_keys(path))
            allow = AccessList.parse(options.pop("xfr_allow"), keys)
            targets = [parse_target(t) for t in options.pop("notify")]
        except XfrError as exc:
            raise ConfigError(str(exc)) from None
        return cls(
            allow=allow,
            keys=keys,
            targets=targets,
            apex=apex_from(options),
            compact=options.pop("compact_names"),
            journal=options.pop("xfr_journal"),
            timeout=options.pop("xfr_timeout"),
        )


class Primary:
    """The publisher, the NOTIFY sender and the transfer hook of a running gateway."""

    def __init__(
        self,
        settings: TransferSettings,
        tables: Callable[[], Mapping[bool, TableLike]],
        zones: Callable[[], tuple[list[ZoneSpec], tuple[SuffixRule, ...]]],
        store: Path | None,
        expand_regexp: bool,
        log: Callable[[str], None],
        view: Callable[[], GatewayView],
    ) -> None:
        self.settings = settings
        self.view = view
        self.zones = zones
        self.log = log
        self.notifier = Notifier(settings.targets, settings.apex, log)
        self.publisher = ZonePublisher(
            tables,
            store,
            keep=settings.journal,
            expand_regexp=expand_regexp,
            on_change=self._changed,
            log=log,
        )
        self.service = TransferService(
            self.publisher,
            self.origins(),
            settings.apex,
            settings.allow,
            settings.keys,
            compact=settings.compact,
            send_timeout=settings.timeout,
            log=log,
        )

    def origins(self) -> list[Origin]:
        specs, suffixes = self.zones()
        return origins(specs, suffixes)

    def _changed(self, verified: bool, serial: int) -> None:
        picked = [o for o in self.origins() if o.spec.verified == verified]
        self.log(f"zone serial {serial}: {', '.join(o.name for o in picked)}")
        if self.settings.targets:
            self.notifier.notify(picked, serial)

    def start(self) -> None:
        """Publish the first serials (so the gateway's SOA answers carry them)."""
        self.publisher.start()

    def serving(self) -> None:
        """The server listens: send the NOTIFYs queued since :meth:`start` and later ones."""
        self.notifier.start()

    def stop(self) -> None:
        self.publisher.stop()
        self.notifier.stop()

    def transfer(
        self, query: bytes, addr: tuple[str, int]
    ) -> bytes | Callable[[socket.socket, bytes], None] | None:
        """The TCP server's hook: a job for AXFR/IXFR (run in a thread of its own, then
        the connection is closed), the signed answer to a signed query, else None."""
        if is_transfer(query):
            self.service.origins = self.origins()

            def job(sock: socket.socket, pending: bytes) -> None:
                try:
                    sock.settimeout(self.settings.timeout)
                    if pending:
                        sock.sendall(pending)
                    self.service.serve(sock, addr, query)
                except OSError:
                    pass  # logged by the service; the client is gone
                finally:
                    sock.close()

            return job
        if self.settings.keys and query[10:12] != b"\x00\x00":
            return self.signed(query, self.view(), None)
        return None

    def signed(self, query: bytes, view: GatewayView, max_udp: int | None) -> bytes | None:
        """A TSIG-signed query answered as the gateway does and signed (UDP and TCP)."""
        if not self.settings.keys:
            return None
        return self.service.signed_answer(query, lambda plain: respond(plain, view, max_udp))

    def add_metrics(self, metrics: Metrics) -> None:
        def serials() -> list[tuple[str, float]]:
            out = []
            for origin in self.origins():
                serial = self.publisher.serial(origin.spec.verified)
                if serial is not None:
                    out.append((f'{{zone="{origin.name}"}}', float(serial)))
            return out

        def peer_serials() -> list[tuple[str, float]]:
            return [
                (f'{{secondary="{addr}",zone="{p.zone}",kind="{p.kind}"}}', float(p.serial))
                for (addr, _z), p in sorted(self.service.peers.items())
            ]

        def peer_times() -> list[tuple[str, float]]:
            return [
                (f'{{secondary="{addr}",zone="{p.zone}"}}', p.at)
                for (addr, _z), p in sorted(self.service.peers.items())
            ]

        def counts() -> list[tuple[str, float]]:
            return [
                (f'{{kind="{k}"}}', float(v)) for k, v in sorted(self.service.transfers.items())
            ]

        metrics.labelled_gauge("zone_serial", "SOA serial of each served zone.", serials)
        metrics.labelled_gauge(
            "zone_secondary_serial", "Serial each secondary last took by transfer.", peer_serials
        )
        metrics.labelled_gauge(
            "zone_secondary_transfer_timestamp_seconds",
            "Unix time of each secondary's last transfer.",
            peer_times,
        )
        metrics.labelled_gauge("zone_transfers", "Transfer requests answered, by kind.", counts)
