"""Bound signatures (SPEC section 11): the vectors of tests/vectors/bound.json, the
digest's properties, the messages, the policies of the resolver."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enumer import bound, crypto
from enumer.bound import BoundLineError, OsigLine, Policy, VsigLine
from enumer.nvs import NameRecord
from enumer.resolver import judge_record
from enumer.trust import SignatureCache, TrustList, Verifier

VECTORS = json.loads((Path(__file__).parent / "vectors" / "bound.json").read_text())


def _record(name: str, value: str, owner: str) -> NameRecord:
    return NameRecord(name, value, owner, "00" * 32, 1, 1, 10**9, 0)


def _verifiers() -> dict[str, Verifier]:
    return {
        name: Verifier.from_record(name, _record(name, v["value"], v["owner"]), crypto.MAINNET)
        for name, v in VECTORS["verifiers"].items()
    }


def _judge(vector: dict[str, Any]) -> bound.BoundVerdict:
    verifiers = _verifiers()

    def verifier(name: str) -> Verifier:
        return verifiers.get(name) or Verifier.from_record(name, None)

    return bound.judge_bound(
        vector["name"],
        vector["owner"],
        vector["value"],
        TrustList.from_text(VECTORS["trust"]),
        verifier,
        vector["srl_records"].get,
        SignatureCache(),
        vector["chain_time"],
        crypto.MAINNET,
        accepted_time=vector["accepted_time"],
        previous_owners=vector["previous_owners"],
    )


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["id"])
def test_vector(vector: dict[str, Any]) -> None:
    verdict = _judge(vector)
    expected = vector["expected"]
    assert verdict.strict is expected["strict"], verdict.reason
    assert [
        {"kind": c.kind, "line": c.line, "status": c.status.value} for c in verdict.checks
    ] == expected["lines"]
    assert expected["reason_contains"] in verdict.reason
    assert bound.directives_digest(vector["value"]) == vector["digest"]


def test_vectors_cover_every_status_and_both_address_kinds() -> None:
    statuses = {line["status"] for v in VECTORS["vectors"] for line in v["expected"]["lines"]} | {
        "SIG= only" for v in VECTORS["vectors"] if not v["expected"]["lines"]
    }
    capped = bound.BoundStatus.NOT_EXAMINED  # the cap has its own test below
    assert statuses >= {s.value for s in bound.BoundStatus if s is not capped} | {"SIG= only"}
    owners = {v["owner"][:3] for v in VECTORS["vectors"]}
    assert "em1" in owners and any(o.startswith("E") for o in owners)
    kinds = {v["owner"][:1] for v in VECTORS["verifiers"].values()}
    assert kinds == {"E", "e"}


@pytest.mark.parametrize("case", VECTORS["digests"], ids=lambda c: repr(c["value"][:20]))
def test_digest_vectors(case: dict[str, str]) -> None:
    assert "\n".join(bound.directive_lines(case["value"])) == case["directives"]
    assert bound.directives_digest(case["value"]) == case["digest"]


def test_strict_vector_fails_when_one_byte_of_a_signature_changes() -> None:
    vector = next(v for v in VECTORS["vectors"] if v["id"] == "strict-p2pkh")
    assert _judge(vector).strict
    for prefix in ("VSIG=", "OSIG="):
        lines = vector["value"].split("\n")
        i = next(n for n, line in enumerate(lines) if line.startswith(prefix))
        body = lines[i]
        flipped = body[:-6] + ("A" if body[-6] != "A" else "B") + body[-5:]
        lines[i] = flipped
        assert not _judge({**vector, "value": "\n".join(lines)}).strict


def test_messages_are_byte_exact() -> None:
    day = dt.date(2027, 6, 1)
    assert (
        bound.vsig_message("enum:18009359935:0", "EWfxoNoHEtujgnnuW2srndEPashHfLGLKm", day)
        == "enumer-vsig:1 enum:18009359935:0 EWfxoNoHEtujgnnuW2srndEPashHfLGLKm 2027-06-01"
    )
    assert bound.osig_message("enum:1:0", 1796119200, "ab" * 32) == (
        "enumer-osig:1 enum:1:0 1796119200 " + "ab" * 32
    )


def test_lines_round_trip_and_refuse_malformed_text() -> None:
    line = VsigLine.from_text("VSIG = ver:acme | 2027-06-01 | QUJD")
    assert line == VsigLine("ver:acme", dt.date(2027, 6, 1), "QUJD")
    assert VsigLine.from_text(line.to_text()) == line
    assert OsigLine.from_text("osig=0|QUJD").time == 0
    for bad in (
        "VSIG=acme|2027-06-01|QUJD",
        "VSIG=ver:acme|2027-6-1|QUJD",
        "VSIG=ver:acme|2027-06-01|",
        "VSIG=ver:acme|2027-06-01|Q U",
        "OSIG=01|QUJD",
        "OSIG=-1|QUJD",
        "OSIG=999999999999|QUJD",
        "OSIG=1|2|QUJD",
    ):
        with pytest.raises(BoundLineError):
            (VsigLine if bad.startswith("V") else OsigLine).from_text(bad)


# -- the digest's properties (hypothesis) --------------------------------------------------

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=30
)
_directive = _text.filter(
    lambda t: t.strip(" \t") != "" and bound.line_key(t.strip(" \t")) not in bound.SIGNATURE_KEYS
)
_sig_line = st.builds(
    lambda key, body, pad: pad + key + pad + "=" + body,
    st.sampled_from(["SIG", "sig", "VSIG", "vSiG", "OSIG", "osig"]),
    _text,
    st.sampled_from(["", " ", "\t "]),
)
_blank = st.sampled_from(["", " ", "\t", " \t "])


@given(
    st.lists(_directive, min_size=1, max_size=6),
    st.lists(st.tuples(st.integers(0, 6), st.one_of(_sig_line, _blank)), max_size=8),
    st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_digest_ignores_signature_and_blank_lines(
    directives: list[str], extra: list[tuple[int, str]], joiner: str
) -> None:
    lines = list(directives)
    for position, line in extra:
        lines.insert(min(position, len(lines)), line)
    assert bound.directives_digest(joiner.join(lines)) == bound.directives_digest(
        "\n".join(directives)
    )


@given(st.lists(_directive, min_size=1, max_size=6), st.data())
def test_digest_changes_with_any_change_of_a_directive(
    directives: list[str], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(directives) - 1))
    replacement = data.draw(_directive)
    changed = list(directives)
    changed[index] = replacement
    before, after = (
        bound.directive_lines("\n".join(directives)),
        bound.directive_lines("\n".join(changed)),
    )
    if before != after:
        assert bound.directives_digest("\n".join(changed)) != bound.directives_digest(
            "\n".join(directives)
        )
    else:  # only blanks around the line changed
        assert directives[index].strip(" \t") == replacement.strip(" \t")


# -- the policies -----------------------------------------------------------------------------


def _policy_verdict(vector_id: str, policy: Policy) -> Any:
    vector = next(v for v in VECTORS["vectors"] if v["id"] == vector_id)
    verifiers = _verifiers()
    return judge_record(
        _record(vector["name"], vector["value"], vector["owner"]),
        TrustList.from_text(VECTORS["trust"]),
        lambda n: verifiers.get(n) or Verifier.from_record(n, None),
        vector["srl_records"].get,
        SignatureCache(),
        policy=policy,
        chain_time=vector["chain_time"],
        network=crypto.MAINNET,
    )


def test_compat_serves_sig_only_and_strict_does_not() -> None:
    compat = _policy_verdict("sig-only", Policy.COMPAT)
    assert compat.verified and compat.reason.startswith("signed by ver:acme")
    strict = _policy_verdict("sig-only", Policy.STRICT)
    assert not strict.verified
    assert strict.reason == "not served in strict mode: SIG= only"


def test_strictly_valid_record_is_served_by_its_vsig_in_both_policies() -> None:
    for policy in Policy:
        verdict = _policy_verdict("strict-p2pkh", policy)
        assert verdict.verified and verdict.strict
        assert verdict.reason == (
            "served by VSIG of ver:acme, valid until 2027-06-01, OSIG of 2026-12-01T09:00Z"
        )
        assert verdict.to_json()["bound"]["strict"] is True


def test_copied_sig_and_vsig_serve_in_compat_only_through_sig() -> None:
    compat = _policy_verdict("copied-to-new-owner", Policy.COMPAT)
    assert compat.verified and not compat.strict
    assert compat.reason.startswith("signed by ver:acme")
    assert "not strictly valid" in compat.reason
    strict = _policy_verdict("copied-to-new-owner", Policy.STRICT)
    assert not strict.verified
    assert strict.reason.startswith("not served in strict mode: VSIG of ver:acme does not verify")


def test_relay_rewrite_is_not_served_in_strict_mode() -> None:
    verdict = _policy_verdict("relay-rewrote-e2u", Policy.STRICT)
    assert not verdict.verified
    assert "OSIG digest does not match the directives" in verdict.reason


# -- owner tools ----------------------------------------------------------------------------


def test_record_check_and_lint_report_stale_missing_and_malformed_bound_lines(
    enumer: Any,
) -> None:
    assert enumer("demo", "seed").returncode == 0
    stale = enumer("record", "check", "enum:15550002002:0")
    assert "bound signatures: error: stale OSIG: OSIG digest does not match" in stale.stdout
    sig_only = enumer("record", "check", "enum:18009359935:0", "--json").json()
    assert sig_only["bound"] and sig_only["bound"][0].startswith("warning: SIG= only")
    strict = enumer("record", "check", "enum:15550002001:0", "--json").json()
    assert strict["bound"] == []
    shown = enumer("name", "show", "enum:15550002002:0", "--json").json()
    lint = enumer(
        "record",
        "lint",
        "--name",
        "enum:15550002002:0",
        "--owner",
        shown["address"],
        shown["value"],
    )
    assert lint.returncode == 1 and "stale OSIG" in lint.stdout
    malformed = enumer(
        "record", "lint", "E2U+sip=100|10|!^.*$!sip:a@b!\nVSIG=ver:x|2027-13-01|QUJD"
    )
    assert malformed.returncode == 1
    assert "line 2: malformed bound line: VSIG not-after '2027-13-01'" in malformed.stdout
    assert "missing OSIG" in malformed.stdout
    # The owner renews the OSIG: the record is strictly valid again, with no new verification.
    assert enumer("record", "seal", "enum:15550002002:0").returncode == 0
    looked = enumer("lookup", "15550002002", "--signatures", "strict", "--json").json()
    assert looked["records"][0]["reason"].startswith("served by VSIG of ver:demo")


def test_record_seal_with_the_key_elsewhere_prints_the_message_and_adds_the_result(
    enumer: Any,
) -> None:
    owner_key = crypto.PrivateKey.generate()
    owner = owner_key.address(crypto.MAINNET).to_text()
    value = "E2U+sip=100|10|!^.*$!sip:x@pbx.example.com!"
    assert enumer("name", "new", "enum:15557770000:0", value, "10", "--to", owner).returncode == 0
    asked = enumer("record", "seal", "enum:15557770000:0")
    assert asked.returncode == 1
    found = re.search(r"signmessage \S+ '([^']*)'", asked.stdout)
    assert found is not None, asked.stdout
    message = found.group(1)
    assert message.startswith("enumer-osig:1 enum:15557770000:0 ")
    assert message.endswith(" " + bound.directives_digest(value))
    when = message.split(" ")[2]
    assert f"--time {when} --signature SIGNATURE" in asked.stdout
    signature = owner_key.sign_message(message)
    wrong = enumer(
        "record",
        "seal",
        "enum:15557770000:0",
        "--time",
        str(int(when) + 1),
        "--signature",
        signature,
    )
    assert wrong.returncode == 1 and wrong.stderr.startswith("error: the signature does not verify")
    # The record is foreign-owned: this wallet cannot write it, the node says so in one line.
    added = enumer("record", "seal", "enum:15557770000:0", "--time", when, "--signature", signature)
    assert added.returncode == 1 and len(added.stderr.splitlines()) == 1


def test_bound_lines_examined_per_record_are_capped() -> None:
    """Forty VSIG lines of a trusted verifier made over other dates each cost a recovery: only
    the first MAX_SIGNATURE_ENTRIES bound lines are examined, the rest are reported."""
    from enumer.records import MAX_SIGNATURE_ENTRIES

    vector = next(v for v in VECTORS["vectors"] if v["id"] == "strict-p2pkh")
    real = next(line for line in vector["value"].split("\n") if line.startswith("VSIG="))
    signature = real.rsplit("|", 1)[1]
    bogus = [f"VSIG=ver:acme|2027-07-{1 + i % 28:02d}|{signature}" for i in range(40)]
    stuffed = dict(vector, value="\n".join([*bogus, vector["value"]]))
    cache = SignatureCache()
    verifiers = _verifiers()
    verdict = bound.judge_bound(
        stuffed["name"],
        stuffed["owner"],
        stuffed["value"],
        TrustList.from_text(VECTORS["trust"]),
        lambda name: verifiers.get(name) or Verifier.from_record(name, None),
        stuffed["srl_records"].get,
        cache,
        stuffed["chain_time"],
        crypto.MAINNET,
    )
    assert cache.checks <= MAX_SIGNATURE_ENTRIES
    skipped = [c for c in verdict.checks if c.status is bound.BoundStatus.NOT_EXAMINED]
    assert len(skipped) == 40 + 2 - MAX_SIGNATURE_ENTRIES
    assert not verdict.strict
    assert _judge(vector).strict  # the same record without the padding is strictly valid
