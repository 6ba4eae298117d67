"""``enumer demo seed``: what it creates and what each demo number resolves to."""

from __future__ import annotations

from typing import Any

import pytest

from enumer import demo
from enumer.nvs.ledger import Ledger
from enumer.records import EnumValue
from enumer.resolver import Resolver
from enumer.trust import TollFreeSource, TrustList
from tests.conftest import CliRunner

#: number -> (served URI or None, records examined, verified flags by name)
EXPECTED: dict[str, tuple[str | None, dict[str, bool]]] = {
    "18009359935": ("sip:+18009359935@pbx.example.com", {"enum:18009359935:0": True}),
    "12025550100": ("sip:reception@pbx.example.net", {"enum:12025550100:0": True}),
    "17771234567": ("sip:+17771234567@a.example.com", {"enum:17771234567:0": True}),
    "15550001234": (
        "sip:+15550001234@owner.example.com",
        {"enum:15550001234:0": False, "enum:15550001234:1": True},
    ),
    "15551234567": (None, {"enum:15551234567:0": False}),
    "15550001111": (None, {"enum:15550001111:0": False}),
    "15550002001": ("sip:+15550002001@strict.example.com", {"enum:15550002001:0": True}),
    "15550002002": ("sip:+15550002002@changed.example.com", {"enum:15550002002:0": True}),
    "15550002003": ("sip:+15550002003@transferred.example.com", {"enum:15550002003:0": True}),
    "18005551234": ("sip:+18005551234@tollfree.example.net", {}),
    "18881234567": ("sip:+18881234567@tf888.example.net", {}),
    "18889": (None, {}),
}


@pytest.fixture
def seeded(enumer: CliRunner) -> CliRunner:
    result = enumer("demo", "seed")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ver:demo: demo verifier owned by E")
    assert lines[1].startswith("enum:tollfree: toll-free list")
    names = [line.split(": ", 1)[0] for line in lines[2:-1]]
    assert names == [f"enum:{n.digits}:{n.index}" for n in demo.DEMO_NUMBERS]
    assert lines[-1].startswith("trust: ver:demo; toll-free: @enum:tollfree (saved in ")
    return enumer


def test_seed_creates_what_the_demo_module_says(seeded: CliRunner) -> None:
    listed = seeded("name", "list", "--json").json()
    names = {e["name"] for e in listed}
    expected = {"ver:demo", "enum:tollfree", "srl:demo-12"} | {
        f"enum:{n.digits}:{n.index}" for n in demo.DEMO_NUMBERS
    }
    assert names == expected
    ver = seeded("name", "show", "ver:demo", "--json").json()
    assert ver["address"].startswith("E")
    assert ver["value"].endswith("\nSRL=5|srl:demo-%02x")
    tollfree = seeded("name", "show", "enum:tollfree", "--json").json()
    assert tollfree["value"] == demo.TOLLFREE_LIST
    by_name = {e["name"]: e for e in listed}
    for number in demo.DEMO_NUMBERS:
        value = EnumValue.from_text(by_name[f"enum:{number.digits}:{number.index}"]["value"])
        assert [d.to_text() for d in value.directives] == [
            line for line in number.lines if line.startswith("E2U")
        ]
        assert [s.verifier for s in value.signatures] == (["ver:demo"] if number.signed else [])
    squatted = {by_name["enum:15550001234:0"]["address"], by_name["enum:15551234567:0"]["address"]}
    assert len(squatted) == 1  # both unsigned records belong to the demo's squatter


@pytest.mark.parametrize("number", sorted(EXPECTED))
def test_each_demo_number_resolves_as_documented(seeded: CliRunner, number: str) -> None:
    uri, records = EXPECTED[number]
    result = seeded("lookup", number, "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = result.json()
    assert data["uri"] == uri
    assert {r["name"]: r["verified"] for r in data["records"]} == records
    if number == "17771234567":
        assert [(n["service"], n["ttl"]) for n in data["naptr"]] == [
            ("E2U+sip", 600),
            ("E2U+email:mailto", 600),
        ]
    if number == "18881234567":
        assert [n["service"] for n in data["naptr"]] == ["E2U+sip", "E2U+pstn:tel"]
        assert data["tollfree"]["pattern"] == "1888\\d{7}"
    if number == "15550001111":
        assert "revoked by srl:demo-12" in data["records"][0]["reason"]
    if uri is None:
        assert data["naptr"] == []


def test_second_seed_does_nothing(seeded: CliRunner) -> None:
    before = seeded("name", "list", "--json").json()
    height = seeded("wallet", "height").stdout
    again = seeded("demo", "seed")
    assert again.returncode == 0
    assert "already has names: not seeded" in again.stdout
    assert seeded("name", "list", "--json").json() == before
    assert seeded("wallet", "height").stdout == height


def test_seed_with_force_into_a_store_with_other_names(enumer: CliRunner) -> None:
    enumer("name", "new", "test:mine", "v", "1")
    refused = enumer("demo", "seed")
    assert "not seeded" in refused.stdout
    assert enumer("lookup", "18009359935", "--json").json()["uri"] is None
    forced = enumer("demo", "seed", "--force")
    assert forced.returncode == 0, forced.stderr
    assert enumer("lookup", "18009359935", "--json").json()["uri"] is not None


def test_seed_through_the_library(tmp_path: Any) -> None:
    with Ledger(tmp_path / "lib", "regtest") as store:
        assert demo.is_empty(store)
        lines = demo.seed(store)
        assert len(lines) == 2 + len(demo.DEMO_NUMBERS)
        assert not demo.is_empty(store)
        resolver = Resolver(
            store,
            TrustList.from_text(demo.DEMO_VERIFIER),
            TollFreeSource.parse_list("@" + demo.DEMO_TOLLFREE),
        )
        for number, (uri, records) in EXPECTED.items():
            result = resolver.resolve(number)
            assert {r.name: r.verified for r in result.records} == records, number
            assert result.answered == (uri is not None), number


#: What a strict gateway (SPEC 11) decides for the demo's records with a SIG.
STRICT = {
    "15550002001": "served by VSIG of ver:demo",
    "15550002002": "not served in strict mode: OSIG digest does not match the directives",
    "15550002003": "not served in strict mode: VSIG names owner ",
    "18009359935": "not served in strict mode: SIG= only",
}


@pytest.mark.parametrize("number", sorted(STRICT))
def test_strict_lookup_of_the_demo_explains_each_record(seeded: CliRunner, number: str) -> None:
    data = seeded("lookup", number, "--signatures", "strict", "--json").json()
    assert data["signatures"] == "strict"
    (record,) = data["records"]
    assert record["reason"].startswith(STRICT[number]), record["reason"]
    assert record["verified"] is (number == "15550002001")
    assert (data["uri"] is not None) is (number == "15550002001")
    text = seeded("lookup", number, "--signatures", "strict").stdout
    assert STRICT[number] in text
