"""Zone content (SPEC 12): toll-free wildcards answer as the gateway does; text; apex."""

from __future__ import annotations

import random

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from enumer.dns.table import answer_bytes
from enumer.dns.wire import SuffixRule, ZoneSpec
from enumer.dns.zone import (
    Apex,
    ZoneError,
    classify,
    distinct_rrs,
    naptr_text,
    next_serial,
    origins,
    tollfree_records,
)
from enumer.records import E2UDirective
from enumer.trust import TollFreeEntry, TollFreeTable


def _entry(pattern: str, host: str) -> TollFreeEntry:
    directive = E2UDirective.parse(f"E2U+sip=100|10|!^(.*)$!sip:\\1@{host}!")
    assert directive is not None
    return TollFreeEntry(pattern, (directive,))


def _rrs(host: str, digits: str = "1") -> bytes:
    directive = E2UDirective.parse(f"E2U+sip=100|10|!^(.*)$!sip:\\1@{host}!")
    assert directive is not None
    return answer_bytes([directive.naptr(600)], digits, False, {})


def _zone_lookup(records: dict[tuple[str, ...], bytes], qname: tuple[str, ...]) -> bytes | None:
    """RFC 4592 lookup of ``qname`` (labels, leftmost first, relative to the origin)."""
    if qname in records:
        return records[qname]
    nodes = set()
    for owner in records:
        for i in range(len(owner) + 1):
            nodes.add(owner[i:])
    if qname in nodes:
        return None  # an existing node without records: NODATA
    # closest encloser: the longest existing ancestor
    for i in range(1, len(qname) + 1):
        ancestor = qname[i:]
        if ancestor in nodes or ancestor == ():
            return records.get(("*", *ancestor))
    return None


def test_tollfree_wildcards_answer_every_number_as_the_gateway_does() -> None:
    entries = (
        _entry("^18005\\d*$", "first.example"),
        _entry("1800\\d+", "second.example"),
        _entry("1800555\\d{4}", "fixed.example"),  # not expressible: reported
        _entry("17775", "exact.example"),
        _entry("1777[0-9]*", "star.example"),
    )
    served = {
        "18001234567": _rrs("served-a.example"),
        "18005550000": _rrs("served-b.example"),
        "17771234567": _rrs("served-c.example"),
        "12025550100": _rrs("served-d.example"),
    }
    answers = {d[::-1].encode(): rrs for d, rrs in served.items()}
    zone = tollfree_records(answers, entries)
    assert len(zone.left_out) == 1 and "1800555\\d{4}" in zone.left_out[0]
    records = {tuple(reversed(d)): rrs for d, rrs in served.items()}
    for owner, rrs in zone.records:
        labels = []
        pos = 0
        while pos < len(owner):
            labels.append(owner[pos + 1 : pos + 1 + owner[pos]].decode())
            pos += 1 + owner[pos]
        assert tuple(labels) not in records, f"two record sets at {labels}"
        records[tuple(labels)] = rrs
    expressible = TollFreeTable(tuple(e for e in entries if classify(e) is not None))
    rng = random.Random(14)
    numbers = [*served, "1800", "18005", "1777", "17775", "177", "1888"]
    for _ in range(3000):
        prefix = rng.choice(["1800", "18005", "1777", "17771", "17775", "1202", "1", ""])
        numbers.append(prefix + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 8))))
    for digits in numbers:
        if not digits:
            continue
        expected = served.get(digits)
        if expected is None:
            entry = expressible.match(digits)
            expected = (
                answer_bytes((d.naptr(86400) for d in entry.directives), digits, False, {})
                if entry
                else None
            )
        assert _zone_lookup(records, tuple(reversed(digits))) == expected, digits


def test_tollfree_forms_that_a_zone_can_hold() -> None:
    assert classify(_entry("^1800\\d*$", "x")) == ("1800", "*")
    assert classify(_entry("1800[0-9]+", "x")) == ("1800", "+")
    assert classify(_entry("1800.*", "x")) == ("1800", "*")
    assert classify(_entry("18005551234", "x")) == ("18005551234", "")
    assert classify(_entry("1800\\d{7}", "x")) is None
    assert classify(_entry("1(800|888)\\d*", "x")) is None
    left = tollfree_records({}, [_entry("1800\\d*", "x")], expand_regexp=True).left_out
    assert "--expand-regexp" in left[0]


def test_naptr_text_reads_back_to_the_same_rdata() -> None:
    for regexp in ("!^(.*)$!sip:\\1@a.example!", '!^.*$!sip:"q"@b!', "!^.*$!sip:\u00e9@c!"):
        directive = E2UDirective.parse(f"E2U+sip=100|10|{regexp}")
        assert directive is not None
        rr = distinct_rrs(answer_bytes([directive.naptr(60)], "1", False, {}))[0]
        rdata = rr[10:]
        text = naptr_text(rdata)
        parsed = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.NAPTR, text)
        assert parsed.to_wire() == rdata


def test_repeated_naptrs_are_one_record_in_the_zone() -> None:
    rrs = _rrs("a.example") + _rrs("a.example") + _rrs("b.example")
    assert len(distinct_rrs(rrs)) == 2


def test_origins_follow_zones_and_suffix_rules() -> None:
    zones = [ZoneSpec("enum"), ZoneSpec("test", verified=False)]
    names = [o.name for o in origins(zones, (SuffixRule("enumer.org"),))]
    assert names == ["enum.", "enum.enumer.org.", "test.", "test.enumer.org."]
    replaced = [o.name for o in origins(zones[:1], (SuffixRule("e164.org", "enum"),))]
    assert replaced == ["enum.", "e164.org."]


def test_apex_defaults_match_the_gateway_soa_and_bad_values_are_refused() -> None:
    apex = Apex()
    assert apex.soa_text("enum.", 7) == (
        "@ 300 IN SOA ns.enum. hostmaster.enum. 7 3600 600 1209600 300"
    )
    assert apex.ns_names("enum.") == ["localhost."]
    with pytest.raises(ZoneError):
        Apex(ns=("bad name!.",))
    with pytest.raises(ZoneError):
        Apex(refresh=-1)


def test_serial_follows_height_and_never_goes_back() -> None:
    assert next_serial(None, 120) == 120
    assert next_serial(120, 125) == 125
    assert next_serial(125, 124) == 126  # a re-organisation: the height went back
    assert next_serial(126, 126) == 127  # a change at the same height
