"""The one emercoin.conf reader (enumer.conf): bitcoind's rules, each checked on its own.

Each test states a rule on which the two readers it replaced (``config.read_conf``:
last value wins, no ``section.key``, sections ignored without a network;
``nvs.rpc.parse_conf``: no negation, ``section.key`` inside sections) went wrong.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from enumer.conf import ConfigError, EmercoinConf, conf_bool, conf_level, read_emercoin_conf
from enumer.dns.config import GatewayConfig, read_conf
from enumer.nvs.rpc import RpcConfig


def conf(text: str) -> EmercoinConf:
    return EmercoinConf.from_text(text, "test.conf")


def test_comments_blanks_and_the_dash_form() -> None:
    parsed = conf("a=1 # comment\n# whole line\n  -b = 2 \t\n\n")
    assert parsed.values() == {"a": "1", "b": "2"}


def test_the_first_value_of_a_key_counts() -> None:
    parsed = conf("enumtrust=ver:first\nenumtrust=ver:second\n")
    assert parsed.get("enumtrust") == "ver:first"
    assert parsed.values()["enumtrust"] == "ver:first"


def test_multi_valued_keys_keep_every_value_in_order() -> None:
    parsed = conf("addnode=a\naddnode=b\n[main]\naddnode=c\n")
    assert parsed.get_all("addnode") == ["c", "a", "b"]


def test_a_section_applies_to_its_chain_only() -> None:
    text = "enumtrust=ver:all\n[test]\nenumtrust=ver:test\n[regtest]\nemcdnsport=7\n"
    parsed = conf(text)
    assert parsed.get("enumtrust", "mainnet") == "ver:all"
    assert parsed.get("enumtrust", "testnet") == "ver:test"
    assert parsed.get("enumtrust", "regtest") == "ver:all"
    assert parsed.get("emcdnsport", "regtest") == "7"
    assert parsed.get("emcdnsport", "mainnet") is None


def test_the_file_chooses_its_chain_for_its_sections() -> None:
    parsed = conf("testnet=1\n[main]\nenumtrust=ver:main\n[test]\nenumtrust=ver:test\n")
    assert parsed.chain == "test"
    assert parsed.values()["enumtrust"] == "ver:test"
    assert conf("regtest=\n").chain == "regtest"  # an empty boolean is true
    assert conf("chain=regtest\ntestnet=0\n").chain == "regtest"
    assert conf("").chain == "main"


def test_contradicting_chains_and_unknown_ones_are_errors() -> None:
    with pytest.raises(ConfigError, match="different chains"):
        _ = conf("testnet=1\nregtest=1\n").chain
    with pytest.raises(ConfigError, match="unknown chain=moon"):
        _ = conf("chain=moon\n").chain
    with pytest.raises(ConfigError, match="unknown network"):
        conf("").get("rpcport", "moonnet")


def test_section_dot_key_at_the_top_sets_a_section_key() -> None:
    parsed = conf("regtest.enumtrust=ver:reg\nenumtrust=ver:top\n")
    assert parsed.get("enumtrust", "regtest") == "ver:reg"  # the chain's section wins
    assert parsed.get("enumtrust", "mainnet") == "ver:top"
    # Inside a section the dotted key belongs to that section, as in bitcoind: ignored.
    assert conf("[regtest]\nmain.rpcport=8\n").get("rpcport", "mainnet") is None


def test_network_only_keys_at_the_top_are_mainnet_only() -> None:
    parsed = conf("rpcport=9999\nrpcuser=bob\n[test]\nrpcwallet=w\n")
    assert parsed.get("rpcport", "mainnet") == "9999"
    assert parsed.get("rpcport", "testnet") is None
    assert parsed.get("rpcuser", "testnet") == "bob"  # not a network-only key
    assert parsed.get("rpcwallet", "testnet") == "w"


def test_negation() -> None:
    parsed = conf("noemcdnsverbose=1\n-nolisten=\nnoserver=0\n")
    assert parsed.values() == {"emcdnsverbose": "0", "listen": "0", "server": "1"}
    # The first value still counts: a negation after a value does not replace it.
    assert conf("emcdnsverbose=1\nnoemcdnsverbose=1\n").get("emcdnsverbose") == "1"


def test_booleans_and_levels() -> None:
    assert conf_bool("") and conf_bool("1") and conf_bool(" 2x")
    assert not conf_bool("0") and not conf_bool("no")
    assert conf_level("") == 0 and conf_level("3") == 3 and conf_level("x") == 0


def test_empty_emcdnsverbose_is_quiet(tmp_path: Path) -> None:
    """emcdns reads emcdnsverbose as an integer level (atoi): empty is 0."""
    path = tmp_path / "emercoin.conf"
    for text, logged in (
        ("emcdnsverbose=\n", False),
        ("emcdnsverbose=1\n", True),
        ("emcdnsverbose=0\n", False),
        ("noemcdnsverbose=0\n", True),
    ):
        path.write_text(text)
        assert GatewayConfig.build(read_conf(path)).query_log is logged, text


def test_a_line_without_equals_is_an_error_naming_the_line() -> None:
    with pytest.raises(ConfigError, match=r"test.conf:2: expected key=value, got 'oops'"):
        conf("a=1\noops\n")
    with pytest.raises(ConfigError, match="expected key=value"):
        conf("=value\n")


def test_the_file_reader(tmp_path: Path) -> None:
    path = tmp_path / "emercoin.conf"
    path.write_bytes(b"enumtrust=ver:a # caf\xe9\n")
    assert read_emercoin_conf(path).get("enumtrust") == "ver:a"
    with pytest.raises(ConfigError, match="cannot read"):
        read_emercoin_conf(tmp_path / "missing.conf")


def test_gateway_and_node_read_the_same_file_the_same_way(tmp_path: Path) -> None:
    """``serve --conf`` reads the gateway keys and the node's RPC keys from one file."""
    path = tmp_path / "emercoin.conf"
    path.write_text(
        "regtest=1\nrpcpassword=pw\nrpcuser=first\nrpcuser=second\nenumtrust=ver:first\n"
        "enumtrust=ver:second\n[regtest]\nrpcport=7003\nemcdnsallowed=~enum\n"
    )
    gateway = GatewayConfig.build(read_conf(path))
    node = RpcConfig.from_conf(path)
    assert gateway.trust.verifiers == ("ver:first",)
    assert [z.label for z in gateway.zones] == ["enum"] and not gateway.zones[0].verified
    assert (node.chain, node.port, node.user) == ("regtest", 7003, "first")
