"""``enumer zone export`` and the zone options shared with ``enumer serve`` (SPEC 12).

The export compiles (or loads from the store's snapshot) the same answer table
``enumer serve`` serves, then writes the zone as a master file one number at a
time, so the text of a large zone is never held in memory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Any

import click

from enumer.cliutil import Context, pass_ctx
from enumer.conf import ConfigError
from enumer.dns.config import GatewayConfig, read_conf
from enumer.dns.dnssec import DnssecError, KeySet
from enumer.dns.gateway import Gateway, log
from enumer.dns.primary import apex_from, apex_options
from enumer.dns.zone import (
    ZoneError,
    master_file,
    origins,
    select_origins,
)
from enumer.nvs.ledger import LEDGER_FILE, Ledger


class _Progress:
    """A bar on a terminal for the numbers written (nothing in a log)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._bar: Any = None
        if sys.stderr.isatty() and total:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._bar = Progress(
                "writing zone",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("zone", total=total)

    def update(self, done: int) -> None:
        if self._bar is not None and done % 4096 == 0:
            self._bar.update(self._task, completed=done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def write_zone(out: IO[str], pieces: Any, total: int) -> int:
    """Write master-file pieces to ``out``; returns the numbers written."""
    progress = _Progress(total)
    done = 0
    try:
        for text, done in pieces:
            out.write(text)
            progress.update(done)
    finally:
        progress.close()
    return done


@click.group()
def zone() -> None:
    """The served ENUM zones as DNS zones (master files; serve transfers them)."""


@zone.command("export")
@click.option("--zone", "zone_label", default=None, help="Zone label (default: the only one).")
@click.option("--suffix", default=None, help="Export below this gateway suffix (.enumer.org).")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write here (default standard output).",
)
@click.option("--allowed", default=None, help="Served zones (emcdnsallowed; default $enum).")
@click.option("--trust", default=None, help="Trusted verifiers (enumtrust).")
@click.option("--tollfree", default=None, help="Toll-free sources (enumtollfree).")
@click.option("--expand-regexp", is_flag=True, help="As serve --expand-regexp.")
@click.option("--exact-srl", is_flag=True, help="As serve --exact-srl.")
@click.option("--quiet", is_flag=True, help="No progress while compiling.")
@click.option(
    "--dnssec-keys",
    "dnssec_keys",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the zone signed with the keys in this directory (as serve --dnssec-keys).",
)
@apex_options
@pass_ctx
def export(obj: Context, /, **options: Any) -> None:
    """Write a served zone as a master file (named-checkzone, nsd-checkzone, kzonecheck)."""
    apex = apex_from(options)
    compact: bool = options["compact_names"]
    store_path: Path = obj.store_path
    if not (store_path / LEDGER_FILE).exists():
        raise ConfigError(f"no ENUMER store at {store_path}")
    with Ledger(store_path, create=False) as store:
        saved = {k: v for k in ("enumtrust", "enumtollfree") if (v := store.setting(k)) is not None}

    def make_config() -> GatewayConfig:
        built = GatewayConfig.build(
            read_conf(obj.conf) if obj.conf is not None else None,
            allowed=options["allowed"],
            suffix=options["suffix"],
            trust=options["trust"],
            tollfree=options["tollfree"],
            store_defaults=saved,
        )
        built.exact_srl = options["exact_srl"]
        return built

    config = make_config()
    try:
        picked = select_origins(origins(config.zones, config.suffixes), options["zone_label"])
    except ZoneError as exc:
        raise ConfigError(str(exc)) from None
    labels = {o.spec.label for o in picked}
    if len(labels) > 1:
        raise ConfigError(f"--zone: several zones are served ({', '.join(sorted(labels))})")
    origin = picked[-1]  # the suffix form when --suffix is given
    keyset = None
    if options["dnssec_keys"] is not None:
        try:
            keyset = KeySet.load(options["dnssec_keys"])
        except DnssecError as exc:
            raise ConfigError(f"--dnssec-keys: {exc}") from None
        if keyset.zone != origin.name:
            raise ConfigError(f"--dnssec-keys: the keys sign {keyset.zone}, not {origin.name}")
    gateway = Gateway(
        store_path,
        make_config,
        options["expand_regexp"],
        1.0,
        not options["quiet"],
        dnssec=keyset,
    )
    table = gateway.tables[origin.spec.verified]
    from enumer.dns.xfr import ZoneState, capture

    state = ZoneState.load(store_path, origin.spec.verified)
    view = capture(table, state, options["expand_regexp"])
    for reason in view.left_out:
        log(f"toll-free entry left out of the zone: {reason}")
    pieces = master_file(view, origin, apex, compact)
    total = len(view.answers)
    output: Path | None = options["output"]
    if output is None:
        write_zone(sys.stdout, pieces, total)
        return
    tmp = output.with_name(output.name + ".tmp")
    try:
        with open(tmp, "w", encoding="ascii", newline="\n") as fh:
            written = write_zone(fh, pieces, total)
        os.replace(tmp, output)
    except OSError as exc:
        raise ConfigError(f"-o: cannot write {output}: {exc.strerror}") from None
    log(f"wrote {origin.name} serial {view.serial}: {written} numbers to {output}")
