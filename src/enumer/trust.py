"""Who is trusted to say that a number belongs to a record: verifiers, SRL, toll-free lists.

The chain is public and anyone can write to it, so a gateway serves a record
only when a verifier on its trust list signed the record's name and has not
revoked that signature (SPEC section 5).  Toll-free lists are the exception:
they are trusted by configuration, not by signature (SPEC section 6).

Everything here is pure: records come in as :class:`~enumer.nvs.NameRecord`
values and text, verdicts come out.  Reading the chain is the resolver's job.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

import re2

from enumer import crypto
from enumer.cparse import C_TRIM, atoi, re2_message
from enumer.nvs import NameRecord
from enumer.records import MAX_SIGNATURE_ENTRIES, E2UDirective, Signature

#: emcdns: a template of 256 bytes or more disables the verifier.
MAX_SRL_TEMPLATE = 256
#: emcdns (VERMASK_NOSRL): a mask above 1 << 16 rejects every signature.
MAX_SRL_BITS = 16
#: emcdns caps nbits at 30 before the mask check.
SRL_BITS_CAP = 30


class TrustError(ValueError):
    """Bad trust or toll-free configuration; the message is one precise line."""


# -- trust lists ----------------------------------------------------------------


@dataclass(frozen=True)
class TrustList:
    """The verifiers a gateway trusts (emercoin.conf ``enumtrust=ver:enum|ver:other``).

    An entry may pin the verifier's key: ``ver:enum@<address>`` (SPEC 12).  A light
    gateway reads ``ver:`` records from untrusted upstreams, so the operator can
    name the owner address a verifier must have; an upstream that shows another
    one is ignored for that verifier rather than followed.
    """

    verifiers: tuple[str, ...] = ("ver:enum",)
    #: ``(verifier, address)`` for each pinned entry, in the list's order.
    pins: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_text(cls, text: str) -> TrustList:
        names: dict[str, None] = {}
        pins: dict[str, str] = {}
        for entry in (n.strip() for n in re.split(r"[|,]", text)):
            if not entry:
                continue
            name, at, address = entry.partition("@")
            if not name.startswith("ver:") or len(name) <= 4 or any(c.isspace() for c in entry):
                raise TrustError(f"trust list entry {entry!r} is not a verifier name (ver:<id>)")
            if at:
                if not re.fullmatch(r"[0-9A-Za-z]{20,90}", address):
                    raise TrustError(
                        f"trust list entry {entry!r}: {address!r} is not an address "
                        "(ver:<id>@<owner address>)"
                    )
                if pins.get(name, address) != address:
                    raise TrustError(f"trust list pins {name} to two addresses")
                pins[name] = address
            names[name] = None
        return cls(tuple(names), tuple(pins.items()))

    def to_text(self) -> str:
        pinned = dict(self.pins)
        return "|".join(v + (f"@{pinned[v]}" if v in pinned else "") for v in self.verifiers)

    def pin(self, name: str) -> str | None:
        """The address ``name`` is pinned to, or None when it is not pinned."""
        return dict(self.pins).get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.verifiers


# -- SRL ------------------------------------------------------------------------


def srl_hash(name: str | bytes) -> int:
    """The emcdns SRL hash: ``h = 0x5555; h += (h << 5) + c`` over the name, mod 2**32.

    emcdns adds ``char`` values, which are signed on x86: bytes >= 0x80 count
    as negative, so they do here too.
    """
    data = name.encode() if isinstance(name, str) else name
    h = 0x5555
    for byte in data:
        h = (h + (h << 5) + (byte - 256 if byte >= 0x80 else byte)) & 0xFFFFFFFF
    return h


#: What emcdns accepts after ``%``: a conversion, or ``0`` and digits then a conversion.
#: A width without the leading ``0`` (``%2x``) is an "invalid char in the template".
_CONVERSION = re.compile(r"%(0[0-9]*)?([diouxX])")


def _format_bucket(template: str, bucket: int) -> str:
    """printf of a template with at most one ``%[0width](d|i|o|u|x|X)`` conversion."""
    m = _CONVERSION.search(template)
    if m is None:
        return template
    width, conv = m.groups()
    digits = format(bucket, {"i": "d", "u": "d"}.get(conv, conv))
    if width:
        digits = digits.rjust(int(width), "0")
    return template[: m.start()] + digits + template[m.end() :]


class SrlState(Enum):
    NONE = "none"  # no SRL line (or an ignored one): nothing is revoked
    ACTIVE = "active"
    REJECT_ALL = "reject-all"  # emcdns rejects every signature of the verifier


@dataclass(frozen=True)
class SrlConfig:
    """A verifier's ``SRL=<nbits>|<template>`` line, judged as emcdns judges it."""

    state: SrlState
    nbits: int = 0
    template: str = ""
    problem: str = ""  # why the line is ignored or makes the verifier reject everything

    @classmethod
    def from_value(cls, value: str) -> SrlConfig:
        """The first effective ``SRL=`` line (case-insensitive prefix) of a verifier value.

        As in emcdns, an ignored line (no template, bad conversion, second ``%``)
        leaves the search going on to the next ``SRL`` line; the first line that
        sets a mask, usable or not, ends it.
        """
        ignored: SrlConfig | None = None
        for line in re.split(r"[\r\n]+", value):
            if line[:3].lower() == "srl" and "=" in line:
                config = cls.from_line(line)
                if config.state is not SrlState.NONE:
                    return config
                ignored = ignored or config
        return ignored or cls(SrlState.NONE)

    @classmethod
    def from_line(cls, line: str) -> SrlConfig:
        body = line.partition("=")[2]
        bits_text, bar, template = body.partition("|")
        # emcdns keeps the template verbatim (blanks included) and reads nbits with
        # atoi into an unsigned: a negative count is huge and capped like any other.
        nbits = atoi(bits_text)
        nbits = SRL_BITS_CAP if nbits < 0 or nbits > SRL_BITS_CAP else nbits
        if not bar or not template:
            return cls(SrlState.NONE, problem="SRL line without a template: nothing is revoked")
        if len(template.encode()) >= MAX_SRL_TEMPLATE:
            return cls(
                SrlState.REJECT_ALL,
                nbits,
                template,
                f"SRL template is {len(template.encode())} bytes (limit "
                f"{MAX_SRL_TEMPLATE - 1}): every signature is rejected",
            )
        percents = template.count("%")
        if percents == 0:
            return cls(SrlState.ACTIVE, 0, template)
        m2 = _CONVERSION.search(template)
        if percents > 1 or m2 is None or template.index("%") != m2.start():
            return cls(
                SrlState.NONE,
                nbits,
                template,
                f"SRL template {template!r} needs exactly one %d/%i/%o/%u/%x/%X "
                "conversion: the SRL line is ignored, nothing is revoked",
            )
        if nbits > MAX_SRL_BITS:
            return cls(
                SrlState.REJECT_ALL,
                nbits,
                template,
                f"SRL uses {nbits} bits (limit {MAX_SRL_BITS}): every signature is rejected",
            )
        return cls(SrlState.ACTIVE, nbits, template)

    def record_name(self, enum_name: str) -> str:
        """The SRL record that would list ``enum_name``."""
        bucket = srl_hash(enum_name) & ((1 << self.nbits) - 1)
        return _format_bucket(self.template, bucket)

    def to_line(self) -> str:
        return f"SRL={self.nbits}|{self.template}"


def srl_lists(srl_value: str, enum_name: str, exact: bool = False) -> bool:
    """Whether an SRL record's value revokes ``enum_name``.

    emcdns matches a substring, so listing ``enum:X:10`` also revokes
    ``enum:X:1``; ``exact`` matches whole lines instead (one name per line).
    """
    if exact:
        return enum_name in (line.strip() for line in re.split(r"[\r\n]+", srl_value))
    return enum_name in srl_value


# -- verifiers -----------------------------------------------------------------


@dataclass(frozen=True)
class Verifier:
    """A ``ver:`` record as a gateway sees it: the owner's key and the SRL policy."""

    name: str
    address: crypto.Address | None
    srl: SrlConfig
    problem: str = ""  # why the verifier cannot verify anything ("" when it can)
    owner: str = ""  # the owner address as written on chain, for messages

    @classmethod
    def from_record(
        cls, name: str, record: NameRecord | None, network: crypto.Network | None = None
    ) -> Verifier:
        if record is None:
            return cls(
                name,
                None,
                SrlConfig(SrlState.NONE),
                f"verifier record {name} does not exist or is not active",
            )
        srl = SrlConfig.from_value(record.value)
        try:
            address = crypto.Address.from_text(record.address, network)
        except crypto.CryptoError as exc:
            return cls(
                name,
                None,
                srl,
                f"{name} is owned by {record.address}, which cannot verify: {exc}",
                record.address,
            )
        if srl.state is SrlState.REJECT_ALL:
            return cls(
                name, address, srl, f"{name} is misconfigured: {srl.problem}", record.address
            )
        return cls(name, address, srl, owner=record.address)


# -- signatures ----------------------------------------------------------------


class SigStatus(Enum):
    VALID = "valid"
    UNTRUSTED = "untrusted verifier"
    VERIFIER_UNUSABLE = "verifier unusable"
    MALFORMED = "malformed signature"
    BAD_SIGNATURE = "bad signature"
    REVOKED = "revoked"
    NOT_EXAMINED = "not examined"


@dataclass(frozen=True)
class SigVerdict:
    verifier: str
    status: SigStatus
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"verifier": self.verifier, "status": self.status.value, "detail": self.detail}


class SignatureCache:
    """Results of the ECDSA check, keyed by (message, signature, key hash).

    The check depends on nothing else, so a result stays true for as long as
    the record and the verifier's key stay the same: a gateway verifies each
    record once per change, and queries never do cryptography.
    """

    def __init__(self, entries: dict[tuple[str, str, bytes], bool] | None = None) -> None:
        self.entries: dict[tuple[str, str, bytes], bool] = entries if entries is not None else {}
        self.checks = 0  # how many real ECDSA recoveries ran (for tests and metrics)
        # The public key (as serialized) each key hash was last recovered to: a
        # verifier signs thousands of records with one key, so comparing the
        # recovered bytes with the known key spares a HASH160 per check.
        self._keys: dict[bytes, bytes] = {}

    def verify(self, message: str, signature: str, address: crypto.Address) -> bool:
        """True when the signature recovers ``address``'s key; raises on malformed input.

        The same test as :func:`enumer.crypto.verify_message` (the recovered
        key's HASH160 is the address's key hash), with the hash skipped when
        the recovered key is byte for byte the one that matched before.
        """
        key_hash = address.key_hash
        key = (message, signature, key_hash)
        found = self.entries.get(key)
        if found is None:
            self.checks += 1
            recovered = crypto.recover_public_key(message, signature)
            if recovered is None:
                found = False
            elif self._keys.get(key_hash) == recovered:
                found = True
            else:
                found = crypto.hash160(recovered) == key_hash
                if found:
                    self._keys[key_hash] = recovered
            self.entries[key] = found
        return found


def check_signature(
    enum_name: str,
    signature: Signature,
    trust: TrustList,
    verifier: Callable[[str], Verifier],
    srl_value: Callable[[str], str | None],
    cache: SignatureCache,
    exact_srl: bool = False,
) -> SigVerdict:
    """Judge one ``verifier|signature`` entry of the record named ``enum_name``.

    ``verifier`` returns the current state of a ``ver:`` record and
    ``srl_value`` the value of an active SRL record (None when absent).
    """
    who = signature.verifier
    if who not in trust:
        return SigVerdict(who, SigStatus.UNTRUSTED, f"{who} is not on the trust list")
    state = verifier(who)
    if state.problem or state.address is None:
        return SigVerdict(who, SigStatus.VERIFIER_UNUSABLE, state.problem)
    try:
        ok = cache.verify(enum_name, signature.signature, state.address)
    except crypto.CryptoError as exc:
        return SigVerdict(who, SigStatus.MALFORMED, str(exc))
    if not ok:
        return SigVerdict(
            who,
            SigStatus.BAD_SIGNATURE,
            f"not a signature of {enum_name} by {state.owner} (owner of {who})",
        )
    srl_name = revoked_by(enum_name, state, srl_value, exact_srl)
    if srl_name is not None:
        return SigVerdict(who, SigStatus.REVOKED, f"revoked by {srl_name}")
    return SigVerdict(who, SigStatus.VALID, f"signed by {who} ({state.owner})")


def check_signatures(
    enum_name: str,
    signatures: Iterable[Signature],
    trust: TrustList,
    verifier: Callable[[str], Verifier],
    srl_value: Callable[[str], str | None],
    cache: SignatureCache,
    exact_srl: bool = False,
) -> tuple[SigVerdict, ...]:
    """Judge a record's ``SIG=`` entries with a bounded cost: one valid entry serves.

    Entries of verifiers not on the trust list are judged without cryptography; the
    examination stops at the first valid entry, and at most
    :data:`~enumer.records.MAX_SIGNATURE_ENTRIES` entries of trusted verifiers are
    checked, so a record stuffed with hundreds of entries made with other keys costs no
    more than a few.  Entries left over are reported as not examined.
    """
    verdicts: list[SigVerdict] = []
    checked = 0
    for signature in signatures:
        who = signature.verifier
        if who not in trust:
            verdicts.append(SigVerdict(who, SigStatus.UNTRUSTED, f"{who} is not on the trust list"))
            continue
        if checked >= MAX_SIGNATURE_ENTRIES:
            detail = f"over the {MAX_SIGNATURE_ENTRIES} entries examined per record"
            verdicts.append(SigVerdict(who, SigStatus.NOT_EXAMINED, detail))
            continue
        checked += 1
        verdict = check_signature(
            enum_name, signature, trust, verifier, srl_value, cache, exact_srl
        )
        verdicts.append(verdict)
        if verdict.status is SigStatus.VALID:
            break
    return tuple(verdicts)


def revoked_by(
    enum_name: str,
    state: Verifier,
    srl_value: Callable[[str], str | None],
    exact_srl: bool = False,
) -> str | None:
    """The SRL record of ``state`` that revokes its signatures of ``enum_name``, or
    None.  It applies alike to ``SIG=`` and bound (VSIG) signatures (SPEC 11)."""
    if state.srl.state is not SrlState.ACTIVE:
        return None
    srl_name = state.srl.record_name(enum_name)
    listed = srl_value(srl_name)
    if listed is not None and srl_lists(listed, enum_name, exact_srl):
        return srl_name
    return None


# -- toll-free lists -------------------------------------------------------------


@dataclass(frozen=True)
class TollFreeEntry:
    """``=<regex>`` and its directives; the regex must match the whole digit string."""

    pattern: str
    directives: tuple[E2UDirective, ...]
    source: str = ""

    def matches(self, digits: str) -> bool:
        return _compiled(self.pattern).fullmatch(digits) is not None


_PATTERN_CACHE: dict[str, re2._Regexp] = {}


def _compiled(pattern: str) -> re2._Regexp:
    found = _PATTERN_CACHE.get(pattern)
    if found is None:
        options = re2.Options()
        options.log_errors = False  # a bad regex is reported as a problem, not logged
        found = _PATTERN_CACHE[pattern] = re2.compile(pattern, options)
    return found


@dataclass(frozen=True)
class TollFreeTable:
    """Toll-free entries from every source, in order: the first match wins."""

    entries: tuple[TollFreeEntry, ...] = ()
    problems: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_text(cls, text: str, source: str = "") -> TollFreeTable:
        """Parse a list the way emcdns does (SPEC section 6); bad regexes are reported."""
        entries: list[TollFreeEntry] = []
        problems: list[str] = []
        pattern: str | None = None
        directives: list[E2UDirective] = []

        def close() -> None:
            if pattern is not None:
                entries.append(TollFreeEntry(pattern, tuple(directives), source))

        for number, raw in enumerate(re.split(r"[\r\n]", text), 1):
            line = raw.rstrip(C_TRIM)  # emcdns cuts bytes <= 0x20 at the end
            if not line or line[0] < "0":
                continue
            if line == "=":
                # emcdns opens no entry for an empty regex: the lines that follow
                # still belong to the entry before it.
                problems.append(f"{source}:{number}: '=' without a regex is ignored")
                continue
            if line.startswith("="):
                close()
                pattern, directives = line[1:], []
                try:
                    _compiled(pattern)
                except re2.error as exc:
                    problems.append(
                        f"{source}:{number}: bad toll-free regex {pattern!r}: {re2_message(exc)}"
                    )
                    pattern = None
                continue
            if pattern is None:
                continue
            directive = E2UDirective.parse(line)
            if directive is None:
                problems.append(f"{source}:{number}: not an E2U directive: {line!r}")
            else:
                directives.append(directive)
        close()
        return cls(tuple(entries), tuple(problems))

    @classmethod
    def join(cls, tables: Iterable[TollFreeTable]) -> TollFreeTable:
        tables = list(tables)
        return cls(
            tuple(e for t in tables for e in t.entries),
            tuple(p for t in tables for p in t.problems),
        )

    def match(self, digits: str) -> TollFreeEntry | None:
        for entry in self.entries:
            if entry.matches(digits):
                return entry
        return None


@dataclass(frozen=True)
class TollFreeSource:
    """One source of ``enumtollfree``: ``@name`` is an NVS record, anything else a file."""

    location: str

    @property
    def record_name(self) -> str | None:
        return self.location[1:] if self.location.startswith("@") else None

    @classmethod
    def parse_list(cls, text: str) -> tuple[TollFreeSource, ...]:
        sources = tuple(cls(s.strip()) for s in text.split("|") if s.strip())
        for source in sources:
            if source.location == "@":
                raise TrustError("toll-free source '@' names no NVS record")
        return sources
