"""DNSSEC for the gateway's zones (SPEC 12): keys, signatures, the NSEC chain.

Everything here runs when the answer table is built or changed, or in
``enumer dnssec``/``enumer zone export``: never per query.  Signatures are
made directly with ``cryptography`` (dnspython's ``dns.dnssec.sign`` costs
several times more per RRset, which matters at a million numbers); the tests
check them with dnspython's ``dns.dnssec.validate`` and with real validators.

Keys are BIND's ``K<zone>+<alg>+<tag>.key``/``.private`` files, so keys made
by ``dnssec-keygen`` work and ours work in BIND.  The timing metadata BIND
writes in ``.private`` (``Publish``, ``Activate``, ``Inactive``, ``Delete``)
drives rollovers: a key is in the DNSKEY set from Publish until Delete, and
signs from Activate until Inactive (docs/dnssec.md).

Names: the ENUM zone's served names are ``d.d.d.<origin>``, one digit a
label.  In DNSSEC's canonical order (RFC 4034 6.1: labels compared from the
root side) such names sort exactly as the E.164 digit strings they spell, a
number just before its extensions: the NSEC chain is the served numbers'
digit strings sorted as text, with the apex (the empty string) first.  A
wildcard ``*.N`` sorts as ``N + "*"`` (``*`` is below every digit).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ECDSAP256SHA256 = 13
ED25519 = 15
ALGORITHMS = {ECDSAP256SHA256: "ECDSAP256SHA256", ED25519: "ED25519"}

T_SOA = 6
T_NS = 2
T_NAPTR = 35
T_DS = 43
T_RRSIG = 46
T_NSEC = 47
T_DNSKEY = 48
C_IN = 1

ZONE_FLAG = 0x0100
SEP_FLAG = 0x0001

DNSKEY_TTL = 3600
#: How long a signature is valid, and how long before its expiry it is renewed.
DEFAULT_VALIDITY = 14 * 86400
DEFAULT_REFRESH = 7 * 86400
#: Inception is set this far in the past, for validators whose clock lags.
INCEPTION_SKEW = 3600

_ECDSA = ec.ECDSA(hashes.SHA256())


class DnssecError(ValueError):
    """A key file or key directory that cannot be used (one line)."""


# -- names --------------------------------------------------------------------------


def origin_wire(zone: str) -> bytes:
    """``"enum"``/``"enum."`` -> ``b"\\x04enum\\x00"`` (lower case, absolute)."""
    out = bytearray()
    for label in zone_text(zone)[:-1].split("."):
        out.append(len(label))
        out += label.encode("ascii")
    out.append(0)
    return bytes(out)


def zone_text(zone: str) -> str:
    """The zone as an absolute name in lower case: ``enum.``; a name with an empty,
    overlong or non-hostname label (``..enum``, ``enum..org``) is refused, so the
    key files' name and the signed owner names are the same zone."""
    name = zone.strip().lower()
    name = name[:-1] if name.endswith(".") else name
    labels = name.split(".")
    if not name or any(len(lb) > 63 or not re.fullmatch(r"[a-z0-9_-]+", lb) for lb in labels):
        raise DnssecError(f"bad zone name {zone!r}")
    return name + "."


def digits_owner(digits: str, origin: bytes) -> bytes:
    """The wire name of E.164 digits under ``origin``: ``"18"`` -> ``\\x018\\x011<origin>``;
    ``"18*"`` is the wildcard ``*.8.1.<origin>``; ``""`` is the apex."""
    if not digits.isdigit():  # a wildcard sort key ("18*") or the apex ("")
        return b"".join(b"\x01" + ch.encode() for ch in reversed(digits)) + origin
    out = bytearray(2 * len(digits))
    out[0::2] = b"\x01" * len(digits)
    out[1::2] = digits[::-1].encode("ascii")
    return bytes(out) + origin


def _labels(wire: bytes) -> int:
    """RRSIG's label count: labels of the owner, the root and a leading ``*`` not counted."""
    count = 0
    pos = 0
    while wire[pos]:
        count += 1
        pos += wire[pos] + 1
    return count - 1 if wire[:2] == b"\x01*" else count


# -- keys ---------------------------------------------------------------------------


def _stamp(text: str) -> int:
    return int(datetime.strptime(text.strip(), "%Y%m%d%H%M%S").replace(tzinfo=UTC).timestamp())


def _stamp_text(when: int) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y%m%d%H%M%S")


@dataclass
class Key:
    """One DNSSEC key of a zone, with BIND's timing metadata (seconds, None: unset)."""

    zone: str  # absolute, lower case
    algorithm: int
    flags: int
    private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    created: int = 0
    publish: int | None = None
    activate: int | None = None
    inactive: int | None = None
    delete: int | None = None
    path: Path | None = None

    @cached_property
    def public(self) -> bytes:
        """The DNSKEY public key field (RFC 6605: X | Y; RFC 8080: the raw key)."""
        if isinstance(self.private, ed25519.Ed25519PrivateKey):
            from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

            return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        numbers = self.private.public_key().public_numbers()
        return numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")

    @cached_property
    def rdata(self) -> bytes:
        return struct.pack(">HBB", self.flags, 3, self.algorithm) + self.public

    @cached_property
    def tag(self) -> int:
        """The key tag (RFC 4034 appendix B)."""
        total = 0
        for i, b in enumerate(self.rdata):
            total += b << 8 if not i & 1 else b
        total += (total >> 16) & 0xFFFF
        return total & 0xFFFF

    @cached_property
    def signer(self) -> bytes:
        """The zone in wire form: the RRSIG signer name."""
        return origin_wire(self.zone)

    @property
    def is_ksk(self) -> bool:
        return bool(self.flags & SEP_FLAG)

    @property
    def base_name(self) -> str:
        return f"K{self.zone}+{self.algorithm:03d}+{self.tag:05d}"

    def published(self, now: float) -> bool:
        """In the DNSKEY set at ``now``: from Publish (or Activate) until Delete."""
        start = self.publish if self.publish is not None else self.activate
        if start is not None and now < start:
            return False
        return self.delete is None or now < self.delete

    def active(self, now: float) -> bool:
        """Signs at ``now``: from Activate until Inactive (and while published)."""
        if not self.published(now):
            return False
        if self.activate is not None and now < self.activate:
            return False
        return self.inactive is None or now < self.inactive

    def ds(self, digest_type: int = 2) -> bytes:
        """The DS RDATA (RFC 4509: SHA-256 by default; 4: SHA-384)."""
        data = origin_wire(self.zone) + self.rdata
        digest = hashlib.sha256(data) if digest_type == 2 else hashlib.sha384(data)
        return struct.pack(">HBB", self.tag, self.algorithm, digest_type) + digest.digest()

    def ds_text(self, digest_type: int = 2) -> str:
        rdata = self.ds(digest_type)
        return (
            f"{self.zone} IN DS {self.tag} {self.algorithm} {digest_type} {rdata[4:].hex().upper()}"
        )

    def dnskey_text(self) -> str:
        key = base64.b64encode(self.public).decode()
        return f"{self.zone} IN DNSKEY {self.flags} 3 {self.algorithm} {key}"

    def sign(self, data: bytes) -> bytes:
        """The signature field of an RRSIG over ``data`` (RFC 6605: r | s, 32 bytes each)."""
        if isinstance(self.private, ed25519.Ed25519PrivateKey):
            return self.private.sign(data)
        r, s = decode_dss_signature(self.private.sign(data, _ECDSA))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def generate(zone: str, algorithm: int = ECDSAP256SHA256, ksk: bool = True) -> Key:
    """A new key: a KSK/CSK (flags 257) or a ZSK (256), active from now."""
    origin_wire(zone)  # a bad name is refused before any key is made
    if algorithm == ECDSAP256SHA256:
        private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = ec.generate_private_key(
            ec.SECP256R1()
        )
    elif algorithm == ED25519:
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise DnssecError(f"--algorithm: {algorithm} is not supported (13 or 15)")
    now = int(time.time())
    flags = ZONE_FLAG | (SEP_FLAG if ksk else 0)
    return Key(zone_text(zone), algorithm, flags, private, now, now, now)


def _private_value(key: Key) -> bytes:
    if isinstance(key.private, ed25519.Ed25519PrivateKey):
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            NoEncryption,
            PrivateFormat,
        )

        return key.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return key.private.private_numbers().private_value.to_bytes(32, "big")


def private_key(
    algorithm: int, secret: bytes
) -> ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | None:
    """The private key of a ``PrivateKey:`` field's bytes, None for another algorithm."""
    if algorithm == ECDSAP256SHA256 and len(secret) == 32:
        return ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())
    if algorithm == ED25519 and len(secret) == 32:
        return ed25519.Ed25519PrivateKey.from_private_bytes(secret)
    return None


def key_state(key: Key) -> tuple[str, int, int, bytes]:
    """What a signing process needs to rebuild ``key`` (it is passed through a pipe to
    the signing workers, never written anywhere)."""
    return key.zone, key.algorithm, key.flags, _private_value(key)


def key_from_state(state: tuple[str, int, int, bytes]) -> Key:
    zone, algorithm, flags, secret = state
    private = private_key(algorithm, secret)
    assert private is not None
    return Key(zone, algorithm, flags, private)


def write_key(key: Key, directory: Path) -> Path:
    """Write ``K<zone>+<alg>+<tag>.key`` and ``.private`` (mode 0600, never overwriting);
    returns the ``.key`` path.  The private key goes only to the file."""
    directory.mkdir(parents=True, exist_ok=True)
    base = directory / key.base_name
    kind = "key-signing" if key.is_ksk else "zone-signing"
    times = [("Created", key.created), ("Publish", key.publish), ("Activate", key.activate)]
    times += [("Inactive", key.inactive), ("Delete", key.delete)]
    comments = "".join(
        f"; {name}: {_stamp_text(when)} ({datetime.fromtimestamp(when, UTC):%c})\n"
        for name, when in times
        if when is not None
    )
    public = (
        f"; This is a {kind} key, keyid {key.tag}, for {key.zone}\n{comments}{key.dnskey_text()}\n"
    )
    private = (
        "Private-key-format: v1.3\n"
        f"Algorithm: {key.algorithm} ({ALGORITHMS[key.algorithm]})\n"
        f"PrivateKey: {base64.b64encode(_private_value(key)).decode()}\n"
        + "".join(f"{name}: {_stamp_text(when)}\n" for name, when in times if when is not None)
    )
    for suffix, text, mode in ((".private", private, 0o600), (".key", public, 0o644)):
        path = base.with_name(base.name + suffix)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            raise DnssecError(f"{path} exists already") from None
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
    return base.with_name(base.name + ".key")


def set_times(path: Path, **times: int | None) -> None:
    """Change the timing metadata of a key's ``.private`` file (``Inactive=...``)."""
    lines = [
        line
        for line in path.read_text().splitlines()
        if line.split(":", 1)[0].strip().lower() not in {t.lower() for t in times}
    ]
    lines += [f"{name.capitalize()}: {_stamp_text(v)}" for name, v in times.items() if v]
    path.write_text("\n".join(lines) + "\n")


_KEY_NAME = re.compile(r"^K(.+)\+(\d{3})\+(\d{5})\.private$")


def read_key(private_path: Path) -> Key:
    """A key from its ``.private`` file and the ``.key`` next to it."""
    match = _KEY_NAME.match(private_path.name)
    if match is None:
        raise DnssecError(f"{private_path.name}: not a K<zone>+<alg>+<id>.private file name")
    try:
        text = private_path.read_text()
        public_text = private_path.with_suffix(".key").read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DnssecError(f"{private_path}: {getattr(exc, 'strerror', None) or exc}") from None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    try:
        algorithm = int(fields.get("algorithm", "").split()[0])
        secret = base64.b64decode(fields["privatekey"], validate=True)
    except (KeyError, IndexError, ValueError):
        raise DnssecError(f"{private_path.name}: no Algorithm or PrivateKey field") from None
    private = private_key(algorithm, secret)
    if private is None:
        raise DnssecError(f"{private_path.name}: algorithm {algorithm} is not supported (13, 15)")
    flags = None
    for line in public_text.splitlines():
        words = line.split(";", 1)[0].split()
        if "DNSKEY" in words:
            at = words.index("DNSKEY")
            try:
                flags = int(words[at + 1])
            except (IndexError, ValueError):
                break
    if flags is None:
        raise DnssecError(f"{private_path.with_suffix('.key').name}: no DNSKEY record")

    def when(name: str) -> int | None:
        value = fields.get(name)
        try:
            return _stamp(value) if value else None
        except ValueError:
            raise DnssecError(f"{private_path.name}: bad {name} time {value!r}") from None

    key = Key(
        zone_text(match.group(1)),
        algorithm,
        flags,
        private,
        when("created") or 0,
        when("publish"),
        when("activate"),
        when("inactive"),
        when("delete"),
        private_path,
    )
    if f"{key.tag:05d}" != match.group(3):
        raise DnssecError(f"{private_path.name}: the key's tag is {key.tag}, not the file's")
    return key


def _key_files(directory: Path) -> tuple[tuple[str, int], ...]:
    return tuple(
        sorted((p.name, p.stat().st_mtime_ns) for p in directory.glob("K*") if p.is_file())
    )


def read_keys(directory: Path, zone: str | None = None) -> list[Key]:
    """Every key in ``directory`` (of ``zone`` when given), in file-name order."""
    if not directory.is_dir():
        raise DnssecError(f"{directory} is not a directory")
    keys = [read_key(p) for p in sorted(directory.glob("K*.private"))]
    if zone is not None:
        keys = [k for k in keys if k.zone == zone_text(zone)]
    return keys


@dataclass
class KeySet:
    """The keys of one zone at a moment: what is published, what signs what."""

    zone: str
    keys: list[Key]
    directory: Path | None = None
    #: The key files as last read (names and modification times): a change is re-read.
    files: tuple[tuple[str, int], ...] = ()
    #: Why the last re-read of the directory was refused (the old keys stay in use).
    problem: str = ""

    @classmethod
    def load(cls, directory: Path) -> KeySet:
        """The keys of the one zone in ``directory`` (the zone the gateway signs)."""
        files = _key_files(directory)
        keys = read_keys(directory)
        zones = sorted({k.zone for k in keys})
        if not zones:
            raise DnssecError(f"no K*.private key files in {directory}")
        if len(zones) > 1:
            raise DnssecError(f"keys of several zones in {directory}: {zones}")
        keyset = cls(zones[0], keys, directory, files)
        keyset.signers(time.time())  # fails now, not at the first signing
        return keyset

    def reread(self) -> bool:
        """Read the directory again if a key file was added, changed or removed (a
        rollover step: ``enumer dnssec keygen``, ``dnssec-settime``); whether the
        keys changed.  Keys that cannot be used are refused whole (:attr:`problem`)."""
        if self.directory is None:
            return False
        try:
            files = _key_files(self.directory)
        except OSError:
            return False
        if files == self.files:
            return False
        self.files = files
        try:
            fresh = KeySet.load(self.directory)
            if fresh.zone != self.zone:
                raise DnssecError(f"the keys now sign {fresh.zone}, not {self.zone}")
        except DnssecError as exc:
            self.problem = str(exc)
            return False
        self.keys = fresh.keys
        self.problem = ""
        return True

    def state(self, now: float) -> tuple[tuple[int, ...], ...]:
        """Which keys are published and which sign at ``now`` (a change means re-sign)."""
        ksks, zsks = self.signers(now)
        published = tuple(sorted(k.tag for k in self.published(now)))
        return (published, tuple(k.tag for k in ksks), tuple(k.tag for k in zsks))

    def published(self, now: float) -> list[Key]:
        return [k for k in self.keys if k.published(now)]

    def signers(self, now: float) -> tuple[list[Key], list[Key]]:
        """(keys signing the DNSKEY set, keys signing the rest) at ``now``.

        KSKs sign the DNSKEY set and, when no ZSK is active, everything (a CSK).
        """
        active = [k for k in self.keys if k.active(now)]
        ksks = [k for k in active if k.is_ksk]
        zsks = [k for k in active if not k.is_ksk]
        if not ksks:
            ksks = zsks
        if not zsks:
            zsks = ksks
        if not ksks:
            raise DnssecError(f"no active key for {self.zone} (see Activate/Inactive times)")
        return ksks, zsks


# -- signing ------------------------------------------------------------------------


def _rrsig_fixed(
    rtype: int, key: Key, labels: int, ttl: int, inception: int, expiration: int, signer: bytes
) -> bytes:
    return (
        struct.pack(">HBBIIIH", rtype, key.algorithm, labels, ttl, expiration, inception, key.tag)
        + signer
    )


def rrsig_rdata(
    key: Key,
    owner: bytes,
    rtype: int,
    ttl: int,
    rdatas: Iterable[bytes],
    inception: int,
    expiration: int,
) -> bytes:
    """RRSIG RDATA over the RRset (``owner`` in lower-case wire form, class IN)."""
    fixed = _rrsig_fixed(rtype, key, _labels(owner), ttl, inception, expiration, key.signer)
    head = owner + struct.pack(">HHI", rtype, C_IN, ttl)
    data = fixed + b"".join(head + len(r).to_bytes(2, "big") + r for r in sorted(set(rdatas)))
    return fixed + key.sign(data)


def rr(owner: bytes, rtype: int, ttl: int, rdata: bytes) -> bytes:
    """A resource record in wire form (``owner`` as given: full name or pointer)."""
    return owner + struct.pack(">HHIH", rtype, C_IN, ttl, len(rdata)) + rdata


def type_bitmap(types: Iterable[int]) -> bytes:
    """The NSEC type bit maps field (RFC 4034 4.1.2)."""
    windows: dict[int, bytearray] = {}
    for t in sorted(set(types)):
        window = windows.setdefault(t >> 8, bytearray(32))
        window[(t & 0xFF) >> 3] |= 0x80 >> (t & 7)
    out = bytearray()
    for number, bits in sorted(windows.items()):
        used = bytes(bits).rstrip(b"\x00")
        out += bytes([number, len(used)]) + used
    return bytes(out)


NUMBER_TYPES = type_bitmap((T_NAPTR, T_RRSIG, T_NSEC))


@dataclass
class Window:
    """When signatures made now start and end, and when they are renewed."""

    inception: int
    expiration: int

    @classmethod
    def starting(cls, now: float, validity: int = DEFAULT_VALIDITY) -> Window:
        return cls(int(now) - INCEPTION_SKEW, int(now) + validity)


def sign_rrset(
    keys: list[Key],
    owner: bytes,
    rtype: int,
    ttl: int,
    rdatas: list[bytes],
    window: Window,
    ptr: bytes | None = None,
) -> bytes:
    """The RRSIG RRs of one RRset, one per key, owned by ``ptr`` (default: ``owner``)."""
    return b"".join(
        rr(
            ptr or owner,
            T_RRSIG,
            ttl,
            rrsig_rdata(k, owner, rtype, ttl, rdatas, window.inception, window.expiration),
        )
        for k in keys
    )


def naptr_rrset(rrs: bytes) -> tuple[int, list[bytes]]:
    """(TTL, distinct RDATAs) of pointer-owned NAPTR answer bytes (``table.rr_bytes``).

    The RRset's TTL is the smallest of its RRs (RFC 2181 5.2); the served
    answer keeps its RRs as they are, so a validator sees the original TTLs.
    """
    rdatas = []
    ttl = 0xFFFFFFFF
    pos = 0
    while pos < len(rrs):
        rdlen = (rrs[pos + 10] << 8) | rrs[pos + 11]
        ttl = min(ttl, struct.unpack_from(">I", rrs, pos + 6)[0])
        rdatas.append(rrs[pos + 12 : pos + 12 + rdlen])
        pos += 12 + rdlen
    return ttl, rdatas


def uniform_ttl(rrs: bytes, ttl: int) -> bytes:
    """Pointer-owned RRs with every TTL set to ``ttl`` (an RRset has one TTL)."""
    out = bytearray(rrs)
    pos = 0
    while pos < len(out):
        out[pos + 6 : pos + 10] = ttl.to_bytes(4, "big")
        pos += 12 + ((out[pos + 10] << 8) | out[pos + 11])
    return bytes(out)


@dataclass
class Signed:
    """The DNSSEC bytes of one served name: its signed answer and its NSEC."""

    answer: bytes  # NAPTR RRs + RRSIG(s), all owned by the pointer c00c
    nsec: bytes  # NSEC + RRSIG(s), owned by the full name


class NumberSigner:
    """Signs numbers one after another with the same keys, zone and window: what
    :func:`sign_rrset` and :func:`nsec_rrs` do, with what every number shares
    computed once.

    A build signs a million numbers, two signatures each; the signing itself
    (OpenSSL's, some 30 us) is most of the cost, and this keeps the rest of a
    number's share small (the owner names are given, each one made once per run:
    a number's next name is the following number's owner).
    """

    def __init__(self, keys: list[Key], origin: bytes, window: Window, nsec_ttl: int) -> None:
        self.keys = keys
        self.window = window
        self.nsec_ttl = nsec_ttl
        self.origin_labels = _labels(origin)
        self.nsec_head = struct.pack(">HHI", T_NSEC, C_IN, nsec_ttl)

    def _rrsigs(self, owner: bytes, rtype: int, ttl: int, labels: int, body: bytes) -> list[bytes]:
        """The RRSIG RDATAs over the canonical RRset ``body`` (its RRs, sorted)."""
        win = self.window
        out = []
        for key in self.keys:
            fixed = _rrsig_fixed(rtype, key, labels, ttl, win.inception, win.expiration, key.signer)
            out.append(fixed + key.sign(fixed + body))
        return out

    def sign(self, digits: str, owner: bytes, rrs: bytes, next_owner: bytes) -> Signed:
        """The signed answer and NSEC of ``digits`` (owner in wire form) whose NAPTR RRs
        are ``rrs`` (pointer-owned) and whose next name is ``next_owner``."""
        ttl, rdatas = naptr_rrset(rrs)
        if len(rdatas) > 1:
            rrs = uniform_ttl(rrs, ttl)
            rdatas = sorted(set(rdatas))
        labels = len(digits) + self.origin_labels
        head = owner + struct.pack(">HHI", T_NAPTR, C_IN, ttl)
        body = b"".join(head + len(r).to_bytes(2, "big") + r for r in rdatas)
        answer = [rrs]
        for rdata in self._rrsigs(owner, T_NAPTR, ttl, labels, body):
            answer.append(rr(b"\xc0\x0c", T_RRSIG, ttl, rdata))
        nsec_rdata = next_owner + NUMBER_TYPES
        nsec_rr = owner + self.nsec_head + len(nsec_rdata).to_bytes(2, "big") + nsec_rdata
        nsec = [nsec_rr]
        for rdata in self._rrsigs(owner, T_NSEC, self.nsec_ttl, labels, nsec_rr):
            nsec.append(rr(owner, T_RRSIG, self.nsec_ttl, rdata))
        return Signed(b"".join(answer), b"".join(nsec))


def nsec_rrs(
    keys: list[Key],
    origin: bytes,
    digits: str,
    next_digits: str,
    bitmap: bytes,
    window: Window,
    ttl: int,
) -> bytes:
    """The NSEC of a name (and its RRSIGs), owner written out in full."""
    owner = digits_owner(digits, origin)
    rdata = digits_owner(next_digits, origin) + bitmap
    return rr(owner, T_NSEC, ttl, rdata) + sign_rrset(keys, owner, T_NSEC, ttl, [rdata], window)


def iter_ranges(count: int, parts: int) -> Iterator[tuple[int, int]]:
    """``[lo, hi)`` slices cutting ``count`` items into about ``parts`` pieces."""
    step = max(1, -(-count // max(parts, 1)))
    for lo in range(0, count, step):
        yield lo, min(count, lo + step)
