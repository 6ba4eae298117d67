"""The service's side of issue 11's usability and paging items: pages of the queue and
the audit log with their totals, the operators' export, numbers that must be written
in international format, records whose check fails, and what a lookup says about a
revoked record. The web pages built on these are tested in test_webux.py and
test_browser_ux.py."""

from __future__ import annotations

import pytest

from enumer.nvs.ledger import Ledger
from enumer.verification.model import RateLimit, State, VerificationError
from enumer.verification.service import Request, VerificationService
from enumer.verifier import update_keeping_owner
from tests.verification.conftest import (
    NAME,
    NUMBER,
    Clock,
    MakeRecord,
    MakeService,
    RecordingCaller,
)
from tests.verification.test_service import CLIENT, activated, refused

BROKEN = "E2U+sip=100|10|!^(.*$!sip:x@pbx.example.com!"  # the ERE does not compile


def many_requests(svc: VerificationService, name: str, count: int) -> list[Request]:
    """``count`` requests of one record, each from its own client address (oldest first)."""
    return [svc.start(name, f"198.51.100.{i % 250}-{i}") for i in range(count)]


def test_the_queue_pages_past_200_with_a_total(
    make_service: MakeService, record: tuple[str, str]
) -> None:
    svc = make_service(per_client=RateLimit(1000, 3600))
    made = many_requests(svc, NAME, 230)
    newest_first = [r.id for r in reversed(made)]
    assert svc.count_requests() == 230
    assert [r.id for r in svc.list_requests(limit=100)] == newest_first[:100]
    assert [r.id for r in svc.list_requests(limit=100, offset=200)] == newest_first[200:]
    assert svc.list_requests(limit=100, offset=230) == []
    # The filters count the same rows they list.
    assert svc.count_requests(State.AWAITING_OWNER_PROOF, "+1555") == 230
    assert svc.count_requests(State.ACTIVE) == 0
    assert svc.count_requests(search="no-such-owner") == 0
    with refused(400, "unknown state 'bogus'"):
        svc.count_requests("bogus")  # type: ignore[arg-type]
    # The export has every matching row, not one page of them.
    assert [r.id for r in svc.export_requests(State.AWAITING_OWNER_PROOF)] == newest_first


def test_the_audit_log_pages_past_500_with_a_total(
    make_service: MakeService, record: tuple[str, str]
) -> None:
    svc = make_service(per_client=RateLimit(1000, 3600))
    made = many_requests(svc, NAME, 3)
    for i in range(520):
        svc.record_event("system", "test.event", {"i": i})
    assert svc.count_audit() == 523
    assert svc.count_audit(request_id=made[0].id) == 1
    first = svc.audit(limit=500)
    rest = svc.audit(limit=500, offset=500)
    assert [e.seq for e in first + rest] == list(range(523, 0, -1))
    assert [e.action for e in svc.audit(limit=5, request_id=made[1].id)] == ["request.created"]


def test_national_numbers_are_refused_with_the_hint(
    service: VerificationService, record: tuple[str, str]
) -> None:
    hint = r"looks like a national number: write it with \+ and the country code"
    # Read as international, 5551234567 would be +55 55 1234567 (Brazil, too short).
    for text in ("5551234567", "555 123 4567", "15551234567", "030 1234567"):
        with refused(400, hint):
            service.find_records(text)
        with refused(400, hint):
            service.lookup(text)
    # Digits alone cannot tell +1 555 ... from a national 555 ...: + (or 00) it must be.
    assert [r.name for r in service.find_records("+1 555 123 4567")] == [NAME]
    assert [r.name for r in service.find_records("0015551234567")] == [NAME]


def test_a_record_whose_check_reports_errors_cannot_start(
    service: VerificationService, make_record: MakeRecord
) -> None:
    name, _ = make_record("15557770000", value=BROKEN)
    assert not service.find_records(name)[0].lint.ok
    with refused(409, r"cannot be verified until its check passes \(1 error; first error: line 1"):
        service.start(name, CLIENT)
    assert service.list_requests() == []
    assert service.count_audit() == 0
    # Warnings do not stop it: a value with an ignored line still verifies.
    fine, _ = make_record("15557770001", value="hello\nE2U+sip=100|10|!^.*$!sip:a@b.example!")
    assert service.start(fine, CLIENT).state is State.AWAITING_OWNER_PROOF


def test_code_usable_follows_expiry_and_attempts(
    service: VerificationService, ledger: Ledger, caller: RecordingCaller, clock: Clock,
    record: tuple[str, str],
) -> None:  # fmt: skip
    request = service.start(NAME, CLIENT)
    assert not request.code_usable(clock.now)
    request = service.prove_owner(
        request.id, ledger.sign_message(request.owner, request.challenge), CLIENT
    )
    assert not request.code_usable(clock.now), "no code sent yet"
    request = service.send_code(request.id, CLIENT)
    assert request.code_usable(clock.now)
    clock.advance(service.policy.code_ttl)
    assert not service.get(request.id).code_usable(service.now())
    request = service.send_code(request.id, CLIENT)
    wrong = f"{(int(caller.last_code) + 1) % 10000:04d}"
    for _ in range(service.policy.code_attempts):
        with pytest.raises(VerificationError, match=r"wrong code|too many wrong codes"):
            service.submit_code(request.id, wrong, CLIENT)
    assert not service.get(request.id).code_usable(service.now())


def test_lookup_shows_raw_values_and_names_a_revocation(
    service: VerificationService, ledger: Ledger, caller: RecordingCaller,
    record: tuple[str, str],
) -> None:  # fmt: skip
    data = service.lookup("+" + NUMBER)
    assert data["values"] == {NAME: ledger.show(NAME).value}
    assert data["revoked"] == [] and data["route_note"] == "no route: " + (
        "no record of this number is served (see each record's reason)"
    )
    active = activated(service, ledger, caller)
    data = service.lookup("+" + NUMBER)
    assert data["uri"] and data["route_note"] == "" and data["revoked"] == []
    assert data["values"][NAME].endswith(active.sig_line or "-")
    service.revoke(active.id, "alice", "ported")
    data = service.lookup("+" + NUMBER)
    assert data["revoked"] == [NAME]
    assert data["route_note"] == "no route: revoked (the signature of ver:test was revoked)"
    update_keeping_owner(ledger, NAME, "E2U+sip=100|10|!^.*$!sip:new@pbx.example!", 0)
    data = service.lookup("+" + NUMBER)
    assert data["revoked"] == [] and "revoked" not in data["route_note"]
    assert service.lookup("+4930123456")["route_note"] == (
        "no route: no ENUM record exists for this number"
    )


def test_record_of_a_request_for_the_operator(
    service: VerificationService, record: tuple[str, str]
) -> None:
    info = service.record(NAME)
    assert info is not None and info.name == NAME and info.lint.ok
    assert service.record("enum:15550009999:0") is None
