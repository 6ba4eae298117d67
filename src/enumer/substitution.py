"""RFC 3402 substitution expressions (the NAPTR regexp field), checked and compiled for ENUM.

Every regexp ENUMER handles was published on a public blockchain by a stranger
(SPEC 9), so this module treats it as hostile input:

* Matching uses RE2 (``google-re2``), whose running time is linear in the input,
  never backtracking: ``(a*)*b`` over a long string costs microseconds.
* The cost is bounded before matching: the whole expression must fit a DNS
  ``<character-string>`` (255 bytes), the ERE is at most 200 characters, RE2 may
  use at most 1 MiB and the compiled program at most 2000 instructions.
* What RE2 cannot apply faithfully is rejected instead of approximated: a
  back-reference inside the ERE (``(a)\\1``) needs backtracking, and a blank in
  the field is where emcdns cuts the regexp (reference case p1_20), so the
  published text and the served text would differ.

POSIX ERE semantics are kept where RE2 can: leftmost-longest matching
(``longest_match``), ``^``/``$`` only at the ends of the string and ``.``
matching a newline (``regexec`` without ``REG_NEWLINE``), no Perl ``(?...)``
syntax. Deliberate leniencies and known differences, because publishers test
their records with PCRE-based PBXs (FreeSWITCH) as often as with POSIX ones:
``\\d \\s \\w \\b`` are accepted, a backslash inside a bracket expression is an
escape (RE2) and not a literal (POSIX), and sub-match boundaries follow RE2's
rules, which can differ from POSIX's for ambiguous alternations such as
``^(a|ab)(c|bcd)(d*)$``. ENUM expressions are anchored ``^...$`` rewrites where
none of this matters.

An escaped delimiter ``\\<d>`` always means the delimiter character itself, in
the ERE as well as in the replacement: with ``|`` as delimiter, ``\\|`` in the
ERE is a literal bar, never alternation. That is the only reading under which
any character may serve as delimiter (RFC 3402 section 3.2).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Final

import re2

from enumer.cparse import re2_message
from enumer.messages import show

__all__ = [
    "MAX_ERE_CHARS",
    "MAX_PROGRAM_SIZE",
    "MAX_REGEXP_BYTES",
    "RE2_MAX_MEM",
    "RegexpError",
    "SubstitutionExpression",
]

MAX_REGEXP_BYTES: Final = 255
"""A NAPTR regexp is one DNS ``<character-string>``: a length octet caps it."""

MAX_ERE_CHARS: Final = 200
"""Real ENUM EREs are a few dozen characters; a longer one is abuse or a mistake."""

RE2_MAX_MEM: Final = 1 << 20
"""Memory budget per compiled expression (RE2's default is 8 MiB)."""

MAX_PROGRAM_SIZE: Final = 2000
"""Instruction cap. Matching costs O(program size x input length); ``^(.*)$`` is
11 instructions, ``.{200}`` about 1400, while 200 characters can ask for 14000."""

_DIGITS: Final = frozenset("0123456789")
# One token: a backslash escape pair, or any single character. A lone backslash at
# the end comes out as a token of its own.
_TOKEN: Final = re.compile(r"\\.|.", re.DOTALL)
_BACKREF_DIGITS: Final = frozenset("123456789")

# An ERE that matches the whole of any string, for every delimiter: the default
# "^.*$" cannot be written when the delimiter is one of its characters, because
# an escaped delimiter is a literal. "." matches newlines (POSIX without
# REG_NEWLINE), so each alternative covers every string, leftmost-longest.
_MATCH_ALL_DEFAULT: Final = "^.*$"
_MATCH_ALL_FOR: Final[dict[str, str]] = {
    "^": ".*$",
    "$": "^.*",
    "*": "^.{0,}$",
    ".": "^(x|[^x])*$",
}


class RegexpError(ValueError):
    """A substitution expression that ENUMER will not apply, with a one-line reason.

    A ``ValueError`` so that callers validating user or chain input can catch
    one family of errors.
    """


def _re2_options(case_insensitive: bool) -> Any:
    """RE2 options that give POSIX ``regexec`` semantics under a memory cap."""
    options = re2.Options()
    options.posix_syntax = True  # no Perl (?...) syntax; ERE is what RFC 3402 names
    options.longest_match = True  # POSIX leftmost-longest, not Perl leftmost-first
    options.one_line = True  # ^ and $ only at the ends of the AUS
    options.dot_nl = True  # "." matches a newline, as in regexec without REG_NEWLINE
    options.perl_classes = True  # \d \s \w: publishers test with PCRE-based PBXs too
    options.word_boundary = True  # \b \B, a GNU ERE extension
    options.case_sensitive = not case_insensitive
    options.max_mem = RE2_MAX_MEM
    options.log_errors = False  # errors are reported to the caller, not to stderr
    return options


def _check_characters(text: str, what: str) -> None:
    """Reject blanks and control characters, which cannot survive emcdns and dig.

    emcdns reads the regexp with ``sscanf("%s")`` and so cuts it at the first
    blank (reference case p1_20: the served regexp differs from the published
    one, and dig rejects the packet). NUL and other control characters have no
    place in a URI rewrite and are how hostile input hides.
    """
    if text.isascii() and text.isprintable() and " " not in text:
        return  # the usual case, checked at C speed
    for offset, char in enumerate(text):
        if char == "\x00":
            raise RegexpError(f"{what} contains NUL at offset {offset}")
        if char.isspace():
            raise RegexpError(
                f"{what} contains blank {char!r} at offset {offset}; "
                "emcdns would cut the regexp there"
            )
        category = unicodedata.category(char)
        if category in ("Cc", "Cs"):
            raise RegexpError(f"{what} contains control character {char!r} at offset {offset}")
        if category == "Cf":  # zero-width space, bidi overrides: invisible, spoofing
            raise RegexpError(f"{what} contains invisible character {char!r} at offset {offset}")


def _check_delimiter(delimiter: str) -> None:
    """RFC 3402: any octet except a digit or the flag; backslash would be unreadable."""
    if len(delimiter) != 1:
        raise RegexpError(f"delimiter must be one character, got {show(delimiter)}")
    if delimiter == "\x00" or delimiter.isspace() or unicodedata.category(delimiter) == "Cc":
        raise RegexpError(f"delimiter {delimiter!r} is a blank or control character")
    if not delimiter.isascii():
        raise RegexpError(f"delimiter {delimiter!r} is not a single-octet (ASCII) character")
    if delimiter in _DIGITS:
        raise RegexpError(f"delimiter {delimiter!r} is a digit, which back-references use")
    if delimiter == "i":
        raise RegexpError("delimiter 'i' is the case-insensitivity flag")
    if delimiter == "\\":
        raise RegexpError("delimiter cannot be a backslash, the escape character")


def _tokens(part: str, delimiter: str, what: str) -> list[str]:
    """Split ``part`` into single characters and two-character backslash escapes.

    Escapes pair left to right as in sed, so ``\\\\!`` is an escaped backslash
    followed by a delimiter. An unescaped delimiter or a lone trailing backslash
    means the field boundaries are not where the caller thinks they are.
    """
    tokens: list[str] = _TOKEN.findall(part)
    if tokens and tokens[-1] == "\\":
        raise RegexpError(f"{what} ends with a lone backslash")
    if delimiter in tokens:
        raise RegexpError(f"{what} contains an unescaped delimiter {delimiter!r}")
    return tokens


def _re2_pattern(ere: str, delimiter: str) -> str:
    """Translate the ERE as written between delimiters into an RE2 pattern.

    ``\\<d>`` becomes the delimiter as a literal (``re2.escape``: a letter stays
    a letter, where ``\\x`` would otherwise start a hex escape; punctuation stays
    escaped). Back-references are refused here because RE2 would only say
    "invalid escape sequence".
    """
    pieces: list[str] = []
    for token in _tokens(ere, delimiter, "ERE"):
        if len(token) == 2 and token[1] == delimiter:
            pieces.append(re2.escape(delimiter))
        elif len(token) == 2 and token[1] in _BACKREF_DIGITS:
            raise RegexpError(
                f"back-reference {token} inside the ERE is not supported "
                "(it needs backtracking; RE2 matches in linear time)"
            )
        else:
            pieces.append(token)
    return "".join(pieces)


def _replacement_pieces(replacement: str, delimiter: str) -> tuple[str | int, ...]:
    """Parse the replacement once: literal strings and group numbers.

    RFC 3402 grammar: ``\\1``..``\\9`` are back-references and ``\\<d>`` is the
    delimiter; ``\\\\`` is a backslash (sed practice, and the only way to write a
    backslash before a digit). Any other backslash is an ordinary character, as
    the RFC's ``anychar`` says, so ``\\0`` and ``\\n`` stay two characters.
    """
    pieces: list[str | int] = []
    literal: list[str] = []
    for token in _tokens(replacement, delimiter, "replacement"):
        if len(token) == 1:
            literal.append(token)
        elif token[1] in _BACKREF_DIGITS:
            if literal:
                pieces.append("".join(literal))
                literal = []
            pieces.append(int(token[1]))
        elif token[1] in ("\\", delimiter):
            literal.append(token[1])
        else:
            literal.append(token)
    if literal:
        pieces.append("".join(literal))
    return tuple(pieces)


def _utf8_size(text: str) -> int:
    """Bytes on the wire; lone surrogates are counted here and refused elsewhere."""
    return len(text.encode("utf-8", "surrogatepass"))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@dataclass(frozen=True)
class SubstitutionExpression:
    """One RFC 3402 ``<d>ERE<d>replacement<d>flags`` expression, checked and compiled.

    ``ere`` and ``replacement`` hold the text exactly as written between the
    delimiters, escaped delimiters included, so ``to_text`` reproduces the
    published bytes. Construction validates and compiles: an instance that
    exists can always be applied, within the cost bounds of this module.
    """

    delimiter: str
    ere: str
    replacement: str
    case_insensitive: bool = False
    _regex: Any = field(init=False, repr=False, compare=False)
    _pieces: tuple[str | int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_delimiter(self.delimiter)
        if not self.ere:
            raise RegexpError("ERE is empty")
        _check_characters(self.ere, "ERE")
        _check_characters(self.replacement, "replacement")
        size = _utf8_size(self.to_text())
        if size > MAX_REGEXP_BYTES:
            raise RegexpError(
                f"regexp is {size} bytes, a DNS character-string holds {MAX_REGEXP_BYTES}"
            )
        if len(self.ere) > MAX_ERE_CHARS:
            raise RegexpError(f"ERE is {len(self.ere)} characters, the limit is {MAX_ERE_CHARS}")
        pattern = _re2_pattern(self.ere, self.delimiter)
        try:
            regex = re2.compile(pattern, _re2_options(self.case_insensitive))
        except re2.error as exc:
            raise RegexpError(f"ERE {self.ere!r} does not compile: {re2_message(exc)}") from exc
        if regex.programsize > MAX_PROGRAM_SIZE:
            raise RegexpError(
                f"ERE {self.ere!r} compiles to {regex.programsize} instructions, "
                f"the limit is {MAX_PROGRAM_SIZE}"
            )
        pieces = _replacement_pieces(self.replacement, self.delimiter)
        groups: int = regex.groups
        for piece in pieces:
            if isinstance(piece, int) and piece > groups:
                raise RegexpError(
                    f"back-reference \\{piece} but the pattern has {_plural(groups, 'group')}"
                )
        object.__setattr__(self, "_regex", regex)
        object.__setattr__(self, "_pieces", pieces)

    @classmethod
    def from_text(cls, text: str) -> SubstitutionExpression:
        """Parse a NAPTR regexp field; ``RegexpError`` says precisely what is wrong.

        The first character is the delimiter; exactly two more unescaped
        delimiters must follow, then the flags, which are empty or ``i``.
        """
        if not text:
            raise RegexpError("regexp is empty")
        size = _utf8_size(text)
        if size > MAX_REGEXP_BYTES:  # before any other work on a possibly huge input
            raise RegexpError(
                f"regexp is {size} bytes, a DNS character-string holds {MAX_REGEXP_BYTES}"
            )
        _check_characters(text, "regexp")
        delimiter = text[0]
        _check_delimiter(delimiter)
        tokens: list[str] = _TOKEN.findall(text, 1)
        count = tokens.count(delimiter)
        if count < 2:
            raise RegexpError(
                f"regexp {show(text)} has {1 + count} unescaped delimiters {delimiter!r}, "
                "expected 3 (<d>ERE<d>replacement<d>flags)"
            )
        if count > 2:
            raise RegexpError(
                f"regexp {show(text)} has more than 3 unescaped delimiters {delimiter!r}"
            )
        first = tokens.index(delimiter)
        second = tokens.index(delimiter, first + 1)
        flags = "".join(tokens[second + 1 :])
        if flags not in ("", "i"):
            raise RegexpError(f"unknown flags {show(flags)} (only 'i' is defined)")
        ere = "".join(tokens[:first])
        replacement = "".join(tokens[first + 1 : second])
        if cls is SubstitutionExpression:
            return _cached(delimiter, ere, replacement, flags == "i")
        return cls(delimiter, ere, replacement, flags == "i")

    def to_text(self) -> str:
        """The field as published; ``from_text(x).to_text() == x``."""
        d = self.delimiter
        return f"{d}{self.ere}{d}{self.replacement}{d}{'i' if self.case_insensitive else ''}"

    @property
    def groups(self) -> int:
        """Number of capturing groups, the highest back-reference the replacement may use."""
        count: int = self._regex.groups
        return count

    def apply(self, aus: str) -> str | None:
        """Rewrite the AUS (e.g. ``"+18009359935"``); ``None`` when the ERE does not match.

        Like sed's ``s///`` and POSIX ``regexec``: the first (leftmost-longest)
        match is replaced and the rest of the AUS is kept, i.e.
        ``aus[:start] + expansion + aus[end:]``. RFC 6116 records are anchored
        (``^...$``), so in practice the result is the expansion alone. A group
        that did not take part in the match expands to the empty string.
        """
        match = self._regex.search(aus)
        if match is None:
            return None
        out: list[str] = []
        for piece in self._pieces:
            if isinstance(piece, int):
                out.append(match.group(piece) or "")
            else:
                out.append(piece)
        start, end = match.span()
        return aus[:start] + "".join(out) + aus[end:]

    def expanded(self, aus: str) -> SubstitutionExpression | None:
        """The result for ``aus`` as a constant expression such as ``!^.*$!sip:...!``.

        A gateway that knows the number can serve this instead of the publisher's
        expression, so that callers never run a stranger's ERE. It keeps the
        delimiter and ``expanded(aus).apply(aus) == apply(aus)``. ``None`` when
        the ERE does not match; ``RegexpError`` when the result cannot be
        written as a valid expression (over 255 bytes, or a blank taken from
        the AUS).
        """
        result = self.apply(aus)
        if result is None:
            return None
        d = self.delimiter
        escaped = result.replace("\\", "\\\\").replace(d, "\\" + d)
        return SubstitutionExpression(
            delimiter=d,
            ere=_MATCH_ALL_FOR.get(d, _MATCH_ALL_DEFAULT),
            replacement=escaped,
            case_insensitive=False,
        )


@functools.lru_cache(maxsize=1024)
def _cached(
    delimiter: str, ere: str, replacement: str, case_insensitive: bool
) -> SubstitutionExpression:
    """Memoised construction: values are immutable and a gateway sees the same
    regexp for many numbers, while checking and compiling one costs ~40 us.

    Bounded because every entry holds a compiled program (at most
    ``MAX_PROGRAM_SIZE`` instructions, some tens of KiB) and chain input is
    unbounded: 1024 entries stay within tens of MiB.
    """
    return SubstitutionExpression(delimiter, ere, replacement, case_insensitive)
