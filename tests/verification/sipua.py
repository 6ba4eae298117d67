"""A SIP phone for the tests: a real user agent on a loopback UDP socket, in a thread.

The verifier's flash call is tested against it as against a trunk: the test
hands ``phone.uri`` to the caller, the phone answers INVITEs the way its
``behaviour`` says and records every call as a phone would see it. The code
is read from the INVITE's From header (the number the screen shows), never
from the caller's side.

Behaviours:

- ``ring``: 100 Trying, 180 Ringing; on CANCEL, 200 to the CANCEL and 487 to
  the INVITE, then waits for the ACK.
- ``busy``: 486 Busy Here.
- ``answer``: 100, 180, then (``answer_after`` seconds later) 200 OK with SDP;
  expects the ACK and the BYE, answers the BYE with 200.
- ``decline``: 100, 180, then ``answer_after`` seconds later 603 Decline
  (someone pressed "reject" on a ringing phone).
- ``silent``: never answers (a trunk that drops everything).
- ``auth``: 407 with a Digest challenge (``user``/``password``/``realm``)
  until an INVITE carries a correct Proxy-Authorization, then ``ring``.

Beyond playing its part the phone checks the caller's messages against RFC
3261 (branch cookie, CANCEL and ACK matching the INVITE, tags, Content-Length,
the SDP offer) and lists what is wrong in ``ReceivedCall.problems``: tests
assert it is empty. Messages are parsed with :mod:`enumer.verification.sip`,
whose parser tests/verification/test_sip.py checks on its own.

Use::

    with TestPhone("ring") as phone:
        FlashCaller(phone.uri, "+4930123").place("15551230000", "0427")
        call = phone.wait_for_call(2)
        assert phone.last_code() == "0427"
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from enumer.verification import sip

Behaviour = Literal["ring", "busy", "answer", "decline", "silent", "auth"]
BEHAVIOURS: tuple[Behaviour, ...] = ("ring", "busy", "answer", "decline", "silent", "auth")


@dataclass
class ReceivedCall:
    """One call as the phone saw it (one Call-ID)."""

    call_id: str
    caller: str  # the user part of the From URI: what the phone's screen shows
    called: str  # the user part of the Request-URI
    invite: sip.Request  # the first INVITE
    received_at: float  # time.monotonic() of the first INVITE
    invites: int = 0  # INVITE datagrams, retransmissions and re-INVITEs after 407 included
    methods: list[str] = field(default_factory=list)  # every request method, in order
    responses: list[int] = field(default_factory=list)  # statuses sent to INVITEs
    challenged: int = 0  # 407s sent
    authenticated: bool = False
    cancelled: bool = False
    answered: bool = False
    acked: bool = False  # the ACK for the final response arrived
    hung_up: bool = False  # a BYE arrived and got its 200
    problems: list[str] = field(default_factory=list)
    _finished: threading.Event = field(default_factory=threading.Event, repr=False)

    def code(self, digits: int = 4) -> str:
        """The last ``digits`` digits of the caller number."""
        return "".join(c for c in self.caller if c.isdigit())[-digits:]

    @property
    def finished(self) -> bool:
        """The dialogue is over: the final response was ACKed (and a BYE answered if needed)."""
        return self._finished.is_set()

    def wait_finished(self, timeout: float = 5.0) -> bool:
        return self._finished.wait(timeout)


@dataclass
class _Transaction:
    """The phone's side of one INVITE (one branch): what it sent, to resend and to match."""

    request: sip.Request
    branch: str
    cseq: int
    to_tag: str
    last: bytes | None = None  # the last response, resent when the INVITE is retransmitted
    final: int | None = None


class TestPhone:
    """A SIP phone on ``127.0.0.1``; see the module docstring for the behaviours."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        behaviour: Behaviour = "ring",
        *,
        user: str = "trunk-user",
        password: str = "trunk-password",
        realm: str = "phone.test",
        answer_after: float = 0.1,
    ) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; one of {', '.join(BEHAVIOURS)}")
        self.behaviour: Behaviour = behaviour
        self.user = user
        self.password = password
        self.realm = realm
        self.answer_after = answer_after
        self.calls: list[ReceivedCall] = []
        self.errors: list[str] = []  # exceptions in the phone's own code (tests assert none)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._handed_out = 0
        self._by_id: dict[str, ReceivedCall] = {}
        self._transactions: dict[str, _Transaction] = {}  # Call-ID -> the current INVITE
        self._nonces: set[str] = set()
        self._timers: list[tuple[float, Callable[[], None]]] = []
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> TestPhone:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.02)
        self._sock = sock
        self.port = int(sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, name="test-phone", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> TestPhone:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def uri(self) -> str:
        """The trunk URI that sends calls to this phone."""
        return f"sip:127.0.0.1:{self.port}"

    # -- what the tests read -----------------------------------------------------------------

    def wait_for_call(self, timeout: float = 5.0) -> ReceivedCall:
        """The next call not yet returned by this method (waiting for its INVITE)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._handed_out >= len(self.calls):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no call reached the phone within {timeout} s")
                self._changed.wait(left)
            call = self.calls[self._handed_out]
            self._handed_out += 1
            return call

    def last_code(self, digits: int = 4) -> str:
        """The last ``digits`` digits of the last caller number (what the owner types in)."""
        if not self.calls:
            raise LookupError("no call reached the phone")
        return self.calls[-1].code(digits)

    # -- the loop ----------------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            self._run_timers()
            try:
                data, peer = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                message = sip.parse_message(data)
            except sip.SipError:
                continue
            if isinstance(message, sip.Request):
                try:
                    self._handle(message, peer)
                except Exception as exc:  # a phone bug must show in the test, not kill the thread
                    self.errors.append(f"{message.method}: {exc!r}")

    def _run_timers(self) -> None:
        now = time.monotonic()
        due = [action for when, action in self._timers if when <= now]
        self._timers = [(when, action) for when, action in self._timers if when > now]
        for action in due:
            action()

    def _send(self, response: sip.Response, peer: tuple[str, int]) -> bytes:
        assert self._sock is not None
        data = response.to_bytes()
        self._sock.sendto(data, peer)
        return data

    def _handle(self, request: sip.Request, peer: tuple[str, int]) -> None:
        call_id = request.headers.get("Call-ID") or ""
        call = self._by_id.get(call_id)
        if call is not None:
            call.methods.append(request.method)
        if request.method == "INVITE":
            self._invite(request, peer)
        elif call is None:
            self._send(sip.build_response(request, 481, "Call/Transaction Does Not Exist"), peer)
        elif request.method == "CANCEL":
            self._cancel(call, request, peer)
        elif request.method == "ACK":
            self._ack(call, request)
        elif request.method == "BYE":
            self._bye(call, request, peer)
        else:
            self._send(sip.build_response(request, 200, "OK"), peer)

    # -- INVITE ------------------------------------------------------------------------------

    def _invite(self, request: sip.Request, peer: tuple[str, int]) -> None:
        call_id = request.headers.get("Call-ID") or ""
        branch = _branch(request)
        call = self._by_id.get(call_id)
        if call is None:
            call = ReceivedCall(
                call_id=call_id,
                caller=sip.uri_user(request.headers.get("From") or "") or "",
                called=sip.uri_user(f"<{request.uri}>") or "",
                invite=request,
                received_at=time.monotonic(),
                methods=["INVITE"],
            )
            self._by_id[call_id] = call
            with self._changed:
                self.calls.append(call)
                self._changed.notify_all()
        call.invites += 1
        current = self._transactions.get(call_id)
        if current is not None and current.branch == branch:
            if current.last is not None:  # a retransmission: repeat the last answer
                assert self._sock is not None
                self._sock.sendto(current.last, peer)
            return
        self._check_invite(call, request, current)
        tx = _Transaction(request, branch, _cseq_number(request), sip.new_tag())
        self._transactions[call_id] = tx
        behaviour = self.behaviour
        if behaviour == "silent":
            return
        if behaviour == "auth":
            if not self._authorized(call, request):
                call.challenged += 1
                nonce = secrets.token_hex(12)
                self._nonces.add(nonce)
                challenge = (
                    f'Digest realm="{self.realm}", nonce="{nonce}", qop="auth", algorithm=MD5'
                )
                self._respond(
                    call,
                    tx,
                    peer,
                    407,
                    "Proxy Authentication Required",
                    [("Proxy-Authenticate", challenge)],
                )
                return
            call.authenticated = True
            behaviour = "ring"
        if behaviour == "busy":
            self._respond(call, tx, peer, 486, "Busy Here")
            return
        self._respond(call, tx, peer, 100, "Trying")
        self._respond(call, tx, peer, 180, "Ringing", [("Contact", self._contact())])
        if behaviour in ("answer", "decline"):

            def later() -> None:
                if tx.final is not None:
                    return  # cancelled meanwhile
                if behaviour == "decline":
                    self._respond(call, tx, peer, 603, "Decline")
                    return
                call.answered = True
                self._respond(
                    call,
                    tx,
                    peer,
                    200,
                    "OK",
                    [("Contact", self._contact()), ("Content-Type", "application/sdp")],
                    sip.minimal_sdp("127.0.0.1", 7, port=9),
                )

            self._timers.append((time.monotonic() + self.answer_after, later))

    def _respond(
        self,
        call: ReceivedCall,
        tx: _Transaction,
        peer: tuple[str, int],
        status: int,
        reason: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        tag = tx.to_tag if status > 100 else None
        response = sip.build_response(
            tx.request, status, reason, to_tag=tag, headers=headers or [], body=body
        )
        tx.last = self._send(response, peer)
        call.responses.append(status)
        if status >= 200:
            tx.final = status

    def _contact(self) -> str:
        return f"<sip:phone@127.0.0.1:{self.port}>"

    def _authorized(self, call: ReceivedCall, request: sip.Request) -> bool:
        value = request.headers.get("Proxy-Authorization")
        if value is None:
            return False
        scheme, _, rest = value.partition(" ")
        try:
            params = sip.parse_auth_params(rest)
        except sip.SipError as exc:
            call.problems.append(f"Proxy-Authorization does not parse: {exc}")
            return False
        if scheme != "Digest" or params.get("uri") != request.uri:
            call.problems.append(f"Proxy-Authorization scheme or uri is wrong: {value}")
            return False
        if params.get("nonce") not in self._nonces or params.get("realm") != self.realm:
            call.problems.append("Proxy-Authorization answers a nonce or realm never issued")
            return False
        expected = sip.digest_response(
            algorithm=params.get("algorithm", "MD5"),
            username=self.user,
            realm=self.realm,
            password=self.password,
            method=request.method,
            uri=request.uri,
            nonce=params["nonce"],
            qop=params.get("qop"),
            nc=params.get("nc", ""),
            cnonce=params.get("cnonce", ""),
        )
        return params.get("username") == self.user and params.get("response") == expected

    def _check_invite(
        self, call: ReceivedCall, request: sip.Request, previous: _Transaction | None
    ) -> None:
        problems = call.problems
        if not _branch(request).startswith(sip.BRANCH_MAGIC):
            problems.append("INVITE Via branch lacks the z9hG4bK cookie")
        if sip.tag_of(request.headers.get("From") or "") is None:
            problems.append("INVITE From has no tag")
        if sip.tag_of(request.headers.get("To") or "") is not None:
            problems.append("INVITE To has a tag outside a dialog")
        for name in ("Max-Forwards", "Contact", "CSeq", "Call-ID"):
            if name not in request.headers:
                problems.append(f"INVITE without {name}")
        if request.headers.get("Content-Type") != "application/sdp" or not request.body.startswith(
            b"v=0"
        ):
            problems.append("INVITE without an SDP offer")
        elif b"m=audio" not in request.body:
            problems.append("SDP offer without an audio stream")
        if sip.uri_user(request.headers.get("P-Asserted-Identity") or "") != call.caller:
            problems.append("P-Asserted-Identity differs from the From number")
        if previous is not None:
            if _cseq_number(request) <= previous.cseq:
                problems.append("a new INVITE in the call did not increase CSeq")
            if sip.tag_of(request.headers.get("From") or "") != sip.tag_of(
                previous.request.headers.get("From") or ""
            ):
                problems.append("a new INVITE in the call changed the From tag")

    # -- CANCEL, ACK, BYE --------------------------------------------------------------------

    def _cancel(self, call: ReceivedCall, request: sip.Request, peer: tuple[str, int]) -> None:
        tx = self._transactions.get(call.call_id)
        if tx is None or _branch(request) != tx.branch:
            call.problems.append("CANCEL branch differs from the INVITE's")
            self._send(sip.build_response(request, 481, "Call/Transaction Does Not Exist"), peer)
            return
        if _cseq(request) != (tx.cseq, "CANCEL"):
            call.problems.append(f"CANCEL CSeq is {request.headers.get('CSeq')}")
        if request.uri != tx.request.uri:
            call.problems.append("CANCEL Request-URI differs from the INVITE's")
        if request.headers.get("From") != tx.request.headers.get("From"):
            call.problems.append("CANCEL From differs from the INVITE's")
        if sip.tag_of(request.headers.get("To") or "") is not None:
            call.problems.append("CANCEL To has a tag")
        if 180 not in call.responses and 100 not in call.responses:
            call.problems.append("CANCEL before any provisional response")
        self._send(sip.build_response(request, 200, "OK", to_tag=tx.to_tag), peer)
        if tx.final is None:
            call.cancelled = True
            self._respond(call, tx, peer, 487, "Request Terminated")

    def _ack(self, call: ReceivedCall, request: sip.Request) -> None:
        tx = self._transactions.get(call.call_id)
        if tx is None or tx.final is None:
            call.problems.append("ACK before a final response")
            return
        number, method = _cseq(request)
        if number != tx.cseq or method != "ACK":
            call.problems.append(f"ACK CSeq is {request.headers.get('CSeq')}")
        if sip.tag_of(request.headers.get("To") or "") != tx.to_tag:
            call.problems.append("ACK To tag differs from the response's")
        same_branch = _branch(request) == tx.branch
        if tx.final >= 300 and not same_branch:
            call.problems.append("ACK for a failure is not in the INVITE's transaction")
        if tx.final < 300 and same_branch:
            call.problems.append("ACK for a 2xx reuses the INVITE's branch")
        call.acked = True
        # After a 407 the caller is expected to try again with credentials; the call is over
        # only when the challenged INVITE already carried some (they were wrong).
        retry_expected = tx.final == 407 and "Proxy-Authorization" not in tx.request.headers
        if tx.final >= 300 and not retry_expected:
            call._finished.set()

    def _bye(self, call: ReceivedCall, request: sip.Request, peer: tuple[str, int]) -> None:
        tx = self._transactions.get(call.call_id)
        if tx is None or tx.final is None or tx.final >= 300:
            call.problems.append("BYE outside an established dialog")
        else:
            if _cseq_number(request) <= tx.cseq:
                call.problems.append("BYE CSeq does not follow the INVITE's")
            if sip.tag_of(request.headers.get("To") or "") != tx.to_tag:
                call.problems.append("BYE To tag differs from the dialog's")
            if not call.acked:
                call.problems.append("BYE before the ACK")
        self._send(sip.build_response(request, 200, "OK"), peer)
        call.hung_up = True
        call._finished.set()


def _branch(request: sip.Request) -> str:
    via = request.headers.get("Via") or ""
    return sip.split_params(via)[1].get("branch", "")


def _cseq(request: sip.Request) -> tuple[int, str]:
    try:
        return sip.cseq(request)
    except sip.SipError:
        return -1, ""


def _cseq_number(request: sip.Request) -> int:
    return _cseq(request)[0]
