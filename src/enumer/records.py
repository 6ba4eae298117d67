"""ENUM record names and values as ENUMER keeps them in NVS.

A record is ``enum:<digits>:<N>`` -> value.  The value is a list of lines; the
first three letters of a line pick its kind, case-insensitively (SPEC section 4):
``E2U...`` is one NAPTR directive, ``SIG=`` carries verifier signatures, ``TTL=``
sets the answer TTL, and anything else is kept but ignored.

Two readers live here on purpose:

* :meth:`EnumValue.from_text` is the *tolerant* reader.  It must accept exactly
  what the reference gateway (emcdns) accepts, because a record that emcdns
  serves and we do not (or the reverse) splits the network.  It never raises.
* :func:`lint_value` is the *strict* linter for records we are about to
  publish: it reports everything a PBX could trip over, with precise messages.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from enumer.cparse import C_BLANKS, C_TRIM, atoi, scanf_unsigned
from enumer.emercoin import MAX_VALUE_BYTES
from enumer.messages import show
from enumer.naptr import DEFAULT_TTL, PLAIN_UDP_SIZE, Naptr, naptr_set_wire_size
from enumer.substitution import RegexpError, SubstitutionExpression

ENUM_PREFIX = "enum:"
#: Keys of the bound signature lines (SPEC 11), read by :mod:`enumer.bound`.
BOUND_KEYS = ("vsig", "osig")
_ENUM_NAME = re.compile(r"enum:([0-9]{1,64}):(0|[1-9][0-9]{0,9})")
# RFC 6116 section 3.4.3: "E2U" 1*("+" type (":" subtype)*), tokens are alnum and "-".
_SERVICE = re.compile(
    r"E2U(\+[A-Za-z0-9][A-Za-z0-9-]{0,31}(:[A-Za-z0-9][A-Za-z0-9-]{0,31})*)+", re.IGNORECASE
)


class RecordError(ValueError):
    """A record name or value that cannot be used; the message is one precise line."""


@dataclass(frozen=True, order=True)
class EnumName:
    """The NVS name ``enum:<digits>:<index>`` of one ENUM record of a number."""

    digits: str
    index: int = 0

    @classmethod
    def from_text(cls, text: str) -> EnumName:
        m = _ENUM_NAME.fullmatch(text)
        if m is None:
            raise RecordError(f"not an ENUM record name: {text!r} (expected enum:<digits>:<N>)")
        return cls(m.group(1), int(m.group(2)))

    @classmethod
    def parse(cls, text: str) -> EnumName | None:
        """Like :meth:`from_text` but returns None for names of other namespaces."""
        m = _ENUM_NAME.fullmatch(text)
        return cls(m.group(1), int(m.group(2))) if m else None

    @staticmethod
    def matches(text: str) -> bool:
        """Whether ``text`` is an ENUM record name: :meth:`parse` without building one."""
        return _ENUM_NAME.fullmatch(text) is not None

    def to_text(self) -> str:
        return f"{ENUM_PREFIX}{self.digits}:{self.index}"

    def __str__(self) -> str:
        return self.to_text()


#: ``sscanf(rest, "%u | %u | %s")`` as emcdns reads a directive: blanks in the format
#: match any run of blanks (also none), %u and %s skip leading blanks, %u takes a sign,
#: %s stops at a blank.  Blanks are C's, not Unicode's.
_SSCANF_DIRECTIVE = re.compile(
    r"[ \t\n\v\f\r]*([+-]?[0-9]+)[ \t\n\v\f\r]*\|"
    r"[ \t\n\v\f\r]*([+-]?[0-9]+)[ \t\n\v\f\r]*\|"
    r"[ \t\n\v\f\r]*([^ \t\n\v\f\r]+)"
)


@dataclass(frozen=True)
class E2UDirective:
    """One ``E2U...=order|preference|regexp`` line: one NAPTR of the answer."""

    service: str
    order: int
    preference: int
    regexp: str

    @classmethod
    def parse(cls, line: str) -> E2UDirective | None:
        """Read a line the way emcdns does; None when emcdns would skip it.

        Service: text before the first ``=``, trailing blanks trimmed, case kept.
        Then ``sscanf("%u | %u | %s")``: blanks allowed around ``|`` and the
        regexp is the next blank-free token (a blank cuts it, as in emcdns).
        """
        if line[:3].lower() != "e2u" or "=" not in line:
            return None
        service, _, rest = line.partition("=")
        m = _SSCANF_DIRECTIVE.match(rest)
        if m is None:
            return None
        return cls(
            service.rstrip(C_TRIM),
            scanf_unsigned(m.group(1)),
            scanf_unsigned(m.group(2)),
            m.group(3),
        )

    @classmethod
    def from_text(cls, line: str) -> E2UDirective:
        directive = cls.parse(line)
        if directive is None:
            raise RecordError(
                f"not an E2U directive: {line!r} (expected E2U+service=order|preference|regexp)"
            )
        return directive

    def to_text(self) -> str:
        return f"{self.service}={self.order}|{self.preference}|{self.regexp}"

    def naptr(self, ttl: int = DEFAULT_TTL) -> Naptr:
        """The NAPTR this directive contributes: flags "u", replacement ".".

        Order and preference are 16-bit on the wire; emcdns truncates them the
        same way (it stores them in ``uint16_t``).
        """
        return _directive_naptr(self, ttl)


#: The signature entries (``SIG=`` entries, ``VSIG=`` lines) of trusted verifiers that a
#: gateway examines per record.  Each may cost an ECDSA recovery at build time, and anyone can
#: write a record, so the cost a stranger can impose per record is bounded; a real record
#: carries one or two (SPEC 5).  ``record lint`` warns above it.
MAX_SIGNATURE_ENTRIES: Final = 16


@functools.lru_cache(maxsize=65536)
def unservable(directive: E2UDirective) -> str | None:
    """Why a gateway must not serve ``directive`` (SPEC 9), or None when it may.

    The one rule of the gateway's table and of ``lookup`` alike: the regexp must be a
    substitution expression a PBX can apply (a NUL byte, a back-reference beyond the
    pattern's groups, a missing delimiter, an unbalanced parenthesis or an empty ERE make
    BIND reject the NAPTR and answer SERVFAIL, which loses the record's good directives
    too), and every field must fit a DNS character-string (255 bytes).  Remembered per
    directive: the same directive text is judged once per process.
    """
    try:
        SubstitutionExpression.from_text(directive.regexp)
    except RegexpError as exc:
        return f"regexp {show(directive.regexp)}: {exc}"
    try:
        directive.naptr().to_wire()
    except ValueError as exc:
        return str(exc)
    return None


@functools.lru_cache(maxsize=8192)
def _directive_naptr(directive: E2UDirective, ttl: int) -> Naptr:
    """:meth:`E2UDirective.naptr`, remembered like :func:`_parse_directive`: the
    same directive and TTL make the same (immutable) NAPTR for every number."""
    return Naptr(
        directive.order & 0xFFFF,
        directive.preference & 0xFFFF,
        "u",
        directive.service,
        directive.regexp,
        ".",
        ttl,
    )


@dataclass(frozen=True)
class Signature:
    """One ``verifier|base64`` entry of a ``SIG=`` line."""

    verifier: str
    signature: str

    def to_text(self) -> str:
        return f"{self.verifier}|{self.signature}"


@dataclass(frozen=True)
class SigLine:
    """A ``SIG=`` line; emcdns accepts a comma-separated list on one line."""

    signatures: tuple[Signature, ...]

    @classmethod
    def parse(cls, line: str) -> SigLine | None:
        if line[:3].lower() != "sig" or "=" not in line:
            return None
        entries = []
        for item in line.partition("=")[2].split(","):
            verifier, bar, sig = item.partition("|")
            if bar:
                # emcdns strips bytes <= 0x20 around the verifier and the signature.
                entries.append(Signature(verifier.strip(C_TRIM), sig.strip(C_TRIM)))
        return cls(tuple(entries))

    def to_text(self) -> str:
        return "SIG=" + ",".join(s.to_text() for s in self.signatures)


@dataclass(frozen=True)
class TtlLine:
    """A ``TTL=`` line; the value is C ``atoi`` of the text after ``=``."""

    ttl: int

    @classmethod
    def parse(cls, line: str) -> TtlLine | None:
        if line[:3].lower() != "ttl" or "=" not in line:
            return None
        return cls(atoi(line.partition("=")[2]))

    def to_text(self) -> str:
        return f"TTL={self.ttl}"


@dataclass(frozen=True)
class OtherLine:
    """A line ENUMER does not interpret, kept so that rewriting a value loses nothing."""

    text: str

    def to_text(self) -> str:
        return self.text


Line = E2UDirective | SigLine | TtlLine | OtherLine


_LINE_BREAKS = re.compile(r"[\r\n]+")


def _split_lines(text: str) -> list[str]:
    """Split on CR and/or LF; empty strings mark runs of breaks (callers skip them).

    Most values use LF alone, and ``str.split`` is several times faster than the
    regular expression that handles the rest.
    """
    return _LINE_BREAKS.split(text) if "\r" in text else text.split("\n")


def _parse_line(text: str) -> Line:
    kind = text[:3].lower()
    parsed: Line | None = None
    if kind == "e2u":
        parsed = _parse_directive(text)
    elif kind == "sig":
        parsed = SigLine.parse(text)
    elif kind == "ttl":
        parsed = TtlLine.parse(text)
    return parsed if parsed is not None else OtherLine(text)


@functools.lru_cache(maxsize=8192)
def _parse_directive(text: str) -> E2UDirective | None:
    """:meth:`E2UDirective.parse`, remembered: directives repeat across records
    (every number of a PBX has ``!^(.*)$!sip:\\1@pbx.example.com!``), so a
    gateway compiling a million records parses each distinct line once.  The
    values are immutable, so sharing them is safe."""
    return E2UDirective.parse(text)


@dataclass(frozen=True)
class EnumValue:
    """The value of an ENUM record, line by line, in the order written."""

    lines: tuple[Line, ...] = ()

    @classmethod
    def from_text(cls, text: str) -> EnumValue:
        """The tolerant reader: split on CR and/or LF, drop empty lines."""
        return cls(tuple([_parse_line(t) for t in _split_lines(text) if t]))

    def to_text(self) -> str:
        return "\n".join(line.to_text() for line in self.lines)

    @property
    def directives(self) -> tuple[E2UDirective, ...]:
        return tuple(x for x in self.lines if isinstance(x, E2UDirective))

    @property
    def signatures(self) -> tuple[Signature, ...]:
        return tuple(s for x in self.lines if isinstance(x, SigLine) for s in x.signatures)

    @property
    def ttl(self) -> int:
        """The TTL of this record's answers; the *last* TTL line wins, as in emcdns
        (every ``TTL=`` line assigns ``m_ttl`` before any NAPTR is written).  A
        negative atoi is served as 0 (RFC 2181: a TTL with the top bit set is 0)."""
        ttl = DEFAULT_TTL
        for line in self.lines:
            if isinstance(line, TtlLine):
                ttl = min(max(line.ttl, 0), 0x7FFFFFFF)
        return ttl

    def naptrs(self) -> list[Naptr]:
        ttl = self.ttl
        return [d.naptr(ttl) for d in self.directives]

    def servable_naptrs(self) -> tuple[list[Naptr], list[str]]:
        """(the NAPTRs a gateway serves, why each other directive is dropped): see
        :func:`unservable`; the good directives of a record stay served."""
        ttl = self.ttl
        served: list[Naptr] = []
        dropped: list[str] = []
        for directive in self.directives:
            why = unservable(directive)
            if why is None:
                served.append(directive.naptr(ttl))
            else:
                dropped.append(f"directive {show(directive.to_text())} dropped: {why}")
        return served, dropped

    def with_signature(self, signature: Signature) -> EnumValue:
        """The value with one more SIG line (an existing identical entry is not repeated)."""
        if signature in self.signatures:
            return self
        return EnumValue((*self.lines, SigLine((signature,))))

    @classmethod
    def build(cls, directives: Iterable[E2UDirective], ttl: int | None = None) -> EnumValue:
        lines: list[Line] = [] if ttl is None else [TtlLine(ttl)]
        lines.extend(directives)
        return cls(tuple(lines))


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class LintIssue:
    severity: Severity
    line: int  # 1-based line number in the value, 0 for the whole value
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{self.severity.value}: {where}{self.message}"


@dataclass(frozen=True)
class LintReport:
    issues: tuple[LintIssue, ...] = field(default_factory=tuple)

    @property
    def errors(self) -> list[LintIssue]:
        return [i for i in self.issues if i.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[LintIssue]:
        return [i for i in self.issues if i.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors


def lint_directive(directive: E2UDirective) -> Iterator[str]:
    """Everything wrong with one directive, as messages (empty when it is fine)."""
    if not _SERVICE.fullmatch(directive.service):
        yield (
            f"service {directive.service!r} is not an ENUM service "
            "(expected E2U+type[:subtype], e.g. E2U+sip)"
        )
    for what, number in (("order", directive.order), ("preference", directive.preference)):
        if number > 0xFFFF:
            yield f"{what} {number} is over 65535"
    try:
        SubstitutionExpression.from_text(directive.regexp)
    except RegexpError as exc:
        yield f"regexp {directive.regexp!r}: {exc}"


def blank_led_e2u_lines(text: str) -> tuple[int, ...]:
    """Numbers of the lines (counted as :func:`lint_value` counts them: breaks
    skipped) that hold an E2U directive after leading blanks.

    emcdns takes a line as a directive only when it starts with ``E2U``, so such
    a line is silently ignored: a record whose only directives are indented
    is served as nothing at all.
    """
    return tuple(
        number
        for number, raw in enumerate((t for t in _split_lines(text) if t), 1)
        if _blank_led_e2u(raw)
    )


def _blank_led_e2u(raw: str) -> bool:
    return raw[:1] in C_BLANKS and raw.lstrip(C_BLANKS)[:3].lower() == "e2u"


def unread_e2u_reason(text: str) -> str:
    """Why a value yields no NAPTR, in the words ``enumer lookup`` prints."""
    lines = blank_led_e2u_lines(text)
    if not lines:
        return "no E2U line that emcdns would read"
    which = ", ".join(str(n) for n in lines)
    verb = "starts" if len(lines) == 1 else "start"
    return (
        f"no E2U line that emcdns would read (line{'s' if len(lines) > 1 else ''} "
        f"{which} {verb} with a blank)"
    )


def lint_value(text: str) -> LintReport:
    """The strict check of a value before it is published.

    Errors: E2U lines the tolerant reader would skip or cut, bad services,
    out-of-range numbers, regexps that cannot be applied, malformed TTL.
    Warnings: no directive at all, unknown lines, an answer over 512 bytes.
    """
    issues: list[LintIssue] = []
    raw_lines = [t for t in _split_lines(text) if t]
    for number, raw in enumerate(raw_lines, 1):
        line = _parse_line(raw)
        kind = raw[:3].lower()
        if isinstance(line, E2UDirective):
            rest = raw.partition("=")[2]
            if line.regexp != rest.split("|", 2)[-1].strip(C_BLANKS):
                issues.append(
                    LintIssue(
                        Severity.ERROR,
                        number,
                        "blank inside the regexp: gateways cut it at the blank",
                    )
                )
            issues.extend(LintIssue(Severity.ERROR, number, m) for m in lint_directive(line))
        elif kind == "e2u":
            issues.append(
                LintIssue(
                    Severity.ERROR,
                    number,
                    f"malformed E2U directive {raw!r} "
                    "(expected E2U+service=order|preference|regexp)",
                )
            )
        elif isinstance(line, TtlLine):
            if (
                not re.fullmatch(r"\s*[0-9]{1,10}\s*", raw.partition("=")[2])
                or line.ttl > 0x7FFFFFFF
            ):
                issues.append(
                    LintIssue(
                        Severity.ERROR, number, f"TTL must be seconds from 0 to 2147483647: {raw!r}"
                    )
                )
        elif isinstance(line, SigLine):
            if not line.signatures:
                issues.append(
                    LintIssue(
                        Severity.ERROR, number, f"SIG line without verifier|signature: {raw!r}"
                    )
                )
            elif len(line.signatures) > 2:
                # CheckEnumSigList restarts strchr(',') on the NUL it wrote over the
                # first comma, so emcdns never reaches a third entry.
                issues.append(
                    LintIssue(
                        Severity.WARNING,
                        number,
                        f"{len(line.signatures)} signatures on one SIG line: "
                        "emcdns checks only the first two; put each on its "
                        "own SIG line",
                    )
                )
        elif kind in ("ttl", "sig"):
            issues.append(LintIssue(Severity.ERROR, number, f"malformed line {raw!r}"))
        elif raw.partition("=")[0].strip(" \t").lower() in BOUND_KEYS and "=" in raw:
            pass  # VSIG/OSIG (SPEC 11): emcdns ignores them, enumer.bound.lint_bound checks them
        elif _blank_led_e2u(raw):
            issues.append(
                LintIssue(
                    Severity.WARNING,
                    number,
                    "line starts with a blank: emcdns does not read it as an E2U directive "
                    f"(line ignored by gateways: {raw!r})",
                )
            )
        else:
            issues.append(LintIssue(Severity.WARNING, number, f"line ignored by gateways: {raw!r}"))
    value = EnumValue.from_text(text)
    if not value.directives:
        issues.append(LintIssue(Severity.WARNING, 0, "no E2U directive: nothing will be served"))
    entries = len(value.signatures)
    if entries > MAX_SIGNATURE_ENTRIES:
        issues.append(
            LintIssue(
                Severity.WARNING,
                0,
                f"{entries} signature entries: gateways examine at most the first "
                f"{MAX_SIGNATURE_ENTRIES} of trusted verifiers",
            )
        )
    size = answer_size(value.naptrs())
    if size > PLAIN_UDP_SIZE:
        issues.append(
            LintIssue(
                Severity.WARNING,
                0,
                f"the answer takes about {size} bytes, over the {PLAIN_UDP_SIZE} bytes of plain "
                "UDP: resolvers without EDNS0 must retry over TCP",
            )
        )
    if len(text.encode()) > MAX_VALUE_BYTES:
        issues.append(
            LintIssue(
                Severity.ERROR, 0, f"value is {len(text.encode())} bytes, over {MAX_VALUE_BYTES}"
            )
        )
    return LintReport(tuple(issues))


def answer_size(naptrs: list[Naptr], qname_len: int = 30) -> int:
    """Bytes of a DNS response carrying these NAPTRs for a typical ENUM query name.

    Header (12) + question (name + 4) + the answer RRs (owner compressed).
    """
    return 12 + qname_len + 4 + naptr_set_wire_size(naptrs)
