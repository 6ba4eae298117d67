"""``enumer route`` against a server that misbehaves (issue 18, defects 4 and 5).

A server that closes TCP after reading the query must be one suffix's reason,
never the end of the run; records in the answer owned by another name than
the one asked must never become routes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import dns.message
import dns.name
import dns.rrset
import pytest

from enumer.calling.route import Outcome, Suffix, route
from enumer.e164 import E164
from tests.calling.hostile_dns import hostile, truncated
from tests.conftest import CliRunner
from tests.support import ENUMER, Gateway, start_gateway, stop

NUMBER = E164("18009359935")
QNAME = "5.3.9.9.5.3.9.0.0.8.1.enum."


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One demo gateway for the module (the second suffix that does answer)."""
    store = tmp_path_factory.mktemp("hostile") / "store"
    subprocess.run(
        [*ENUMER, "--store", str(store), "demo", "seed"], check=True, capture_output=True
    )
    started = start_gateway(store)
    try:
        yield started
    finally:
        stop(started.process)


def naptr(owner: str, order: int, uri: str) -> dns.rrset.RRset:
    return dns.rrset.from_text(
        owner, 300, "IN", "NAPTR", f'{order} 10 "u" "E2U+sip" "!^.*$!{uri}!" .'
    )


def with_answer(*rrsets: dns.rrset.RRset) -> dns.message.Message:
    def answer(query: dns.message.Message) -> dns.message.Message:
        reply = dns.message.make_response(query)
        reply.answer.extend(rrsets)
        return reply

    return answer  # type: ignore[return-value]


def test_a_tcp_close_is_a_reason_and_the_next_suffix_is_asked(gateway: Gateway) -> None:
    with hostile(truncated, close_tcp=True) as server:
        result = route(
            NUMBER,
            [Suffix("enum", ("127.0.0.1", port)) for port in (server.port, gateway.port)],
            timeout=2,
        )
        assert server.tcp_queries >= 1  # the client did fall back to TCP
    first, second = result.queries
    assert first.outcome is Outcome.ERROR
    assert first.reason == "the server closed the TCP connection without answering"
    assert second.outcome is Outcome.ANSWER
    assert [r.uri for r in result.routes] == ["sip:+18009359935@pbx.example.com"]


def test_route_command_survives_a_tcp_close(enumer: CliRunner, gateway: Gateway) -> None:
    with hostile(truncated, close_tcp=True) as server:
        hostile_suffix = f"enum@127.0.0.1:{server.port}"
        both = enumer(
            "route", "+18009359935", "--suffix", hostile_suffix,
            "--suffix", f"enum@127.0.0.1:{gateway.port}", "--json",
        )  # fmt: skip
        alone = enumer("route", "+18009359935", "--suffix", hostile_suffix, "--json")
    assert both.returncode == 0, both.stderr
    data = both.json()
    assert [q["outcome"] for q in data["queries"]] == ["error", "answer"]
    assert "closed the TCP connection" in data["queries"][0]["reason"]
    assert data["routes"][0]["uri"] == "sip:+18009359935@pbx.example.com"
    # The only suffix fails: exit 1 with the reason as JSON, no "error: aborted".
    assert alone.returncode == 1, alone.stderr
    assert alone.stderr == ""
    assert alone.json()["reason"] == (
        f"{hostile_suffix}: the server closed the TCP connection without answering"
    )


def test_naptrs_owned_by_another_name_are_not_routes() -> None:
    answer = with_answer(
        naptr("attacker.example.com.", 1, "sip:evil@attacker.example.com"),
        naptr(QNAME, 100, "sip:good@pbx.example.com"),
    )
    with hostile(answer) as server:
        result = route(NUMBER, [Suffix("enum", ("127.0.0.1", server.port))], timeout=2)
    assert [r.uri for r in result.routes] == ["sip:good@pbx.example.com"]
    assert result.queries[0].problems == [
        "ignored 1 NAPTR owned by attacker.example.com, not by the name asked"
    ]


def test_only_foreign_naptrs_give_no_route_and_say_why() -> None:
    answer = with_answer(naptr("attacker.example.com.", 1, "sip:evil@attacker.example.com"))
    with hostile(answer) as server:
        result = route(NUMBER, [Suffix("enum", ("127.0.0.1", server.port))], timeout=2)
    assert result.routes == []
    assert result.reason is not None
    assert "ignored 1 NAPTR owned by attacker.example.com" in result.reason


def test_a_cname_chain_is_followed_to_the_owner() -> None:
    target = "number.alias.example.net."
    answer = with_answer(
        dns.rrset.from_text(QNAME, 300, "IN", "CNAME", target),
        naptr(target, 100, "sip:alias@pbx.example.net"),
        naptr(QNAME, 50, "sip:shadowed@pbx.example.net"),  # beside a CNAME: not the owner
    )
    with hostile(answer) as server:
        result = route(NUMBER, [Suffix("enum", ("127.0.0.1", server.port))], timeout=2)
    assert [r.uri for r in result.routes] == ["sip:alias@pbx.example.net"]
    assert dns.name.from_text(QNAME).to_text(omit_final_dot=True) in result.queries[0].problems[0]
