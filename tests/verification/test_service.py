"""The verification service on a real ledger: the owner's path, every refusal, the
operator's actions, the chain watcher and the audit log."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from enumer import crypto
from enumer.nvs import RPC_WALLET_ERROR, NvsError
from enumer.nvs.ledger import Ledger
from enumer.verification.calls import CallOutcome
from enumer.verification.model import RateLimit, State, VerificationError, code_digest
from enumer.verification.service import NO_TRUNK, Request, VerificationService
from enumer.verifier import update_keeping_owner
from tests.verification.conftest import (
    E2U,
    NAME,
    NUMBER,
    Clock,
    MakeRecord,
    MakeService,
    RecordingCaller,
    owner_signature,
)

CLIENT = "198.51.100.7"
OTHER_CLIENT = "203.0.113.9"
FOREIGN = "mrtBxwpW2PV9FxhrC29Tpzo7zyjLQw4pqD"  # a regtest address the wallet has no key for
ENUMER_BIN = Path(sys.executable).with_name("enumer")


@contextmanager
def refused(status: int, match: str) -> Iterator[None]:
    """The block must raise a VerificationError with this status and message."""
    with pytest.raises(VerificationError, match=match) as info:
        yield
    assert info.value.status == status, (info.value.status, str(info.value))
    assert "\n" not in str(info.value)


def proved(
    svc: VerificationService, ledger: Ledger, name: str = NAME, client: str = CLIENT
) -> Request:
    request = svc.start(name, client)
    return svc.prove_owner(request.id, owner_signature(ledger, request), client)


def signed(
    svc: VerificationService,
    ledger: Ledger,
    caller: RecordingCaller,
    name: str = NAME,
    client: str = CLIENT,
) -> Request:
    request = proved(svc, ledger, name, client)
    svc.send_code(request.id, client)
    return svc.submit_code(request.id, caller.last_code, client)


def activated(
    svc: VerificationService,
    ledger: Ledger,
    caller: RecordingCaller,
    name: str = NAME,
) -> Request:
    """Signed, and the owner published the value with the SIG line."""
    request = signed(svc, ledger, caller, name)
    update_keeping_owner(ledger, name, svc.publish_commands(request.id)["value"], 0)
    active = svc.mark_published(request.id, CLIENT)
    assert active.state is State.ACTIVE
    return active


def actions(svc: VerificationService, request_id: int) -> list[str]:
    return [e.action for e in reversed(svc.audit(request_id=request_id))]


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


# -- the owner's path ----------------------------------------------------------------------


def test_owner_path_from_unsigned_record_to_active(
    service: VerificationService,
    ledger: Ledger,
    caller: RecordingCaller,
    record: tuple[str, str],
    verifier_address: str,
    clock: Clock,
) -> None:
    name, owner = record
    infos = service.find_records("+1 555 123 4567")
    assert [i.name for i in infos] == [name]
    info = infos[0]
    assert (info.owner, info.digits, info.value, info.active) == (owner, NUMBER, E2U, True)
    assert info.lint.ok and not info.signed_by_us and info.requests == ()
    assert service.find_records("15551234567")[0].name == name
    assert service.find_records(f"  {name} ")[0].name == name

    request = service.start(name, CLIENT)
    assert request.state is State.AWAITING_OWNER_PROOF
    assert (request.name, request.digits, request.owner, request.client) == (
        name,
        NUMBER,
        owner,
        CLIENT,
    )
    for part in ("ver:test", name, owner):
        assert part in request.challenge
    assert service.by_token(request.token) == request
    assert service.find_records(name)[0].requests == (request,)

    request = service.prove_owner(request.id, owner_signature(ledger, request), CLIENT)
    assert request.state is State.AWAITING_CODE

    clock.advance(5)
    request = service.send_code(request.id, CLIENT)
    code = caller.last_code
    assert caller.calls == [(NUMBER, code)] and len(code) == 4 and code.isdigit()
    assert (request.calls_made, request.attempts_left) == (1, 5)
    assert request.code_expires == clock.now + 600
    raw = sqlite3.connect(service.db_path)
    digest = raw.execute("SELECT code_digest FROM requests WHERE id=?", (request.id,)).fetchone()
    # The keyed digest, not the code (4 digits may well occur inside 64 hex characters).
    assert digest[0] == code_digest(service.db.secret, request.id, code)

    request = service.submit_code(request.id, f" {code} ", CLIENT)
    assert request.state is State.SIGNED
    assert request.signature is not None and request.signed_at == clock.now
    sig, vsig = request.sig_line.split("\n")
    assert sig == f"SIG=ver:test|{request.signature}"
    assert crypto.verify_message(verifier_address, request.signature, name, network=crypto.REGTEST)
    # The VSIG binds the name to its owner until the re-verification date (SPEC 11).
    not_after = (dt.datetime.fromtimestamp(clock.now, dt.UTC) + dt.timedelta(days=182)).date()
    assert vsig.startswith(f"VSIG=ver:test|{not_after.isoformat()}|")
    owner = ledger.show(name).address
    assert crypto.verify_message(
        verifier_address,
        vsig.rpartition("|")[2],
        f"enumer-vsig:1 {name} {owner} {not_after.isoformat()}",
        network=crypto.REGTEST,
    )
    end = dt.datetime.combine(not_after + dt.timedelta(days=1), dt.time(), dt.UTC)
    assert request.reverify_due == end.timestamp()  # the due list follows not-after
    assert not service.find_records(name)[0].signed_by_us, "not on the chain yet"

    commands = service.publish_commands(request.id)
    assert commands["value"] == f"{E2U}\n{request.sig_line}"
    assert commands["sig_line"] == request.sig_line
    request = service.mark_published(request.id, CLIENT)
    assert request.state is State.WAITING_FOR_CHAIN
    assert service.mark_published(request.id, CLIENT) == request, "a double click is harmless"
    assert service.poll_chain() == []

    # The owner appends the line with their wallet; the chain watcher notices.
    update_keeping_owner(ledger, name, commands["value"], 0)
    clock.advance(10)
    changed = service.poll_chain()
    assert [(r.id, r.state) for r in changed] == [(request.id, State.ACTIVE)]
    assert changed[0].active_at == clock.now
    assert ledger.show(name).address == owner
    assert service.find_records(name)[0].signed_by_us

    looked = service.lookup("+1 555 123 4567")
    assert looked["records"][0]["verified"] is True
    assert looked["records"][0]["signatures"][0]["status"] == "valid"
    assert looked["uri"] == f"sip:+{NUMBER}@pbx.example.com"

    assert actions(service, request.id) == [
        "request.created",
        "owner.proved",
        "code.sent",
        "request.signed",
        "request.published",
        "request.active",
    ]
    assert service.verify_audit_chain()
    entries = service.export_audit()
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    dumped = json.dumps([e.to_json() for e in entries])
    assert f'"{code}"' not in dumped, "the code is never logged"
    sent = next(e for e in entries if e.action == "code.sent")
    assert sent.actor == f"owner@{CLIENT}" and sent.detail["method"] == "test-call"
    digest = raw.execute("SELECT code_digest FROM requests WHERE id=?", (request.id,)).fetchone()
    assert digest[0] is None, "a used code is forgotten"
    raw.close()

    data = json.loads(json.dumps(service.get(request.id).to_json()))
    assert data["state"] == "active" and data["token"] is None  # the file keeps its hash only
    assert data["signed_at"] == pytest.approx(request.signed_at)
    public = service.find_records(name)[0].to_json()
    assert public["requests"][0]["state"] == "active"
    assert "token" not in public["requests"][0] and "client" not in public["requests"][0]
    lint = json.loads(json.dumps(public))["lint"]
    # Published SIG= and VSIG=: the record page tells the owner to seal it (SPEC 11).
    assert lint["ok"] is True
    assert [i["message"] for i in lint["issues"]] == [
        "missing OSIG: strict gateways do not serve the record (add it with "
        f"'enumer record seal {public['name']}')"
    ]


def test_find_records_refusals(service: VerificationService, record: tuple[str, str]) -> None:
    with refused(400, "national number: write it with \\+ and the country code"):
        service.find_records("030 1234567")
    with refused(400, "contains the letter"):
        service.find_records("+1 555 CALL NOW")
    with refused(400, "not an ENUM record name"):
        service.find_records("enum:abc:0")
    with refused(400, "enter an ENUM record name or a phone number"):
        service.find_records("   ")
    with refused(404, "no ENUM record for \\+4930123456"):
        service.find_records("+49 30 123456")
    with refused(404, "no ENUM record enum:15551234567:1"):
        service.find_records("enum:15551234567:1")


def test_start_refusals(
    service: VerificationService, ledger: Ledger, make_record: MakeRecord
) -> None:
    with refused(404, "no ENUM record enum:15550000000:0"):
        service.start("enum:15550000000:0", CLIENT)
    with refused(400, "not an ENUM record name"):
        service.start("15551234567", CLIENT)
    name, _ = make_record("15550009999", days=1)
    ledger.generate(176)
    with refused(409, "is not active"):
        service.start(name, CLIENT)
    deleted, _ = make_record("15550008888")
    ledger.name_delete(deleted)
    with refused(404, "no ENUM record"):
        service.start(deleted, CLIENT)
    assert service.list_requests() == []


def test_a_new_request_supersedes_the_clients_unproven_one(
    make_service: MakeService, make_record: MakeRecord, clock: Clock, ledger: Ledger
) -> None:
    svc = make_service(per_client=RateLimit(3, 600))
    name, _ = make_record()
    first = svc.start(name, CLIENT)
    stranger = svc.start(name, OTHER_CLIENT)
    again = svc.start(name, CLIENT)  # a reloaded form, or a neighbour behind the same NAT
    assert again.id not in (first.id, stranger.id), "never an existing request's token"
    assert again.token not in (first.token, stranger.token)
    old = svc.get(first.id)
    assert old.state is State.EXPIRED and old.reason == f"superseded by request #{again.id}"
    with refused(409, "the request is expired; it takes no ownership proof"):
        svc.prove_owner(first.id, owner_signature(ledger, first), CLIENT)
    assert svc.get(stranger.id).state is State.AWAITING_OWNER_PROOF  # another client's
    assert svc.audit(request_id=first.id)[0].action == "request.expired"
    second, _ = make_record(index=1)
    third, _ = make_record(index=2)
    svc.start(second, CLIENT)
    with refused(429, "too many attempts from your address; try again in 10 minutes"):
        svc.start(third, CLIENT)
    svc.start(third, OTHER_CLIENT)
    clock.advance(601)
    assert svc.start(third, CLIENT).client == CLIENT


def test_proof_refusals(
    service: VerificationService, ledger: Ledger, record: tuple[str, str]
) -> None:
    name, owner = record
    request = service.start(name, CLIENT)
    with refused(400, "malformed base64 signature"):
        service.prove_owner(request.id, "not base64!", CLIENT)
    with refused(400, "paste the signature"):
        service.prove_owner(request.id, "  \n", CLIENT)
    stranger = ledger.get_new_address()
    with refused(403, f"the signature does not prove ownership of {owner}"):
        service.prove_owner(request.id, ledger.sign_message(stranger, request.challenge), CLIENT)
    with refused(403, "does not prove ownership"):
        service.prove_owner(request.id, ledger.sign_message(owner, request.challenge + "."), CLIENT)
    assert service.get(request.id).state is State.AWAITING_OWNER_PROOF
    assert actions(service, request.id).count("owner.proof_failed") == 2
    with refused(404, "no request #999"):
        service.prove_owner(999, owner_signature(ledger, request), CLIENT)

    # A signature pasted with line breaks still counts.
    signature = owner_signature(ledger, request)
    wrapped = signature[:40] + "\n" + signature[40:]
    assert service.prove_owner(request.id, wrapped, CLIENT).state is State.AWAITING_CODE
    with refused(409, "it takes no ownership proof"):
        service.prove_owner(request.id, signature, CLIENT)


def test_expired_challenge(
    service: VerificationService, ledger: Ledger, record: tuple[str, str], clock: Clock
) -> None:
    request = service.start(record[0], CLIENT)
    clock.advance(3600)
    with refused(410, "the challenge has expired"):
        service.prove_owner(request.id, owner_signature(ledger, request), CLIENT)
    expired = service.get(request.id)
    assert expired.state is State.EXPIRED and "in time" in expired.reason
    assert service.audit(request_id=request.id)[0].actor == "system"
    with refused(409, "the request is expired"):
        service.prove_owner(request.id, owner_signature(ledger, request), CLIENT)


def test_owner_change_during_the_request(
    service: VerificationService, ledger: Ledger, record: tuple[str, str], caller: RecordingCaller
) -> None:
    name, _ = record
    request = service.start(name, CLIENT)
    ledger.name_update(name, E2U, 0, ledger.get_new_address())
    with refused(409, "the record changed owner since the request started"):
        service.prove_owner(request.id, owner_signature(ledger, request), CLIENT)

    # The new owner proves and gets a code, then moves the name before entering it.
    request = proved(service, ledger, name)
    service.send_code(request.id, CLIENT)
    ledger.name_update(name, E2U, 0, ledger.get_new_address())
    with refused(409, "changed owner"):
        service.submit_code(request.id, caller.last_code, CLIENT)
    assert service.get(request.id).state is State.AWAITING_CODE


def test_proof_attempts_count_against_the_client(
    make_service: MakeService, ledger: Ledger, record: tuple[str, str]
) -> None:
    svc = make_service(per_client=RateLimit(2, 3600))
    request = svc.start(record[0], CLIENT)
    with refused(403, "does not prove"):
        svc.prove_owner(request.id, ledger.sign_message(ledger.get_new_address(), "x"), CLIENT)
    with refused(429, "too many attempts from your address"):
        svc.prove_owner(request.id, owner_signature(ledger, request), CLIENT)


# -- the call --------------------------------------------------------------------------------


def test_no_call_before_the_ownership_proof(
    service: VerificationService, record: tuple[str, str], caller: RecordingCaller
) -> None:
    request = service.start(record[0], CLIENT)
    with refused(403, "prove record ownership first"):
        service.send_code(request.id, CLIENT)
    assert caller.calls == []


def test_destination_lists(
    make_service: MakeService,
    ledger: Ledger,
    make_record: MakeRecord,
    caller: RecordingCaller,
) -> None:
    svc = make_service()
    premium, _ = make_record("19005550123")
    request = proved(svc, ledger, premium)
    with refused(403, "\\+1900\\.\\.\\. is a premium-rate or high-risk prefix"):
        svc.send_code(request.id, CLIENT)
    svc.close()
    only_uk = make_service(allow_prefixes=("44",))
    request = proved(only_uk, ledger, make_record()[0])
    with refused(403, "not in its allow-list"):
        only_uk.send_code(request.id, CLIENT)
    assert caller.calls == []


def test_calls_per_request(
    make_service: MakeService, ledger: Ledger, record: tuple[str, str], caller: RecordingCaller
) -> None:
    svc = make_service(calls_per_request=2)
    request = proved(svc, ledger, record[0])
    svc.send_code(request.id, CLIENT)
    assert svc.send_code(request.id, CLIENT).calls_made == 2
    with refused(429, "this request already had 2 calls"):
        svc.send_code(request.id, CLIENT)
    assert len(caller.calls) == 2
    # The second call's code replaced the first (unless both happened to be equal).
    stale = caller.calls[0][1]
    if stale != caller.last_code:
        with refused(403, "wrong code"):
            svc.submit_code(request.id, stale, CLIENT)
    assert svc.submit_code(request.id, caller.last_code, CLIENT).state is State.SIGNED


def test_per_number_and_per_prefix_limits(
    make_service: MakeService,
    ledger: Ledger,
    make_record: MakeRecord,
    caller: RecordingCaller,
    clock: Clock,
) -> None:
    svc = make_service(per_number=RateLimit(1, 3600), per_prefix=RateLimit(2, 3600))
    first = proved(svc, ledger, make_record(NUMBER)[0], CLIENT)
    svc.send_code(first.id, CLIENT)
    # Another record of the same number, started by someone else: the number is spared.
    second = proved(svc, ledger, make_record(NUMBER, index=1)[0], OTHER_CLIENT)
    with refused(429, "too many calls to \\+15551234567; try again in 60 minutes"):
        svc.send_code(second.id, OTHER_CLIENT)
    third = proved(svc, ledger, make_record("15551230000")[0], OTHER_CLIENT)
    svc.send_code(third.id, OTHER_CLIENT)
    fourth = proved(svc, ledger, make_record("15551239999")[0], OTHER_CLIENT)
    with refused(429, "too many calls to numbers starting \\+15551"):
        svc.send_code(fourth.id, OTHER_CLIENT)
    assert [digits for digits, _ in caller.calls] == [NUMBER, "15551230000"]
    clock.advance(3600)
    assert svc.send_code(second.id, OTHER_CLIENT).calls_made == 1


def test_calls_count_against_the_client(
    make_service: MakeService, ledger: Ledger, record: tuple[str, str]
) -> None:
    svc = make_service(per_client=RateLimit(3, 3600))
    request = proved(svc, ledger, record[0])  # start and proof: 2 events
    svc.send_code(request.id, CLIENT)
    with refused(429, "too many attempts from your address"):
        svc.send_code(request.id, CLIENT)


def test_a_failed_call(
    service: VerificationService, ledger: Ledger, record: tuple[str, str], caller: RecordingCaller
) -> None:
    caller.outcome = CallOutcome(False, "486 Busy Here")
    request = proved(service, ledger, record[0])
    with pytest.raises(VerificationError, match="the call did not reach \\+15551234567; ") as info:
        service.send_code(request.id, CLIENT)
    # What the trunk said is for the operators (console, log), not the owner's message.
    assert info.value.status == 502 and info.value.detail == "486 Busy Here"
    assert "486" not in str(info.value)
    after = service.get(request.id)
    assert (after.state, after.calls_made, after.code_expires) == (State.AWAITING_CODE, 0, None)
    failed = service.audit(request_id=request.id)[0]
    assert failed.action == "code.failed" and failed.detail["outcome"] == "486 Busy Here"
    assert caller.last_code not in json.dumps(failed.detail)
    with refused(409, "no code has been sent yet"):
        service.submit_code(request.id, caller.last_code, CLIENT)


def test_a_caller_that_raises_is_a_failed_call(
    service: VerificationService, ledger: Ledger, record: tuple[str, str], caller: RecordingCaller
) -> None:
    def explode(digits: str, code: str) -> CallOutcome:
        raise OSError("network unreachable")

    caller.place = explode  # type: ignore[method-assign]
    request = proved(service, ledger, record[0])
    with pytest.raises(VerificationError, match="the call did not reach") as info:
        service.send_code(request.id, CLIENT)
    assert info.value.status == 502 and "network unreachable" in info.value.detail
    # The reservation is released: the next try calls again.
    with refused(502, "did not reach"):
        service.send_code(request.id, CLIENT)


def test_without_a_trunk(
    make_service: MakeService, ledger: Ledger, record: tuple[str, str]
) -> None:
    svc = make_service(no_caller=True)
    request = svc.start(record[0], CLIENT)
    with refused(403, "prove record ownership first"):
        svc.send_code(request.id, CLIENT)
    request = svc.prove_owner(request.id, owner_signature(ledger, request), CLIENT)
    with refused(503, NO_TRUNK):
        svc.send_code(request.id, CLIENT)
    approved = svc.approve(request.id, "alice", "called the number by hand")
    assert approved.state is State.SIGNED


def test_two_concurrent_calls_ring_once(
    service: VerificationService, ledger: Ledger, record: tuple[str, str], caller: RecordingCaller
) -> None:
    caller.gate = threading.Event()
    request = proved(service, ledger, record[0])
    results: dict[str, Any] = {}

    def first() -> None:
        results["first"] = service.send_code(request.id, CLIENT)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert caller.entered.wait(5)
        with refused(409, "already on its way"):
            service.send_code(request.id, CLIENT)
        # The service is not locked while the phone rings.
        assert service.get(request.id).state is State.AWAITING_CODE
        assert service.start(record[0], OTHER_CLIENT).id != request.id
    finally:
        caller.gate.set()
        thread.join(10)
    assert len(caller.calls) == 1
    assert results["first"].calls_made == 1


# -- the code --------------------------------------------------------------------------------


def test_wrong_codes_void_the_code(
    service: VerificationService, ledger: Ledger, record: tuple[str, str], caller: RecordingCaller
) -> None:
    request = proved(service, ledger, record[0])
    with refused(409, "no code has been sent yet"):
        service.submit_code(request.id, "1234", CLIENT)
    service.send_code(request.id, CLIENT)
    code = caller.last_code
    wrong = other_code(code)
    with refused(400, "the code is 4 digits"):
        service.submit_code(request.id, "12a4", CLIENT)
    with refused(400, "the code is 4 digits"):
        service.submit_code(request.id, "123", CLIENT)
    assert service.get(request.id).attempts_left == 5, "a malformed entry costs no attempt"
    for left in (4, 3, 2):
        with refused(403, f"wrong code, {left} attempts left"):
            service.submit_code(request.id, wrong, CLIENT)
    with refused(403, "wrong code, 1 attempt left"):
        service.submit_code(request.id, wrong, CLIENT)
    with refused(403, "too many wrong codes; ask for a new call"):
        service.submit_code(request.id, wrong, CLIENT)
    with refused(403, "too many wrong codes; ask for a new call"):
        service.submit_code(request.id, code, CLIENT)
    assert actions(service, request.id).count("code.wrong") == 5

    # A new call brings a new code and fresh attempts.
    service.send_code(request.id, CLIENT)
    assert service.get(request.id).attempts_left == 5
    done = service.submit_code(request.id, caller.last_code, CLIENT)
    assert done.state is State.SIGNED
    with refused(409, "the request is signed; it takes no code"):
        service.submit_code(request.id, caller.last_code, CLIENT)


def test_expired_code(
    service: VerificationService,
    ledger: Ledger,
    record: tuple[str, str],
    caller: RecordingCaller,
    clock: Clock,
) -> None:
    request = proved(service, ledger, record[0])
    service.send_code(request.id, CLIENT)
    clock.advance(600)
    with refused(410, "the code has expired; ask for a new call"):
        service.submit_code(request.id, caller.last_code, CLIENT)


def test_codes_are_bound_to_their_request(
    service: VerificationService,
    ledger: Ledger,
    make_record: MakeRecord,
    caller: RecordingCaller,
) -> None:
    one = proved(service, ledger, make_record()[0])
    two = proved(service, ledger, make_record("15557654321")[0])
    service.send_code(one.id, CLIENT)
    first_code = caller.last_code
    service.send_code(two.id, CLIENT)
    if first_code != caller.last_code:
        with refused(403, "wrong code"):
            service.submit_code(two.id, first_code, CLIENT)
    assert service.submit_code(one.id, first_code, CLIENT).state is State.SIGNED


# -- publishing ------------------------------------------------------------------------------


def test_publish_commands_keep_the_value_and_work(
    service: VerificationService,
    ledger: Ledger,
    make_record: MakeRecord,
    caller: RecordingCaller,
    tmp_path: Path,
) -> None:
    value = f"TTL=600\n{E2U}\n# it's the owner's note: $HOME `id` \\ \"quoted\" !x"
    name, owner = make_record(value=value)
    request = proved(service, ledger, name)
    with refused(409, "not signed"):
        service.publish_commands(request.id)
    service.send_code(request.id, CLIENT)
    request = service.submit_code(request.id, caller.last_code, CLIENT)
    commands = service.publish_commands(request.id)
    assert commands["value"] == f"{value}\n{request.sig_line}"

    # The emercoin-cli command passes exactly the value, and the owner as to-address.
    shown = subprocess.run(
        [
            "bash",
            "-c",
            'emercoin-cli() { printf \'%s\\n%s\\n%s\' "$2" "$4" "$5"; }\n'
            + commands["emercoin"]
            + "\nprintf '\\n%s' \"$?\"",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown == f"{name}\n0\n{owner}\n0"
    value_only = subprocess.run(
        ["bash", "-c", "emercoin-cli() { printf '%s' \"$3\"; }\n" + commands["emercoin"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert value_only == commands["value"]

    # The enumer command, run as the owner would, writes it; the watcher promotes it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENUMER_")}
    env["ENUMER_STORE"] = str(ledger.path)
    env["PATH"] = f"{ENUMER_BIN.parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-c", commands["enumer"]], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    record = ledger.show(name)
    assert (record.value, record.address) == (commands["value"], owner)
    changed = service.poll_chain()
    assert [(r.id, r.state) for r in changed] == [(request.id, State.ACTIVE)]
    # A value that already carries the line is not extended again.
    assert service.publish_commands(request.id)["value"] == commands["value"]


def test_emercoin_quoting_of_control_characters(
    service: VerificationService,
    ledger: Ledger,
    make_record: MakeRecord,
    caller: RecordingCaller,
) -> None:
    value = f"TTL=60\r\n{E2U}\r\n\tnote 'x'\x01"
    name, _ = make_record(value=value)
    request = signed(service, ledger, caller, name)
    commands = service.publish_commands(request.id)
    assert "\n" not in commands["emercoin"] and "\r" not in commands["emercoin"]
    out = subprocess.run(
        ["bash", "-c", "emercoin-cli() { printf '%s' \"$3\"; }\n" + commands["emercoin"]],
        capture_output=True,
        check=True,
    ).stdout
    assert out.decode() == commands["value"] == f"{value}\n{request.sig_line}"


# -- lookup ----------------------------------------------------------------------------------


def test_lookup_gives_the_facts_of_enumer_lookup(
    make_service: MakeService,
    ledger: Ledger,
    record: tuple[str, str],
    caller: RecordingCaller,
    make_record: MakeRecord,
) -> None:
    svc = make_service(trust="ver:test|ver:other")
    activated(svc, ledger, caller)
    lapsed, _ = make_record(index=1, days=1)
    ledger.generate(176)  # lapses :1 (and keeps :0, rented for a year)
    data = svc.lookup("+1 (555) 123-4567")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENUMER_")}
    cli = subprocess.run(
        [
            str(ENUMER_BIN),
            "--store",
            str(ledger.path),
            "lookup",
            "+15551234567",
            "--trust",
            "ver:test|ver:other",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    expected = json.loads(cli.stdout)
    assert {key: data[key] for key in expected} == expected
    assert data["uri"] == f"sip:+{NUMBER}@pbx.example.com"
    assert data["trust"] == "ver:test|ver:other"
    assert data["inactive"] == [
        {
            "name": lapsed,
            "owner": ledger.show(lapsed).address,
            "state": "expired",
            "expires_at": ledger.show(lapsed).expires_at,
        }
    ]
    with refused(400, "national number"):
        svc.lookup("0301234567")
    nothing = svc.lookup("+4930123456")
    assert (nothing["records"], nothing["uri"], nothing["tollfree"]) == ([], None, None)


def test_lookup_trusts_only_its_verifier_by_default(
    service: VerificationService,
    ledger: Ledger,
    make_record: MakeRecord,
) -> None:
    from enumer.records import EnumValue, Signature
    from enumer.verifier import create_verifier, sign_name

    create_verifier(ledger, "other", "another verifier", 10)
    name = "enum:15550001111:0"
    value = EnumValue.from_text(E2U).with_signature(
        Signature("ver:other", sign_name(ledger, "other", name))
    )
    ledger.name_new(name, value.to_text(), 10, ledger.get_new_address())
    data = service.lookup("+15550001111")
    assert data["records"][0]["verified"] is False
    assert data["records"][0]["signatures"][0]["status"] == "untrusted verifier"
    assert data["uri"] is None


def test_lookup_toll_free(make_service: MakeService, ledger: Ledger) -> None:
    ledger.name_new(
        "enum:tollfree", "=1800555\\d{4}\nE2U+sip=100|10|!^(.*)$!sip:\\1@tf.example.net!\n", 10
    )
    svc = make_service(tollfree="@enum:tollfree")
    data = svc.lookup("+18005550000")
    assert data["tollfree"] == {"source": "@enum:tollfree", "pattern": "1800555\\d{4}"}
    assert data["uri"] == "sip:+18005550000@tf.example.net"
    missing = make_service(tollfree="/nonexistent/tollfree.txt", path=svc.db.path)
    with refused(503, "cannot read toll-free file"):
        missing.lookup("+18005550000")


# -- the chain watcher -----------------------------------------------------------------------


def test_poll_chain_expires_stale_requests(
    make_service: MakeService,
    ledger: Ledger,
    make_record: MakeRecord,
    caller: RecordingCaller,
    clock: Clock,
) -> None:
    svc = make_service(challenge_ttl=100, signed_ttl=1000)
    waiting_proof = svc.start(make_record("15550000001")[0], CLIENT)
    no_code = proved(svc, ledger, make_record("15550000002")[0])
    live_code = proved(svc, ledger, make_record("15550000003")[0])
    svc.send_code(live_code.id, CLIENT)  # valid for 600 s
    unpublished = signed(svc, ledger, caller, make_record("15550000004")[0])
    assert svc.poll_chain() == []
    clock.advance(100)
    changed = {r.id: r for r in svc.poll_chain()}
    assert set(changed) == {waiting_proof.id, no_code.id}
    assert all(r.state is State.EXPIRED and r.reason for r in changed.values())
    clock.advance(900)
    changed = {r.id: r for r in svc.poll_chain()}
    assert set(changed) == {live_code.id, unpublished.id}
    assert "did not reach the chain" in changed[unpublished.id].reason
    expiries = [e for e in svc.audit() if e.action == "request.expired"]
    assert len(expiries) == 4 and {e.actor for e in expiries} == {"system"}
    assert svc.verify_audit_chain()


def test_a_new_verification_supersedes_the_old_one(
    service: VerificationService, ledger: Ledger, record: tuple[str, str], caller: RecordingCaller
) -> None:
    old = activated(service, ledger, caller)
    # Re-verification: the same name, signed again; the SIG line is already there.
    new = signed(service, ledger, caller, client=OTHER_CLIENT)
    changed = service.poll_chain()
    assert {(r.id, r.state) for r in changed} == {
        (new.id, State.ACTIVE),
        (old.id, State.EXPIRED),
    }
    assert service.get(old.id).reason == f"superseded by request #{new.id}"


# -- the operator ----------------------------------------------------------------------------


def test_approve_and_reject(
    service: VerificationService, ledger: Ledger, make_record: MakeRecord
) -> None:
    request = service.start(make_record()[0], CLIENT)
    with refused(400, "a reason is required"):
        service.approve(request.id, "alice", "   ")
    with refused(400, "over 2000 characters"):
        service.approve(request.id, "alice", "x" * 2001)
    with refused(409, "has not proved record ownership"):
        service.approve(request.id, "alice", "looks fine")
    request = service.prove_owner(request.id, owner_signature(ledger, request), CLIENT)
    approved = service.approve(request.id, "alice", "the hotline cannot take calls")
    assert approved.state is State.SIGNED and approved.reason == "the hotline cannot take calls"
    entry = service.audit(request_id=request.id)[0]
    assert (entry.actor, entry.action) == ("operator:alice", "request.approved")
    assert entry.detail["reason"] == "the hotline cannot take calls"
    with refused(409, "only a request awaiting its call code can be approved"):
        service.approve(request.id, "alice", "again")
    with refused(409, "the request is signed; it cannot become rejected"):
        service.reject(request.id, "alice", "changed my mind")

    other = service.start(make_record("15559990000")[0], CLIENT)
    with refused(400, "a reason is required"):
        service.reject(other.id, "bob", "")
    rejected = service.reject(other.id, "operator:bob", "spam")
    assert (rejected.state, rejected.reason) == (State.REJECTED, "spam")
    assert service.audit(request_id=other.id)[0].actor == "operator:bob"
    with refused(409, "the request is rejected"):
        service.reject(other.id, "bob", "spam")
    with refused(409, "the request is rejected"):
        service.prove_owner(other.id, owner_signature(ledger, other), CLIENT)


def test_revoke_writes_the_srl_and_stops_serving(
    service: VerificationService,
    ledger: Ledger,
    record: tuple[str, str],
    caller: RecordingCaller,
) -> None:
    active = activated(service, ledger, caller)
    assert service.lookup(NUMBER)["uri"] is not None
    # A second signed request of the same name goes with it: the SRL lists names.
    pending = proved(service, ledger, client=OTHER_CLIENT)
    pending = service.approve(pending.id, "alice", "re-check")
    unsigned = service.start(NAME, "192.0.2.55")
    with refused(409, "there is no signature to revoke"):
        service.revoke(unsigned.id, "alice", "x")
    with refused(400, "a reason is required"):
        service.revoke(active.id, "alice", " ")

    revoked = service.revoke(active.id, "alice", "the number was ported away")
    assert (revoked.state, revoked.reason) == (State.REVOKED, "the number was ported away")
    entry = service.audit(request_id=active.id)[0]
    assert (entry.action, entry.actor) == ("request.revoked", "operator:alice")
    srl = entry.detail["srl_record"]
    assert srl.startswith("srl:test-") and entry.detail["created_srl_line"] is True
    assert NAME in ledger.show(srl).value.splitlines()
    assert service.get(pending.id).state is State.REVOKED
    assert service.get(unsigned.id).state is State.AWAITING_OWNER_PROOF

    data = service.lookup(NUMBER)
    assert data["records"][0]["verified"] is False
    assert data["records"][0]["signatures"][0]["status"] == "revoked"
    assert data["uri"] is None
    assert not service.find_records(NAME)[0].signed_by_us
    with refused(409, "the request is revoked"):
        service.revoke(active.id, "alice", "again")
    assert service.verify_audit_chain()


def test_due_for_reverification(
    make_service: MakeService,
    ledger: Ledger,
    record: tuple[str, str],
    caller: RecordingCaller,
    clock: Clock,
) -> None:
    svc = make_service(reverify_days=10)
    active = activated(svc, ledger, caller)
    # Due when the VSIG's not-after day (10 days on) ends: within 11 days, not 9.
    assert svc.due(5) == [] and svc.due(9) == []
    assert [r.id for r in svc.due(11)] == [active.id]
    clock.advance(6 * 86400)
    assert [r.id for r in svc.due(6)] == [active.id]
    with refused(400, "must not be negative"):
        svc.due(-1)


def test_flagged_after_owner_change(
    service: VerificationService, ledger: Ledger, record: tuple[str, str], caller: RecordingCaller
) -> None:
    name, owner = record
    active = activated(service, ledger, caller)
    assert service.flagged() == []
    buyer = ledger.get_new_address()
    ledger.name_update(name, ledger.show(name).value, 0, buyer)
    assert [(r.id, why) for r, why in service.flagged()] == [
        (
            active.id,
            f"the name moved from {owner} to {buyer} (its VSIG names the old owner: "
            "a new verification is needed)",
        )
    ]


def test_flagged_after_expiry_and_reregistration(
    service: VerificationService,
    ledger: Ledger,
    make_record: MakeRecord,
    caller: RecordingCaller,
) -> None:
    name, owner = make_record(days=1)
    active = activated(service, ledger, caller, name)
    value = ledger.show(name).value
    ledger.generate(176)
    [(flagged, why)] = service.flagged()
    assert flagged.id == active.id and why.startswith("the name expired at block")
    # Registered again, by the same address even: a new registration all the same.
    ledger.name_new(name, value, 10, owner)
    [(flagged, why)] = service.flagged()
    assert why == f"the name was registered again at block {ledger.show(name).registered_at}"


def test_list_requests(
    service: VerificationService, ledger: Ledger, make_record: MakeRecord
) -> None:
    first_name, first_owner = make_record()
    first = service.start(first_name, CLIENT)
    second = proved(service, ledger, make_record("4930123456")[0])
    assert [r.id for r in service.list_requests()] == [second.id, first.id]
    assert service.list_requests(State.AWAITING_CODE) == [second]
    assert service.list_requests("awaiting-owner-proof") == [first]  # type: ignore[arg-type]
    assert [r.id for r in service.list_requests(search="+1555")] == [first.id]
    assert [r.id for r in service.list_requests(search=first_owner)] == [first.id]
    assert [r.id for r in service.list_requests(limit=1)] == [second.id]
    with refused(400, "unknown state"):
        service.list_requests("bogus")  # type: ignore[arg-type]


# -- safety ----------------------------------------------------------------------------------


def test_state_change_and_audit_entry_are_one(
    service: VerificationService,
    ledger: Ledger,
    record: tuple[str, str],
    make_service: MakeService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = service.start(record[0], CLIENT)

    def disk_gone(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(service.db, "append_audit", disk_gone)
    with pytest.raises(sqlite3.OperationalError):
        service.prove_owner(request.id, owner_signature(ledger, request), CLIENT)
    monkeypatch.undo()
    fresh = make_service()
    assert fresh.get(request.id).state is State.AWAITING_OWNER_PROOF
    assert actions(fresh, request.id) == ["request.created"]
    assert fresh.prove_owner(request.id, owner_signature(ledger, request), CLIENT).state is (
        State.AWAITING_CODE
    )
    assert fresh.verify_audit_chain()


def test_audit_tampering_is_detected(
    service: VerificationService, ledger: Ledger, record: tuple[str, str]
) -> None:
    request = proved(service, ledger, record[0])
    assert service.verify_audit_chain() and service.audit_chain_problem() is None
    raw = sqlite3.connect(service.db_path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("UPDATE audit SET actor='operator:mallory' WHERE request_id=?", (request.id,))
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("DELETE FROM audit")
    raw.execute("DROP TRIGGER audit_no_update")
    raw.execute("UPDATE audit SET actor='operator:mallory' WHERE seq=1")
    raw.commit()
    raw.close()
    assert not service.verify_audit_chain()
    assert service.audit_chain_problem() == "audit entry 1 was altered"


def test_record_event_joins_the_chain(service: VerificationService) -> None:
    entry = service.record_event("operator:alice", "session.login", {"client": CLIENT})
    assert (entry.seq, entry.request_id) == (1, None)
    assert service.audit()[0] == entry
    assert service.verify_audit_chain()


def test_concurrent_owners(
    make_service: MakeService, ledger: Ledger, make_record: MakeRecord
) -> None:
    svc = make_service()
    names = [make_record(f"1555000{i:04d}")[0] for i in range(6)]
    results: list[Request] = []
    errors: list[BaseException] = []

    def owner(name: str, client: str) -> None:
        try:
            results.append(proved(svc, ledger, name, client))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=owner, args=(n, f"192.0.2.{i}")) for i, n in enumerate(names)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len({r.id for r in results}) == len(names)
    assert all(r.state is State.AWAITING_CODE for r in results)
    assert svc.verify_audit_chain()
    assert len(svc.export_audit()) == 2 * len(names)


def test_check_wallet(
    service: VerificationService, make_service: MakeService, ledger: Ledger, tmp_path: Path
) -> None:
    service.check_wallet()
    missing = VerificationService(str(tmp_path / "m.db"), ledger, "missing", None)
    with refused(503, "verifier record ver:missing does not exist or is not active"):
        missing.check_wallet()
    missing.close()
    ledger.name_new("ver:foreign", "someone else's verifier", 10, FOREIGN)
    foreign = VerificationService(str(tmp_path / "f.db"), ledger, "ver:foreign", None)
    with refused(503, "the wallet has no key for ver:foreign"):
        foreign.check_wallet()
    foreign.close()
    with refused(400, "bad verifier id"):
        VerificationService(str(tmp_path / "b.db"), ledger, "a b", None)
    with refused(400, "not a verifier name"):
        VerificationService(str(tmp_path / "b.db"), ledger, "test", None, trust="nonsense")


def test_unknown_tokens_and_ids(service: VerificationService) -> None:
    with refused(404, "no such request"):
        service.by_token("nope")
    with refused(404, "no request #5"):
        service.get(5)
    with refused(404, "no request #5"):
        service.publish_commands(5)


class FlakyStore:
    """The ledger, except for the operations a test breaks (as a node would fail them)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.broken: dict[str, NvsError] = {}

    def __getattr__(self, attribute: str) -> Any:
        if attribute in self.broken:
            error = self.broken[attribute]

            def fail(*args: Any, **kwargs: Any) -> Any:
                raise error

            return fail
        return getattr(self.ledger, attribute)


def test_store_errors_become_one_line_refusals(
    ledger: Ledger,
    verifier_address: str,
    record: tuple[str, str],
    caller: RecordingCaller,
    clock: Clock,
    tmp_path: Path,
) -> None:
    store = FlakyStore(ledger)
    svc = VerificationService(str(tmp_path / "s.db"), store, "test", caller, clock=clock)
    request = proved(svc, ledger)
    store.broken["show"] = NvsError(0, "cannot connect to the Emercoin node at 127.0.0.1:6662")
    with pytest.raises(VerificationError, match=r"^the name store is unavailable;") as info:
        svc.find_records(NAME)
    assert info.value.status == 502 and "127.0.0.1:6662" not in str(info.value)
    assert info.value.detail.startswith("cannot connect to the Emercoin node at 127.0.0.1:6662")
    del store.broken["show"]
    store.broken["sign_message"] = NvsError(RPC_WALLET_ERROR, "Private key not available")
    with refused(409, "the name store refused the operation"):
        svc.approve(request.id, "alice", "manual")
    assert svc.get(request.id).state is State.AWAITING_CODE
    del store.broken["sign_message"]
    assert svc.approve(request.id, "alice", "manual").state is State.SIGNED
    svc.close()
