"""``enumer dnssec keygen|ds``: the keys ``enumer serve --dnssec-keys`` signs with.

Keys are written in BIND's key-file format (``dnssec-keygen`` makes the same
files), private files with mode 0600; the private key is never printed or
logged.  ``ds`` prints what the parent zone (or each validating resolver, for
a zone with no signed parent such as ``enum.``) needs: the DS record and the
Unbound and BIND trust-anchor lines.
"""

from __future__ import annotations

from pathlib import Path

import click

from enumer.cliutil import Context, pass_ctx
from enumer.conf import ConfigError
from enumer.dns.dnssec import (
    ECDSAP256SHA256,
    ED25519,
    DnssecError,
    Key,
    generate,
    read_keys,
    write_key,
)

KEYS_DIR = "dnssec"


def keys_dir(obj: Context, directory: Path | None) -> Path:
    """``--dir``, or ``dnssec/`` in the store directory."""
    return directory if directory is not None else obj.store_path / KEYS_DIR


def anchor_keys(directory: Path, zone: str | None = None) -> list[Key]:
    """The keys a trust anchor or DS names: the published KSKs (or CSKs) of the zone."""
    import time

    if not directory.is_dir():
        raise ConfigError(
            f"no keys: {directory} is not a directory (enumer dnssec keygen --zone ZONE makes them)"
        )
    try:
        keys = read_keys(directory, zone)
    except DnssecError as exc:
        raise ConfigError(str(exc)) from None
    now = time.time()
    found = [k for k in keys if k.is_ksk and k.published(now)]
    if not found:
        where = f" of {zone}" if zone else ""
        raise ConfigError(f"no published key-signing key{where} in {directory}")
    return found


def unbound_anchor(keys: list[Key]) -> list[str]:
    """``trust-anchor:`` lines for ``unbound.conf`` (the DS form)."""
    return [f'    trust-anchor: "{k.ds_text()}"' for k in keys]


def bind_anchor(keys: list[Key]) -> list[str]:
    """A ``trust-anchors { ... };`` block for ``named.conf`` (static DS)."""
    lines = ["trust-anchors {"]
    for k in keys:
        lines.append(
            f'    "{k.zone}" static-ds {k.tag} {k.algorithm} 2 "{k.ds(2)[4:].hex().upper()}";'
        )
    lines.append("};")
    return lines


@click.group("dnssec")
def dnssec() -> None:
    """DNSSEC keys of the served ENUM zone (docs/dnssec.md)."""


@dnssec.command("keygen")
@click.option("--zone", required=True, help="The zone the key signs: enum, enum.enumer.org, ...")
@click.option(
    "--algorithm",
    type=click.Choice(["13", "15"]),
    default="13",
    show_default=True,
    help="13: ECDSA P-256 with SHA-256; 15: Ed25519.",
)
@click.option(
    "--split",
    is_flag=True,
    help="A KSK and a ZSK instead of one combined signing key (CSK).",
)
@click.option(
    "--zsk",
    is_flag=True,
    help="Only a ZSK (a ZSK rollover: pre-publish it with --activate-in).",
)
@click.option(
    "--activate-in",
    type=click.IntRange(0, None),
    default=0,
    help="Seconds from now until the new key signs (published now).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the key files go (default: dnssec/ in the store directory).",
)
@pass_ctx
def keygen(
    obj: Context,
    /,
    zone: str,
    algorithm: str,
    split: bool,
    zsk: bool,
    activate_in: int,
    directory: Path | None,
) -> None:
    """Write a new CSK (or KSK + ZSK) as K<zone>+<alg>+<id>.key/.private; print the names."""
    target = keys_dir(obj, directory)
    alg = ECDSAP256SHA256 if algorithm == "13" else ED25519
    roles = [False] if zsk else [True, False] if split else [True]
    try:
        for ksk in roles:
            key = generate(zone, alg, ksk=ksk)
            if activate_in:
                key.activate = key.created + activate_in
            path = write_key(key, target)
            click.echo(path.with_suffix("").name)
    except (DnssecError, OSError) as exc:
        raise ConfigError(f"dnssec keygen: {exc}") from None


@dnssec.command("ds")
@click.option("--zone", default=None, help="Only the keys of this zone.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="The key directory (default: dnssec/ in the store directory).",
)
@pass_ctx
def ds(obj: Context, /, zone: str | None, directory: Path | None) -> None:
    """Print the DS records for the parent zone and the Unbound and BIND trust anchors."""
    keys = anchor_keys(keys_dir(obj, directory), zone)
    click.echo("; DS for the parent zone (e.g. enumer.org for enum.enumer.org):")
    for k in keys:
        click.echo(k.ds_text())
    click.echo("\n# unbound.conf, server: section")
    click.echo("\n".join(unbound_anchor(keys)))
    click.echo("\n// named.conf")
    click.echo("\n".join(bind_anchor(keys)))
