"""``enumer route`` over real DNS: the ENUMER gateway, and BIND serving crafted NAPTRs.

The gateway only serves what verified records say; the cases a caller must
survive from the wider ENUM world (a broken regexp, services it cannot use,
non-terminal rules, several orders, an answer too big for UDP) come from a
static zone that Debian's BIND serves, so the DNS path is the real one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from enumer.calling.route import Outcome, Suffix, SuffixError, default_suffixes, parse_server, route
from enumer.e164 import E164
from tests.conftest import CliResult, CliRunner, assert_one_error_line
from tests.support import Gateway, free_port, named_options, start_named, stop

ZONE = """\
$TTL 300
@ IN SOA ns.enum. hostmaster.enum. 1 3600 600 86400 300
@ IN NS ns.enum.
ns IN A 127.0.0.1
; +12025550001: BIND accepts it, ENUMER refuses it (a back-reference inside the ERE)
1.0.0.0.5.5.5.2.0.2.1 IN NAPTR 100 10 "u" "E2U+sip" "!^(1)\\\\1(.*)$!sip:\\\\2@broken.example!" .
; +12025550002: only services a SIP caller cannot use
2.0.0.0.5.5.5.2.0.2.1 IN NAPTR 100 10 "u" "E2U+email:mailto" "!^.*$!mailto:info@example.net!" .
2.0.0.0.5.5.5.2.0.2.1 IN NAPTR 100 20 "u" "E2U+pstn:tel" "!^(.*)$!tel:\\\\1!" .
; +12025550003: orders and preferences out of answer order, a non-terminal rule, a bad one
3.0.0.0.5.5.5.2.0.2.1 IN NAPTR 200 10 "u" "E2U+sip" "!^.*$!sip:later@example.net!" .
3.0.0.0.5.5.5.2.0.2.1 IN NAPTR 100 20 "u" "E2U+voice:sip" "!^.*$!sip:second@example.net!" .
3.0.0.0.5.5.5.2.0.2.1 IN NAPTR 100 10 "u" "E2U+sip" "!^\\\\+(.*)$!sip:\\\\1@first.example.net!" .
3.0.0.0.5.5.5.2.0.2.1 IN NAPTR 50 10 "" "E2U+sip" "" next.example.net.
3.0.0.0.5.5.5.2.0.2.1 IN NAPTR 100 5 "u" "E2U+sip" "!^\\\\+44(.*)$!sip:\\\\1@uk.example.net!" .
; +12025550004: a number that exists without NAPTR (NODATA)
4.0.0.0.5.5.5.2.0.2.1 IN TXT "no naptr here"
"""


def big_answer() -> str:
    """+12025550005: 40 NAPTRs, more than 1232 bytes: UDP is truncated, TCP answers."""
    return "".join(
        f'5.0.0.0.5.5.5.2.0.2.1 IN NAPTR 100 {i} "u" "E2U+sip" '
        f'"!^.*$!sip:agent{i:02d}@a-rather-long-host-name.example.net!" .\n'
        for i in range(40)
    )


STATIC_ENUM = 'zone "enum" {{ type master; file "{dir}/enum.zone"; }};\n'


@pytest.fixture(scope="module")
def static_enum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """BIND authoritative for a static "enum" zone; yields its port."""
    tmp = tmp_path_factory.mktemp("static-enum")
    (tmp / "enum.zone").write_text(ZONE + big_answer())
    port = free_port()
    (tmp / "named.conf").write_text(
        named_options(tmp, port, recursion=False) + STATIC_ENUM.format(dir=tmp)
    )
    process = start_named(tmp / "named.conf")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            probe = route(E164("12025550003"), [Suffix("enum", ("127.0.0.1", port))], timeout=0.5)
            if probe.routes:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("named did not serve the static zone")
        yield port
    finally:
        stop(process)


def at(port: int) -> list[Suffix]:
    return [Suffix("enum", ("127.0.0.1", port))]


# -- the library ------------------------------------------------------------------------


def test_routes_in_order_and_preference(static_enum: int) -> None:
    result = route(E164("12025550003"), at(static_enum))
    assert [r.uri for r in result.routes] == [
        "sip:12025550003@first.example.net",
        "sip:second@example.net",
        "sip:later@example.net",
    ]
    # The UK-only rule does not match this number; the non-terminal rule is ignored.
    (problem,) = result.winner.problems if result.winner else []
    assert "does not match" in problem


def test_no_route_reasons(static_enum: int) -> None:
    broken = route(E164("12025550001"), at(static_enum))
    assert not broken.routes
    assert broken.reason is not None and "no usable route" in broken.reason
    assert "back-reference \\1 inside the ERE is not supported" in broken.reason
    services = route(E164("12025550002"), at(static_enum))
    assert services.reason == (
        f"enum@127.0.0.1:{static_enum}: no usable service (offered: E2U+email:mailto, E2U+pstn:tel)"
    )
    tel = route(E164("12025550002"), at(static_enum), services=["E2U+pstn:tel"])
    assert [r.uri for r in tel.routes] == ["tel:+12025550002"]
    nodata = route(E164("12025550004"), at(static_enum))
    assert nodata.queries[0].outcome is Outcome.NODATA
    missing = route(E164("12025550009"), at(static_enum))
    assert missing.queries[0].outcome is Outcome.NXDOMAIN
    assert "NXDOMAIN" in (missing.reason or "")


def test_a_truncated_answer_is_retried_over_tcp(static_enum: int) -> None:
    result = route(E164("12025550005"), at(static_enum))
    assert len(result.routes) == 40
    assert result.routes[0].uri == "sip:agent00@a-rather-long-host-name.example.net"


def test_suffixes_in_order_first_route_wins(static_enum: int, demo_gateway: Gateway) -> None:
    gateway = Suffix("enum", ("127.0.0.1", demo_gateway.port))
    static = Suffix("enum", ("127.0.0.1", static_enum))
    # Not in ENUMER: the second suffix answers, both are listed.
    result = route(E164("12025550003"), [gateway, static])
    assert [q.outcome for q in result.queries] == [Outcome.NXDOMAIN, Outcome.ANSWER]
    assert result.routes[0].uri == "sip:12025550003@first.example.net"
    # In ENUMER: the second suffix is not asked at all.
    result = route(E164("18009359935"), [gateway, static])
    assert len(result.queries) == 1


def test_timeout_is_a_reason_not_an_error() -> None:
    silent = free_port()  # nothing listens there
    result = route(E164("18009359935"), [Suffix("enum", ("127.0.0.1", silent))], timeout=0.3)
    assert result.queries[0].outcome is Outcome.TIMEOUT
    assert result.reason == f"enum@127.0.0.1:{silent}: timeout (no answer within 0.3 s)"


def test_suffix_and_server_syntax() -> None:
    assert Suffix.from_text("enum@127.0.0.1:5335") == Suffix("enum", ("127.0.0.1", 5335))
    assert Suffix.from_text("E164.ARPA.") == Suffix("e164.arpa", None)
    assert Suffix.from_text("enum", ("::1", 53)).label == "enum@[::1]:53"
    assert Suffix.from_text("enum@[::1]:5335").server == ("::1", 5335)
    assert parse_server("192.0.2.1") == ("192.0.2.1", 53)
    assert default_suffixes() == [Suffix("enum", ("127.0.0.1", 5335)), Suffix("e164.arpa")]
    assert default_suffixes(("192.0.2.1", 53))[0].server == ("192.0.2.1", 53)
    for bad in ("@127.0.0.1", "enum@gateway.example.net", "enum@127.0.0.1:99999", "a..b"):
        with pytest.raises(SuffixError):
            Suffix.from_text(bad)


# -- the command ------------------------------------------------------------------------


def test_route_command_text_and_exit_status(enumer: CliRunner, demo_gateway: Gateway) -> None:
    server = f"127.0.0.1:{demo_gateway.port}"
    found = enumer("route", "+1 (800) 935-9935", "--suffix", f"enum@{server}")
    assert found.returncode == 0, found.stderr
    assert found.stdout.splitlines() == [
        f"+18009359935: 1 route from enum@{server} (5.3.9.9.5.3.9.0.0.8.1.enum)",
        "  sip:+18009359935@pbx.example.com\tE2U+sip order 100 preference 10",
    ]
    for number in ("+15551234567", "+15550001111"):  # unsigned, revoked
        none = enumer("route", number, "--server", server, "--suffix", "enum")
        assert none.returncode == 1
        assert none.stderr == ""
        assert none.stdout.startswith(f"no ENUM route: use the PSTN (enum@{server}: NXDOMAIN")


def test_route_command_json(enumer: CliRunner, demo_gateway: Gateway) -> None:
    server = f"127.0.0.1:{demo_gateway.port}"
    found = enumer("route", "2025550100", "--region", "US", "--suffix", f"enum@{server}", "--json")
    data = found.json()
    assert data["number"] == "12025550100"
    assert data["routes"] == [
        {
            "uri": "sip:reception@pbx.example.net",
            "service": "E2U+sip",
            "order": 100,
            "preference": 10,
            "suffix": "enum",
        }
    ]
    assert "reason" not in data
    local = enumer(
        "route",
        "5550100",
        "--region",
        "US",
        "--area-code",
        "202",
        "--suffix",
        f"enum@{server}",
        "--json",
    )
    assert local.json()["number"] == "12025550100"
    missing: CliResult = enumer("route", "+15551234567", "--suffix", f"enum@{server}", "--json")
    assert missing.returncode == 1
    assert missing.json()["routes"] == []
    assert missing.json()["reason"].startswith(f"enum@{server}: NXDOMAIN")


def test_route_command_default_suffixes(enumer: CliRunner, demo_gateway: Gateway) -> None:
    """--server without --suffix: the gateway is asked first, then e164.arpa (system)."""
    result = enumer(
        "route",
        "+15551234567",
        "--server",
        f"127.0.0.1:{demo_gateway.port}",
        "--timeout",
        "0.5",
        "--json",
    )
    assert result.returncode == 1
    queries = result.json()["queries"]
    assert [q["suffix"] for q in queries] == ["enum", "e164.arpa"]
    assert queries[0]["outcome"] == "nxdomain"
    assert queries[1]["server"] is None


def test_route_command_errors(enumer: CliRunner) -> None:
    assert "server" in assert_one_error_line(enumer("route", "+1800", "--server", "x"), 2)
    assert "suffix" in assert_one_error_line(enumer("route", "+1800", "--suffix", "@1.2.3.4"), 2)
    assert "region" in assert_one_error_line(
        enumer("route", "5550100", "--region", "XX", "--suffix", "enum@127.0.0.1:9"), 2
    )
    assert "NANP" in assert_one_error_line(
        enumer("route", "5550100", "--region", "DE", "--area-code", "202"), 2
    )
    assert "letter" in assert_one_error_line(enumer("route", "1-800-FLOWERS"), 1)


def test_route_json_is_machine_readable_for_dialplans(enumer: CliRunner, static_enum: int) -> None:
    result = enumer("route", "+12025550003", "--suffix", f"enum@127.0.0.1:{static_enum}", "--json")
    data = json.loads(result.stdout)
    assert [(r["order"], r["preference"]) for r in data["routes"]] == [
        (100, 10),
        (100, 20),
        (200, 10),
    ]
    assert data["queries"][0]["problems"]
