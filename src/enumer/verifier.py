"""A verifier's operations through its wallet: create ``ver:`` records, sign, revoke.

The key never leaves the wallet (embedded ledger or node): signing asks the
store to ``signmessage`` with the verifier record's owner address.  Every update
of a ``ver:`` record keeps its owner, because moving it would silently
invalidate every signature the verifier ever made (SPEC section 3).
"""

from __future__ import annotations

from dataclasses import dataclass

from enumer.bound import DEFAULT_VALID_DAYS, VsigLine, not_after_for, replace_vsig
from enumer.crypto import Address, CryptoError
from enumer.nvs import RPC_INTERNAL_ERROR, NameRecord, NameStore, NvsError, get_active, tip_time
from enumer.records import EnumName, EnumValue, Signature
from enumer.trust import SrlConfig, SrlState, srl_lists

#: The SRL line a verifier gets when it first revokes: 32 buckets, like the reference.
DEFAULT_SRL_BITS = 5
SRL_DAYS = 3650
SRL_HEADER = "ENUMER signature revocation list"


class VerifierError(ValueError):
    """A verifier operation that cannot be done; the message is one precise line."""


def verifier_name(ident: str) -> str:
    """``enum`` -> ``ver:enum``; a full ``ver:`` name is kept."""
    name = ident if ident.startswith("ver:") else f"ver:{ident}"
    if len(name) <= 4 or any(c.isspace() or c in "|," for c in name):
        raise VerifierError(f"bad verifier id {ident!r}: no blanks, '|' or ','")
    return name


def update_keeping_owner(
    store: NameStore, name: str, value: str, days: int, to: str | None = None, force: bool = False
) -> str:
    """``name_update`` as ENUMER means it: the owner stays unless a transfer is asked.

    The node moves a name to a fresh wallet address when no to-address is given.
    For a ``ver:`` record that silently invalidates every signature the verifier
    made, so ENUMER passes the current owner, and refuses to move a ``ver:``
    record to another address unless ``force`` is set.
    """
    try:
        current = store.show(name)
    except NvsError:
        # Let the store refuse it with the node's own error ("... on an inactive name").
        return store.name_update(name, value, days, to)
    if to is None:
        to = current.address
    elif name.startswith("ver:") and not force and not _same_key(to, current.address):
        raise NvsError(
            RPC_INTERNAL_ERROR,
            f"refusing to move {name} from {current.address} to {to}: every "
            "signature this verifier made would stop verifying (use --force)",
        )
    return store.name_update(name, value, days, to)


def _same_key(one: str, other: str) -> bool:
    """Whether two addresses hold the same key (P2PKH and P2WPKH forms, any case)."""
    try:
        return Address.from_text(one).key_hash == Address.from_text(other).key_hash
    except CryptoError:
        return one == other


def create_verifier(store: NameStore, ident: str, description: str, days: int) -> str:
    """``verifier new``: a ``ver:`` record owned by a fresh P2PKH address; returns it.

    P2PKH rather than bech32 so that older gateways, which only know P2PKH
    verifiers, accept the signatures too.
    """
    name = verifier_name(ident)
    address = store.get_new_address("legacy")
    store.name_new(name, description, days, address)
    return address


def owned_verifier(store: NameStore, ident: str) -> tuple[str, str, str]:
    """(name, owner address, value) of an active ``ver:`` record the wallet can sign for."""
    name = verifier_name(ident)
    record = get_active(store, name)
    if record is None:
        raise VerifierError(f"verifier record {name} does not exist or is not active")
    if not store.is_mine(record.address):
        raise VerifierError(f"the wallet has no key for {name} (owned by {record.address})")
    return name, record.address, record.value


def sign_name(store: NameStore, ident: str, enum_name: str) -> str:
    """The verifier's signature (base64) over an ENUM record name."""
    EnumName.from_text(enum_name)
    _, address, _ = owned_verifier(store, ident)
    return store.sign_message(address, enum_name)


@dataclass(frozen=True)
class BoundSignature:
    """What ``verifier sign`` gives a record: the reference ``SIG=`` line (for emcdns
    and older gateways) and the ``VSIG=`` line binding the name to its owner."""

    sig_line: str
    vsig: VsigLine
    owner: str

    @property
    def signature(self) -> str:
        return self.sig_line.partition("|")[2]

    @property
    def lines(self) -> tuple[str, str]:
        return self.sig_line, self.vsig.to_text()


def sign_bound(
    store: NameStore,
    ident: str,
    enum_name: str,
    valid_days: int = DEFAULT_VALID_DAYS,
    now: int | None = None,
) -> BoundSignature:
    """``SIG=`` and ``VSIG=`` of ``enum_name`` for its current owner, valid for
    ``valid_days`` after the current day (of ``now``, by default the chain's tip
    time) (SPEC 11)."""
    EnumName.from_text(enum_name)
    name, address, _ = owned_verifier(store, ident)
    record = get_active(store, enum_name)
    if record is None:
        raise VerifierError(
            f"record {enum_name} does not exist or is not active: a VSIG names its owner"
        )
    not_after = not_after_for(tip_time(store) if now is None else now, valid_days)
    vsig = VsigLine(name, not_after, "")
    signature = store.sign_message(address, vsig.message(enum_name, record.address))
    sig = store.sign_message(address, enum_name)
    return BoundSignature(f"SIG={name}|{sig}", VsigLine(name, not_after, signature), record.address)


def append_bound(store: NameStore, ident: str, enum_name: str, signed: BoundSignature) -> str:
    """Add the SIG line and put the VSIG line (replacing this verifier's older one)
    into a record the wallet owns, keeping its owner."""
    record = _owned_record(store, enum_name, "lines")
    if record.address != signed.owner:
        raise VerifierError(
            f"{enum_name} changed owner to {record.address} since the VSIG was made for "
            f"{signed.owner}"
        )
    value = value_with_bound(record.value, ident, signed)
    if value == record.value:
        return record.txid
    return update_keeping_owner(store, enum_name, value, 0)


def _owned_record(store: NameStore, enum_name: str, what: str) -> NameRecord:
    record = get_active(store, enum_name)
    if record is None:
        raise VerifierError(f"record {enum_name} does not exist or is not active")
    if not store.is_mine(record.address):
        raise VerifierError(
            f"the wallet does not own {enum_name} (owned by {record.address}): "
            f"give the {what} to the record's owner"
        )
    return record


def append_signature(store: NameStore, ident: str, enum_name: str, signature: str) -> str:
    """Add ``SIG=ver:ID|sig`` to a record the wallet owns, keeping its owner."""
    record = _owned_record(store, enum_name, "SIG line")
    value = value_with_signature(record.value, ident, signature)
    if value == record.value:
        return record.txid
    return update_keeping_owner(store, enum_name, value, 0)


def value_with_bound(current: str, ident: str, signed: BoundSignature) -> str:
    """``current`` plus the SIG line and this verifier's VSIG line (an older VSIG of
    the same verifier replaced), the owner's other lines kept byte for byte."""
    return replace_vsig(value_with_signature(current, ident, signed.signature), signed.vsig)


def value_with_signature(current: str, ident: str, signature: str) -> str:
    """``current`` plus the line ``SIG=ver:ID|signature`` (unchanged when already there).

    Appending keeps the owner's other lines byte for byte: the verifier adds
    its line and touches nothing it did not sign for.
    """
    value = EnumValue.from_text(current)
    updated = value.with_signature(Signature(verifier_name(ident), signature))
    if updated is value:
        return current
    return current.rstrip("\r\n") + "\n" + updated.lines[-1].to_text()


@dataclass(frozen=True)
class Revocation:
    srl_record: str
    created_srl_line: bool
    already_listed: bool


def revoke(store: NameStore, ident: str, enum_name: str) -> Revocation:
    """List ``enum_name`` in the verifier's SRL record (SPEC section 5).

    Adds an ``SRL=`` line to the verifier record when it has none, then
    creates or extends the SRL bucket record that the name hashes to.
    """
    EnumName.from_text(enum_name)
    name, address, value = owned_verifier(store, ident)
    srl = SrlConfig.from_value(value)
    created = False
    if srl.state is SrlState.REJECT_ALL or (srl.state is SrlState.NONE and srl.problem):
        raise VerifierError(f"{name} has an unusable SRL line ({srl.problem}); fix it first")
    if srl.state is SrlState.NONE:
        bare = name[4:]
        srl = SrlConfig.from_line(f"SRL={DEFAULT_SRL_BITS}|srl:{bare}-%02x")
        update_keeping_owner(store, name, value.rstrip("\r\n") + "\n" + srl.to_line(), 0)
        created = True
    srl_name = srl.record_name(enum_name)
    current = get_active(store, srl_name)
    if current is None:
        store.name_new(srl_name, f"{SRL_HEADER} of {name}\n{enum_name}\n", SRL_DAYS, address)
        return Revocation(srl_name, created, False)
    if srl_lists(current.value, enum_name, exact=True):
        return Revocation(srl_name, created, True)
    if not store.is_mine(current.address):
        raise VerifierError(
            f"SRL record {srl_name} is held by {current.address}, not by this "
            "wallet: it cannot be extended"
        )
    text = current.value.rstrip("\r\n") + "\n" + enum_name + "\n"
    try:
        store.name_update(srl_name, text, 0, current.address)
    except NvsError as exc:
        raise VerifierError(f"cannot update {srl_name}: {exc}") from None
    return Revocation(srl_name, created, False)
