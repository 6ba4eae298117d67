"""E.164 numbers, the ENUM record names they key, and the DNS names they travel in.

A number enters ENUMER in two ways, and each has its own constructor:

* dialled or typed by a person (``+1 (800) 935-9935``, ``011 1 800 ...``, a
  national number with a region): ``E164.from_text``, which leans on
  ``phonenumbers`` for national and international prefixes of each region;
* as the digits of an NVS name ``enum:<digits>:<N>`` (SPEC 4): ``E164.from_digits``.

Both raise :class:`NumberError` (ENUMER's convention: ``from_*`` raises, ``parse``
returns None).  It leaves in DNS names: ``E164.to_domain``; the gateway reads
query names itself, at C speed (:mod:`enumer.dns.wire`).

Possibility checks are advisory only (``E164.is_possible``): test and toll-free
numbers such as ``15551234567`` and ``8005550000`` have records too, and
rejecting what the metadata of the day calls impossible would make them
unreachable.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final

import phonenumbers

from enumer.messages import show

__all__ = ["E164", "DialplanError", "NumberError"]

MAX_E164_DIGITS: Final = 15
"""ITU-T E.164: country code plus national significant number, at most 15 digits."""

_ASCII_DIGITS: Final = frozenset("0123456789")
# What people put between digits. "/" is common in German notation ("030/1234567").
_SEPARATORS: Final = frozenset("\t.()/")
# Unicode space separators (no-break and thin spaces) and dashes (en dash, ...),
# which numbers copied from web pages and documents carry.
_SEPARATOR_CATEGORIES: Final = frozenset({"Zs", "Pd"})


class NumberError(ValueError):
    """Input that is not a usable phone number; the message names the input."""


class DialplanError(ValueError):
    """A bad ``default_region`` or ``area_code``: the caller's configuration, not the number."""


def _is_ascii_digits(text: str) -> bool:
    """``str.isdigit`` alone also accepts other scripts' digits and superscripts."""
    return bool(text) and text.isascii() and text.isdigit()


def _digits_problem(digits: str) -> str | None:
    """Why ``digits`` is not a full E.164 number without '+', or None if it is."""
    if not digits:
        return "has no digits"
    if not _is_ascii_digits(digits):
        return "is not all ASCII digits"
    if len(digits) > MAX_E164_DIGITS:
        return f"has {len(digits)} digits, E.164 allows at most {MAX_E164_DIGITS}"
    if digits[0] == "0":
        return "starts with 0, but no country code does (a national number needs a region)"
    return None


def _region(default_region: str | None) -> str | None:
    """Validate a region code early: phonenumbers would only say "invalid country code"."""
    if default_region is None:
        return None
    region = default_region.upper()
    if phonenumbers.country_code_for_region(region) == 0:
        raise DialplanError(f"unknown region {default_region!r} (expected e.g. 'US', 'DE', 'RU')")
    return region


@dataclass(frozen=True)
class E164:
    """A full international number: country code included, no '+', 1 to 15 digits."""

    digits: str

    def __post_init__(self) -> None:
        problem = _digits_problem(self.digits)
        if problem is not None:
            raise NumberError(f"E.164 digits {show(self.digits, 60)} {problem}")

    @classmethod
    def _checked(cls, text: str, digits: str) -> E164:
        """Construct from a parsed input, blaming the original text in the error."""
        problem = _digits_problem(digits)
        if problem is not None:
            raise NumberError(f"phone number {show(text, 60)} {problem}")
        return cls(digits)

    @classmethod
    def from_text(
        cls,
        text: str,
        default_region: str | None = None,
        area_code: str | None = None,
    ) -> E164:
        """Normalise a dialled or typed number, as a PBX dialplan would (SPEC 8).

        International forms are understood everywhere: a leading ``+``, and,
        without a region, the prefixes ``011`` (NANP) and ``00`` (ITU); other
        bare digits are then a full international number (``18009359935``).
        With ``default_region`` (``"US"``, ``"DE"``, ...) a number without ``+``
        is read by ``phonenumbers`` as that region dials it: its international
        prefix (``011`` in the US, ``810`` in Russia) and its national trunk
        prefix (``0`` in Germany, ``8`` in Russia). ``00`` stays international
        even where the region's own prefix differs, as in the article's
        dialplan. ``area_code`` completes 7-digit local numbers in a NANP
        region (``1`` + area code + number), the article's ``1<home_code>``.

        Blanks, dots, dashes, slashes and parentheses are ignored (Unicode
        spaces and dashes too, as pasted from documents); letters
        (vanity numbers) and other characters raise ``NumberError``. Bad
        ``default_region`` or ``area_code`` arguments raise ``DialplanError``:
        they are configuration mistakes, not bad numbers.
        """
        region = _region(default_region)
        if area_code is not None:
            if region is None or phonenumbers.country_code_for_region(region) != 1:
                raise DialplanError(
                    f"area_code {area_code!r} needs a NANP default_region such as 'US'"
                )
            if len(area_code) != 3 or not _is_ascii_digits(area_code):
                raise DialplanError(f"area_code {area_code!r} is not 3 digits")
        body = text.strip()
        if not body:
            raise NumberError(f"phone number {show(text, 60)} is empty")
        international = body.startswith("+")
        if international:
            body = body[1:]
        for char in body:
            if char in _ASCII_DIGITS or char in _SEPARATORS:
                continue
            if unicodedata.category(char) in _SEPARATOR_CATEGORIES:
                continue
            if char.isalpha():
                raise NumberError(f"phone number {show(text, 60)} contains the letter {char!r}")
            if char == "+":
                raise NumberError(f"phone number {show(text, 60)} has '+' after the start")
            raise NumberError(f"phone number {show(text, 60)} contains {char!r}")
        digits = "".join(char for char in body if char in _ASCII_DIGITS)
        if not digits:
            raise NumberError(f"phone number {show(text, 60)} has no digits")
        if international:
            return cls._checked(text, digits)
        if region is None:
            if digits.startswith("011"):
                digits = digits[3:]
            elif digits.startswith("00"):
                digits = digits[2:]
            return cls._checked(text, digits)
        if area_code is not None and len(digits) == 7:
            return cls._checked(text, f"1{area_code}{digits}")
        try:
            number = phonenumbers.parse(digits, region, keep_raw_input=True)
        except phonenumbers.NumberParseException as exc:
            raise NumberError(
                f"phone number {show(text, 60)} in region {region}: {exc._msg}"
            ) from exc
        idd = phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_IDD
        if number.country_code_source != idd and digits.startswith("00"):
            # phonenumbers read "00" as part of a national number (e.g. in the US,
            # whose prefix is 011); no national number starts with 00.
            return cls._checked(text, digits[2:])
        formatted: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return cls._checked(text, formatted.removeprefix("+"))

    @classmethod
    def from_digits(cls, digits: str) -> E164:
        """Strict: exactly the digits of an ``enum:<digits>:<N>`` name, nothing to clean."""
        return cls(digits)

    @property
    def is_possible(self) -> bool:
        """Whether phonenumbers' metadata deems the length possible. Advisory only.

        A number that is only dialable locally (``+1 935 9935``: a NANP number
        without its area code) is not a possible *international* number, although
        ``phonenumbers.is_possible_number`` says yes to it.
        """
        try:
            number = phonenumbers.parse(f"+{self.digits}")
        except phonenumbers.NumberParseException:
            return False  # e.g. an unassigned country code
        reason = phonenumbers.is_possible_number_with_reason(number)
        return bool(reason == phonenumbers.ValidationResult.IS_POSSIBLE)

    @property
    def aus(self) -> str:
        """The Application Unique String of ENUM DDDS (RFC 6116): ``+`` and the digits."""
        return f"+{self.digits}"

    def to_domain(self, zone: str = "e164.arpa", dotted: bool = True) -> str:
        """The query name: digits reversed, one per label (dotted) or one label (compact).

        ``5.3.9.9.5.3.9.0.0.8.1.e164.arpa`` is the RFC 6116 form; ENUMER also
        serves the compact ``53995390081.enum`` (SPEC 7.1). No trailing dot.
        """
        reversed_digits = self.digits[::-1]
        labels = ".".join(reversed_digits) if dotted else reversed_digits
        suffix = zone.strip(".")
        return f"{labels}.{suffix}" if suffix else labels

    def __str__(self) -> str:
        return self.aus
