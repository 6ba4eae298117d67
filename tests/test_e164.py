"""Tests for enumer.e164: number normalisation, ENUM names and query-name parsing."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enumer.e164 import E164, NumberError

MAIN = "18009359935"

# --- parse: international forms ----------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "+1 (800) 935-9935",
        "+18009359935",
        "+1.800.935.9935",
        " +1-800-935-9935 ",
        "+1 800/935 9935",
        "01118009359935",  # NANP international prefix
        "011 1 800 935 9935",
        "0018009359935",  # ITU international prefix
        "00 1 (800) 935-9935",
        "18009359935",  # bare digits: a full international number
        "1\t800\t9359935",
        "+1\u00a0800\u00a0935\u00a09935",  # no-break spaces
        "+1 800 935\u20139935",  # en dash
        "+18009359935\n",  # a line read from a file
    ],
)
def test_international_forms(text: str) -> None:
    number = E164.from_text(text)
    assert number.digits == MAIN
    assert number.aus == "+18009359935"
    assert str(number) == "+18009359935"


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("(800) 935-9935", "US", MAIN),
        ("800 935 9935", "us", MAIN),  # region code case does not matter
        ("1 800 935 9935", "US", MAIN),  # 11 digits with the NANP "1"
        ("011 1 800 935 9935", "US", MAIN),
        ("00 1 800 935 9935", "US", MAIN),  # "00" stays international in the US
        ("+1 800 935 9935", "DE", MAIN),
        ("(613) 555-0123", "CA", "16135550123"),
        ("030 1234567", "DE", "49301234567"),  # trunk prefix 0
        ("00 1 800 935 9935", "DE", MAIN),
        ("8 (495) 123-45-67", "RU", "74951234567"),  # trunk prefix 8
        ("810 1 800 935 9935", "RU", MAIN),  # Russian international prefix
        ("00 1 800 935 9935", "RU", MAIN),
        ("020 7946 0018", "GB", "442079460018"),
        ("0113 496 0000", "GB", "441134960000"),  # "011" is Leeds here, not an IDD
        ("06 1234 5678", "IT", "390612345678"),  # Italian leading zero kept
    ],
)
def test_national_forms(text: str, region: str, expected: str) -> None:
    assert E164.from_text(text, default_region=region).digits == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("935-9935", "12129359935"),  # 7 digits: 1 + home area code
        ("8009359935", MAIN),  # 10 digits: 1 prepended
        ("18009359935", MAIN),
        ("+44 20 7946 0018", "442079460018"),
    ],
)
def test_area_code_completes_local_numbers(text: str, expected: str) -> None:
    assert E164.from_text(text, default_region="US", area_code="212").digits == expected


def test_impossible_numbers_are_not_rejected() -> None:
    test_number = E164.from_text("15551234567")
    assert test_number.digits == "15551234567"
    uifn = E164.from_text("8005550000")  # reference toll-free entry =800\d{7}
    assert uifn.digits == "8005550000"
    assert not uifn.is_possible
    short = E164.from_text("9359935", default_region="US")  # no area code given
    assert short.digits == "19359935"
    assert not short.is_possible
    assert not E164.from_text("+999123").is_possible  # unassigned country code


def test_is_possible() -> None:
    assert E164.from_text("+18009359935").is_possible
    assert E164.from_text("+18005550000").is_possible
    assert E164.from_text("+49301234567").is_possible
    assert not E164.from_text("+1800").is_possible


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "phone number '' is empty"),
        ("   ", "phone number '   ' is empty"),
        ("1-800-FLOWERS", "phone number '1-800-FLOWERS' contains the letter 'F'"),
        ("+1 800 935 9935 ext 12", "phone number '+1 800 935 9935 ext 12' contains the letter 'e'"),
        (
            "1800935993512345",
            "phone number '1800935993512345' has 16 digits, E.164 allows at most 15",
        ),
        ("+1 800 935 9935 1234 5", "phone number '+1 800 935 9935 1234 5' has 16 digits"),
        ("+", "phone number '+' has no digits"),
        ("()-.", "phone number '()-.' has no digits"),
        ("00", "phone number '00' has no digits"),
        ("011", "phone number '011' has no digits"),
        ("+1+800", "phone number '+1+800' has '+' after the start"),
        ("1800#9359935", "phone number '1800#9359935' contains '#'"),
        ("*67 18009359935", "phone number '*67 18009359935' contains '*'"),
        ("1800\n9359935", "phone number '1800\\n9359935' contains '\\n'"),
        ("1800_9359935", "phone number '1800_9359935' contains '_'"),
        ("1800\x009359935", "phone number '1800\\x009359935' contains '\\x00'"),
        ("١٨٠٠", "phone number '١٨٠٠' contains '١'"),  # non-ASCII digits
        ("0301234567", "phone number '0301234567' starts with 0"),
        ("+0123", "phone number '+0123' starts with 0"),
        ("0000123", "phone number '0000123' starts with 0"),
    ],
)
def test_bad_input_messages(text: str, message: str) -> None:
    with pytest.raises(NumberError) as info:
        E164.from_text(text)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_long_input_is_shortened_in_the_message() -> None:
    with pytest.raises(NumberError) as info:
        E164.from_text("1" * 5000)
    assert str(info.value) == (
        f"phone number {'1' * 60!r}... (5000 characters) has 5000 digits, E.164 allows at most 15"
    )


def test_bad_national_input_names_the_input_and_region() -> None:
    with pytest.raises(NumberError, match=r"phone number '1' in region US"):
        E164.from_text("1", default_region="US")
    with pytest.raises(NumberError, match="has 16 digits"):
        E164.from_text("+1 8009359935 12345")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"default_region": "XX"}, "unknown region 'XX'"),
        ({"default_region": ""}, "unknown region ''"),
        ({"area_code": "212"}, "needs a NANP default_region"),
        ({"default_region": "DE", "area_code": "212"}, "needs a NANP default_region"),
        ({"default_region": "US", "area_code": "21"}, "is not 3 digits"),
        ({"default_region": "US", "area_code": "2a2"}, "is not 3 digits"),
    ],
)
def test_bad_arguments_are_value_errors_not_number_errors(
    kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as info:
        E164.from_text("8009359935", **kwargs)
    assert not isinstance(info.value, NumberError)


# --- from_digits and the value ------------------------------------------------------


def test_from_digits() -> None:
    assert E164.from_digits(MAIN) == E164(MAIN) == E164.from_text("+1 800 935 9935")
    assert E164.from_digits("1").digits == "1"
    assert E164.from_digits("9" * 15).digits == "9" * 15


@pytest.mark.parametrize(
    ("digits", "message"),
    [
        ("", "E.164 digits '' has no digits"),
        ("+18009359935", "is not all ASCII digits"),
        ("1 800", "is not all ASCII digits"),
        ("1800-935", "is not all ASCII digits"),
        ("١٨٠٠", "is not all ASCII digits"),
        ("²", "is not all ASCII digits"),
        ("1" * 16, "has 16 digits"),
        ("0123", "starts with 0"),
    ],
)
def test_from_digits_is_strict(digits: str, message: str) -> None:
    with pytest.raises(NumberError, match=message):
        E164.from_digits(digits)
    with pytest.raises(NumberError, match=message):
        E164(digits)


def test_value_semantics() -> None:
    number = E164(MAIN)
    assert number == E164.from_text("+18009359935")
    assert len({number, E164.from_text("0018009359935")}) == 1
    with pytest.raises(AttributeError):
        number.digits = "1"  # type: ignore[misc]


def test_to_domain() -> None:
    number = E164(MAIN)
    assert number.to_domain() == "5.3.9.9.5.3.9.0.0.8.1.e164.arpa"
    assert number.to_domain("enum", dotted=False) == "53995390081.enum"
    assert number.to_domain("enum") == "5.3.9.9.5.3.9.0.0.8.1.enum"
    assert number.to_domain("e164.arpa.") == "5.3.9.9.5.3.9.0.0.8.1.e164.arpa"
    assert number.to_domain("enum.enumer.org", dotted=False) == "53995390081.enum.enumer.org"
    assert number.to_domain("", dotted=False) == "53995390081"


# --- properties -----------------------------------------------------------------------

e164_digits = st.from_regex(r"\A[1-9][0-9]{0,14}\Z")
zones = st.sampled_from(["e164.arpa", "enum", "enum.enumer.org", "E164.Arpa.", "x-y.example"])


@given(e164_digits, zones, st.booleans())
def test_digits_domain_digits_round_trip(digits: str, zone: str, dotted: bool) -> None:
    number = E164.from_digits(digits)
    domain = number.to_domain(zone, dotted=dotted)
    suffix = "." + zone.strip(".")
    assert domain.endswith(suffix) and not domain.endswith(".")
    labels = domain[: -len(suffix)].split(".")
    assert all(len(label) == 1 for label in labels) if dotted else len(labels) == 1
    assert "".join(labels)[::-1] == digits


@given(
    e164_digits,
    st.lists(st.sampled_from([" ", "-", ".", "(", ")", "/"]), max_size=16),
)
def test_separators_do_not_matter(digits: str, separators: list[str]) -> None:
    chars = list(digits)
    for index, separator in enumerate(separators):
        chars.insert(index % (len(chars) + 1), separator)
    text = "+" + "".join(chars)
    assert E164.from_text(text).digits == digits
    assert E164.from_text(text, default_region="DE").digits == digits
    assert E164.from_text("00" + "".join(chars)).digits == digits
    assert E164.from_text("011" + "".join(chars)).digits == digits


@given(st.text(max_size=30))
def test_parse_only_raises_number_error(text: str) -> None:
    try:
        number = E164.from_text(text)
    except NumberError as error:
        assert repr(text) in str(error)
        return
    assert 1 <= len(number.digits) <= 15
    assert number.digits.isascii() and number.digits.isdigit()


@given(st.text(alphabet=string.digits + " ()-+", max_size=20), st.sampled_from(["US", "DE", "RU"]))
def test_national_parse_only_raises_number_error(text: str, region: str) -> None:
    try:
        number = E164.from_text(text, default_region=region)
    except NumberError:
        return
    assert E164.from_digits(number.digits) == number
