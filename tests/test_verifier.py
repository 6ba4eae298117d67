"""Verifier operations through the wallet: create, sign, append, revoke."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from enumer import crypto
from enumer.nvs import NvsError
from enumer.nvs.ledger import Ledger
from enumer.records import RecordError
from enumer.trust import SrlConfig, SrlState
from enumer.verifier import (
    DEFAULT_SRL_BITS,
    SRL_HEADER,
    VerifierError,
    append_signature,
    create_verifier,
    revoke,
    sign_name,
    verifier_name,
)

FOREIGN = "mrtBxwpW2PV9FxhrC29Tpzo7zyjLQw4pqD"
E2U = "E2U+sip=100|10|!^(.*)$!sip:\\1@pbx.example.com!"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(tmp_path / "store", "regtest")
    yield ledger
    ledger.close()


def test_verifier_names() -> None:
    assert verifier_name("enum") == "ver:enum"
    assert verifier_name("ver:enum") == "ver:enum"
    for bad in ("", "ver:", "a b", "a|b", "a,b", "ver:x\ty"):
        with pytest.raises(VerifierError, match="bad verifier id"):
            verifier_name(bad)


def test_create_verifier_uses_a_fresh_p2pkh_key(store: Ledger, tmp_path: Path) -> None:
    address = create_verifier(store, "enum", "Test verifier", 3650)
    assert address[0] in "mn" and store.is_mine(address)
    record = store.show("ver:enum")
    assert (record.address, record.value) == (address, "Test verifier")
    assert record.expires_at == record.height + 3650 * 175
    with pytest.raises(NvsError, match="name_new on an unexpired name"):
        create_verifier(store, "enum", "again", 10)
    with Ledger(tmp_path / "main") as main:
        assert create_verifier(main, "x", "mainnet", 1).startswith("E")


def test_sign_name(store: Ledger) -> None:
    address = create_verifier(store, "enum", "v", 10)
    signature = sign_name(store, "enum", "enum:18009359935:0")
    assert crypto.verify_message(address, signature, "enum:18009359935:0", network=crypto.REGTEST)
    assert not crypto.verify_message(
        address, signature, "enum:18009359935:1", network=crypto.REGTEST
    )
    assert sign_name(store, "ver:enum", "enum:18009359935:0") == signature  # RFC 6979
    with pytest.raises(RecordError):
        sign_name(store, "enum", "ver:enum")
    with pytest.raises(VerifierError, match="ver:other does not exist"):
        sign_name(store, "other", "enum:18009359935:0")
    store.name_new("ver:foreign", "not ours", 10, FOREIGN)
    with pytest.raises(VerifierError, match="the wallet has no key for ver:foreign"):
        sign_name(store, "foreign", "enum:18009359935:0")
    store.generate(11 * 175)
    with pytest.raises(VerifierError, match="ver:enum does not exist or is not active"):
        sign_name(store, "enum", "enum:18009359935:0")


def test_append_signature_keeps_owner_and_text(store: Ledger) -> None:
    create_verifier(store, "enum", "v", 10)
    name = "enum:18009359935:0"
    original = f"ttl = 120\r\n{E2U}\r\n# a note the owner keeps\r\n"
    store.name_new(name, original, 10)
    owner = store.show(name).address
    signature = sign_name(store, "enum", name)
    append_signature(store, "enum", name, signature)
    record = store.show(name)
    assert record.address == owner
    assert record.value == original.rstrip("\r\n") + f"\nSIG=ver:enum|{signature}"
    txid = record.txid
    assert append_signature(store, "enum", name, signature) == txid  # already there
    assert store.show(name).txid == txid


def test_append_signature_refusals(store: Ledger) -> None:
    create_verifier(store, "enum", "v", 10)
    with pytest.raises(VerifierError, match="does not exist or is not active"):
        append_signature(store, "enum", "enum:1:0", "AAAA")
    store.name_new("enum:1:0", E2U, 10, FOREIGN)
    with pytest.raises(VerifierError, match="does not own enum:1:0"):
        append_signature(store, "enum", "enum:1:0", "AAAA")


def test_revoke_creates_the_srl_line_and_record(store: Ledger) -> None:
    address = create_verifier(store, "enum", "Verifier", 10)
    result = revoke(store, "enum", "enum:15550001111:0")
    assert (result.srl_record, result.created_srl_line, result.already_listed) == (
        "srl:enum-12",
        True,
        False,
    )
    ver = store.show("ver:enum")
    assert ver.address == address
    assert ver.value == f"Verifier\nSRL={DEFAULT_SRL_BITS}|srl:enum-%02x"
    assert ver.expires_at == store.history("ver:enum")[0].height + 10 * 175  # no days added
    srl = store.show("srl:enum-12")
    assert srl.address == address
    assert srl.value == f"{SRL_HEADER} of ver:enum\nenum:15550001111:0\n"
    # Same bucket: the record is extended, the SRL line is not added twice.
    second = revoke(store, "enum", "enum:18009359935:0")
    assert (second.srl_record, second.created_srl_line) == ("srl:enum-12", False)
    assert store.show("srl:enum-12").value.endswith("enum:15550001111:0\nenum:18009359935:0\n")
    assert store.show("srl:enum-12").address == address
    again = revoke(store, "enum", "enum:18009359935:0")
    assert again.already_listed
    assert store.show("ver:enum").value.count("SRL=") == 1


def test_revoke_lists_names_exactly(store: Ledger) -> None:
    create_verifier(store, "enum", "Verifier\nSRL=0|srl:everything", 10)
    revoke(store, "enum", "enum:18009359935:10")
    # :1 is a substring of :10 but not listed on a line of its own: it is added.
    result = revoke(store, "enum", "enum:18009359935:1")
    assert not result.already_listed and not result.created_srl_line
    lines = store.show("srl:everything").value.splitlines()
    assert lines[1:] == ["enum:18009359935:10", "enum:18009359935:1"]


def test_revoke_uses_the_existing_srl_configuration(store: Ledger) -> None:
    create_verifier(store, "enum", "Verifier\nsrl=8|srl:custom-%02X", 10)
    result = revoke(store, "enum", "enum:18009359935:0")
    assert result.srl_record == "srl:custom-D2" and not result.created_srl_line
    assert SrlConfig.from_value(store.show("ver:enum").value).state is SrlState.ACTIVE


@pytest.mark.parametrize("value", ["V\nSRL=17|srl:x-%02x", "V\nSRL=5|srl:%s", "V\nSRL=5|"])
def test_revoke_refuses_an_unusable_srl_line(store: Ledger, value: str) -> None:
    create_verifier(store, "enum", value, 10)
    with pytest.raises(VerifierError, match="unusable SRL line"):
        revoke(store, "enum", "enum:18009359935:0")


def test_revoke_when_the_bucket_record_is_held_by_someone_else(store: Ledger) -> None:
    create_verifier(store, "enum", "V\nSRL=5|srl:enum-%02x", 10)
    store.name_new("srl:enum-12", "squatted", 10, FOREIGN)
    with pytest.raises(VerifierError, match=r"held by .*cannot be extended"):
        revoke(store, "enum", "enum:18009359935:0")


def test_revoke_recreates_an_expired_bucket_record(store: Ledger) -> None:
    address = create_verifier(store, "enum", "V\nSRL=5|srl:enum-%02x", 3650)
    store.name_new("srl:enum-12", "old list\nenum:15550001111:0\n", 1, address)
    store.generate(200)
    result = revoke(store, "enum", "enum:18009359935:0")
    assert not result.already_listed
    assert store.show("srl:enum-12").value.endswith("\nenum:18009359935:0\n")
    assert "enum:15550001111:0" not in store.show("srl:enum-12").value


def test_revoke_needs_the_verifier_key(store: Ledger) -> None:
    store.name_new("ver:foreign", "V", 10, FOREIGN)
    with pytest.raises(VerifierError, match="no key for ver:foreign"):
        revoke(store, "foreign", "enum:18009359935:0")
    with pytest.raises(RecordError):
        revoke(store, "foreign", "srl:x")
