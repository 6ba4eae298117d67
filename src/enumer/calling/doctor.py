"""``enumer doctor``: which hop stops a call from being free, and the one-line fix.

A PBX administrator whose calls still go to the PSTN has five hops to suspect,
from the PBX's side inwards: the dialplan (the number it sends), the resolver
the PBX asks (BIND or Unbound forwarding the ``enum`` zone), the ENUMER
gateway, the chain source behind it (an Emercoin node, or the embedded store)
and the record itself. The probes (:mod:`enumer.calling.probes`) ask each hop
once and hand their raw findings here; :func:`diagnose` is pure: it judges
each hop against the one inside it (the resolver's answer against the
gateway's, the gateway's against what the records say it should serve, the
gateway's height against the chain's), names the first hop where they diverge
with its fix, and ends with what the PBX would dial.

A hop is ``fail`` only when it is where things go wrong: a resolver that
passes on a gateway's silence is ``skip``, a gateway status that reports the
node's outage is ``warn`` when the chain hop itself fails. So the first
``fail`` from the PBX's side is the hop to mend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

import dns.flags
import dns.rcode
import dns.rdatatype

from enumer.calling.compat import PBX_NAMES, PBXS, RecordReport, Status, check_directives
from enumer.calling.pbx import DialplanConfig, bind_stanza, unbound_stanza
from enumer.calling.route import Outcome, QueryResult
from enumer.ddds import select_routes
from enumer.e164 import E164
from enumer.emercoin import BLOCKS_PER_DAY
from enumer.naptr import Naptr
from enumer.nvs import NameRecord
from enumer.records import E2UDirective
from enumer.resolver import RecordVerdict, Resolution
from enumer.trust import SigStatus, TrustError, TrustList

__all__ = [
    "HOPS",
    "STALE_SECONDS",
    "ChainProbe",
    "Diagnosis",
    "Hop",
    "HopStatus",
    "Probes",
    "RecordsProbe",
    "StatusInfo",
    "diagnose",
    "render_text",
]

HOPS: Final = ("dialplan", "resolver", "gateway", "status", "chain", "records", "pbx")
"""The hops in the order the PBX's question travels (``pbx``: what it finally dials)."""

STALE_SECONDS: Final = 300.0
"""A gateway that has not synced for this long serves answers that may be out of date
(the embedded store is polled several times a second, a node every 10 s by default)."""

BEHIND_BLOCKS: Final = 2
"""Blocks the gateway may trail the chain source (a poll interval) before it is stale."""

EXPIRY_WARNING_BLOCKS: Final = 30 * BLOCKS_PER_DAY
"""30 days of Emercoin blocks: renew a served record before it has fewer left."""


class HopStatus(Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass
class Hop:
    """One hop's verdict: a one-line summary, the evidence, and the fix when it fails."""

    name: str
    status: HopStatus
    summary: str
    where: str | None = None
    details: list[str] = field(default_factory=list)
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "hop": self.name,
            "status": self.status.value,
            "where": self.where,
            "summary": self.summary,
            "details": self.details,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class StatusInfo:
    """The gateway's ``status.enumer`` TXT, read field by field (None: not given)."""

    text: str
    version: str | None = None
    height: int | None = None
    served: int | None = None
    synced_ago: float | None = None
    zones: tuple[str, ...] | None = None
    trust: str | None = None
    error: str | None = None

    @classmethod
    def parse(cls, text: str) -> StatusInfo:
        """``enumer V; height H; served numbers N; synced Ss ago; zones Z; trust T[; error: E]``.

        Unknown fields are ignored and missing ones stay None, so an older
        gateway (without zones and trust) is read as far as it goes.
        """
        head, _, error = text.partition("; error: ")
        values: dict[str, Any] = {"text": text, "error": error or None}
        for part in head.split("; "):
            key, _, rest = part.partition(" ")
            try:
                if key == "enumer":
                    values["version"] = rest
                elif key == "height":
                    values["height"] = int(rest)
                elif part.startswith("served numbers "):
                    values["served"] = int(part.removeprefix("served numbers "))
                elif key == "synced" and rest.endswith("s ago"):
                    values["synced_ago"] = float(rest.removesuffix("s ago"))
                elif key == "zones":
                    values["zones"] = tuple(z for z in rest.split("|") if z)
                elif key == "trust":
                    values["trust"] = rest
            except ValueError:
                continue
        return cls(**values)

    @property
    def trust_list(self) -> TrustList | None:
        """The gateway's trust list, or None when absent or unreadable."""
        if not self.trust:
            return None
        try:
            return TrustList.from_text(self.trust)
        except TrustError:
            return None

    def serves(self, zone: str) -> bool | None:
        """Whether the zone is served (``$`` verified or ``~`` unverified); None: unknown."""
        if self.zones is None:
            return None
        return any(z.lstrip("$~").lower() == zone.lower() for z in self.zones)


@dataclass(frozen=True)
class ChainProbe:
    """One chain source asked directly: a node (``--nvs``, ``--conf``, ``--upstream``) or
    the embedded store. ``error_kind`` sorts failures by their fix: ``connection``,
    ``timeout``, ``auth``, ``ibd``, ``warmup``, ``protocol``, ``missing``."""

    label: str
    kind: str
    credentials: str = ""
    chain: str | None = None
    height: int | None = None
    headers: int | None = None
    ibd: bool | None = None
    error: str | None = None
    error_kind: str | None = None
    endpoint: str | None = None

    @property
    def reachable(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.label,
            "kind": self.kind,
            "reachable": self.reachable,
            "chain": self.chain,
            "height": self.height,
            "headers": self.headers,
            "initial_block_download": self.ibd,
            "credentials": self.credentials,
            "error": self.error,
        }


@dataclass(frozen=True)
class RecordsProbe:
    """``lookup``'s verdicts for the number, read from the chain source."""

    source: str
    height: int
    trust: TrustList
    trust_from: str
    resolution: Resolution | None = None
    #: Records of the number that are no longer active (expired or deleted).
    lapsed: tuple[NameRecord, ...] = ()
    #: Values of the active records, by name (for ``record check``).
    values: dict[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Probes:
    """Everything the probes found; :func:`diagnose` turns it into hops."""

    dialled: str
    zone: str
    resolver_addr: tuple[str, int]
    gateway_addr: tuple[str, int]
    number: E164 | None = None
    number_error: str | None = None
    pbx: str | None = None
    region: str | None = None
    area_code: str | None = None
    #: The E.164 digits the generated dialplan (``enumer pbx``) makes of ``dialled``;
    #: None when no rule matches, not computed without ``--region``.
    dialplan_digits: str | None = None
    dialplan_checked: bool = False
    resolver: QueryResult | None = None
    resolver_cd: QueryResult | None = None
    #: ``version.bind`` of the resolver: tells BIND, Unbound, or an ENUMER gateway.
    resolver_version: str | None = None
    gateway: QueryResult | None = None
    #: Asked only when the gateway was silent over UDP: does it answer over TCP?
    gateway_tcp: bool | None = None
    status: StatusInfo | None = None
    status_error: str | None = None
    chain: list[ChainProbe] = field(default_factory=list)
    records: RecordsProbe | None = None
    timeout: float = 1.0


@dataclass
class Diagnosis:
    """The hop list, the first hop to mend, and what the PBX would dial."""

    number: E164 | None
    qname: str | None
    pbx: str | None
    hops: list[Hop]
    dial: str | None
    uri: str | None
    compat: RecordReport | None
    seconds: float = 0.0

    @property
    def over_enumer(self) -> bool:
        """Whether the PBX would call the number over ENUMER (exit status 0)."""
        return self.uri is not None

    @property
    def first_failure(self) -> Hop | None:
        return next((h for h in self.hops if h.status is HopStatus.FAIL), None)

    @property
    def reason(self) -> str | None:
        """Why the call goes to the PSTN (None when it does not)."""
        if self.over_enumer:
            return None
        first = self.first_failure
        return f"{first.name}: {first.summary}" if first is not None else "no ENUM route"

    def to_json(self) -> dict[str, Any]:
        first = self.first_failure
        return {
            "number": self.number.digits if self.number else None,
            "aus": self.number.aus if self.number else None,
            "qname": self.qname,
            "pbx": self.pbx,
            "verdict": "enumer" if self.over_enumer else "pstn",
            "uri": self.uri,
            "dial": self.dial,
            "reason": self.reason,
            "first_failure": first.name if first else None,
            "fix": first.fix if first else None,
            "hops": [h.to_json() for h in self.hops],
            "compat": self.compat.to_json() if self.compat is not None else None,
            "seconds": round(self.seconds, 3),
        }


# -- helpers -------------------------------------------------------------------------------


def show_addr(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _uris(result: QueryResult | None) -> tuple[str, ...]:
    return tuple(r.uri for r in result.routes) if result is not None else ()


def _answered(result: QueryResult | None) -> bool:
    """The server gave a DNS answer (positive or negative), not a failure."""
    return result is not None and result.outcome in (
        Outcome.ANSWER,
        Outcome.NXDOMAIN,
        Outcome.NODATA,
    )


def _rcode(result: QueryResult) -> str:
    if result.outcome is Outcome.TIMEOUT:
        return "timeout"
    if result.response is not None:
        return str(dns.rcode.to_text(result.response.rcode()))
    return str(result.outcome.value)


def _describe(result: QueryResult) -> str:
    """``2 routes: sip:a, sip:b`` or ``NXDOMAIN`` or the failure."""
    uris = _uris(result)
    if uris:
        return f"{len(uris)} route{'s' if len(uris) > 1 else ''}: " + ", ".join(uris)
    if result.outcome is Outcome.ANSWER:
        return f"{len(result.naptrs)} NAPTR, no usable route ({result.reason})"
    return str(result.reason)


def _negative_soa_owner(result: QueryResult) -> str | None:
    """The owner of the SOA in a negative answer: whose zone said "no such name"."""
    if result.response is None:
        return None
    for rrset in result.response.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            return str(rrset.name.to_text(omit_final_dot=True)) or "."
    return None


def _min_ttl(result: QueryResult) -> int | None:
    ttls = [n.ttl for n in result.naptrs if n.ttl is not None]
    return min(ttls) if ttls else None


def _one_line(stanza: str, comment: str) -> str:
    """A configuration stanza without its comments, on one line."""
    lines = [line.strip() for line in stanza.splitlines()]
    return " ".join(line for line in lines if line and not line.startswith(comment))


def resolver_kind(version: str | None) -> str | None:
    """``bind``, ``unbound``, ``enumer`` (the gateway itself) or None, from ``version.bind``."""
    if not version:
        return None
    text = version.lower()
    if text.startswith("enumer"):
        return "enumer"
    if "unbound" in text:
        return "unbound"
    if text[:1].isdigit() or "bind" in text:
        return "bind"  # BIND answers its bare version, "9.18.28-1~deb12u2-Debian"
    return None


def forward_fix(kind: str | None, zone: str, gateway: tuple[str, int]) -> str:
    """The resolver stanza that forwards ``zone`` to the gateway (``enumer pbx bind|unbound``)."""
    config = DialplanConfig(gateway=gateway, suffix=zone)
    where = show_addr(gateway)
    if kind == "unbound":
        return (
            f"unbound.conf: {_one_line(unbound_stanza(config), '#')} "
            f"(in full: enumer pbx unbound --gateway {where})"
        )
    if kind == "bind":
        return (
            f"named.conf: {_one_line(bind_stanza(config), '//')} "
            f"(in full: enumer pbx bind --gateway {where})"
        )
    return (
        f"forward the zone {zone} to the gateway {where}: "
        f"enumer pbx bind --gateway {where} (BIND) or enumer pbx unbound --gateway {where}"
    )


def validation_fix(kind: str | None, zone: str) -> str:
    """What stops a validating resolver from validating the unsigned, undelegated zone."""
    bind = f'BIND options {{ }}: validate-except {{ "{zone}"; }};'
    unbound = f'unbound server: domain-insecure: "{zone}"'
    if kind == "bind":
        return bind
    if kind == "unbound":
        return unbound
    return f"{bind} or {unbound}"


def directives_of(naptrs: Sequence[Naptr]) -> list[E2UDirective]:
    """The answer's terminal NAPTRs as E2U directives, for ``record check``'s PBX models."""
    return [
        E2UDirective(n.service, n.order, n.preference, n.regexp)
        for n in naptrs
        if n.flags.lower() == "u"
    ]


def dialplan_call(pbx: str | None, number: E164, zone: str) -> str:
    """What the chosen PBX's dialplan must send for this number (the ``enumer pbx`` form)."""
    aus = number.aus
    if pbx == "freeswitch":
        return f'<action application="enum" data="{aus} {zone}"/>'
    if pbx == "asterisk":
        return f"Set(ENUMER_URI=${{ENUMLOOKUP({aus},sip,u,1,{zone})}})"
    if pbx == "kamailio":
        return f'$rU = "{aus}"; enum_query("{zone}.");'
    return f"NAPTR {number.to_domain(zone, dotted=True)} (AUS {aus})"


# -- the hops ------------------------------------------------------------------------------


def _dialplan_hop(p: Probes) -> Hop:
    fragment = f"enumer pbx {p.pbx or 'freeswitch'} --region {p.region or 'US'}" + (
        f" --area-code {p.area_code}" if p.area_code else ""
    )
    if p.number is None:
        return Hop(
            "dialplan",
            HopStatus.FAIL,
            f"{p.dialled!r} is not a number the dialplan can put in E.164 ({p.number_error})",
            fix="dial the number in E.164 (+<country code><number>) or give --region "
            f"(and --area-code) as the dialplan does: {fragment}",
        )
    number = p.number
    qname = number.to_domain(p.zone, dotted=True)
    hop = Hop(
        "dialplan",
        HopStatus.OK,
        f"{p.dialled} is {number.aus}: the PBX must ask NAPTR {qname}",
        details=[f"dialplan: {dialplan_call(p.pbx, number, p.zone)}"],
    )
    if p.dialplan_checked and p.dialplan_digits != number.digits:
        hop.status = HopStatus.FAIL
        made = f"+{p.dialplan_digits}" if p.dialplan_digits else "nothing (PSTN as dialled)"
        hop.summary = f"the generated dialplan makes {made} of {p.dialled}, not {number.aus}"
        hop.fix = f"regenerate the dialplan with the PBX's home region: {fragment}"
    return hop


def _resolver_hop(p: Probes) -> Hop:
    where = show_addr(p.resolver_addr)
    kind = resolver_kind(p.resolver_version)
    hop = Hop("resolver", HopStatus.OK, "", where=where)
    if p.resolver_version:
        hop.details.append(f"version.bind: {p.resolver_version}")
    if p.resolver_addr == p.gateway_addr or kind == "enumer":
        hop.status = HopStatus.SKIP
        hop.summary = "the PBX asks the gateway itself (no resolver in between)"
        return hop
    res, gw = p.resolver, p.gateway
    if res is None:
        hop.status, hop.summary = HopStatus.SKIP, "not asked"
        return hop
    hop.details.append(f"answer: {_describe(res)}")
    fix_forward = forward_fix(kind, p.zone, p.gateway_addr)
    if not _answered(gw):
        if _answered(res) and _uris(res):
            hop.status = HopStatus.WARN
            hop.summary = (
                "answers although the gateway does not: a cached answer, or it forwards "
                "to another gateway"
            )
        else:
            hop.status = HopStatus.SKIP
            hop.summary = f"{_describe(res)}; cannot be judged while the gateway does not answer"
        return hop
    assert gw is not None
    if res.outcome is Outcome.ERROR and _rcode(res) == "REFUSED":
        hop.status = HopStatus.FAIL
        hop.summary = "refuses the PBX's queries"
        hop.fix = (
            "allow the PBX's address: BIND allow-query { <PBX network>; }; "
            "unbound access-control: <PBX network> allow"
        )
        return hop
    if res.outcome in (Outcome.ERROR, Outcome.TIMEOUT):
        cd = p.resolver_cd
        if cd is not None and _answered(cd) and _uris(cd) == _uris(gw):
            hop.status = HopStatus.FAIL
            hop.summary = (
                f"{_rcode(res)}: DNSSEC validation fails for the unsigned zone {p.zone} "
                "(with checking disabled it answers like the gateway)"
            )
            hop.fix = validation_fix(kind, p.zone)
            return hop
        hop.status = HopStatus.FAIL
        hop.summary = (
            f"{_rcode(res)} where the gateway answers: it does not reach the gateway "
            f"(no forward zone {p.zone}, or forwarders at a wrong address or port)"
        )
        hop.fix = fix_forward
        return hop
    soa = _negative_soa_owner(res) if res.outcome is not Outcome.ANSWER else None
    same = _uris(res) == _uris(gw)
    if same and soa is not None and soa.lower() != p.zone.lower():
        hop.status = HopStatus.FAIL
        hop.summary = (
            f"{res.outcome.value.upper()} from the zone {soa}, not from the gateway: "
            f"no forward zone {p.zone}"
        )
        hop.fix = fix_forward
        return hop
    if same:
        hop.summary = f"agrees with the gateway ({_describe(res)})"
        return hop
    hop.status = HopStatus.FAIL
    if not _uris(res) and res.outcome is not Outcome.ANSWER:
        if soa is not None and soa.lower() == p.zone.lower():
            ttl = _soa_ttl(res)
            hop.summary = (
                f"{res.outcome.value.upper()} cached from an earlier answer of the gateway "
                f"(negative TTL {ttl} s left), the gateway now answers {_describe(gw)}"
            )
            hop.fix = _flush_fix(kind, res.qname)
        else:
            hop.summary = (
                f"{res.outcome.value.upper()} where the gateway answers: no forward zone {p.zone}"
            )
            hop.fix = fix_forward
        return hop
    ttl = _min_ttl(res)
    if _uris(res) and not _uris(gw):
        hop.summary = (
            f"serves a cached answer the gateway no longer gives ({_describe(res)}, "
            f"TTL {ttl} s left); the gateway answers {_describe(gw)}"
        )
    elif len(res.naptrs) < len(gw.naptrs):
        hop.summary = (
            f"passes on {len(res.naptrs)} of the gateway's {len(gw.naptrs)} NAPTRs: "
            "it strips records, or serves a stale cached answer"
        )
    else:
        hop.summary = (
            f"answers {', '.join(_uris(res)) or 'no route'} where the gateway answers "
            f"{', '.join(_uris(gw)) or 'no route'}: a stale cached answer (TTL {ttl} s left)"
        )
    hop.fix = _flush_fix(kind, res.qname)
    return hop


def _soa_ttl(result: QueryResult) -> int | None:
    if result.response is None:
        return None
    for rrset in result.response.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            return int(rrset.ttl)
    return None


def _flush_fix(kind: str | None, qname: str) -> str:
    bind = f"rndc flushname {qname}"
    unbound = f"unbound-control flush {qname} && unbound-control flush_negative"
    if kind == "bind":
        return bind
    if kind == "unbound":
        return unbound
    return f"flush the resolver's cache: {bind} (BIND) or {unbound} (Unbound)"


def _serve_fix(p: Probes) -> str:
    host, port = p.gateway_addr
    return f"start the gateway: enumer serve --bind {host} --port {port} (docs/gateway.md)"


def _gateway_hop(p: Probes, expected: tuple[str, ...] | None, chain_hop: Hop) -> Hop:
    where = show_addr(p.gateway_addr)
    gw = p.gateway
    hop = Hop("gateway", HopStatus.OK, "", where=where)
    if gw is None:
        hop.status, hop.summary = HopStatus.SKIP, "not asked"
        return hop
    if gw.outcome is Outcome.TIMEOUT and p.gateway_tcp:
        hop.status = HopStatus.FAIL
        hop.summary = (
            f"no answer over UDP ({gw.reason}) but answers over TCP: the gateway is "
            "rate-limiting this client (its limiter drops the queries of a busy client)"
        )
        hop.fix = (
            "exempt the PBX's resolver from the limiter: enumer serve --ratelimit-exempt "
            "ADDRESS/32 (or raise --qps); a resolver in front of the gateway should be exempt"
        )
        return hop
    if gw.outcome is Outcome.TIMEOUT or (gw.outcome is Outcome.ERROR and gw.response is None):
        hop.status = HopStatus.FAIL
        hop.summary = f"no answer ({gw.reason}): the gateway is not running there"
        hop.fix = _serve_fix(p)
        return hop
    if gw.outcome is Outcome.ERROR:
        rcode = _rcode(gw)
        hop.status = HopStatus.FAIL
        if rcode == "REFUSED":
            hop.summary = f"REFUSED: the gateway does not serve the zone {p.zone}"
            hop.fix = (
                f"serve the zone: enumer serve --allowed '${p.zone}' "
                f"(emcdnsallowed=${p.zone} in emercoin.conf)"
            )
        else:
            hop.summary = f"answers {rcode}"
            hop.fix = "look at the gateway's log (enumer serve writes one line per event)"
        return hop
    hop.details.append(f"answer: {_describe(gw)}")
    if gw.routes and gw.response is not None and not gw.response.flags & dns.flags.AA:
        hop.details.append("not authoritative (AA not set): is this an ENUMER gateway?")
    if expected is None:
        hop.summary = f"{_describe(gw)} (the records could not be read to compare)"
        return hop
    if _uris(gw) == expected:
        hop.summary = f"agrees with the records ({_describe(gw)})"
        return hop
    hop.status = HopStatus.FAIL
    said = ", ".join(expected) if expected else "nothing to serve"
    hop.summary = f"answers {_describe(gw)}, the records say: {said}"
    status = p.status
    if chain_hop.status is HopStatus.FAIL:
        hop.status = HopStatus.WARN
        hop.summary += " (the chain source fails, see below)"
    elif (
        status is not None
        and p.records is not None
        and (status.trust_list not in (None, p.records.trust))
    ):
        hop.summary += (
            f" (the gateway trusts {status.trust}, the records were judged with "
            f"{p.records.trust.to_text()})"
        )
        hop.fix = (
            f"give the gateway the trust list: enumtrust={p.records.trust.to_text()} in "
            f"emercoin.conf, or enumer serve --trust '{p.records.trust.to_text()}'"
        )
    else:
        hop.fix = (
            "the gateway is behind the records: see its status and log; "
            "kill -HUP the gateway or restart enumer serve"
        )
    return hop


def _status_hop(p: Probes, chain_hop: Hop) -> Hop:
    where = show_addr(p.gateway_addr)
    hop = Hop("status", HopStatus.OK, "", where=where)
    info = p.status
    if info is None:
        gateway_up = _answered(p.gateway)
        hop.status = HopStatus.WARN if gateway_up else HopStatus.SKIP
        hop.summary = (
            f"no status.enumer TXT ({p.status_error}): not an ENUMER gateway, or an old one"
            if gateway_up
            else f"no status.enumer TXT ({p.status_error})"
        )
        return hop
    hop.details.append(f"status.enumer: {info.text}")
    parts = []
    if info.height is not None:
        parts.append(f"height {info.height}")
    if info.synced_ago is not None:
        parts.append(f"synced {info.synced_ago:.0f}s ago")
    if info.served is not None:
        parts.append(f"{info.served} numbers served")
    if info.zones is not None:
        parts.append(f"zones {'|'.join(info.zones)}")
    if info.trust is not None:
        parts.append(f"trust {info.trust}")
    hop.summary = ", ".join(parts) or info.text
    problems: list[str] = []
    fix: str | None = None
    # Only a REFUSED answer proves it: a suffix rule (emcdnssuffix) may map the zone asked.
    zone_missing = info.serves(p.zone) is False and (
        p.gateway is None or (p.gateway.outcome is Outcome.ERROR and _rcode(p.gateway) == "REFUSED")
    )
    if zone_missing:
        problems.append(f"the zone {p.zone} is not served")
        fix = f"enumer serve --allowed '${p.zone}' (emcdnsallowed=${p.zone} in emercoin.conf)"
    if info.error:
        problems.append(f"the gateway cannot update: {info.error}")
        fix = fix or chain_hop.fix or "look at the gateway's log; check its --nvs or --conf"
    if info.synced_ago is not None and info.synced_ago > STALE_SECONDS:
        problems.append(f"last synced {info.synced_ago:.0f}s ago: its answers may be stale")
        fix = fix or chain_hop.fix or "look at the gateway's log; check its --nvs or --conf"
    heights = [c.height for c in p.chain if c.height is not None]
    if info.height is not None and heights and max(heights) - info.height > BEHIND_BLOCKS:
        problems.append(f"behind the chain source (height {info.height} < {max(heights)})")
        fix = fix or (
            "the gateway does not follow the chain source: check its --nvs/--conf "
            "(the node it reads), or restart enumer serve"
        )
    if (
        p.records is not None
        and p.records.trust_from == "--trust"
        and info.trust_list not in (None, p.records.trust)
    ):
        hop.details.append(
            f"the gateway trusts {info.trust}, not --trust {p.records.trust.to_text()}"
        )
    if problems:
        hop.summary += ": " + "; ".join(problems)
        # The node's outage shows here too; the chain hop is the one to mend then.
        hop.status = (
            HopStatus.WARN
            if chain_hop.status is HopStatus.FAIL and not zone_missing
            else HopStatus.FAIL
        )
        hop.fix = fix
    return hop


def _chain_fix(probe: ChainProbe, timeout: float) -> str:
    where = probe.endpoint or probe.label
    kind = probe.error_kind
    if kind == "connection":
        return (
            f"start the node (emercoind -server, or enumer node) and check rpcconnect/rpcport "
            f"in emercoin.conf: nothing answers at {where}"
        )
    if kind == "auth":
        return (
            "give the node's credentials: rpcuser/rpcpassword in emercoin.conf, or its "
            ".cookie (rewritten at every node start: use --conf so it is read again)"
        )
    if kind == "timeout":
        return (
            f"the node at {where} does not answer within {timeout:g} s: is it stalled or "
            "overloaded? (emercoin-cli getblockchaininfo)"
        )
    if kind == "ibd":
        return "wait until the node has finished its initial block download"
    if kind == "warmup":
        return "wait: the node is still starting (loading the block index)"
    if kind == "missing":
        return "give the chain source: --nvs URL, --conf emercoin.conf, or --store DIR"
    return f"check the chain source {probe.label}: {probe.error}"


def _chain_hop(p: Probes) -> Hop:
    hop = Hop("chain", HopStatus.OK, "")
    if not p.chain:
        hop.status, hop.summary = HopStatus.SKIP, "no chain source given"
        return hop
    hop.where = p.chain[0].label
    for probe in p.chain:
        if probe.reachable:
            ibd = (
                ""
                if probe.ibd is None
                else f", initial block download {'yes' if probe.ibd else 'no'}"
            )
            hop.details.append(
                f"{probe.label}: {probe.kind}, chain {probe.chain or '?'}, height "
                f"{probe.height}{ibd}" + (f", {probe.credentials}" if probe.credentials else "")
            )
        else:
            hop.details.append(f"{probe.label}: {probe.error}")
    failing = [c for c in p.chain if not c.reachable or c.ibd]
    if failing:
        first = failing[0]
        hop.status = HopStatus.FAIL
        hop.where = first.label
        if first.ibd and first.reachable:
            hop.summary = (
                f"in initial block download (height {first.height} of {first.headers} headers)"
            )
            hop.fix = _chain_fix(
                ChainProbe(first.label, first.kind, error_kind="ibd", endpoint=first.endpoint),
                p.timeout,
            )
        else:
            hop.summary = str(first.error)
            hop.fix = _chain_fix(first, p.timeout)
        if len(failing) < len(p.chain):
            hop.status = HopStatus.WARN
            hop.summary = f"{len(failing)} of {len(p.chain)} sources fail: {hop.summary}"
        return hop
    heights = {c.label: c.height for c in p.chain if c.height is not None}
    if len(set(heights.values())) > 1 and (
        max(heights.values()) - min(heights.values()) > BEHIND_BLOCKS
    ):
        hop.status = HopStatus.WARN
        hop.summary = "the sources disagree: " + ", ".join(
            f"{label} at height {h}" for label, h in heights.items()
        )
        return hop
    first_ok = p.chain[0]
    hop.summary = f"{first_ok.kind} at height {first_ok.height}" + (
        f" ({first_ok.chain})" if first_ok.chain else ""
    )
    return hop


def _verdict_fix(verdict: RecordVerdict, number: E164, trust: TrustList) -> tuple[str, str]:
    """Summary and fix for an active record that is not served."""
    name = verdict.name
    ident = (trust.verifiers[0] if trust.verifiers else "ver:enum").removeprefix("ver:")
    sign = f"enumer verifier sign {ident} {name} --append"
    if not verdict.signatures:
        return (
            f"{name} is not signed",
            f"have it signed by a trusted verifier ({trust.to_text()}): send {name} to the "
            f"verifier, or, if you run it: {sign}",
        )
    statuses = {s.status for s in verdict.signatures}
    if SigStatus.REVOKED in statuses:
        who = ", ".join(s.verifier for s in verdict.signatures if s.status is SigStatus.REVOKED)
        return (
            f"{name}: the signature of {who} is revoked (SRL)",
            f"the SRL lists {name}: publish a new record (enumer record new {number.aus} "
            f"--sip sip:...) and have it signed; ask {who} why it revoked",
        )
    if statuses == {SigStatus.UNTRUSTED}:
        who = "|".join(s.verifier for s in verdict.signatures)
        wanted = f"{trust.to_text()}|{who}"
        return (
            f"{name} is signed by {who}, which the gateway does not trust ({trust.to_text()})",
            f"trust it: enumtrust={wanted} in emercoin.conf (or enumer serve --trust "
            f"'{wanted}'), or have it signed by a trusted verifier: {sign}",
        )
    return (
        f"{name}: no valid trusted signature ({verdict.reason})",
        f"ask the verifier to sign it again: {sign}",
    )


def _records_hop(p: Probes) -> tuple[Hop, tuple[str, ...] | None]:
    """The record hop, and the routes the records say the gateway should serve."""
    hop = Hop("records", HopStatus.OK, "")
    rec = p.records
    if p.number is None:
        hop.status, hop.summary = HopStatus.SKIP, "no number"
        return hop, None
    if rec is None or rec.resolution is None:
        hop.status = HopStatus.SKIP
        hop.summary = "not read" + (f": {rec.error}" if rec and rec.error else "")
        return hop, None
    number = p.number
    res = rec.resolution
    hop.where = rec.source
    hop.details.append(f"trust {rec.trust.to_text()} (from {rec.trust_from}), height {rec.height}")
    for verdict in res.records:
        mark = "served" if verdict.verified else "ignored"
        hop.details.append(f"{verdict.name}: {mark}: {verdict.reason}")
    for lapsed in rec.lapsed:
        state = "deleted" if lapsed.deleted else f"expired at height {lapsed.expires_at}"
        hop.details.append(f"{lapsed.name}: {state}")
    routes, problems = select_routes(res.naptrs, number.aus)
    expected = tuple(r.uri for r in routes)
    if routes:
        served = [v for v in res.records if v.verified and v.naptrs]
        hop.summary = f"{res.source}: {', '.join(expected)}"
        soon = [v for v in served if 0 <= v.expires_at - rec.height < EXPIRY_WARNING_BLOCKS]
        if soon:
            first = soon[0]
            left = first.expires_at - rec.height
            hop.status = HopStatus.WARN
            hop.summary += (
                f"; {first.name} expires in {left} blocks (about {left // BLOCKS_PER_DAY} days)"
            )
            hop.fix = (
                f"renew it: enumer name show {first.name} --json | jq -r .value | "
                f"enumer name update {first.name} - 365"
            )
        return hop, expected
    hop.status = HopStatus.FAIL
    if res.naptrs:
        hop.summary = "served, but no usable SIP route: " + "; ".join(problems)
        hop.fix = f"check the directives: enumer record check {number.aus}"
        return hop, expected
    if not res.records:
        if rec.lapsed:
            name = rec.lapsed[0].name
            hop.summary = f"{name} has lapsed (expired or deleted): nothing to serve"
            hop.fix = (
                f"register it again: enumer record new {number.aus} --sip sip:... "
                "and have it signed"
            )
        else:
            hop.summary = f"no record enum:{number.digits}:N"
            hop.fix = (
                f"publish one: enumer record new {number.aus} --sip sip:user@your-pbx, "
                "then have it signed by a trusted verifier"
            )
        return hop, expected
    unserved = [v for v in res.records if not v.verified]
    if not unserved:
        hop.summary = "signed, but no E2U directive to serve"
        hop.fix = f"add a directive: enumer name update {res.records[0].name} ..."
        return hop, expected
    hop.summary, hop.fix = _verdict_fix(unserved[0], number, rec.trust)
    if len(unserved) > 1:
        hop.summary += f" (and {len(unserved) - 1} more record(s) not served)"
    return hop, expected


def _pbx_hop(p: Probes, first_failure: Hop | None) -> tuple[Hop, str | None, str | None, Any]:
    """What the PBX would dial: its answer (through the resolver), DDDS and ``record check``."""
    hop = Hop("pbx", HopStatus.OK, "", where=PBX_NAMES.get(p.pbx or "enumer"))
    if p.number is None:
        hop.status, hop.summary = HopStatus.FAIL, "no number: the PBX calls the PSTN as dialled"
        return hop, None, None, None
    direct = p.resolver_addr == p.gateway_addr or resolver_kind(p.resolver_version) == "enumer"
    answer = p.gateway if direct else p.resolver
    if answer is None or not answer.routes:
        hop.status = HopStatus.FAIL
        cause = (
            f"first failure: {first_failure.name}"
            if first_failure
            else (answer.reason if answer is not None else "no answer")
        )
        hop.summary = f"no ENUM route in the PBX's answer: it calls the PSTN ({cause})"
        return hop, None, None, None
    report = check_directives(directives_of(answer.naptrs), p.number.aus)
    uri: str | None = answer.routes[0].uri
    dial = uri
    for pbx in PBXS:
        verdict = report.summary[pbx]
        hop.details.append(f"{PBX_NAMES[pbx]}: {verdict.status.value}: {verdict.reason}")
    if p.pbx is None:
        hop.summary = f"dials {uri} (ENUMER's DDDS; give --pbx for the PBX's own rules)"
        return hop, uri, dial, report
    verdict = report.summary[p.pbx]
    name = PBX_NAMES[p.pbx]
    if verdict.status is Status.NO:
        hop.status = HopStatus.FAIL
        hop.summary = f"{name} uses no route of the answer ({verdict.reason}): PSTN"
        hop.fix = f"see enumer record check {p.number.aus}: change the record's directives" + (
            ", or add a route for E2U+voice:sip to enum.conf.xml" if p.pbx == "freeswitch" else ""
        )
        return hop, None, None, report
    uri = verdict.uri or uri
    dial = verdict.dial or uri
    hop.summary = f"{name} dials {dial}"
    if verdict.status is not Status.YES:
        hop.status = HopStatus.WARN
        hop.summary += f" ({verdict.status.value}: {verdict.reason})"
        hop.fix = f"see enumer record check {p.number.aus}"
    return hop, uri, dial, report


def diagnose(p: Probes) -> Diagnosis:
    """Judge every hop against the one inside it and conclude (pure: no I/O)."""
    dialplan = _dialplan_hop(p)
    chain = _chain_hop(p)
    records, expected = _records_hop(p)
    status = _status_hop(p, chain)
    gateway = _gateway_hop(p, expected, chain)
    resolver = (
        _resolver_hop(p)
        if p.number is not None
        else Hop("resolver", HopStatus.SKIP, "no number", where=show_addr(p.resolver_addr))
    )
    hops = [dialplan, resolver, gateway, status, chain, records]
    first = next((h for h in hops if h.status is HopStatus.FAIL), None)
    pbx, uri, dial, report = _pbx_hop(p, first)
    hops.append(pbx)
    qname = p.number.to_domain(p.zone, dotted=True) if p.number else None
    return Diagnosis(p.number, qname, p.pbx, hops, dial, uri, report)


# -- text ----------------------------------------------------------------------------------

_MARKS: Final = {
    HopStatus.OK: "ok  ",
    HopStatus.WARN: "warn",
    HopStatus.FAIL: "FAIL",
    HopStatus.SKIP: "skip",
}


def render_text(diagnosis: Diagnosis) -> str:
    """The hop list for a terminal: one line per hop, its evidence, then the verdict."""
    lines: list[str] = []
    for hop in diagnosis.hops:
        where = f" ({hop.where})" if hop.where else ""
        lines.append(f"{_MARKS[hop.status]} {hop.name}{where}: {hop.summary}")
        lines.extend(f"       {d}" for d in hop.details)
        if hop.fix and hop.status in (HopStatus.FAIL, HopStatus.WARN):
            lines.append(f"       fix: {hop.fix}")
    first = diagnosis.first_failure
    if diagnosis.over_enumer:
        lines.append(f"verdict: called over ENUMER: {diagnosis.dial}")
        if first is not None:
            lines.append(f"but {first.name} fails: {first.summary}")
    else:
        lines.append(f"verdict: the PBX calls the PSTN ({diagnosis.reason})")
    if first is not None and first.fix:
        lines.append(f"first hop to mend: {first.name}: {first.fix}")
    return "\n".join(lines) + "\n"
