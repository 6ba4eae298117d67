"""What the C fast path is held to when fuzzed natively: zones, pointers and ``wire.respond``.

``fastloop_fuzz.c`` (libFuzzer + AddressSanitizer, clang) embeds Python, imports this module
once, and for every input whose fast-path reply C produced asks :func:`expected` for the
general path's bytes; a difference aborts the run.  The zones are the answer-table shapes
the gateway hands ``_fastloop.serve`` (``udp._c_zones``), over a small fixed table.
"""

from __future__ import annotations

from typing import ClassVar

from enumer.dns import udp
from enumer.dns.flat import FlatTable
from enumer.dns.wire import SOA_POINTER_OFFSETS, GatewayView, SuffixRule, ZoneSpec, respond
from enumer.naptr import Naptr

_RDATA = Naptr.from_text('100 10 "u" "E2U+sip" "!^(.*)$!sip:\\\\1@pbx.example.com!" .').to_wire()
_RR = b"\xc0\x0c\x00\x23\x00\x01\x00\x01\x51\x80" + len(_RDATA).to_bytes(2, "big") + _RDATA


class Answers:
    """A few served numbers (one with nine RRs, one of 63 digits), complete: misses are C's."""

    generation = 1
    serial = 2026120201
    fast_answers_complete = True
    fast_answers: ClassVar[dict[bytes, bytes]] = {
        b"53995390081": _RR,
        b"1": _RR,
        b"9" * 63: _RR,
        b"76543217771": _RR * 9,
    }

    def answer(self, key: bytes) -> bytes | None:
        return self.fast_answers.get(key)


class MappedAnswers(Answers):
    """The same numbers in a flat table file (what the gateway serves), read by C in place."""

    def __init__(self) -> None:
        items = Answers.fast_answers.items()
        self.table = FlatTable.create(None, items, len(Answers.fast_answers))

    @property
    def fast_answers(self) -> FlatTable:  # type: ignore[override]
        return self.table

    def answer(self, key: bytes) -> bytes | None:
        found: bytes | None = self.table.get(key)
        return found


VIEW = GatewayView(
    zones={
        "enum": (ZoneSpec("enum"), Answers()),
        "e164": (ZoneSpec("e164", max_digits=15), Answers()),
        "flat": (ZoneSpec("flat"), MappedAnswers()),
    },
    suffixes=(SuffixRule("enumer.org"),),
    status=lambda: "fuzz",
)
ZONES = udp._c_zones(VIEW)
POINTERS = SOA_POINTER_OFFSETS


def expected(datagram: bytes) -> bytes | None:
    """The general path's reply (what C must have produced, byte for byte)."""
    return respond(datagram, VIEW, 1232)
