"""NAPTR RDATA as ENUM uses it (RFC 3403): fields, wire and presentation forms, sizes.

A NAPTR read from the chain or a zone is held as it was written, and checked
only when it is put on the wire: ``to_wire``/``to_text`` refuse what DNS cannot
carry.  The encoder is written out by hand (a gateway encodes one NAPTR per
record of the chain at first start); dnspython owns the presentation format and
the strict parser.  What the regexp field means is :mod:`enumer.substitution`;
which NAPTR a caller uses is :mod:`enumer.ddds`.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.IN.NAPTR

from enumer.messages import show

__all__ = [
    "DEFAULT_TTL",
    "PLAIN_UDP_SIZE",
    "Naptr",
    "NaptrError",
    "naptr_set_wire_size",
]

DEFAULT_TTL: Final = 86400
"""TTL of an answer when the record says nothing else (no ``TTL=`` line)."""

PLAIN_UDP_SIZE: Final = 512
"""Plain UDP DNS messages stop at 512 bytes (RFC 1035); larger answers need EDNS0 or TCP."""


class NaptrError(ValueError):
    """A NAPTR that DNS cannot carry, or RDATA/text that is not a NAPTR; one line.

    A ``ValueError`` so that callers validating any input can catch one family.
    """


def _utf8(value: str, what: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NaptrError(f"NAPTR {what} is not valid Unicode: {exc.reason}") from exc


def _character_string(value: str, what: str) -> bytes:
    """RFC 1035 <character-string>: one length octet, so at most 255 bytes."""
    raw = _utf8(value, what)
    if len(raw) > 255:
        raise NaptrError(
            f"NAPTR {what} is {len(raw)} bytes, a DNS character-string holds at most 255"
        )
    return raw


_U16_PAIR: Final = struct.Struct("!HH")
_LENGTH_OCTETS: Final = [bytes((n,)) for n in range(256)]


def _replacement_name(text: str) -> dns.name.Name:
    try:
        return dns.name.from_text(text, origin=dns.name.root)
    except dns.exception.DNSException as exc:
        raise NaptrError(f"NAPTR replacement {show(text)}: {exc}") from exc


@functools.lru_cache(maxsize=1024)
def _name_wire(text: str) -> bytes:
    """The uncompressed wire form of a replacement name (RFC 3403 forbids
    compression); ENUM's ``"."`` is ``00``."""
    if text == ".":
        return b"\x00"
    wire = _replacement_name(text).to_wire()
    assert wire is not None  # without a file argument dnspython returns the bytes
    return wire


@dataclass(frozen=True)
class Naptr:
    """The RDATA of one NAPTR record as ENUM uses it, plus the TTL to answer with.

    Text fields are ``str`` (RFC 3403: UTF-8 on the wire). Construction accepts
    any values so that a parser can hold what a record says; ``to_wire`` and
    ``to_text`` raise :class:`NaptrError` for what DNS cannot carry. ``replacement``
    is a domain name, ``"."`` for ENUM terminal rules; names read back by
    ``from_wire``/``from_text`` are absolute, with a trailing dot.
    """

    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str
    ttl: int = DEFAULT_TTL

    def _rdata(self) -> dns.rdtypes.IN.NAPTR.NAPTR:
        """dnspython's NAPTR, which owns the presentation format."""
        self._check_integers()
        flags = _character_string(self.flags, "flags")
        service = _character_string(self.service, "service")
        regexp = _character_string(self.regexp, "regexp")
        replacement = _replacement_name(self.replacement)
        return dns.rdtypes.IN.NAPTR.NAPTR(  # type: ignore[no-untyped-call]
            dns.rdataclass.IN,
            dns.rdatatype.NAPTR,
            self.order,
            self.preference,
            flags,
            service,
            regexp,
            replacement,
        )

    def to_wire(self) -> bytes:
        """RDATA: order, preference, three character-strings, uncompressed name.

        RFC 3403 forbids compressing the replacement name, and ENUM's ``"."``
        is the single byte ``00``. The TTL is not part of RDATA.
        """
        # Written here rather than through dnspython (``_rdata().to_wire()``), which
        # costs ~40 us per NAPTR: a gateway encodes one per record of the chain at
        # first start.  The tests compare the two on generated NAPTRs.
        self._check_integers()
        parts = [_U16_PAIR.pack(self.order, self.preference)]
        for value, what in (
            (self.flags, "flags"),
            (self.service, "service"),
            (self.regexp, "regexp"),
        ):
            raw = _character_string(value, what)
            parts.append(_LENGTH_OCTETS[len(raw)])
            parts.append(raw)
        parts.append(_name_wire(self.replacement))
        return b"".join(parts)

    def _check_integers(self) -> None:
        for name, number in (("order", self.order), ("preference", self.preference)):
            if not 0 <= number <= 0xFFFF:
                raise NaptrError(f"NAPTR {name} {number} is not a 16-bit unsigned integer")

    @classmethod
    def from_wire(cls, rdata: bytes, ttl: int = DEFAULT_TTL) -> Naptr:
        """Parse RDATA strictly: :class:`NaptrError` for anything ``to_wire`` would not emit.

        That covers truncation, trailing bytes, a compressed replacement name
        and strings that are not UTF-8.
        """
        try:
            parsed = dns.rdata.from_wire(
                dns.rdataclass.IN, dns.rdatatype.NAPTR, rdata, 0, len(rdata)
            )
        except (dns.exception.DNSException, ValueError) as exc:
            raise NaptrError(f"malformed NAPTR RDATA ({len(rdata)} bytes): {exc}") from exc
        assert isinstance(parsed, dns.rdtypes.IN.NAPTR.NAPTR)
        texts: list[str] = []
        for what in ("flags", "service", "regexp"):
            try:
                texts.append(getattr(parsed, what).decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise NaptrError(f"NAPTR {what} is not UTF-8: {exc.reason}") from exc
        value = cls(
            order=parsed.order,
            preference=parsed.preference,
            flags=texts[0],
            service=texts[1],
            regexp=texts[2],
            replacement=parsed.replacement.to_text(),
            ttl=ttl,
        )
        if value.to_wire() != bytes(rdata):
            raise NaptrError("malformed NAPTR RDATA: compressed replacement name")
        return value

    def to_text(self) -> str:
        """Presentation format as dig and dnspython print it.

        ``100 10 "u" "E2U+sip" "!^(.*)$!sip:\\\\1@h!" .`` with ``"`` and ``\\``
        escaped and non-printable bytes as ``\\DDD``.
        """
        text: str = self._rdata().to_text()
        return text

    @classmethod
    def from_text(cls, text: str, ttl: int = DEFAULT_TTL) -> Naptr:
        """Parse the presentation format (zone-file RDATA); names are taken as absolute."""
        try:
            parsed = dns.rdata.from_text(
                dns.rdataclass.IN,
                dns.rdatatype.NAPTR,
                text,
                origin=dns.name.root,
                relativize=False,
            )
        except (dns.exception.DNSException, ValueError) as exc:
            raise NaptrError(f"NAPTR text {show(text)}: {exc}") from exc
        wire = parsed.to_wire()
        assert wire is not None
        return cls.from_wire(wire, ttl=ttl)


def naptr_set_wire_size(naptrs: Iterable[Naptr], owner_len: int = 2) -> int:
    """Bytes the NAPTRs take in an answer section, to warn before 512 (or EDNS) is hit.

    Per RR: the owner name (2 bytes when it is a compression pointer to the
    question), 10 bytes of type, class, TTL and RDLENGTH, then the RDATA.
    """
    return sum(owner_len + 10 + len(naptr.to_wire()) for naptr in naptrs)
