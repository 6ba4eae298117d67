"""Tests for RFC 3402 expressions (enumer.substitution), NAPTR RDATA (enumer.naptr) and DDDS
route selection (enumer.ddds)."""

from __future__ import annotations

import string
import struct
import time

import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.IN.NAPTR
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enumer.ddds import DEFAULT_SIP_SERVICES, Route, enumservice_matches, select_routes
from enumer.naptr import Naptr, naptr_set_wire_size
from enumer.substitution import MAX_ERE_CHARS, MAX_PROGRAM_SIZE, RegexpError, SubstitutionExpression

AUS = "+18009359935"
MAIN_REGEXP = r"!^(.*)$!sip:\1@tollfree.example.com!"

# RDATA captured from emcdns (reference/dns/*.py-wire.txt), answers p1_01, p1_17, p1_19.
P1_01_RDATA = bytes.fromhex(
    "0064000a0175074532552b73697024215e282e2a2924217369703a5c3140746f6c6c667265"
    "652e6578616d706c652e636f6d2100"
)
P1_17_PSTN_RDATA = bytes.fromhex(
    "0064001401750c4532552b7073746e3a74656c10215e282e2a29242174656c3a2b5c312100"
)
P1_19_RDATA = bytes.fromhex(
    "000a00050175076532752b53495021215e282e2a2924217369703a5c31406c6f7765722e65"
    "78616d706c652e636f6d2100"
)
# p1_20: emcdns cut the published regexp at its blank.
P1_20_RDATA = bytes.fromhex(
    "0064000a0175074532552b73697014215e282e2a2924217369703a5c3140737061636500"
)

# Every ASCII character RFC 3402 allows as delimiter, minus the ones we refuse.
ALLOWED_DELIMITERS = [
    c for c in string.printable if c not in string.digits + "i\\" and not c.isspace()
]


def sx(text: str) -> SubstitutionExpression:
    return SubstitutionExpression.from_text(text)


def rejects(text: str) -> str:
    with pytest.raises(RegexpError) as info:
        SubstitutionExpression.from_text(text)
    return str(info.value)


# --- RFC examples -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regexp", "aus", "expected"),
    [
        # RFC 6116 section 6 (and RFC 3761 section 3.2)
        ("!^.*$!sip:user@example.com!", "+441632960083", "sip:user@example.com"),
        ("!^.*$!mailto:info@example.com!", "+441632960083", "mailto:info@example.com"),
        # RFC 3403 section 6.2: URN example, flag i
        (
            "!^urn:cid:.+@([^\\.]+\\.)(.*)$!\\2!i",
            "urn:cid:199606121851.1@bar.example.com",
            "example.com",
        ),
        ("/urn:cid:.+@([^\\.]+\\.)(.*)$/\\2/i", "URN:CID:x@bar.Example.com", "Example.com"),
        # RFC 3402 section 3.2.1 style: rewrite with a captured part
        ("!^\\+1(.*)$!tel:\\1!", AUS, "tel:8009359935"),
        # the reference gateway's answers
        (MAIN_REGEXP, AUS, "sip:+18009359935@tollfree.example.com"),
        ("!^(.*)$!tel:+\\1!", "+8005550000", "tel:++8005550000"),
        ("!^(.*)$!sip:\\1@host!", AUS, "sip:+18009359935@host"),
    ],
)
def test_rfc_and_reference_examples(regexp: str, aus: str, expected: str) -> None:
    assert sx(regexp).apply(aus) == expected


def test_reference_regexp_with_a_space_is_rejected() -> None:
    message = rejects("!^(.*)$!sip:\\1@space host.example.com!")
    assert "blank ' '" in message
    assert "offset 20" in message


def test_no_match_is_none() -> None:
    assert sx("!^\\+44(.*)$!sip:\\1@uk!").apply(AUS) is None


def test_substitution_keeps_the_unmatched_rest_like_sed() -> None:
    assert sx("!1!X!").apply("+181") == "+X81"  # only the first match
    assert sx("!^\\+!00!").apply(AUS) == "0018009359935"


def test_posix_leftmost_longest() -> None:
    # Perl would take the first alternative "1"; POSIX takes the longest "18".
    assert sx("!1|18!X!").apply("+1800") == "+X00"


def test_posix_anchors_and_dot_span_newlines() -> None:
    # regexec without REG_NEWLINE: ^ and $ only at the ends, "." matches "\n".
    assert sx("!^b$!x!").apply("a\nb") is None
    assert sx("!a.b!x!").apply("a\nb") == "x"


def test_perl_syntax_is_not_ere() -> None:
    assert "does not compile" in rejects("!(?i)abc!x!")
    assert "does not compile" in rejects("!(?:abc)!x!")


def test_lenient_perl_classes() -> None:
    assert sx("!^\\+(\\d+)$!tel:\\1!").apply(AUS) == "tel:18009359935"
    assert sx("!^\\+([[:digit:]]+)$!tel:\\1!").apply(AUS) == "tel:18009359935"


# --- parsing: delimiters --------------------------------------------------------------


# An ERE matching everything, written without the delimiter it is used with.
MATCH_ALL = {"^": ".*$", "$": "^.*", "*": "^.{0,}$", ".": "^(x|[^x])*$"}


@pytest.mark.parametrize("d", ALLOWED_DELIMITERS)
def test_every_allowed_delimiter(d: str) -> None:
    ere = MATCH_ALL.get(d, "^.*$")
    uri = f"sip:a{d}b@h"
    text = f"{d}{ere}{d}{uri.replace(d, chr(92) + d)}{d}"
    expression = sx(text)
    assert expression.delimiter == d
    assert expression.to_text() == text
    assert expression.apply(AUS) == uri
    expanded = expression.expanded(AUS)
    assert expanded is not None
    assert expanded.delimiter == d
    assert expanded.apply(AUS) == uri
    assert sx(expanded.to_text()) == expanded


@pytest.mark.parametrize(
    ("d", "message"),
    [
        ("1", "delimiter '1' is a digit"),
        ("0", "delimiter '0' is a digit"),
        ("i", "delimiter 'i' is the case-insensitivity flag"),
        ("\\", "delimiter cannot be a backslash"),
        ("é", "not a single-octet"),
    ],
)
def test_refused_delimiters(d: str, message: str) -> None:
    assert message in rejects(f"{d}a{d}b{d}")


@pytest.mark.parametrize("d", [" ", "\t", "\x00", "\x7f", "\x01"])
def test_blank_and_control_delimiters(d: str) -> None:
    rejects(f"{d}a{d}b{d}")


def test_capital_i_is_an_ordinary_delimiter() -> None:
    assert sx("I^(.*)$Isip:\\1I").apply("+1") == "sip:+1"
    assert "unknown flags 'I'" in rejects("!a!b!I")


@pytest.mark.parametrize(
    ("text", "aus", "expected"),
    [
        # "!" escaped in the ERE is a literal "!"; in the replacement too
        ("!^\\+1(.*)\\!$!sip:\\1\\!@h!", "+1800!", "sip:800!@h"),
        # "/" the classic sed delimiter
        ("/^\\+(.*)$/sip:\\1@example.com\\/x/", "+1", "sip:1@example.com/x"),
        # "|" delimiter: "\|" is a literal bar, never alternation
        ("|^a\\|b$|x\\|y|", "a|b", "x|y"),
        # a letter delimiter: "\x" is the letter, not a hex escape
        ("x^a\\x41$xyx", "ax41", "y"),
        # "." delimiter: "\." is a literal dot
        (".^a\\.b$.ok.", "a.b", "ok"),
    ],
)
def test_escaped_delimiters(text: str, aus: str, expected: str) -> None:
    expression = sx(text)
    assert expression.to_text() == text
    assert expression.apply(aus) == expected


def test_bar_delimiter_does_not_alternate() -> None:
    assert sx("|^a\\|b$|x|").apply("a") is None


def test_escaped_backslash_then_delimiter_splits_like_sed() -> None:
    # "\\" is an escaped backslash, so the following "!" ends the ERE
    expression = sx("!a\\\\!b!")
    assert expression.ere == "a\\\\"
    assert expression.apply("a\\") == "b"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "regexp is empty"),
        ("!", "has 1 unescaped delimiters"),
        ("!a", "has 1 unescaped delimiters"),
        ("!a!b", "has 2 unescaped delimiters"),
        ("!a!b\\!", "has 2 unescaped delimiters"),
        ("!a\\!b!", "has 2 unescaped delimiters"),
        ("!a!b\\", "has 2 unescaped delimiters"),
        ("!a!b!!", "more than 3 unescaped delimiters"),
        ("!a!b!c!d", "more than 3 unescaped delimiters"),
        ("!a!b!x", "unknown flags 'x'"),
        ("!a!b!ii", "unknown flags 'ii'"),
        ("!!b!", "ERE is empty"),
    ],
)
def test_structure_errors(text: str, message: str) -> None:
    assert message in rejects(text)


def test_flags_i() -> None:
    assert sx("!^tel:(.*)$!sip:\\1@h!i").apply("TEL:123") == "sip:123@h"
    assert sx("!^tel:(.*)$!sip:\\1@h!").apply("TEL:123") is None
    assert sx("!^tel:(.*)$!sip:\\1@h!i").case_insensitive
    assert sx("!a!b!i").to_text() == "!a!b!i"


# --- back-references ------------------------------------------------------------------


def test_backrefs_one_to_nine() -> None:
    ere = "^\\+" + "(.)" * 9 + "(.*)$"
    repl = "".join(f"\\{n}" for n in range(9, 0, -1))
    expression = sx(f"!{ere}!{repl}!")
    assert expression.groups == 10
    assert expression.apply(AUS) == "995390081"


def test_backref_repeated_and_unparticipating_group() -> None:
    assert sx("!^\\+(1)?(.*)$!\\1-\\2-\\1!").apply("+44") == "-44-"
    assert sx("!^\\+(1)?(.*)$!\\1-\\2-\\1!").apply("+18") == "1-8-1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("!^(.*)$!sip:\\2@h!", "back-reference \\2 but the pattern has 1 group"),
        ("!^.*$!sip:\\1@h!", "back-reference \\1 but the pattern has 0 groups"),
        ("!^(a)(b)$!\\9!", "back-reference \\9 but the pattern has 2 groups"),
    ],
)
def test_bad_backrefs(text: str, message: str) -> None:
    assert rejects(text) == message


def test_backref_inside_ere_is_refused() -> None:
    message = rejects("!^(a)\\1$!x!")
    assert message.startswith("back-reference \\1 inside the ERE is not supported")


def test_replacement_escapes() -> None:
    # "\\" is a backslash, "\0" and "\n" are not back-references and stay as written
    assert sx("!^(.*)$!a\\\\b!").apply("x") == "a\\b"
    assert sx("!^(.*)$!a\\\\1!").apply("x") == "a\\1"
    assert sx("!^(.*)$!a\\0b!").apply("x") == "a\\0b"
    assert sx("!^(.*)$!a\\nb!").apply("x") == "a\\nb"


# --- hostile input --------------------------------------------------------------------


def test_ere_length_limit() -> None:
    ere = "a" * MAX_ERE_CHARS
    assert sx(f"!{ere}!x!").apply(ere) == "x"
    assert f"ERE is {MAX_ERE_CHARS + 1} characters" in rejects(f"!{'a' * (MAX_ERE_CHARS + 1)}!x!")


def test_regexp_byte_limit_counts_utf8() -> None:
    sx("!a!" + "b" * 251 + "!")  # 255 bytes
    assert "256 bytes" in rejects("!a!" + "b" * 252 + "!")
    assert "257 bytes" in rejects("!a!" + "é" * 126 + "b!")  # 3 + 252 + 2


def test_huge_input_is_refused_early_with_a_short_message() -> None:
    message = rejects("!" + "(a*)*" * 4000 + "!x!")  # a whole NVS value's worth
    assert message == "regexp is 20004 bytes, a DNS character-string holds 255"
    routes, reasons = select_routes([Naptr(1, 1, "u", "E2U+sip", "!x!" * 7000, ".")], AUS)
    assert routes == []
    assert len(reasons[0]) < 120


def test_long_texts_are_shortened_in_messages() -> None:
    message = rejects("!a!b!" + "x" * 200)
    assert message.startswith("unknown flags 'xxxx")
    assert message.endswith("... (200 characters) (only 'i' is defined)")


def test_program_size_cap() -> None:
    message = rejects("!.{1000}!x!")
    assert "instructions" in message
    assert f"the limit is {MAX_PROGRAM_SIZE}" in message


def test_huge_repetition_refused_by_re2() -> None:
    assert "does not compile" in rejects("!((a{100}){100}){100}!x!")


@pytest.mark.parametrize(
    "ere", ["(a*)*b", "(((((a*)*)*)*)*)b", "(a|a)*b", "(x+x+)+y", "(a|aa)*c", "(.*)*$x"]
)
def test_nested_quantifiers_are_linear(ere: str) -> None:
    expression = sx(f"!{ere}!x!")
    subject = "a" * 200_000 if "a" in ere else "x" * 200_000
    started = time.perf_counter()
    assert expression.apply(subject) is None
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("!(a!x!", "missing )"),
        ("!a)!x!", "unexpected )"),
        ("![a!x!", "missing ]"),
        ("!*a!x!", "no argument for repetition operator"),
        ("!a|*!x!", "no argument for repetition operator"),
        ("!\\q!x!", "invalid escape"),
        ("!a{2,1}!x!", "does not compile"),
    ],
)
def test_malformed_ere(text: str, message: str) -> None:
    assert message in rejects(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("!^(.*)$!sip:\\1@h\x00!", "NUL at offset 16"),
        ("\x00a\x00b\x00", "NUL at offset 0"),
        ("!a\tb!x!", "blank '\\t'"),
        ("!a!b\n!", "blank '\\n'"),
        ("!a!b\u00a0!", "blank '\\xa0'"),
        ("!a!b\x1b!", "control character '\\x1b'"),
        ("!a!b\x7f!", "control character '\\x7f'"),
        ("!a!b\u200b!", "invisible character '\\u200b'"),
        ("!a!b\u202e!", "invisible character '\\u202e'"),
    ],
)
def test_nul_blank_and_control_characters(text: str, message: str) -> None:
    assert message in rejects(text)


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_from_text_only_raises_regexp_error(text: str) -> None:
    try:
        expression = SubstitutionExpression.from_text(text)
    except RegexpError:
        return
    assert expression.to_text() == text
    expression.apply(AUS)


@given(
    st.text(alphabet="!^$.*+?()[]{}|\\1a:-", min_size=1, max_size=40),
    st.text(alphabet="!\\19a@", max_size=20),
    st.text(alphabet="+0123456789a!\\", max_size=30),
)
def test_random_expressions_round_trip_and_apply(ere: str, repl: str, aus: str) -> None:
    text = f"!{ere}!{repl}!"
    try:
        expression = SubstitutionExpression.from_text(text)
    except RegexpError:
        return
    assert expression.to_text() == text
    assert SubstitutionExpression.from_text(expression.to_text()) == expression
    result = expression.apply(aus)
    assert result is None or isinstance(result, str)


def test_direct_construction_is_validated() -> None:
    with pytest.raises(RegexpError, match="unescaped delimiter"):
        SubstitutionExpression("!", "a!b", "x", False)
    with pytest.raises(RegexpError, match="lone backslash"):
        SubstitutionExpression("!", "a", "x\\", False)
    with pytest.raises(RegexpError, match="delimiter must be one character"):
        SubstitutionExpression("!!", "a", "x", False)
    with pytest.raises(RegexpError, match="delimiter must be one character"):
        SubstitutionExpression("", "a", "x", False)
    ok = SubstitutionExpression("!", "^(.*)$", "sip:\\1@h", False)
    assert ok == sx("!^(.*)$!sip:\\1@h!")
    assert hash(ok) == hash(sx("!^(.*)$!sip:\\1@h!"))


def test_expression_is_frozen() -> None:
    expression = sx(MAIN_REGEXP)
    with pytest.raises(AttributeError):
        expression.ere = "x"  # type: ignore[misc]


# --- expanded() -----------------------------------------------------------------------


def test_expanded_example() -> None:
    expanded = sx(MAIN_REGEXP).expanded(AUS)
    assert expanded is not None
    assert expanded.to_text() == "!^.*$!sip:+18009359935@tollfree.example.com!"
    assert sx("!^\\+44!x!").expanded(AUS) is None


def test_expanded_escapes_backslash_and_delimiter() -> None:
    expression = sx("/^(.*)$/a\\\\b\\/\\1/")
    expanded = expression.expanded("+1\\2/3")
    assert expanded is not None
    assert expanded.to_text() == "/^.*$/a\\\\b\\/+1\\\\2\\/3/"
    assert expanded.apply("+1\\2/3") == expression.apply("+1\\2/3") == "a\\b/+1\\2/3"


def test_expanded_result_with_a_blank_is_an_error() -> None:
    with pytest.raises(RegexpError, match="blank"):
        sx("!^(.*)$!sip:\\1@h!").expanded("+1 800")


def test_from_text_is_memoised() -> None:
    assert sx(MAIN_REGEXP) is sx(MAIN_REGEXP)


def test_expanded_too_long_is_an_error() -> None:
    with pytest.raises(RegexpError, match="bytes"):
        sx("!^(.*)$!\\1\\1\\1!").expanded("+" + "1" * 100)


EXPRESSIONS = [
    MAIN_REGEXP,
    "!^\\+1(...)(.*)$!sip:\\2@\\1.example.com!",
    "/^\\+(1)?(.*)$/tel:\\1\\\\\\2\\//",
    "!^.*$!sip:fixed@example.com!",
    "#5#five#",
    "|^\\+1|00|",
    "!(9+)!<\\1>!",
    "x(1)(8)x\\2\\1\\xx",
]


@given(
    st.sampled_from(EXPRESSIONS),
    st.text(alphabet=string.digits, min_size=1, max_size=15),
)
def test_expanded_equivalence(text: str, digits: str) -> None:
    expression = sx(text)
    aus = "+" + digits
    expanded = expression.expanded(aus)
    if expression.apply(aus) is None:
        assert expanded is None
        return
    assert expanded is not None
    assert expanded.delimiter == expression.delimiter
    assert expanded.apply(aus) == expression.apply(aus)
    assert sx(expanded.to_text()) == expanded


@given(
    st.sampled_from(ALLOWED_DELIMITERS),
    st.text(alphabet=string.printable.strip() + "é", max_size=40),
)
def test_expanded_equivalence_any_delimiter_any_aus(d: str, aus: str) -> None:
    # Unanchored: the result keeps the AUS around the match, delimiters and
    # backslashes included, which expanded() must escape.
    letter = "b" if d != "b" else "c"
    expression = SubstitutionExpression(d, letter, f"\\{d}\\\\", False)
    expanded = expression.expanded(aus)
    result = expression.apply(aus)
    if result is None:
        assert expanded is None
        return
    assert expanded is not None
    assert expanded.apply(aus) == result
    assert SubstitutionExpression.from_text(expanded.to_text()) == expanded


# --- Naptr wire and text ------------------------------------------------------------


MAIN = Naptr(100, 10, "u", "E2U+sip", MAIN_REGEXP, ".")


def dnspython_naptr(n: Naptr) -> dns.rdtypes.IN.NAPTR.NAPTR:
    return dns.rdtypes.IN.NAPTR.NAPTR(  # type: ignore[no-untyped-call]
        dns.rdataclass.IN,
        dns.rdatatype.NAPTR,
        n.order,
        n.preference,
        n.flags.encode(),
        n.service.encode(),
        n.regexp.encode(),
        dns.name.from_text(n.replacement),
    )


def test_reference_rdata() -> None:
    assert MAIN.to_wire() == P1_01_RDATA
    assert Naptr.from_wire(P1_01_RDATA) == MAIN
    assert MAIN.to_text() == '100 10 "u" "E2U+sip" "!^(.*)$!sip:\\\\1@tollfree.example.com!" .'
    pstn = Naptr.from_wire(P1_17_PSTN_RDATA)
    assert pstn == Naptr(100, 20, "u", "E2U+pstn:tel", "!^(.*)$!tel:+\\1!", ".")
    lower = Naptr.from_wire(P1_19_RDATA, ttl=120)
    assert (lower.order, lower.preference, lower.service, lower.ttl) == (10, 5, "e2u+SIP", 120)


def test_wire_layout_by_hand() -> None:
    n = Naptr(1, 2, "u", "E2U+sip", "!a!b!", "sip.example.com")
    expected = (
        struct.pack("!HH", 1, 2) + b"\x01u\x07E2U+sip\x05!a!b!" + b"\x03sip\x07example\x03com\x00"
    )
    assert n.to_wire() == expected
    assert Naptr(0, 0, "", "", "", ".").to_wire() == b"\x00" * 4 + b"\x00\x00\x00" + b"\x00"


def test_ttl_is_not_rdata() -> None:
    assert Naptr(100, 10, "u", "E2U+sip", MAIN_REGEXP, ".", ttl=600).to_wire() == P1_01_RDATA
    assert Naptr.from_wire(P1_01_RDATA, ttl=600).ttl == 600


@pytest.mark.parametrize(
    ("naptr", "message"),
    [
        (Naptr(100, 10, "u", "E2U+sip", "!a!" + "b" * 253 + "!", "."), "regexp is 257 bytes"),
        (Naptr(100, 10, "u" * 256, "E2U+sip", "", "."), "flags is 256 bytes"),
        (Naptr(100, 10, "u", "E" * 300, "", "."), "service is 300 bytes"),
        (Naptr(65536, 10, "u", "E2U+sip", "", "."), "order 65536"),
        (Naptr(1, -1, "u", "E2U+sip", "", "."), "preference -1"),
        (Naptr(1, 1, "u", "E2U+sip", "", "a..b"), "replacement"),
        (Naptr(1, 1, "u", "E2U+sip", "", "x" * 64 + ".com"), "replacement"),
        (Naptr(1, 1, "u", "E2U+sip", "\udcff", "."), "not valid Unicode"),
    ],
)
def test_to_wire_errors(naptr: Naptr, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("+", "\\+")):
        naptr.to_wire()


def test_regexp_of_exactly_255_bytes() -> None:
    regexp = "!a!" + "b" * 251 + "!"
    wire = Naptr(1, 1, "u", "E2U+sip", regexp, ".").to_wire()
    assert wire[4 + 2 + 8] == 255
    assert Naptr.from_wire(wire).regexp == regexp


@pytest.mark.parametrize(
    "rdata",
    [
        b"",
        P1_01_RDATA[:3],
        P1_01_RDATA[:-1],  # name not terminated
        P1_01_RDATA + b"\x00",  # trailing byte
        b"\x00\x01\x00\x02\x01u\x07E2U+sip\x05!a!b!",  # no replacement name
        b"\x00\x01\x00\x02\x01u\x07E2U+sip\x09!a!b!",  # string runs past the end
        # replacement compressed: a pointer to the "\x01u" string at offset 4
        b"\x00\x01\x00\x02\x01u\x07E2U+sip\x05!a!b!\xc0\x04",
        # non-UTF-8 regexp
        b"\x00\x01\x00\x02\x01u\x07E2U+sip\x02\xff\xfe\x00",
    ],
)
def test_from_wire_is_strict(rdata: bytes) -> None:
    with pytest.raises(ValueError):
        Naptr.from_wire(rdata)


def test_from_wire_keeps_a_cut_regexp_for_the_caller_to_judge() -> None:
    cut = Naptr.from_wire(P1_20_RDATA)
    assert cut.regexp == "!^(.*)$!sip:\\1@space"
    with pytest.raises(RegexpError, match="has 2 unescaped delimiters"):
        sx(cut.regexp)


label_text = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=20)
replacements = st.one_of(
    st.just("."),
    st.lists(label_text, min_size=1, max_size=4).map(lambda labels: ".".join(labels) + "."),
)
char_strings = st.one_of(
    st.text(max_size=80).filter(lambda s: len(s.encode()) <= 255),
    st.text(alphabet=string.printable, min_size=240, max_size=255),
)
naptrs = st.builds(
    Naptr,
    order=st.integers(0, 0xFFFF),
    preference=st.integers(0, 0xFFFF),
    flags=char_strings,
    service=char_strings,
    regexp=char_strings,
    replacement=replacements,
    ttl=st.integers(0, 2**31 - 1),
)


@settings(max_examples=300)
@given(naptrs)
def test_wire_and_text_agree_with_dnspython(n: Naptr) -> None:
    reference = dnspython_naptr(n)
    reference_wire = reference.to_wire()
    assert reference_wire is not None
    assert n.to_wire() == reference_wire
    assert n.to_text() == reference.to_text()
    assert Naptr.from_wire(reference_wire, ttl=n.ttl) == n
    assert Naptr.from_text(reference.to_text(), ttl=n.ttl) == n
    parsed = dns.rdata.from_wire(
        dns.rdataclass.IN, dns.rdatatype.NAPTR, n.to_wire(), 0, len(n.to_wire())
    )
    assert parsed == reference


def test_to_text_escapes_like_dnspython() -> None:
    n = Naptr(1, 2, "u", 'E2U+"x"', '!a!"\\1"!', ".")
    assert n.to_text() == '1 2 "u" "E2U+\\"x\\"" "!a!\\"\\\\1\\"!" .'
    assert n.to_text() == dnspython_naptr(n).to_text()


def test_from_text() -> None:
    assert Naptr.from_text(MAIN.to_text()) == MAIN
    assert Naptr.from_text('100 10 u E2U+sip "!^(.*)$!sip:\\\\1@tollfree.example.com!" .') == MAIN
    named = Naptr.from_text('1 2 "s" "SIP+D2U" "" _sip._udp.example.com', ttl=5)
    assert named.replacement == "_sip._udp.example.com."
    assert named.ttl == 5
    with pytest.raises(ValueError, match="NAPTR text"):
        Naptr.from_text("100 u")
    with pytest.raises(ValueError, match="NAPTR text"):
        Naptr.from_text('70000 10 "u" "E2U+sip" "" .')


def test_naptr_set_wire_size_matches_a_real_answer() -> None:
    records = [
        MAIN,
        Naptr(100, 20, "u", "E2U+pstn:tel", "!^(.*)$!tel:+\\1!", "."),
    ]
    assert naptr_set_wire_size(records) == (2 + 10 + 52) + (2 + 10 + len(P1_17_PSTN_RDATA))
    assert naptr_set_wire_size([]) == 0
    qname = dns.name.from_text("53995390081.enum")
    query = dns.message.make_query(qname, dns.rdatatype.NAPTR)
    response = dns.message.make_response(query)
    rrset = dns.rrset.from_rdata(qname, 86400, *(dnspython_naptr(r) for r in records))
    response.answer.append(rrset)
    size_without_answers = len(dns.message.make_response(query).to_wire())
    assert len(response.to_wire()) - size_without_answers == naptr_set_wire_size(records)
    assert naptr_set_wire_size(records, owner_len=18) == naptr_set_wire_size(records) + 32


# --- services and route selection ---------------------------------------------------


@pytest.mark.parametrize(
    ("service", "wanted", "expected"),
    [
        ("E2U+sip", DEFAULT_SIP_SERVICES, True),
        ("e2u+SIP", DEFAULT_SIP_SERVICES, True),
        ("E2U+voice:sip", DEFAULT_SIP_SERVICES, True),
        ("E2U+VOICE:SIP", DEFAULT_SIP_SERVICES, True),
        ("E2U+sip+h323", DEFAULT_SIP_SERVICES, True),  # RFC 3761 style
        ("E2U+h323+sip", DEFAULT_SIP_SERVICES, True),
        ("E2U+h323", DEFAULT_SIP_SERVICES, False),
        ("E2U+voice:tel", DEFAULT_SIP_SERVICES, False),
        ("E2U+sips", DEFAULT_SIP_SERVICES, False),
        ("E2U+email:mailto", DEFAULT_SIP_SERVICES, False),
        ("SIP+D2U", DEFAULT_SIP_SERVICES, False),  # not ENUM
        ("sip", DEFAULT_SIP_SERVICES, False),
        ("E2U", DEFAULT_SIP_SERVICES, False),
        ("E2U+", DEFAULT_SIP_SERVICES, False),
        ("E2U+pstn:tel", ["E2U+pstn:tel"], True),
        ("E2U+pstn:tel", ["pstn:tel"], True),  # a bare enumservice is accepted
        ("E2U+sip", "E2U+sip", True),  # one string, not its characters
        ("E2U+sip", [], False),
    ],
)
def test_enumservice_matches(service: str, wanted: list[str], expected: bool) -> None:
    assert enumservice_matches(service, wanted) is expected


def test_select_routes_orders_and_filters() -> None:
    answer = [
        Naptr(200, 10, "u", "E2U+sip", "!^.*$!sip:order200@h!", "."),
        Naptr(100, 20, "u", "E2U+voice:sip", "!^.*$!sip:pref20@h!", "."),
        Naptr(100, 10, "u", "E2U+h323", "!^.*$!h323:x@h!", "."),  # other service
        Naptr(100, 10, "", "E2U+sip", "", "next.example.com."),  # not terminal
        Naptr(100, 10, "s", "E2U+sip", "!^.*$!sip:s@h!", "."),  # not terminal
        Naptr(100, 10, "U", "E2U+SIP", "!^(.*)$!sip:\\1@first!", "."),
        Naptr(100, 10, "u", "E2U+sip", "!^.*$!sip:tie@h!", "."),  # same key: stable
    ]
    routes, reasons = select_routes(answer, AUS)
    assert [r.uri for r in routes] == [
        "sip:+18009359935@first",
        "sip:tie@h",
        "sip:pref20@h",
        "sip:order200@h",
    ]
    assert reasons == []
    first = routes[0]
    assert first == Route("sip:+18009359935@first", "E2U+SIP", 100, 10, answer[5])


def test_select_routes_reports_what_it_skips() -> None:
    answer = [
        Naptr(100, 10, "u", "E2U+sip", "!^(.*)$!sip:\\2@h!", "."),
        Naptr(100, 20, "u", "E2U+sip", "!^(.*)$!sip:\\1@space", "."),  # p1_20
        Naptr(100, 30, "u", "E2U+sip", "!^\\+44(.*)$!sip:\\1@uk!", "."),
        Naptr(100, 40, "u", "E2U+sip", "!^.*$!no-scheme!", "."),
        Naptr(100, 50, "u", "E2U+sip", "!^.*$!sip:x@h!", "example.com."),
        Naptr(100, 60, "u", "E2U+sip", "", "."),
        Naptr(100, 70, "u", "E2U+sip", "!^(.*)$!sip:\\1@ok!", "."),
    ]
    routes, reasons = select_routes(answer, AUS)
    assert [r.uri for r in routes] == ["sip:+18009359935@ok"]
    assert reasons == [
        "E2U+sip 100/10: regexp: back-reference \\2 but the pattern has 1 group",
        "E2U+sip 100/20: regexp: regexp '!^(.*)$!sip:\\\\1@space' has 2 unescaped "
        "delimiters '!', expected 3 (<d>ERE<d>replacement<d>flags)",
        "E2U+sip 100/30: regexp '!^\\\\+44(.*)$!sip:\\\\1@uk!' does not match '+18009359935'",
        "E2U+sip 100/40: result 'no-scheme' is not a URI",
        "E2U+sip 100/50: terminal rule has replacement 'example.com.', expected '.'",
        "E2U+sip 100/60: regexp: regexp is empty",
    ]


def test_select_routes_reference_answers() -> None:
    # p1_09: E2U+sip, E2U+h323 (TTL 600) then E2U+email:mailto from record :1
    answer = [
        Naptr(100, 10, "u", "E2U+sip", "!^(.*)$!sip:\\1@a.example.com!", ".", ttl=600),
        Naptr(100, 20, "u", "E2U+h323", "!^(.*)$!h323:\\1@b.example.com!", ".", ttl=600),
        Naptr(200, 10, "u", "E2U+email:mailto", "!^.*$!mailto:info@c.example.com!", "."),
    ]
    routes, reasons = select_routes(answer, "+17771234567")
    assert [r.uri for r in routes] == ["sip:+17771234567@a.example.com"]
    assert routes[0].naptr.ttl == 600
    assert reasons == []
    every, _ = select_routes(answer, "+17771234567", ["E2U+sip", "E2U+h323", "email:mailto"])
    assert [r.service for r in every] == ["E2U+sip", "E2U+h323", "E2U+email:mailto"]
    # p1_17: toll-free with a tel: fallback
    tollfree = [Naptr.from_wire(P1_17_PSTN_RDATA)]
    routes, _ = select_routes(tollfree, "+8005550000", ["E2U+pstn:tel"])
    assert [r.uri for r in routes] == ["tel:++8005550000"]


def test_select_routes_accepts_any_iterable() -> None:
    routes, reasons = select_routes(iter([MAIN]), AUS, iter(["E2U+sip"]))
    assert len(routes) == 1
    assert reasons == []
    assert select_routes([], AUS) == ([], [])


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 3), st.sampled_from(["u", "U", "s", ""])),
        max_size=12,
    )
)
def test_select_routes_is_a_stable_sort_of_the_terminal_rules(
    keys: list[tuple[int, int, str]],
) -> None:
    answer = [
        Naptr(order, pref, flags, "E2U+sip", f"!^.*$!sip:{index}@h!", ".")
        for index, (order, pref, flags) in enumerate(keys)
    ]
    routes, reasons = select_routes(answer, AUS)
    expected = sorted(
        (n for n in answer if n.flags.lower() == "u"), key=lambda n: (n.order, n.preference)
    )
    assert [r.naptr for r in routes] == expected
    assert reasons == []
