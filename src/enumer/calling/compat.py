"""Will FreeSWITCH, Asterisk and Kamailio use a record, and call the same URI?

ENUMER applies RFC 3402 faithfully (:mod:`enumer.substitution`), but the callers are
PBXs with parsers of their own, and a record that works in one can be ignored,
or rewritten to another URI, by the next. :func:`check_value` answers, for each
E2U directive of a record and for each PBX, one of:

* ``yes``: the PBX uses it and calls the URI ENUMER computes;
* ``differs``: the PBX uses it but calls another URI;
* ``no``: the PBX ignores or rejects it (the reason says which rule);
* ``unknown``: the behaviour depends on the PBX version or on a construct this
  model does not cover. The model says ``unknown`` rather than guess.

The models follow the parsers' source code, read for this purpose (the
versions named below), not their documentation alone. What each one assumes:

FreeSWITCH ``mod_enum`` (``mod_enum.c`` with ldns, FreeSWITCH 1.10), with the
stock ``enum.conf.xml`` (one route: service ``E2U+SIP``, regex ``sip:(.*)``,
replace ``sofia/${use_profile}/$1``):

* the service must equal a configured route's service, case-insensitively and
  as a whole (``E2U+voice:sip`` needs a route of its own); flags are not read;
* the regexp is cut at every ``!`` (``switch_split``), so ``!`` is the only
  delimiter and an escaped ``\\!`` is version-dependent (``unknown``);
* the record travels as ldns presentation text, which escapes ``\\`` and ``"``,
  and FreeSWITCH's string splitter unescapes it again. The article's
  FreeSWITCH dialplan works with ``\\1`` records, so plain escapes survive;
  ``\\n \\r \\t \\s``, quotes and ``\\\\`` are turned into other characters by
  the splitter: ``unknown``;
* the ERE is PCRE, modelled with Python's ``re`` on the syntax both share
  (anything else: ``unknown``); the AUS is ``+`` and the digits;
* every ``\\`` of the replacement becomes ``$`` and ``$N`` reads all the digits
  that follow (``\\12`` is group 12, not group 1 and ``2``); a group that did
  not take part is empty; without a ``(`` in the ERE the replacement is taken
  as it is; the result is the expansion alone (the parts of the AUS outside
  the match are dropped);
* the URI must then match the route's ``sip:(.*)``; the bridge string is
  ``sofia/${use_profile}/<rest of the URI>``.

Asterisk ``ENUMLOOKUP(+NUMBER,sip,u,1,SUFFIX)`` (``main/enum.c``, Asterisk
1.8 to 22):

* ``parse_naptr`` checks the flag, then the regexp, then the service; any
  failure of the first two (flag, regexp shorter than 7, delimiter, regcomp,
  no match, substitution) makes ``enum_callback`` return -1 and Asterisk drops
  the *whole* answer, so one bad directive hides the good ones of the same
  number: the record-level verdict says so;
* the delimiter is the first character and the regexp must end with it: a
  flag such as ``i`` after the last delimiter is refused; delimiters are found
  with ``strchr``, without escapes;
* the ERE is compiled with glibc ``regcomp(REG_EXTENDED | REG_NEWLINE)``:
  POSIX, no ``\\d``. This module calls that very function through ctypes
  where the C library is glibc, and says ``unknown`` elsewhere;
* ``\\0``..``\\9`` in the replacement are sub-matches (``\\0`` the whole
  match); a group that did not take part fails the substitution; any other
  backslash is copied as it is; the result is the expansion alone;
* the service is the text after ``E2U+`` (only these two spellings:
  ``e2u+`` and ``E2U+``), after its first ``:``, and must equal ``sip``
  case-insensitively. Asterisk 21+ defaults the method to ``pjsip``, which no
  record offers: always pass ``sip``.

Kamailio ``enum`` module, ``enum_query(SUFFIX)`` without a service argument
(``src/modules/enum/enum.c`` and ``src/core/strutils.c``, Kamailio 5.x):

* flags must be exactly ``u`` and the service exactly ``E2U+sip`` (any case);
  with the service argument ``+sip+voice:sip`` it also takes ``E2U+voice:sip``;
  a directive it does not take is skipped silently, the others still count;
* the regexp must start with ``!`` and is cut at the next two ``!`` with
  ``memchr`` (no escapes); anything after the third ``!`` (a flag) is ignored;
* the ERE is glibc POSIX ``regcomp(REG_EXTENDED | REG_NEWLINE)`` with at most
  6 groups and a 6-entry match array: ``\\6``..``\\9`` read past it
  (``unknown``); ``\\0`` is the whole match; a group that did not take part
  fails the directive; a backslash before any other character is dropped; the
  result is the expansion alone.

The AUS every model receives is ``+`` and the digits, as the configurations of
:mod:`enumer.calling.pbx` pass it. Case never matters for such an AUS, so the
``i`` flag changes no result (only Asterisk's parser trips over it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from enumer.ddds import DEFAULT_SIP_SERVICES, select_routes
from enumer.naptr import Naptr
from enumer.records import E2UDirective, EnumValue, unservable

__all__ = [
    "PBXS",
    "PBX_NAMES",
    "DirectiveReport",
    "RecordReport",
    "Status",
    "Verdict",
    "check_directives",
    "check_value",
]

PBXS: Final = ("freeswitch", "asterisk", "kamailio")
PBX_NAMES: Final = {
    "enumer": "ENUMER",
    "freeswitch": "FreeSWITCH mod_enum",
    "asterisk": "Asterisk ENUMLOOKUP",
    "kamailio": "Kamailio enum",
}


class Status(Enum):
    YES = "yes"
    DIFFERS = "differs"
    NO = "no"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Verdict:
    """One PBX and one directive (or, in a summary, one record)."""

    status: Status
    uri: str | None
    reason: str
    #: What the PBX dials when it is not the URI itself (FreeSWITCH's bridge string).
    dial: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status.value, "uri": self.uri, "reason": self.reason}
        if self.dial is not None:
            data["dial"] = self.dial
        return data


@dataclass(frozen=True)
class DirectiveReport:
    index: int
    directive: E2UDirective
    enumer: Verdict
    pbx: dict[str, Verdict]

    def to_json(self) -> dict[str, Any]:
        d = self.directive
        return {
            "index": self.index,
            "directive": d.to_text(),
            "service": d.service,
            "order": d.order,
            "preference": d.preference,
            "enumer": self.enumer.to_json(),
            **{name: self.pbx[name].to_json() for name in PBXS},
        }


@dataclass(frozen=True)
class RecordReport:
    """Every directive of a record, and per PBX the route it would call first."""

    aus: str
    directives: tuple[DirectiveReport, ...]
    first_route: str | None
    summary: dict[str, Verdict]

    @property
    def ok(self) -> bool:
        """ENUMER routes the record and every PBX calls the same first URI."""
        return self.first_route is not None and all(
            v.status is Status.YES for v in self.summary.values()
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "aus": self.aus,
            "first_route": self.first_route,
            "directives": [d.to_json() for d in self.directives],
            "summary": {name: self.summary[name].to_json() for name in PBXS},
            "ok": self.ok,
        }


# -- glibc POSIX regex, the engine of Kamailio and Asterisk ---------------------------

REG_EXTENDED: Final = 1
REG_NEWLINE: Final = 4


class _RegexT(ctypes.Structure):
    """glibc's ``regex_t`` up to ``re_nsub``, padded: only ``re_nsub`` is read."""

    _fields_ = [
        ("buffer", ctypes.c_void_p),
        ("allocated", ctypes.c_size_t),
        ("used", ctypes.c_size_t),
        ("syntax", ctypes.c_ulong),
        ("fastmap", ctypes.c_void_p),
        ("translate", ctypes.c_void_p),
        ("re_nsub", ctypes.c_size_t),
        ("_rest", ctypes.c_char * 128),
    ]


class _RegMatch(ctypes.Structure):
    _fields_ = [("rm_so", ctypes.c_int), ("rm_eo", ctypes.c_int)]


@functools.cache
def _glibc() -> Any:
    """The C library when it is glibc (``regoff_t`` is ``int`` there), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    libc.regcomp.argtypes = [ctypes.POINTER(_RegexT), ctypes.c_char_p, ctypes.c_int]
    libc.regexec.argtypes = [
        ctypes.POINTER(_RegexT),
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.POINTER(_RegMatch),
        ctypes.c_int,
    ]
    libc.regfree.argtypes = [ctypes.POINTER(_RegexT)]
    return libc


@dataclass(frozen=True)
class _PosixMatch:
    """``regcomp``/``regexec`` as the PBX calls them: an error, no match, or spans."""

    error: str | None
    groups: int
    spans: tuple[tuple[int, int], ...] | None


# {m,n} counts above this make glibc build huge automata; no ENUM regexp needs them.
_MAX_REPEAT: Final = 32
_REPEAT: Final = re.compile(r"\{\s*([0-9]*)\s*(?:,\s*([0-9]*)\s*)?\}")


def _posix(pattern: str, subject: str, nmatch: int) -> _PosixMatch | None:
    """Run glibc's POSIX ERE on ``subject``; None when that cannot be done faithfully.

    Back-references inside the ERE and large repeat counts are left out: the
    first need backtracking (ENUMER itself refuses them), the second cost
    memory for no ENUM purpose.
    """
    libc = _glibc()
    if libc is None or re.search(r"\\[1-9]", pattern) or "\x00" in pattern:
        return None
    for m in _REPEAT.finditer(pattern):
        if any(g and int(g) > _MAX_REPEAT for g in m.groups()):
            return None
    regex = _RegexT()
    code = libc.regcomp(ctypes.byref(regex), pattern.encode("utf-8"), REG_EXTENDED | REG_NEWLINE)
    if code != 0:
        return _PosixMatch(f"regcomp error {code}", 0, None)
    try:
        groups = int(regex.re_nsub)
        matches = (_RegMatch * max(nmatch, 1))()
        if libc.regexec(ctypes.byref(regex), subject.encode("utf-8"), nmatch, matches, 0) != 0:
            return _PosixMatch(None, groups, None)
        spans = tuple((int(m.rm_so), int(m.rm_eo)) for m in matches[:nmatch])
        return _PosixMatch(None, groups, spans)
    finally:
        libc.regfree(ctypes.byref(regex))


def _no_match(pattern: str, aus: str) -> str:
    """Why a POSIX ERE does not match, with the usual cause spelled out."""
    reason = f"the POSIX ERE '{pattern}' does not match {aus}"
    if re.search(r"\\[dD]", pattern):
        reason += " (POSIX regexes have no \\d: write [0-9])"
    return reason


# -- the reference: ENUMER (RFC 3402) ---------------------------------------------------


def _enumer(directive: E2UDirective, aus: str) -> Verdict:
    why = unservable(directive)
    if why is not None:
        return Verdict(Status.NO, None, f"gateways do not serve it: {why}")
    routes, problems = select_routes([directive.naptr()], aus, DEFAULT_SIP_SERVICES)
    if routes:
        return Verdict(Status.YES, routes[0].uri, "RFC 3402")
    if problems:
        return Verdict(Status.NO, None, problems[0])
    return Verdict(Status.NO, None, f"service {directive.service} is not a SIP service")


def _compare(uri: str, reference: Verdict, how: str, dial: str | None = None) -> Verdict:
    """``yes`` when the PBX's URI is ENUMER's, else ``differs`` with both shown."""
    if reference.uri == uri:
        return Verdict(Status.YES, uri, how, dial)
    if reference.uri is None:
        return Verdict(Status.DIFFERS, uri, f"{how}; ENUMER does not route this directive", dial)
    return Verdict(Status.DIFFERS, uri, f"{how}; ENUMER calls {reference.uri}", dial)


# -- Kamailio ---------------------------------------------------------------------------

_KAMAILIO_MAX_MATCH: Final = 6  # SR_RE_MAX_MATCH in src/core/strutils.c
_MAX_URI_SIZE: Final = 1024


def _kamailio(directive: E2UDirective, aus: str, reference: Verdict) -> Verdict:
    service = directive.service.lower()
    if service not in ("e2u+sip", "sip+e2u"):
        extra = (
            '; enum_query(suffix, "+sip+voice:sip") takes it' if service == "e2u+voice:sip" else ""
        )
        return Verdict(
            Status.NO,
            None,
            f"enum_query() takes only the service E2U+sip, not {directive.service}" + extra,
        )
    text = directive.regexp
    if not text.startswith("!"):
        return Verdict(Status.NO, None, "the enum module accepts only '!' as delimiter")
    second = text.find("!", 1)
    third = text.find("!", second + 1) if second > 0 else -1
    if third < 0:
        return Verdict(Status.NO, None, "the regexp needs three '!' (the module reads no escapes)")
    pattern, replacement = text[1:second], text[second + 1 : third]
    match = _posix(pattern, aus, _KAMAILIO_MAX_MATCH)
    if match is None:
        return Verdict(Status.UNKNOWN, None, "the ERE is outside what this model can run")
    if match.error is not None:
        return Verdict(Status.NO, None, f"glibc cannot compile the ERE '{pattern}' ({match.error})")
    if match.groups > _KAMAILIO_MAX_MATCH:
        return Verdict(Status.NO, None, f"{match.groups} groups, the module allows 6")
    if match.spans is None:
        return Verdict(Status.NO, None, _no_match(pattern, aus))
    out: list[str] = []
    i = 0
    while i < len(replacement):
        char = replacement[i]
        if char == "\\":
            if i + 1 >= len(replacement):
                return Verdict(Status.NO, None, "the replacement ends with a backslash")
            nxt = replacement[i + 1]
            if nxt.isdigit():
                index = int(nxt)
                if index >= _KAMAILIO_MAX_MATCH:
                    return Verdict(
                        Status.UNKNOWN, None, f"\\{index} reads past the 6-entry match array"
                    )
                start, end = match.spans[index]
                if start < 0:
                    return Verdict(Status.NO, None, f"group \\{index} did not take part")
                out.append(aus[start:end])
            else:
                out.append(nxt)
            i += 2
            continue
        out.append(char)
        i += 1
    uri = "".join(out)
    if len(uri) >= _MAX_URI_SIZE:
        return Verdict(Status.NO, None, "the result is longer than the module's 1024 bytes")
    return _compare(uri, reference, "POSIX ERE (glibc), expansion only")


# -- Asterisk ---------------------------------------------------------------------------

_ASTERISK_MATCHES: Final = 10


def _asterisk_tech(service: str) -> str:
    """``tech_return`` of ``parse_naptr``: after ``E2U+``, after its first ``:``."""
    for spelling in ("e2u+", "E2U+"):
        at = service.find(spelling)
        if at >= 0:
            rest = service[at + 4 :]
            return rest.split(":", 1)[1] if ":" in rest else rest
    for spelling in ("+e2u", "+E2U"):
        at = service.find(spelling)
        if at >= 0:
            return service[:at].split(":", 1)[0]
    return ""


def _asterisk(directive: E2UDirective, aus: str, reference: Verdict) -> tuple[Verdict, bool]:
    """The verdict, and whether the failure makes Asterisk drop the whole answer."""
    text = directive.regexp
    if len(text) < 7:
        return Verdict(Status.NO, None, "regexp shorter than 7 characters"), True
    delimiter = text[0]
    second = text.find(delimiter, 1)
    if second < 0 or text[-1] != delimiter:
        why = (
            f"the regexp must end with its delimiter {delimiter!r} (no flag after it)"
            if second >= 0
            else "delimiter error"
        )
        return Verdict(Status.NO, None, why), True
    if text.find(delimiter, second + 1) < 0:
        return Verdict(Status.NO, None, "delimiter error (no third delimiter)"), True
    pattern, replacement = text[1:second], text[second + 1 : -1]
    match = _posix(pattern, aus, _ASTERISK_MATCHES)
    if match is None:
        return Verdict(Status.UNKNOWN, None, "the ERE is outside what this model can run"), True
    if match.error is not None:
        return (
            Verdict(Status.NO, None, f"glibc cannot compile the ERE '{pattern}' ({match.error})"),
            True,
        )
    if match.groups > _ASTERISK_MATCHES:
        return Verdict(Status.NO, None, "more than 10 groups"), True
    if match.spans is None:
        return Verdict(Status.NO, None, _no_match(pattern, aus)), True
    out: list[str] = []
    i = 0
    while i < len(replacement):
        char = replacement[i]
        if char == "\\" and i + 1 < len(replacement) and replacement[i + 1].isdigit():
            index = int(replacement[i + 1])
            start, end = match.spans[index]
            if start < 0:
                return Verdict(Status.NO, None, f"group \\{index} did not take part"), True
            out.append(aus[start:end])
            i += 2
            continue
        if not char.isprintable() or not char.isascii():
            return Verdict(Status.NO, None, "non-printable character in the replacement"), True
        out.append(char)
        i += 1
    uri = "".join(out)
    tech = _asterisk_tech(directive.service)
    if tech.lower() != "sip":
        return (
            Verdict(
                Status.NO,
                None,
                f"service {directive.service}: ENUMLOOKUP(...,sip,...) wants type sip"
                + (f", this offers {tech!r}" if tech else ", and finds no 'E2U+' or 'e2u+'"),
            ),
            False,
        )
    return _compare(uri, reference, "POSIX ERE (glibc), expansion only"), False


# -- FreeSWITCH -------------------------------------------------------------------------

_FS_ROUTE: Final = re.compile(r"sip:(.*)")
_FS_TOKEN: Final = re.compile(r"\\.|\[\^?\]?[^\]]*\]|.", re.DOTALL)
_FS_SPLITTER_ESCAPES: Final = frozenset("nrts'\"\\")


def _perl_subset(ere: str) -> str | None:
    """Why the ERE may behave differently in PCRE and Python ``re``, or None if it cannot."""
    if ere.startswith("/"):
        return "an ERE starting with '/' is read as /regex/flags by FreeSWITCH"
    for token in _FS_TOKEN.findall(ere):
        if token.startswith("\\") and len(token) == 2 and token[1].isalnum():
            if token[1] not in "dDwWsSbB":
                return f"the escape {token} means different things to PCRE and Python"
        elif token.startswith("[") and len(token) > 1 and re.search(r"\[[:=.]", token):
            return "POSIX classes such as [[:digit:]] are PCRE-only"
    if "(?" in ere:
        return "(? extensions differ between PCRE versions"
    if re.search(r"\{,", ere):
        return "{,n} is read differently by PCRE versions"
    return None


def _freeswitch(directive: E2UDirective, aus: str, reference: Verdict) -> Verdict:
    if directive.service.lower() != "e2u+sip":
        return Verdict(
            Status.NO,
            None,
            f"the stock enum.conf.xml routes only E2U+SIP, not {directive.service} "
            "(add a <route service=...> for it)",
        )
    text = directive.regexp
    if "'" in text or '"' in text:
        return Verdict(Status.UNKNOWN, None, "quotes are interpreted by FreeSWITCH's splitter")
    for at in range(len(text) - 1):
        if text[at] == "\\" and text[at + 1] in _FS_SPLITTER_ESCAPES | {"!"}:
            return Verdict(
                Status.UNKNOWN,
                None,
                f"FreeSWITCH's string splitter rewrites \\{text[at + 1]} (version-dependent)",
            )
    if not text.startswith("!"):
        if "!" not in text:
            return Verdict(Status.NO, None, "mod_enum splits the regexp at '!' only")
        return Verdict(Status.UNKNOWN, None, "mod_enum splits at '!', which is not the delimiter")
    pieces = text.split("!")
    if len(pieces) < 3:
        return Verdict(Status.NO, None, "the regexp needs three '!'")
    ere, replacement = pieces[1], pieces[2]
    subset = _perl_subset(ere)
    if subset is not None:
        return Verdict(Status.UNKNOWN, None, subset)
    try:
        compiled = re.compile(ere)
    except re.error as exc:
        return Verdict(Status.UNKNOWN, None, f"the ERE does not compile as a Perl regex ({exc})")
    match = compiled.search(aus)
    if match is None:
        return Verdict(Status.NO, None, f"the PCRE '{ere}' does not match {aus}")
    replacement = replacement.replace("\\", "$")
    if "${" in replacement:
        return Verdict(Status.UNKNOWN, None, "${...} is expanded by FreeSWITCH")
    if "(" not in ere:
        uri = replacement
    else:
        out: list[str] = []
        i = 0
        while i < len(replacement):
            if replacement[i] == "$" and i + 1 < len(replacement) and replacement[i + 1].isdigit():
                j = i + 1
                while j < len(replacement) and replacement[j].isdigit() and j - i <= 9:
                    j += 1
                index = int(replacement[i + 1 : j])
                if index <= compiled.groups:
                    out.append(match.group(index) or "")
                i = j
                continue
            out.append(replacement[i])
            i += 1
        uri = "".join(out)
    route = _FS_ROUTE.search(uri)
    if route is None:
        return Verdict(Status.NO, uri, "the result does not contain 'sip:', the route's regex")
    dial = "sofia/${use_profile}/" + route.group(1)
    return _compare(uri, reference, "PCRE, expansion only", dial)


# -- records ----------------------------------------------------------------------------


def _first(
    reports: Sequence[DirectiveReport], pbx: str
) -> tuple[DirectiveReport | None, list[DirectiveReport]]:
    """The directive the PBX would call first (lowest order, preference), and the unknowns."""
    used = [r for r in reports if r.pbx[pbx].status in (Status.YES, Status.DIFFERS)]
    used.sort(key=lambda r: (r.directive.order & 0xFFFF, r.directive.preference & 0xFFFF))
    unknown = [r for r in reports if r.pbx[pbx].status is Status.UNKNOWN]
    return (used[0] if used else None), unknown


def _summary(
    reports: Sequence[DirectiveReport], pbx: str, first_route: str | None, fatal: str | None
) -> Verdict:
    if fatal is not None:
        return Verdict(Status.NO, None, fatal)
    best, unknown = _first(reports, pbx)
    if unknown:
        which = ", ".join(str(r.index) for r in unknown)
        return Verdict(Status.UNKNOWN, None, f"cannot tell for directive(s) {which}")
    if best is None:
        if first_route is None:
            return Verdict(Status.NO, None, "no route (ENUMER has none either)")
        return Verdict(Status.NO, None, "uses no directive of this record")
    uri = best.pbx[pbx].uri
    if first_route is not None and uri == first_route:
        return Verdict(Status.YES, uri, f"calls directive {best.index}", best.pbx[pbx].dial)
    return Verdict(
        Status.DIFFERS,
        uri,
        f"calls {uri} (directive {best.index}); ENUMER calls {first_route}",
        best.pbx[pbx].dial,
    )


def check_directives(directives: Iterable[E2UDirective], aus: str) -> RecordReport:
    """Every directive through ENUMER and the three PBX models, then per-PBX summaries.

    ``aus`` is ``+`` and the digits. Pure: no I/O (glibc's regex functions
    are called in-process where available).
    """
    reports: list[DirectiveReport] = []
    asterisk_fatal: str | None = None
    listed = list(directives)
    for index, directive in enumerate(listed, 1):
        reference = _enumer(directive, aus)
        asterisk, fatal = _asterisk(directive, aus, reference)
        if fatal and asterisk_fatal is None:
            asterisk_fatal = (
                f"directive {index} fails in Asterisk's parser ({asterisk.reason}), "
                "and Asterisk then drops the whole answer"
                if asterisk.status is Status.NO
                else f"directive {index} may fail in Asterisk's parser, which drops the "
                "whole answer"
            )
            if asterisk.status is Status.UNKNOWN:
                asterisk_fatal = None  # an unknown stays unknown in the summary
        reports.append(
            DirectiveReport(
                index,
                directive,
                reference,
                {
                    "freeswitch": _freeswitch(directive, aus, reference),
                    "asterisk": asterisk,
                    "kamailio": _kamailio(directive, aus, reference),
                },
            )
        )
    naptrs: list[Naptr] = [d.naptr() for d in listed if unservable(d) is None]
    routes, _ = select_routes(naptrs, aus, DEFAULT_SIP_SERVICES)
    first_route = routes[0].uri if routes else None
    summary = {
        pbx: _summary(reports, pbx, first_route, asterisk_fatal if pbx == "asterisk" else None)
        for pbx in PBXS
    }
    return RecordReport(aus, tuple(reports), first_route, summary)


def check_value(value: str | EnumValue, aus: str) -> RecordReport:
    """:func:`check_directives` for a record value as published (text or parsed)."""
    parsed = EnumValue.from_text(value) if isinstance(value, str) else value
    return check_directives(parsed.directives, aus)
