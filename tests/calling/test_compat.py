"""The PBX parser models of ``enumer.calling.compat``, directive by directive.

Each case is a rule read in the PBX's source (see the module docstring); the
Kamailio model is also checked against real Kamailio in test_kamailio_call.py.
"""

from __future__ import annotations

import pytest

from enumer.calling.compat import PBXS, Status, check_directives, check_value
from enumer.records import E2UDirective

AUS = "+18009359935"


def statuses(line: str, aus: str = AUS) -> dict[str, str]:
    report = check_value(line, aus)
    (directive,) = report.directives
    found = {pbx: directive.pbx[pbx].status.value for pbx in PBXS}
    found["enumer"] = directive.enumer.status.value
    return found


def verdict(line: str, pbx: str, aus: str = AUS):  # type: ignore[no-untyped-def]
    return check_value(line, aus).directives[0].pbx[pbx]


def test_the_usual_record_works_everywhere() -> None:
    report = check_value(r"E2U+sip=100|10|!^(.*)$!sip:\1@pbx.example.com!", AUS)
    assert report.ok
    assert report.first_route == "sip:+18009359935@pbx.example.com"
    d = report.directives[0]
    assert {d.pbx[p].uri for p in PBXS} == {"sip:+18009359935@pbx.example.com"}
    # FreeSWITCH dials through the stock enum.conf.xml route.
    assert d.pbx["freeswitch"].dial == "sofia/${use_profile}/+18009359935@pbx.example.com"


def test_a_fixed_uri_as_enumer_record_new_writes_it() -> None:
    assert set(statuses("E2U+sip=100|10|!^.*$!sip:reception@pbx.example.net!").values()) == {"yes"}


def test_backslash_d_is_not_posix() -> None:
    line = r"E2U+sip=100|10|!^\+?1(\d*)$!sip:\1@h.example.com!"
    assert statuses(line) == {
        "enumer": "yes",
        "freeswitch": "yes",
        "asterisk": "no",
        "kamailio": "no",
    }
    assert "write [0-9]" in verdict(line, "kamailio").reason
    fixed = r"E2U+sip=100|10|!^\+?1([0-9]*)$!sip:\1@h.example.com!"
    assert set(statuses(fixed).values()) == {"yes"}
    assert verdict(fixed, "kamailio").uri == "sip:8009359935@h.example.com"


def test_the_i_flag_breaks_asterisk_and_its_whole_answer() -> None:
    line = "E2U+sip=100|10|!^(.*)$!sip:\\1@h.example.com!i"
    assert statuses(line) == {
        "enumer": "yes",
        "freeswitch": "yes",
        "asterisk": "no",
        "kamailio": "yes",
    }
    report = check_value(line + "\nE2U+sip=200|10|!^.*$!sip:other@h.example.com!", AUS)
    assert report.summary["asterisk"].status is Status.NO
    assert "drops the whole answer" in report.summary["asterisk"].reason
    assert report.summary["kamailio"].status is Status.YES
    assert not report.ok


def test_only_kamailio_and_freeswitch_insist_on_the_bang_delimiter() -> None:
    line = "E2U+sip=100|10|#^(.*)$#sip:\\1@h.example.com#"
    assert statuses(line) == {
        "enumer": "yes",
        "freeswitch": "no",
        "asterisk": "yes",
        "kamailio": "no",
    }


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("E2U+SIP", {"freeswitch": "yes", "asterisk": "yes", "kamailio": "yes"}),
        ("E2U+voice:sip", {"freeswitch": "no", "asterisk": "yes", "kamailio": "no"}),
        ("e2U+sip", {"freeswitch": "yes", "asterisk": "no", "kamailio": "yes"}),
        ("E2U+sip+h323", {"freeswitch": "no", "asterisk": "no", "kamailio": "no"}),
        ("E2U+iax", {"freeswitch": "no", "asterisk": "no", "kamailio": "no"}),
    ],
)
def test_service_matching(service: str, expected: dict[str, str]) -> None:
    found = statuses(f"{service}=100|10|!^(.*)$!sip:\\1@h.example.com!")
    assert {p: found[p] for p in PBXS} == expected
    if service == "E2U+voice:sip":
        assert '"+sip+voice:sip"' in verdict(f"{service}=1|1|!^.*$!sip:a@b!", "kamailio").reason


def test_a_non_sip_directive_that_parses_does_not_hurt_asterisk() -> None:
    report = check_value(
        "E2U+sip=100|10|!^(.*)$!sip:\\1@h.example.com!\nE2U+email:mailto=200|10|!^.*$!mailto:a@b.c!",
        AUS,
    )
    assert report.ok, report.summary


def test_a_non_matching_directive_hides_the_others_from_asterisk() -> None:
    report = check_value(
        "E2U+sip=100|10|!^(.*)$!sip:\\1@h.example.com!\n"
        "E2U+pstn:tel=100|20|!^\\+44(.*)$!tel:+44\\1!",
        AUS,
    )
    assert report.directives[1].pbx["asterisk"].status is Status.NO
    assert report.summary["asterisk"].status is Status.NO
    assert report.summary["freeswitch"].status is Status.YES
    assert report.summary["kamailio"].status is Status.YES


def test_pbxs_keep_only_the_expansion_of_an_unanchored_match() -> None:
    # RFC 3402 keeps the rest of the AUS: "+" + "sip:x@h" + "8009359935", not a URI.
    line = "E2U+sip=100|10|!1!sip:x@h.example.com!"
    found = statuses(line)
    assert found["enumer"] == "no"
    assert {found[p] for p in PBXS} == {"differs"}
    assert verdict(line, "asterisk").uri == "sip:x@h.example.com"


def test_backslash_zero_is_the_whole_match_in_the_pbxs() -> None:
    line = "E2U+sip=100|10|!^.*$!sip:\\0@h.example.com!"
    report = check_value(line, AUS)
    assert report.directives[0].enumer.uri == "sip:\\0@h.example.com"
    for pbx in ("asterisk", "kamailio"):
        assert report.directives[0].pbx[pbx].status is Status.DIFFERS
        assert report.directives[0].pbx[pbx].uri == "sip:+18009359935@h.example.com"
    # Without a "(" in the ERE, FreeSWITCH substitutes nothing: the "\\" became "$".
    fs = report.directives[0].pbx["freeswitch"]
    assert (fs.status, fs.uri) == (Status.DIFFERS, "sip:$0@h.example.com")


def test_freeswitch_reads_all_digits_after_a_backslash() -> None:
    line = "E2U+sip=100|10|!^\\+1(.*)$!sip:\\12@h.example.com!"
    assert verdict(line, "kamailio").uri == "sip:80093599352@h.example.com"
    fs = verdict(line, "freeswitch")
    assert (fs.status, fs.uri) == (Status.DIFFERS, "sip:@h.example.com")


def test_a_group_that_did_not_take_part() -> None:
    line = "E2U+sip=100|10|!^\\+(9)?(.*)$!sip:\\1\\2@h.example.com!"
    found = statuses(line)
    assert found == {"enumer": "yes", "freeswitch": "yes", "asterisk": "no", "kamailio": "no"}


def test_kamailio_match_array_limits() -> None:
    six = "E2U+sip=100|10|!^(.)(.)(.)(.)(.)(.*)$!sip:\\6@h.example.com!"
    assert verdict(six, "kamailio").status is Status.UNKNOWN
    assert verdict(six, "asterisk").status is Status.YES
    seven = "E2U+sip=100|10|!^(.)(.)(.)(.)(.)(.)(.*)$!sip:\\7@h.example.com!"
    assert verdict(seven, "kamailio").status is Status.NO


def test_escaped_delimiter() -> None:
    line = "E2U+sip=100|10|!^\\+(.*)$!sip:\\1\\!x@h.example.com!"
    report = check_value(line, AUS).directives[0]
    assert report.enumer.uri == "sip:18009359935!x@h.example.com"
    assert report.pbx["kamailio"].status is Status.NO
    assert report.pbx["asterisk"].status is Status.DIFFERS
    assert report.pbx["asterisk"].uri == "sip:18009359935\\!x@h.example.com"
    assert report.pbx["freeswitch"].status is Status.UNKNOWN


def test_unknowns_are_reported_not_guessed() -> None:
    quotes = "E2U+sip=100|10|!^(.*)$!sip:\\1@h.example.com;x='y'!"
    assert verdict(quotes, "freeswitch").status is Status.UNKNOWN
    posix_class = "E2U+sip=100|10|!^[[:punct:]]([[:digit:]]*)$!sip:\\1@h.example.com!"
    assert verdict(posix_class, "freeswitch").status is Status.UNKNOWN
    assert verdict(posix_class, "kamailio").uri == "sip:18009359935@h.example.com"
    report = check_value(quotes, AUS)
    assert report.summary["freeswitch"].status is Status.UNKNOWN
    assert not report.ok


def test_first_route_follows_order_and_preference() -> None:
    directives = [
        E2UDirective("E2U+sip", 100, 20, "!^.*$!sip:second@h.example.com!"),
        E2UDirective("E2U+voice:sip", 100, 10, "!^.*$!sip:voice@h.example.com!"),
        E2UDirective("E2U+sip", 50, 90, "#^.*$#sip:first@h.example.com#"),
    ]
    report = check_directives(directives, AUS)
    assert report.first_route == "sip:first@h.example.com"
    assert report.summary["asterisk"].status is Status.YES
    # Kamailio and FreeSWITCH skip the '#' directive and call another one.
    assert report.summary["kamailio"].status is Status.DIFFERS
    assert report.summary["kamailio"].uri == "sip:second@h.example.com"
    assert report.summary["freeswitch"].uri == "sip:second@h.example.com"


def test_a_record_without_route() -> None:
    report = check_value("E2U+email:mailto=100|10|!^.*$!mailto:a@b.c!", AUS)
    assert report.first_route is None
    assert not report.ok
    assert report.summary["kamailio"].reason == "no route (ENUMER has none either)"
    assert check_value("TTL=60", AUS).directives == ()
