"""Bound signatures (SPEC section 11): ``VSIG=`` and ``OSIG=`` value lines.

The reference ``SIG=`` line signs only the record's *name*, so it survives two
attacks: a stranger who re-registers an expired verified name copies the old
line, and any relay between the chain and the PBX rewrites the E2U lines while
the line still verifies.  Two further lines close both, and emcdns ignores them
(it reads only lines starting with ``e2u``, ``ttl`` or ``sig``):

* ``VSIG=ver:<id>|<not-after>|<base64>``: the verifier binds the name to the
  owner address that proved the number, until a UTC date;
* ``OSIG=<time>|<base64>``: the owner binds the record's directives (their
  digest) to its own key, at a Unix time.

A record is *strictly valid* when a trusted verifier's VSIG names the record's
current owner, has not expired at the chain's time and is not revoked, and an
OSIG by that owner covers the record's current directives.  Everything here is
pure: records, verifier states, SRL values and the chain's time come in, the
verdict and its explanation go out.  The ECDSA checks go through the same
:class:`~enumer.trust.SignatureCache` as ``SIG=`` lines, so a gateway checks
each line once per change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from enumer import crypto
from enumer.records import MAX_SIGNATURE_ENTRIES, LintIssue, Severity
from enumer.trust import SignatureCache, TrustList, Verifier, revoked_by

#: Version tags that open the two messages (SPEC section 11).
VSIG_TAG = "enumer-vsig:1"
OSIG_TAG = "enumer-osig:1"
#: The default validity of a VSIG: the re-verification period, in days.
DEFAULT_VALID_DAYS = 182
#: Keys (text before the first ``=``) of the lines the digest leaves out.
SIGNATURE_KEYS = frozenset({"sig", "vsig", "osig"})
#: "Blanks" of the digest rule: POSIX ``[:blank:]``, space and tab.
_BLANKS = " \t"
_LINE_BREAKS = re.compile(r"[\r\n]")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME = re.compile(r"0|[1-9][0-9]{0,11}")
#: The last second of year 9999: later times cannot be shown as dates.
MAX_TIME = 253402300799
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
#: Cheap pre-filter: does a value have a line that may be a VSIG or OSIG line?
_MAYBE_BOUND = re.compile(r"(?:^|[\r\n])[ \t]*[vVoO][sS][iI][gG][ \t]*=")


class Policy(Enum):
    """Which signatures make a gateway serve a record (SPEC section 11)."""

    #: As emcdns: a valid ``SIG=`` of a trusted verifier, or strict validity.
    COMPAT = "compat"
    #: Only strict validity (VSIG + OSIG).
    STRICT = "strict"


#: The help of every ``--signatures`` option (serve, lookup).
POLICY_HELP = (
    "Which signatures serve a record: compat (as emcdns: a valid SIG= of a trusted "
    "verifier, or VSIG+OSIG) or strict (only VSIG+OSIG, SPEC 11)."
)
POLICY_NAMES = tuple(p.value for p in Policy)


class BoundLineError(ValueError):
    """A VSIG or OSIG line that cannot be read; the message is one precise line."""


# -- the digest and the messages ------------------------------------------------------


def line_key(line: str) -> str | None:
    """The lower-case text before the first ``=`` (blanks around it ignored), None
    for a line without ``=``."""
    key, eq, _ = line.partition("=")
    return key.strip(_BLANKS).lower() if eq else None


def directive_lines(value: str) -> list[str]:
    """The record's directives as the digest sees them: every non-empty line,
    blanks trimmed, except signature lines (SIG, VSIG, OSIG)."""
    out = []
    for raw in _LINE_BREAKS.split(value):
        line = raw.strip(_BLANKS)
        if line and line_key(line) not in SIGNATURE_KEYS:
            out.append(line)
    return out


def directives_digest(value: str) -> str:
    """Lower-case hex SHA-256 of the directives joined with ``\\n`` (no final one).

    Adding or removing signature lines, blank lines or blanks around lines never
    changes it; changing any E2U, TTL or other line does.
    """
    return hashlib.sha256("\n".join(directive_lines(value)).encode()).hexdigest()


def vsig_message(name: str, owner: str, not_after: dt.date | str) -> str:
    """What the verifier signs: ``enumer-vsig:1 <name> <owner-address> <not-after>``."""
    day = not_after if isinstance(not_after, str) else not_after.isoformat()
    return f"{VSIG_TAG} {name} {owner} {day}"


def osig_message(name: str, time: int, digest: str) -> str:
    """What the owner signs: ``enumer-osig:1 <name> <time> <digest>``."""
    return f"{OSIG_TAG} {name} {time} {digest}"


def utc_day(unix_time: int) -> dt.date:
    """The UTC date of a Unix time."""
    return dt.datetime.fromtimestamp(unix_time, dt.UTC).date()


def show_time(unix_time: int) -> str:
    """An OSIG time as people read it: ``2026-12-01T10:00Z``."""
    return dt.datetime.fromtimestamp(unix_time, dt.UTC).strftime("%Y-%m-%dT%H:%MZ")


# -- the lines --------------------------------------------------------------------------


@dataclass(frozen=True)
class VsigLine:
    """``VSIG=ver:<id>|<not-after>|<base64>``."""

    verifier: str
    not_after: dt.date
    signature: str

    @classmethod
    def from_text(cls, line: str) -> VsigLine:
        if line_key(line) != "vsig":
            raise BoundLineError(f"not a VSIG line: {line!r}")
        parts = [p.strip(_BLANKS) for p in line.partition("=")[2].split("|")]
        if len(parts) != 3:
            raise BoundLineError(
                f"VSIG line needs three fields ver:<id>|<not-after>|<signature>: {line!r}"
            )
        verifier, day, signature = parts
        if not verifier.startswith("ver:") or len(verifier) <= 4:
            raise BoundLineError(f"VSIG verifier {verifier!r} is not a ver: name")
        return cls(verifier, parse_day(day, "VSIG not-after"), check_base64(signature, "VSIG"))

    def to_text(self) -> str:
        return f"VSIG={self.verifier}|{self.not_after.isoformat()}|{self.signature}"

    def message(self, name: str, owner: str) -> str:
        return vsig_message(name, owner, self.not_after)


@dataclass(frozen=True)
class OsigLine:
    """``OSIG=<time>|<base64>``."""

    time: int
    signature: str

    @classmethod
    def from_text(cls, line: str) -> OsigLine:
        if line_key(line) != "osig":
            raise BoundLineError(f"not an OSIG line: {line!r}")
        parts = [p.strip(_BLANKS) for p in line.partition("=")[2].split("|")]
        if len(parts) != 2:
            raise BoundLineError(f"OSIG line needs two fields <time>|<signature>: {line!r}")
        time_text, signature = parts
        if not _TIME.fullmatch(time_text):
            raise BoundLineError(
                f"OSIG time {time_text!r} is not Unix seconds (decimal, no leading zeros)"
            )
        if int(time_text) > MAX_TIME:
            raise BoundLineError(f"OSIG time {time_text} is after the year 9999")
        return cls(int(time_text), check_base64(signature, "OSIG"))

    def to_text(self) -> str:
        return f"OSIG={self.time}|{self.signature}"


def parse_day(text: str, what: str) -> dt.date:
    if not _DATE.fullmatch(text):
        raise BoundLineError(f"{what} {text!r} is not a date YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise BoundLineError(f"{what} {text!r} is not a date YYYY-MM-DD") from None


def check_base64(text: str, what: str) -> str:
    if not text or not _BASE64.fullmatch(text):
        raise BoundLineError(f"{what} signature {text!r} is not base64")
    return text


@dataclass(frozen=True)
class RawBoundLine:
    """One VSIG or OSIG line of a value: where it is, and what it says (or why it
    cannot be read)."""

    number: int  # 1-based among the value's lines (CR, LF and CR LF each end one)
    text: str
    parsed: VsigLine | OsigLine | None
    problem: str = ""


def bound_lines(value: str) -> Iterator[RawBoundLine]:
    """Every VSIG and OSIG line of a value, parsed."""
    if not _MAYBE_BOUND.search(value):
        return
    number = 0
    for raw in re.split(r"\r\n|\r|\n", value):
        number += 1
        key = line_key(raw)
        if key not in ("vsig", "osig"):
            continue
        text = raw.strip(_BLANKS)
        try:
            parsed: VsigLine | OsigLine = (
                VsigLine.from_text(text) if key == "vsig" else OsigLine.from_text(text)
            )
        except BoundLineError as exc:
            yield RawBoundLine(number, text, None, str(exc))
            continue
        yield RawBoundLine(number, text, parsed)


def has_bound_lines(value: str) -> bool:
    """Whether a value may hold VSIG or OSIG lines (a cheap test before parsing)."""
    return _MAYBE_BOUND.search(value) is not None


def without_lines(value: str, key: str, keep: Callable[[str], bool] | None = None) -> str:
    """``value`` without its lines of ``key`` (kept when ``keep`` says so), every
    other line kept byte for byte."""
    kept = [
        raw
        for raw in re.split(r"(?<=\n)|(?<=\r)(?!\n)", value)
        if line_key(raw.rstrip("\r\n")) != key or (keep is not None and keep(raw))
    ]
    return "".join(kept).rstrip("\r\n")


def with_line(value: str, line: str) -> str:
    """``value`` with ``line`` appended as a line of its own."""
    base = value.rstrip("\r\n")
    return f"{base}\n{line}" if base else line


# -- verdicts -----------------------------------------------------------------------------


class BoundStatus(Enum):
    VALID = "valid"
    UNTRUSTED = "untrusted verifier"
    VERIFIER_UNUSABLE = "verifier unusable"
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad signature"
    WRONG_OWNER = "owner changed"
    EXPIRED = "expired"
    REVOKED = "revoked"
    STALE = "stale"  # OSIG: does not verify over the current directives
    OWNER_CANNOT_SIGN = "owner cannot sign"
    OLDER = "older than accepted"
    SUPERSEDED = "superseded"  # OSIG older than the newest valid one: not checked
    NOT_EXAMINED = "not examined"  # beyond MAX_SIGNATURE_ENTRIES bound lines of a record


@dataclass(frozen=True)
class BoundCheck:
    """The verdict on one VSIG or OSIG line."""

    kind: str  # "VSIG" or "OSIG"
    line: int
    status: BoundStatus
    detail: str
    verifier: str = ""
    not_after: str = ""
    time: int | None = None

    @property
    def valid(self) -> bool:
        return self.status is BoundStatus.VALID

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "line": self.line,
            "status": self.status.value,
            "detail": self.detail,
        }
        if self.kind == "VSIG":
            out["verifier"] = self.verifier
            out["not_after"] = self.not_after
        else:
            out["time"] = self.time
        return out


@dataclass(frozen=True)
class BoundVerdict:
    """Whether a record is strictly valid, and the line that decided it."""

    strict: bool
    reason: str
    checks: tuple[BoundCheck, ...] = ()
    vsig: BoundCheck | None = None
    osig: BoundCheck | None = None
    #: The first UTC day (ordinal) on which the verdict may change by itself (a valid
    #: VSIG expires); 0 when it cannot.
    changes_on: int = 0

    @property
    def revoked(self) -> bool:
        return any(c.status is BoundStatus.REVOKED for c in self.checks)

    @property
    def accepted_time(self) -> int | None:
        """The OSIG time a consumer accepts with this verdict (freshness, SPEC 11)."""
        return self.osig.time if self.strict and self.osig is not None else None

    def to_json(self) -> dict[str, Any]:
        return {
            "strict": self.strict,
            "reason": self.reason,
            "lines": [c.to_json() for c in self.checks],
        }


#: The verdict of a record without any bound line.
SIG_ONLY = BoundVerdict(False, "SIG= only")


def judge_bound(
    name: str,
    owner: str,
    value: str,
    trust: TrustList,
    verifier: Callable[[str], Verifier],
    srl_value: Callable[[str], str | None],
    cache: SignatureCache,
    chain_time: int,
    network: crypto.Network | None = None,
    exact_srl: bool = False,
    accepted_time: int | None = None,
    previous_owners: Sequence[str] = (),
) -> BoundVerdict:
    """SPEC section 11's strict validity of the record ``name`` owned by ``owner``.

    ``chain_time`` is the block time of the chain's tip (every gateway on the same
    chain decides alike); ``accepted_time`` the newest OSIG time already accepted
    for this name, which an older OSIG cannot undercut (freshness);
    ``previous_owners`` the record's earlier owner addresses, tried only to
    explain a VSIG that does not verify (``lookup`` passes them, a gateway not).
    """
    lines = list(bound_lines(value))
    if not lines:
        return SIG_ONLY
    today = utc_day(chain_time)
    checks: list[BoundCheck] = []
    # Each bound line may cost an ECDSA recovery and anyone can write a record: examine a
    # bounded number of them (a real record has one VSIG per verifier and one OSIG).
    for raw in lines[MAX_SIGNATURE_ENTRIES:]:
        kind = "VSIG" if line_key(raw.text) == "vsig" else "OSIG"
        detail = f"over the {MAX_SIGNATURE_ENTRIES} bound lines examined per record"
        checks.append(BoundCheck(kind, raw.number, BoundStatus.NOT_EXAMINED, detail))
    lines = lines[:MAX_SIGNATURE_ENTRIES]
    vsigs: list[BoundCheck] = []
    osigs: list[tuple[OsigLine, RawBoundLine]] = []
    for raw in lines:
        if raw.parsed is None:
            kind = "VSIG" if line_key(raw.text) == "vsig" else "OSIG"
            checks.append(BoundCheck(kind, raw.number, BoundStatus.MALFORMED, raw.problem))
        elif isinstance(raw.parsed, VsigLine):
            check = _check_vsig(
                name,
                owner,
                raw,
                raw.parsed,
                trust,
                verifier,
                srl_value,
                cache,
                today,
                exact_srl,
                previous_owners,
            )
            checks.append(check)
            vsigs.append(check)
        else:
            osigs.append((raw.parsed, raw))
    osig_checks, osig = _check_osigs(name, owner, value, osigs, cache, network, accepted_time)
    checks.extend(osig_checks)
    checks.sort(key=lambda c: c.line)
    valid_vsigs = [c for c in vsigs if c.valid]
    if valid_vsigs and osig is not None:
        best = max(valid_vsigs, key=lambda c: c.not_after)
        changes_on = min(dt.date.fromisoformat(c.not_after) for c in valid_vsigs).toordinal() + 1
        reason = (
            f"VSIG of {best.verifier}, valid until {best.not_after}, "
            f"OSIG of {show_time(osig.time or 0)}"
        )
        return BoundVerdict(True, reason, tuple(checks), best, osig, changes_on)
    problems = [c.detail for c in checks if not c.valid and c.status is not BoundStatus.SUPERSEDED]
    if not vsigs and not any(c.kind == "VSIG" for c in checks):
        problems.append("no VSIG line")
    if not osigs and not any(c.kind == "OSIG" for c in checks):
        problems.append("no OSIG line")
    return BoundVerdict(False, "; ".join(problems), tuple(checks))


def _check_vsig(
    name: str,
    owner: str,
    raw: RawBoundLine,
    line: VsigLine,
    trust: TrustList,
    verifier: Callable[[str], Verifier],
    srl_value: Callable[[str], str | None],
    cache: SignatureCache,
    today: dt.date,
    exact_srl: bool,
    owners: Sequence[str],
) -> BoundCheck:
    who = line.verifier
    day = line.not_after.isoformat()

    def verdict(status: BoundStatus, detail: str) -> BoundCheck:
        return BoundCheck("VSIG", raw.number, status, detail, who, day)

    if who not in trust:
        return verdict(BoundStatus.UNTRUSTED, f"VSIG of {who}: {who} is not on the trust list")
    state = verifier(who)
    if state.problem or state.address is None:
        return verdict(BoundStatus.VERIFIER_UNUSABLE, f"VSIG of {who}: {state.problem}")
    # Cheap, final refusals before the ECDSA check.
    if today > line.not_after:
        return verdict(BoundStatus.EXPIRED, f"VSIG of {who} expired on {day}")
    message = line.message(name, owner)
    try:
        ok = cache.verify(message, line.signature, state.address)
    except crypto.CryptoError as exc:
        return verdict(BoundStatus.MALFORMED, f"VSIG of {who}: {exc}")
    if not ok:
        return verdict(*_vsig_mismatch(name, owner, line, state, cache, owners))
    srl_name = revoked_by(name, state, srl_value, exact_srl)
    if srl_name is not None:
        return verdict(BoundStatus.REVOKED, f"VSIG of {who} revoked by {srl_name}")
    return verdict(BoundStatus.VALID, f"VSIG of {who}, valid until {day}")


def _vsig_mismatch(
    name: str,
    owner: str,
    line: VsigLine,
    state: Verifier,
    cache: SignatureCache,
    owners: Sequence[str],
) -> tuple[BoundStatus, str]:
    """Why a VSIG does not verify for the current owner: it names another owner (a
    transfer, or a copy onto a re-registered name), or it is not the verifier's
    signature at all.

    The line does not carry the owner it names (the message does), so the
    record's earlier owners, when the caller knows them, are tried.
    """
    assert state.address is not None
    who = line.verifier
    for candidate in owners:
        if candidate == owner:
            continue
        try:
            if cache.verify(line.message(name, candidate), line.signature, state.address):
                return (
                    BoundStatus.WRONG_OWNER,
                    f"VSIG names owner {candidate} but the record is owned by {owner}",
                )
        except crypto.CryptoError:
            break
    return (
        BoundStatus.BAD_SIGNATURE,
        f"VSIG of {who} does not verify against {state.owner} (owner of {who}) for the "
        f"owner {owner}: made for another owner (a transfer or a copied line), or not by {who}",
    )


def _check_osigs(
    name: str,
    owner: str,
    value: str,
    osigs: list[tuple[OsigLine, RawBoundLine]],
    cache: SignatureCache,
    network: crypto.Network | None,
    accepted_time: int | None,
) -> tuple[list[BoundCheck], BoundCheck | None]:
    """Checks of every OSIG line, newest first, and the newest valid one."""
    if not osigs:
        return [], None
    try:
        address = crypto.Address.from_text(owner, network)
    except crypto.CryptoError as exc:
        return [
            BoundCheck(
                "OSIG",
                raw.number,
                BoundStatus.OWNER_CANNOT_SIGN,
                f"the owner {owner} cannot make an OSIG: {exc}",
                time=line.time,
            )
            for line, raw in osigs
        ], None
    digest = directives_digest(value)
    checks: list[BoundCheck] = []
    newest: BoundCheck | None = None
    for line, raw in sorted(osigs, key=lambda pair: -pair[0].time):
        when = show_time(line.time)
        if newest is not None:
            status, detail = BoundStatus.SUPERSEDED, f"OSIG of {when}: a newer OSIG counts"
        else:
            status, detail = _osig_state(name, owner, line, digest, address, cache, accepted_time)
        check = BoundCheck("OSIG", raw.number, status, detail, time=line.time)
        if status is BoundStatus.VALID:
            newest = check
        checks.append(check)
    return checks, newest


def _osig_state(
    name: str,
    owner: str,
    line: OsigLine,
    digest: str,
    address: crypto.Address,
    cache: SignatureCache,
    accepted_time: int | None,
) -> tuple[BoundStatus, str]:
    when = show_time(line.time)
    try:
        ok = cache.verify(osig_message(name, line.time, digest), line.signature, address)
    except crypto.CryptoError as exc:
        return BoundStatus.MALFORMED, f"OSIG of {when}: {exc}"
    if not ok:
        return BoundStatus.STALE, (
            f"OSIG digest does not match the directives (the OSIG of {when} does not "
            f"verify against the owner {owner} over the current directives)"
        )
    if accepted_time is not None and line.time < accepted_time:
        return BoundStatus.OLDER, (
            f"OSIG of {when} is older than the OSIG of {show_time(accepted_time)} "
            "already accepted for this name (an old record replayed)"
        )
    return BoundStatus.VALID, f"OSIG of {when}"


# -- producing the lines -----------------------------------------------------------------------


def not_after_for(chain_time: int, valid_days: int) -> dt.date:
    """The not-after date ``valid_days`` after the chain's current day."""
    if valid_days < 1:
        raise BoundLineError(f"--valid-days must be at least 1, not {valid_days}")
    return utc_day(chain_time) + dt.timedelta(days=valid_days)


def replace_osig(value: str, line: OsigLine) -> str:
    """``value`` with every OSIG line replaced by ``line`` (at the end)."""
    return with_line(without_lines(value, "osig"), line.to_text())


def replace_vsig(value: str, line: VsigLine) -> str:
    """``value`` with ``line`` replacing the VSIG lines of the same verifier."""

    def other_verifier(raw: str) -> bool:
        try:
            return VsigLine.from_text(raw.strip("\r\n").strip(_BLANKS)).verifier != line.verifier
        except BoundLineError:
            return True

    return with_line(without_lines(value, "vsig", other_verifier), line.to_text())


def osig_status(
    name: str, owner: str, value: str, network: crypto.Network | None = None
) -> tuple[str, str]:
    """(state, explanation) of a record's OSIG for owner tools: ``missing``,
    ``stale``, ``malformed``, ``ok`` or ``unsignable`` (the owner address cannot
    make one)."""
    lines = [r for r in bound_lines(value) if line_key(r.text) == "osig"]
    if not lines:
        return "missing", "no OSIG line: strict gateways do not serve this record"
    broken = [r for r in lines if r.parsed is None]
    if broken:
        return "malformed", f"line {broken[0].number}: {broken[0].problem}"
    try:
        address = crypto.Address.from_text(owner, network)
    except crypto.CryptoError as exc:
        return "unsignable", f"the owner {owner} cannot make an OSIG: {exc}"
    digest = directives_digest(value)
    for raw in sorted(lines, key=lambda r: -r.parsed.time):  # type: ignore[union-attr]
        assert isinstance(raw.parsed, OsigLine)
        try:
            if crypto.verify_message(
                address, raw.parsed.signature, osig_message(name, raw.parsed.time, digest)
            ):
                return "ok", f"line {raw.number}: OSIG of {show_time(raw.parsed.time)} is current"
        except crypto.CryptoError as exc:
            return "malformed", f"line {raw.number}: {exc}"
    return "stale", (
        "OSIG digest does not match the directives: the directives changed after the "
        "OSIG was made, or another key made it (renew it with 'enumer record seal')"
    )


# -- linting -------------------------------------------------------------------------------


def lint_bound(
    value: str,
    name: str | None = None,
    owner: str | None = None,
    network: crypto.Network | None = None,
) -> list[LintIssue]:
    """What is wrong with a value's bound lines: malformed lines (errors), a missing
    VSIG or OSIG (warnings) and, when the record's name and owner are known, a stale
    OSIG (an error: strict gateways do not serve the record)."""
    issues: list[LintIssue] = []
    lines = list(bound_lines(value))
    for raw in lines:
        if raw.parsed is None:
            issues.append(
                LintIssue(Severity.ERROR, raw.number, f"malformed bound line: {raw.problem}")
            )
    keys = {line_key(r.text) for r in lines}
    seal = f"enumer record seal {name}" if name else "enumer record seal NAME"
    if "vsig" in keys and "osig" not in keys:
        issues.append(
            LintIssue(
                Severity.WARNING,
                0,
                f"missing OSIG: strict gateways do not serve the record (add it with '{seal}')",
            )
        )
    if "osig" in keys and "vsig" not in keys:
        issues.append(
            LintIssue(
                Severity.WARNING,
                0,
                "missing VSIG: strict gateways do not serve the record (ask the verifier: "
                "'enumer verifier sign ID NAME' makes SIG= and VSIG= together)",
            )
        )
    if name and owner and not lines and "sig" in {line_key(t) for t in _LINE_BREAKS.split(value)}:
        issues.append(
            LintIssue(
                Severity.WARNING,
                0,
                "SIG= only: compat gateways serve it, strict gateways do not (ask the "
                f"verifier for a VSIG, then '{seal}')",
            )
        )
    if name and owner and "osig" in keys and not any(i.severity is Severity.ERROR for i in issues):
        state, detail = osig_status(name, owner, value, network)
        if state == "stale":
            issues.append(LintIssue(Severity.ERROR, 0, f"stale OSIG: {detail}"))
        elif state == "unsignable":
            issues.append(LintIssue(Severity.WARNING, 0, detail))
        elif state == "malformed":
            issues.append(LintIssue(Severity.ERROR, 0, f"malformed OSIG: {detail}"))
    return issues
