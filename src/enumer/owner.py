"""A record owner's bound signature (SPEC section 11): making and renewing ``OSIG=``.

The OSIG binds a record's directives to its owner's key at a time, so no relay
can rewrite a route unseen.  Every tool that writes a record's directives
recomputes it when the wallet (embedded ledger or node, through
``signmessage``) holds the owner's key; when the key is elsewhere, it says
what to sign and how to add the result.  A route change needs only a new OSIG,
never a new verification.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from enumer import crypto
from enumer.bound import (
    OsigLine,
    bound_lines,
    check_base64,
    directives_digest,
    line_key,
    osig_message,
    replace_osig,
)
from enumer.nvs import NameStore, get_active, tip_time
from enumer.records import EnumName
from enumer.verifier import update_keeping_owner


class OwnerError(ValueError):
    """An owner operation that cannot be done; the message is one precise line."""


@dataclass(frozen=True)
class SealRequest:
    """What the owner's wallet must sign to seal ``name``, when this wallet cannot."""

    name: str
    owner: str
    time: int
    digest: str

    @property
    def message(self) -> str:
        return osig_message(self.name, self.time, self.digest)

    def instructions(self) -> list[str]:
        """The exact ``signmessage`` call and the command that adds its result."""
        quoted = self.message.replace("'", "'\\''")
        return [
            f"the wallet has no key for {self.owner} (owner of {self.name}); sign this "
            "message with the owner's wallet:",
            f"  emercoin-cli signmessage {self.owner} '{quoted}'",
            "then add the result where the record can be updated:",
            f"  enumer record seal {self.name} --time {self.time} --signature SIGNATURE",
        ]


def osig_time(value: str, now: int) -> int:
    """The time of a new OSIG: now, but always after the record's newest OSIG, so
    consumers that already accepted that one accept the new one (freshness)."""
    times = [r.parsed.time for r in bound_lines(value) if isinstance(r.parsed, OsigLine)]
    return max([now, *(t + 1 for t in times)])


def seal_request(name: str, value: str, owner: str, now: int | None = None) -> SealRequest:
    """The message that seals ``value`` as the directives of ``name`` owned by ``owner``."""
    EnumName.from_text(name)
    try:
        crypto.Address.from_text(owner)
    except crypto.CryptoError as exc:
        raise OwnerError(f"the owner {owner} of {name} cannot make an OSIG: {exc}") from None
    when = osig_time(value, int(time.time()) if now is None else now)
    return SealRequest(name, owner, when, directives_digest(value))


def sealed(store: NameStore, name: str, value: str, owner: str) -> str | SealRequest:
    """``value`` with a fresh OSIG by ``owner`` (every older OSIG line replaced), or,
    when the wallet holds no key for ``owner``, the request to sign elsewhere."""
    request = seal_request(name, value, owner, max(int(time.time()), tip_time(store)))
    if not store.is_mine(owner):
        return request
    signature = store.sign_message(owner, request.message)
    return replace_osig(value, OsigLine(request.time, signature))


def with_osig(name: str, value: str, owner: str, when: int, signature: str) -> str:
    """``value`` with the OSIG the owner made elsewhere, checked before it is written."""
    check_base64(signature, "OSIG")
    message = osig_message(name, when, directives_digest(value))
    try:
        ok = crypto.verify_message(owner, signature, message)
    except crypto.CryptoError as exc:
        raise OwnerError(f"not an OSIG of {owner}: {exc}") from None
    if not ok:
        raise OwnerError(
            f"the signature does not verify against {owner} over the message {message!r} "
            "(were the directives changed since it was made?)"
        )
    return replace_osig(value, OsigLine(when, signature))


def seal_record(
    store: NameStore, name: str, when: int | None = None, signature: str | None = None
) -> tuple[str | None, SealRequest | None]:
    """``record seal``: add or renew the OSIG of an active record; (txid, None) when
    written, (None, request) when the owner's key is elsewhere."""
    record = get_active(store, name)
    if record is None:
        raise OwnerError(f"record {name} does not exist or is not active")
    if signature is not None:
        if when is None:
            raise OwnerError("--signature needs the --time the message was made with")
        value = with_osig(name, record.value, record.address, when, signature)
    else:
        result = sealed(store, name, record.value, record.address)
        if isinstance(result, SealRequest):
            return None, result
        value = result
    return update_keeping_owner(store, name, value, 0), None


def reseal_on_change(
    store: NameStore,
    name: str,
    old: str | None,
    old_owner: str | None,
    new: str,
    owner: str,
) -> str | SealRequest:
    """The value a directives-changing command writes: ``new`` resealed when the
    record uses bound signatures (``old`` or ``new`` has an OSIG line) and its
    directives or owner changed; the signing request when the key is elsewhere."""
    uses_osig = any(line_key(r.text) == "osig" for v in (old or "", new) for r in bound_lines(v))
    unchanged = old is not None and directives_digest(old) == directives_digest(new)
    if not uses_osig or (unchanged and old_owner == owner):
        return new
    return sealed(store, name, new, owner)
