"""Tests for enumer.crypto against the shared ground-truth vectors and generated properties.

The vectors are read from ``$ENUMER_SHARED/vectors`` (default ``<repo>/../shared/vectors``) at
collection time; no vector value is copied into this file, so regenerating the vectors
re-targets the tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from enumer import crypto
from enumer.crypto import (
    BITCOIN_MAGIC,
    BITCOIN_MAINNET,
    EMERCOIN_MAGIC,
    MAINNET,
    NETWORKS,
    REGTEST,
    TESTNET,
    Address,
    AddressError,
    AddressKind,
    CryptoError,
    Network,
    PrivateKey,
    PrivateKeyError,
    SignatureFormatError,
    base58check_decode,
    base58check_encode,
    bech32_decode_segwit,
    bech32_encode_p2wpkh,
    decode_signature,
    hash160,
    message_digest,
    network_by_name,
    recover_public_key,
    verify_message,
)

N = crypto.SECP256K1_ORDER

# --------------------------------------------------------------------------- vector loading


def _shared_dir() -> Path:
    env = os.environ.get("ENUMER_SHARED")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared"


VECTORS_DIR = _shared_dir() / "vectors"


def _load(name: str) -> Any:
    path = VECTORS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"test vectors not found at {path}; set ENUMER_SHARED")
    return json.loads(path.read_text(encoding="utf-8"))


SIGNATURE_VECTORS: list[dict[str, Any]] = _load("signatures.json")
KEYS: list[dict[str, Any]] = _load("keys.json")

VECTOR_NETWORKS: dict[str, Network] = {
    "btc-main": BITCOIN_MAINNET,
    "emc-main": MAINNET,
    "emc-test": TESTNET,
    "emc-regtest": REGTEST,
}
OUTCOMES = {"true", "false", "malformed", "norecover", "invalid_address"}
WIF_RE = re.compile(r"\b[5KLc9][1-9A-HJ-NP-Za-km-z]{50,51}\b")


def _vector_params(vectors: list[dict[str, Any]]) -> list[Any]:
    return [pytest.param(v, id=v["id"]) for v in vectors]


def _net(v: dict[str, Any]) -> Network:
    return VECTOR_NETWORKS[v["network"]]


def _b64_len(sig: str) -> int | None:
    """Decoded length per the stdlib, or None if it is not valid base64 at all."""
    try:
        return len(base64.b64decode(sig, validate=True))
    except ValueError:
        return None


def _reproducible(v: dict[str, Any]) -> bool:
    """Vectors whose signature our deterministic signer must reproduce byte for byte."""
    if v["verifier_outcome"] != "true":
        return False
    return v["category"] == "generated_emercoin" or "byte-for-byte" in v.get("notes", "")


def _signing_key(v: dict[str, Any]) -> PrivateKey:
    """The vector's private key: its ``key`` record, a WIF in its notes, or keys.json by hash."""
    if "key" in v:
        key, _ = PrivateKey.from_wif(v["key"]["wif"])
        assert key.secret_hex() == v["key"]["private_key_hex"]
        assert key.compressed is v["key"]["compressed"]
        return key
    for wif in WIF_RE.findall(v.get("notes", "")):
        try:
            return PrivateKey.from_wif(wif)[0]
        except PrivateKeyError:
            continue
    addr = Address.from_text(v["address"], _net(v))
    for k in KEYS:
        for compressed, field in (
            (True, "hash160_compressed_hex"),
            (False, "hash160_uncompressed_hex"),
        ):
            if bytes.fromhex(k[field]) == addr.key_hash:
                return PrivateKey.from_hex(k["private_key_hex"], compressed)
    pytest.fail(f"no private key found for vector {v['id']}")


# --------------------------------------------------------------------------- signature vectors


def test_vector_file_shape() -> None:
    """Guard: an unknown outcome or network would otherwise be silently mis-tested."""
    assert len(SIGNATURE_VECTORS) >= 58
    for v in SIGNATURE_VECTORS:
        assert v["verifier_outcome"] in OUTCOMES, v["id"]
        assert v["network"] in VECTOR_NETWORKS, v["id"]
    assert len({v["id"] for v in SIGNATURE_VECTORS}) == len(SIGNATURE_VECTORS)
    generated = [v for v in SIGNATURE_VECTORS if v["category"] == "generated_emercoin"]
    assert generated and all(_reproducible(v) for v in generated)


@pytest.mark.parametrize("v", _vector_params(SIGNATURE_VECTORS))
def test_signature_vector(v: dict[str, Any]) -> None:
    net = _net(v)
    message, magic, sig, address = v["message"], v["magic"], v["signature_base64"], v["address"]

    assert message.encode("utf-8").hex() == v["message_utf8_hex"]
    assert message_digest(message, magic).hex() == v["message_hash_hex"]
    assert message_digest(message.encode("utf-8"), magic).hex() == v["message_hash_hex"]

    outcome = v["verifier_outcome"]
    if outcome == "invalid_address":
        with pytest.raises(AddressError) as excinfo:
            Address.from_text(address, net)
        assert "\n" not in str(excinfo.value)
        with pytest.raises(AddressError):
            verify_message(address, sig, message, magic, network=net)
        return

    parsed = Address.from_text(address, net)
    assert parsed.to_text() == address

    if outcome == "malformed":
        for call in (
            lambda: decode_signature(sig),
            lambda: recover_public_key(message, sig, magic),
            lambda: verify_message(address, sig, message, magic, network=net),
        ):
            with pytest.raises(SignatureFormatError) as sig_exc:
                call()
            assert "base64" in str(sig_exc.value)
        return

    if outcome == "norecover" and _b64_len(sig) != crypto.SIGNATURE_LENGTH:
        # Deliberate API choice: a base64 string that decodes to other than 65 bytes is a
        # SignatureFormatError here, while Core reports ERR_PUBKEY_NOT_RECOVERED.  Either way
        # the signature is rejected.
        with pytest.raises(SignatureFormatError, match="expected 65"):
            recover_public_key(message, sig, magic)
        with pytest.raises(SignatureFormatError, match="expected 65"):
            verify_message(address, sig, message, magic, network=net)
        return

    raw = decode_signature(sig)
    assert len(raw) == 65
    if "header_byte" in v:
        assert raw[0] == v["header_byte"]
        assert crypto._parse_header(raw[0]) == (v["recid"], v["compressed_flag"])

    recovered = recover_public_key(message, sig, magic)
    if outcome == "norecover":
        assert recovered is None
        assert verify_message(address, sig, message, magic, network=net) is False
        return

    assert recovered is not None
    if v.get("recovered_pubkey_hex"):
        assert recovered.hex() == v["recovered_pubkey_hex"]
    if "compressed_flag" in v:
        assert len(recovered) == (33 if v["compressed_flag"] else 65)

    expected = outcome == "true"
    assert v["valid"] is expected
    assert verify_message(address, sig, message, magic, network=net) is expected
    assert verify_message(parsed, sig, message, magic) is expected
    assert (hash160(recovered) == parsed.key_hash) is expected


@pytest.mark.parametrize("v", _vector_params([v for v in SIGNATURE_VECTORS if _reproducible(v)]))
def test_signature_vector_reproduced(v: dict[str, Any]) -> None:
    key = _signing_key(v)
    addr = Address.from_text(v["address"], _net(v))
    assert key.address(addr.network, addr.kind) == addr
    assert key.sign_message(v["message"], v["magic"]) == v["signature_base64"]


@pytest.mark.parametrize(
    "v", _vector_params([v for v in SIGNATURE_VECTORS if WIF_RE.search(v.get("notes", ""))])
)
def test_vector_wif_in_notes_owns_address(v: dict[str, Any]) -> None:
    """Non-reproducible vectors (random nonces) still name their key: check it owns the address."""
    (wif,) = WIF_RE.findall(v["notes"])
    key, _ = PrivateKey.from_wif(wif)
    assert key.address(_net(v)).to_text() == v["address"]
    if v["verifier_outcome"] == "true":
        assert recover_public_key(v["message"], v["signature_base64"], v["magic"]) == (
            key.public_key_bytes()
        )


# --------------------------------------------------------------------------- keys.json


def _address_label(label: str) -> tuple[Network, AddressKind, bool]:
    parts = label.split("_")
    net = NETWORKS[parts[0]]
    kind = AddressKind(parts[1])
    compressed = kind is AddressKind.P2WPKH or parts[2] == "compressed"
    return net, kind, compressed


@pytest.mark.parametrize("k", [pytest.param(k, id=k["name"]) for k in KEYS])
def test_key_vector(k: dict[str, Any]) -> None:
    comp = PrivateKey.from_hex(k["private_key_hex"], compressed=True)
    uncomp = PrivateKey.from_hex(k["private_key_hex"], compressed=False)
    assert comp.secret_hex() == uncomp.secret_hex() == k["private_key_hex"]
    assert comp.compressed and not uncomp.compressed
    assert comp.public_key_bytes().hex() == k["pubkey_compressed_hex"]
    assert uncomp.public_key_bytes().hex() == k["pubkey_uncompressed_hex"]
    assert hash160(bytes.fromhex(k["pubkey_compressed_hex"])).hex() == k["hash160_compressed_hex"]
    assert (
        hash160(bytes.fromhex(k["pubkey_uncompressed_hex"])).hex() == k["hash160_uncompressed_hex"]
    )

    for label, wif in k["wif"].items():
        net = NETWORKS[label.split("_")[0]]
        compressed = label.endswith("_compressed")
        key, got_net = PrivateKey.from_wif(wif)
        assert got_net == net
        assert key.secret_hex() == k["private_key_hex"]
        assert key.compressed is compressed
        assert key.to_wif(net) == wif
        if net is TESTNET:
            assert key.to_wif(REGTEST) == wif

    for label, text in k["address"].items():
        net, kind, compressed = _address_label(label)
        key = comp if compressed else uncomp
        derived = key.address(net, kind)
        assert derived.to_text() == text
        assert str(derived) == text
        parsed = Address.from_text(text, net)
        assert parsed == derived
        assert parsed.to_text() == text
        auto = Address.from_text(text)
        assert auto.kind is kind
        assert auto.key_hash == derived.key_hash
        assert auto.to_text() == text
        if kind is AddressKind.P2PKH and net is not MAINNET:
            # testnet and regtest share base58 versions: no network means testnet.
            assert auto.network is TESTNET
            regtest = Address.from_text(text, REGTEST)
            assert regtest.network is REGTEST and regtest.to_text() == text
        else:
            assert auto.network is net

    with pytest.raises(CryptoError, match="compressed"):
        uncomp.address(MAINNET, AddressKind.P2WPKH)


def test_keys_cover_all_address_forms() -> None:
    for k in KEYS:
        labels = set(k["address"])
        assert {"mainnet_p2pkh_compressed", "mainnet_p2wpkh", "regtest_p2wpkh"} <= labels


# --------------------------------------------------------------------------- hashing, framing


RIPEMD160_VECTORS = [
    # From the RIPEMD-160 reference page (Dobbertin, Bosselaers, Preneel).
    (b"", "9c1185a5c5e9fc54612808977ee8f548b2258d31"),
    (b"a", "0bdc9d2d256b3ee9daae347be6f4dc835a467ffe"),
    (b"abc", "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"),
    (b"message digest", "5d0689ef49d2fae572b881b123a85ffa21595f36"),
    (b"abcdefghijklmnopqrstuvwxyz", "f71c27109c692c1b56bbdceb5b9d2865b3708dbc"),
    (b"1234567890" * 8, "9b752e45573d4b39f4dbd3323cab82bf63326bfb"),
]


@pytest.mark.parametrize(("data", "digest"), RIPEMD160_VECTORS)
def test_ripemd160_fallback_reference_vectors(data: bytes, digest: str) -> None:
    assert crypto._ripemd160_py(data).hex() == digest
    assert crypto._ripemd160(data).hex() == digest


def test_ripemd160_fallback_matches_keys() -> None:
    for k in KEYS:
        for pub, h in (
            (k["pubkey_compressed_hex"], k["hash160_compressed_hex"]),
            (k["pubkey_uncompressed_hex"], k["hash160_uncompressed_hex"]),
        ):
            sha = hashlib.sha256(bytes.fromhex(pub)).digest()
            assert crypto._ripemd160_py(sha).hex() == h


def _hashlib_has_ripemd160() -> bool:
    try:
        hashlib.new("ripemd160")
    except ValueError:
        return False
    return True


@pytest.mark.skipif(not _hashlib_has_ripemd160(), reason="hashlib lacks ripemd160")
@given(st.binary(max_size=300))
def test_ripemd160_fallback_matches_hashlib(data: bytes) -> None:
    assert crypto._ripemd160_py(data) == hashlib.new("ripemd160", data).digest()


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, "00"),
        (0xFC, "fc"),
        (0xFD, "fdfd00"),
        (0xFFFF, "fdffff"),
        (0x10000, "fe00000100"),
        (0xFFFFFFFF, "feffffffff"),
        (0x100000000, "ff0000000001000000"),
    ],
)
def test_compact_size(n: int, encoded: str) -> None:
    assert crypto._compact_size(n).hex() == encoded


def test_message_digest_framing() -> None:
    msg = "x" * 300  # needs the 0xfd CompactSize form
    body = bytes([len(EMERCOIN_MAGIC)]) + EMERCOIN_MAGIC.encode() + b"\xfd\x2c\x01" + msg.encode()
    expected = hashlib.sha256(hashlib.sha256(body).digest()).digest()
    assert message_digest(msg) == expected
    assert message_digest(msg, EMERCOIN_MAGIC) != message_digest(msg, BITCOIN_MAGIC)
    assert len(EMERCOIN_MAGIC) == 25


# --------------------------------------------------------------------------- Core leniency


def test_every_header_byte_behaves_like_core() -> None:
    """Only (header - 27) mod 8 matters: any byte with the original's residue verifies."""
    key = PrivateKey.from_hex(KEYS[0]["private_key_hex"])
    message = "enum:18009359935:0"
    sig = decode_signature(key.sign_message(message))
    addr = key.address(MAINNET)
    for header in range(256):
        forged = base64.b64encode(bytes([header]) + sig[1:]).decode()
        expected = (header - 27) % 8 == (sig[0] - 27) % 8
        assert verify_message(addr, forged, message) is expected, header


@given(st.integers(1, N - 1), st.booleans(), st.text(max_size=40))
@settings(max_examples=25)
def test_high_s_malleated_signature_accepted(secret: int, compressed: bool, msg: str) -> None:
    key = PrivateKey(secret.to_bytes(32, "big"), compressed)
    raw = decode_signature(key.sign_message(msg))
    s = int.from_bytes(raw[33:], "big")
    assert s <= N // 2  # the signer produces low-S, like Core
    recid = (raw[0] - 27) & 3
    malleated = bytes([raw[0] - recid + (recid ^ 1)]) + raw[1:33] + (N - s).to_bytes(32, "big")
    sig = base64.b64encode(malleated).decode()
    assert recover_public_key(msg, sig) == key.public_key_bytes()
    assert verify_message(key.address(MAINNET), sig, msg) is True


def test_recover_returns_none_for_unrecoverable() -> None:
    for r, s in ((0, 0), (N, 1), (2**256 - 1, 1), (1, 0), (1, N)):
        raw = bytes([31]) + r.to_bytes(32, "big") + s.to_bytes(32, "big")
        sig = base64.b64encode(raw).decode()
        assert recover_public_key("m", sig) is None
        assert verify_message(PrivateKey.generate().address(MAINNET), sig, "m") is False


# --------------------------------------------------------------------------- properties

secrets_st = st.integers(min_value=1, max_value=N - 1)
messages_st = st.one_of(st.text(max_size=300), st.binary(max_size=300))
networks_st = st.sampled_from([MAINNET, TESTNET, REGTEST])


def _as_bytes(m: str | bytes) -> bytes:
    return m.encode("utf-8") if isinstance(m, str) else m


@given(secrets_st, st.booleans(), messages_st, st.sampled_from([EMERCOIN_MAGIC, BITCOIN_MAGIC]))
@settings(max_examples=60)
def test_sign_then_verify(secret: int, compressed: bool, msg: str | bytes, magic: str) -> None:
    key = PrivateKey(secret.to_bytes(32, "big"), compressed)
    sig = key.sign_message(msg, magic)
    assert sig == key.sign_message(msg, magic)  # RFC 6979: deterministic
    raw = decode_signature(sig)
    assert raw[0] - 27 - (4 if compressed else 0) in range(4)
    assert recover_public_key(msg, sig, magic) == key.public_key_bytes()
    kinds = [AddressKind.P2PKH, AddressKind.P2WPKH] if compressed else [AddressKind.P2PKH]
    for net in (MAINNET, TESTNET, REGTEST):
        for kind in kinds:
            addr = key.address(net, kind)
            assert verify_message(addr, sig, msg, magic) is True
            assert verify_message(addr.to_text(), sig, msg, magic, network=net) is True
    other_magic = BITCOIN_MAGIC if magic == EMERCOIN_MAGIC else EMERCOIN_MAGIC
    assert verify_message(key.address(MAINNET), sig, msg, other_magic) is False
    other_key = PrivateKey((secret % (N - 1) + 1).to_bytes(32, "big"), compressed)
    assert verify_message(other_key.address(MAINNET), sig, msg, magic) is False
    flipped = PrivateKey(secret.to_bytes(32, "big"), not compressed)
    assert verify_message(flipped.address(MAINNET), sig, msg, magic) is False


@given(secrets_st, st.booleans(), messages_st, messages_st)
@settings(max_examples=40)
def test_verify_other_message_false(
    secret: int, compressed: bool, m1: str | bytes, m2: str | bytes
) -> None:
    assume(_as_bytes(m1) != _as_bytes(m2))
    key = PrivateKey(secret.to_bytes(32, "big"), compressed)
    sig = key.sign_message(m1)
    assert verify_message(key.address(MAINNET), sig, m2) is False
    assert verify_message(key.address(MAINNET), sig, _as_bytes(m1)) is True


@given(st.integers(0, 255), st.binary(max_size=40))
def test_base58check_roundtrip(version: int, payload: bytes) -> None:
    text = base58check_encode(version, payload)
    assert base58check_decode(text) == (version, payload)


@given(st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=20))
def test_bech32_roundtrip(hrp: str) -> None:
    key_hash = hashlib.sha256(hrp.encode()).digest()[:20]
    text = bech32_encode_p2wpkh(hrp, key_hash)
    assert text == text.lower()
    assert bech32_decode_segwit(hrp, text) == (0, key_hash)
    assert bech32_decode_segwit(hrp, text.upper()) == (0, key_hash)


@given(st.binary(min_size=20, max_size=20), st.sampled_from(["em", "te", "emrt", "bc"]))
def test_bech32_roundtrip_known_hrps(key_hash: bytes, hrp: str) -> None:
    assert bech32_decode_segwit(hrp, bech32_encode_p2wpkh(hrp, key_hash)) == (0, key_hash)


REPLACEMENT_CHARS = sorted(
    set(crypto._B58_ALPHABET + crypto._BECH32_CHARSET + crypto._BECH32_CHARSET.upper() + "0OIl1 ")
)


@given(
    st.binary(min_size=20, max_size=20),
    networks_st,
    st.sampled_from(list(AddressKind)),
    st.data(),
)
def test_single_character_corruption_detected(
    key_hash: bytes, net: Network, kind: AddressKind, data: st.DataObject
) -> None:
    text = Address(net, kind, key_hash).to_text()
    pos = data.draw(st.integers(0, len(text) - 1))
    ch = data.draw(st.sampled_from(REPLACEMENT_CHARS))
    assume(ch != text[pos])
    corrupted = text[:pos] + ch + text[pos + 1 :]
    for network in (None, net):
        with pytest.raises(AddressError) as excinfo:
            Address.from_text(corrupted, network)
        assert "\n" not in str(excinfo.value)


# --------------------------------------------------------------------------- bech32 references


def test_bip173_reference_p2wpkh() -> None:
    # BIP-173's own example: the HASH160 of the generator point's compressed key.
    program = bytes.fromhex("751e76e8199196d454941c45d1b3a323f1433bd6")
    assert bech32_decode_segwit("bc", "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4") == (0, program)
    assert bech32_encode_p2wpkh("bc", program) == "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    addr = Address.from_text("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", BITCOIN_MAINNET)
    assert addr.kind is AddressKind.P2WPKH and addr.key_hash == program


@pytest.mark.parametrize(
    "text",
    [
        # The invalid-address list of BIP-173.
        "tc1qw508d6qejxtdg4y5r3zarvary0c5xw7kg3g4ty",  # invalid human-readable part
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",  # invalid checksum
        "BC13W508D6QEJXTDG4Y5R3ZARVARY0C5XW7KN40WF2",  # invalid witness version
        "bc1rw5uspcuh",  # invalid program length
        "bc10w508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kw5rljs90",
        "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",  # v0 program must be 20 or 32 bytes
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sL5k7",  # mixed case
        "bc1zw508d6qejxtdg4y5r3zarvaryvqyzf3du",  # zero padding of more than 4 bits
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3pjxtptv",  # non-zero padding
        "bc1gmk9yu",  # empty data section
    ],
)
def test_bip173_invalid_addresses(text: str) -> None:
    hrp = "tb" if text.lower().startswith("tb") else "bc"  # the HRP each vector was made for
    with pytest.raises(AddressError):
        bech32_decode_segwit(hrp, text)
    with pytest.raises(AddressError):
        Address.from_text(text)


# --------------------------------------------------------------------------- bad inputs

_H = bytes(range(20))
_K2 = next(k for k in KEYS if k["name"] == "K2_verifier")


def _addr(label: str) -> str:
    text: str = _K2["address"][label]
    return text


BAD_ADDRESSES: list[tuple[object, Network | None, str]] = [
    ("", None, "empty"),
    ("", MAINNET, "empty"),
    ("garbage", None, "invalid"),
    ("E", None, "too short"),
    ("0OIl", None, "invalid base58 character"),
    ("   ", None, "invalid"),
    (_addr("mainnet_p2pkh_compressed") + " ", None, "invalid"),
    (" " + _addr("mainnet_p2pkh_compressed"), MAINNET, "invalid"),
    (_addr("mainnet_p2pkh_compressed")[:-1] + "X", None, "checksum"),
    (_addr("testnet_p2pkh_compressed"), MAINNET, "not a mainnet address"),
    (_addr("mainnet_p2pkh_compressed"), TESTNET, "not a testnet address"),
    (_addr("mainnet_p2pkh_compressed"), REGTEST, "not a regtest address"),
    (_addr("mainnet_p2wpkh"), TESTNET, "not a testnet address"),
    (_addr("testnet_p2wpkh"), MAINNET, "not a mainnet address"),
    (_addr("regtest_p2wpkh"), TESTNET, "not a testnet address"),
    (_addr("mainnet_p2pkh_compressed"), BITCOIN_MAINNET, "not a bitcoin address"),
    (base58check_encode(0, _H), None, "not an Emercoin address"),
    (base58check_encode(0, _H), MAINNET, "bitcoin"),
    (base58check_encode(99, _H), None, "unknown base58 version 99"),
    (base58check_encode(MAINNET.p2sh_version, _H), None, "P2SH"),
    (base58check_encode(MAINNET.p2sh_version, _H), MAINNET, "P2SH"),
    (base58check_encode(TESTNET.p2sh_version, _H), None, "P2SH"),
    (base58check_encode(TESTNET.p2sh_version, _H), REGTEST, "P2SH"),
    (base58check_encode(MAINNET.p2pkh_version, _H[:19]), None, "19 bytes"),
    (base58check_encode(MAINNET.p2pkh_version, _H + b"\x00"), None, "21 bytes"),
    (crypto._segwit_encode("em", 1, bytes(32)), None, "witness v1"),
    (crypto._segwit_encode("em", 0, bytes(32)), MAINNET, "not P2WPKH"),
    (crypto._segwit_encode("emrt", 16, bytes(20)), None, "P2WPKH"),
    (_addr("mainnet_p2wpkh")[:5] + _addr("mainnet_p2wpkh")[5:].upper(), None, "mixes upper"),
    (_addr("mainnet_p2wpkh")[:-1] + "q", None, "checksum"),
    (_addr("mainnet_p2wpkh")[:-1] + "b", None, "invalid bech32 character"),
    (_addr("mainnet_p2wpkh") + "\n", None, "blank"),
    (_addr("mainnet_p2wpkh") + "q" * 60, None, "longer than 90"),
    ("em1", None, "separator"),
    ("tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx", None, "unknown bech32 prefix"),
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", None, "bitcoin"),
    (None, None, "must be a string"),
    (b"EWfxoNoHEtujgnnuW2srndEPashHfLGLKm", None, "must be a string"),
]


@pytest.mark.parametrize(("text", "network", "fragment"), BAD_ADDRESSES)
def test_bad_addresses(text: object, network: Network | None, fragment: str) -> None:
    with pytest.raises(AddressError) as excinfo:
        Address.from_text(text, network)  # type: ignore[arg-type]
    message = str(excinfo.value)
    assert fragment.lower() in message.lower()
    assert "\n" not in message


def test_no_key_addresses_say_why() -> None:
    for text in (
        base58check_encode(MAINNET.p2sh_version, _H),
        crypto._segwit_encode("em", 1, bytes(32)),
        crypto._segwit_encode("em", 0, bytes(32)),
    ):
        with pytest.raises(AddressError, match="only P2PKH and P2WPKH"):
            Address.from_text(text)


def test_address_checked_before_signature() -> None:
    with pytest.raises(AddressError):
        verify_message(base58check_encode(MAINNET.p2sh_version, _H), "not base64!", "m")


BAD_SIGNATURES: list[tuple[object, str]] = [
    ("", "empty"),
    ("garbage!", "character '!'"),
    ("A" * 87, "multiple of 4"),
    ("A" * 88, "66 bytes"),
    ("A" * 84 + "AA==", "64 bytes"),
    ("A" * 86 + "B=", "non-canonical"),
    ("A" * 85 + "===", "excess"),
    ("=" + "A" * 87, "position 0"),
    ("A" * 40 + "\t" + "A" * 47, "position 40"),
    ("A" * 86 + "-_", "character '-'"),
    ("Ä" * 88, "character"),
    (None, "must be a base64 string"),
    (b"A" * 88, "must be a base64 string"),
]


@pytest.mark.parametrize(("sig", "fragment"), BAD_SIGNATURES)
def test_bad_signatures(sig: object, fragment: str) -> None:
    addr = PrivateKey.from_hex(_K2["private_key_hex"]).address(MAINNET)
    for call in (
        lambda: decode_signature(sig),  # type: ignore[arg-type]
        lambda: recover_public_key("m", sig),  # type: ignore[arg-type]
        lambda: verify_message(addr, sig, "m"),  # type: ignore[arg-type]
    ):
        with pytest.raises(SignatureFormatError) as excinfo:
            call()
        assert fragment in str(excinfo.value)
        assert "\n" not in str(excinfo.value)


_SECRET = bytes.fromhex(_K2["private_key_hex"])

BAD_WIFS: list[tuple[object, str]] = [
    ("", "empty"),
    ("garbage", "invalid WIF"),
    (_K2["wif"]["mainnet_compressed"][:-1] + "X", "checksum"),
    (_addr("mainnet_p2pkh_compressed"), "unknown version byte 33"),
    (base58check_encode(128, _SECRET + b"\x02"), "expected 32 or 33"),
    (base58check_encode(128, _SECRET[:31]), "expected 32 or 33"),
    (base58check_encode(128, bytes(32) + b"\x01"), "out of range"),
    (base58check_encode(239, N.to_bytes(32, "big")), "out of range"),
    (None, "must be a string"),
]


@pytest.mark.parametrize(("wif", "fragment"), BAD_WIFS)
def test_bad_wif(wif: object, fragment: str) -> None:
    with pytest.raises(PrivateKeyError) as excinfo:
        PrivateKey.from_wif(wif)  # type: ignore[arg-type]
    message = str(excinfo.value)
    assert fragment in message
    assert "\n" not in message
    if isinstance(wif, str) and len(wif) > 20:
        assert wif not in message  # never echo (most of) a secret


@pytest.mark.parametrize(
    ("hex_", "fragment"),
    [
        ("", "64 hex digits"),
        ("abc", "64 hex digits"),
        ("zz" * 32, "non-hex"),
        ("00" * 32, "out of range"),
        (f"{N:064x}", "out of range"),
        ("ff" * 32, "out of range"),
        (None, "64 hex digits"),
    ],
)
def test_bad_hex_key(hex_: object, fragment: str) -> None:
    with pytest.raises(PrivateKeyError, match=fragment):
        PrivateKey.from_hex(hex_)  # type: ignore[arg-type]


def test_bad_raw_key() -> None:
    with pytest.raises(PrivateKeyError, match="32 bytes"):
        PrivateKey(b"\x01" * 31)


def test_codec_errors_are_crypto_errors() -> None:
    with pytest.raises(CryptoError, match="too short"):
        base58check_decode("1")
    with pytest.raises(CryptoError, match="empty"):
        base58check_decode("")
    with pytest.raises(CryptoError, match="single byte"):
        base58check_encode(256, b"")
    with pytest.raises(AddressError, match="20 bytes"):
        bech32_encode_p2wpkh("em", bytes(21))
    with pytest.raises(AddressError, match="expected 'em'"):
        bech32_decode_segwit("em", _addr("testnet_p2wpkh"))
    with pytest.raises(AddressError, match="20 bytes"):
        Address(MAINNET, AddressKind.P2PKH, bytes(19))


# --------------------------------------------------------------------------- networks, keys


def test_networks() -> None:
    assert NETWORKS == {"mainnet": MAINNET, "testnet": TESTNET, "regtest": REGTEST}
    assert (MAINNET.p2pkh_version, MAINNET.p2sh_version, MAINNET.wif_version) == (33, 92, 128)
    assert (TESTNET.p2pkh_version, TESTNET.p2sh_version, TESTNET.wif_version) == (111, 196, 239)
    assert (REGTEST.p2pkh_version, REGTEST.p2sh_version, REGTEST.wif_version) == (111, 196, 239)
    assert [n.bech32_hrp for n in (MAINNET, TESTNET, REGTEST, BITCOIN_MAINNET)] == [
        "em",
        "te",
        "emrt",
        "bc",
    ]
    for name, net in NETWORKS.items():
        assert network_by_name(name) is net
    with pytest.raises(CryptoError, match="mainnet, testnet, regtest") as excinfo:
        network_by_name("bitcoin")
    assert "'bitcoin'" in str(excinfo.value)


def test_private_key_hygiene() -> None:
    key = PrivateKey.from_hex(_K2["private_key_hex"])
    for text in (repr(key), str(key), f"{key!r}"):
        assert _K2["private_key_hex"] not in text
        assert _K2["wif"]["mainnet_compressed"] not in text
        assert _K2["pubkey_compressed_hex"] in text
    with pytest.raises(AttributeError):
        key._compressed = False
    with pytest.raises(AttributeError):
        key.compressed = False  # type: ignore[misc]
    assert key.compressed is True


def test_generate() -> None:
    a, b = PrivateKey.generate(), PrivateKey.generate()
    assert a.compressed and len(a.public_key_bytes()) == 33
    assert a.secret_hex() != b.secret_hex()
    assert not PrivateKey.generate(compressed=False).compressed
    msg = "enum:18009359935:0"
    assert verify_message(a.address(TESTNET, AddressKind.P2WPKH), a.sign_message(msg), msg)


def test_exception_hierarchy() -> None:
    for exc in (AddressError, SignatureFormatError, PrivateKeyError):
        assert issubclass(exc, CryptoError)
    assert issubclass(CryptoError, ValueError)


def test_ripemd160_fallback_selected_without_openssl_support(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_ripemd(name: str, *args: object, **kwargs: object) -> Any:
        raise ValueError(f"unsupported hash type {name}")

    monkeypatch.setattr(hashlib, "new", no_ripemd)
    assert crypto._pick_ripemd160() is crypto._ripemd160_py


def _canonical_65(text: str) -> bytes | None:
    """The reference rule of :func:`decode_signature`, spelt out slowly."""
    if not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", text) or len(text) % 4:
        return None
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text or len(raw) != crypto.SIGNATURE_LENGTH:
        return None
    return raw


_B64 = string.ascii_letters + string.digits + "+/"
_signature_like = st.one_of(
    st.text(alphabet=_B64 + "=", max_size=92),
    st.binary(min_size=62, max_size=68).map(lambda b: base64.b64encode(b).decode()),
    # a valid encoding with one character replaced: often non-zero padding bits
    st.tuples(
        st.binary(min_size=65, max_size=65), st.integers(0, 87), st.sampled_from(_B64 + "=\n")
    ).map(lambda t: (lambda s: s[: t[1]] + t[2] + s[t[1] + 1 :])(base64.b64encode(t[0]).decode())),
)


@settings(max_examples=400)
@given(_signature_like)
def test_decode_signature_takes_exactly_canonical_base64_of_65_bytes(text: str) -> None:
    expected = _canonical_65(text)
    if expected is None:
        with pytest.raises(SignatureFormatError):
            decode_signature(text)
    else:
        assert decode_signature(text) == expected


def test_private_secp256k1_binding_of_coincurve_is_there_and_recovers() -> None:
    """crypto.py calls libsecp256k1 through coincurve's private ``_libsecp256k1`` module
    (pinned in pyproject.toml): a coincurve that renames or drops it must fail here, by
    name, rather than deep inside signature checks."""
    from coincurve import PrivateKey as CoincurvePrivateKey
    from coincurve._libsecp256k1 import ffi, lib

    for name in (
        "secp256k1_ecdsa_recoverable_signature_parse_compact",
        "secp256k1_ecdsa_recover",
        "secp256k1_ec_pubkey_serialize",
        "SECP256K1_EC_COMPRESSED",
        "SECP256K1_EC_UNCOMPRESSED",
    ):
        assert hasattr(lib, name), name
    assert ffi.sizeof("secp256k1_pubkey") == 64
    # The binding recovers what coincurve's public API signed, through crypto's own path.
    key = CoincurvePrivateKey(bytes(range(1, 33)))
    message = "enum:18009359935:0"
    signed = key.sign_recoverable(crypto.message_digest(message), hasher=None)
    # Core's compact form: header 31 + recid (compressed key), then r and s.
    signature = base64.b64encode(bytes([31 + signed[64]]) + signed[:64]).decode()
    assert crypto.recover_public_key(message, signature) == key.public_key.format(True)
