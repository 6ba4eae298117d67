"""Verification requests, their states and the policy that bounds what strangers can do.

Pure domain code: every function takes the time it needs as an argument, so
the same rules run in the service, in tests and in a replay of the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from enum import StrEnum


class VerificationError(ValueError):
    """A refused step of the owner's path or of an operator action.

    ``status`` is the HTTP status the web layer answers with; the message is
    one line meant for the person at the form (never a traceback). ``detail``
    holds what only operators may see (a trunk's or a node's address, a
    wallet's complaint): the owner's pages never show it, the console and the
    operators' log do.
    """

    def __init__(self, message: str, status: int = 400, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail

    def for_operator(self) -> str:
        """The message with its ``detail``, for the console and the log."""
        return f"{self}: {self.detail}" if self.detail else str(self)


class State(StrEnum):
    """Where a request stands. The values are what the API and the console show."""

    AWAITING_OWNER_PROOF = "awaiting-owner-proof"
    AWAITING_CODE = "awaiting-code"
    SIGNED = "signed"
    WAITING_FOR_CHAIN = "waiting-for-chain"
    ACTIVE = "active"
    REJECTED = "rejected"
    REVOKED = "revoked"
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        return self in (State.REJECTED, State.REVOKED, State.EXPIRED)

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    State.AWAITING_OWNER_PROOF: "awaiting owner proof",
    State.AWAITING_CODE: "awaiting call code",
    State.SIGNED: "signed",
    State.WAITING_FOR_CHAIN: "waiting for the chain",
    State.ACTIVE: "active",
    State.REJECTED: "rejected",
    State.REVOKED: "revoked",
    State.EXPIRED: "expired",
}

#: Every allowed move. Anything else is a bug or a replayed form, refused with 409.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.AWAITING_OWNER_PROOF: frozenset({State.AWAITING_CODE, State.REJECTED, State.EXPIRED}),
    State.AWAITING_CODE: frozenset({State.SIGNED, State.REJECTED, State.EXPIRED}),
    State.SIGNED: frozenset({State.WAITING_FOR_CHAIN, State.ACTIVE, State.REVOKED, State.EXPIRED}),
    State.WAITING_FOR_CHAIN: frozenset({State.ACTIVE, State.REVOKED, State.EXPIRED}),
    State.ACTIVE: frozenset({State.REVOKED, State.EXPIRED}),
    State.REJECTED: frozenset(),
    State.REVOKED: frozenset(),
    State.EXPIRED: frozenset(),
}


def check_transition(current: State, target: State) -> None:
    """Raise :class:`VerificationError` (409) unless ``current -> target`` is allowed."""
    if target not in TRANSITIONS[current]:
        raise VerificationError(
            f"the request is {current.label}; it cannot become {target.label}", 409
        )


# -- challenge and code ---------------------------------------------------------------------


def challenge_text(verifier: str, name: str, owner: str, nonce: str) -> str:
    """The one line the record's owner signs with ``signmessage``.

    It names the verifier, the record and its owner address so that a
    signature made for one request, one verifier or one owner proves nothing
    for another; the nonce makes it single-use.
    """
    return f"ENUMER verification for {verifier}: I own {name} at {owner}. Nonce {nonce}"


def new_nonce() -> str:
    return secrets.token_hex(8)


def new_code(digits: int) -> str:
    """A uniformly random numeric code with leading zeros kept."""
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def code_digest(secret: bytes, request_id: int, code: str) -> str:
    """What the database keeps of a code: a keyed hash, bound to its request.

    A short code is guessable offline from a plain hash; keyed with the
    service's secret, a stolen database does not give codes away.
    """
    return hmac.new(secret, f"{request_id}:{code}".encode(), hashlib.sha256).hexdigest()


def token_digest(token: str) -> str:
    """What a state file keeps of a bearer secret (a request token, a session, an API key).

    The secrets carry 144 bits or more of randomness, so a plain SHA-256
    cannot be reversed, and it lets the secret be found in one indexed read.
    """
    return hashlib.sha256(token.encode()).hexdigest()


def code_matches(secret: bytes, request_id: int, code: str, digest: str) -> bool:
    return hmac.compare_digest(code_digest(secret, request_id, code.strip()), digest)


# -- policy -------------------------------------------------------------------------------

#: Prefixes never called: premium-rate, shared-cost and satellite / international
#: networks where a call costs the verifier money or earns a fraudster revenue
#: (international premium rate 979, UIFN-like 808/878, Inmarsat 870, satellite 881,
#: international networks 882/883, North American 900/976 premium, UK 09/087/070,
#: German 0900/0137, French 089, and others). Digits are E.164 without '+'.
DEFAULT_DENY_PREFIXES: tuple[str, ...] = (
    "979", "808", "870", "878", "881", "882", "883", "888",
    "1900", "1976",
    "449", "4487", "4470",
    "49900", "49137", "4919",
    "3389", "3381", "3382",
    "3989", "34803", "34806", "34807", "34905",
    "6190", "61190",
)  # fmt: skip


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` events per ``seconds`` for one key."""

    count: int
    seconds: int

    @classmethod
    def from_text(cls, text: str) -> RateLimit:
        """``5/600`` -> 5 events per 600 seconds."""
        count, _, seconds = text.partition("/")
        try:
            limit = cls(int(count), int(seconds or "3600"))
        except ValueError:
            raise VerificationError(f"bad rate limit {text!r} (expected COUNT/SECONDS)") from None
        if limit.count < 1 or limit.seconds < 1:
            raise VerificationError(f"bad rate limit {text!r}: both numbers must be positive")
        return limit

    def to_text(self) -> str:
        return f"{self.count}/{self.seconds}"


@dataclass(frozen=True)
class Policy:
    """What the service allows; every limit bounds something a stranger controls."""

    code_digits: int = 4
    code_ttl: int = 600  # seconds a code is valid
    code_attempts: int = 5  # wrong entries before the code is void
    calls_per_request: int = 3
    challenge_ttl: int = 3600  # seconds to prove record ownership
    signed_ttl: int = 30 * 86400  # seconds to publish the SIG line before the request expires
    reverify_days: int = 182
    allow_prefixes: tuple[str, ...] = ()  # empty: every destination not denied
    deny_prefixes: tuple[str, ...] = DEFAULT_DENY_PREFIXES
    per_client: RateLimit = field(default_factory=lambda: RateLimit(20, 3600))
    per_number: RateLimit = field(default_factory=lambda: RateLimit(3, 3600))
    per_prefix: RateLimit = field(default_factory=lambda: RateLimit(30, 3600))
    prefix_digits: int = 5  # how many leading digits make "a number prefix" for limits

    def destination_problem(self, digits: str) -> str | None:
        """Why ``digits`` (E.164, no '+') must not be called, or None when it may be."""
        for prefix in self.deny_prefixes:
            if digits.startswith(prefix):
                return f"+{prefix}... is a premium-rate or high-risk prefix: not called"
        if self.allow_prefixes and not any(digits.startswith(p) for p in self.allow_prefixes):
            return "the service does not call this destination (not in its allow-list)"
        return None

    def number_prefix(self, digits: str) -> str:
        return digits[: self.prefix_digits]


def parse_prefixes(text: str) -> tuple[str, ...]:
    """``"+1900, 44 9"`` -> ``("1900", "449")``: separators and '+' ignored."""
    out = []
    for item in text.replace(";", ",").split(","):
        digits = "".join(c for c in item if not c.isspace()).lstrip("+")
        if not digits:
            continue
        if not digits.isdigit() or len(digits) > 15:
            raise VerificationError(f"bad prefix {item.strip()!r}: digits of an E.164 number")
        out.append(digits)
    return tuple(out)
