"""Trust decisions: SRL hashing and configuration, signatures, trust lists, toll-free lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enumer import crypto
from enumer.nvs import NameRecord
from enumer.records import Signature
from enumer.trust import (
    SignatureCache,
    SigStatus,
    SrlConfig,
    SrlState,
    TollFreeSource,
    TollFreeTable,
    TrustError,
    TrustList,
    Verifier,
    check_signature,
    srl_hash,
    srl_lists,
)

# -- SRL hash and record names --------------------------------------------------------


@pytest.fixture(scope="module")
def srl_vectors(shared_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((shared_dir / "vectors" / "srl_hash.json").read_text())
    return data


def test_srl_hash_and_record_names_for_every_vector(srl_vectors: dict[str, Any]) -> None:
    template = srl_vectors["template"]
    seen_nbits = set()
    for vector in srl_vectors["vectors"]:
        name = vector["name"]
        assert srl_hash(name) == vector["h"], name
        assert f"0x{srl_hash(name):08x}" == vector["h_hex"]
        assert srl_hash(name.encode()) == vector["h"]
        for nbits, bucket in vector["buckets"].items():
            config = SrlConfig.from_line(f"SRL={nbits}|{template}")
            assert config.state is SrlState.ACTIVE
            assert srl_hash(name) & ((1 << int(nbits)) - 1) == bucket["h_and_mask"]
            assert (1 << int(nbits)) - 1 == bucket["mask"]
            assert config.record_name(name) == bucket["srl_name"], (name, nbits)
            seen_nbits.add(int(nbits))
    assert seen_nbits == {1, 5, 8, 16}


def test_srl_hash_counts_bytes_as_signed_chars(srl_vectors: dict[str, Any]) -> None:
    (vector,) = [v for v in srl_vectors["vectors"] if "h_if_char_were_unsigned" in v]
    assert srl_hash(vector["name"]) == vector["h"]
    assert srl_hash(vector["name"]) != vector["h_if_char_were_unsigned"]


def test_srl_examples_of_the_reference(records_created: dict[str, Any]) -> None:
    config = SrlConfig.from_value("Verifier test\nSRL=5|srl:test-%02x")
    assert config.state is SrlState.ACTIVE
    examples = records_created["srl_examples"]
    assert len(examples) >= 8
    for name, example in examples.items():
        assert f"{srl_hash(name):08x}" == example["hash_hex"], name
        assert config.record_name(name) == f"srl:test-{example['bucket_mask31']}", name
    # The two names the reference put in one bucket.
    assert (
        config.record_name("enum:18009359935:0")
        == config.record_name("enum:15550001111:0")
        == "srl:test-12"
    )


# -- SRL configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "bucket_text"),
    [
        ("srl:a-%02x", "12"),
        ("srl:a-%x", "12"),
        ("srl:a-%X", "12"),
        ("srl:a-%d", "18"),
        ("srl:a-%i", "18"),
        ("srl:a-%u", "18"),
        ("srl:a-%o", "22"),
        ("srl:a-%04x", "0012"),
        ("srl:a-%0x", "12"),
        ("%02x-srl", "12"),
    ],
)
def test_supported_conversions(template: str, bucket_text: str) -> None:
    config = SrlConfig.from_line(f"SRL=5|{template}")
    assert config.state is SrlState.ACTIVE and config.problem == ""
    expected = template.replace(_conversion(template), bucket_text, 1)
    assert config.record_name("enum:18009359935:0") == expected


def _conversion(template: str) -> str:
    start = template.index("%")
    end = start + 1
    while template[end] in "0123456789":
        end += 1
    return template[start : end + 1]


def test_template_without_percent_is_a_single_bucket() -> None:
    config = SrlConfig.from_line("SRL=20|srl:everything")
    assert config.state is SrlState.ACTIVE and config.nbits == 0
    assert config.record_name("enum:18009359935:0") == "srl:everything"
    assert config.record_name("enum:1:0") == "srl:everything"


@pytest.mark.parametrize(
    "template",
    [
        "srl:%02x-%02x",
        "srl:%%-%02x",
        "srl:%s",
        "srl:%2x",
        "srl:%5d",
        "srl:%lx",
        "srl:%",
        "srl:%02",
        "srl:%.2x",
    ],
)
def test_bad_conversions_make_the_line_ignored(template: str) -> None:
    config = SrlConfig.from_line(f"SRL=5|{template}")
    assert config.state is SrlState.NONE
    assert "ignored" in config.problem


@pytest.mark.parametrize("line", ["SRL=5|", "SRL=5", "SRL="])
def test_empty_template_keeps_no_srl(line: str) -> None:
    config = SrlConfig.from_line(line)
    assert config.state is SrlState.NONE


def test_template_length_limit() -> None:
    ok = "srl:" + "a" * (255 - len("srl:%02x")) + "%02x"
    assert len(ok) == 255
    assert SrlConfig.from_line(f"SRL=5|{ok}").state is SrlState.ACTIVE
    long = "srl:" + "a" * (256 - len("srl:%02x")) + "%02x"
    config = SrlConfig.from_line(f"SRL=5|{long}")
    assert config.state is SrlState.REJECT_ALL
    assert "256 bytes" in config.problem


@pytest.mark.parametrize(
    ("nbits", "state"),
    [
        ("0", SrlState.ACTIVE),
        ("16", SrlState.ACTIVE),
        ("17", SrlState.REJECT_ALL),
        ("30", SrlState.REJECT_ALL),
        ("31", SrlState.REJECT_ALL),
        ("-1", SrlState.REJECT_ALL),
        (" 5 bits", SrlState.ACTIVE),
        ("x", SrlState.ACTIVE),
    ],
)
def test_nbits_limit(nbits: str, state: SrlState) -> None:
    assert SrlConfig.from_line(f"SRL={nbits}|srl:a-%02x").state is state


def test_nbits_is_capped_at_30() -> None:
    assert SrlConfig.from_line("SRL=99|srl:a-%02x").nbits == 30


def test_template_is_kept_verbatim() -> None:
    config = SrlConfig.from_line("SRL=5| srl:a-%02x ")
    assert config.record_name("enum:18009359935:0") == " srl:a-12 "


def test_srl_line_search_in_a_verifier_value() -> None:
    assert SrlConfig.from_value("Verifier\nno srl here").state is SrlState.NONE
    assert (
        SrlConfig.from_value("srl = 5|srl:x-%02x").record_name("enum:18009359935:0") == "srl:x-12"
    )
    first = SrlConfig.from_value("SRL=5|srl:a-%02x\r\nSRL=6|srl:b-%02x")
    assert first.template == "srl:a-%02x"
    # An ignored line does not stop the search (emcdns keeps looking for a mask) ...
    later = SrlConfig.from_value("SRL=5|srl:%s\nSRL=5|\nSRL=5|srl:b-%02x")
    assert later.state is SrlState.ACTIVE and later.template == "srl:b-%02x"
    # ... but a line that rejects everything does.
    reject = SrlConfig.from_value("SRL=20|srl:a-%02x\nSRL=5|srl:b-%02x")
    assert reject.state is SrlState.REJECT_ALL
    ignored = SrlConfig.from_value("SRL=5|srl:%s")
    assert ignored.state is SrlState.NONE and ignored.problem


def test_substring_versus_exact_revocation() -> None:
    value = "revoked:\nenum:18009359935:10\n"
    assert srl_lists(value, "enum:18009359935:10")
    assert srl_lists(value, "enum:18009359935:1")  # the reference's substring match
    assert not srl_lists(value, "enum:18009359935:1", exact=True)
    assert srl_lists(value, "enum:18009359935:10", exact=True)
    assert srl_lists("x\r\n  enum:1:0  \r\n", "enum:1:0", exact=True)
    assert not srl_lists("enum:1:0,enum:2:0", "enum:1:0", exact=True)
    assert srl_lists("enum:1:0,enum:2:0", "enum:1:0")
    assert not srl_lists("", "enum:1:0")


# -- signatures ---------------------------------------------------------------------------

NET = crypto.REGTEST


def _record(name: str, value: str, address: str) -> NameRecord:
    return NameRecord(name, value, address, "00" * 32, 1, 1, 1000, 0)


class World:
    """A verifier key, its ver: record and an SRL store, checked through check_signature."""

    def __init__(
        self, ver_value: str = "Verifier", key_kind: crypto.AddressKind = crypto.AddressKind.P2PKH
    ) -> None:
        self.key = crypto.PrivateKey.generate()
        self.address = self.key.address(NET, key_kind).to_text()
        self.ver_value = ver_value
        self.srl: dict[str, str] = {}
        self.cache = SignatureCache()
        self.trust = TrustList.from_text("ver:enum")

    def verifier(self, name: str) -> Verifier:
        if name != "ver:enum":
            return Verifier.from_record(name, None, NET)
        return Verifier.from_record(name, _record(name, self.ver_value, self.address), NET)

    def check(self, enum_name: str, signature: Signature, exact: bool = False) -> SigStatus:
        return check_signature(
            enum_name, signature, self.trust, self.verifier, self.srl.get, self.cache, exact
        ).status

    def sign(self, message: str) -> str:
        return self.key.sign_message(message)


@pytest.mark.parametrize("kind", [crypto.AddressKind.P2PKH, crypto.AddressKind.P2WPKH])
def test_valid_signature(kind: crypto.AddressKind) -> None:
    world = World(key_kind=kind)
    sig = Signature("ver:enum", world.sign("enum:18009359935:0"))
    assert world.check("enum:18009359935:0", sig) is SigStatus.VALID
    verdict = check_signature(
        "enum:18009359935:0", sig, world.trust, world.verifier, world.srl.get, world.cache
    )
    assert world.address in verdict.detail
    assert verdict.to_json()["status"] == "valid"


def test_signature_failures() -> None:
    world = World()
    name = "enum:18009359935:0"
    assert world.check(name, Signature("ver:other", world.sign(name))) is SigStatus.UNTRUSTED
    other = crypto.PrivateKey.generate()
    assert (
        world.check(name, Signature("ver:enum", other.sign_message(name)))
        is SigStatus.BAD_SIGNATURE
    )
    assert (
        world.check(name, Signature("ver:enum", world.sign("enum:18009359935:1")))
        is SigStatus.BAD_SIGNATURE
    )
    assert world.check(name, Signature("ver:enum", "AAAA")) is SigStatus.MALFORMED
    world.trust = TrustList.from_text("ver:enum|ver:gone")
    assert world.check(name, Signature("ver:gone", world.sign(name))) is SigStatus.VERIFIER_UNUSABLE


def test_revocation_through_the_srl_record() -> None:
    world = World("Verifier\nSRL=5|srl:t-%02x")
    name, neighbour = "enum:18009359935:0", "enum:15550001111:0"
    sig, sig2 = (
        Signature("ver:enum", world.sign(name)),
        Signature("ver:enum", world.sign(neighbour)),
    )
    assert world.check(name, sig) is SigStatus.VALID  # no SRL record: nothing revoked
    world.srl["srl:t-12"] = f"list\n{neighbour}\n"
    assert world.check(neighbour, sig2) is SigStatus.REVOKED
    assert world.check(name, sig) is SigStatus.VALID  # same bucket, not listed
    world.srl["srl:t-12"] = "enum:18009359935:01"  # substring match revokes :0 ...
    assert world.check(name, sig) is SigStatus.REVOKED
    assert world.check(name, sig, exact=True) is SigStatus.VALID  # ... exact does not


def test_misconfigured_srl_rejects_every_signature() -> None:
    world = World("Verifier\nSRL=17|srl:t-%02x")
    name = "enum:18009359935:0"
    verdict = check_signature(
        name,
        Signature("ver:enum", world.sign(name)),
        world.trust,
        world.verifier,
        world.srl.get,
        world.cache,
    )
    assert verdict.status is SigStatus.VERIFIER_UNUSABLE
    assert "misconfigured" in verdict.detail
    ignored = World("Verifier\nSRL=17|srl:%s")  # ignored line: nothing revoked
    assert ignored.check(name, Signature("ver:enum", ignored.sign(name))) is SigStatus.VALID


def test_verifier_owned_by_a_script_address_cannot_verify() -> None:
    record = _record("ver:enum", "v", crypto.base58check_encode(NET.p2sh_version, b"\1" * 20))
    verifier = Verifier.from_record("ver:enum", record, NET)
    assert verifier.address is None and "cannot verify" in verifier.problem


def test_signature_cache_checks_once() -> None:
    world = World()
    name = "enum:18009359935:0"
    sig = Signature("ver:enum", world.sign(name))
    for _ in range(3):
        assert world.check(name, sig) is SigStatus.VALID
    assert world.cache.checks == 1


# -- trust lists ----------------------------------------------------------------------------


def test_trust_list_parsing() -> None:
    assert TrustList.from_text("ver:enum|ver:other").verifiers == ("ver:enum", "ver:other")
    assert TrustList.from_text(" ver:enum , ver:other|ver:enum||").verifiers == (
        "ver:enum",
        "ver:other",
    )
    assert TrustList.from_text("ver:a,ver:b").to_text() == "ver:a|ver:b"
    assert "ver:a" in TrustList.from_text("ver:a") and "ver:b" not in TrustList.from_text("ver:a")
    assert TrustList().verifiers == ("ver:enum",)
    assert TrustList.from_text("").verifiers == ()


@pytest.mark.parametrize("text", ["enum", "ver:", "ver:enum|other", "ver:a b", "dns:x"])
def test_trust_list_bad_entries(text: str) -> None:
    with pytest.raises(TrustError, match="is not a verifier name"):
        TrustList.from_text(text)


# -- toll-free lists -------------------------------------------------------------------------


@pytest.fixture
def reference_table(reference_values: dict[str, str]) -> TollFreeTable:
    return TollFreeTable.from_text(reference_values["enum:tollfree"], "@enum:tollfree")


def test_reference_toll_free_table(reference_table: TollFreeTable) -> None:
    assert reference_table.problems == ()
    assert [e.pattern for e in reference_table.entries] == ["1800\\d{7}", "800\\d{7}"]
    tf1 = reference_table.match("18005550000")
    assert tf1 is not None and tf1.pattern == "1800\\d{7}" and tf1.source == "@enum:tollfree"
    assert [d.regexp for d in tf1.directives] == ["!^(.*)$!sip:\\1@tf1.example.com!"]
    assert reference_table.match("18001112222") is tf1
    tf800 = reference_table.match("8005550000")
    assert tf800 is not None
    assert [(d.service, d.preference) for d in tf800.directives] == [
        ("E2U+sip", 10),
        ("E2U+pstn:tel", 20),
    ]
    # Anchoring: =800\d{7} must match the whole digit string.
    assert reference_table.match("28005550000") is None
    assert reference_table.match("80055500001") is None
    assert reference_table.match("1800555000") is None


def test_comment_rule_and_trailing_blanks() -> None:
    text = (
        "#comment\n =1\n!=2\n+=3\n/=4\n\t=5\n"
        "=1800\\d{7}   \t\n E2U+sip=1|1|!^.*$!sip:skipped@x!\n"
        "E2U+sip=1|1|!^.*$!sip:kept@x!  \r\n"
    )
    table = TollFreeTable.from_text(text, "f")
    (entry,) = table.entries
    assert entry.pattern == "1800\\d{7}"
    assert [d.regexp for d in entry.directives] == ["!^.*$!sip:kept@x!"]
    assert table.problems == ()


def test_first_match_wins_and_sources_join_in_order() -> None:
    a = TollFreeTable.from_text(
        "=1800\\d+\nE2U+sip=1|1|!^.*$!sip:a@x!\n=18\\d+\nE2U+sip=1|1|!^.*$!sip:b@x!", "a"
    )
    b = TollFreeTable.from_text("=\\d+\nE2U+sip=1|1|!^.*$!sip:c@x!", "b")
    joined = TollFreeTable.join([a, b])
    first = joined.match("18001")
    assert first is not None and first.directives[0].regexp.endswith("a@x!")
    second = joined.match("18991")
    assert second is not None and second.directives[0].regexp.endswith("b@x!")
    third = joined.match("4499")
    assert third is not None and third.source == "b"
    assert joined.match("") is None


def test_bad_regex_and_bad_directive_are_reported() -> None:
    text = (
        "=1800(\\d\nE2U+sip=1|1|!^.*$!sip:lost@x!\n"
        "=1888\\d{7}\nnot a directive\nE2U+sip=1|1|!^.*$!sip:ok@x!\n"
    )
    table = TollFreeTable.from_text(text, "tf.txt")
    (entry,) = table.entries
    assert entry.pattern == "1888\\d{7}"
    assert [d.regexp for d in entry.directives] == ["!^.*$!sip:ok@x!"]
    assert len(table.problems) == 2
    assert table.problems[0].startswith("tf.txt:1: bad toll-free regex '1800(\\\\d'")
    assert table.problems[1].startswith("tf.txt:4: not an E2U directive")
    assert table.match("18001234567") is None


def test_directives_before_any_entry_and_a_bare_equals() -> None:
    text = (
        "E2U+sip=1|1|!^.*$!sip:orphan@x!\n=1800\\d{7}\nE2U+sip=1|1|!^.*$!sip:a@x!\n=\n"
        "E2U+sip=1|2|!^.*$!sip:b@x!\n"
    )
    table = TollFreeTable.from_text(text, "s")
    (entry,) = table.entries  # '=' alone opens nothing; its lines stay with =1800...
    assert [d.preference for d in entry.directives] == [1, 2]
    assert table.match("") is None
    assert any("without a regex" in p for p in table.problems)


def test_toll_free_sources() -> None:
    sources = TollFreeSource.parse_list("@enum:tollfree| /etc/enumer/tf.txt ||@other")
    assert [s.location for s in sources] == ["@enum:tollfree", "/etc/enumer/tf.txt", "@other"]
    assert [s.record_name for s in sources] == ["enum:tollfree", None, "other"]
    assert TollFreeSource.parse_list("") == ()
    with pytest.raises(TrustError):
        TollFreeSource.parse_list("@enum:tollfree|@")


def test_signature_cache_known_key_shortcut_gives_verify_message_answers() -> None:
    """After a key matched once, recovered keys are compared byte for byte; the
    answers stay those of crypto.verify_message, also for the uncompressed form
    of the same key and for another signer."""
    from enumer.crypto import PrivateKey, network_by_name, verify_message

    net = network_by_name("mainnet")
    key = PrivateKey.generate()
    address = key.address(net)
    same_key_uncompressed = PrivateKey.from_hex(key.secret_hex(), compressed=False)
    stranger = PrivateKey.generate()
    cache = SignatureCache()
    cases = [
        ("enum:15551230001:0", key.sign_message("enum:15551230001:0")),
        ("enum:15551230002:0", key.sign_message("enum:15551230002:0")),
        ("enum:15551230003:0", same_key_uncompressed.sign_message("enum:15551230003:0")),
        ("enum:15551230004:0", stranger.sign_message("enum:15551230004:0")),
        ("enum:15551230005:0", key.sign_message("enum:15551230006:0")),  # another name
    ]
    got = [cache.verify(name, sig, address) for name, sig in cases]
    assert got == [verify_message(address, sig, name) for name, sig in cases]
    assert got == [True, True, False, False, False]
    assert cache.checks == len(cases)
    assert cache.verify(*cases[1], address) is True and cache.checks == len(cases)  # cached
