"""Zone content of a served ENUM zone (SPEC 12): what AXFR/IXFR and ``enumer zone export`` carry.

The zone is built from the gateway's answer table, so every NAPTR is the one
the gateway answers, byte for byte, TTL included:

* each served number under its RFC 6116 dotted name (``5.3.9.9.5.3.9.0.0.8.1``
  below the origin), and under the compact one-label name (``53995390081``)
  only when the operator asks for it (``--compact-names``);
* SOA and NS at the apex (:class:`Apex`);
* toll-free entries whose regex is fixed digits followed by any digits
  (``^1800\\d*$``) as DNS wildcards, plus the records that keep wildcard
  semantics equal to the gateway's "first matching entry" where served numbers
  create nodes below a wildcard (RFC 4592: a wildcard does not match below an
  existing node); every other entry is reported as not expressible.

Origins: each served zone label (``enum.``) and, for every gateway suffix rule,
the same zone below that suffix (``enum.enumer.org.``) or the replacing name
(``e164.org.`` for ``.e164.org|.enum``).

Nothing here touches sockets or files: callers stream the records out.
"""

from __future__ import annotations

import base64
import re
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from enumer.dns.signed import SignedApex, SignedSnapshot
from enumer.dns.table import answer_bytes
from enumer.dns.wire import SuffixRule, ZoneSpec
from enumer.naptr import DEFAULT_TTL
from enumer.trust import TollFreeEntry

T_SOA = 6
T_NS = 2
T_NAPTR = 35
C_IN = 1

#: Defaults of the apex: the timers and negative TTL of the gateway's own SOA.
DEFAULT_REFRESH = 3600
DEFAULT_RETRY = 600
DEFAULT_EXPIRE = 1209600
DEFAULT_MINIMUM = 300
DEFAULT_SOA_TTL = 300
DEFAULT_NS_TTL = 86400
#: A name server that every checker and secondary accepts when the operator names none.
DEFAULT_NS = "localhost."
#: MNAME and RNAME of the gateway's own SOA answers (``ns.<zone>``, ``hostmaster.<zone>``):
#: with the defaults, a secondary's SOA is byte for byte the gateway's.
DEFAULT_MNAME = "ns"
DEFAULT_RNAME = "hostmaster"


class ZoneError(ValueError):
    """A zone setting that cannot be used (a bad name or number), one line."""


def name_to_wire(name: str) -> bytes:
    """An absolute domain name (``"ns.example."``) in uncompressed wire form, lower case."""
    text = name.strip()
    if not text.endswith("."):
        raise ZoneError(f"name must be absolute (end in '.'): {name!r}")
    out = bytearray()
    for label in text[:-1].split(".") if text != "." else []:
        raw = label.lower().encode("ascii", "replace")
        if not raw or len(raw) > 63 or not re.fullmatch(rb"[a-z0-9_*-]+", raw):
            raise ZoneError(f"bad label {label!r} in name {name!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise ZoneError(f"name too long: {name!r}")
    return bytes(out)


def _absolute(name: str, origin: str) -> str:
    """``name`` made absolute: relative names are below ``origin``; ``@`` is the origin."""
    name = name.strip()
    if name == "@":
        return origin
    return name if name.endswith(".") else f"{name}.{origin}"


@dataclass(frozen=True)
class Apex:
    """SOA and NS of every served zone (``--ns``, ``--soa-*``).

    Names may be relative to the zone (``hostmaster``) or absolute
    (``ns1.example.net.``).  The SOA defaults are the gateway's own SOA
    answers (so a secondary's negative answers equal the gateway's), and the
    NS default is a name every checker and secondary accepts; a real
    deployment names its secondaries with ``--ns``.
    """

    ns: tuple[str, ...] = (DEFAULT_NS,)
    mname: str = DEFAULT_MNAME
    rname: str = DEFAULT_RNAME
    refresh: int = DEFAULT_REFRESH
    retry: int = DEFAULT_RETRY
    expire: int = DEFAULT_EXPIRE
    minimum: int = DEFAULT_MINIMUM
    soa_ttl: int = DEFAULT_SOA_TTL
    ns_ttl: int = DEFAULT_NS_TTL

    def __post_init__(self) -> None:
        if not self.ns:
            raise ZoneError("--ns: at least one name server is needed")
        for value, what in (
            (self.refresh, "--soa-refresh"),
            (self.retry, "--soa-retry"),
            (self.expire, "--soa-expire"),
            (self.minimum, "--soa-minimum"),
        ):
            if not 0 <= value <= 0x7FFFFFFF:
                raise ZoneError(f"{what}: must be 0 .. 2147483647 ({value})")
        for name in (*self.ns, self.mname, self.rname):
            if name:
                name_to_wire(_absolute(name, "example."))

    def soa_rdata(self, origin: str, serial: int) -> bytes:
        mname = _absolute(self.mname, origin)
        rname = _absolute(self.rname, origin)
        return (
            name_to_wire(mname)
            + name_to_wire(rname)
            + struct.pack(
                ">IIIII", serial & 0xFFFFFFFF, self.refresh, self.retry, self.expire, self.minimum
            )
        )

    def soa_text(self, origin: str, serial: int) -> str:
        mname = _absolute(self.mname, origin)
        rname = _absolute(self.rname, origin)
        return (
            f"@ {self.soa_ttl} IN SOA {mname} {rname} "
            f"{serial & 0xFFFFFFFF} {self.refresh} {self.retry} {self.expire} {self.minimum}"
        )

    def ns_names(self, origin: str) -> list[str]:
        return [_absolute(n, origin) for n in self.ns]


@dataclass(frozen=True)
class Origin:
    """One zone a gateway serves: its apex name and the zone mode it mirrors."""

    name: str  # absolute, lower case: "enum." or "enum.enumer.org."
    spec: ZoneSpec

    @property
    def wire(self) -> bytes:
        return name_to_wire(self.name)


def origins(zones: Iterable[ZoneSpec], suffixes: Iterable[SuffixRule] = ()) -> list[Origin]:
    """Every zone apex the gateway answers for: each zone label, and each below/for a suffix.

    A stripping suffix (``.enumer.org``) adds ``<label>.enumer.org.``; a
    replacing one (``.e164.org|.enum``) adds ``e164.org.`` for the zone it
    names.  A replacement that is not a served zone label adds nothing.
    """
    zones = list(zones)
    rules = list(suffixes)
    out: list[Origin] = []
    for spec in zones:
        out.append(Origin(f"{spec.label.lower()}.", spec))
        for rule in rules:
            suffix = rule.suffix.strip(".").lower()
            replacement = rule.replacement.strip(".").lower()
            if not replacement:
                out.append(Origin(f"{spec.label.lower()}.{suffix}.", spec))
            elif replacement == spec.label.lower():
                out.append(Origin(f"{suffix}.", spec))
    seen: set[str] = set()
    unique = []
    for origin in out:
        if origin.name not in seen:
            seen.add(origin.name)
            unique.append(origin)
    return unique


def select_origins(all_origins: list[Origin], zone: str | None) -> list[Origin]:
    """The origins of ``--zone LABEL`` (with its suffix forms); all when None."""
    if zone is None:
        return all_origins
    label = zone.strip(".").lower()
    picked = [o for o in all_origins if o.spec.label.lower() == label]
    if not picked:
        served = ", ".join(sorted({o.spec.label for o in all_origins}))
        raise ZoneError(f"--zone: {zone!r} is not a served zone (served: {served})")
    return picked


# -- owners -------------------------------------------------------------------------


def dotted_owner(key: bytes) -> bytes:
    """Relative wire labels of a number's RFC 6116 name: key ``b"5399"`` -> ``\\x015\\x013...``."""
    return b"".join(b"\x01" + key[i : i + 1] for i in range(len(key)))


def compact_owner(key: bytes) -> bytes:
    """Relative wire labels of the one-label emcdns form (``53995390081``)."""
    return bytes([len(key)]) + key


# -- toll-free entries as wildcards -------------------------------------------------

_TOLLFREE_FORM = re.compile(
    r"\^?\(?([0-9]*)\)?(?:\(?(\\d\*|\[0-9\]\*|\.\*|\\d\+|\[0-9\]\+|\.\+)\)?)?\$?"
)


@dataclass(frozen=True)
class Expressible:
    """A toll-free entry a zone can hold: ``prefix`` then any (``+``: at least one) digits."""

    prefix: str
    tail: str  # "" exact number, "*" any digits (also none), "+" at least one digit
    rrs: bytes
    index: int  # position in the toll-free list: the first match wins


def classify(entry: TollFreeEntry) -> tuple[str, str] | None:
    """(prefix, tail) when the entry's regex is fixed digits then any digits, else None."""
    m = _TOLLFREE_FORM.fullmatch(entry.pattern)
    if m is None:
        return None
    prefix, tail = m.group(1), m.group(2)
    if tail is None:
        return (prefix, "") if prefix else None
    return prefix, "*" if tail.endswith("*") else "+"


@dataclass
class TollFreeZone:
    """The records that carry the toll-free entries, and what could not be carried."""

    records: list[tuple[bytes, bytes]] = field(default_factory=list)  # (relative owner, rrs)
    left_out: list[str] = field(default_factory=list)


def tollfree_records(
    answers: dict[bytes, bytes],
    entries: Iterable[TollFreeEntry],
    expand_regexp: bool = False,
) -> TollFreeZone:
    """Wildcards and node records answering as the gateway's toll-free lookup does.

    The gateway answers a number with no served record from the first entry
    that matches it.  In the zone, ``*.N`` answers every name below node N
    whose next label is not itself a node, so it gets the first entry whose
    prefix N starts with; every node that exists below a prefix (a served
    number, an empty non-terminal on the way to one, the base of another
    wildcard) gets that wildcard too, and a non-served node gets the entry's
    records for its own number.
    """
    out = TollFreeZone()
    memo: dict[object, bytes] = {}
    usable: list[Expressible] = []
    for index, entry in enumerate(entries):
        where = f"={entry.pattern}" + (f" ({entry.source})" if entry.source else "")
        form = classify(entry)
        if form is None:
            out.left_out.append(f"{where}: not fixed digits followed by any digits")
            continue
        if expand_regexp and form[1]:
            out.left_out.append(f"{where}: --expand-regexp bakes each number into the answer")
            continue
        rrs = answer_bytes(
            (d.naptr(DEFAULT_TTL) for d in entry.directives),
            form[0],
            expand_regexp,
            memo,  # type: ignore[arg-type]
        )
        if not rrs:
            out.left_out.append(f"{where}: no directive can be served")
            continue
        usable.append(Expressible(form[0], form[1], rrs, index))
    if not usable:
        return out

    def number_match(digits: str) -> Expressible | None:
        for e in usable:
            if e.tail == "" and digits == e.prefix:
                return e
            if e.tail == "*" and digits.startswith(e.prefix):
                return e
            if e.tail == "+" and digits.startswith(e.prefix) and len(digits) > len(e.prefix):
                return e
        return None

    def wildcard_match(node: str) -> Expressible | None:
        # Names below ``node`` are longer numbers: the first entry with a tail
        # whose prefix is a prefix of the node matches them all.  (An entry whose
        # prefix is longer has a node of its own, so it does not reach here.)
        for e in usable:
            if e.tail and node.startswith(e.prefix):
                return e
        return None

    # Nodes that exist in the zone and lie at or below some prefix.
    nodes: set[str] = set()
    reversed_prefixes = tuple(e.prefix[::-1].encode() for e in usable)
    for key in answers:
        if key.endswith(reversed_prefixes):
            digits = key[::-1].decode()
            nodes.update(digits[:i] for i in range(len(digits) + 1))
    for e in usable:
        nodes.update(e.prefix[:i] for i in range(len(e.prefix) + 1))
    for node in sorted(nodes, key=lambda d: (len(d), d)):
        key = node[::-1].encode()
        wild = wildcard_match(node)
        if wild is not None:
            out.records.append((b"\x01*" + dotted_owner(key), wild.rrs))
        if node and key not in answers:
            own = number_match(node)
            if own is not None:
                out.records.append((dotted_owner(key), own.rrs))
    return out


# -- records of a zone --------------------------------------------------------------


def rr_parts(rrs: bytes) -> Iterator[bytes]:
    """The RRs of pointer-owned answer bytes, each without its 2-byte owner."""
    pos = 0
    n = len(rrs)
    while pos < n:
        end = pos + 12 + ((rrs[pos + 10] << 8) | rrs[pos + 11])
        yield rrs[pos + 2 : end]
        pos = end


def distinct_rrs(rrs: bytes) -> list[bytes]:
    """The RRs of an answer without repeats: a zone holds a set (RFC 2181 5)."""
    seen: set[bytes] = set()
    out = []
    for rr in rr_parts(rrs):
        rdata_key = rr[:2] + rr[8:]  # type and rdata; TTL does not make a different RR
        if rdata_key not in seen:
            seen.add(rdata_key)
            out.append(rr)
    return out


@dataclass(frozen=True)
class ZoneView:
    """One version of a table's zone content: the answers and toll-free records at a serial."""

    serial: int
    answers: dict[bytes, bytes]
    tollfree: tuple[tuple[bytes, bytes], ...] = ()
    left_out: tuple[str, ...] = ()
    #: The signed side (``--dnssec-keys``) of this version, for the key's origin.
    signed: SignedSnapshot | None = None

    def signed_for(self, origin: Origin) -> SignedSnapshot | None:
        """The signed side when ``origin`` is the zone the keys sign, else None."""
        signed = self.signed
        return signed if signed is not None and signed.origin == origin.wire else None

    def signed_rrs(
        self, origin: Origin, apex: Apex, apex_rrs: list[bytes] | None = None
    ) -> Iterator[bytes]:
        """Every RR of the signed zone (full owner names), the SOA first.

        The signed zone holds what the NSEC chain spans: the apex and each
        served number under its dotted name.  Compact names and toll-free
        wildcards are not in it (docs/dnssec.md).  ``apex_rrs``: the apex as
        signed before for this version (:func:`signed_apex_rrs`).
        """
        signed = self.signed_for(origin)
        assert signed is not None
        yield from apex_rrs or signed_apex_rrs(signed.apex, origin, apex, self.serial)
        for key in signed.numbers():
            yield from signed.number_rrs(key)

    def numbers(self, spec: ZoneSpec, compact: bool) -> Iterator[tuple[bytes, bytes]]:
        """(relative owner, rrs) of every served number of the zone ``spec``."""
        cap = spec.max_digits
        for key, rrs in self.answers.items():
            if len(key) > cap:
                continue
            yield dotted_owner(key), rrs
            if compact and len(key) > 1:
                yield compact_owner(key), rrs

    def records(self, spec: ZoneSpec, compact: bool) -> Iterator[tuple[bytes, bytes]]:
        """Everything below the apex: numbers, then the toll-free records."""
        yield from self.numbers(spec, compact)
        yield from self.tollfree


def signed_apex_rrs(signed: SignedApex, origin: Origin, apex: Apex, serial: int) -> list[bytes]:
    """The signed apex records of ``origin`` at ``serial`` (SOA first)."""
    ns = [name_to_wire(n) for n in apex.ns_names(origin.name)]
    soa = apex.soa_rdata(origin.name, serial)
    return signed.rrs(soa, apex.soa_ttl, ns, apex.ns_ttl)


def number_records(key: bytes, rrs: bytes | None, compact: bool) -> list[tuple[bytes, bytes]]:
    """(relative owner, rrs) of one number, as :meth:`ZoneView.numbers` gives them."""
    if not rrs:
        return []
    out = [(dotted_owner(key), rrs)]
    if compact and len(key) > 1:
        out.append((compact_owner(key), rrs))
    return out


def next_serial(previous: int | None, height: int) -> int:
    """The serial of a new version of a zone.

    The chain height, so a serial tells which block the zone reflects; when
    the height did not grow past the last serial (a re-organisation undid
    blocks, the toll-free files or the configuration changed at the same
    height), one more than the last, so a serial never goes back (RFC 1982
    arithmetic is never needed: heights stay far below 2**31).
    """
    if previous is None:
        return max(height, 1)
    return max(height, previous + 1)


# -- master file text ---------------------------------------------------------------


def _char_string(raw: bytes) -> str:
    """A <character-string> in master-file form (RFC 1035 5.1): quoted, ``"`` and ``\\``
    escaped, bytes outside printable ASCII as ``\\DDD``."""
    if raw.isascii():
        text = raw.decode("ascii")
        if text.isprintable():
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = ['"']
    for b in raw:
        if b in (0x22, 0x5C):
            out.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    out.append('"')
    return "".join(out)


def _wire_name_text(wire: bytes, pos: int) -> tuple[str, int]:
    labels = []
    while True:
        ln = wire[pos]
        pos += 1
        if ln == 0:
            break
        labels.append(wire[pos : pos + ln].decode("ascii", "backslashreplace"))
        pos += ln
    return (".".join(labels) + ".") if labels else ".", pos


def naptr_text(rdata: bytes) -> str:
    """NAPTR RDATA in master-file form (RFC 3403 4.1): ``100 10 "u" "E2U+sip" "!...!" .``."""
    order, preference = struct.unpack_from(">HH", rdata)
    pos = 4
    texts = []
    for _ in range(3):
        ln = rdata[pos]
        texts.append(_char_string(rdata[pos + 1 : pos + 1 + ln]))
        pos += 1 + ln
    replacement, _ = _wire_name_text(rdata, pos)
    return f"{order} {preference} {' '.join(texts)} {replacement}"


def owner_text(owner: bytes) -> str:
    """Relative wire labels as master-file text (``5.3.9``, ``*.8.8.8.1``)."""
    labels = []
    pos = 0
    while pos < len(owner):
        ln = owner[pos]
        labels.append(owner[pos + 1 : pos + 1 + ln].decode("ascii"))
        pos += 1 + ln
    return ".".join(labels)


def _rr_bodies(rrs: bytes, memo: dict[bytes, str]) -> list[str]:
    """``TTL IN NAPTR ...`` of each distinct RR (memoised: numbers share directives)."""
    out = []
    for rr in distinct_rrs(rrs):
        body = memo.get(rr)
        if body is None:
            ttl = struct.unpack_from(">I", rr, 4)[0]
            body = f"{ttl} IN NAPTR {naptr_text(rr[10:])}\n"
            if len(memo) < 100_000:
                memo[rr] = body
        out.append(body)
    return out


def rr_lines(owner: bytes, rrs: bytes, memo: dict[bytes, str] | None = None) -> Iterator[str]:
    """Master-file lines of one owner's NAPTRs."""
    name = owner_text(owner)
    for body in _rr_bodies(rrs, {} if memo is None else memo):
        yield f"{name} {body}"


def master_file(
    view: ZoneView,
    origin: Origin,
    apex: Apex,
    compact: bool = False,
    signed_apex: list[bytes] | None = None,
) -> Iterator[tuple[str, int]]:
    """The zone as master-file text, in pieces: (text, numbers written so far).

    Streams: one number's lines at a time, so the zone is never held as text.
    A signed zone (``view.signed`` for this origin) is written from its RRs.
    """
    if view.signed_for(origin) is not None:
        yield from _signed_master_file(view, origin, apex, signed_apex)
        return
    yield (
        (
            f"; ENUMER zone {origin.name} serial {view.serial}\n"
            f"$ORIGIN {origin.name}\n" + apex.soa_text(origin.name, view.serial) + "\n"
        ),
        0,
    )
    yield "".join(f"@ {apex.ns_ttl} IN NS {ns}\n" for ns in apex.ns_names(origin.name)), 0
    for reason in view.left_out:
        yield f"; toll-free entry left out: {reason}\n", 0
    done = 0
    memo: dict[bytes, str] = {}
    cap = origin.spec.max_digits
    for key, rrs in view.answers.items():
        if len(key) > cap:
            continue
        digits = key.decode("ascii")
        bodies = _rr_bodies(rrs, memo)
        names = [".".join(digits)]
        if compact and len(digits) > 1:
            names.append(digits)
        done += 1
        yield "".join(f"{name} {body}" for name in names for body in bodies), done
    for owner, rrs in view.tollfree:
        yield "".join(rr_lines(owner, rrs, memo)), done


_TYPE_NAMES = {2: "NS", 6: "SOA", 35: "NAPTR", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY"}


def _time_text(value: int) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(value))


def _rdata_text(rtype: int, wire: bytes, start: int, end: int) -> str:
    """The master-file text of the RDATA types a signed zone of ours holds (written here:
    dnspython takes several times longer per record, minutes at a million numbers)."""
    if rtype == 35:
        return naptr_text(wire[start:end])
    if rtype == 46:
        covered, alg, labels, ttl, expire, incept, tag = struct.unpack_from(">HBBIIIH", wire, start)
        signer, pos = _wire_name_text(wire, start + 18)
        sig = base64.b64encode(wire[pos:end]).decode()
        name = _TYPE_NAMES.get(covered, f"TYPE{covered}")
        times = f"{_time_text(expire)} {_time_text(incept)}"
        return f"{name} {alg} {labels} {ttl} {times} {tag} {signer} {sig}"
    if rtype == 47:
        nxt, pos = _wire_name_text(wire, start)
        types = []
        while pos < end:
            window, length = wire[pos], wire[pos + 1]
            for i, byte in enumerate(wire[pos + 2 : pos + 2 + length]):
                types += [window * 256 + i * 8 + b for b in range(8) if byte & (0x80 >> b)]
            pos += 2 + length
        return nxt + " " + " ".join(_TYPE_NAMES.get(t, f"TYPE{t}") for t in types)
    if rtype == 48:
        flags, proto, alg = struct.unpack_from(">HBB", wire, start)
        return f"{flags} {proto} {alg} {base64.b64encode(wire[start + 4 : end]).decode()}"
    if rtype == 2:
        return _wire_name_text(wire, start)[0]
    if rtype == 6:
        mname, pos = _wire_name_text(wire, start)
        rname, pos = _wire_name_text(wire, pos)
        return f"{mname} {rname} " + " ".join(
            str(v) for v in struct.unpack_from(">IIIII", wire, pos)
        )
    raise ZoneError(f"no text form for type {rtype}")


def _signed_master_file(
    view: ZoneView, origin: Origin, apex: Apex, signed_apex: list[bytes] | None
) -> Iterator[tuple[str, int]]:
    """The signed zone as master-file text, one owner's records at a time."""
    yield f"; ENUMER zone {origin.name} serial {view.serial}, signed\n$ORIGIN {origin.name}\n", 0
    for reason in view.left_out:
        yield f"; toll-free entry left out: {reason}\n", 0
    yield "; compact names and toll-free wildcards are not in a signed zone\n", 0
    done = 0
    lines = []
    for wire in view.signed_rrs(origin, apex, signed_apex):
        owner, pos = _wire_name_text(wire, 0)
        rtype, _rclass, ttl, rdlen = struct.unpack_from(">HHIH", wire, pos)
        text = _rdata_text(rtype, wire, pos + 10, pos + 10 + rdlen)
        lines.append(f"{owner} {ttl} IN {_TYPE_NAMES[rtype]} {text}\n")
        if rtype == 47:  # an NSEC ends each owner's records
            done += 1
            yield "".join(lines), done
            lines = []
    yield "".join(lines), done
