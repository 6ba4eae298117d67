"""``enumer node``: the embedded ledger behind Emercoin's JSON-RPC.

A bitcoind-style JSON-RPC 1.0 server over HTTP (``POST /`` or ``/wallet/<name>``,
basic auth) that answers the ``name_*`` calls and the few wallet and chain
calls ENUMER and Emercoin tools use, from an embedded :class:`Ledger`, with the
node's parameters, JSON shapes (field names and order), error codes and
messages (``shared/reference/rpc``).  It lets everything that talks to a node
(:class:`enumer.nvs.rpc.NodeStore`, scripts written for ``emercoin-cli``) be
developed and tested without one.

Behaviour of the transport, as bitcoind/Emercoin 0.8 (``src/httprpc.cpp``):

* success: HTTP 200 ``{"result":..,"error":null,"id":..}`` (compact JSON and a
  newline); errors HTTP 500 with ``{"result":null,"error":{"code","message"},"id"}``,
  except -32600 (invalid request: HTTP 400) and -32601 (``Method not found``: HTTP
  404); a JSON array is a batch, answered with HTTP 200 and one reply per element;
* no or bad credentials: HTTP 401, empty body, ``WWW-Authenticate: Basic
  realm="jsonrpc"`` (a bad password also waits 250 ms); a method other than POST:
  405; invalid JSON: -32700 ``Parse error``;
* a wrong number of parameters: -1 with the method's help text; wrong types: -1
  ``JSON value is not an integer as expected`` (string, boolean likewise),
  ``JSON integer out of range``;
* anything unexpected: -32603 ``Internal error`` (logged, never a traceback to the
  client), and the server keeps serving.  Bodies over 1 MiB get 413, requests
  without Content-Length 411.

Quirks of the node reproduced because clients meet them on a real node:
``name_scan`` ignores ``max`` and returns every name from ``start`` in index
order (shorter names first); ``name_filter`` applies ``from``/``nb`` in index
order and then sorts by ``registered_at``, its ``maxage`` keeps
``tip - registered_at < maxage``, and with ``stat`` its ``count`` is always 0.

Where we deliberately differ:

* automine: every write is mined at once into the next block, so
  ``name_mempool`` is always ``[]`` and "pending operations" errors never occur;
  ``generatetoaddress``/``generate`` advance the ledger's height (at most
  200000 blocks a call) and return made-up but stable block hashes;
* ``name_show``'s ``filepath`` and a file path as ``valuetype`` of
  ``name_new``/``name_update`` are refused: the server never reads or writes
  files for a client; ``valuetype`` ``hex``/``base64`` values must decode to
  UTF-8 text (the ledger stores text);
* one wallet: every ``/wallet/<name>`` path reaches it; keys are not HD, so
  ``getaddressinfo`` has no ``hd*`` fields (like keys imported into bitcoind) and
  ``timestamp`` is 1 ("unknown", as bitcoind uses for imported keys);
* ``getnewaddress`` knows ``bech32`` (the default) and ``legacy`` only;
* ``name_filter`` takes RE2 syntax (no back-references), not boost::xpressive's; a
  regexp that both refuse gets the node's message where it is known
  (:data:`XPRESSIVE_MESSAGES`, e.g. ``unexpected end of pattern found``).

Authentication: ``--rpcuser``/``--rpcpassword``, or when no password is given a
cookie file ``<store>/.cookie`` holding ``__cookie__:<64 hex>`` (mode 0600,
written at start, removed at a clean stop), like the node's ``.cookie``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import hmac
import json
import logging
import os
import queue
import secrets
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, Final

from enumer import __version__, crypto
from enumer.emercoin import (
    BLOCKS_PER_DAY,
    COOKIE_FILE,
    COOKIE_USER,
    NETWORK_TO_CHAIN,
    TRUNCATED_SUFFIX,
)
from enumer.nvs import (
    RPC_DATABASE_ERROR,
    RPC_INTERNAL_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_INVALID_REQUEST,
    RPC_METHOD_NOT_FOUND,
    RPC_MISC_ERROR,
    RPC_PARSE_ERROR,
    RPC_TYPE_ERROR,
    RPC_WALLET_ERROR,
    NameRecord,
    NvsError,
)
from enumer.nvs.ledger import LEDGER_FILE, FilterRegexpError, Ledger

log = logging.getLogger("enumer.node")

MAX_BODY_BYTES: Final = 1 << 20
MAX_GENERATE: Final = 200_000
#: Requests executed at the same time (bitcoind: -rpcworkqueue 16); more wait, then 503.
WORK_QUEUE: Final = 16
WORK_QUEUE_WAIT: Final = 30.0
LOCK_FILE: Final = ".node.lock"
AUTH_FAILURE_DELAY: Final = 0.25
EMULATED_VERSION: Final = 80600  # Emercoin Core 0.8.6, whose RPC this emulates


# -- parameters ---------------------------------------------------------------------------


def _fault(message: str, code: int = RPC_MISC_ERROR) -> NvsError:
    return NvsError(code, message)


def get_str(value: Any) -> str:
    """UniValue ``get_str``."""
    if not isinstance(value, str):
        raise _fault("JSON value is not a string as expected")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fault("JSON string is not valid UTF-8") from None
    return value


def get_int(value: Any) -> int:
    """UniValue ``get_int``: a JSON number that is a 32-bit integer."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fault("JSON value is not an integer as expected")
    if isinstance(value, float) or not -(2**31) <= value < 2**31:
        raise _fault("JSON integer out of range")
    return value


def get_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fault("JSON value is not a boolean as expected")
    return value


class Call:
    """One method call: the ledger to use, the parameters, the server."""

    def __init__(self, server: NodeServer, ledger: Ledger, params: list[Any]) -> None:
        self.server = server
        self.ledger = ledger
        self.params = params

    def given(self, index: int) -> bool:
        return index < len(self.params) and self.params[index] is not None

    def string(self, index: int, default: str = "") -> str:
        return get_str(self.params[index]) if self.given(index) else default

    def integer(self, index: int, default: int = 0) -> int:
        return get_int(self.params[index]) if self.given(index) else default

    def boolean(self, index: int, default: bool = False) -> bool:
        return get_bool(self.params[index]) if self.given(index) else default


@dataclass(frozen=True)
class Method:
    """An RPC method: argument names (for named parameters), how many are required,
    the help text (the error message of a wrong parameter count) and the handler."""

    name: str
    args: tuple[str, ...]
    required: int
    help: str
    handler: Callable[[Call], Any]


# -- value encodings --------------------------------------------------------------------------


def encode_value(value: str, valuetype: str) -> str:
    """The node's ``encodeNameVal``: ``hex``, ``base64`` or the string itself."""
    if valuetype == "hex":
        return value.encode("utf-8").hex()
    if valuetype == "base64":
        return base64.b64encode(value.encode("utf-8")).decode("ascii")
    return value


def limit_value(text: str, size: int) -> str:
    """The node's ``limitString``: cut at ``size`` bytes (0: whole) and say so."""
    if size <= 0:  # the node's size is unsigned: a negative one never cuts
        return text
    raw = text.encode("utf-8")
    if len(raw) <= size:
        return text
    return raw[:size].decode("utf-8", errors="ignore") + TRUNCATED_SUFFIX


def decode_value(value: str, valuetype: str) -> str:
    """A value passed to ``name_new``/``name_update`` with ``valuetype``."""
    if valuetype == "":
        return value
    if valuetype == "hex":
        try:
            raw = bytes.fromhex(value) if len(value) % 2 == 0 else None
        except ValueError:
            raw = None
        if raw is None:
            raise _fault("failed to decode value as hex", RPC_INTERNAL_ERROR)
    elif valuetype == "base64":
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _fault("failed to decode value as base64", RPC_INTERNAL_ERROR) from None
    else:
        raise _fault(
            'enumer node does not read values from files: valuetype must be "", "hex" or "base64"',
            RPC_INTERNAL_ERROR,
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fault(
            "the decoded value is not UTF-8 text (enumer node stores text values)",
            RPC_INTERNAL_ERROR,
        ) from None


# -- addresses and descriptors ------------------------------------------------------------------

_DESC_INPUT: Final = (
    "0123456789()[],'/*abcdefgh@:$%{}IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~"
    'ijklmnopqrstuvwxyzABCDEFGH`#"\\ '
)
_DESC_CHECKSUM: Final = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def descriptor_checksum(desc: str) -> str:
    """``desc#checksum`` (BIP 380), as ``getaddressinfo`` shows descriptors."""
    generator = (0xF5DEE51989, 0xA9FDCA3312, 0x1BAB10E32D, 0x3706B1677A, 0x644D626FFD)

    def polymod(symbols: list[int]) -> int:
        chk = 1
        for value in symbols:
            top = chk >> 35
            chk = (chk & 0x7FFFFFFFF) << 5 ^ value
            for i in range(5):
                if (top >> i) & 1:
                    chk ^= generator[i]
        return chk

    symbols: list[int] = []
    groups: list[int] = []
    for c in desc:
        v = _DESC_INPUT.find(c)
        if v < 0:
            raise ValueError(f"character {c!r} not allowed in a descriptor")
        symbols.append(v & 31)
        groups.append(v >> 5)
        if len(groups) == 3:
            symbols.append(groups[0] * 9 + groups[1] * 3 + groups[2])
            groups = []
    if len(groups) == 1:
        symbols.append(groups[0])
    elif len(groups) == 2:
        symbols.append(groups[0] * 3 + groups[1])
    checksum = polymod([*symbols, 0, 0, 0, 0, 0, 0, 0, 0]) ^ 1
    return desc + "#" + "".join(_DESC_CHECKSUM[(checksum >> (5 * (7 - i))) & 31] for i in range(8))


def _parse_address(ledger: Ledger, text: Any, code: int, message: str) -> crypto.Address:
    try:
        return crypto.Address.from_text(get_str(text), ledger.network)
    except crypto.CryptoError:
        raise _fault(message, code) from None


def _script(address: crypto.Address) -> tuple[str, str, str]:
    """(scriptPubKey hex, asm, type)."""
    h = address.key_hash.hex()
    if address.kind is crypto.AddressKind.P2PKH:
        return (f"76a914{h}88ac", f"OP_DUP OP_HASH160 {h} OP_EQUALVERIFY OP_CHECKSIG", "pubkeyhash")
    return f"0014{h}", f"0 {h}", "witness_v0_keyhash"


def _public_key(ledger: Ledger, address: str) -> bytes | None:
    if not ledger.is_mine(address):
        return None
    key, _ = crypto.PrivateKey.from_wif(ledger.dump_privkey(address))
    return key.public_key_bytes()


# -- chain ---------------------------------------------------------------------------------------


def block_hash(network: str, height: int) -> str:
    """A stable made-up hash for block ``height`` of the ledger."""
    digest = hashlib.sha256(hashlib.sha256(f"enumer:{network}:{height}".encode()).digest())
    return digest.digest()[::-1].hex()


# -- method handlers -----------------------------------------------------------------------------


def _show(c: Call) -> Any:
    name = c.string(0)
    valuetype = c.string(1)
    if c.given(2):
        c.string(2)
        raise _fault(
            "enumer node does not write files: name_show's filepath is not supported",
            RPC_INVALID_PARAMETER,
        )
    record = c.ledger.show(name)
    out = record.show_json(c.ledger.height())
    out["value"] = encode_value(out["value"], valuetype)
    return out


def _history(c: Call) -> Any:
    name = c.string(0)
    full = c.boolean(1)
    valuetype = c.string(2)
    mine: dict[str, bool] = {}
    out = []
    for op in c.ledger.history(name, full):
        if op.address not in mine:
            mine[op.address] = c.ledger.is_mine(op.address)
        entry = op.history_json(mine[op.address])
        if "value" in entry and entry["value"] is not None:
            entry["value"] = encode_value(entry["value"], valuetype)
        out.append(entry)
    return out


def _index_order(record: NameRecord) -> tuple[int, bytes]:
    """The node's name index order: length-prefixed keys, so shorter names first."""
    raw = record.name.encode("utf-8")
    return len(raw), raw


#: What the node's regex engine (boost::xpressive) says where RE2 refuses the same
#: mistake, by the start of RE2's message: the node answers ``-1`` and this text.
XPRESSIVE_MESSAGES: Final = (
    ("missing ]", "unexpected end of pattern found"),
    ("missing )", "mismatched parenthesis"),
    ("unexpected )", "mismatched parenthesis"),
    ("trailing \\", "incomplete escape sequence"),
    ("no argument for repetition operator", "quantifier not expected"),
    ("invalid character class range", "invalid charset range"),
)


def node_regexp_message(error: FilterRegexpError) -> str:
    """The node's message for a regexp it would refuse the same way, else ours (which
    names the regexp and RE2's reason)."""
    for prefix, message in XPRESSIVE_MESSAGES:
        if error.reason.startswith(prefix):
            return message
    return str(error)


def filter_args(c: Call) -> tuple[str, int, int, int, bool, str, int]:
    """``name_filter``'s positional arguments, read as the node reads them: regexp,
    maxage, from, nb, stat (the word "stat"), valuetype, maxvaluelen."""
    regexp, maxage, start, nb = c.string(0), c.integer(1), c.integer(2), c.integer(3)
    return regexp, maxage, start, nb, c.string(4) == "stat", c.string(5), c.integer(6)


def _filter(c: Call) -> Any:
    regexp, maxage, start, nb, stat, valuetype, maxvaluelen = filter_args(c)
    tip = c.ledger.height()
    try:
        found = c.ledger.filter(regexp)
    except FilterRegexpError as exc:
        raise _fault(node_regexp_message(exc)) from None
    matched = sorted(found, key=_index_order)
    chosen: list[NameRecord] = []
    counted = 0
    for record in matched:
        if maxage != 0 and tip - record.registered_at >= maxage:
            continue
        counted += 1
        if counted < start + 1:
            continue
        chosen.append(record)
        if 0 < nb <= len(chosen):
            break
    if stat:
        # The node counts its output array before filling it: count is always 0.
        return {"blocks": tip, "count": 0}
    chosen.sort(key=lambda r: r.registered_at)
    return [listing_entry(r, tip, valuetype, maxvaluelen, registered=True) for r in chosen]


def listing_entry(
    r: NameRecord, tip: int, valuetype: str, maxvaluelen: int, registered: bool
) -> dict[str, Any]:
    """One name of a ``name_filter`` (with ``registered_at``) or ``name_scan`` listing."""
    entry: dict[str, Any] = {
        "name": r.name,
        "value": limit_value(encode_value(r.value, valuetype), maxvaluelen),
    }
    if registered:
        entry["registered_at"] = r.registered_at
    entry["expires_in"] = r.expires_at - tip
    if r.expires_at - tip <= 0:
        entry["expired"] = True
    return entry


def _scan(c: Call) -> Any:
    start = c.string(0)
    c.integer(1, 500)  # max: checked like the node does, and ignored like the node does
    maxvaluelen = c.integer(2)
    valuetype = c.string(3)
    tip = c.ledger.height()
    return [
        listing_entry(r, tip, valuetype, maxvaluelen, registered=False)
        for r in c.ledger.scan(start)
    ]


def _scan_address(c: Call) -> Any:
    c.string(0)
    raise _fault(
        "Name-address index is not available. Add nameaddress=1 to emercoin.conf to enable it.",
        RPC_DATABASE_ERROR,
    )


def _list(c: Call) -> Any:
    only = c.string(0)
    valuetype = c.string(1)
    out = []
    for entry in c.ledger.list_names():
        if only and entry["name"] != only:
            continue
        entry["value"] = encode_value(entry["value"], valuetype)
        out.append(entry)
    return out


def _mempool(c: Call) -> Any:
    c.string(0)
    return []  # automine: writes are mined at once, nothing is ever pending


def _name_op(c: Call, operation: str) -> Any:
    name = c.string(0)
    value = c.string(1)
    days = c.integer(2)
    to = c.string(3) or None
    value = decode_value(value, c.string(4))
    if operation == "name_new":
        return c.ledger.name_new(name, value, days, to)
    return c.ledger.name_update(name, value, days, to)


def _name_delete(c: Call) -> Any:
    return c.ledger.name_delete(c.string(0))


def _signmessage(c: Call) -> Any:
    address = c.string(0)
    message = c.string(1)
    _parse_address(c.ledger, address, RPC_TYPE_ERROR, "Invalid address")
    return c.ledger.sign_message(address, message)


def _verifymessage(c: Call) -> Any:
    address = c.string(0)
    signature = c.string(1)
    message = c.string(2)
    try:
        parsed = crypto.Address.from_text(address, c.ledger.network)
    except crypto.CryptoError as exc:
        text = str(exc)
        refers_to_script = "P2SH" in text or "not P2WPKH" in text
        raise _fault(
            "Address does not refer to key" if refers_to_script else "Invalid address",
            RPC_TYPE_ERROR,
        ) from None
    try:
        return crypto.verify_message(parsed, signature, message)
    except crypto.CryptoError:
        try:  # Core decodes leniently: well-formed base64 of the wrong length just fails
            base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise _fault("Malformed base64 encoding", RPC_INVALID_ADDRESS_OR_KEY) from None
        return False


def _getnewaddress(c: Call) -> Any:
    c.string(0)
    kind = c.string(1, "bech32")
    if kind not in ("bech32", "legacy"):
        raise _fault(f"Unknown address type '{kind}'", RPC_INVALID_ADDRESS_OR_KEY)
    return c.ledger.get_new_address(kind)


def _dumpprivkey(c: Call) -> Any:
    address = c.string(0)
    _parse_address(c.ledger, address, RPC_INVALID_ADDRESS_OR_KEY, "Invalid Emercoin address")
    try:
        return c.ledger.dump_privkey(address)
    except NvsError as exc:
        if exc.code == RPC_WALLET_ERROR:
            raise _fault(
                f"Private key for address {address} is not known", RPC_WALLET_ERROR
            ) from None
        raise


def _importprivkey(c: Call) -> Any:
    wif = c.string(0)
    c.string(1)
    c.boolean(2, True)
    c.ledger.import_key(wif)
    return None


def _validateaddress(c: Call) -> Any:
    text = c.string(0)
    try:
        address = crypto.Address.from_text(text, c.ledger.network)
    except crypto.CryptoError:
        return {"isvalid": False}
    hex_, asm, kind = _script(address)
    out: dict[str, Any] = {
        "isvalid": True,
        "address": address.to_text(),
        "ismine": c.ledger.is_mine(text),
        "iswatchonly": False,
        "isscript": False,
        "iswitness": address.kind is crypto.AddressKind.P2WPKH,
    }
    if out["iswitness"]:
        out["witness_version"] = 0
        out["witness_program"] = address.key_hash.hex()
    out["scriptPubKey"] = {
        "asm": asm,
        "hex": hex_,
        "type": kind,
        "reqSigs": 1,
        "addresses": [address.to_text()],
    }
    return out


def _getaddressinfo(c: Call) -> Any:
    text = c.string(0)
    address = _parse_address(c.ledger, text, RPC_INVALID_ADDRESS_OR_KEY, "Invalid address")
    hex_, _, _ = _script(address)
    witness = address.kind is crypto.AddressKind.P2WPKH
    pubkey = _public_key(c.ledger, text)
    out: dict[str, Any] = {
        "address": address.to_text(),
        "scriptPubKey": hex_,
        "ismine": pubkey is not None,
        "solvable": pubkey is not None,
    }
    if pubkey is not None:
        out["desc"] = descriptor_checksum(f"{'wpkh' if witness else 'pkh'}({pubkey.hex()})")
    out.update({"iswatchonly": False, "isscript": False, "iswitness": witness})
    if witness:
        out["witness_version"] = 0
        out["witness_program"] = address.key_hash.hex()
    if pubkey is not None:
        out["pubkey"] = pubkey.hex()
        if not witness:
            out["iscompressed"] = len(pubkey) == 33
    out["label"] = ""
    out["ischange"] = False
    if pubkey is not None:
        out["timestamp"] = 1  # unknown key birth, as bitcoind says for imported keys
    out["labels"] = [{"name": "", "purpose": "receive"}] if pubkey is not None else []
    return out


def _generate(c: Call, address_index: int | None) -> Any:
    nblocks = c.integer(0)
    if address_index is not None:
        _parse_address(
            c.ledger, c.params[address_index], RPC_INVALID_ADDRESS_OR_KEY, "Error: Invalid address"
        )
        c.integer(address_index + 1, 1_000_000)
    else:
        c.integer(1, 1_000_000)
    if nblocks > MAX_GENERATE:
        raise _fault(
            f"enumer node generates at most {MAX_GENERATE} blocks a call", RPC_INVALID_PARAMETER
        )
    if nblocks < 0:
        raise _fault("number of blocks must not be negative", RPC_INVALID_PARAMETER)
    new_tip = c.ledger.generate(nblocks)
    network = c.ledger.network.name
    return [block_hash(network, h) for h in range(new_tip - nblocks + 1, new_tip + 1)]


def _getblockcount(c: Call) -> Any:
    return c.ledger.height()


def _getbestblockhash(c: Call) -> Any:
    return block_hash(c.ledger.network.name, c.ledger.height())


def _getblockhash(c: Call) -> Any:
    height = c.integer(0)
    if not 0 <= height <= c.ledger.height():
        raise _fault("Block height out of range", RPC_INVALID_PARAMETER)
    return block_hash(c.ledger.network.name, height)


#: How far below the tip ``getblock`` looks for a hash (the ledger keeps no blocks:
#: its hashes are recomputed from heights).
GETBLOCK_DEPTH = 20000


def _getblock(c: Call) -> Any:
    """The fields of Core's ``getblock`` (verbosity 1) that a ledger can give: its
    blocks are mined on the wall clock, so the tip's time is now and older blocks'
    times are 86400 / 175 seconds apart."""
    wanted = c.string(0)
    tip = c.ledger.height()
    network = c.ledger.network.name
    now = c.ledger.tip_time()
    for height in range(tip, max(-1, tip - GETBLOCK_DEPTH), -1):
        if block_hash(network, height) == wanted:
            block_time = now - (tip - height) * 86400 // BLOCKS_PER_DAY
            out: dict[str, Any] = {
                "hash": wanted,
                "confirmations": tip - height + 1,
                "height": height,
                "version": 1,
                "time": block_time,
                "mediantime": block_time,
                "nonce": 0,
                "difficulty": 0.0,
                "nTx": 0,
                "tx": [],
            }
            if height > 0:
                out["previousblockhash"] = block_hash(network, height - 1)
            if height < tip:
                out["nextblockhash"] = block_hash(network, height + 1)
            return out
    raise _fault("Block not found", RPC_INVALID_ADDRESS_OR_KEY)


def _size_on_disk(ledger: Ledger) -> int:
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            total += (ledger.path / (LEDGER_FILE + suffix)).stat().st_size
    return total


def _getblockchaininfo(c: Call) -> Any:
    tip = c.ledger.height()
    network = c.ledger.network.name
    buried = {"type": "buried", "active": True, "height": 0}
    return {
        "chain": NETWORK_TO_CHAIN.get(network, network),
        "blocks": tip,
        "headers": tip,
        "bestblockhash": block_hash(network, tip),
        "difficulty": 0.0,
        "mediantime": c.ledger.tip_time(),
        "verificationprogress": 1,
        "initialblockdownload": False,
        "chainwork": f"{tip + 1:064x}",
        "size_on_disk": _size_on_disk(c.ledger),
        "pruned": False,
        "softforks": {name: dict(buried) for name in ("bip34", "bip66", "bip65", "csv", "segwit")},
        "warnings": "",
    }


def _getinfo(c: Call) -> Any:
    return {
        "fullversion": f"enumer-node v{__version__} (embedded ledger)",
        "version": EMULATED_VERSION,
        "protocolversion": 70015,
        "walletversion": 169900,
        "balance": 0.0,
        "newmint": 0.0,
        "stake": 0.0,
        "blocks": c.ledger.height(),
        "moneysupply": 0.0,
        "timeoffset": 0,
        "connections": 0,
        "proxy": "",
        "pow-difficulty": 0.0,
        "pos-difficulty": 0.0,
        "testnet": c.ledger.network.name == "testnet",
        "keypoololdest": int(c.server.started),
        "keypoolsize": 0,
        "paytxfee": 0.0001,
        "relayfee": 0.0001,
        "encrypted": False,
        "mintonly": False,
        "errors": "",
    }


def _help(c: Call) -> Any:
    if c.given(0):
        name = c.string(0)
        method = c.server.methods.get(name)
        return method.help if method else f"help: unknown command: {name}"
    return "\n".join(sorted(m.help.split("\n", 1)[0] for m in c.server.methods.values()))


def _stop(c: Call) -> Any:
    c.server.request_stop()
    return "enumer node stopping"


def _uptime(c: Call) -> Any:
    return int(time.time() - c.server.started)


# -- help texts (the message of a wrong parameter count) -------------------------------------

_VALUETYPE = (
    'If "hex" or "base64" is specified then it will print value in corresponding '
    "format instead of string."
)
_HELP: Final[dict[str, str]] = {
    "name_show": (
        "name_show <name> [valuetype] [filepath]\n"
        "Show values of a name.\n"
        "\nArguments:\n"
        "1. name      (string, required).\n"
        f"2. valuetype (string, optional) {_VALUETYPE}\n"
        "3. filepath  (string, optional) save name value in binary format in specified file "
        "(file will be overwritten!).\n"
    ),
    "name_history": (
        "name_history <name> [fullhistory] [valuetype]\n"
        "\nLook up the current and all past data for the given name.\n"
        "\nArguments:\n"
        "1. name        (string, required) the name to query for\n"
        "2. fullhistory (boolean, optional) shows full history, even if name is not active\n"
        f"3. valuetype   (string, optional) {_VALUETYPE}\n"
    ),
    "name_filter": (
        "name_filter [regexp] [maxage=0] [from=0] [nb=0] [stat] [valuetype] [maxvaluelen=0]\n"
        "scan and filter names\n"
        "[regexp] : apply [regexp] on names, empty means all names\n"
        "[maxage] : look in last [maxage] blocks\n"
        "[from] : show results from number [from]\n"
        "[nb] : show [nb] results, 0 means all\n"
        "[stat] : show some stats instead of results\n"
        f"[valuetype] : {_VALUETYPE}\n"
        "[maxvaluelen] : control how much of value is shown (0 = full value)\n"
    ),
    "name_scan": (
        "name_scan [start-name] [max-returned] [max-value-length=0] [valuetype]\n"
        "Scan all names, starting at [start-name] and returning [max-returned] number of "
        "entries (default 500)\n"
        "[max-value-length] : control how much of value is shown (0 = full value)\n"
        f"[valuetype] : {_VALUETYPE}\n"
    ),
    "name_scan_address": (
        "name_scan_address <address> [max-value-length=0] [valuetype]\n"
        "Print names that belong to specific address\n"
    ),
    "name_list": (
        "name_list [name] [valuetype]\n"
        "list my own names.\n"
        "\nArguments:\n"
        "1. name      (string, required) Restrict output to specific name.\n"
        f"2. valuetype (string, optional) {_VALUETYPE}\n"
    ),
    "name_mempool": (
        "name_mempool [valuetype]\n"
        "\nArguments:\n"
        f"1. valuetype   (string, optional) {_VALUETYPE}\n"
        "\nList pending name transactions in mempool.\n"
    ),
    "name_new": (
        'name_new "name" "value" days ( "toaddress" "valuetype" )\n'
        "\nCreates new key->value pair which expires after specified number of days.\n"
    ),
    "name_update": (
        'name_update "name" "value" days ( "toaddress" "valuetype" )\n'
        "\nUpdate name value, add days to expiration time and possibly transfer a name to "
        "diffrent address.\n"
    ),
    "name_delete": (
        'name_delete "name"\n'
        "\nDelete a name if you own it. Others may do name_new after this command.\n"
    ),
    "signmessage": 'signmessage "address" "message"\n\nSign a message with the private '
    "key of an address\n",
    "verifymessage": 'verifymessage "address" "signature" "message"\n\nVerify a signed message\n',
    "getnewaddress": 'getnewaddress ( "label" "address_type" )\n\nReturns a new Emercoin '
    "address for receiving payments.\n",
    "validateaddress": 'validateaddress "address"\n\nReturn information about the given '
    "emercoin address.\n",
    "getaddressinfo": 'getaddressinfo "address"\n\nReturn information about the given '
    "emercoin address.\n",
    "dumpprivkey": 'dumpprivkey "address"\n\nReveals the private key corresponding to '
    "'address'.\n",
    "importprivkey": 'importprivkey "privkey" ( "label" rescan )\n\nAdds a private key '
    "(as returned by dumpprivkey) to your wallet.\n",
    "generatetoaddress": 'generatetoaddress nblocks "address" ( maxtries )\n\nMine blocks '
    "immediately to a specified address.\n",
    "generate": "generate nblocks ( maxtries )\n\nMine up to nblocks blocks immediately.\n",
    "getblockcount": "getblockcount\n\nReturns the number of blocks in the longest blockchain.\n",
    "getbestblockhash": "getbestblockhash\n\nReturns the hash of the best (tip) block.\n",
    "getblockhash": "getblockhash height\n\nReturns hash of block in best-block-chain at "
    "height provided.\n",
    "getblock": 'getblock "blockhash" ( verbosity )\n\nReturns information about the block '
    "with the given hash.\n",
    "getblockchaininfo": "getblockchaininfo\nReturns an object containing various state info "
    "regarding blockchain processing.\n",
    "getinfo": "getinfo\nReturns an object containing various state info.\n",
    "help": 'help ( "command" )\n\nList all commands, or get help for a specified command.\n',
    "stop": "stop\n\nStop enumer node.",
    "uptime": "uptime\n\nReturns the total uptime of the server.\n",
}


def _method(
    name: str, args: tuple[str, ...], required: int, handler: Callable[[Call], Any]
) -> tuple[str, Method]:
    return name, Method(name, args, required, _HELP[name], handler)


#: Every method ``enumer node`` answers.  A server's ``methods`` is its own copy.
METHODS: Final[dict[str, Method]] = dict(
    [
        _method("name_show", ("name", "valuetype", "filepath"), 1, _show),
        _method("name_history", ("name", "fullhistory", "valuetype"), 1, _history),
        _method(
            "name_filter",
            ("regexp", "maxage", "from", "nb", "stat", "valuetype", "maxvaluelen"),
            0,
            _filter,
        ),
        _method(
            "name_scan", ("start-name", "max-returned", "max-value-length", "valuetype"), 0, _scan
        ),
        _method(
            "name_scan_address", ("address", "max-value-length", "valuetype"), 1, _scan_address
        ),
        _method("name_list", ("name", "valuetype"), 0, _list),
        _method("name_mempool", ("valuetype",), 0, _mempool),
        _method(
            "name_new",
            ("name", "value", "days", "toaddress", "valuetype"),
            3,
            lambda c: _name_op(c, "name_new"),
        ),
        _method(
            "name_update",
            ("name", "value", "days", "toaddress", "valuetype"),
            3,
            lambda c: _name_op(c, "name_update"),
        ),
        _method("name_delete", ("name",), 1, _name_delete),
        _method("signmessage", ("address", "message"), 2, _signmessage),
        _method("verifymessage", ("address", "signature", "message"), 3, _verifymessage),
        _method("getnewaddress", ("label", "address_type"), 0, _getnewaddress),
        _method("validateaddress", ("address",), 1, _validateaddress),
        _method("getaddressinfo", ("address",), 1, _getaddressinfo),
        _method("dumpprivkey", ("address",), 1, _dumpprivkey),
        _method("importprivkey", ("privkey", "label", "rescan"), 1, _importprivkey),
        _method(
            "generatetoaddress", ("nblocks", "address", "maxtries"), 2, lambda c: _generate(c, 1)
        ),
        _method("generate", ("nblocks", "maxtries"), 1, lambda c: _generate(c, None)),
        _method("getblockcount", (), 0, _getblockcount),
        _method("getbestblockhash", (), 0, _getbestblockhash),
        _method("getblockhash", ("height",), 1, _getblockhash),
        _method("getblock", ("blockhash", "verbosity"), 1, _getblock),
        _method("getblockchaininfo", (), 0, _getblockchaininfo),
        _method("getinfo", (), 0, _getinfo),
        _method("help", ("command",), 0, _help),
        _method("stop", (), 0, _stop),
        _method("uptime", (), 0, _uptime),
    ]
)


# -- the server -------------------------------------------------------------------------------


def _reply(result: Any, error: dict[str, Any] | None, rid: Any) -> dict[str, Any]:
    return {"result": result, "error": error, "id": rid}


def _error(code: int, message: str, rid: Any = None) -> tuple[int, dict[str, Any]]:
    status = 400 if code == RPC_INVALID_REQUEST else 404 if code == RPC_METHOD_NOT_FOUND else 500
    return status, _reply(None, {"code": code, "message": message}, rid)


def _dumps(obj: Any) -> bytes:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"
    return text.encode("utf-8", errors="replace")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class NodeServer(ThreadingHTTPServer):
    """The JSON-RPC server over one ledger directory; see the module documentation.

    Each request borrows a ledger connection from a pool (SQLite connections are
    not shared by concurrent requests); at most :data:`WORK_QUEUE` requests run
    at once.  :meth:`start` serves in a thread, :meth:`close` stops (idempotent).
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(
        self,
        ledger_path: str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int = 0,
        user: str | None = None,
        password: str | None = None,
        network: str | None = None,
        max_body: int = MAX_BODY_BYTES,
        require_auth: bool = True,
        max_batch: int | None = None,
    ) -> None:
        self.ledger_path = Path(ledger_path)
        #: False for a public read-only record feed (``enumer serve --feed``) without
        #: credentials: every request is let in (rate limits still apply, see :meth:`admit`).
        self.require_auth = require_auth
        #: The most calls one JSON-RPC batch may hold (None: no limit, as the node).
        self.max_batch = max_batch
        first = Ledger(self.ledger_path, network)
        self.network = first.network.name
        self._pool: queue.SimpleQueue[Ledger] = queue.SimpleQueue()
        self._pool.put(first)
        self.methods: dict[str, Method] = dict(METHODS)
        self.max_body = max_body
        self.started = time.time()
        self.stop_event = threading.Event()
        self.cookie_path: Path | None = None
        self.user = user
        self._lock_file: IO[bytes] | None = None
        self._closed = False
        self._close_lock = threading.Lock()
        self._work = threading.BoundedSemaphore(WORK_QUEUE)
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            super().__init__((host, port), _Handler)
        except BaseException:
            self._close_pool()
            raise
        try:
            if not require_auth:
                self._expected = b""
            elif password is None:
                self._expected = self._write_cookie()
            else:
                self._expected = f"{user or ''}:{password}".encode()
        except BaseException:
            self.server_close()
            self._close_pool()
            self._unlock()
            raise

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the address (slow offline)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    # -- address ------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return str(self.server_address[0])

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``http://host:port/`` (no credentials)."""
        return f"http://{self.endpoint}/"

    def describe_auth(self) -> str:
        return f"cookie {self.cookie_path}" if self.cookie_path else f"rpcuser {self.user or ''}"

    def __repr__(self) -> str:
        return f"NodeServer({self.url!r}, {self.describe_auth()}, store={str(self.ledger_path)!r})"

    # -- cookie ---------------------------------------------------------------------------------

    def _write_cookie(self) -> bytes:
        import fcntl

        lock_path = self.ledger_path / LOCK_FILE
        handle = open(lock_path, "ab")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise NvsError(
                    RPC_MISC_ERROR,
                    f"another enumer node already serves "
                    f"{self.ledger_path} with a cookie "
                    f"({lock_path} is locked)",
                ) from None
            raise
        self._lock_file = handle
        secret = f"{COOKIE_USER}:{secrets.token_hex(32)}"
        path = self.ledger_path / COOKIE_FILE
        tmp = self.ledger_path / (COOKIE_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, secret.encode("ascii"))
        finally:
            os.close(fd)
        os.replace(tmp, path)
        self.cookie_path = path
        return secret.encode("ascii")

    def _remove_cookie(self) -> None:
        path = self.cookie_path
        if path is None:
            return
        with contextlib.suppress(OSError):
            if path.read_bytes() == self._expected:
                path.unlink()

    def _unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # -- authentication -------------------------------------------------------------------------

    def authorized(self, header: str | None) -> bool:
        if not self.require_auth:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:].strip(), validate=False)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, self._expected)

    # -- ledgers ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def ledger(self) -> Iterator[Ledger]:
        try:
            ledger = self._pool.get_nowait()
        except queue.Empty:
            ledger = Ledger(self.ledger_path, create=False)
        try:
            yield ledger
        finally:
            if self._closed or self._pool.qsize() >= WORK_QUEUE:
                ledger.close()
            else:
                self._pool.put(ledger)

    def _close_pool(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    # -- requests ---------------------------------------------------------------------------------

    def admit(self, client: str) -> bool:
        """Whether a request of ``client`` (its IP address) may run now; the node
        admits all, a record feed limits each client's rate."""
        return True

    def acquire_worker(self) -> bool:
        return self._work.acquire(timeout=WORK_QUEUE_WAIT)

    def release_worker(self) -> None:
        self._work.release()

    def process(self, body: bytes) -> tuple[int, bytes]:
        """A request body -> (HTTP status, reply body)."""
        try:
            request = json.loads(body.decode("utf-8"), parse_constant=_no_constants)
        except (ValueError, RecursionError, UnicodeDecodeError):
            status, reply = _error(RPC_PARSE_ERROR, "Parse error")
            return status, _dumps(reply)
        if isinstance(request, dict):
            status, reply = self.execute(request)
            return status, _dumps(reply)
        if isinstance(request, list):
            if self.max_batch is not None and len(request) > self.max_batch:
                status, reply = _error(
                    RPC_INVALID_REQUEST,
                    f"a batch of {len(request)} calls is over this server's limit of "
                    f"{self.max_batch}",
                )
                return status, _dumps(reply)
            return 200, _dumps([self.execute(item)[1] for item in request])
        status, reply = _error(RPC_PARSE_ERROR, "Top-level object parse error")
        return status, _dumps(reply)

    def execute(self, request: Any) -> tuple[int, dict[str, Any]]:
        """One request object -> (HTTP status, reply object)."""
        if not isinstance(request, dict):
            return _error(RPC_INVALID_REQUEST, "Invalid Request object")
        rid = request.get("id")
        name = request.get("method")
        if name is None:
            return _error(RPC_INVALID_REQUEST, "Missing method", rid)
        if not isinstance(name, str):
            return _error(RPC_INVALID_REQUEST, "Method must be a string", rid)
        params = request.get("params")
        if params is None:
            params = []
        if not isinstance(params, list | dict):
            return _error(RPC_INVALID_REQUEST, "Params must be an array or object", rid)
        method = self.methods.get(name)
        if method is None:
            return _error(RPC_METHOD_NOT_FOUND, "Method not found", rid)
        try:
            positional = self._positional(method, params)
            with self.ledger() as ledger:
                result = method.handler(Call(self, ledger, positional))
        except NvsError as exc:
            return _error(exc.code, exc.message, rid)
        except Exception as exc:  # the last line of defence: never a traceback, keep serving
            log.error("internal error in %s: %s: %s", name, type(exc).__name__, exc)
            return _error(RPC_INTERNAL_ERROR, "Internal error", rid)
        return 200, _reply(result, None, rid)

    @staticmethod
    def _positional(method: Method, params: list[Any] | dict[str, Any]) -> list[Any]:
        if isinstance(params, dict):
            unknown = [k for k in params if k not in method.args]
            if unknown:
                raise _fault(f"Unknown named parameter {unknown[0]}", RPC_INVALID_PARAMETER)
            positional = [params.get(a) for a in method.args]
            while positional and positional[-1] is None:
                positional.pop()
            if any(p is None for p in positional[: method.required]):
                raise _fault(method.help)
            params = positional
        if not method.required <= len(params) <= len(method.args):
            raise _fault(method.help)
        return params

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> threading.Thread:
        """Serve in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.serve_forever,
                kwargs={"poll_interval": 0.2},
                name=f"enumer-node:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self._thread

    def request_stop(self) -> None:
        """The ``stop`` call: flag it (``enumer node`` waits on :attr:`stop_event`) and close
        shortly after the reply went out."""
        self.stop_event.set()
        threading.Timer(0.2, self.close).start()

    def close(self) -> None:
        """Stop serving, remove the cookie, close the ledgers (idempotent)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self.stop_event.set()
        if self._thread is not None and self._thread.is_alive():
            self.shutdown()
            self._thread.join(5)
        self.server_close()
        with self._connections_lock:  # kept-alive connections must not outlive the server
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        self._remove_cookie()
        self._unlock()
        self._close_pool()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection failed (e.g. the client went away): one log line, no traceback."""
        log.debug("connection from %s failed", client_address, exc_info=False)


class _Handler(BaseHTTPRequestHandler):
    server: NodeServer
    protocol_version = "HTTP/1.1"
    server_version = f"enumer-node/{__version__}"
    sys_version = ""
    timeout = 60  # an idle or slow connection is dropped after this many seconds

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: tuple[tuple[str, str], ...] = (),
        close: bool = False,
    ) -> None:
        self.send_response(status)
        if body or content_type != "application/json":
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers:
            self.send_header(key, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _not_post(self) -> None:
        self._send(405, b"JSONRPC server handles only POST requests", "text/plain", close=True)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _not_post

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path != "/" and not path.startswith("/wallet/"):
            self._send(404, b"Not Found", "text/plain", close=True)
            return
        if self.headers.get("Transfer-Encoding"):
            self._send(411, b"send the request with a Content-Length", "text/plain", close=True)
            return
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self._send(411, b"Length Required", "text/plain", close=True)
            return
        try:
            length = int(length_header)
            if length < 0:
                raise ValueError
        except ValueError:
            self._send(400, b"bad Content-Length", "text/plain", close=True)
            return
        if length > self.server.max_body:
            self._send(
                413,
                f"request body over {self.server.max_body} bytes".encode(),
                "text/plain",
                close=True,
            )
            return
        if not self.server.authorized(self.headers.get("Authorization")):
            if self.headers.get("Authorization"):
                log.warning("incorrect RPC password attempt from %s", self.client_address[0])
                time.sleep(AUTH_FAILURE_DELAY)
            self._send(401, headers=(("WWW-Authenticate", 'Basic realm="jsonrpc"'),), close=True)
            return
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return
        if not self.server.admit(self.client_address[0]):
            self._send(429, b"too many requests: slow down", "text/plain", (("Retry-After", "1"),))
            return
        if not self.server.acquire_worker():
            self._send(503, b"Work queue depth exceeded", "text/plain", close=True)
            return
        try:
            status, reply = self.server.process(body)
        finally:
            self.server.release_worker()
        self._send(status, reply)


def serve_node(
    ledger_path: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 0,
    user: str | None = None,
    password: str | None = None,
    network: str | None = None,
) -> tuple[NodeServer, threading.Thread]:
    """Open (or create) the ledger at ``ledger_path`` and serve it on ``host:port`` (0: any
    free port) in a daemon thread.  Without ``password`` the credentials are a cookie in
    ``<ledger_path>/.cookie``.  Stop with ``server.close()``."""
    server = NodeServer(ledger_path, host, port, user, password, network)
    return server, server.start()
