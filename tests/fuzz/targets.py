"""Coverage-guided fuzz targets (atheris, libFuzzer's engine) for code that reads strangers' bytes.

Each target states the contract its code promises for *any* input, so a finding is a real bug:

* ``records``: the tolerant reader takes every value without an exception (as emcdns does),
  its NAPTRs are either built or refused with a typed error, and the linter never raises;
* ``naptr``: a regexp field is parsed or refused with ``RegexpError``; what parses round-trips
  through ``to_text`` and applies to an AUS without any other exception; NAPTR RDATA is parsed
  or refused with ``ValueError``, and what parses encodes back to the same bytes;
* ``wire``: the gateway's responder answers any datagram with ``None`` or a message dnspython
  parses, with the query's ID, and never raises;
* the C loop's fast path has its own native harness (``fastloop_fuzz.c``, libFuzzer and
  AddressSanitizer through clang), held to the same ``wire.respond`` as here.

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
    from enumer.dns.wire import respond
    from enumer.naptr import Naptr
    from enumer.substitution import RegexpError, SubstitutionExpression
    from tests.fuzz import fastloop_oracle as oracle

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


def fuzz_wire(data: bytes) -> None:
    for max_udp in (1232, None):
        reply = respond(data, oracle.VIEW, max_udp)
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
