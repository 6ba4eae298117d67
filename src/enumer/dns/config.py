"""Gateway configuration: emercoin.conf keys (SPEC section 10) and their command-line twins.

An operator who already runs emcdns can point ``enumer serve --conf`` at the
same emercoin.conf and get the same zones, suffix, trust list and toll-free
lists.  Precedence: built-in defaults, then the file, then command-line options.
Every bad value is reported as one line naming the key and the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from enumer.bound import Policy
from enumer.conf import ConfigError, conf_level, parse_bind, parse_port, read_emercoin_conf
from enumer.dns.wire import SuffixRule, ZoneSpec
from enumer.trust import TollFreeSource, TrustError, TrustList

DEFAULT_PORT = 5335
DEFAULT_BIND = "127.0.0.1"
DEFAULT_ALLOWED = "$enum"
DEFAULT_TRUST = "ver:enum"
#: emcdns caps an ENUM number at 40 digits unless the zone says N$enum.
DEFAULT_MAX_DIGITS = 40


def read_conf(path: str | Path, network: str | None = None) -> dict[str, str]:
    """Every key of an emercoin.conf, as the chain the file selects (or ``network``)
    sees it, read by the one reader with bitcoind's rules (:mod:`enumer.conf`)."""
    return read_emercoin_conf(path).values(network)


_ZONE = re.compile(r"([0-9]*)([$~.!])([a-z0-9][a-z0-9-]{0,62})")


def parse_allowed(text: str) -> tuple[list[ZoneSpec], list[str]]:
    """``emcdnsallowed``: ENUM zones (``$enum`` verified, ``~enum`` unsigned), with an
    optional leading digit cap.  Returns the ENUM zones and the EmerDNS zones
    (``.coin``, ``!coin``) that ENUMER does not serve, for a warning."""
    zones: list[ZoneSpec] = []
    skipped: list[str] = []
    for item in (i.strip() for i in text.split("|")):
        if not item:
            continue
        m = _ZONE.fullmatch(item.lower())
        if m is None:
            raise ConfigError(
                f"emcdnsallowed: bad zone {item!r} (expected $enum, ~enum, N$enum, .coin or !coin)"
            )
        cap, mode, label = m.groups()
        if mode in ".!":
            skipped.append(item)
            continue
        max_digits = int(cap) if cap else DEFAULT_MAX_DIGITS
        if not 1 <= max_digits <= 64:
            raise ConfigError(f"emcdnsallowed: digit cap {cap} of {item!r} is not in 1..64")
        if any(z.label == label for z in zones):
            raise ConfigError(f"emcdnsallowed: zone {label!r} listed twice ({text!r})")
        zones.append(ZoneSpec(label, mode == "$", max_digits))
    if not zones:
        raise ConfigError(f"emcdnsallowed: no ENUM zone ($enum or ~enum) in {text!r}")
    return zones, skipped


_SUFFIX = re.compile(r"\.?([a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})*)\.?")


def _domain(text: str, key: str) -> str:
    m = _SUFFIX.fullmatch(text.strip().lower())
    if m is None:
        raise ConfigError(f"{key}: bad domain suffix {text!r}")
    return m.group(1)


def parse_suffix(text: str) -> tuple[SuffixRule, ...]:
    """``emcdnssuffix``: ``.enumer.org`` strips a suffix; ``.e164.org|.enum`` replaces
    one suffix with another.  Several rules may be given separated by commas."""
    rules = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        old, bar, new = item.partition("|")
        rules.append(
            SuffixRule(_domain(old, "emcdnssuffix"), _domain(new, "emcdnssuffix") if bar else "")
        )
    return tuple(rules)


@dataclass
class GatewayConfig:
    """Everything ``enumer serve`` needs besides the store."""

    binds: list[tuple[str, int]] = field(default_factory=lambda: [(DEFAULT_BIND, DEFAULT_PORT)])
    zones: list[ZoneSpec] = field(default_factory=lambda: parse_allowed(DEFAULT_ALLOWED)[0])
    skipped_zones: list[str] = field(default_factory=list)
    suffixes: tuple[SuffixRule, ...] = ()
    trust: TrustList = field(default_factory=TrustList)
    tollfree: tuple[TollFreeSource, ...] = ()
    query_log: bool = False
    #: Revoke only names listed on an SRL line of their own (emcdns matches substrings).
    exact_srl: bool = False
    #: Which signatures serve a record (SPEC 11): compat (as emcdns) or strict.
    signatures: Policy = Policy.COMPAT

    @classmethod
    def build(
        cls,
        conf: dict[str, str] | None = None,
        *,
        binds: tuple[str, ...] = (),
        port: int | None = None,
        allowed: str | None = None,
        suffix: str | None = None,
        trust: str | None = None,
        tollfree: str | None = None,
        store_defaults: dict[str, str] | None = None,
    ) -> GatewayConfig:
        """Merge defaults, the store's saved settings, emercoin.conf and options."""
        merged = dict(store_defaults or {})
        merged.update(conf or {})
        for key, value in (
            ("emcdnsallowed", allowed),
            ("emcdnssuffix", suffix),
            ("enumtrust", trust),
            ("enumtollfree", tollfree),
        ):
            if value is not None:
                merged[key] = value
        if port is None:
            port = (
                parse_port(merged["emcdnsport"], "emcdnsport")
                if "emcdnsport" in merged
                else DEFAULT_PORT
            )
        bind_texts = list(binds) or [b for b in merged.get("emcdnsbindip", "").split(",") if b]
        config = cls()
        config.binds = [parse_bind(b, port) for b in bind_texts] or [(DEFAULT_BIND, port)]
        config.zones, config.skipped_zones = parse_allowed(
            merged.get("emcdnsallowed", DEFAULT_ALLOWED)
        )
        config.suffixes = parse_suffix(merged.get("emcdnssuffix", ""))
        try:
            config.trust = TrustList.from_text(merged.get("enumtrust", DEFAULT_TRUST))
        except TrustError as exc:
            raise ConfigError(f"enumtrust: {exc}") from None
        try:
            config.tollfree = TollFreeSource.parse_list(merged.get("enumtollfree", ""))
        except TrustError as exc:
            raise ConfigError(f"enumtollfree: {exc}") from None
        # An integer log level in emcdns (atoi): empty or 0 is quiet.
        config.query_log = conf_level(merged.get("emcdnsverbose", "0")) != 0
        return config
