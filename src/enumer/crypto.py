"""Emercoin keys, addresses, ``signmessage`` and ``verifymessage``, compatible with Emercoin Core.

Why this module exists: an ENUM record is only trusted when a verifier on the gateway's trust list
has signed the record *name* with Emercoin ``signmessage``.  ENUMER must accept exactly the
signatures that Emercoin Core and the reference gateway (emcdns) accept -- no more, because that
would let unsigned records through, and no fewer, because then ENUMER would silently drop records
the reference gateway serves.  The shape follows python-bitcoinlib's small ``signmessage`` module:

* digest = SHA256(SHA256(varstr(magic) + varstr(message))), ``varstr`` being a Bitcoin
  CompactSize length followed by the bytes; magic = ``"EmerCoin Signed Message:\\n"``
  (capital C; the ``"Emercoin"`` spelling some third-party wallets use yields signatures
  Core rejects, and so do we).
* signature = base64(header || r || s), header = 27 + recid + (4 if the key is compressed).
* verification recovers the public key from (digest, signature), serializes it compressed or
  uncompressed as the header says, and compares its HASH160 with the key hash of a P2PKH or
  P2WPKH (witness v0, 20-byte) address.  P2SH and other scripts carry no key and cannot verify.

All elliptic-curve math is delegated to libsecp256k1 through ``coincurve`` -- the same library
Emercoin Core uses -- so signing is RFC 6979 deterministic and reproduces Core byte for byte.
Only the encodings (base58check, BIP-173 bech32) and the message framing are written here.

Deliberate leniency (the ``core_lenient`` vectors).  Core reads the header as
``recid = (header - 27) & 3`` and ``compressed = ((header - 27) & 4) != 0`` without range
checks, so header bytes such as 39..42 (Electrum/BIP-137 segwit headers) or even 255 work; and
libsecp256k1's recovery does not enforce low-S, so a malleated high-S signature recovers the same
key.  We accept both, exactly as Emercoin Core and emcdns do.  This is safe: malleability only
produces *another encoding of a signature over the same digest*; it cannot turn a signature over
one name into a signature over a different name, so an accepted signature still proves the key
holder signed that exact record name.  Rejecting them would make ENUMER drop records the
reference gateway serves.

Strictness elsewhere follows Core's RPC: :func:`decode_signature` rejects anything but canonical
standard base64 (no whitespace, correct padding).  emcdns strips bytes <= 0x20 around a signature
embedded in an NVS value before decoding; that trimming belongs to the caller that parses the
value, not here.  Addresses are likewise parsed strictly (no surrounding blanks).

The module is pure: no files, no sockets, no global mutable state.  Every error raised on bad
input is a :class:`CryptoError` subclass (a ``ValueError``) whose ``str()`` is one precise line.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import hashlib
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import coincurve
from coincurve._libsecp256k1 import ffi as _ffi
from coincurve._libsecp256k1 import lib as _lib
from coincurve.context import GLOBAL_CONTEXT as _SECP_CONTEXT

__all__ = [
    "BITCOIN_MAGIC",
    "BITCOIN_MAINNET",
    "EMERCOIN_MAGIC",
    "MAINNET",
    "NETWORKS",
    "REGTEST",
    "TESTNET",
    "Address",
    "AddressError",
    "AddressKind",
    "CryptoError",
    "Network",
    "PrivateKey",
    "PrivateKeyError",
    "SignatureFormatError",
    "base58check_decode",
    "base58check_encode",
    "bech32_decode_segwit",
    "bech32_encode_p2wpkh",
    "decode_signature",
    "hash160",
    "message_digest",
    "network_by_name",
    "recover_public_key",
    "verify_message",
]

EMERCOIN_MAGIC: Final[str] = "EmerCoin Signed Message:\n"
BITCOIN_MAGIC: Final[str] = "Bitcoin Signed Message:\n"

#: Order of the secp256k1 group; a valid secret is in [1, n-1].
SECP256K1_ORDER: Final[int] = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

SIGNATURE_LENGTH: Final[int] = 65

_SHOW_MAX: Final[int] = 100


def _show(text: str) -> str:
    """Quote user input for an error message: repr() keeps it on one line, truncation short."""
    if len(text) > _SHOW_MAX:
        return repr(text[: _SHOW_MAX - 10]) + f"... ({len(text)} characters)"
    return repr(text)


# --------------------------------------------------------------------------- errors


class CryptoError(ValueError):
    """Base of every error this module raises on bad input; ``str(e)`` is a one-line reason.

    It subclasses ValueError so generic input-validation code keeps working, while callers that
    care can tell address, signature and key problems apart with the subclasses.
    """


class AddressError(CryptoError):
    """The text is not a usable address: bad encoding/checksum, wrong network, or a script type
    (P2SH, witness v1+, P2WSH) that holds no single public key and so cannot verify."""


class SignatureFormatError(CryptoError):
    """The signature is not canonical base64 of exactly 65 bytes.

    Distinct from "valid format but wrong signer", which is a plain ``False`` from
    :func:`verify_message`: a malformed signature usually means a broken record or tool and
    deserves a different diagnostic than a forged or stale one.
    """


class PrivateKeyError(CryptoError):
    """A WIF or hex private key that cannot be decoded or is outside [1, n-1]."""


# --------------------------------------------------------------------------- networks


@dataclass(frozen=True)
class Network:
    """Address and WIF prefixes of one chain.

    Emercoin testnet and regtest share their base58 versions and differ only in the bech32 HRP,
    which is why a base58 address alone cannot tell them apart.
    """

    name: str
    p2pkh_version: int
    p2sh_version: int
    wif_version: int
    bech32_hrp: str


MAINNET: Final[Network] = Network("mainnet", 33, 92, 128, "em")
TESTNET: Final[Network] = Network("testnet", 111, 196, 239, "te")
REGTEST: Final[Network] = Network("regtest", 111, 196, 239, "emrt")
#: Bitcoin mainnet parameters; only used to check the algorithm against published Bitcoin vectors.
BITCOIN_MAINNET: Final[Network] = Network("bitcoin", 0, 5, 128, "bc")

NETWORKS: Final[dict[str, Network]] = {n.name: n for n in (MAINNET, TESTNET, REGTEST)}

# Order matters: a base58 version shared by testnet and regtest resolves to testnet.
_EMERCOIN_NETWORKS: Final[tuple[Network, ...]] = (MAINNET, TESTNET, REGTEST)
_ALL_NETWORKS: Final[tuple[Network, ...]] = (*_EMERCOIN_NETWORKS, BITCOIN_MAINNET)


def network_by_name(name: str) -> Network:
    """Look up an Emercoin network by its config name: mainnet, testnet or regtest."""
    try:
        return NETWORKS[name]
    except (KeyError, TypeError):
        valid = ", ".join(NETWORKS)
        raise CryptoError(f"unknown network {name!r}; valid names: {valid}") from None


# --------------------------------------------------------------------------- hashing


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


# RIPEMD-160 fallback.  OpenSSL 3 moved RIPEMD-160 to the "legacy" provider, so hashlib.new()
# may refuse it on some systems.  Key hashes only ever cover 33/65-byte public keys, so a
# straightforward pure-Python implementation is fast enough and keeps us dependency-free.

_RMD_R: Final[tuple[int, ...]] = (
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    7, 4, 13, 1, 10, 6, 15, 3, 12, 0, 9, 5, 2, 14, 11, 8,
    3, 10, 14, 4, 9, 15, 8, 1, 2, 7, 0, 6, 13, 11, 5, 12,
    1, 9, 11, 10, 0, 8, 12, 4, 13, 3, 7, 15, 14, 5, 6, 2,
    4, 0, 5, 9, 7, 12, 2, 10, 14, 1, 3, 8, 11, 6, 15, 13,
)  # fmt: skip
_RMD_RP: Final[tuple[int, ...]] = (
    5, 14, 7, 0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12,
    6, 11, 3, 7, 0, 13, 5, 10, 14, 15, 8, 12, 4, 9, 1, 2,
    15, 5, 1, 3, 7, 14, 6, 9, 11, 8, 12, 2, 10, 0, 4, 13,
    8, 6, 4, 1, 3, 11, 15, 0, 5, 12, 2, 13, 9, 7, 10, 14,
    12, 15, 10, 4, 1, 5, 8, 7, 6, 2, 13, 14, 0, 3, 9, 11,
)  # fmt: skip
_RMD_S: Final[tuple[int, ...]] = (
    11, 14, 15, 12, 5, 8, 7, 9, 11, 13, 14, 15, 6, 7, 9, 8,
    7, 6, 8, 13, 11, 9, 7, 15, 7, 12, 15, 9, 11, 7, 13, 12,
    11, 13, 6, 7, 14, 9, 13, 15, 14, 8, 13, 6, 5, 12, 7, 5,
    11, 12, 14, 15, 14, 15, 9, 8, 9, 14, 5, 6, 8, 6, 5, 12,
    9, 15, 5, 11, 6, 8, 13, 12, 5, 12, 13, 14, 11, 8, 5, 6,
)  # fmt: skip
_RMD_SP: Final[tuple[int, ...]] = (
    8, 9, 9, 11, 13, 15, 15, 5, 7, 7, 8, 11, 14, 14, 12, 6,
    9, 13, 15, 7, 12, 8, 9, 11, 7, 7, 12, 7, 6, 15, 13, 11,
    9, 7, 15, 11, 8, 6, 6, 14, 12, 13, 5, 14, 13, 13, 7, 5,
    15, 5, 8, 11, 14, 14, 6, 14, 6, 9, 12, 9, 12, 5, 15, 8,
    8, 5, 12, 9, 12, 5, 14, 6, 8, 13, 6, 5, 15, 13, 11, 11,
)  # fmt: skip
_RMD_K: Final[tuple[int, ...]] = (0x00000000, 0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xA953FD4E)
_RMD_KP: Final[tuple[int, ...]] = (0x50A28BE6, 0x5C4DD124, 0x6D703EF3, 0x7A6D76E9, 0x00000000)
_M32: Final[int] = 0xFFFFFFFF


def _rol32(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _M32


def _rmd_f(j: int, x: int, y: int, z: int) -> int:
    if j < 16:
        return x ^ y ^ z
    if j < 32:
        return (x & y) | (~x & z)
    if j < 48:
        return (x | ~y) ^ z
    if j < 64:
        return (x & z) | (y & ~z)
    return x ^ (y | ~z)


def _ripemd160_py(data: bytes) -> bytes:
    """Pure-Python RIPEMD-160 (ISO/IEC 10118-3), used only when hashlib lacks it."""
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
    padded = (
        data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + (len(data) * 8).to_bytes(8, "little")
    )
    for off in range(0, len(padded), 64):
        x = [int.from_bytes(padded[off + 4 * i : off + 4 * i + 4], "little") for i in range(16)]
        al, bl, cl, dl, el = h
        ar, br, cr, dr, er = h
        for j in range(80):
            rnd = j >> 4
            t = (al + _rmd_f(j, bl, cl, dl) + x[_RMD_R[j]] + _RMD_K[rnd]) & _M32
            t = (_rol32(t, _RMD_S[j]) + el) & _M32
            al, el, dl, cl, bl = el, dl, _rol32(cl, 10), bl, t
            t = (ar + _rmd_f(79 - j, br, cr, dr) + x[_RMD_RP[j]] + _RMD_KP[rnd]) & _M32
            t = (_rol32(t, _RMD_SP[j]) + er) & _M32
            ar, er, dr, cr, br = er, dr, _rol32(cr, 10), br, t
        h = [
            (h[1] + cl + dr) & _M32,
            (h[2] + dl + er) & _M32,
            (h[3] + el + ar) & _M32,
            (h[4] + al + br) & _M32,
            (h[0] + bl + cr) & _M32,
        ]
    return b"".join(v.to_bytes(4, "little") for v in h)


def _ripemd160_hashlib(data: bytes) -> bytes:
    return hashlib.new("ripemd160", data).digest()


def _pick_ripemd160() -> Callable[[bytes], bytes]:
    try:
        hashlib.new("ripemd160")
    except (ValueError, TypeError):
        return _ripemd160_py
    return _ripemd160_hashlib


_ripemd160: Final[Callable[[bytes], bytes]] = _pick_ripemd160()


def hash160(data: bytes) -> bytes:
    """RIPEMD160(SHA256(data)): the 20-byte key ID that P2PKH and P2WPKH addresses commit to."""
    return _ripemd160(_sha256(data))


# --------------------------------------------------------------------------- base58check

_B58_ALPHABET: Final[str] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX: Final[dict[str, int]] = {c: i for i, c in enumerate(_B58_ALPHABET)}


def _b58encode(data: bytes) -> str:
    zeros = len(data) - len(data.lstrip(b"\x00"))
    num = int.from_bytes(data, "big")
    out: list[str] = []
    while num:
        num, rem = divmod(num, 58)
        out.append(_B58_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(out))


def _b58decode(text: str) -> bytes:
    num = 0
    for pos, ch in enumerate(text):
        digit = _B58_INDEX.get(ch)
        if digit is None:
            raise CryptoError(f"invalid base58 character {ch!r} at position {pos}")
        num = num * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    return b"\x00" * zeros + body


def base58check_encode(version: int, payload: bytes) -> str:
    """Encode ``version || payload`` with a 4-byte double-SHA256 checksum (addresses, WIF)."""
    if not 0 <= version <= 255:
        raise CryptoError(f"base58check version must be a single byte, got {version}")
    data = bytes([version]) + bytes(payload)
    return _b58encode(data + _sha256d(data)[:4])


def _base58check_decode_reason(text: str) -> tuple[int, bytes]:
    """Decode base58check, raising CryptoError whose message does *not* echo the input.

    Not echoing matters for WIF: a mistyped WIF is still almost all of a private key.
    """
    if not text:
        raise CryptoError("empty base58check string")
    raw = _b58decode(text)
    if len(raw) < 5:
        raise CryptoError("too short for base58check")
    data, checksum = raw[:-4], raw[-4:]
    if _sha256d(data)[:4] != checksum:
        raise CryptoError("bad base58check checksum")
    return data[0], data[1:]


def base58check_decode(text: str) -> tuple[int, bytes]:
    """Decode base58check text into ``(version byte, payload)``; raises CryptoError on any flaw.

    The checksum catches every realistic typo, which is what makes it safe to key trust
    decisions on an address typed into a configuration file.
    """
    if not isinstance(text, str):
        raise CryptoError(f"base58check input must be a string, got {type(text).__name__}")
    try:
        return _base58check_decode_reason(text)
    except CryptoError as exc:
        raise CryptoError(f"{exc}: {_show(text)}") from None


# --------------------------------------------------------------------------- bech32 (BIP-173)

_BECH32_CHARSET: Final[str] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_INDEX: Final[dict[str, int]] = {c: i for i, c in enumerate(_BECH32_CHARSET)}
_BECH32_GEN: Final[tuple[int, ...]] = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_BECH32_MAX_LEN: Final[int] = 90


def _bech32_polymod(values: Iterable[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= _BECH32_GEN[i] if (top >> i) & 1 else 0
    return chk


def _bech32_hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _bech32_encode(hrp: str, data: Sequence[int]) -> str:
    values = _bech32_hrp_expand(hrp) + list(data)
    polymod = _bech32_polymod([*values, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32_CHARSET[d] for d in (*data, *checksum))


def _bech32_decode(text: str) -> tuple[str, list[int]]:
    """Split and checksum-verify a bech32 string; returns lower-case HRP and 5-bit data."""
    if any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise AddressError(f"bech32 address {_show(text)} contains a blank or non-ASCII character")
    if text.lower() != text and text.upper() != text:
        raise AddressError(f"bech32 address {_show(text)} mixes upper and lower case")
    if len(text) > _BECH32_MAX_LEN:
        raise AddressError(
            f"bech32 address {_show(text)} is longer than {_BECH32_MAX_LEN} characters"
        )
    lowered = text.lower()
    pos = lowered.rfind("1")
    if pos < 1 or pos + 7 > len(lowered):
        raise AddressError(f"bech32 address {_show(text)} has no valid separator/checksum")
    hrp = lowered[:pos]
    data: list[int] = []
    for i, ch in enumerate(lowered[pos + 1 :], start=pos + 1):
        if ch not in _BECH32_INDEX:
            raise AddressError(f"invalid bech32 character {ch!r} at position {i} in {_show(text)}")
        data.append(_BECH32_INDEX[ch])
    if _bech32_polymod(_bech32_hrp_expand(hrp) + data) != 1:
        raise AddressError(f"bad bech32 checksum in {_show(text)}")
    return hrp, data[:-6]


def _convertbits(data: Iterable[int], frombits: int, tobits: int, pad: bool) -> list[int] | None:
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << tobits) - 1
    for value in data:
        if value < 0 or value >> frombits:
            return None
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        return None
    return out


def _segwit_encode(hrp: str, witver: int, program: bytes) -> str:
    """Encode any witness version/program with the BIP-173 checksum (tests craft v1/P2WSH)."""
    five = _convertbits(program, 8, 5, True)
    assert five is not None  # 8-bit input always converts
    return _bech32_encode(hrp, [witver, *five])


def bech32_encode_p2wpkh(hrp: str, key_hash: bytes) -> str:
    """Encode a witness-v0 key-hash program (P2WPKH), the only segwit form that can verify."""
    if len(key_hash) != 20:
        raise AddressError(f"P2WPKH program must be 20 bytes, got {len(key_hash)}")
    if not hrp or hrp.lower() != hrp:
        raise AddressError(f"bech32 HRP must be non-empty lower case, got {hrp!r}")
    return _segwit_encode(hrp, 0, bytes(key_hash))


def bech32_decode_segwit(hrp: str, addr: str) -> tuple[int, bytes]:
    """Decode a BIP-173 segwit address for the expected HRP into ``(witness version, program)``.

    Validation follows the BIP-173 reference decoder (program 2..40 bytes, v0 only 20 or 32);
    deciding which (version, program) pairs hold a key is left to :meth:`Address.from_text`.
    """
    if not isinstance(addr, str):
        raise AddressError(f"address must be a string, got {type(addr).__name__}")
    got_hrp, data = _bech32_decode(addr)
    if got_hrp != hrp:
        raise AddressError(f"bech32 address {_show(addr)} has prefix {got_hrp!r}, expected {hrp!r}")
    if not data:
        raise AddressError(f"bech32 address {_show(addr)} has no witness version")
    witver = data[0]
    if witver > 16:
        raise AddressError(f"bech32 address {_show(addr)} has invalid witness version {witver}")
    program = _convertbits(data[1:], 5, 8, False)
    if program is None:
        raise AddressError(f"bech32 address {_show(addr)} has invalid program padding")
    if not 2 <= len(program) <= 40:
        raise AddressError(
            f"bech32 address {_show(addr)} has a {len(program)}-byte witness program"
        )
    if witver == 0 and len(program) not in (20, 32):
        raise AddressError(
            f"bech32 address {_show(addr)}: witness v0 program must be 20 or 32 bytes, "
            f"got {len(program)}"
        )
    return witver, bytes(program)


# --------------------------------------------------------------------------- addresses


class AddressKind(enum.Enum):
    """The two address forms that commit to a single public key hash and therefore can verify."""

    P2PKH = "p2pkh"
    P2WPKH = "p2wpkh"


_NO_KEY_HINT: Final[str] = "only P2PKH and P2WPKH addresses hold a key and can verify signatures"


def _looks_like_bech32(text: str) -> bool:
    """Whether to report bech32 rather than base58 errors for text that failed base58check.

    A known HRP before the last ``1`` decides it (so mixed-case or corrupted ``em1...`` text gets
    a bech32 diagnosis); otherwise single-case text whose tail is all bech32 characters.  Base58
    addresses are practically always mixed case, so they keep their base58 diagnosis.
    """
    pos = text.rfind("1")
    if pos < 1:
        return False
    if text[:pos].lower() in {n.bech32_hrp for n in _ALL_NETWORKS}:
        return True
    single_case = text in (text.lower(), text.upper())
    tail = text[pos + 1 :].lower()
    return single_case and len(tail) >= 6 and all(c in _BECH32_INDEX for c in tail)


@dataclass(frozen=True)
class Address:
    """A P2PKH or P2WPKH address: the network it belongs to and the HASH160 it commits to.

    Only these two kinds exist here on purpose: verification compares a recovered key's HASH160,
    so an address type that does not commit to one key hash can never be a verifier.
    """

    network: Network
    kind: AddressKind
    key_hash: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.key_hash, bytes) or len(self.key_hash) != 20:
            raise AddressError("address key hash must be 20 bytes")

    @classmethod
    def from_text(cls, text: str, network: Network | None = None) -> Address:
        """Parse an address, requiring ``network`` if given, else any Emercoin network.

        Without a network, base58 version 111 is reported as TESTNET (regtest shares it); pass
        ``network=REGTEST`` to get a regtest address.  Bech32 HRPs are unambiguous.
        """
        if not isinstance(text, str):
            raise AddressError(f"address must be a string, got {type(text).__name__}")
        if not text:
            raise AddressError("empty address")
        candidates = _EMERCOIN_NETWORKS if network is None else (network,)
        expected = "an Emercoin" if network is None else f"a {network.name}"
        try:
            version, payload = _base58check_decode_reason(text)
        except CryptoError as b58_error:
            if _looks_like_bech32(text):
                return cls._from_bech32(text, network, candidates, expected)
            raise AddressError(f"invalid address {_show(text)}: {b58_error}") from None
        return cls._from_base58(text, version, payload, network, candidates, expected)

    @classmethod
    def _from_base58(
        cls,
        text: str,
        version: int,
        payload: bytes,
        network: Network | None,
        candidates: tuple[Network, ...],
        expected: str,
    ) -> Address:
        for net in candidates:
            if version == net.p2pkh_version:
                if len(payload) != 20:
                    raise AddressError(
                        f"invalid address {_show(text)}: "
                        f"P2PKH payload is {len(payload)} bytes, not 20"
                    )
                return cls(net, AddressKind.P2PKH, payload)
            if version == net.p2sh_version:
                raise AddressError(f"{_show(text)} is a P2SH (script) address; {_NO_KEY_HINT}")
        others = [n.name for n in _ALL_NETWORKS if version in (n.p2pkh_version, n.p2sh_version)]
        looks = f" (it looks like a {' or '.join(others)} address)" if others else ""
        if network is None:
            raise AddressError(
                f"{_show(text)} is not an Emercoin address: unknown base58 version {version}{looks}"
            )
        raise AddressError(f"{_show(text)} is not {expected} address{looks}")

    @classmethod
    def _from_bech32(
        cls,
        text: str,
        network: Network | None,
        candidates: tuple[Network, ...],
        expected: str,
    ) -> Address:
        hrp, _ = _bech32_decode(text)  # precise errors for case, charset and checksum
        for net in candidates:
            if hrp == net.bech32_hrp:
                witver, program = bech32_decode_segwit(hrp, text)
                if witver != 0 or len(program) != 20:
                    raise AddressError(
                        f"{_show(text)} is a witness v{witver} {len(program)}-byte program, "
                        f"not P2WPKH; {_NO_KEY_HINT}"
                    )
                return cls(net, AddressKind.P2WPKH, program)
        others = [n.name for n in _ALL_NETWORKS if n.bech32_hrp == hrp]
        looks = f" (it looks like a {' or '.join(others)} address)" if others else ""
        if network is None:
            raise AddressError(
                f"{_show(text)} is not an Emercoin address: unknown bech32 prefix {hrp!r}{looks}"
            )
        raise AddressError(f"{_show(text)} is not {expected} address{looks}")

    def to_text(self) -> str:
        """Canonical text form (bech32 in lower case)."""
        if self.kind is AddressKind.P2PKH:
            return base58check_encode(self.network.p2pkh_version, self.key_hash)
        return bech32_encode_p2wpkh(self.network.bech32_hrp, self.key_hash)

    __str__ = to_text


# --------------------------------------------------------------------------- message framing


def _compact_size(n: int) -> bytes:
    """Bitcoin CompactSize: 1 byte below 0xfd, else a 0xfd/0xfe/0xff marker and LE 2/4/8 bytes."""
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def _to_bytes(message: str | bytes) -> bytes:
    return message.encode("utf-8") if isinstance(message, str) else bytes(message)


def message_digest(message: str | bytes, magic: str = EMERCOIN_MAGIC) -> bytes:
    """The 32-byte hash ``signmessage`` signs: sha256d(varstr(magic) + varstr(message)).

    Text is UTF-8 encoded, as Core's RPC does with the JSON string it receives.  The magic
    prefix keeps a signed message from ever being a valid transaction signature.
    """
    msg_b = _to_bytes(message)
    return _sha256d(_framed_magic(magic) + _compact_size(len(msg_b)) + msg_b)


@functools.lru_cache(maxsize=8)
def _framed_magic(magic: str) -> bytes:
    """``varstr(magic)``, the same for every message (a gateway hashes a million)."""
    magic_b = magic.encode("utf-8")
    return _compact_size(len(magic_b)) + magic_b


# --------------------------------------------------------------------------- signatures

_BASE64_ALPHABET: Final[frozenset[str]] = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)
_BASE64_RE: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def decode_signature(signature_b64: str) -> bytes:
    """Decode a compact signature as strictly as Core's ``DecodeBase64``; must yield 65 bytes.

    Standard alphabet only, length a multiple of 4, at most two ``=`` and zero padding bits --
    i.e. the canonical encoding.  Being strict keeps one signature from having many spellings
    in NVS and matches what ``verifymessage`` accepts over RPC.
    """
    if not isinstance(signature_b64, str):
        raise SignatureFormatError(
            f"signature must be a base64 string, got {type(signature_b64).__name__}"
        )
    # The common case first: canonical base64 of 65 bytes is exactly what
    # re-encoding the decoded bytes gives back.  Anything else takes the
    # checks below, which say precisely what is wrong.
    try:
        raw = binascii.a2b_base64(signature_b64, strict_mode=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == SIGNATURE_LENGTH and binascii.b2a_base64(
        raw, newline=False
    ) == signature_b64.encode("ascii"):
        return raw
    if not signature_b64:
        raise SignatureFormatError("empty signature")
    if _BASE64_RE.fullmatch(signature_b64) is None:
        body = signature_b64.rstrip("=")
        pos, ch = next(
            ((i, c) for i, c in enumerate(body) if c not in _BASE64_ALPHABET),
            (len(body), "="),
        )
        what = "misplaced or excess '='" if ch == "=" else f"character {ch!r}"
        raise SignatureFormatError(
            f"malformed base64 signature: {what} at position {pos} "
            "(only A-Z a-z 0-9 + / and up to two trailing '=' are allowed)"
        )
    if len(signature_b64) % 4:
        raise SignatureFormatError(
            f"malformed base64 signature: length {len(signature_b64)} is not a multiple of 4 "
            "(missing '=' padding?)"
        )
    raw = base64.b64decode(signature_b64, validate=True)
    if base64.b64encode(raw).decode("ascii") != signature_b64:
        raise SignatureFormatError("malformed base64 signature: non-canonical padding bits")
    if len(raw) != SIGNATURE_LENGTH:
        raise SignatureFormatError(
            f"signature decodes to {len(raw)} bytes, expected {SIGNATURE_LENGTH}"
        )
    return raw


def _parse_header(header: int) -> tuple[int, bool]:
    """(recid, compressed) exactly as Core's ``CPubKey::RecoverCompact`` reads the header byte.

    Core computes on ``int`` so headers below 27 go negative; Python's ``&`` on negative ints
    gives the same two's-complement result (header 0 -> recid 1, compressed).
    """
    rel = header - 27
    return rel & 3, (rel & 4) != 0


def _recover(digest: bytes, raw: bytes) -> bytes | None:
    """The recovered key, serialized as the header asks, or None when no key exists.

    libsecp256k1 is called through coincurve's own cffi binding rather than its
    ``PublicKey`` objects: that layer cost a quarter of each recovery (measured),
    and a gateway's first start recovers one key per record.
    """
    recid, compressed = _parse_header(raw[0])
    ctx = _SECP_CONTEXT.ctx
    buffers = _RECOVERY_BUFFERS
    sig = buffers.sig
    pub = buffers.pub
    # r or s zero or >= n, or R not on the curve: Core's ERR_PUBKEY_NOT_RECOVERED.
    if not _lib.secp256k1_ecdsa_recoverable_signature_parse_compact(ctx, sig, raw[1:], recid):
        return None
    if not _lib.secp256k1_ecdsa_recover(ctx, pub, sig, digest):
        return None
    out = buffers.out
    size = buffers.size
    size[0] = 65
    flags = _lib.SECP256K1_EC_COMPRESSED if compressed else _lib.SECP256K1_EC_UNCOMPRESSED
    _lib.secp256k1_ec_pubkey_serialize(ctx, out, size, pub, flags)
    return _ffi.buffer(out, size[0])[:]  # type: ignore[no-any-return]


class _RecoveryBuffers(threading.local):
    """The C structs :func:`_recover` fills, allocated once per thread: four
    allocations per call were a tenth of a recovery's Python overhead."""

    def __init__(self) -> None:
        self.sig = _ffi.new("secp256k1_ecdsa_recoverable_signature *")
        self.pub = _ffi.new("secp256k1_pubkey *")
        self.out = _ffi.new("unsigned char[65]")
        self.size = _ffi.new("size_t *")


_RECOVERY_BUFFERS: Final = _RecoveryBuffers()


def recover_public_key(
    message: str | bytes, signature_b64: str, magic: str = EMERCOIN_MAGIC
) -> bytes | None:
    """The public key a signature recovers to, serialized as its header says (33 or 65 bytes).

    Returns None when no key recovers (e.g. r = s = 0 or r >= n) -- a well-formed but
    meaningless signature; raises :class:`SignatureFormatError` when it is not even well formed.
    """
    raw = decode_signature(signature_b64)
    return _recover(message_digest(message, magic), raw)


def verify_message(
    address: Address | str,
    signature_b64: str,
    message: str | bytes,
    magic: str = EMERCOIN_MAGIC,
    network: Network | None = None,
) -> bool:
    """Emercoin ``verifymessage``: True iff the recovered key's HASH160 is the address's key hash.

    The address is checked first (raising :class:`AddressError`), then the signature format
    (:class:`SignatureFormatError`), mirroring Core's error order.  ``network`` only applies
    when ``address`` is text.  The signature itself is network independent: the same signature
    verifies against a key's mainnet, testnet and regtest addresses alike.
    """
    addr = address if isinstance(address, Address) else Address.from_text(address, network)
    raw = decode_signature(signature_b64)
    recovered = _recover(message_digest(message, magic), raw)
    if recovered is None:
        return False
    return hash160(recovered) == addr.key_hash


# --------------------------------------------------------------------------- private keys


class PrivateKey:
    """An immutable secp256k1 private key plus the compressed-pubkey flag WIF carries.

    The flag matters because an address commits to one serialization of the public key;
    signing with the wrong flag yields a signature that verifies against a different address.
    ``repr()`` shows only the public key so secrets do not leak into logs or tracebacks.
    """

    __slots__ = ("_compressed", "_key")

    _key: coincurve.PrivateKey
    _compressed: bool

    def __init__(self, secret: bytes, compressed: bool = True) -> None:
        if not isinstance(secret, bytes) or len(secret) != 32:
            raise PrivateKeyError("private key must be 32 bytes")
        scalar = int.from_bytes(secret, "big")
        if not 0 < scalar < SECP256K1_ORDER:
            raise PrivateKeyError("private key is out of range: must be in [1, n-1]")
        object.__setattr__(self, "_key", coincurve.PrivateKey(secret))
        object.__setattr__(self, "_compressed", bool(compressed))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("PrivateKey is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("PrivateKey is immutable")

    @classmethod
    def generate(cls, compressed: bool = True) -> PrivateKey:
        """A fresh random key from the OS CSPRNG (via libsecp256k1's key generation)."""
        secret: bytes = coincurve.PrivateKey().secret
        return cls(secret, compressed)

    @classmethod
    def from_wif(cls, wif: str) -> tuple[PrivateKey, Network]:
        """Decode Wallet Import Format, keeping the compressed flag; returns the key's network.

        WIF version 128 maps to MAINNET (Bitcoin mainnet shares it), 239 to TESTNET (regtest
        shares it); the network only matters for re-encoding, never for signing.
        """
        if not isinstance(wif, str):
            raise PrivateKeyError(f"WIF must be a string, got {type(wif).__name__}")
        if not wif:
            raise PrivateKeyError("empty WIF private key")
        try:
            version, payload = _base58check_decode_reason(wif)
        except CryptoError as exc:
            # The reason never echoes the text: a WIF with a typo is still almost all of a secret.
            raise PrivateKeyError(f"invalid WIF private key: {exc}") from None
        network = next((n for n in _EMERCOIN_NETWORKS if n.wif_version == version), None)
        if network is None:
            raise PrivateKeyError(f"not a WIF private key: unknown version byte {version}")
        if len(payload) == 33 and payload[32] == 0x01:
            return cls(payload[:32], True), network
        if len(payload) == 32:
            return cls(payload, False), network
        raise PrivateKeyError(
            f"invalid WIF private key: payload is {len(payload)} bytes, "
            "expected 32 or 33 ending in 0x01"
        )

    @classmethod
    def from_hex(cls, hex_: str, compressed: bool = True) -> PrivateKey:
        """Parse a 64-hex-digit secret (as shown by ``keys.json`` and debugging tools)."""
        if not isinstance(hex_, str) or len(hex_) != 64:
            raise PrivateKeyError("hex private key must be exactly 64 hex digits")
        try:
            secret = bytes.fromhex(hex_)
        except ValueError:
            raise PrivateKeyError("hex private key contains non-hex characters") from None
        return cls(secret, compressed)

    @property
    def compressed(self) -> bool:
        """Whether addresses and signatures use the 33-byte compressed public key."""
        return self._compressed

    def to_wif(self, network: Network) -> str:
        """Encode as WIF for ``network`` (suffix 0x01 marks a compressed key)."""
        suffix = b"\x01" if self._compressed else b""
        return base58check_encode(network.wif_version, self._secret() + suffix)

    def secret_hex(self) -> str:
        """The 32-byte secret as 64 lower-case hex digits."""
        return self._secret().hex()

    def _secret(self) -> bytes:
        secret: bytes = self._key.secret
        return secret

    def public_key_bytes(self) -> bytes:
        """Serialized public key: 33 bytes if compressed, else 65."""
        data: bytes = self._key.public_key.format(compressed=self._compressed)
        return data

    def address(self, network: Network, kind: AddressKind = AddressKind.P2PKH) -> Address:
        """This key's address; P2WPKH requires a compressed key (BIP-143 forbids uncompressed)."""
        if kind is AddressKind.P2WPKH and not self._compressed:
            raise CryptoError("P2WPKH addresses require a compressed public key")
        return Address(network, kind, hash160(self.public_key_bytes()))

    def sign_message(self, message: str | bytes, magic: str = EMERCOIN_MAGIC) -> str:
        """Emercoin ``signmessage``: base64 65-byte compact signature, RFC 6979 deterministic.

        libsecp256k1 signs with the RFC 6979 nonce and normalizes to low S, exactly as Core's
        ``CKey::SignCompact`` does, so the output matches Core byte for byte.
        """
        sig: bytes = self._key.sign_recoverable(message_digest(message, magic), hasher=None)
        header = 27 + sig[64] + (4 if self._compressed else 0)
        return base64.b64encode(bytes([header]) + sig[:64]).decode("ascii")

    def __repr__(self) -> str:
        return (
            f"PrivateKey(compressed={self._compressed}, public_key={self.public_key_bytes().hex()})"
        )

    __str__ = __repr__
