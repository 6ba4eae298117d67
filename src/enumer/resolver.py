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

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enumer import crypto
from enumer.bound import SIG_ONLY, BoundStatus, BoundVerdict, Policy, has_bound_lines, judge_bound
from enumer.ddds import Route
from enumer.e164 import E164
from enumer.naptr import DEFAULT_TTL, Naptr
from enumer.nvs import NameReader, NameRecord, NvsError, get_active, tip_time
from enumer.records import EnumName, EnumValue, unread_e2u_reason
from enumer.trust import (
    SignatureCache,
    SigStatus,
    SigVerdict,
    TollFreeEntry,
    TollFreeSource,
    TollFreeTable,
    TrustList,
    Verifier,
    check_signatures,
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
    #: The bound signatures' verdict (SPEC 11); None for a record without VSIG or
    #: OSIG lines judged in compat mode.
    bound: BoundVerdict | None = None
    policy: Policy = Policy.COMPAT

    @property
    def strict(self) -> bool:
        """Whether the record is strictly valid (VSIG and OSIG)."""
        return self.bound is not None and self.bound.strict

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verified": self.verified,
            "reason": self.reason,
            "policy": self.policy.value,
            "strict": self.strict,
            "owner": self.address,
            "expires_at": self.expires_at,
            "signatures": [s.to_json() for s in self.signatures],
            "bound": None if self.bound is None else self.bound.to_json(),
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
    policy: Policy = Policy.COMPAT,
    chain_time: int = 0,
    network: crypto.Network | None = None,
    accepted_time: int | None = None,
    previous_owners: Callable[[str], Sequence[str]] | None = None,
) -> RecordVerdict:
    """Whether one active record is served under ``policy``, and the line that decided.

    compat: any valid trusted ``SIG=`` or strict validity serves it; strict: only
    strict validity (SPEC section 11), with ``not-after`` read at ``chain_time``,
    the tip's block time.  With ``require_signature`` off (a ``~enum`` zone, for
    tests and private networks) every active record is served and signatures are
    only reported.  ``previous_owners`` (lookup's, not the gateway's) gives the
    record's earlier owners, to name the owner a VSIG was made for.
    """
    value = EnumValue.from_text(record.value)
    verdicts = check_signatures(
        record.name, value.signatures, trust, verifier, srl_value, cache, exact_srl
    )
    bound: BoundVerdict | None = None
    if has_bound_lines(record.value):

        def judge(owners: Sequence[str]) -> BoundVerdict:
            return judge_bound(
                record.name,
                record.address,
                record.value,
                trust,
                verifier,
                srl_value,
                cache,
                chain_time,
                network,
                exact_srl,
                accepted_time,
                owners,
            )

        bound = judge(())
        if previous_owners is not None and any(
            c.status is BoundStatus.BAD_SIGNATURE for c in bound.checks
        ):
            bound = judge(previous_owners(record.name))
    elif policy is Policy.STRICT:
        bound = SIG_ONLY
    valid = [v for v in verdicts if v.status is SigStatus.VALID]
    if bound is not None and bound.strict:
        served, reason = True, f"served by {bound.reason}"
    elif policy is Policy.STRICT:
        why = bound.reason if bound is not None and bound.checks else ""
        if not why:
            why = "SIG= only" if verdicts else "no signature"
        served, reason = False, f"not served in strict mode: {why}"
    elif valid:
        served, reason = True, valid[0].detail
        if bound is not None:
            reason += f"; not strictly valid: {bound.reason}"
    else:
        served = False
        if not verdicts:
            reason = "no signature"
        else:
            reason = "; ".join(f"{v.verifier}: {v.status.value} ({v.detail})" for v in verdicts)
        if bound is not None:
            reason += f"; not strictly valid: {bound.reason}"
    if not require_signature and not served:
        served, reason = True, f"served unsigned (zone without signature check); {reason}"
    if served:
        kept, dropped = value.servable_naptrs()
        naptrs = tuple(kept)
        if dropped:
            reason += "; " + "; ".join(dropped)
        if not naptrs:
            # Nothing reaches the answer: saying "served" would contradict its NXDOMAIN.
            why = (
                "no E2U directive a gateway can serve"
                if value.directives
                else unread_e2u_reason(record.value)
            )
            served, reason = False, f"not served: {why}; {reason}"
    else:
        naptrs = tuple(value.naptrs())
    return RecordVerdict(
        record.name,
        served,
        reason,
        verdicts,
        naptrs,
        record.address,
        record.expires_at,
        bound,
        policy,
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
    policy: Policy = Policy.COMPAT
    #: The chain time (tip block time) decisions are made at; None reads the
    #: store's at each :meth:`resolve`.  The gateway sets it once per build/refresh.
    chain_time: int | None = None
    #: Whether to read a record's history to explain a VSIG made for an earlier
    #: owner (``lookup``); the gateway does not need the explanation.
    explain: bool = False
    #: Freshness (SPEC 11): the newest OSIG time accepted per name, never undercut.
    accepted: dict[str, int] = field(default_factory=dict, repr=False)
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
            pinned = self.trust.pin(name)
            if pinned is not None and found.owner and found.owner != pinned:
                # ver:<id>@<address>: the key is the operator's, not the chain's (SPEC 12).
                found = Verifier(
                    name,
                    None,
                    found.srl,
                    f"{name} is owned by {found.owner}, not by the pinned {pinned}",
                    found.owner,
                )
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

    def now(self) -> int:
        """The chain time decisions are made at: the tip's block time."""
        return self.chain_time if self.chain_time is not None else tip_time(self.store)

    def previous_owners(self, name: str) -> list[str]:
        """Every owner address in the name's history, newest first (none when the
        store cannot tell, e.g. a node without a wallet)."""
        try:
            history = self.store.history(name, True)
        except NvsError:
            return []
        return list(dict.fromkeys(op.address for op in reversed(history)))

    def judge(self, record: NameRecord, chain_time: int | None = None) -> RecordVerdict:
        verdict = judge_record(
            record,
            self.trust,
            self.verifier,
            self.srl_value,
            self.cache,
            self.exact_srl,
            self.require_signature,
            self.policy,
            chain_time if chain_time is not None else self.now(),
            self.network,
            self.accepted.get(record.name),
            self.previous_owners if self.explain else None,
        )
        accepted = verdict.bound.accepted_time if verdict.bound is not None else None
        if accepted is not None:
            self.accepted[record.name] = accepted
        return verdict

    def examine(
        self, records: Iterable[NameRecord], tip: int, chain_time: int | None = None
    ) -> list[RecordVerdict]:
        """Verdicts for the active ENUM records among ``records`` (N order kept)."""
        now = chain_time
        out = []
        for record in records:
            if record.is_active(tip) and EnumName.matches(record.name):
                if now is None:
                    now = self.now()
                out.append(self.judge(record, now))
        return out

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
    resolution: Resolution,
    e164: E164,
    routes: list[Route],
    problems: list[str],
    tip: int,
    policy: Policy = Policy.COMPAT,
) -> dict[str, Any]:
    """What ``enumer lookup --json`` prints, and the verifier service's lookup page shows."""
    entry = resolution.tollfree
    return {
        "number": e164.digits,
        "aus": e164.aus,
        "height": tip,
        "signatures": policy.value,
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
