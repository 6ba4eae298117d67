"""ENUM record names and values: the tolerant reader against emcdns, round trips, the linter."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enumer.naptr import DEFAULT_TTL
from enumer.records import (
    E2UDirective,
    EnumName,
    EnumValue,
    OtherLine,
    RecordError,
    Severity,
    SigLine,
    Signature,
    TtlLine,
    lint_value,
)

# -- an independent model of emcdns's reader (src/emcdns.cpp, Answer_ENUM/HandleE2U) --------
#
# Written from the C code, for ASCII text: strsep on "\n\r", the first three bytes OR 0x20
# select the kind, TTL is atoi of the text after the first '=' (the last TTL line wins, each
# one assigns m_ttl), E2U lines go through sscanf("%u | %u | %s") after the service is cut at
# the first '=' and its trailing bytes <= 0x20 are dropped, SIG lines are comma lists of
# "verifier|signature" with bytes <= 0x20 trimmed around both parts.

C_SPACE = " \t\n\v\f\r"


def _kind(token: str) -> str:
    if len(token) < 3:
        return ""
    return "".join(chr(ord(c) | 0x20) for c in token[:3])


def c_atoi(text: str) -> int:
    """glibc atoi: strtol (saturating at 64 bits) cast to a 32-bit int."""
    i = 0
    while i < len(text) and text[i] in C_SPACE:
        i += 1
    negative = False
    if i < len(text) and text[i] in "+-":
        negative = text[i] == "-"
        i += 1
    j = i
    while j < len(text) and text[j] in "0123456789":
        j += 1
    if j == i:
        return 0
    value = int(text[i:j]) * (-1 if negative else 1)
    value = max(-(2**63), min(2**63 - 1, value)) & 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


def c_scan_u(text: str, i: int) -> tuple[int, int] | None:
    """sscanf %u: blanks, optional sign, digits (strtoul, stored in an unsigned int)."""
    while i < len(text) and text[i] in C_SPACE:
        i += 1
    negative = False
    if i < len(text) and text[i] in "+-":
        negative = text[i] == "-"
        i += 1
    j = i
    while j < len(text) and text[j] in "0123456789":
        j += 1
    if j == i:
        return None
    magnitude = int(text[i:j])
    value = 2**64 - 1 if magnitude > 2**64 - 1 else (-magnitude if negative else magnitude)
    return value % 2**64 & 0xFFFFFFFF, j


def c_sscanf_directive(rest: str) -> tuple[int, int, str] | None:
    first = c_scan_u(rest, 0)
    if first is None:
        return None
    order, i = first
    while i < len(rest) and rest[i] in C_SPACE:
        i += 1
    if i >= len(rest) or rest[i] != "|":
        return None
    second = c_scan_u(rest, i + 1)
    if second is None:
        return None
    pref, i = second
    while i < len(rest) and rest[i] in C_SPACE:
        i += 1
    if i >= len(rest) or rest[i] != "|":
        return None
    i += 1
    while i < len(rest) and rest[i] in C_SPACE:
        i += 1
    j = i
    while j < len(rest) and rest[j] not in C_SPACE:
        j += 1
    if j == i:
        return None
    return order, pref, rest[i:j]


def _strip_c(text: str) -> str:
    start, end = 0, len(text)
    while start < end and ord(text[start]) <= 0x20:
        start += 1
    while end > start and ord(text[end - 1]) <= 0x20:
        end -= 1
    return text[start:end]


Reading = tuple[int, list[tuple[str, int, int, str]], list[tuple[str, str]]]


def emulate_emcdns(value: str) -> Reading:
    """(ttl, directives, signature entries) as emcdns reads an ENUM value."""
    ttl = DEFAULT_TTL
    e2u: list[str] = []
    sigs: list[tuple[str, str]] = []
    for token in re.split(r"[\n\r]", value):
        kind = _kind(token)
        if kind == "e2u":
            e2u.append(token)
        elif kind == "ttl":
            eq = token.find("=", 3)
            if eq >= 0:
                ttl = c_atoi(token[eq + 1 :])
        elif kind == "sig":
            eq = token.find("=", 3)
            if eq < 0:
                continue
            # The SPEC's reading of the comma list (every entry). emcdns's loop restarts
            # strchr(',') on the NUL it wrote, so it really examines at most two entries;
            # both readings agree for one or two entries.
            for item in token[eq + 1 :].split(","):
                bar = item.find("|")
                if bar < 0:
                    continue
                sigs.append((_strip_c(item[:bar]), _strip_c(item[bar + 1 :])))
    directives = []
    for line in e2u:
        eq = line.find("=")
        if eq < 0:
            continue
        service = line[:eq]
        while service and ord(service[-1]) <= 0x20:
            service = service[:-1]
        scanned = c_sscanf_directive(line[eq + 1 :])
        if scanned is not None:
            directives.append((service, *scanned))
    return ttl, directives, sigs


def ours(value: str) -> Reading:
    parsed = EnumValue.from_text(value)
    return (
        parsed.ttl,
        [(d.service, d.order, d.preference, d.regexp) for d in parsed.directives],
        [(s.verifier, s.signature) for s in parsed.signatures],
    )


def clamp_ttl(ttl: int) -> int:
    """We serve a negative atoi TTL as 0 (RFC 2181 reads a TTL with the top bit set as 0)."""
    return min(max(ttl, 0), 0x7FFFFFFF)


def assert_matches_emcdns(value: str) -> None:
    ttl, directives, sigs = emulate_emcdns(value)
    got_ttl, got_directives, got_sigs = ours(value)
    assert got_directives == directives, value
    assert got_sigs == sigs, value
    assert got_ttl == clamp_ttl(ttl), value


# -- the reference records ------------------------------------------------------------------


def test_every_reference_value_reads_as_emcdns_does(reference_values: dict[str, str]) -> None:
    assert len(reference_values) >= 20
    for value in reference_values.values():
        assert_matches_emcdns(value)


def test_truncation_record_value_reads_as_emcdns_does(reference_dir: Path) -> None:
    data = json.loads((reference_dir / "rpc" / "name_show_12_e2u_truncation_test.json").read_text())
    value = data["response"]["result"]["value"]
    assert_matches_emcdns(value)
    parsed = EnumValue.from_text(value)
    assert len(parsed.directives) == 12
    assert [d.order for d in parsed.directives] == list(range(100, 112))
    assert len(parsed.signatures) == 1


def _summary(reference_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((reference_dir / "dns" / "summary.json").read_text())
    return data


def _served(value: str) -> list[str]:
    parsed = EnumValue.from_text(value)
    return [n.to_text() for n in parsed.naptrs()]


def test_served_naptrs_equal_what_emcdns_answered(
    reference_values: dict[str, str], reference_dir: Path
) -> None:
    """The RDATA we derive from each value is what the reference put on the wire."""
    summary = _summary(reference_dir)
    cases = {
        "p1_01_main_compact": ["enum:18009359935:0"],
        "p1_09_two_e2u_ttl600_plus_qno1": ["enum:17771234567:0", "enum:17771234567:1"],
        "p1_10_multiple_sig_lines": ["enum:17775550000:0"],
        "p1_11_comma_sig_list": ["enum:17775550001:0"],
        "p1_19_lowercase_keys_crlf_ttl120": ["enum:17770000001:0"],
        "p1_20_regex_with_space": ["enum:17770000002:0"],
    }
    for case, names in cases.items():
        expected = [a.split(" ", 1)[1] for a in summary[case]["answers"]]
        got = [text for name in names for text in _served(reference_values[name])]
        assert got == expected, case
        ttls = [rr["ttl"] for rr in summary[case]["raw_rrs"] if rr["section"] == "answer"]
        got_ttls = [
            EnumValue.from_text(reference_values[name]).ttl
            for name in names
            for _ in EnumValue.from_text(reference_values[name]).directives
        ]
        assert got_ttls == ttls, case


def test_lowercase_prefixes_crlf_and_blanks(reference_values: dict[str, str]) -> None:
    value = EnumValue.from_text(reference_values["enum:17770000001:0"])
    assert "\r\n" in reference_values["enum:17770000001:0"]
    assert value.ttl == 120
    (directive,) = value.directives
    assert directive == E2UDirective("e2u+SIP", 10, 5, "!^(.*)$!sip:\\1@lower.example.com!")
    (sig,) = value.signatures
    assert sig.verifier == "ver:enum"
    assert sig.signature.endswith("=") and "\r" not in sig.signature


def test_comma_list_and_several_sig_lines(reference_values: dict[str, str]) -> None:
    comma = EnumValue.from_text(reference_values["enum:17775550001:0"])
    assert [s.verifier for s in comma.signatures] == ["ver:bogus", "ver:enum"]
    assert comma.signatures[0].signature == "AAAA"
    lines = EnumValue.from_text(reference_values["enum:17775550000:0"])
    assert [s.verifier for s in lines.signatures] == ["ver:other", "ver:enum"]
    assert len([x for x in lines.lines if isinstance(x, SigLine)]) == 2


def test_regexp_is_cut_at_the_first_blank(reference_values: dict[str, str]) -> None:
    (directive,) = EnumValue.from_text(reference_values["enum:17770000002:0"]).directives
    assert directive.regexp == "!^(.*)$!sip:\\1@space"


def test_ttl_per_record_and_default(reference_values: dict[str, str]) -> None:
    assert EnumValue.from_text(reference_values["enum:17771234567:0"]).ttl == 600
    assert EnumValue.from_text(reference_values["enum:17771234567:1"]).ttl == DEFAULT_TTL


def test_unknown_lines_are_kept(reference_values: dict[str, str]) -> None:
    text = reference_values["enum:tollfree"]
    value = EnumValue.from_text(text)
    others = [x.text for x in value.lines if isinstance(x, OtherLine)]
    assert others[0].startswith("# toll-free test table")
    assert "=1800\\d{7}" in others and "=800\\d{7}" in others
    assert len(value.directives) == 3
    coin = EnumValue.from_text(reference_values["dns:example.coin"])
    assert coin.lines == (OtherLine("A=127.0.0.9|TXT=hello from emcdns|TTL=300"),)
    assert coin.to_text() == reference_values["dns:example.coin"]


@pytest.mark.parametrize(
    ("text", "ttl"),
    [
        ("TTL=600", 600),
        ("ttl = 120abc", 120),
        ("TTL=x", 0),
        ("TtL=\t+42", 42),
        ("TTL=-5", 0),
        ("TTL=99999999999", 1215752191),
        ("TTLX=7", 7),
        ("TTL=10\nTTL=20", 20),
        ("TTL=5\nTTL", 5),
        ("TTL", DEFAULT_TTL),
    ],
)
def test_ttl_is_atoi_and_the_last_line_wins(text: str, ttl: int) -> None:
    assert EnumValue.from_text(text + "\nE2U+sip=1|1|!^.*$!sip:a@b!").ttl == ttl
    assert_matches_emcdns(text)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("E2U+sip=100|10|!^.*$!sip:a@b!", ("E2U+sip", 100, 10, "!^.*$!sip:a@b!")),
        ("E2U+sip \t= 100 | 10 |  !x!y! trailing", ("E2U+sip", 100, 10, "!x!y!")),
        ("e2u+sip=+7|-1|!x!y!", ("e2u+sip", 7, 0xFFFFFFFF, "!x!y!")),
        ("E2U+sip=70000|1|!x!y!", ("E2U+sip", 70000, 1, "!x!y!")),
        ("E2U+sip=1|2|!a\x1cb!", ("E2U+sip", 1, 2, "!a\x1cb!")),
        ("E2U+sip\x01=1|2|!x!", ("E2U+sip", 1, 2, "!x!")),
        ("E2U+sip=1|2|!a\vb!", ("E2U+sip", 1, 2, "!a")),
    ],
)
def test_directive_fields_as_sscanf_reads_them(line: str, expected: tuple[Any, ...]) -> None:
    directive = E2UDirective.parse(line)
    assert directive is not None
    assert (directive.service, directive.order, directive.preference, directive.regexp) == expected
    assert_matches_emcdns(line)


@pytest.mark.parametrize(
    "line",
    [
        "E2U+sip",
        "E2U+sip=100|10|",
        "E2U+sip=100 10 !x!",
        "E2U+sip=|10|!x!",
        "E2U+sip=a|1|!x!",
        "E2U+sip=1||!x!",
        "E2U+sip=1|2",
        "E2U+sip=-|2|!x!",
    ],
)
def test_directives_emcdns_skips(line: str) -> None:
    assert E2UDirective.parse(line) is None
    assert isinstance(EnumValue.from_text(line).lines[0], OtherLine)
    assert_matches_emcdns(line)
    with pytest.raises(RecordError):
        E2UDirective.from_text(line)


def test_naptr_truncates_order_to_16_bits() -> None:
    naptr = E2UDirective("E2U+sip", 70000, 65537, "!x!y!").naptr(5)
    assert (naptr.order, naptr.preference, naptr.flags, naptr.replacement, naptr.ttl) == (
        70000 & 0xFFFF,
        1,
        "u",
        ".",
        5,
    )


@pytest.mark.parametrize(
    "value",
    [
        "SIG=ver:enum|AAAA",
        "sig = ver:enum | AAAA ",
        "SiG=\tver:a|x,\tver:b | y \x01",
        "SIGNATURE=ver:a|b",
        "SIG=novbar",
        "SIG=a|b,,c|d",
        "SIG=|x",
        "SIG",
        "SIG=ver:a|,ver:b|",
    ],
)
def test_sig_lines_as_emcdns_reads_them(value: str) -> None:
    assert_matches_emcdns(value)


def test_empty_lines_and_crlf_are_dropped() -> None:
    value = EnumValue.from_text("\r\n\r\nTTL=5\r\r\n\nfoo\n")
    assert value.lines == (TtlLine(5), OtherLine("foo"))
    assert value.to_text() == "TTL=5\nfoo"


def test_with_signature_appends_once() -> None:
    value = EnumValue.from_text("E2U+sip=1|1|!^.*$!sip:a@b!")
    sig = Signature("ver:enum", "AAAA")
    once = value.with_signature(sig)
    assert once.to_text() == "E2U+sip=1|1|!^.*$!sip:a@b!\nSIG=ver:enum|AAAA"
    assert once.with_signature(sig) is once


# -- hypothesis: the reader against the model, and round trips ------------------------------

_TRICKY = st.sampled_from(list(" \t\v\f|=,!+-:\\^$()*.@0123456789eEuUsSgGtTlLiI2\x01\x1c"))
_TEXT_CHARS = st.one_of(_TRICKY, st.characters(min_codepoint=0x20, max_codepoint=0x7E))
_LINE = st.text(_TEXT_CHARS, max_size=40)
_PREFIXED_LINE = st.tuples(
    st.sampled_from(["E2U", "e2u", "E2u+sip", "SIG", "sig", "TTL", "ttl", "SRL", "", "x"]), _LINE
).map("".join)
_NEWLINES = st.sampled_from(["\n", "\r\n", "\r", "\n\n"])


@st.composite
def raw_values(draw: st.DrawFn) -> str:
    lines = draw(st.lists(st.one_of(_PREFIXED_LINE, _LINE), max_size=8))
    out = ""
    for line in lines:
        out += line + draw(_NEWLINES)
    return out


@settings(max_examples=400, deadline=None)
@given(raw_values())
def test_reader_matches_the_emcdns_model(value: str) -> None:
    assert_matches_emcdns(value)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["E2U+sip", "e2u+SIP", "E2U+voice:sip", "E2U+pstn:tel", "E2U+h323"]),
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
            st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30),
        ),
        max_size=5,
    ),
    st.lists(
        st.tuples(
            st.text(st.sampled_from("ver:enumxyz-_"), min_size=1, max_size=12),
            st.text(st.sampled_from("ABCxyz019+/="), min_size=1, max_size=20),
        ),
        max_size=3,
    ),
    st.one_of(st.none(), st.integers(0, 0x7FFFFFFF)),
)
def test_value_round_trip(
    directives: list[tuple[str, int, int, str]], sigs: list[tuple[str, str]], ttl: int | None
) -> None:
    value = EnumValue.build([E2UDirective(*d) for d in directives], ttl)
    for verifier, signature in sigs:
        value = value.with_signature(Signature(verifier, signature))
    text = value.to_text()
    again = EnumValue.from_text(text)
    assert again == value
    assert again.to_text() == text
    assert again.ttl == (DEFAULT_TTL if ttl is None else ttl)
    assert_matches_emcdns(text)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=30),
        max_size=6,
    )
)
def test_text_round_trip_keeps_every_line(lines: list[str]) -> None:
    text = "\n".join(lines)
    assert EnumValue.from_text(text).to_text() == text


@given(
    st.text(st.sampled_from("0123456789"), min_size=1, max_size=64), st.integers(0, 9_999_999_999)
)
def test_enum_name_round_trip(digits: str, index: int) -> None:
    name = EnumName(digits, index)
    assert EnumName.from_text(name.to_text()) == name
    assert EnumName.parse(str(name)) == name


# -- EnumName ---------------------------------------------------------------------------


def test_enum_name_parsing() -> None:
    assert EnumName.from_text("enum:18009359935:0") == EnumName("18009359935", 0)
    assert EnumName.from_text("enum:18009359935:12").index == 12
    assert EnumName("1", 2) < EnumName("1", 10)
    for bad in (
        "enum:18009359935:01",
        "enum::0",
        "enum:1800a:0",
        "ENUM:1:0",
        "enum:1:-1",
        "enum:1:0 ",
        "enum:1",
        "ver:enum",
        "enum:" + "1" * 65 + ":0",
        "enum:1:99999999999",
        "enum:１:0",
    ):
        assert EnumName.parse(bad) is None, bad
        with pytest.raises(RecordError, match="not an ENUM record name"):
            EnumName.from_text(bad)


# -- lint_value -----------------------------------------------------------------------------

GOOD = "E2U+sip=100|10|!^(.*)$!sip:\\1@pbx.example.com!"


def _errors(text: str) -> list[str]:
    return [i.message for i in lint_value(text).errors]


def _warnings(text: str) -> list[str]:
    return [i.message for i in lint_value(text).warnings]


def test_lint_accepts_a_good_record() -> None:
    report = lint_value(f"TTL=600\n{GOOD}\nSIG=ver:enum|AAAA")
    assert report.ok and report.issues == ()


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("E2U+sip=100|10|!^(.*$!sip:\\1@h!", "does not compile"),
        ("E2U+sip=100|10|!^.*$!sip:\\1@h!", "back-reference \\1 but the pattern has 0 groups"),
        ("E2U+sip=100|10|1^.*$1sip:a@h1", "is a digit"),
        ("E2U+sip=100|10|!^.*$!sip:a@h", "expected 3"),
        ("E2U+sip=100|10|!^.*$!sip:a@h!x", "unknown flags"),
        ("E2U+sip=70000|10|" + GOOD.split("|")[2], "order 70000 is over 65535"),
        ("E2U+sip=1|65536|" + GOOD.split("|")[2], "preference 65536 is over 65535"),
        ("E2U+sip@x=1|1|" + GOOD.split("|")[2], "is not an ENUM service"),
        ("E2U=1|1|" + GOOD.split("|")[2], "is not an ENUM service"),
        ("E2U+sip=100|10|!^(.*)$!sip:\\1@space example.com!", "blank inside the regexp"),
        ("E2U+sip=100|10", "malformed E2U directive"),
        ("TTL=12x", "TTL must be seconds"),
        ("TTL=99999999999", "TTL must be seconds"),
        ("SIG=nobar", "SIG line without verifier|signature"),
        ("SIG", "malformed line"),
    ],
)
def test_lint_errors(line: str, fragment: str) -> None:
    errors = _errors(line)
    assert errors, line
    assert any(fragment in e for e in errors), errors
    issue = lint_value(line).errors[0]
    assert issue.line == 1 and str(issue).startswith("error: line 1: ")


def test_lint_blanks_around_bars_are_fine() -> None:
    assert lint_value("E2U+sip = 100 | 10 | !^(.*)$!sip:\\1@h!").ok


def test_lint_warnings() -> None:
    assert any("no E2U directive" in w for w in _warnings("SIG=ver:enum|AAAA"))
    assert any("line ignored by gateways" in w for w in _warnings(f"{GOOD}\nhello"))
    assert lint_value(f"{GOOD}\nhello").ok


def test_lint_warns_over_512_bytes_with_12_directives() -> None:
    lines = [
        f"E2U+sip={100 + i}|10|!^(.*)$!sip:\\1@host{i:02d}.long-domain-name-for-"
        "truncation.example.com!"
        for i in range(12)
    ]
    report = lint_value("\n".join(lines))
    assert report.ok
    (warning,) = report.warnings
    assert "over the 512 bytes of plain UDP" in warning.message
    assert warning.line == 0 and warning.severity is Severity.WARNING
    assert lint_value("\n".join(lines[:3])).issues == ()


def test_lint_value_too_long() -> None:
    text = GOOD + "\n#" + "x" * 20480
    assert any("over 20480" in e for e in _errors(text))


def test_lint_warns_about_a_third_comma_separated_signature() -> None:
    two = f"{GOOD}\nSIG=ver:a|AAAA,ver:b|BBBB"
    assert lint_value(two).issues == ()
    three = f"{GOOD}\nSIG=ver:a|AAAA,ver:b|BBBB,ver:c|CCCC"
    report = lint_value(three)
    assert report.ok
    (warning,) = report.warnings
    assert warning.line == 2 and "checks only the first two" in warning.message


def test_lint_warns_about_more_signature_entries_than_gateways_examine() -> None:
    from enumer.records import MAX_SIGNATURE_ENTRIES, lint_value

    entries = "\n".join(f"SIG=ver:v{i}|AAAA" for i in range(MAX_SIGNATURE_ENTRIES + 1))
    report = lint_value("E2U+sip=100|10|!^(.*)$!sip:\\1@h!\n" + entries)
    assert any(
        f"gateways examine at most the first {MAX_SIGNATURE_ENTRIES}" in str(w)
        for w in report.warnings
    )
    few = "\n".join(f"SIG=ver:v{i}|AAAA" for i in range(2))
    assert not any("examine" in str(w) for w in lint_value("E2U+sip=1|1|!a!b!\n" + few).warnings)


def test_record_check_names_a_directive_gateways_drop() -> None:
    from enumer.calling.compat import Status, check_value

    report = check_value(
        "E2U+sip=100|10|!^(.*)$!sip:\\9@x.example.com!\nE2U+sip=100|20|!^(.*)$!sip:\\1@y!",
        "+17770000123",
    )
    dropped, good = report.directives
    assert dropped.enumer.status is Status.NO
    assert "gateways do not serve it" in dropped.enumer.reason
    assert good.enumer.status is Status.YES
    assert report.first_route == "sip:+17770000123@y"
