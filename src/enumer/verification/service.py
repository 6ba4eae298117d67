"""The owner's path and the operator's actions, tying the state file to the wallet.

Every public method is one step a person takes (through a page, the JSON API
or the console). Each either refuses with a :class:`VerificationError`
carrying a one-line message and the HTTP status, or changes the request and
writes its audit entry in one transaction of the state file.

Who may do what is bounded three ways: the request's state (the transitions of
:mod:`~enumer.verification.model`), proofs (the owner's ``signmessage`` over a
challenge before any call; the code delivered by the call before any
signature), and the :class:`~enumer.verification.model.Policy` (rate limits,
deny and allow lists, attempts). The verifier key stays in the wallet: the
service asks the store to sign and to revoke, as ``enumer verifier`` does.

The web server calls from a thread pool, so one lock serialises the methods;
only the call to a phone (seconds) runs outside it, with the request reserved
so that a second "Call me now" cannot ring the phone twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import secrets
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from enumer import crypto
from enumer.bound import BoundLineError, VsigLine, lint_bound, replace_vsig
from enumer.ddds import select_routes
from enumer.e164 import E164, NumberError
from enumer.nvs import (
    RPC_INTERNAL_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_MISC_ERROR,
    RPC_WALLET_ERROR,
    NameRecord,
    NameStore,
    NvsError,
    get_active,
)
from enumer.records import (
    EnumName,
    LintReport,
    RecordError,
    lint_value,
)
from enumer.resolver import Resolver, TollFreeLoadError, lookup_json
from enumer.trust import SigStatus, TollFreeSource, TrustError, TrustList
from enumer.verification.calls import Caller, CallOutcome
from enumer.verification.db import AuditRow, RateRefusal, StateDB
from enumer.verification.model import (
    Policy,
    RateLimit,
    State,
    VerificationError,
    challenge_text,
    check_transition,
    code_digest,
    code_matches,
    new_code,
    new_nonce,
    token_digest,
)
from enumer.verifier import (
    VerifierError,
    owned_verifier,
    revoke,
    sign_bound,
    value_with_signature,
    verifier_name,
)

log = logging.getLogger("enumer.verification")


def vsig_ends(vsig: VsigLine) -> float:
    """When a VSIG stops being valid: the end of its not-after day (UTC)."""
    day = dt.datetime.combine(vsig.not_after, dt.time(), dt.UTC) + dt.timedelta(days=1)
    return day.timestamp()


def _publish_value(current: str, verifier_id: str, sig_line: str) -> str:
    """The value the owner publishes: ``current`` plus the request's SIG= line and
    its VSIG= line (replacing an older VSIG of this verifier)."""
    lines = sig_line.split("\n")
    value = value_with_signature(current, verifier_id, lines[0].partition("|")[2])
    for line in lines[1:]:
        try:
            value = replace_vsig(value, VsigLine.from_text(line))
        except BoundLineError:
            continue  # a request signed before bound signatures: its SIG= line only
    return value


#: How many characters an operator's reason may have (a paragraph, not a file).
MAX_REASON = 2000
#: States in which the verifier's signature exists and may be on the chain.
SIGNED_STATES = (State.SIGNED, State.WAITING_FOR_CHAIN, State.ACTIVE)
NO_TRUNK = "no outbound trunk configured; an operator can approve manually"


@dataclass(frozen=True)
class Request:
    """One verification request as the console, the pages and the API show it."""

    id: int  # what operators see
    #: Unguessable; the owner's pages and API address the request by it. The state file
    #: keeps only its hash, so it is known only in the answer to whoever holds it (start,
    #: by_token) and None elsewhere; it is no part of the request's value (equality).
    token: str | None = field(compare=False)
    name: str  # enum:<digits>:<N>
    digits: str  # E.164 without '+'
    owner: str  # the record's owner address when the request started
    state: State
    challenge: str  # the text the owner signs
    created: float  # unix seconds
    updated: float
    code_expires: float | None  # when the current code stops working
    attempts_left: int  # code entries left
    calls_made: int
    signature: str | None  # base64, once signed
    sig_line: str | None  # "SIG=ver:ID|<signature>", once signed
    signed_at: float | None
    active_at: float | None
    reverify_due: float | None  # signed_at + policy.reverify_days
    reason: str  # last decision's reason ("" when none)
    client: str  # the address that started it

    def to_json(self, public: bool = False) -> dict[str, Any]:
        """Plain JSON types: the state as its value, times as unix seconds.

        ``public`` leaves out what only the request's owner and the operators
        may see (the token, which acts on the request, and the client address):
        for pages that list the requests of a record to anyone.
        """
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        data["state"] = self.state.value
        data["state_label"] = self.state.label
        if public:
            for key in ("token", "client", "challenge"):
                del data[key]
        return data


#: The fields a state row fills (the token is not stored, only its hash).
_REQUEST_FIELDS = tuple(f.name for f in fields(Request) if f.name != "token")


@dataclass(frozen=True)
class RecordInfo:
    """A record as the owner's first page shows it."""

    name: str
    digits: str
    value: str
    owner: str
    active: bool
    expires_at: int
    lint: LintReport
    signed_by_us: bool  # carries a SIG line of this verifier that verifies
    requests: tuple[Request, ...]  # this service's requests for the name, newest first

    def to_json(self) -> dict[str, Any]:
        """The record for anyone who looks it up: requests without their tokens."""
        return {
            "name": self.name,
            "digits": self.digits,
            "value": self.value,
            "owner": self.owner,
            "active": self.active,
            "expires_at": self.expires_at,
            "lint": {
                "ok": self.lint.ok,
                "issues": [
                    {"severity": i.severity.value, "line": i.line, "message": i.message}
                    for i in self.lint.issues
                ],
            },
            "signed_by_us": self.signed_by_us,
            "requests": [r.to_json(public=True) for r in self.requests],
        }


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: float
    actor: str  # "owner@<client address>", "operator:<user>", "system"
    action: str  # "request.created", "owner.proved", "code.sent", "code.failed", ...
    request_id: int | None
    detail: dict[str, Any]
    hash: str  # chains this entry to the previous one (tamper evidence)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: AuditRow) -> AuditEntry:
        return cls(row.seq, row.at, row.actor, row.action, row.request_id, row.detail, row.hash)


#: Store error codes that mean "refused" (the operation is wrong now), not "unreachable".
_REFUSALS = (RPC_INTERNAL_ERROR, RPC_WALLET_ERROR, RPC_MISC_ERROR, RPC_INVALID_ADDRESS_OR_KEY)


STORE_UNAVAILABLE = "the name store is unavailable; try again in a few minutes"
STORE_REFUSED = "the name store refused the operation"
CALL_FAILED = (
    "the call did not reach +{digits}; try again in a few minutes, "
    "or ask the verifier's operators for help"
)


def _store_error(exc: NvsError) -> VerificationError:
    """A store failure as the person sees it: a refused operation (409) or an
    unreachable or unready node (502). What the node said (which may name its
    address) goes to the operators' log and the console only."""
    refused = exc.code in _REFUSALS
    log.warning("name store %s: %s", "refused" if refused else "unavailable", exc)
    if refused:
        return VerificationError(STORE_REFUSED, 409, detail=str(exc))
    return VerificationError(STORE_UNAVAILABLE, 502, detail=str(exc))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _rate_message(refusal: RateRefusal) -> str:
    kind, _, what = refusal.key.partition(":")
    wait = f"try again in {_plural(max(1, math.ceil(refusal.retry_after / 60)), 'minute')}"
    if kind == "number":
        return f"too many calls to +{what}; {wait}"
    if kind == "prefix":
        return f"too many calls to numbers starting +{what}; {wait}"
    return f"too many attempts from your address; {wait}"


def _ansi_c_quote(text: str) -> str:
    """``$'...'`` quoting: newlines and control characters as escapes, the rest verbatim.

    A double-quoted shell word cannot carry an escaped newline (``"\\n"`` stays
    two characters) and expands ``$``, backquotes and, interactively, ``!``,
    all of which ENUM regexps are full of. bash, zsh and ksh read ``$'...'``.
    """
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == "'":
            out.append("\\'")
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "$'" + "".join(out) + "'"


def _heredoc_delimiter(value: str) -> str:
    delimiter = "ENUMER_VALUE"
    while delimiter in value:
        delimiter += "_"
    return delimiter


class VerificationService:
    """Everything the web layer and the API call. Thread-safe (one lock around the DB)."""

    def __init__(
        self,
        db_path: str,
        store: NameStore,
        verifier_id: str,
        caller: Caller | None,
        policy: Policy | None = None,
        clock: Callable[[], float] = time.time,
        *,
        trust: str | None = None,
        tollfree: str = "",
    ) -> None:
        """Open (or create) the state file; nothing else is checked here.

        ``caller`` None means no outbound trunk: "Call me now" answers 503 and
        operators approve by hand. ``trust`` and ``tollfree`` configure the
        public lookup like ``enumer lookup --trust/--tollfree`` (default: this
        verifier only, no toll-free list). :meth:`check_wallet` checks the
        verifier record and the key, which ``serve`` does at start.
        """
        try:
            self.verifier_id = verifier_name(verifier_id)
        except VerifierError as exc:
            raise VerificationError(str(exc), 400) from None
        try:
            self.trust = TrustList.from_text(trust if trust is not None else self.verifier_id)
            self.tollfree_sources = TollFreeSource.parse_list(tollfree)
        except TrustError as exc:
            raise VerificationError(str(exc), 400) from None
        self.store = store
        self.caller = caller
        self.policy = policy or Policy()
        self.clock = clock
        self.db_path = str(db_path)
        self.db = StateDB(db_path)
        self._lock = threading.RLock()
        self._calling: set[int] = set()  # requests whose phone is being called right now

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # -- plumbing ----------------------------------------------------------------------------

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Store and wallet failures as one-line VerificationErrors."""
        try:
            yield
        except NvsError as exc:
            raise _store_error(exc) from None
        except VerifierError as exc:
            raise VerificationError(str(exc), 503) from None

    @contextmanager
    def _guard(self) -> Iterator[None]:
        with self._lock, self._errors():
            yield

    def _now(self) -> float:
        return float(self.clock())

    def _row(self, request_id: int) -> dict[str, Any]:
        row = self.db.request(request_id)
        if row is None:
            raise VerificationError(f"no request #{request_id}", 404)
        return row

    @staticmethod
    def _request(row: dict[str, Any], token: str | None = None) -> Request:
        values = {name: row[name] for name in _REQUEST_FIELDS}
        values["state"] = State(row["state"])
        return Request(token=token, **values)

    def _reload(self, request_id: int) -> Request:
        return self._request(self._row(request_id))

    def _apply(self, row: dict[str, Any], changes: dict[str, Any], now: float) -> None:
        """Inside a transaction: change a request, checking its state transition."""
        target = changes.get("state")
        if isinstance(target, State):
            check_transition(State(row["state"]), target)
            changes = {**changes, "state": target.value}
        self.db.update_request(row["id"], {**changes, "updated": now})

    def _log(
        self, now: float, actor: str, action: str, request_id: int | None, detail: dict[str, Any]
    ) -> None:
        self.db.append_audit(now, actor, action, request_id, detail)

    def _change(
        self,
        row: dict[str, Any],
        changes: dict[str, Any],
        now: float,
        actor: str,
        action: str,
        detail: dict[str, Any],
    ) -> Request:
        """One state change and its audit entry, in one transaction."""
        with self.db.transaction():
            self._apply(row, changes, now)
            self._log(now, actor, action, row["id"], detail)
        return self._reload(row["id"])

    def _rate(self, limits: Sequence[tuple[str, RateLimit]], now: float) -> None:
        with self.db.transaction():
            refusal = self.db.rate_check(limits, now)
        if refusal is not None:
            raise VerificationError(_rate_message(refusal), 429)

    def _client_limit(self, client: str) -> tuple[str, RateLimit]:
        return (f"client:{client}", self.policy.per_client)

    @staticmethod
    def _owner_actor(client: str) -> str:
        return f"owner@{client}"

    @staticmethod
    def _operator_actor(operator: str) -> str:
        return operator if operator.startswith("operator:") else f"operator:{operator}"

    @staticmethod
    def _reason(reason: str) -> str:
        text = reason.strip()
        if not text:
            raise VerificationError("a reason is required", 400)
        if len(text) > MAX_REASON:
            raise VerificationError(f"the reason is over {MAX_REASON} characters", 400)
        return text

    def _show(self, name: str) -> NameRecord | None:
        """The record, or None when the name was never registered (other errors raise)."""
        try:
            return self.store.show(name)
        except NvsError as exc:
            if exc.code == RPC_WALLET_ERROR:  # "failed to read from name DB"
                return None
            raise

    def _parse_number(self, text: str) -> E164:
        try:
            return E164.from_text(text)
        except NumberError as exc:
            if "starts with 0" in str(exc):
                raise VerificationError(
                    f"{text.strip()!r} looks like a national number: write it with + and "
                    "the country code (e.g. +49 30 1234567)",
                    400,
                ) from None
            raise VerificationError(str(exc), 400) from None

    def _owner_address(self, owner: str) -> crypto.Address:
        """The owner's address as a key hash; an owner that cannot sign messages is refused."""
        try:
            return crypto.Address.from_text(owner, crypto.network_by_name(self.store.network_name))
        except crypto.CryptoError as exc:
            raise VerificationError(
                f"the record's owner {owner} cannot sign messages ({exc})", 409
            ) from None

    def _still_owned(self, row: dict[str, Any]) -> NameRecord:
        """The record, refused (409) unless it is active and still held by the request's owner."""
        record = self._show(row["name"])
        if record is None or not record.is_active(self.store.height()):
            raise VerificationError(f"the record {row['name']} is no longer active", 409)
        if record.address != row["owner"]:
            raise VerificationError("the record changed owner since the request started", 409)
        return record

    def _signature_resolver(self) -> Resolver:
        """A resolver that trusts this verifier only: "signed by us" means valid for it.

        Fresh per call, so the verifier and SRL records are read as they are now.
        """
        return Resolver(self.store, TrustList((self.verifier_id,)))

    def _signed_by_us(self, record: NameRecord, resolver: Resolver) -> bool:
        verdict = resolver.judge(record)
        return any(
            v.verifier == self.verifier_id and v.status is SigStatus.VALID
            for v in verdict.signatures
        )

    # -- the owner's path ------------------------------------------------------------------

    def find_records(self, query: str) -> list[RecordInfo]:
        """A record name (``enum:15551234567:0``) or a number (``+1 555 123 4567``)."""
        with self._guard():
            text = query.strip()
            if not text:
                raise VerificationError("enter an ENUM record name or a phone number", 400)
            if text.lower().startswith("enum:"):
                try:
                    name = EnumName.from_text(text).to_text()
                except RecordError as exc:
                    raise VerificationError(str(exc), 400) from None
                record = self._show(name)
                if record is None or record.deleted:
                    raise VerificationError(f"no ENUM record {name}", 404)
                records = [record]
            else:
                e164 = self._parse_number(text)
                records = [r for r in self.store.records_for_number(e164.digits) if not r.deleted]
                if not records:
                    raise VerificationError(f"no ENUM record for {e164.aus}", 404)
            tip = self.store.height()
            resolver = self._signature_resolver()
            return [self._record_info(r, tip, resolver) for r in records]

    def _record_info(self, record: NameRecord, tip: int, resolver: Resolver) -> RecordInfo:
        rows = self.db.requests(name=record.name, limit=20)
        return RecordInfo(
            name=record.name,
            digits=EnumName.from_text(record.name).digits,
            value=record.value,
            owner=record.address,
            active=record.is_active(tip),
            expires_at=record.expires_at,
            # The bound lines too: an owner whose OSIG is stale reads how to renew it.
            lint=LintReport(
                (
                    *lint_value(record.value).issues,
                    *lint_bound(record.value, record.name, record.address),
                )
            ),
            signed_by_us=self._signed_by_us(record, resolver),
            requests=tuple(self._request(r) for r in rows),
        )

    def start(self, name: str, client: str) -> Request:
        """A new request for an active record, with a new token; rate-limited per client.

        No answer ever carries an existing request's token: the state file does
        not even hold one. A new request from the client of an unproven one for
        the same record supersedes it (a reloaded form, a lost link), so one
        client has one open request per record; behind a shared address
        (a NAT) that lets a neighbour end the owner's unproven request, never
        act on it. Another client's requests are left alone.
        """
        with self._guard():
            try:
                name = EnumName.from_text(name.strip()).to_text()
            except RecordError as exc:
                raise VerificationError(str(exc), 400) from None
            record = self._show(name)
            if record is None or record.deleted:
                raise VerificationError(f"no ENUM record {name}", 404)
            if not record.is_active(self.store.height()):
                raise VerificationError(
                    f"the record {name} is not active (it expired at block {record.expires_at})",
                    409,
                )
            self._owner_address(record.address)
            now = self._now()
            self._rate([self._client_limit(client)], now)
            superseded = [
                row
                for row in self.db.requests(states=(State.AWAITING_OWNER_PROOF,), name=name)
                if row["client"] == client
            ]
            challenge = challenge_text(self.verifier_id, name, record.address, new_nonce())
            token = secrets.token_urlsafe(18)
            values = {
                "token_hash": token_digest(token),
                "name": name,
                "digits": EnumName.from_text(name).digits,
                "owner": record.address,
                "state": State.AWAITING_OWNER_PROOF.value,
                "challenge": challenge,
                "created": now,
                "updated": now,
                "client": client,
                "owner_registered_at": record.registered_at,
            }
            actor = self._owner_actor(client)
            with self.db.transaction():
                request_id = self.db.insert_request(values)
                self._log(
                    now,
                    actor,
                    "request.created",
                    request_id,
                    {"name": name, "owner": record.address, "challenge": challenge},
                )
                for old in superseded:
                    reason = f"superseded by request #{request_id}"
                    self._apply(old, {"state": State.EXPIRED, "reason": reason}, now)
                    self._log(now, actor, "request.expired", old["id"], {"reason": reason})
            return replace(self._reload(request_id), token=token)

    def prove_owner(self, request_id: int, signature: str, client: str) -> Request:
        """Check ``signature`` over the challenge against the record's current owner."""
        with self._guard():
            row = self._row(request_id)
            now = self._now()
            state = State(row["state"])
            if state is not State.AWAITING_OWNER_PROOF:
                raise VerificationError(
                    f"the request is {state.label}; it takes no ownership proof", 409
                )
            if row["created"] + self.policy.challenge_ttl <= now:
                self._expire(row, now, "the owner did not sign the challenge in time")
                raise VerificationError("the challenge has expired; start a new request", 410)
            self._rate([self._client_limit(client)], now)
            record = self._still_owned(row)
            address = self._owner_address(row["owner"])
            text = "".join(signature.split())
            if not text:
                raise VerificationError("paste the signature of the challenge", 400)
            try:
                proved = crypto.verify_message(address, text, row["challenge"])
            except crypto.CryptoError as exc:
                raise VerificationError(str(exc), 400) from None
            actor = self._owner_actor(client)
            if not proved:
                with self.db.transaction():
                    self._log(now, actor, "owner.proof_failed", request_id, {"owner": row["owner"]})
                raise VerificationError(
                    f"the signature does not prove ownership of {row['owner']}", 403
                )
            return self._change(
                row,
                {"state": State.AWAITING_CODE, "owner_registered_at": record.registered_at},
                now,
                actor,
                "owner.proved",
                {"owner": row["owner"], "signature": text},
            )

    def send_code(self, request_id: int, client: str) -> Request:
        """Call the number with a fresh code (deny/allow lists, per-number/prefix limits).

        The call runs outside the lock (it takes seconds); the request is
        reserved meanwhile, so a second call for it is refused (409) rather
        than ringing the phone twice.
        """
        with self._guard():
            row = self._row(request_id)
            now = self._now()
            state = State(row["state"])
            if state is State.AWAITING_OWNER_PROOF:
                raise VerificationError("prove record ownership first", 403)
            if state is not State.AWAITING_CODE:
                raise VerificationError(f"the request is {state.label}; no call is needed", 409)
            if self.caller is None:
                raise VerificationError(NO_TRUNK, 503)
            if request_id in self._calling:
                raise VerificationError("a call to this number is already on its way", 409)
            digits = row["digits"]
            problem = self.policy.destination_problem(digits)
            if problem is not None:
                raise VerificationError(problem, 403)
            if row["calls_made"] >= self.policy.calls_per_request:
                raise VerificationError(
                    f"this request already had {_plural(row['calls_made'], 'call')}; "
                    "ask the verifier's operators for help",
                    429,
                )
            self._rate(
                [
                    self._client_limit(client),
                    (f"number:{digits}", self.policy.per_number),
                    (f"prefix:{self.policy.number_prefix(digits)}", self.policy.per_prefix),
                ],
                now,
            )
            self._calling.add(request_id)
            caller = self.caller
        try:
            code = new_code(self.policy.code_digits)
            try:
                outcome = caller.place(digits, code)
            except Exception as exc:  # a Caller reports trouble, but one may still raise
                log.warning("the %s caller failed for +%s: %r", caller.method, digits, exc)
                outcome = CallOutcome(False, f"the {caller.method} caller failed ({exc})")
            with self._guard():
                return self._record_call(request_id, code, outcome, client, caller.method)
        finally:
            with self._lock:
                self._calling.discard(request_id)

    def _record_call(
        self, request_id: int, code: str, outcome: CallOutcome, client: str, method: str
    ) -> Request:
        row = self._row(request_id)
        now = self._now()
        actor = self._owner_actor(client)
        detail: dict[str, Any] = {"method": method, "to": row["digits"], "outcome": outcome.detail}
        if not outcome.delivered:
            with self.db.transaction():
                self._log(now, actor, "code.failed", request_id, detail)
            # The outcome may name the trunk (its address, its answer): operators only.
            log.warning(
                "the call to +%s for request %s failed: %s",
                row["digits"],
                request_id,
                outcome.detail,
            )
            raise VerificationError(
                CALL_FAILED.format(digits=row["digits"]), 502, detail=outcome.detail
            )
        state = State(row["state"])
        if state is not State.AWAITING_CODE:
            # Rejected or expired while the phone rang: the code it showed is void.
            with self.db.transaction():
                self._log(now, actor, "code.sent", request_id, {**detail, "void": state.value})
            raise VerificationError(f"the request is {state.label}; the code is void", 409)
        expires = now + self.policy.code_ttl
        calls = row["calls_made"] + 1
        return self._change(
            row,
            {
                "code_digest": code_digest(self.db.secret, request_id, code),
                "code_expires": expires,
                "attempts_left": self.policy.code_attempts,
                "calls_made": calls,
            },
            now,
            actor,
            "code.sent",
            {**detail, "call": calls, "code_expires": expires},
        )

    def submit_code(self, request_id: int, code: str, client: str) -> Request:
        """Check the code; on success the wallet signs the name and the request is SIGNED."""
        with self._guard():
            row = self._row(request_id)
            now = self._now()
            state = State(row["state"])
            if state is not State.AWAITING_CODE:
                raise VerificationError(f"the request is {state.label}; it takes no code", 409)
            entered = "".join(code.split())
            size = self.policy.code_digits
            if not (entered.isascii() and entered.isdigit() and len(entered) == size):
                raise VerificationError(f"the code is {size} digits", 400)
            digest = row["code_digest"]
            if digest is None:
                if row["calls_made"] and row["attempts_left"] <= 0:
                    raise VerificationError("too many wrong codes; ask for a new call", 403)
                raise VerificationError("no code has been sent yet; ask for a call first", 409)
            if row["code_expires"] is None or row["code_expires"] <= now:
                raise VerificationError("the code has expired; ask for a new call", 410)
            actor = self._owner_actor(client)
            if not code_matches(self.db.secret, request_id, entered, digest):
                left = max(0, row["attempts_left"] - 1)
                changes: dict[str, Any] = {"attempts_left": left}
                if left == 0:
                    changes.update(code_digest=None, code_expires=None)
                self._change(row, changes, now, actor, "code.wrong", {"attempts_left": left})
                if left == 0:
                    raise VerificationError("too many wrong codes; ask for a new call", 403)
                raise VerificationError(f"wrong code, {_plural(left, 'attempt')} left", 403)
            record = self._still_owned(row)
            return self._sign(row, record, now, actor, "request.signed", {"by": "code"}, "")

    def _sign(
        self,
        row: dict[str, Any],
        record: NameRecord,
        now: float,
        actor: str,
        action: str,
        detail: dict[str, Any],
        reason: str,
    ) -> Request:
        """The wallet signs; the request becomes SIGNED with its SIG and VSIG lines.

        ``sig_line`` holds both lines (SPEC 11): the SIG= line for emcdns and
        older gateways, the VSIG= line binding the name to the owner that proved
        the number, valid for the re-verification period; the re-verification is
        due when the VSIG's not-after day ends.
        """
        try:
            signed = sign_bound(
                self.store, self.verifier_id, row["name"], self.policy.reverify_days, int(now)
            )
        except VerifierError as exc:
            raise VerificationError(str(exc), 409) from None
        sig_line = "\n".join(signed.lines)
        return self._change(
            row,
            {
                "state": State.SIGNED,
                "signature": signed.signature,
                "sig_line": sig_line,
                "signed_at": now,
                "reverify_due": vsig_ends(signed.vsig),
                "code_digest": None,
                "code_expires": None,
                "attempts_left": 0,
                "owner_registered_at": record.registered_at,
                "reason": reason,
            },
            now,
            actor,
            action,
            {**detail, "name": row["name"], "sig_line": sig_line},
        )

    def mark_published(self, request_id: int, client: str) -> Request:
        """The owner says the SIG line is sent: SIGNED -> WAITING_FOR_CHAIN.

        Saying it again is harmless (a double click). If the line is already
        on the chain, the request becomes ACTIVE at once.
        """
        with self._guard():
            row = self._row(request_id)
            state = State(row["state"])
            if state in (State.WAITING_FOR_CHAIN, State.ACTIVE):
                return self._request(row)
            now = self._now()
            self._change(
                row,
                {"state": State.WAITING_FOR_CHAIN},
                now,
                self._owner_actor(client),
                "request.published",
                {},
            )
            row = self._row(request_id)
            if self._signed_on_chain(row["name"], self._signature_resolver()):
                self._activate(row, now)
            return self._reload(request_id)

    def get(self, request_id: int) -> Request:
        with self._guard():
            return self._reload(request_id)

    def by_token(self, token: str) -> Request:
        """The request a token names; VerificationError(404) when none."""
        with self._guard():
            row = self.db.request_by_token(token.strip())
            if row is None:
                raise VerificationError("no such request (check the link)", 404)
            return self._request(row, token.strip())

    def publish_commands(self, request_id: int) -> dict[str, str]:
        """How the owner adds the SIG line: ``value`` (current value plus the line),
        ``enumer`` (an ``enumer name update`` command) and ``emercoin`` (``name_update``).

        Also ``sig_line``. The value keeps the owner's lines byte for byte and
        adds the line at the end, as ``enumer verifier sign --append`` does; a
        value that already carries the signature is returned unchanged. The
        ``emercoin`` command names the current owner as the to-address, because
        a bare ``name_update`` moves the name to a fresh wallet address.
        """
        with self._guard():
            row = self._row(request_id)
            state = State(row["state"])
            if state not in SIGNED_STATES or row["signature"] is None:
                raise VerificationError(f"the request is {state.label}, not signed", 409)
            record = get_active(self.store, row["name"])
            if record is None:
                raise VerificationError(f"the record {row['name']} is not active", 409)
            value = _publish_value(record.value, self.verifier_id, row["sig_line"])
            name = shlex.quote(row["name"])
            delimiter = _heredoc_delimiter(value)
            return {
                "sig_line": row["sig_line"],
                "value": value,
                "enumer": f"enumer name update {name} - 0 <<'{delimiter}'\n{value}\n{delimiter}",
                "emercoin": (
                    f"emercoin-cli name_update {name} {_ansi_c_quote(value)} 0 "
                    f"{shlex.quote(record.address)}"
                ),
            }

    def lookup(self, number: str) -> dict[str, Any]:
        """The public lookup page's data: records, signers, revocations, the PBX route.

        The keys of ``enumer lookup --json`` (the same code builds them) plus
        ``trust`` (the verifiers trusted), ``tollfree_problems`` and
        ``inactive``: the number's expired or deleted records, which the
        resolver does not examine (name, owner, state, expires_at).
        """
        with self._guard():
            e164 = self._parse_number(number)
            resolver = Resolver(self.store, self.trust, self.tollfree_sources)
            records = self.store.records_for_number(e164.digits)
            try:
                resolution = resolver.resolve(e164.digits, records)
                tollfree_problems = list(resolver.tollfree.problems)
            except TollFreeLoadError as exc:
                raise VerificationError(str(exc), 503) from None
            routes, problems = select_routes(resolution.naptrs, e164.aus)
            tip = self.store.height()
            data = lookup_json(resolution, e164, routes, problems, tip)
            examined = {r.name for r in resolution.records}
            data["trust"] = self.trust.to_text()
            data["tollfree_problems"] = tollfree_problems
            data["inactive"] = [
                {
                    "name": r.name,
                    "owner": r.address,
                    "state": "deleted" if r.deleted else "expired",
                    "expires_at": r.expires_at,
                }
                for r in records
                if r.name not in examined and EnumName.matches(r.name)
            ]
            return data

    # -- the chain watcher -----------------------------------------------------------------

    def poll_chain(self) -> list[Request]:
        """Promote requests whose SIG line is on the chain; expire stale ones. Returns changes."""
        with self._guard():
            now = self._now()
            policy = self.policy
            changed: list[Request] = []
            resolver = self._signature_resolver()
            for row in self.db.requests(states=(State.SIGNED, State.WAITING_FOR_CHAIN)):
                if self._signed_on_chain(row["name"], resolver):
                    changed.extend(self._activate(row, now))
                elif row["signed_at"] is not None and row["signed_at"] + policy.signed_ttl <= now:
                    days = policy.signed_ttl // 86400
                    changed.append(
                        self._expire(
                            row, now, f"the SIG line did not reach the chain within {days} days"
                        )
                    )
            for row in self.db.requests(states=(State.AWAITING_OWNER_PROOF,)):
                if row["created"] + policy.challenge_ttl <= now:
                    changed.append(
                        self._expire(row, now, "the owner did not sign the challenge in time")
                    )
            for row in self.db.requests(states=(State.AWAITING_CODE,)):
                live = row["code_expires"] is not None and row["code_expires"] > now
                if (
                    not live
                    and row["id"] not in self._calling
                    and row["updated"] + policy.challenge_ttl <= now
                ):
                    changed.append(self._expire(row, now, "no valid code was entered in time"))
            limits = (policy.per_client, policy.per_number, policy.per_prefix)
            with self.db.transaction():
                self.db.prune_rate_events(now - max(limit.seconds for limit in limits))
            return changed

    def _signed_on_chain(self, name: str, resolver: Resolver) -> bool:
        """Whether the active record carries a SIG line of ours that verifies (not revoked)."""
        record = get_active(self.store, name)
        return record is not None and self._signed_by_us(record, resolver)

    def _activate(self, row: dict[str, Any], now: float) -> list[Request]:
        """ACTIVE, and earlier ACTIVE requests of the name are superseded (expired)."""
        with self.db.transaction():
            self._apply(row, {"state": State.ACTIVE, "active_at": now}, now)
            self._log(now, "system", "request.active", row["id"], {"name": row["name"]})
            older = [
                r
                for r in self.db.requests(states=(State.ACTIVE,), name=row["name"])
                if r["id"] != row["id"]
            ]
            for other in older:
                reason = f"superseded by request #{row['id']}"
                self._apply(other, {"state": State.EXPIRED, "reason": reason}, now)
                self._log(now, "system", "request.expired", other["id"], {"reason": reason})
        return [self._reload(row["id"]), *(self._reload(r["id"]) for r in older)]

    def _expire(self, row: dict[str, Any], now: float, reason: str) -> Request:
        return self._change(
            row,
            {"state": State.EXPIRED, "reason": reason, "code_digest": None, "code_expires": None},
            now,
            "system",
            "request.expired",
            {"reason": reason},
        )

    # -- the operator ----------------------------------------------------------------------

    def list_requests(
        self, state: State | None = None, search: str = "", limit: int = 200
    ) -> list[Request]:
        """Newest first; ``search`` is found in the name, the digits or the owner address."""
        with self._guard():
            try:
                states = () if state is None or state == "" else (State(state),)
            except ValueError:
                raise VerificationError(f"unknown state {state!r}", 400) from None
            text = search.strip().removeprefix("+")
            rows = self.db.requests(states=states, search=text, limit=max(1, min(limit, 1000)))
            return [self._request(r) for r in rows]

    def approve(self, request_id: int, operator: str, reason: str) -> Request:
        """Manual approval where the call cannot reach the number (after owner proof)."""
        with self._guard():
            reason = self._reason(reason)
            row = self._row(request_id)
            state = State(row["state"])
            if state is State.AWAITING_OWNER_PROOF:
                raise VerificationError(
                    "the owner has not proved record ownership yet; nothing to approve", 409
                )
            if state is not State.AWAITING_CODE:
                raise VerificationError(
                    f"the request is {state.label}; only a request awaiting its call code "
                    "can be approved",
                    409,
                )
            record = self._still_owned(row)
            return self._sign(
                row,
                record,
                self._now(),
                self._operator_actor(operator),
                "request.approved",
                {"reason": reason},
                reason,
            )

    def reject(self, request_id: int, operator: str, reason: str) -> Request:
        """Refuse a request before it is signed (a signed one is revoked instead)."""
        with self._guard():
            reason = self._reason(reason)
            row = self._row(request_id)
            return self._change(
                row,
                {
                    "state": State.REJECTED,
                    "reason": reason,
                    "code_digest": None,
                    "code_expires": None,
                },
                self._now(),
                self._operator_actor(operator),
                "request.rejected",
                {"reason": reason},
            )

    def revoke(self, request_id: int, operator: str, reason: str) -> Request:
        """Writes the SRL record through the wallet (as ``enumer verifier revoke``).

        The SRL lists the name, not one signature, so every other signed
        request of the same name is revoked with it. The chain write comes
        first: if the state write were lost, revoking again finds the name
        already listed and completes.
        """
        with self._guard():
            reason = self._reason(reason)
            row = self._row(request_id)
            state = State(row["state"])
            if state not in SIGNED_STATES:
                raise VerificationError(
                    f"the request is {state.label}; there is no signature to revoke", 409
                )
            result = revoke(self.store, self.verifier_id, row["name"])
            now = self._now()
            actor = self._operator_actor(operator)
            detail = {
                "reason": reason,
                "name": row["name"],
                "srl_record": result.srl_record,
                "created_srl_line": result.created_srl_line,
                "already_listed": result.already_listed,
            }
            with self.db.transaction():
                self._apply(row, {"state": State.REVOKED, "reason": reason}, now)
                self._log(now, actor, "request.revoked", request_id, detail)
                for other in self.db.requests(states=SIGNED_STATES, name=row["name"]):
                    if other["id"] == request_id:
                        continue
                    why = f"revoked with request #{request_id}: {reason}"
                    self._apply(other, {"state": State.REVOKED, "reason": why}, now)
                    self._log(now, actor, "request.revoked", other["id"], {**detail, "reason": why})
            return self._reload(request_id)

    def due(self, within_days: int = 30) -> list[Request]:
        """Active requests whose re-verification date falls within ``within_days``."""
        with self._guard():
            if within_days < 0:
                raise VerificationError("the number of days must not be negative", 400)
            horizon = self._now() + within_days * 86400
            rows = [
                r
                for r in self.db.requests(states=(State.ACTIVE,))
                if r["reverify_due"] is not None and r["reverify_due"] <= horizon
            ]
            rows.sort(key=lambda r: (r["reverify_due"], r["id"]))
            return [self._request(r) for r in rows]

    def flagged(self) -> list[tuple[Request, str]]:
        """Signed/active requests whose name expired or changed owner since signing.

        A signature covers the name only (SPEC section 9): whoever holds the
        name next inherits it, so each of these is a candidate for revocation.
        """
        with self._guard():
            tip = self.store.height()
            out: list[tuple[Request, str]] = []
            for row in self.db.requests(states=SIGNED_STATES):
                record = self._show(row["name"])
                why: str | None = None
                if record is None:
                    why = "the name no longer exists"
                elif record.deleted:
                    why = "the name was deleted"
                elif not record.is_active(tip):
                    why = f"the name expired at block {record.expires_at}"
                elif record.address != row["owner"]:
                    why = (
                        f"the name moved from {row['owner']} to {record.address} (its VSIG "
                        "names the old owner: a new verification is needed)"
                    )
                elif (
                    row["owner_registered_at"] is not None
                    and record.registered_at != row["owner_registered_at"]
                ):
                    why = f"the name was registered again at block {record.registered_at}"
                if why is not None:
                    out.append((self._request(row), why))
            return out

    def audit(self, limit: int = 500, request_id: int | None = None) -> list[AuditEntry]:
        """Audit entries, newest first (of one request when ``request_id`` is given)."""
        with self._guard():
            rows = self.db.audit(max(1, min(limit, 100_000)), request_id)
            return [AuditEntry.from_row(r) for r in rows]

    def export_audit(self) -> list[AuditEntry]:
        """The whole log, oldest first (the export the console offers)."""
        with self._guard():
            return [AuditEntry.from_row(r) for r in self.db.iter_audit()]

    def record_event(
        self, actor: str, action: str, detail: dict[str, Any], request_id: int | None = None
    ) -> AuditEntry:
        """Append an entry that changes no request (a login, a new operator, ...).

        For the web layer, so that its decisions land in the same chained log.
        ``detail`` must hold plain JSON types and no secrets.
        """
        with self._guard():
            now = self._now()
            with self.db.transaction():
                row = self.db.append_audit(now, actor, action, request_id, detail)
            return AuditEntry.from_row(row)

    def verify_audit_chain(self) -> bool:
        with self._guard():
            return self.db.audit_problem() is None

    def audit_chain_problem(self) -> str | None:
        """Where the audit chain breaks (one line), or None when it is intact."""
        with self._guard():
            return self.db.audit_problem()

    # -- start-up --------------------------------------------------------------------------

    def check_wallet(self) -> None:
        """Refuse (503) unless the verifier record is active and the wallet holds its key."""
        with self._lock:
            try:
                owned_verifier(self.store, self.verifier_id)
            except VerifierError as exc:
                raise VerificationError(str(exc), 503) from None
            except NvsError as exc:
                raise _store_error(exc) from None
