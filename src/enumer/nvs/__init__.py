"""Name-Value Storage: the records as the chain holds them, and the stores that hold them.

ENUMER reads and writes NVS through one interface, :class:`NameStore`, with two
back-ends: the embedded SQLite ledger (:mod:`enumer.nvs.ledger`, the default,
for development, demos and private networks) and an Emercoin node over JSON-RPC.
Everything above this package (trust, resolver, gateway, CLI) sees only the
interface, so that a gateway tested on the ledger behaves the same on a node.

The semantics and the error codes and texts are Emercoin's (SPEC section 3 and
``shared/reference/rpc``), so that users see the node's messages for the same
mistakes whichever back-end they use.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from enumer.emercoin import MAX_NAME_BYTES, MAX_VALUE_BYTES

# Error codes of the Emercoin node (JSON-RPC, ``src/rpc/protocol.h``), as captured in
# shared/reference/rpc: the client, ``enumer node`` and the ledger all take them from here.
RPC_MISC_ERROR = -1
RPC_TYPE_ERROR = -3
RPC_WALLET_ERROR = -4
RPC_INVALID_ADDRESS_OR_KEY = -5
RPC_INVALID_PARAMETER = -8
RPC_CLIENT_IN_INITIAL_DOWNLOAD = -10
RPC_WALLET_NOT_FOUND = -18
RPC_WALLET_NOT_SPECIFIED = -19
RPC_DATABASE_ERROR = -20
RPC_IN_WARMUP = -28
RPC_INVALID_REQUEST = -32600
RPC_METHOD_NOT_FOUND = -32601
RPC_INTERNAL_ERROR = -32603
RPC_PARSE_ERROR = -32700


class NvsError(Exception):
    """A refused NVS operation, with the node's code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        # The node ends some messages with a newline; a CLI line must not.
        return self.message.strip().replace("\n", "; ")


def name_not_found(code: int = RPC_WALLET_ERROR) -> NvsError:
    return NvsError(code, "failed to read from name DB")


@dataclass(frozen=True)
class NameRecord:
    """The current state of one name: what ``name_show`` reports.

    ``height`` is the block of the last operation, ``registered_at`` the block
    of the ``name_new`` that started the current registration.
    """

    name: str
    value: str
    address: str
    txid: str
    height: int
    registered_at: int
    expires_at: int
    time: int
    deleted: bool = False
    vout: int = 0

    def is_active(self, tip: int) -> bool:
        """Active while the chain height is ``<= expires_at`` and not deleted."""
        return not self.deleted and tip <= self.expires_at

    def show_json(self, tip: int) -> dict[str, Any]:
        """The node's ``name_show`` object for this record at chain height ``tip``."""
        expires_at = 0 if self.deleted else self.expires_at
        out: dict[str, Any] = {
            "name": self.name,
            "value": "" if self.deleted else self.value,
            "txid": self.txid,
            "address": self.address,
            "vout": self.vout,
            "expires_in": expires_at - tip,
            "expires_at": expires_at,
            "time": self.time,
        }
        if self.deleted:
            out["deleted"] = True
        elif expires_at - tip <= 0:
            out["expired"] = True
        return out


@dataclass(frozen=True)
class NameOperation:
    """One entry of ``name_history``."""

    name: str
    txid: str
    height: int
    time: int
    address: str
    operation: str  # name_new | name_update | name_delete
    days_added: int | None = None
    value: str | None = None
    vout: int = 0

    def history_json(self, is_mine: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "txid": self.txid,
            "time": self.time,
            "height": self.height,
            "address": self.address,
            "vout": self.vout,
        }
        if is_mine:
            out["address_is_mine"] = "true"
        out["operation"] = self.operation
        if self.operation != "name_delete":
            out["days_added"] = self.days_added
            out["value"] = self.value
        return out


@runtime_checkable
class NameReader(Protocol):
    """What the trust layer, the resolver and the gateway need: reads only."""

    network_name: str

    def height(self) -> int:
        """The chain tip height."""
        ...

    def show(self, name: str) -> NameRecord:
        """The record, also when expired or deleted; :class:`NvsError` when never registered."""
        ...

    def history(self, name: str, full: bool = False) -> list[NameOperation]: ...

    def records_for_number(self, digits: str) -> list[NameRecord]:
        """Every record ``enum:<digits>:<N>`` (any state), ordered by N."""
        ...

    def change_stamp(self) -> int:
        """A number that grows with every change; what :meth:`changed_since` takes."""
        ...

    def changed_since(self, height: int) -> list[NameRecord]:
        """Every name changed after change stamp ``height`` (any state)."""
        ...

    def iter_prefix(self, prefix: str) -> Iterator[NameRecord]:
        """Every name starting with ``prefix`` (any state), in name order."""
        ...

    def expiring_between(self, low: int, high: int) -> list[NameRecord]:
        """Undeleted names with ``low <= expires_at < high``: those that stop being
        active when the tip moves from ``low`` to ``high``."""
        ...


class NameStore(NameReader, Protocol):
    """Reads plus the wallet's writes, with ``name_new``/``name_update``/``name_delete``
    semantics: owner address, rental days, transfer with a to-address."""

    def name_new(self, name: str, value: str, days: int, to: str | None = None) -> str: ...

    def name_update(self, name: str, value: str, days: int, to: str | None = None) -> str: ...

    def name_delete(self, name: str) -> str: ...

    def filter(
        self, regexp: str = "", maxage: int = 0, start: int = 0, count: int = 0
    ) -> list[NameRecord]:
        """``name_filter``: names matching ``regexp`` (searched), expired kept, deleted not."""
        ...

    def get_new_address(self, kind: str = "bech32") -> str: ...

    def is_mine(self, address: str) -> bool: ...

    def sign_message(self, address: str, message: str) -> str: ...

    def list_names(self) -> list[dict[str, Any]]: ...


def get_active(store: NameReader, name: str) -> NameRecord | None:
    """The record when it is active at the current tip, else None (absent, expired, deleted).

    Only the node's "no such name" (``name_show``'s code -4) means absent; any
    other failure (a node that cannot be reached, is warming up or downloading
    blocks) is raised, so that an outage is never taken for a missing record.
    """
    try:
        record = store.show(name)
    except NvsError as exc:
        if exc.code == RPC_WALLET_ERROR:
            return None
        raise
    return record if record.is_active(store.height()) else None


def tip_time(store: NameReader) -> int:
    """The block time of the chain's tip (Unix seconds), where bound signatures'
    ``not-after`` is read (SPEC 11): every gateway on the same chain decides alike.

    Stores that know it say so with ``tip_time()``; the clock is the fallback of
    a store that cannot (its blocks are made now).
    """
    reader = getattr(store, "tip_time", None)
    return int(reader()) if callable(reader) else int(time.time())


def check_name_and_value(name: str, value: str) -> None:
    """The node's size checks, with its exact (joined) messages."""
    problems = ""
    if len(name.encode()) > MAX_NAME_BYTES:
        problems += "name is too long.\n"
    if len(value.encode()) > MAX_VALUE_BYTES:
        problems += "value is too long.\n"
    if problems:
        raise NvsError(RPC_INTERNAL_ERROR, problems)
