"""Coverage-guided fuzz targets (atheris, libFuzzer's engine) for code that reads strangers' bytes.

Each target states the contract its code promises for *any* input, so a finding is a real bug:

* ``records``: the tolerant reader takes every value without an exception (as emcdns does),
  its NAPTRs are either built or refused with a typed error, and the linter never raises;
* ``naptr``: a regexp field is parsed or refused with ``RegexpError``; what parses round-trips
  through ``to_text`` and applies to an AUS without any other exception; NAPTR RDATA is parsed
  or refused with ``ValueError``, and what parses encodes back to the same bytes;
* ``wire``: the gateway's responder answers any datagram with ``None`` or a message dnspython
  parses, with the query's ID, and never raises.

Run one for as long as you like (the suite runs each for a bounded number of inputs)::

    python -m tests.fuzz.targets records -max_total_time=600 /tmp/new tests/fuzz/corpus/records
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports():
    import dns.message

    from enumer import records
    from enumer.dns.wire import GatewayView, SuffixRule, ZoneSpec, respond
    from enumer.naptr import Naptr
    from enumer.substitution import RegexpError, SubstitutionExpression

AUS = "+18009359935"


def fuzz_records(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    value = records.EnumValue.from_text(text)
    value.to_text()
    with contextlib.suppress(records.RecordError, RegexpError, ValueError):
        value.naptrs()
    records.lint_value(text)


def fuzz_naptr(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        expression = SubstitutionExpression.from_text(text)
    except RegexpError:
        pass
    else:
        assert SubstitutionExpression.from_text(expression.to_text()) == expression
        expression.apply(AUS)
    try:
        rdata = Naptr.from_wire(data)
    except ValueError:
        return
    assert rdata.to_wire() == data


class _Answers:
    """A fixed answer source: one served number, the shape the table gives the responder."""

    generation = 1
    serial = 2026120201
    _rdata = Naptr.from_text(
        '100 10 "u" "E2U+sip" "!^(.*)$!sip:\\\\1@pbx.example.com!" .'
    ).to_wire()
    _rr = b"\xc0\x0c\x00\x23\x00\x01\x00\x01\x51\x80" + len(_rdata).to_bytes(2, "big") + _rdata

    def answer(self, key: bytes) -> bytes | None:
        return self._rr if key == b"53995390081" else None


_VIEW = GatewayView(
    zones={"enum": (ZoneSpec("enum"), _Answers())},
    suffixes=(SuffixRule("enumer.org"),),
    status=lambda: "fuzz",
)


def fuzz_wire(data: bytes) -> None:
    for max_udp in (1232, None):
        reply = respond(data, _VIEW, max_udp)
        if reply is None:
            assert len(data) < 12 or data[2] & 0x80
            continue
        assert reply[:2] == data[:2]
        dns.message.from_wire(reply)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "records": fuzz_records,
    "naptr": fuzz_naptr,
    "wire": fuzz_wire,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python -m tests.fuzz.targets {'|'.join(TARGETS)} [libFuzzer options]")
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
