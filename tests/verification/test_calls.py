"""The flash call over real UDP against the test phone (tests/verification/sipua.py).

The code is read where a phone shows it: the user part of the INVITE's From
header, as the phone received it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from enumer.verification import sip
from enumer.verification.calls import Caller, CallOutcome, FlashCaller
from tests.support import free_port
from tests.verification.sipua import Behaviour, ReceivedCall, TestPhone

NUMBER = "15551230000"
PASSWORD = "pa55-w0rd-not-in-logs"


@pytest.fixture
def phone(request: pytest.FixtureRequest) -> Iterator[TestPhone]:
    behaviour: Behaviour = getattr(request, "param", "ring")
    with TestPhone(behaviour, user="acct", password=PASSWORD) as running:
        yield running
    assert running.errors == []


def flash(phone: TestPhone, **kwargs: object) -> FlashCaller:
    options: dict[str, object] = {"ring_seconds": 0.2, "timeout": 2.0, **kwargs}
    return FlashCaller(phone.uri, "+4930123", **options)  # type: ignore[arg-type]


def finished_call(phone: TestPhone) -> ReceivedCall:
    call = phone.wait_for_call(2)
    assert call.wait_finished(2), call
    return call


def test_is_a_caller() -> None:
    caller: Caller = FlashCaller("sip:127.0.0.1", "+4930123")
    assert caller.method == "flash-call"
    assert caller.hint == "the last 4 digits of the number calling you (+4930123XXXX)"
    six = FlashCaller("sip:127.0.0.1", "4930123", code_digits=6)
    assert six.hint.startswith("the last 6 digits of the number calling you")


def test_ring_and_cancel_shows_the_code_in_from(phone: TestPhone) -> None:
    started = time.monotonic()
    outcome = flash(phone).place(NUMBER, "0427")
    elapsed = time.monotonic() - started
    assert outcome.delivered, outcome
    assert outcome.detail.startswith("180 Ringing after ")
    assert "; cancelled after 0." in outcome.detail
    assert 0.2 <= elapsed < 2.0  # rang for ring_seconds, then cancelled promptly
    call = finished_call(phone)
    assert call.caller == "+49301230427"  # what the phone's screen shows
    assert phone.last_code() == "0427"
    assert call.code(4) == "0427"
    assert call.called == "+" + NUMBER
    assert call.invite.uri == f"sip:+{NUMBER}@127.0.0.1:{phone.port};user=phone"
    assert call.invite.headers.get("User-Agent") == "ENUMER verifier"
    assert call.invite.headers.get("Max-Forwards") == "70"
    assert sip.uri_user(call.invite.headers.get("P-Asserted-Identity") or "") == "+49301230427"
    assert call.cancelled and call.acked and not call.answered
    assert call.responses == [100, 180, 487]
    assert call.methods == ["INVITE", "CANCEL", "ACK"]
    assert call.problems == []


def test_code_keeps_leading_zeros_and_other_lengths(phone: TestPhone) -> None:
    outcome = flash(phone, code_digits=6, ring_seconds=0).place(NUMBER, "000042")
    assert outcome.delivered, outcome
    finished_call(phone)
    assert phone.last_code(6) == "000042"


@pytest.mark.parametrize("phone", ["busy"], indirect=True)
def test_busy_is_not_delivered(phone: TestPhone) -> None:
    outcome = flash(phone).place(NUMBER, "1234")
    assert outcome == CallOutcome(False, "486 Busy Here")
    call = finished_call(phone)
    assert call.acked
    assert call.methods == ["INVITE", "ACK"]
    assert call.problems == []


@pytest.mark.parametrize("phone", ["decline"], indirect=True)
def test_declined_after_ringing_was_still_shown(phone: TestPhone) -> None:
    outcome = flash(phone, ring_seconds=1.0).place(NUMBER, "1234")
    assert outcome.delivered, outcome
    assert outcome.detail.startswith("180 Ringing after ")
    assert "; then 603 Decline after " in outcome.detail
    call = finished_call(phone)
    assert call.acked and not call.cancelled
    assert call.problems == []


@pytest.mark.parametrize("phone", ["answer"], indirect=True)
def test_answered_call_is_acked_and_hung_up(phone: TestPhone) -> None:
    outcome = flash(phone, ring_seconds=1.0).place(NUMBER, "1234")
    assert outcome.delivered, outcome
    assert "answered (200 OK) after" in outcome.detail
    assert outcome.detail.endswith("; hung up")
    call = finished_call(phone)
    assert call.answered and call.acked and call.hung_up
    assert call.methods == ["INVITE", "ACK", "BYE"]
    assert call.problems == []


@pytest.mark.parametrize("phone", ["silent"], indirect=True)
def test_silent_trunk_times_out_after_retransmitting(phone: TestPhone) -> None:
    started = time.monotonic()
    outcome = flash(phone, timeout=1.5).place(NUMBER, "1234")
    elapsed = time.monotonic() - started
    assert outcome == CallOutcome(
        False, f"no answer from the trunk 127.0.0.1:{phone.port} within 1.5 s"
    )
    assert 1.5 <= elapsed < 3.0
    call = phone.wait_for_call(1)
    # Timer A: sent at 0 s, again at 0.5 s and 1.5 s (the last one may cross the deadline).
    assert call.invites >= 2
    assert not call.finished


@pytest.mark.parametrize("phone", ["auth"], indirect=True)
def test_digest_authentication(phone: TestPhone) -> None:
    outcome = flash(phone, username="acct", password=PASSWORD).place(NUMBER, "4321")
    assert outcome.delivered, outcome
    assert PASSWORD not in outcome.detail
    call = finished_call(phone)
    assert call.challenged == 1 and call.authenticated
    assert call.responses == [407, 100, 180, 487]
    assert call.methods == ["INVITE", "ACK", "INVITE", "CANCEL", "ACK"]
    assert phone.last_code() == "4321"
    assert call.problems == []


@pytest.mark.parametrize("phone", ["auth"], indirect=True)
def test_digest_user_from_the_trunk_uri(phone: TestPhone) -> None:
    caller = FlashCaller(
        f"sip:acct@127.0.0.1:{phone.port}", "+4930123", ring_seconds=0, password=PASSWORD
    )
    assert caller.place(NUMBER, "4321").delivered
    assert finished_call(phone).authenticated


@pytest.mark.parametrize("phone", ["auth"], indirect=True)
def test_wrong_password_fails_cleanly(phone: TestPhone) -> None:
    outcome = flash(phone, username="acct", password="wrong-" + PASSWORD).place(NUMBER, "4321")
    assert outcome == CallOutcome(
        False,
        "407 Proxy Authentication Required (the trunk refused the credentials of user acct)",
    )
    call = finished_call(phone)
    assert call.challenged == 2 and not call.authenticated
    assert call.methods == ["INVITE", "ACK", "INVITE", "ACK"]


@pytest.mark.parametrize("phone", ["auth"], indirect=True)
def test_challenge_without_credentials(phone: TestPhone) -> None:
    outcome = flash(phone).place(NUMBER, "4321")
    assert outcome == CallOutcome(
        False, "407 Proxy Authentication Required (the trunk wants a user name and password)"
    )
    assert phone.wait_for_call(1).challenged == 1


def test_closed_port_is_refused() -> None:
    port = free_port()  # nobody listens: the kernel answers ICMP port unreachable
    started = time.monotonic()
    outcome = FlashCaller(f"sip:127.0.0.1:{port}", "+4930123", timeout=3).place(NUMBER, "1234")
    assert outcome == CallOutcome(False, "the trunk refused the call (port unreachable)")
    assert time.monotonic() - started < 1.0


def test_garbage_and_foreign_call_ids_are_ignored() -> None:
    """A trunk that sends junk and another call's response before the real answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as trunk:
        trunk.bind(("127.0.0.1", 0))
        trunk.settimeout(3)
        seen: list[sip.Request] = []

        def serve() -> None:
            data, peer = trunk.recvfrom(65535)
            invite = sip.parse_message(data)
            assert isinstance(invite, sip.Request)
            seen.append(invite)
            other = sip.Request(invite.method, invite.uri, sip.Headers(list(invite.headers)))
            other.headers.set("Call-ID", "someone-else@elsewhere")
            for junk in (
                b"\x00\xff garbage",
                b"SIP/2.0 abc\r\n\r\n",
                b"SIP/2.0 200 OK\r\nl: 99\r\n\r\nshort",
                sip.build_response(invite, 180, "Ringing").to_bytes().replace(b"CSeq", b"X-No"),
                sip.build_response(other, 486, "Busy Here", to_tag="t").to_bytes(),
            ):
                trunk.sendto(junk, peer)
            final = sip.build_response(
                invite, 603, "Decline", to_tag="t",
                headers=[("Warning", '399 trunk.test "caller\x07 ID not allowed"')],
            )  # fmt: skip
            trunk.sendto(final.to_bytes(), peer)
            ack = sip.parse_message(trunk.recvfrom(65535)[0])
            assert isinstance(ack, sip.Request)
            seen.append(ack)

        thread = threading.Thread(target=serve)
        thread.start()
        port = trunk.getsockname()[1]
        outcome = FlashCaller(f"sip:127.0.0.1:{port}", "+4930123", timeout=3).place(NUMBER, "9")
        thread.join(5)
    assert outcome == CallOutcome(False, '603 Decline (399 trunk.test "caller  ID not allowed")')
    assert [m.method for m in seen] == ["INVITE", "ACK"]


@pytest.mark.parametrize(
    ("trunk", "error"),
    [
        ("sips:trunk.example", "only UDP trunks are supported"),
        ("sip:trunk.example;transport=tcp", "only UDP trunks are supported"),
        ("sip:trunk.example;transport=TLS", "only UDP trunks are supported"),
        ("http://trunk.example", "bad SIP trunk 'http://trunk.example': not a sip: URI"),
        ("trunk.example", "bad SIP trunk 'trunk.example': not a sip: URI"),
        ("sip:", "bad SIP trunk 'sip:': '' is not a host name or IP address"),
        ("sip:trunk.example:99999", "port '99999' is not a number from 1 to 65535"),
        ("sip:trunk example", "is not a host name or IP address"),
        ("sip:trunk.example?Subject=x", "header fields"),
        ("sip:[2001:db8::1", "unclosed"),
    ],
)
def test_bad_trunks(trunk: str, error: str) -> None:
    with pytest.raises(ValueError) as info:
        FlashCaller(trunk, "+4930123")
    message = str(info.value)
    assert error in message
    assert "\n" not in message


def test_password_in_the_trunk_uri_is_refused_without_echoing_it() -> None:
    for trunk in ("sip:acct:s3cr3t@trunk.example", "sip:acct:s3cr3t@bad host"):
        with pytest.raises(ValueError) as info:
            FlashCaller(trunk, "+4930123")
        assert "s3cr3t" not in str(info.value)
        assert "acct:***@" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"caller_prefix": "abc"}, "bad caller prefix 'abc'"),
        ({"caller_prefix": "+"}, "bad caller prefix"),
        ({"caller_prefix": "+12345678901234"}, "too long for a 4-digit code"),
        ({"code_digits": 0}, "bad code length"),
        ({"ring_seconds": -1}, "bad ring time"),
        ({"timeout": 0}, "bad trunk timeout"),
        ({"timeout": float("nan")}, "bad trunk timeout"),
        ({"local_host": "localhost"}, "bad local address"),
        ({"password": "x"}, "a SIP password needs a user name"),
    ],
)
def test_bad_options(kwargs: dict[str, object], error: str) -> None:
    options: dict[str, object] = {"trunk": "sip:127.0.0.1", "caller_prefix": "+4930123", **kwargs}
    with pytest.raises(ValueError, match=error):
        FlashCaller(**options)  # type: ignore[arg-type]


def test_caller_prefix_accepts_formatting() -> None:
    assert FlashCaller("sip:127.0.0.1", "+49 (30) 123-4").caller_prefix == "49301234"
    assert FlashCaller("sip:127.0.0.1", "4930.123").caller_prefix == "4930123"


def test_place_rejects_bad_arguments() -> None:
    caller = FlashCaller("sip:127.0.0.1", "+4930123")
    with pytest.raises(ValueError, match="bad number"):
        caller.place("+15551230000", "1234")
    with pytest.raises(ValueError, match="digits"):
        caller.place(NUMBER, "12a4")


def test_local_host_is_used(phone: TestPhone) -> None:
    outcome = flash(phone, local_host="127.0.0.1", ring_seconds=0).place(NUMBER, "5678")
    assert outcome.delivered
    call = finished_call(phone)
    assert (call.invite.headers.get("From") or "").startswith("<sip:+49301235678@127.0.0.1>;tag=")


@pytest.mark.parametrize("phone", ["auth"], indirect=True)
def test_secrets_stay_out_of_logs_and_repr(
    phone: TestPhone, caplog: pytest.LogCaptureFixture
) -> None:
    caller = flash(phone, username="acct", password=PASSWORD, code_digits=6)
    with caplog.at_level(logging.DEBUG, logger="enumer.verification.calls"):
        outcome = caller.place(NUMBER, "918273")
    assert outcome.delivered
    assert caplog.records  # the dialogue is logged (start lines)...
    assert "INVITE sip:+15551230000" in caplog.text
    assert "918273" not in caplog.text  # ...but not the code
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(caller)
    assert PASSWORD not in str(vars(caller).get("hint"))
    finished_call(phone)
