"""How a verification code reaches the phone: the :class:`Caller` interface and the flash call.

The service only knows :class:`Caller`: ``place(digits, code)`` delivers a
code and reports a :class:`CallOutcome`; ``method`` and ``hint`` name the way
in the audit log and tell the owner where to look. Other ways (a spoken code,
an inbound call with a STIR/SHAKEN attestation) are other classes with the
same three members; docs/verifier-calling.md says how to add one.

:class:`FlashCaller` is the built-in way. It sends a SIP INVITE through the
verifier's UDP trunk with a caller number that ends with the code, lets the
phone ring for a moment so it shows the number, and cancels: the owner reads
the code off the screen, nobody answers and nobody pays for a connected call.
The SIP dialogue is the RFC 3261 UAC side for exactly that (retransmission
timer A, CANCEL/487/ACK, ACK+BYE when someone answers anyway, one digest
authentication round), built on :mod:`enumer.verification.sip`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Protocol

from enumer.verification import sip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallOutcome:
    """What happened to one attempt to deliver a code.

    ``delivered`` is True when the network reported the phone ringing (a
    flash call needs nothing more); ``detail`` is one line for the audit log
    and the operator ("180 Ringing after 0.4 s, cancelled", "486 Busy Here").
    """

    delivered: bool
    detail: str


class Caller(Protocol):
    """A way to deliver a code to a phone number.

    ``method`` names it in the audit log and the API ("flash-call"). ``hint``
    tells the owner where the code will show ("the last 4 digits of the
    calling number"). ``place`` blocks until the outcome is known (a few
    seconds at most) and never raises for network trouble: it reports it.
    """

    method: str
    hint: str

    def place(self, digits: str, code: str) -> CallOutcome:
        """Deliver ``code`` to the E.164 number ``digits`` (no '+')."""
        ...


# -- the trunk ------------------------------------------------------------------------------

_USAGE = "expected sip:HOST[:PORT][;transport=udp] or sip:USER@HOST[:PORT]"


@dataclass(frozen=True)
class Trunk:
    """Where calls go: a UDP SIP server (the verifier's provider or its own PBX)."""

    host: str
    port: int | None  # None: 5060, and URIs name the host alone as the operator wrote it
    user: str | None  # the account for digest authentication, when the URI names one

    @property
    def hostport(self) -> str:
        """As written in URIs (``host`` or ``host:port``)."""
        return sip.format_hostport(self.host, self.port)

    @property
    def where(self) -> str:
        """As shown to operators: always with the port."""
        return sip.format_hostport(self.host, self.port or 5060)


def parse_trunk(text: str) -> Trunk:
    """Validate a ``--trunk`` URI. Raises ValueError with one line saying what is wrong."""
    stripped = text.strip()
    # A password written into the URI (sip:user:secret@host) must not reach an error line.
    shown = repr(re.sub(r"^(sips?:[^:@/?]*):[^@]*@", r"\1:***@", stripped, flags=re.I))
    scheme = stripped.partition(":")[0].lower()
    if scheme == "sips":
        raise ValueError("only UDP trunks are supported (sips: means SIP over TLS)")
    try:
        uri = sip.parse_uri(stripped)
    except sip.SipError as exc:
        raise ValueError(f"bad SIP trunk {shown}: {exc}; {_USAGE}") from None
    if uri.password is not None:
        raise ValueError(
            f"bad SIP trunk {shown}: do not put the password in the URI (set ENUMER_SIP_PASSWORD)"
        )
    transport = uri.params.get("transport", "udp").lower()
    if transport != "udp":
        raise ValueError(f"only UDP trunks are supported (the trunk says transport={transport})")
    if uri.headers:
        raise ValueError(f"bad SIP trunk {shown}: header fields ('?...') are not allowed")
    return Trunk(uri.host, uri.port, uri.user)


def parse_caller_prefix(text: str) -> str:
    """``+49 30 123`` -> ``4930123``: the digits every caller number starts with."""
    digits = re.sub(r"[\s.()-]", "", text).removeprefix("+")
    if not digits.isdigit() or not digits.isascii():
        raise ValueError(f"bad caller prefix {text!r}: digits of an E.164 number, '+' allowed")
    return digits


# -- the flash call -------------------------------------------------------------------------


class FlashCaller:
    """Rings ``+DIGITS`` from ``+<caller_prefix><code>`` through a UDP SIP trunk, then cancels.

    ``ring_seconds`` is how long the phone rings after the network reports
    ringing (long enough for the screen to show the number); ``timeout`` bounds
    each wait for the trunk (the first answer, the answer to the CANCEL, the
    answer to a BYE). ``username``/``password`` answer one digest challenge;
    ``username`` defaults to the user part of the trunk URI. The password is
    kept in this object only: never logged, never in an outcome.
    """

    method = "flash-call"

    def __init__(
        self,
        trunk: str,
        caller_prefix: str,
        *,
        ring_seconds: float = 2.0,
        timeout: float = 10.0,
        local_host: str | None = None,
        username: str | None = None,
        password: str | None = None,
        code_digits: int = 4,
    ) -> None:
        self.trunk = parse_trunk(trunk)
        self.caller_prefix = parse_caller_prefix(caller_prefix)
        if not 1 <= code_digits <= 12:
            raise ValueError(f"bad code length {code_digits}: 1 to 12 digits")
        if len(self.caller_prefix) + code_digits > 15:
            raise ValueError(
                f"caller prefix +{self.caller_prefix} is too long for a {code_digits}-digit"
                " code: E.164 numbers have at most 15 digits"
            )
        if not (math.isfinite(ring_seconds) and 0 <= ring_seconds <= 60):
            raise ValueError(f"bad ring time {ring_seconds}: 0 to 60 seconds")
        if not (math.isfinite(timeout) and 0 < timeout <= 300):
            raise ValueError(f"bad trunk timeout {timeout}: more than 0, at most 300 seconds")
        if local_host is not None:
            try:
                ipaddress.ip_address(local_host)
            except ValueError:
                raise ValueError(
                    f"bad local address {local_host!r}: an IP address of this machine"
                ) from None
        self.username = username or self.trunk.user
        if password and not self.username:
            raise ValueError("a SIP password needs a user name: give the trunk as sip:USER@HOST")
        self._password = password or None
        self.ring_seconds = float(ring_seconds)
        self.timeout = float(timeout)
        self.local_host = local_host
        self.code_digits = code_digits
        self.hint = (
            f"the last {code_digits} digits of the number calling you"
            f" (+{self.caller_prefix}{'X' * code_digits})"
        )

    def __repr__(self) -> str:
        return (
            f"FlashCaller(trunk={self.trunk.where!r}, caller_prefix='+{self.caller_prefix}',"
            f" username={self.username!r}, password={'set' if self._password else 'unset'})"
        )

    def place(self, digits: str, code: str) -> CallOutcome:
        """Ring ``+digits`` with ``code`` at the end of the caller number; never raises for
        network trouble (ValueError only for arguments no caller should pass)."""
        if not (digits.isascii() and digits.isdigit() and 1 <= len(digits) <= 15):
            raise ValueError(f"bad number {digits!r}: E.164 digits without '+'")
        if not (code.isascii() and code.isdigit()):
            raise ValueError("the code must be digits")
        if len(self.caller_prefix) + len(code) > 15:
            raise ValueError("caller prefix plus code is longer than an E.164 number")
        try:
            family, address = self._resolve()
        except (OSError, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            return CallOutcome(False, f"cannot resolve the trunk host {self.trunk.host}: {reason}")
        call = _FlashCall(self, digits, f"+{self.caller_prefix}{code}")
        return call.run(family, address)

    def _resolve(self) -> tuple[int, tuple[str, int]]:
        family = 0
        if self.local_host is not None:
            version = ipaddress.ip_address(self.local_host).version
            family = socket.AF_INET6 if version == 6 else socket.AF_INET
        infos = socket.getaddrinfo(
            self.trunk.host, self.trunk.port or 5060, family, socket.SOCK_DGRAM
        )
        chosen_family, _, _, _, address = infos[0]
        return int(chosen_family), (str(address[0]), int(address[1]))

    def _credentials(self) -> tuple[str, str] | None:
        if self.username and self._password:
            return self.username, self._password
        return None


@dataclass
class _Retransmit:
    """A request sent over UDP and resent until answered (RFC 3261 timers A and E)."""

    data: bytes
    start_line: str
    interval: float
    next_at: float
    cap: float | None  # T2 for non-INVITE requests; INVITEs double without a cap


@dataclass
class _Invite:
    """The INVITE transaction in progress (a new one after a digest challenge)."""

    cseq: int
    branch: str
    request: sip.Request
    auth_used: bool


@dataclass
class _Progress:
    """What the trunk reported so far, with times since the first INVITE."""

    first: str | None = None  # first provisional status line
    ringing: str | None = None  # first 180/183
    ringing_after: float = 0.0
    ringing_at: float = 0.0  # monotonic
    cancel_sent_at: float | None = None
    cancel_status: int | None = None
    answered: str | None = None  # "...answered (200 OK) after 1.2 s" once someone answered
    notes: list[str] = field(default_factory=list)


class _FlashCall:
    """One call: the SIP dialogue on one UDP socket. Used once, by :meth:`FlashCaller.place`."""

    def __init__(self, caller: FlashCaller, digits: str, caller_number: str) -> None:
        self.caller = caller
        self.caller_number = caller_number
        self.sock: socket.socket | None = None
        self.local_host = ""
        self.local_port = 0
        self.call_id = ""
        self.from_tag = sip.new_tag()
        self.pending: dict[str, _Retransmit] = {}
        self.acks: dict[int, bytes] = {}  # INVITE CSeq -> the ACK sent for its final response
        self.progress = _Progress()
        self.t0 = 0.0
        trunk = caller.trunk
        self.request_uri = f"sip:+{digits}@{trunk.hostport};user=phone"

    # -- entry ------------------------------------------------------------------------------

    def run(self, family: int, address: tuple[str, int]) -> CallOutcome:
        trunk = self.caller.trunk
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                if self.caller.local_host is not None:
                    sock.bind((self.caller.local_host, 0))
                # A connected socket picks the source address routing to the trunk, and
                # receives the ICMP "port unreachable" as ConnectionRefusedError.
                sock.connect(address)
                self.sock = sock
                name = sock.getsockname()
                self.local_host, self.local_port = str(name[0]), int(name[1])
                self.call_id = sip.new_call_id(self.local_host)
                return self._dialogue()
        except ConnectionRefusedError:
            return self._interrupted("the trunk refused the call (port unreachable)")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            return self._interrupted(f"network error talking to the trunk {trunk.where}: {reason}")

    def _interrupted(self, problem: str) -> CallOutcome:
        if self.progress.answered is not None:
            return CallOutcome(True, f"{self.progress.answered}; then {problem}")
        if self.progress.ringing is not None:
            return CallOutcome(True, f"{self._ringing_text()}; then {problem}")
        return CallOutcome(False, problem)

    # -- the INVITE and what follows --------------------------------------------------------

    def _dialogue(self) -> CallOutcome:
        caller = self.caller
        self.t0 = time.monotonic()
        invite = self._send_invite(cseq=1, auth=None)
        first_deadline = self.t0 + caller.timeout
        cancel_deadline = math.inf
        while True:
            now = time.monotonic()
            progress = self.progress
            if progress.cancel_sent_at is None:
                if progress.ringing is not None:
                    wake = progress.ringing_at + caller.ring_seconds
                    if now >= wake:
                        self._send_cancel(invite)
                        cancel_deadline = now + caller.timeout
                        continue
                elif now >= first_deadline:
                    if progress.first is None:
                        return CallOutcome(
                            False,
                            f"no answer from the trunk {caller.trunk.where}"
                            f" within {caller.timeout:g} s",
                        )
                    progress.notes.append(
                        f"{progress.first} but no ringing within {caller.timeout:g} s"
                    )
                    self._send_cancel(invite)
                    cancel_deadline = now + caller.timeout
                    continue
                else:
                    wake = first_deadline
            else:
                if now >= cancel_deadline:
                    return self._cancel_outcome(confirmed=False)
                wake = cancel_deadline
            message = self._receive(wake)
            if not isinstance(message, sip.Response):
                continue
            number, method = _cseq(message)
            if method == "CANCEL" and number == invite.cseq:
                if message.status >= 200:
                    self.pending.pop("CANCEL", None)
                    progress.cancel_status = message.status
                elif "CANCEL" in self.pending:
                    self.pending["CANCEL"].cap = sip.T2
                continue
            if method != "INVITE":
                continue
            if number != invite.cseq:
                self._reack(number, message)
                continue
            if message.status < 200:
                self._provisional(message)
                continue
            self.pending.pop("INVITE", None)
            if message.status < 300:
                return self._hang_up(invite, message)
            self._ack_failure(invite, message)
            if message.status in (401, 407) and progress.cancel_sent_at is None:
                retry = self._authenticate(invite, message)
                if isinstance(retry, CallOutcome):
                    return retry
                invite = retry
                progress.first = None  # a CANCEL needs a provisional answer to this INVITE
                first_deadline = time.monotonic() + caller.timeout
                continue
            if message.status == 487 and progress.cancel_sent_at is not None:
                return self._cancel_outcome(confirmed=True)
            return self._failure(message)

    def _provisional(self, message: sip.Response) -> None:
        self.pending.pop("INVITE", None)  # timer A stops on any provisional response
        progress = self.progress
        line = _status_line(message)
        if progress.first is None:
            progress.first = line
        # Ringing reported only after our CANCEL is not counted: the phone may not have shown it.
        if (
            message.status in (180, 183)
            and progress.ringing is None
            and progress.cancel_sent_at is None
        ):
            progress.ringing = line
            progress.ringing_at = time.monotonic()
            progress.ringing_after = progress.ringing_at - self.t0

    def _ringing_text(self) -> str:
        return f"{self.progress.ringing} after {self.progress.ringing_after:.2f} s"

    def _cancel_outcome(self, *, confirmed: bool) -> CallOutcome:
        progress = self.progress
        sent_at = progress.cancel_sent_at or time.monotonic()
        if progress.ringing is not None:
            rang = sent_at - progress.ringing_at
            detail = f"{self._ringing_text()}; cancelled after {rang:.1f} s"
        else:
            detail = "; ".join([*progress.notes, "cancelled"])
        if not confirmed:
            heard = (
                f"the CANCEL got {progress.cancel_status} but no 487 came"
                if progress.cancel_status is not None
                else "the trunk did not answer the CANCEL"
            )
            detail += f" ({heard} within {self.caller.timeout:g} s)"
        return CallOutcome(progress.ringing is not None, detail)

    def _failure(self, message: sip.Response) -> CallOutcome:
        line = _status_line(message)
        warning = message.headers.get("Warning") or message.headers.get("Reason")
        if warning:
            line += f" ({_printable(warning, 100)})"
        if self.progress.ringing is not None:
            # The phone rang (and showed the number) before someone declined: delivered.
            after = time.monotonic() - self.t0
            return CallOutcome(True, f"{self._ringing_text()}; then {line} after {after:.2f} s")
        return CallOutcome(False, line)

    def _authenticate(self, invite: _Invite, message: sip.Response) -> _Invite | CallOutcome:
        line = _status_line(message)
        credentials = self.caller._credentials()
        if credentials is None:
            return CallOutcome(False, f"{line} (the trunk wants a user name and password)")
        if invite.auth_used:
            return CallOutcome(
                False, f"{line} (the trunk refused the credentials of user {credentials[0]})"
            )
        header = "WWW-Authenticate" if message.status == 401 else "Proxy-Authenticate"
        answer = "Authorization" if message.status == 401 else "Proxy-Authorization"
        challenge = _usable_challenge(message.headers.get_all(header))
        if challenge is None:
            return CallOutcome(False, f"{line} (no Digest challenge with MD5 or SHA-256)")
        value = sip.authorization(
            challenge,
            method="INVITE",
            uri=self.request_uri,
            username=credentials[0],
            password=credentials[1],
            body=invite.request.body,
        )
        return self._send_invite(cseq=invite.cseq + 1, auth=(answer, value))

    # -- hanging up when someone answered ---------------------------------------------------

    def _hang_up(self, invite: _Invite, answer: sip.Response) -> CallOutcome:
        """ACK the 2xx and send BYE (through the trunk, RFC 3261 sections 13.2.2.4 and 15)."""
        caller = self.caller
        answered_after = time.monotonic() - self.t0
        prefix = f"{self._ringing_text()}; " if self.progress.ringing else ""
        answered = f"{prefix}answered ({_status_line(answer)}) after {answered_after:.2f} s"
        self.progress.answered = answered
        contact = answer.headers.get("Contact")
        target = self.request_uri
        if contact:
            with contextlib.suppress(sip.SipError):
                target = sip.parse_name_addr(contact).uri
        routes = list(reversed(answer.headers.get_all("Record-Route")))
        to = answer.headers.get("To") or f"<{self.request_uri}>"
        ack = self._request("ACK", target, invite.cseq, to=to, routes=routes)
        self.acks[invite.cseq] = ack.to_bytes()
        self._send(ack.to_bytes(), ack.start_line)
        bye_cseq = invite.cseq + 1
        bye = self._request("BYE", target, bye_cseq, to=to, routes=routes)
        self._send_retransmitted("BYE", bye)
        auth_used = False
        deadline = time.monotonic() + caller.timeout
        while True:
            message = self._receive(deadline)
            if message is None:
                return CallOutcome(True, f"{answered}; the trunk did not answer the BYE")
            if isinstance(message, sip.Request):
                if message.method == "BYE":  # the other side hung up first
                    self._reply(message, 200, "OK")
                    self.pending.pop("BYE", None)
                    return CallOutcome(True, f"{answered}; the callee hung up")
                continue
            number, method = _cseq(message)
            if method == "INVITE":
                self._reack(number, message)
                continue
            if method == "CANCEL" and message.status >= 200:
                self.pending.pop("CANCEL", None)  # the answer crossed our CANCEL
                continue
            if method != "BYE" or number != bye_cseq or message.status < 200:
                continue
            self.pending.pop("BYE", None)
            credentials = caller._credentials()
            if message.status in (401, 407) and credentials and not auth_used:
                challenge = _usable_challenge(
                    message.headers.get_all(
                        "WWW-Authenticate" if message.status == 401 else "Proxy-Authenticate"
                    )
                )
                if challenge is not None:
                    auth_used = True
                    bye_cseq += 1
                    bye = self._request("BYE", target, bye_cseq, to=to, routes=routes)
                    bye.headers.add(
                        "Authorization" if message.status == 401 else "Proxy-Authorization",
                        sip.authorization(
                            challenge,
                            method="BYE",
                            uri=target,
                            username=credentials[0],
                            password=credentials[1],
                        ),
                    )
                    self._send_retransmitted("BYE", bye)
                    continue
            if message.status >= 300:
                return CallOutcome(True, f"{answered}; the BYE got {_status_line(message)}")
            return CallOutcome(True, f"{answered}; hung up")

    # -- building and sending ---------------------------------------------------------------

    def _local_hostport(self) -> str:
        return sip.format_hostport(self.local_host, self.local_port)

    def _request(
        self,
        method: str,
        uri: str,
        cseq: int,
        *,
        to: str | None = None,
        branch: str | None = None,
        routes: list[str] | None = None,
    ) -> sip.Request:
        local = sip.format_hostport(self.local_host, None)
        via_branch = branch or sip.new_branch()
        headers = sip.Headers(
            [
                ("Via", f"SIP/2.0/UDP {self._local_hostport()};branch={via_branch};rport"),
                ("Max-Forwards", "70"),
                ("From", f"<sip:{self.caller_number}@{local}>;tag={self.from_tag}"),
                ("To", to or f"<{self.request_uri}>"),
                ("Call-ID", self.call_id),
                ("CSeq", f"{cseq} {method}"),
            ]
        )
        for route in routes or []:
            headers.add("Route", route)
        if method in ("INVITE", "BYE"):
            headers.add("User-Agent", "ENUMER verifier")
        return sip.Request(method, uri, headers)

    def _send_invite(self, *, cseq: int, auth: tuple[str, str] | None) -> _Invite:
        branch = sip.new_branch()
        request = self._request("INVITE", self.request_uri, cseq, branch=branch)
        local = sip.format_hostport(self.local_host, None)
        for name, value in (
            ("Contact", f"<sip:verifier@{self._local_hostport()}>"),
            ("P-Asserted-Identity", f"<sip:{self.caller_number}@{local};user=phone>"),
            ("Allow", "INVITE, ACK, CANCEL, BYE"),
            ("Content-Type", "application/sdp"),
        ):
            request.headers.add(name, value)
        if auth is not None:
            request.headers.add(*auth)
        session = secrets.randbelow(2**31)
        request.body = sip.minimal_sdp(self.local_host, session)
        self._send_retransmitted("INVITE", request)
        return _Invite(cseq, branch, request, auth_used=auth is not None)

    def _send_cancel(self, invite: _Invite) -> None:
        """CANCEL matches the INVITE: same Request-URI, Call-ID, From, To, branch, CSeq number."""
        cancel = self._request("CANCEL", self.request_uri, invite.cseq, branch=invite.branch)
        self.progress.cancel_sent_at = time.monotonic()
        self.pending.pop("INVITE", None)
        self._send_retransmitted("CANCEL", cancel)

    def _ack_failure(self, invite: _Invite, final: sip.Response) -> None:
        """ACK a 3xx-6xx: part of the INVITE transaction (same branch; To with the tag)."""
        to = final.headers.get("To") or f"<{self.request_uri}>"
        ack = self._request("ACK", self.request_uri, invite.cseq, to=to, branch=invite.branch)
        self.acks[invite.cseq] = ack.to_bytes()
        self._send(ack.to_bytes(), ack.start_line)

    def _reack(self, cseq: int, message: sip.Response) -> None:
        """A final response sent again means our ACK was lost: send it again."""
        if message.status >= 200 and cseq in self.acks:
            self._send(self.acks[cseq], f"ACK (again) for CSeq {cseq}")

    def _reply(self, request: sip.Request, status: int, reason: str) -> None:
        response = sip.build_response(request, status, reason)
        self._send(response.to_bytes(), response.start_line)

    def _send(self, data: bytes, what: str) -> None:
        assert self.sock is not None
        log.debug("sip -> %s: %s", self.caller.trunk.where, what)
        self.sock.send(data)

    def _send_retransmitted(self, key: str, request: sip.Request) -> None:
        data = request.to_bytes()
        self._send(data, request.start_line)
        cap = None if request.method == "INVITE" else sip.T2
        self.pending[key] = _Retransmit(
            data, request.start_line, sip.T1, time.monotonic() + sip.T1, cap
        )

    def _receive(self, until: float) -> sip.Message | None:
        """The next message of this call before ``until``, resending what is due meanwhile.

        Datagrams that do not parse or belong to another Call-ID are dropped: a
        trunk's garbage must not end (or crash) a verification.
        """
        assert self.sock is not None
        while True:
            now = time.monotonic()
            for item in self.pending.values():
                if item.next_at <= now:
                    self._send(item.data, f"{item.start_line} (again)")
                    item.interval = item.interval * 2
                    if item.cap is not None:
                        item.interval = min(item.interval, item.cap)
                    item.next_at = now + item.interval
            if now >= until:
                return None
            wake = min([until, *(item.next_at for item in self.pending.values())])
            self.sock.settimeout(max(wake - now, 0.001))
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            try:
                message = sip.parse_message(data)
            except sip.SipError as exc:
                log.debug("sip <- %s: malformed, ignored: %s", self.caller.trunk.where, exc)
                continue
            if message.headers.get("Call-ID") != self.call_id:
                continue
            log.debug("sip <- %s: %s", self.caller.trunk.where, message.start_line)
            return message


def _cseq(message: sip.Message) -> tuple[int, str]:
    try:
        return sip.cseq(message)
    except sip.SipError:
        return -1, ""


def _usable_challenge(values: list[str]) -> sip.Challenge | None:
    """The first Digest challenge with an algorithm we support (a trunk may offer several)."""
    for value in values:
        try:
            challenge = sip.parse_challenge(value)
        except sip.SipError:
            continue
        if sip.supported_algorithm(challenge.algorithm):
            return challenge
    return None


def _printable(text: str, limit: int) -> str:
    """One line for the audit log: no control characters, bounded length."""
    clean = "".join(c if c.isprintable() else " " for c in text).strip()
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def _status_line(message: sip.Response) -> str:
    return _printable(message.status_line, 80)
