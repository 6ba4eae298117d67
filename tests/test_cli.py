"""The ``enumer`` console script, run as a real subprocess against a store in a tmp dir."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from enumer import crypto
from tests.conftest import ENUMER_BIN, CliRunner, _clean_env, assert_one_error_line

GOOD_E2U = "E2U+sip=100|10|!^(.*)$!sip:\\1@pbx.example.com!"


def foreign(network: crypto.Network = crypto.MAINNET) -> str:
    """A valid address of ``network`` whose key no store holds."""
    return crypto.PrivateKey.generate().address(network).to_text()


def ok(result_text: str) -> str:
    return result_text.strip()


def show(enumer: CliRunner, name: str) -> dict[str, object]:
    result = enumer("name", "show", name, "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = result.json()
    return data


# -- the store and its network ----------------------------------------------------------------


def test_new_store_defaults_to_mainnet_addresses(enumer: CliRunner, store_dir: Path) -> None:
    legacy = enumer("wallet", "new-address", "--legacy")
    bech32 = enumer("wallet", "new-address")
    assert legacy.returncode == bech32.returncode == 0
    assert legacy.stdout.strip().startswith("E") and bech32.stdout.strip().startswith("em1q")
    assert (store_dir / "ledger.sqlite").exists()
    created = enumer("verifier", "new", "enum")
    assert re.fullmatch(r"ver:enum E\w{33}\n", created.stdout)


def test_wallet_sign_answers_a_challenge_like_signmessage(
    enumer: CliRunner, tmp_path: Path
) -> None:
    """The owner's side of the verifier's challenge: the signature verifies for the address."""
    from enumer.crypto import verify_message

    address = enumer("wallet", "new-address", "--legacy").stdout.strip()
    challenge = "ENUMER verification for ver:x: I own enum:1:0 at " + address + ". Nonce 00"
    signed = enumer("wallet", "sign", address, challenge)
    assert signed.returncode == 0, signed.stderr
    signature = signed.stdout.strip()
    assert verify_message(address, signature, challenge)
    assert not verify_message(address, signature, challenge + "!")
    other = enumer("wallet", "new-address").stdout.strip()
    assert not verify_message(other, signature, challenge)
    # a key the wallet does not hold, and a malformed address: one error line each
    foreign = enumer(
        "--store", str(tmp_path / "other"), "wallet", "new-address", "--legacy", store=None
    ).stdout.strip()
    missing = assert_one_error_line(enumer("wallet", "sign", foreign, "x"))
    assert missing == "error: Private key not available"  # the node's message
    assert "address is invalid" in assert_one_error_line(
        enumer("wallet", "sign", "not-an-address", "x")
    )


def test_regtest_network_option(enumer: CliRunner) -> None:
    first = enumer("--network", "regtest", "wallet", "new-address")
    assert first.returncode == 0 and first.stdout.startswith("emrt1q")
    legacy = enumer("wallet", "new-address", "--legacy")  # the store remembers its network
    assert legacy.stdout[0] in "mn"
    txid = enumer("name", "new", "test:a", "v", "1")
    assert show(enumer, "test:a")["address"].startswith("emrt1q")  # type: ignore[union-attr]
    assert re.fullmatch(r"[0-9a-f]{64}\n", txid.stdout)
    line = assert_one_error_line(enumer("--network", "mainnet", "name", "list"))
    assert "is a regtest store, not mainnet" in line


def test_store_option_works_like_the_environment(enumer: CliRunner, tmp_path: Path) -> None:
    other = tmp_path / "other"
    created = enumer("--store", str(other), "name", "new", "test:x", "in other", "1", store=None)
    assert created.returncode == 0, created.stderr
    assert (other / "ledger.sqlite").exists()
    shown = enumer("--store", str(other), "name", "show", "test:x", "--json", store=None)
    assert shown.json()["value"] == "in other"
    via_env = enumer("name", "show", "test:x", "--json", store=other)
    assert via_env.json()["value"] == "in other"
    # --store wins over ENUMER_STORE.
    assert_one_error_line(enumer("name", "show", "test:x"))
    assert enumer("--store", str(other), "name", "show", "test:x").returncode == 0


def test_python_m_enumer(python_m: CliRunner) -> None:
    result = python_m("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: ")
    for command in ("name", "record", "verifier", "lookup", "demo"):
        assert f"  {command} " in result.stdout
    assert python_m("--version").stdout.startswith("enumer, version ")


def test_no_command_prints_help(enumer: CliRunner) -> None:
    for args in ((), ("name",), ("record",)):
        result = enumer(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert result.stdout.startswith("Usage: enumer") and result.stderr == ""


# -- name ---------------------------------------------------------------------------------------


def test_name_commands(enumer: CliRunner) -> None:
    assert enumer("name", "new", "test:a", "hello", "10").returncode == 0
    text = enumer("name", "show", "test:a")
    assert text.returncode == 0
    assert text.stdout.splitlines()[0] == "name: test:a"
    assert text.stdout.endswith("value:\nhello\n")
    data = show(enumer, "test:a")
    assert list(data) == [
        "name",
        "value",
        "txid",
        "address",
        "vout",
        "expires_in",
        "expires_at",
        "time",
    ]
    assert data["expires_in"] == 10 * 175
    owner = data["address"]
    assert enumer("name", "update", "test:a", "hello again", "5").returncode == 0
    after = show(enumer, "test:a")
    assert after["address"] == owner  # the CLI keeps the owner (the node would move it)
    assert after["value"] == "hello again" and after["expires_at"] == data["expires_at"] + 5 * 175  # type: ignore[operator]
    history = enumer("name", "history", "test:a", "--json").json()
    assert [h["operation"] for h in history] == ["name_new", "name_update"]
    assert history[0]["address_is_mine"] == "true" and history[1]["days_added"] == 5
    plain = enumer("name", "history", "test:a").stdout.splitlines()
    assert len(plain) == 2 and "name_update" in plain[1] and "+5d" in plain[1]
    assert enumer("name", "new", "test:b", "second", "1").returncode == 0
    listed = enumer("name", "list").stdout.splitlines()
    assert [line.split("\t")[0] for line in listed] == ["test:a", "test:b"]
    listed_json = enumer("name", "list", "--json").json()
    assert [e["name"] for e in listed_json] == ["test:a", "test:b"]
    filtered = enumer("name", "filter", "b$", "--json").json()
    assert [e["name"] for e in filtered] == ["test:b"]
    assert enumer("name", "filter").stdout.count("\n") == 2
    deleted = enumer("name", "delete", "test:b")
    assert re.fullmatch(r"[0-9a-f]{64}\n", deleted.stdout)
    gone = show(enumer, "test:b")
    assert (gone["deleted"], gone["value"], gone["expires_at"]) == (True, "", 0)
    assert enumer("name", "filter", "test").stdout.count("\n") == 1
    assert_one_error_line(enumer("name", "history", "test:b"))
    full = enumer("name", "history", "test:b", "--full", "--json").json()
    assert [h["operation"] for h in full] == ["name_new", "name_delete"]


def test_value_from_stdin(enumer: CliRunner) -> None:
    value = "E2U+sip=100|10|!^.*$!sip:a@b!\nSIG=ver:enum|AAAA"
    assert enumer("name", "new", "test:stdin", "-", "1", input=value + "\n").returncode == 0
    assert show(enumer, "test:stdin")["value"] == value
    assert enumer("name", "update", "test:stdin", "-", "0", input="two\n\n").returncode == 0
    assert show(enumer, "test:stdin")["value"] == "two\n"
    # Byte for byte: CR LF line ends are republished as they were written.
    crlf = "E2U+sip=100|10|!^.*$!sip:a@b!\r\nSIG=ver:enum|AAAA"
    assert enumer("name", "update", "test:stdin", "-", "0", input=crlf + "\n").returncode == 0
    assert show(enumer, "test:stdin")["value"] == crlf


def test_value_from_stdin_must_be_utf8(store_dir: Path) -> None:
    proc = subprocess.run(
        [str(ENUMER_BIN), "name", "new", "test:bad", "-", "1"],
        input=b"E2U+sip=1|1|!^.*$!sip:\xff@b!",
        capture_output=True,
        env=_clean_env(store_dir),
        timeout=60,
    )
    assert proc.returncode == 1
    expected = "error: standard input is not UTF-8: invalid start byte at byte 22\n"
    assert proc.stderr.decode() == expected


def test_transfer_to_a_foreign_address(enumer: CliRunner) -> None:
    other = foreign()
    enumer("name", "new", "test:gift", "v", "10")
    assert enumer("name", "update", "test:gift", "yours", "0", "--to", other).returncode == 0
    assert show(enumer, "test:gift")["address"] == other
    (entry,) = enumer("name", "list", "--json").json()
    assert entry["transferred"] is True and entry["address"] == other
    assert "(transferred)" in enumer("name", "list").stdout
    line = assert_one_error_line(enumer("name", "update", "test:gift", "back", "0"))
    assert line == "error: prev name tx is not yours or is not spendable"
    created = enumer("name", "new", "test:direct", "v", "1", "--to", other)
    assert created.returncode == 0 and show(enumer, "test:direct")["address"] == other
    line = assert_one_error_line(enumer("name", "delete", "test:direct"))
    assert line == "error: prev name tx is not yours or is not spendable"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("name", "show", "test:missing"), "error: failed to read from name DB"),
        (("name", "history", "test:missing"), "error: failed to read from name DB"),
        (("name", "new", "test:x", "v", "0"), "error: rental days must be greater than 0."),
        (("name", "new", "test:x", "", "1"), "error: value must not be empty"),
        (
            ("name", "new", "test:x", "v", "1", "--to", "notanaddress"),
            "error: emercoin address is invalid",
        ),
        (("name", "new", "n" * 513, "v", "1"), "error: name is too long."),
        (("name", "new", "test:x", "v" * 20481, "1"), "error: value is too long."),
        (
            ("name", "new", "n" * 513, "v" * 20481, "1"),
            "error: name is too long.; value is too long.",
        ),
        (("name", "delete", "test:missing"), "error: name_delete on an inactive name"),
        (("name", "filter", "("), "error: invalid regular expression '(': missing ): ("),
    ],
)
def test_name_errors_are_one_line(enumer: CliRunner, args: tuple[str, ...], message: str) -> None:
    assert assert_one_error_line(enumer(*args)) == message


def test_update_of_a_missing_or_deleted_name(enumer: CliRunner) -> None:
    assert_one_error_line(enumer("name", "update", "test:missing", "v", "1"))
    enumer("name", "new", "test:d", "v", "1")
    enumer("name", "delete", "test:d")
    line = assert_one_error_line(enumer("name", "update", "test:d", "v", "1"))
    assert line == "error: name_update on an inactive name"


def test_exact_limits_are_accepted(enumer: CliRunner) -> None:
    assert enumer("name", "new", "n" * 512, "v", "1").returncode == 0
    assert enumer("name", "new", "test:big", "-", "1", input="v" * 20480).returncode == 0
    assert len(show(enumer, "test:big")["value"]) == 20480  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "args",
    [
        ("--bogus",),
        ("name", "show"),
        ("name", "new", "a", "b", "ten"),
        ("name", "nope"),
        ("lookup",),
        ("name", "show", "x", "--jsn"),
        ("record", "new", "18009359935"),
        ("--network", "moon", "name", "list"),
    ],
)
def test_bad_usage_exits_2(enumer: CliRunner, args: tuple[str, ...]) -> None:
    assert_one_error_line(enumer(*args), status=2)


# -- record new ---------------------------------------------------------------------------------


def test_record_new_number_forms_take_the_first_free_index(enumer: CliRunner) -> None:
    enumer("--network", "regtest", "verifier", "new", "enum")
    forms = ["+1 (800) 935-9935", "01118009359935", "0018009359935", "18009359935"]
    for index, number in enumerate(forms):
        result = enumer("record", "new", number, "--sip", "sip:office@pbx.example.com")
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"enum:18009359935:{index}\n"
    value = show(enumer, "enum:18009359935:0")["value"]
    assert value.startswith("E2U+sip=100|10|!^.*$!sip:office@pbx.example.com!\nOSIG=")
    enumer("name", "delete", "enum:18009359935:1")
    again = enumer("record", "new", "18009359935", "--e2u", GOOD_E2U, "--no-seal")
    assert again.stdout == "enum:18009359935:1\n"
    assert show(enumer, "enum:18009359935:1")["value"] == GOOD_E2U


def test_record_new_directives(enumer: CliRunner) -> None:
    result = enumer(
        "record",
        "new",
        "18009359935",
        "--e2u",
        GOOD_E2U,
        "--e2u",
        "E2U+voice:sip = 100 | 20 | !^.*$!sip:x@y.example!",
        "--sip",
        "sip:a@b.example",
        "--ttl",
        "600",
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    value, _, osig = show(enumer, "enum:18009359935:0")["value"].rpartition("\n")
    assert value == (
        "TTL=600\nE2U+sip=100|10|!^.*$!sip:a@b.example!\n"
        + GOOD_E2U
        + "\nE2U+voice:sip=100|20|!^.*$!sip:x@y.example!"
    )
    assert re.fullmatch(r"OSIG=[1-9][0-9]*\|[A-Za-z0-9+/]{86}[A-Za-z0-9+/=]{2}", osig)


@pytest.mark.parametrize(
    ("e2u", "fragment"),
    [
        (
            "E2U+sip=100|10|!^.*$!sip:\\1@pbx.example.com!",
            "back-reference \\1 but the pattern has 0 groups",
        ),
        ("E2U+sip=100|10|!^(.*)$!sip:\\1@space example.com!", "blank inside the regexp"),
        ("E2U+sip=100|10|!^(.*)$!sip:\\1@x!\textra", "blank inside the regexp"),
        ("E2U+sip=100|10|1^(.*)$1sip:\\1@x1", "delimiter '1' is a digit"),
        ("E2U+sip=100|10|!^(.*$!sip:\\1@x!", "does not compile"),
        ("E2U+sip=70000|10|!^.*$!sip:a@b!", "order 70000 is over 65535"),
        ("E2U+sip@x=1|10|!^.*$!sip:a@b!", "is not an ENUM service"),
        ("garbage", "not an E2U directive"),
    ],
)
def test_record_new_refuses_bad_directives(enumer: CliRunner, e2u: str, fragment: str) -> None:
    line = assert_one_error_line(enumer("record", "new", "18009359935", "--e2u", e2u))
    assert fragment in line
    assert enumer("name", "list").stdout == ""  # nothing was published


@pytest.mark.parametrize("uri", ["http://x", "sip:a b@c", "office"])
def test_record_new_refuses_bad_sip_uris(enumer: CliRunner, uri: str) -> None:
    assert "--sip" in assert_one_error_line(enumer("record", "new", "18009359935", "--sip", uri))


def test_record_new_warns_over_512_bytes(enumer: CliRunner) -> None:
    args = []
    for i in range(12):
        args += [
            "--e2u",
            f"E2U+sip={100 + i}|10|!^(.*)$!sip:\\1@host{i:02d}.long-domain-name-"
            "for-truncation.example.com!",
        ]
    result = enumer("record", "new", "17779990000", *args)
    assert result.returncode == 0
    assert result.stdout == "enum:17779990000:0\n"
    (warning,) = result.err_lines
    assert warning.startswith("warning: ") and "512 bytes" in warning
    assert show(enumer, "enum:17779990000:0")["value"].count("\n") == 12  # type: ignore  # + OSIG


@pytest.mark.parametrize(
    "number", ["abc", "+1 800 FLOWERS", "1234567890123456", "", "+", "0800123", "+1-800-+9"]
)
def test_malformed_numbers(enumer: CliRunner, number: str) -> None:
    line = assert_one_error_line(enumer("record", "new", number, "--sip", "sip:a@b"))
    assert "phone number" in line
    assert "phone number" in assert_one_error_line(enumer("lookup", number))


def test_unknown_region_is_bad_usage(enumer: CliRunner) -> None:
    line = assert_one_error_line(enumer("lookup", "5551234", "--region", "XX"), status=2)
    assert "--region" in line and "unknown region 'XX'" in line
    national = enumer("lookup", "(202) 555-0100", "--region", "US", "--json")
    assert national.json()["number"] == "12025550100"


# -- verifier ---------------------------------------------------------------------------------


def test_verifier_sign_append_and_lookup(enumer: CliRunner) -> None:
    created = enumer("verifier", "new", "enum").stdout.split()
    assert created[0] == "ver:enum"
    address = created[1]
    assert show(enumer, "ver:enum")["address"] == address
    enumer("record", "new", "18009359935", "--e2u", GOOD_E2U)
    unsigned = enumer("lookup", "18009359935", "--json").json()
    assert unsigned["naptr"] == [] and unsigned["uri"] is None
    assert unsigned["records"][0]["verified"] is False
    assert unsigned["records"][0]["reason"] == "no signature; not strictly valid: no VSIG line"
    signed = enumer("verifier", "sign", "enum", "enum:18009359935:0")
    assert re.fullmatch(
        r"SIG=ver:enum\|[A-Za-z0-9+/]{86}[A-Za-z0-9+/=]{2}\n"
        r"VSIG=ver:enum\|[0-9]{4}-[0-9]{2}-[0-9]{2}\|[A-Za-z0-9+/]{86}[A-Za-z0-9+/=]{2}\n",
        signed.stdout,
    )
    owner = show(enumer, "enum:18009359935:0")["address"]
    sealed = show(enumer, "enum:18009359935:0")["value"]
    appended = enumer("verifier", "sign", "ver:enum", "enum:18009359935:0", "--append")
    assert appended.returncode == 0 and appended.stdout == signed.stdout
    record = show(enumer, "enum:18009359935:0")
    assert record["address"] == owner
    assert record["value"] == sealed + "\n" + signed.stdout.strip()
    looked = enumer("lookup", "18009359935", "--json").json()
    assert looked["number"] == "18009359935"
    (rec,) = looked["records"]
    assert (rec["name"], rec["verified"]) == ("enum:18009359935:0", True)
    assert rec["reason"].startswith("served by VSIG of ver:enum, valid until ")
    assert address in rec["signatures"][0]["detail"]
    assert looked["naptr"] == [
        {
            "order": 100,
            "preference": 10,
            "flags": "u",
            "service": "E2U+sip",
            "regexp": "!^(.*)$!sip:\\1@pbx.example.com!",
            "replacement": ".",
            "ttl": 86400,
        }
    ]
    assert looked["uri"] == "sip:+18009359935@pbx.example.com"
    text = enumer("lookup", "+1 800 935 9935")
    assert text.returncode == 0
    assert "SERVED  enum:18009359935:0" in text.stdout
    assert text.stdout.rstrip().endswith("uri: sip:+18009359935@pbx.example.com")
    # A gateway that does not trust ver:enum serves nothing.
    untrusted = enumer("lookup", "18009359935", "--trust", "ver:other", "--json").json()
    assert untrusted["naptr"] == [] and "not on the trust list" in untrusted["records"][0]["reason"]


def test_verifier_errors(enumer: CliRunner) -> None:
    line = assert_one_error_line(enumer("verifier", "sign", "enum", "enum:18009359935:0"))
    assert "ver:enum does not exist" in line
    enumer("verifier", "new", "enum")
    assert "not an ENUM record name" in assert_one_error_line(
        enumer("verifier", "sign", "enum", "dns:x")
    )
    assert "does not exist" in assert_one_error_line(
        enumer("verifier", "sign", "enum", "enum:18009359935:0", "--append")
    )
    assert "name_new on an unexpired name" in assert_one_error_line(
        enumer("verifier", "new", "enum")
    )
    assert "bad verifier id" in assert_one_error_line(enumer("verifier", "new", "a b"))
    other = foreign()
    enumer("name", "new", "enum:18009359935:0", GOOD_E2U, "10", "--to", other)
    line = assert_one_error_line(
        enumer("verifier", "sign", "enum", "enum:18009359935:0", "--append")
    )
    assert "does not own enum:18009359935:0" in line


def test_verifier_revoke_keeps_the_owner(enumer: CliRunner) -> None:
    enumer("verifier", "new", "enum")
    before = show(enumer, "ver:enum")
    enumer("record", "new", "15550001111", "--e2u", GOOD_E2U)
    enumer("record", "new", "18009359935", "--e2u", GOOD_E2U)
    for name in ("enum:15550001111:0", "enum:18009359935:0"):
        assert enumer("verifier", "sign", "enum", name, "--append").returncode == 0
    assert enumer("lookup", "15550001111", "--json").json()["uri"] is not None
    revoked = enumer("verifier", "revoke", "enum", "enum:15550001111:0")
    assert revoked.returncode == 0
    assert revoked.stdout == "enum:15550001111:0 listed in srl:enum-12\n"
    assert revoked.stderr == "added an SRL line to ver:enum\n"
    after = show(enumer, "ver:enum")
    assert after["address"] == before["address"]
    assert after["value"] == f"{before['value']}\nSRL=5|srl:enum-%02x"
    srl = show(enumer, "srl:enum-12")
    assert srl["address"] == before["address"]
    assert "enum:15550001111:0\n" in srl["value"]  # type: ignore[operator]
    looked = enumer("lookup", "15550001111", "--json").json()
    assert looked["uri"] is None and "revoked by srl:enum-12" in looked["records"][0]["reason"]
    assert enumer("lookup", "18009359935", "--json").json()["uri"] is not None  # same bucket
    again = enumer("verifier", "revoke", "enum", "enum:15550001111:0")
    assert again.stdout == "enum:15550001111:0 already listed in srl:enum-12\n"
    assert again.stderr == ""
    assert show(enumer, "ver:enum")["address"] == before["address"]


def test_moving_a_verifier_needs_force(enumer: CliRunner) -> None:
    enumer("verifier", "new", "enum")
    owner = show(enumer, "ver:enum")["address"]
    other = foreign()
    line = assert_one_error_line(enumer("name", "update", "ver:enum", "moved", "0", "--to", other))
    assert "refusing to move ver:enum" in line and "--force" in line
    assert show(enumer, "ver:enum")["address"] == owner
    assert enumer("name", "update", "ver:enum", "kept", "0").returncode == 0
    assert show(enumer, "ver:enum")["address"] == owner
    forced = enumer("name", "update", "ver:enum", "moved", "0", "--to", other, "--force")
    assert forced.returncode == 0
    assert show(enumer, "ver:enum")["address"] == other


# -- lookup -------------------------------------------------------------------------------------


def test_lookup_toll_free_and_trust_options(enumer: CliRunner, tmp_path: Path) -> None:
    table = "=1800\\d{7}\nE2U+sip=100|10|!^(.*)$!sip:\\1@tf.example.com!\n"
    enumer("name", "new", "enum:tollfree", table, "10")
    plain = enumer("lookup", "18005550000", "--json").json()
    assert plain["naptr"] == [] and plain["tollfree"] is None  # no toll-free source set
    looked = enumer("lookup", "18005550000", "--tollfree", "@enum:tollfree", "--json").json()
    assert looked["tollfree"] == {"source": "@enum:tollfree", "pattern": "1800\\d{7}"}
    assert looked["uri"] == "sip:+18005550000@tf.example.com"
    assert looked["records"] == []
    path = tmp_path / "tf.txt"
    path.write_text(
        "# file\n=1999\\d{7}\nE2U+sip=100|10|!^(.*)$!sip:\\1@file.example!\n"
        "=bad(\nE2U+sip=100|10|!^.*$!sip:x@y!\n"
    )
    text = enumer("lookup", "19991234567", "--tollfree", str(path))
    assert text.returncode == 0 and text.stderr == ""
    assert "toll-free match: =1999\\d{7}" in text.stdout
    assert "toll-free problem:" in text.stdout and "bad toll-free regex 'bad('" in text.stdout
    line = assert_one_error_line(enumer("lookup", "1999", "--tollfree", str(tmp_path / "no")))
    assert "cannot read toll-free file" in line
    line = assert_one_error_line(enumer("lookup", "18005550000", "--trust", "enum"))
    assert "is not a verifier name" in line
    assert_one_error_line(enumer("lookup", "18005550000", "--tollfree", "@"))


def test_lookup_json_shape(enumer: CliRunner) -> None:
    result = enumer("lookup", "18009359935", "--json")
    assert result.returncode == 0
    data = result.json()
    for key in ("number", "records", "naptr", "uri"):
        assert key in data
    assert data["number"] == "18009359935" and data["records"] == [] and data["uri"] is None
    assert "NXDOMAIN" in enumer("lookup", "18009359935").stdout


def test_no_traceback_on_a_broken_store(enumer: CliRunner, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "ledger.sqlite").write_text("this is not a database\n" * 100)
    line = assert_one_error_line(enumer("--store", str(broken), "name", "list"))
    assert "not a usable ENUMER store" in line


# -- issue 11: what a real node showed ---------------------------------------------------------


def test_signed_record_with_only_an_indented_e2u_line_says_not_served(enumer: CliRunner) -> None:
    """emcdns reads a directive only from a line that starts with E2U: lookup must not
    label such a record SERVED while the answer is NXDOMAIN, and the checks warn."""
    indented = " " + GOOD_E2U
    enumer("verifier", "new", "enum")
    assert enumer("name", "new", "enum:18009359935:0", indented, "10").returncode == 0
    assert enumer("verifier", "sign", "enum", "enum:18009359935:0", "--append").returncode == 0
    text = enumer("lookup", "18009359935").stdout
    assert "SERVED" not in text, text
    assert "not served: no E2U line that emcdns would read (line 1 starts with a blank)" in text
    assert "answer: NXDOMAIN" in text
    data = enumer("lookup", "18009359935", "--json").json()
    assert data["records"][0]["verified"] is False and data["naptr"] == []
    lint = enumer("record", "lint", indented)
    assert "warning: line 1: line starts with a blank: emcdns does not read it" in lint.stdout
    check = enumer("record", "check", "enum:18009359935:0")
    assert "warning: line 1 starts with a blank" in check.stdout, check.stdout
    checked = enumer("record", "check", "enum:18009359935:0", "--json").json()
    assert checked["warnings"] == [
        "line 1 starts with a blank: emcdns does not read it as an E2U directive"
    ]


def test_name_list_says_expired_as_name_filter_does(enumer: CliRunner) -> None:
    assert enumer("name", "new", "test:short", "v", "1").returncode == 0
    assert enumer("wallet", "height", "--generate", "200").returncode == 0
    listed = enumer("name", "list").stdout.splitlines()
    assert listed[0].split("\t")[2] == "expired", listed
    assert "expired" in enumer("name", "filter", "short").stdout
    assert enumer("name", "list", "--json").json()[0]["expires_in"] < 0  # the node's number
