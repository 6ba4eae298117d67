"""Number -> NAPTR answers, with the provenance of every decision.

For number D the resolver examines *every* active record ``enum:D:N`` (the
reference stops at the first missing N, so a lapsed ``:0`` hides a verified
``:1``; we do not), keeps the records that carry a valid trusted signature,
joins their directives in N order with each record's own TTL, and falls back
to the toll-free lists only when no record answered (SPEC section 7.2).

The resolver reads through :class:`~enumer.nvs.NameReader` only, so the CLI's
``lookup``, the gateway's answer table and tests share one implementation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enumer import crypto
from enumer.e164 import E164
from enumer.naptr import Naptr, Route
from enumer.nvs import NameReader, NameRecord, get_active
from enumer.records import DEFAULT_TTL, EnumName, EnumValue
from enumer.trust import (
    SignatureCache,
    SigStatus,
    SigVerdict,
    TollFreeEntry,
    TollFreeSource,
    TollFreeTable,
    TrustList,
    Verifier,
    check_signature,
)


@dataclass(frozen=True)
class RecordVerdict:
    """One examined record: whether it is served and why."""

    name: str
    verified: bool
    reason: str
    signatures: tuple[SigVerdict, ...] = ()
    naptrs: tuple[Naptr, ...] = ()
    address: str = ""
    expires_at: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verified": self.verified,
            "reason": self.reason,
            "owner": self.address,
            "expires_at": self.expires_at,
            "signatures": [s.to_json() for s in self.signatures],
            "naptr": [naptr_json(n) for n in self.naptrs],
        }


@dataclass(frozen=True)
class Resolution:
    """Everything a gateway would serve for a number, and where it came from."""

    digits: str
    records: tuple[RecordVerdict, ...]
    naptrs: tuple[Naptr, ...]
    tollfree: TollFreeEntry | None = None

    @property
    def answered(self) -> bool:
        return bool(self.naptrs)

    @property
    def source(self) -> str:
        if self.tollfree is not None:
            return f"toll-free {self.tollfree.source} ={self.tollfree.pattern}"
        served = [r.name for r in self.records if r.verified and r.naptrs]
        return ", ".join(served) if served else "none"


def naptr_json(naptr: Naptr) -> dict[str, Any]:
    return {
        "order": naptr.order,
        "preference": naptr.preference,
        "flags": naptr.flags,
        "service": naptr.service,
        "regexp": naptr.regexp,
        "replacement": naptr.replacement,
        "ttl": naptr.ttl,
    }


def judge_record(
    record: NameRecord,
    trust: TrustList,
    verifier: Any,
    srl_value: Any,
    cache: SignatureCache,
    exact_srl: bool = False,
    require_signature: bool = True,
) -> RecordVerdict:
    """Whether one active record is served: any valid trusted signature accepts it.

    With ``require_signature`` off (a ``~enum`` zone, for tests and private
    networks) every active record is served and signatures are only reported.
    """
    value = EnumValue.from_text(record.value)
    naptrs = tuple(value.naptrs())
    verdicts = tuple(
        check_signature(record.name, sig, trust, verifier, srl_value, cache, exact_srl)
        for sig in value.signatures
    )
    valid = [v for v in verdicts if v.status is SigStatus.VALID]
    if valid:
        reason = valid[0].detail
        if not naptrs:
            reason += "; but no E2U directive to serve"
    elif not verdicts:
        reason = "no signature"
    else:
        reason = "; ".join(f"{v.verifier}: {v.status.value} ({v.detail})" for v in verdicts)
    served = bool(valid)
    if not require_signature and not valid:
        served, reason = True, f"served unsigned (zone without signature check); {reason}"
    return RecordVerdict(
        record.name, served, reason, verdicts, naptrs, record.address, record.expires_at
    )


@dataclass
class Resolver:
    """Resolves numbers against a store with one trust configuration.

    Verifier states are cached for the resolver's life; call :meth:`forget`
    when ``ver:`` or SRL records may have changed (the gateway does, per block).
    """

    store: NameReader
    trust: TrustList = field(default_factory=TrustList)
    tollfree_sources: tuple[TollFreeSource, ...] = ()
    exact_srl: bool = False
    require_signature: bool = True
    cache: SignatureCache = field(default_factory=SignatureCache)
    _verifiers: dict[str, Verifier] = field(default_factory=dict, repr=False)
    _srl: dict[str, str | None] = field(default_factory=dict, repr=False)
    _tollfree: TollFreeTable | None = field(default=None, repr=False)

    @property
    def network(self) -> crypto.Network:
        return crypto.network_by_name(self.store.network_name)

    def forget(self) -> None:
        """Drop cached verifier and toll-free state (signature results stay valid)."""
        self._verifiers.clear()
        self._srl.clear()
        self._tollfree = None

    def verifier(self, name: str) -> Verifier:
        found = self._verifiers.get(name)
        if found is None:
            found = Verifier.from_record(name, get_active(self.store, name), self.network)
            self._verifiers[name] = found
        return found

    def srl_value(self, name: str) -> str | None:
        if name not in self._srl:
            record = get_active(self.store, name)
            self._srl[name] = None if record is None else record.value
        return self._srl[name]

    @property
    def tollfree(self) -> TollFreeTable:
        if self._tollfree is None:
            self._tollfree = load_tollfree(self.tollfree_sources, self.store)
        return self._tollfree

    def judge(self, record: NameRecord) -> RecordVerdict:
        return judge_record(
            record,
            self.trust,
            self.verifier,
            self.srl_value,
            self.cache,
            self.exact_srl,
            self.require_signature,
        )

    def examine(self, records: Iterable[NameRecord], tip: int) -> list[RecordVerdict]:
        """Verdicts for the active ENUM records among ``records`` (N order kept)."""
        return [self.judge(r) for r in records if r.is_active(tip) and EnumName.matches(r.name)]

    def resolve(self, digits: str, records: Sequence[NameRecord] | None = None) -> Resolution:
        tip = self.store.height()
        if records is None:
            records = self.store.records_for_number(digits)
        verdicts = self.examine(sorted(records, key=_qno), tip)
        naptrs = tuple(n for v in verdicts if v.verified for n in v.naptrs)
        if naptrs:
            return Resolution(digits, tuple(verdicts), naptrs)
        entry = self.tollfree.match(digits)
        if entry is not None:
            tf = tuple(d.naptr(DEFAULT_TTL) for d in entry.directives)
            return Resolution(digits, tuple(verdicts), tf, entry)
        return Resolution(digits, tuple(verdicts), ())


def _qno(record: NameRecord) -> int:
    parsed = EnumName.parse(record.name)
    return parsed.index if parsed else -1


class TollFreeLoadError(ValueError):
    """A toll-free file that cannot be read."""


def load_tollfree(sources: Iterable[TollFreeSource], store: NameReader) -> TollFreeTable:
    """Read every source: ``@name`` from the store (active records only), else a file.

    A missing NVS record contributes nothing (it may be published later); a
    file that cannot be read is a configuration error.
    """
    tables = []
    for source in sources:
        name = source.record_name
        if name is not None:
            record = get_active(store, name)
            if record is not None:
                tables.append(TollFreeTable.from_text(record.value, source.location))
            continue
        try:
            text = Path(source.location).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise TollFreeLoadError(
                f"cannot read toll-free file {source.location}: {exc.strerror}"
            ) from None
        tables.append(TollFreeTable.from_text(text, source.location))
    return TollFreeTable.join(tables)


def lookup_json(
    resolution: Resolution, e164: E164, routes: list[Route], problems: list[str], tip: int
) -> dict[str, Any]:
    """What ``enumer lookup --json`` prints, and the verifier service's lookup page shows."""
    entry = resolution.tollfree
    return {
        "number": e164.digits,
        "aus": e164.aus,
        "height": tip,
        "records": [r.to_json() for r in resolution.records],
        "tollfree": None if entry is None else {"source": entry.source, "pattern": entry.pattern},
        "naptr": [naptr_json(n) for n in resolution.naptrs],
        "routes": [
            {"uri": r.uri, "service": r.service, "order": r.order, "preference": r.preference}
            for r in routes
        ],
        "route_problems": problems,
        "uri": routes[0].uri if routes else None,
    }
