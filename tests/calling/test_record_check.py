"""``enumer record check``: the compatibility report from the command line."""

from __future__ import annotations

from tests.conftest import CliRunner, assert_one_error_line

USUAL = r"E2U+sip=100|10|!^(.*)$!sip:\1@pbx.example.com!"
POSIX_TRAP = r"E2U+sip=100|10|!^\+?1(\d*)$!sip:\1@pbx.example.com!"


def test_published_record_works_everywhere(enumer: CliRunner) -> None:
    assert enumer("demo", "seed").returncode == 0
    result = enumer("record", "check", "enum:18009359935:0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "enum:18009359935:0  (AUS +18009359935)"
    assert lines[1] == f"directive 1: {USUAL}"
    assert "  Kamailio enum         yes      sip:+18009359935@pbx.example.com" in lines
    assert lines[-1] == "works everywhere"


def test_every_active_record_of_a_number(enumer: CliRunner) -> None:
    enumer("demo", "seed")
    # +1 555 000 1234: a squatter's :0 and the owner's :1; both are checked.
    result = enumer("record", "check", "+15550001234", "--json")
    assert result.returncode == 0, result.stderr
    names = [entry["name"] for entry in result.json()]
    assert names == ["enum:15550001234:0", "enum:15550001234:1"]


def test_unpublished_value(enumer: CliRunner) -> None:
    result = enumer("record", "check", "+1 800 935 9935", "--value", POSIX_TRAP, "--json")
    assert result.returncode == 1
    data = result.json()
    assert data["name"] == "+1 800 935 9935"
    assert data["first_route"] == "sip:8009359935@pbx.example.com"
    directive = data["directives"][0]
    assert directive["freeswitch"]["status"] == "yes"
    assert directive["freeswitch"]["dial"] == "sofia/${use_profile}/8009359935@pbx.example.com"
    assert directive["kamailio"]["status"] == "no"
    assert "write [0-9]" in directive["kamailio"]["reason"]
    assert data["summary"]["asterisk"]["status"] == "no"
    assert data["ok"] is False
    text = enumer("record", "check", "enum:18009359935:0", "--value", "-", input=POSIX_TRAP + "\n")
    assert text.returncode == 1
    assert text.stdout.splitlines()[-1] == "does not work the same everywhere"


def test_record_check_errors(enumer: CliRunner) -> None:
    enumer("demo", "seed")
    # A missing name: the node's own error text (name_show).
    assert assert_one_error_line(enumer("record", "check", "enum:18009359935:7")) == (
        "error: failed to read from name DB"
    )
    assert "no active record" in assert_one_error_line(enumer("record", "check", "+12025550177"))
    assert "letter" in assert_one_error_line(
        enumer("record", "check", "1-800-FLOWERS", "--value", USUAL)
    )
    assert "16 digits" in assert_one_error_line(
        enumer("record", "check", "enum:1234567890123456:0", "--value", USUAL)
    )
