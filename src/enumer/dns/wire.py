"""DNS wire format of the ENUMER gateway: one query in, one response out.

This is the per-query hot path.  It works on raw bytes only: no dnspython, no
cryptography, no storage access.  Answers come pre-built from an
:class:`AnswerSource` as NAPTR resource records whose owner is the compression
pointer ``c00c`` (the question name always starts at offset 12), so a positive
answer is "header + question copied from the query + answer bytes (+ OPT)".

Behaviour (SPEC 7, RFC 1035, RFC 2308, RFC 6891):

* responses and packets shorter than a header are dropped (``None``);
* opcode other than QUERY: NOTIMP; malformed question or additional section:
  FORMERR; class other than IN/CH/ANY: NOTIMP; names outside the served
  zones: REFUSED; EDNS version > 0: BADVERS;
* ``<digits>.<zone>`` (labels of ASCII digits, read as one digit string in
  label order) NAPTR/ANY: the answer or NXDOMAIN; other types: NODATA when the
  number is served, else NXDOMAIN; negative answers carry the zone SOA;
* CHAOS ``version.bind``/``id.server``/``status.enumer`` TXT (and
  ``status.enumer`` TXT in class IN): the gateway status text;
* UDP responses larger than the negotiated size lose whole answer RRs from the
  end and get TC; the packet stays well formed (OPT kept).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from enumer.naptr import PLAIN_UDP_SIZE

__all__ = [
    "EDNS_UDP_SIZE",
    "AnswerSource",
    "FastAnswerSource",
    "GatewayView",
    "SuffixRule",
    "ZoneSpec",
    "question_end",
    "rcode_name",
    "respond",
    "response_rcode",
    "rr_count",
    "servfail",
    "slip_response",
    "summarize",
]

# Response codes (RFC 1035, RFC 6891).
NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5
BADVERS = 16

RCODE_NAMES = {
    NOERROR: "NOERROR",
    FORMERR: "FORMERR",
    SERVFAIL: "SERVFAIL",
    NXDOMAIN: "NXDOMAIN",
    NOTIMP: "NOTIMP",
    REFUSED: "REFUSED",
    BADVERS: "BADVERS",
}

# Types and classes we look at.
T_SOA = 6
T_TXT = 16
T_NAPTR = 35
T_OPT = 41
T_IXFR = 251
T_AXFR = 252
T_ANY = 255
C_IN = 1
C_CH = 3
C_ANY = 255

EDNS_UDP_SIZE = 1232  # what we advertise and the most we send over UDP (DNS flag day 2020)
TCP_MAX = 65535
MAX_NAME = 255  # wire length of a name, including length bytes and the root label
MAX_EXTRA_RRS = 8  # records after the question we walk (OPT, TSIG, ...); more: FORMERR

CACHE_MAX = 100_000  # response cache entries per view and transport size
_COUNT_CACHE_MAX = 65_536


class AnswerSource(Protocol):
    """Pre-built answers of one ENUM zone (implemented by ``enumer.dns.table``)."""

    @property
    def generation(self) -> int:
        """Increases whenever any answer may have changed (drops response caches)."""
        ...

    @property
    def serial(self) -> int:
        """SOA serial: the chain height the answers were built at."""
        ...

    def answer(self, key: bytes) -> bytes | None:
        """Answer section for the digit string ``key`` in DNS label order.

        ``key`` is ``b"53995390081"`` for both ``53995390081.enum`` and
        ``5.3.9.9.5.3.9.0.0.8.1.enum``.  Returns complete NAPTR RRs owned by the
        pointer ``b"\\xc0\\x0c"``, concatenated, or None when the number is not
        served (NXDOMAIN).  Never ``b""``.
        """
        ...


@runtime_checkable
class FastAnswerSource(AnswerSource, Protocol):
    """An :class:`AnswerSource` that also offers its answers as a plain dict or a
    mapped flat table (``enumer.dns.flat``), so that the C loop (``_fastloop.c``)
    can answer from it without calling Python."""

    @property
    def fast_answers(self) -> Mapping[bytes, bytes]:
        """The same answers as :meth:`answer`, by key: a hit there is exactly what
        ``answer`` returns; a miss must still go through ``answer``, unless
        :attr:`fast_answers_complete`."""
        ...

    @property
    def fast_answers_complete(self) -> bool:
        """Whether a key missing from :attr:`fast_answers` is not served at all (so
        the C loop may answer NXDOMAIN itself)."""
        ...


@dataclass(frozen=True)
class ZoneSpec:
    """One served ENUM zone: ``$enum`` (verified), ``~enum`` (unsigned), ``N$enum``."""

    label: str
    verified: bool = True
    max_digits: int = 40


@dataclass(frozen=True)
class SuffixRule:
    """A gateway suffix: names ending in ``.<suffix>`` are read as ending in ``.<replacement>``.

    ``replacement == ""`` strips the suffix (``emcdnssuffix=.enumer.org``);
    ``.e164.org|.enum`` gives ``SuffixRule("e164.org", "enum")``.
    """

    suffix: str
    replacement: str = ""


def _to_wire(name: str) -> bytes:
    """``"a.b"`` -> ``b"\\x01a\\x01b"`` (lowercase, no root label); ``""`` -> ``b""``."""
    out = bytearray()
    for label in name.strip(".").lower().split("."):
        if not label:
            continue
        raw = label.encode("ascii")
        if len(raw) > 63:
            raise ValueError(f"label too long in {name!r}")
        out.append(len(raw))
        out += raw
    return bytes(out)


def _wire_labels(wire: bytes) -> list[bytes]:
    labels: list[bytes] = []
    pos = 0
    while pos < len(wire):
        ln = wire[pos]
        labels.append(wire[pos + 1 : pos + 1 + ln])
        pos += ln + 1
    return labels


@dataclass
class GatewayView:
    """Everything ``respond`` needs: served zones, suffix rules and the status text.

    The view also holds the response cache; build a new view (or let the
    sources' ``generation`` change) when the configuration changes.
    """

    zones: dict[str, tuple[ZoneSpec, AnswerSource]]
    suffixes: tuple[SuffixRule, ...] = ()
    status: Callable[[], str] = lambda: "ok"
    negative_ttl: int = 300
    # Derived (lowercase wire forms) and the response cache; not part of the API.
    _zones: dict[bytes, tuple[ZoneSpec, AnswerSource]] = field(init=False, repr=False)
    _suffixes: tuple[tuple[bytes, list[bytes]], ...] = field(init=False, repr=False)
    _sources: tuple[AnswerSource, ...] = field(init=False, repr=False)
    _stamp: object = field(init=False, repr=False, default=None)
    _caches: dict[int | None, dict[bytes, bytes]] = field(init=False, repr=False)
    # Fast path: "\x04enum\x00" (zone label + root, as queries end) -> (source, max digits)
    _fast: dict[bytes, tuple[AnswerSource, int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._zones = {}
        for label, (spec, source) in self.zones.items():
            raw = label.lower().strip(".").encode("ascii")
            if not raw or b"." in raw or len(raw) > 63:
                raise ValueError(f"zone label must be one DNS label: {label!r}")
            self._zones[raw] = (spec, source)
        rules = []
        for rule in self.suffixes:
            sw = _to_wire(rule.suffix)
            if not sw:
                raise ValueError(f"empty suffix in {rule!r}")
            rules.append((sw, _wire_labels(_to_wire(rule.replacement))))
        self._suffixes = tuple(rules)
        self._sources = tuple(source for _spec, source in self.zones.values())
        self._caches = {}
        # A name "<digits>.<zone>." can take the fast path unless a suffix rule
        # could rewrite it: a rule for the zone's end, or for a longer name
        # that ends in the zone (".1.enum" matches some numbers).
        self._fast = {}
        for raw, (spec, source) in self._zones.items():
            tail = bytes([len(raw)]) + raw
            if not any(tail.endswith(sw) or sw.endswith(tail) for sw, _ in self._suffixes):
                # A label holds at most 63 bytes: a longer compact "label" is
                # malformed (FORMERR), which only the general path says.
                self._fast[tail + b"\x00"] = (source, min(spec.max_digits, 63))

    def fast_zones(self) -> list[tuple[bytes, AnswerSource, int]]:
        """The zones whose numbers may take the fast path: (the zone as queries end,
        ``b"\\x04enum\\x00"``; its source; the digit cap, at most 63)."""
        return [(suffix, source, cap) for suffix, (source, cap) in self._fast.items()]

    def stamp(self) -> object:
        """Changes whenever any source's generation or serial changes."""
        sources = self._sources
        if len(sources) == 1:
            s = sources[0]
            return (s.generation, s.serial)
        return tuple((s.generation, s.serial) for s in sources)


# ---------------------------------------------------------------------------
# small helpers on finished RR and response bytes

_count_cache: dict[bytes, int] = {}


def _rr_ends(rrs: bytes, start: int = 0) -> list[int]:
    """End offsets of the RRs in ``rrs`` (owners are 2-byte pointers)."""
    ends: list[int] = []
    pos = start
    n = len(rrs)
    while pos < n:
        # owner 2 + type 2 + class 2 + ttl 4 = 10, then rdlength 2 and rdata
        pos += 12 + ((rrs[pos + 10] << 8) | rrs[pos + 11])
        ends.append(pos)
    return ends


def rr_count(rrs: bytes) -> int:
    """Number of RRs in a pointer-owned answer section (memoised per bytes object)."""
    count = _count_cache.get(rrs)
    if count is None:
        count = len(_rr_ends(rrs))
        if len(_count_cache) >= _COUNT_CACHE_MAX:
            _count_cache.clear()
        _count_cache[rrs] = count
    return count


def response_rcode(response: bytes) -> int:
    """The full (extended) rcode of a response built by ``respond``.

    Our OPT, when present, is always the last 11 bytes of the packet.
    """
    rcode = response[3] & 0x0F
    if response[11] and response[-11:-8] == b"\x00\x00\x29":
        rcode |= response[-6] << 4
    return rcode


def rcode_name(rcode: int) -> str:
    return RCODE_NAMES.get(rcode, f"RCODE{rcode}")


def question_end(packet: bytes) -> int:
    """Offset after the (uncompressed) question at 12, or -1 if there is none."""
    if len(packet) < 12 or packet[4:6] != b"\x00\x01":
        return -1
    pos = 12
    n = len(packet)
    while pos < n:
        ln = packet[pos]
        if ln == 0:
            return pos + 5 if pos + 5 <= n else -1
        if ln > 63:
            return -1
        pos += ln + 1
    return -1


def summarize(packet: bytes) -> tuple[str, int]:
    """(query name as text, qtype) of a query or response, for logging."""
    end = question_end(packet)
    if end < 0:
        return ("-", 0)
    labels = _wire_labels(packet[12 : end - 5])
    name = ".".join(lb.decode("ascii", "backslashreplace") for lb in labels) + "."
    return (name, (packet[end - 4] << 8) | packet[end - 3])


def slip_response(response: bytes) -> bytes:
    """The RRL "slip": same header and question, no records, TC set."""
    end = question_end(response)
    if end < 0:
        return response[:2] + bytes([response[2] | 0x02, response[3]]) + bytes(8)
    return (
        response[:2]
        + bytes([response[2] | 0x02, response[3]])
        + b"\x00\x01\x00\x00\x00\x00\x00\x00"
        + response[12:end]
    )


def servfail(query: bytes) -> bytes | None:
    """SERVFAIL for a query we failed on (a bug); None if it has no usable header."""
    if len(query) < 12 or query[2] & 0x80:
        return None
    end = question_end(query)
    flags = bytes([0x80 | (query[2] & 0x79), (query[3] & 0x10) | SERVFAIL])
    if end < 0:
        return query[:2] + flags + bytes(8)
    return query[:2] + flags + b"\x00\x01\x00\x00\x00\x00\x00\x00" + query[12:end]


# ---------------------------------------------------------------------------
# the responder

_PACK_HDR = struct.Struct(">2sBBHHHH").pack
_PACK_OPT = struct.Struct(">3sHBBHH").pack

# CHAOS names (lowercase wire form, no root) answered with the status text.
_STATUS_NAMES = frozenset((b"\x07version\x04bind", b"\x02id\x06server", b"\x06status\x06enumer"))
_STATUS_IN = b"\x06status\x06enumer"

_SOA_FIXED = struct.Struct(">HHHIH").pack  # owner ptr, type, class, ttl, rdlength


_soa_cache: dict[tuple[int, int, int], bytes] = {}


def _soa(ptr: int, serial: int, negative_ttl: int) -> bytes:
    """SOA RR: owner, ``ns.`` and ``hostmaster.`` all point at the zone in the question."""
    key = (ptr, serial, negative_ttl)
    rr = _soa_cache.get(key)
    if rr is None:
        if len(_soa_cache) > 4096:
            _soa_cache.clear()
        rr = _soa_cache[key] = _make_soa(ptr, serial, negative_ttl)
    return rr


#: Offsets of the three compression pointers to the zone in an SOA RR of
#: :func:`_make_soa`: the owner, and the tails of MNAME ``ns`` and RNAME ``hostmaster``.
SOA_POINTER_OFFSETS = (0, 15, 28)


def soa_template(serial: int, negative_ttl: int) -> bytes:
    """The SOA RR of a zone with its pointers at offset 0, for code that sets them
    itself (the C worker loop, at :data:`SOA_POINTER_OFFSETS`)."""
    return _make_soa(0xC000, serial, negative_ttl)


def _make_soa(ptr: int, serial: int, negative_ttl: int) -> bytes:
    p = ptr.to_bytes(2, "big")
    rdata = (
        b"\x02ns"
        + p
        + b"\x0ahostmaster"
        + p
        + struct.pack(">IIIII", serial & 0xFFFFFFFF, 3600, 600, 1209600, negative_ttl & 0xFFFFFFFF)
    )
    return _SOA_FIXED(ptr, T_SOA, C_IN, negative_ttl & 0xFFFFFFFF, len(rdata)) + rdata


def _txt_rr(cls: int, text: str) -> bytes:
    raw = text.encode("utf-8", "replace")
    chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
    rdata = b"".join(bytes([len(c)]) + c for c in chunks)[:65535]
    return struct.pack(">HHHIH", 0xC00C, T_TXT, cls, 0, len(rdata)) + rdata


def _error(query: bytes, rcode: int, question: bytes = b"") -> bytes:
    """Header-only (plus question when given) error response echoing id, opcode, RD, CD."""
    return (
        _PACK_HDR(
            query[:2],
            0x80 | (query[2] & 0x79),
            (query[3] & 0x10) | rcode,
            1 if question else 0,
            0,
            0,
            0,
        )
        + question
    )


def _skip_name(packet: bytes, pos: int) -> int:
    """Offset after a (possibly compressed) name in a non-question section, -1 if bad."""
    n = len(packet)
    while pos < n:
        ln = packet[pos]
        if ln == 0:
            return pos + 1
        if ln >= 0xC0:
            return pos + 2 if pos + 2 <= n else -1
        if ln > 63:
            return -1
        pos += ln + 1
    return -1


def _parse_extra(query: bytes, pos: int) -> tuple[int, int, int] | None:
    """Walk answer/authority/additional RRs after the question.

    Returns ``(edns_size, edns_version, opt_present)``; edns_size is 0 without
    OPT.  None means FORMERR (truncated RRs, trailing bytes, OPT outside the
    additional section, a second OPT, OPT with non-root owner, bad options).
    """
    an = (query[6] << 8) | query[7]
    ns = (query[8] << 8) | query[9]
    ar = (query[10] << 8) | query[11]
    n = len(query)
    size = 0
    version = 0
    have_opt = 0
    if an + ns + ar > MAX_EXTRA_RRS:
        return None
    for i in range(an + ns + ar):
        start = pos
        pos = _skip_name(query, pos)
        if pos < 0 or pos + 10 > n:
            return None
        rtype = (query[pos] << 8) | query[pos + 1]
        rdlen = (query[pos + 8] << 8) | query[pos + 9]
        end = pos + 10 + rdlen
        if end > n:
            return None
        if rtype == T_OPT:
            if i < an + ns or have_opt or pos != start + 1 or query[start] != 0:
                return None
            have_opt = 1
            size = max((query[pos + 2] << 8) | query[pos + 3], PLAIN_UDP_SIZE)
            version = query[pos + 5]
            # options: code 2, length 2, data; must tile the rdata exactly
            opos = pos + 10
            while opos < end:
                if opos + 4 > end:
                    return None
                opos += 4 + ((query[opos + 2] << 8) | query[opos + 3])
            if opos != end:
                return None
        pos = end
    if pos != n:
        return None
    return (size, version, have_opt)


_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00\x00\x00"  # QD=1, AN=NS=AR=0
_NAPTR_IN = b"\x00\x23\x00\x01"
#: Response flags by (RD | CD) of the query: QR, AA, RD echoed, CD echoed, NOERROR.
_FAST_FLAGS = {0x00: b"\x84\x00", 0x01: b"\x85\x00", 0x10: b"\x84\x10", 0x11: b"\x85\x10"}


def respond(query: bytes, view: GatewayView, max_udp: int | None = None) -> bytes | None:
    """Answer one DNS query (raw bytes); None means drop it silently.

    ``max_udp`` is the largest UDP payload we are willing to send (normally
    :data:`EDNS_UDP_SIZE`); the effective limit is 512 without EDNS and
    ``max(512, min(client size, max_udp))`` with it.  ``max_udp=None`` means
    TCP: no limit but 65535.
    """
    # --- the fast path -------------------------------------------------------
    # The query almost every PBX and resolver sends: QR=0, opcode QUERY, one
    # question, no other records (no EDNS), NAPTR IN, for a compact lower-case
    # name "<digits>.<zone>." whose number has an answer that fits 512 bytes.
    # The response is the header patched, the question copied and the
    # pre-built answer appended -- byte for byte what the general path below
    # builds for it (tests compare the two), at a fraction of the cost.
    if (
        len(query) > 17
        and not query[2] & 0xF8
        and query[4:12] == _ONE_QUESTION
        and query[-4:] == _NAPTR_IN
    ):
        n = query[12]
        fast = view._fast.get(query[13 + n : -4])
        if fast is not None and n <= fast[1] and query[13 : 13 + n].isdigit():
            rrs = fast[0].answer(query[13 : 13 + n])
            if rrs is not None and len(query) + len(rrs) <= PLAIN_UDP_SIZE:
                return (
                    query[:2]
                    + _FAST_FLAGS[(query[2] & 0x01) | (query[3] & 0x10)]
                    + b"\x00\x01"
                    + rr_count(rrs).to_bytes(2, "big")
                    + b"\x00\x00\x00\x00"
                    + query[12:]
                    + rrs
                )
    if len(query) < 12 or query[2] & 0x80:
        return None  # too short for a header, or a response: never answer those
    # Response cache: same bytes after the ID and same transport -> same answer,
    # as long as no source changed generation or serial.
    sources = view._sources
    if len(sources) == 1:
        src = sources[0]
        stamp: object = (src.generation, src.serial)
    else:
        stamp = view.stamp()
    if stamp != view._stamp:
        view._caches = {}
        view._stamp = stamp
    cache = view._caches.get(max_udp)
    if cache is None:
        cache = view._caches[max_udp] = {}
    body = query[2:]
    cached = cache.get(body)
    if cached is not None:
        return query[:2] + cached
    response, cacheable = _respond(query, view, max_udp)
    if cacheable:
        if len(cache) >= CACHE_MAX:
            cache.clear()
        cache[body] = response[2:]
    return response


def _finish(
    query: bytes,
    question: bytes,
    flags1: int,
    flags2: int,
    rcode: int,
    edns: int,
    ours: int,
    limit: int,
    answer: bytes = b"",
    authority: bytes = b"",
) -> bytes:
    """Header + question + answer + authority (+ OPT when the query had one), fitted to ``limit``.

    ``flags1``/``flags2`` are the header flag bytes without TC and rcode.
    """
    opt = _PACK_OPT(b"\x00\x00\x29", ours, rcode >> 4, 0, 0, 0) if edns else b""
    an = rr_count(answer) if answer else 0
    ns = 1 if authority else 0
    if 12 + len(question) + len(answer) + len(authority) + len(opt) > limit:
        flags1 |= 0x02  # TC: drop whole answer RRs from the end until it fits
        room = limit - 12 - len(question) - len(authority) - len(opt)
        if room < 0:
            authority = b""
            ns = 0
            room = limit - 12 - len(question) - len(opt)
        cut = 0
        an = 0
        for end in _rr_ends(answer):
            if end > room:
                break
            cut = end
            an += 1
        answer = answer[:cut]
    return (
        _PACK_HDR(query[:2], flags1, flags2 | (rcode & 0x0F), 1, an, ns, edns)
        + question
        + answer
        + authority
        + opt
    )


def _digits_key(prefix: bytes) -> bytes | None:
    """The digit string of the wire labels ``prefix`` (labels left of the zone), or None.

    Fast paths for the two usual forms: one label (compact) and one-digit
    labels (dotted, ``\x015\x013...``); the rest walks the labels.
    """
    if prefix[0] == len(prefix) - 1:
        key = prefix[1:]
    elif not len(prefix) & 1 and not prefix[0::2].strip(b"\x01"):
        key = prefix[1::2]
    else:
        key = b"".join(_wire_labels(prefix))
    return key if key.isdigit() else None


def _respond(query: bytes, view: GatewayView, max_udp: int | None) -> tuple[bytes, bool]:
    """The uncached responder: (response, may it be cached)."""
    n = len(query)

    # --- question: labels from offset 12, no compression, <= 255 bytes ------
    pos = 12
    last = -1  # offset of the last label's length byte
    try:
        ln = query[12]
        while ln:
            if ln > 63 or pos > 266:  # pointer, extended label type, or longer than 255
                pos = n
                break
            last = pos
            pos += ln + 1
            ln = query[pos]
    except IndexError:
        pos = n
    qend = pos + 5  # root byte + qtype + qclass
    good_question = query[4] == 0 and query[5] == 1 and qend <= n and qend - 12 <= MAX_NAME + 4

    if query[2] & 0x78:  # opcode other than QUERY
        # Header only: other opcodes give the sections other meanings (UPDATE's
        # first section is a zone), so echoing it could make a malformed reply.
        return _error(query, NOTIMP), False
    if not good_question:
        return _error(query, FORMERR), False
    question = query[12:qend]

    # --- EDNS and whatever follows the question ----------------------------
    if qend == n and query[6:12] == b"\x00\x00\x00\x00\x00\x00":
        edns = 0
        version = 0
        size = PLAIN_UDP_SIZE
    else:
        extra = _parse_extra(query, qend)
        if extra is None:
            return _error(query, FORMERR, question), False
        size, version, edns = extra
        if not edns:
            size = PLAIN_UDP_SIZE
    if max_udp is None:
        limit = TCP_MAX
        ours = EDNS_UDP_SIZE
    else:
        ours = max(max_udp, PLAIN_UDP_SIZE)
        limit = min(size, ours)
    flags1 = 0x80 | (query[2] & 0x01)  # QR, RD echoed (opcode is 0)
    flags2 = query[3] & 0x10  # CD echoed; RA never

    if version > 0:
        return _finish(query, question, flags1, flags2, BADVERS, edns, ours, limit), False
    qtype = (query[qend - 4] << 8) | query[qend - 3]
    qclass = (query[qend - 2] << 8) | query[qend - 1]
    if qtype == T_OPT:
        return _error(query, FORMERR, question), False

    lname = query[12:pos].lower()  # the name in wire form without the root label
    if qclass != C_IN:
        if qclass == C_CH:
            if lname in _STATUS_NAMES:
                txt = _txt_rr(C_CH, view.status()) if qtype in (T_TXT, T_ANY) else b""
                return _finish(
                    query, question, flags1 | 0x04, flags2, NOERROR, edns, ours, limit, txt
                ), False
            return _finish(query, question, flags1, flags2, REFUSED, edns, ours, limit), True
        if qclass != C_ANY:
            return _finish(query, question, flags1, flags2, NOTIMP, edns, ours, limit), True
    if lname == _STATUS_IN:
        txt = _txt_rr(C_IN, view.status()) if qtype in (T_TXT, T_ANY) else b""
        return _finish(
            query, question, flags1 | 0x04, flags2, NOERROR, edns, ours, limit, txt
        ), False
    if last < 0:  # the root name
        return _finish(query, question, flags1, flags2, REFUSED, edns, ours, limit), True

    # --- suffix rules, zone, digits ----------------------------------------
    # ``prefix`` = wire labels left of the zone; ``zone_at`` = where the zone
    # starts as the client wrote it (the SOA owner points there).
    zone_at = last
    zone = lname[last - 11 :]
    prefix = lname[: last - 12]
    for sw, repl in view._suffixes:
        if lname.endswith(sw):
            offs = _label_offsets(lname)
            cut = len(lname) - len(sw)
            if cut not in offs:
                continue  # matched across a label boundary
            labels = _wire_labels(lname[:cut]) + repl
            if not labels:
                return _finish(query, question, flags1, flags2, REFUSED, edns, ours, limit), True
            zone = labels[-1]
            prefix = b"".join(bytes([len(lb)]) + lb for lb in labels[:-1])
            kept = offs.index(cut)  # labels of the query left of the suffix
            zone_at = 12 + offs[min(kept, len(labels) - 1)]
            break
    served = view._zones.get(zone)
    if served is None:
        return _finish(query, question, flags1, flags2, REFUSED, edns, ours, limit), True
    spec, source = served
    if qtype in (T_AXFR, T_IXFR):  # no zone transfers
        return _finish(query, question, flags1, flags2, REFUSED, edns, ours, limit), True
    flags1 |= 0x04  # AA from here on
    if not prefix:  # the zone apex: SOA, NODATA for anything else
        soa = _soa(0xC000 | zone_at, source.serial, view.negative_ttl)
        if qtype in (T_SOA, T_ANY):
            return _finish(query, question, flags1, flags2, NOERROR, edns, ours, limit, soa), True
        return _finish(query, question, flags1, flags2, NOERROR, edns, ours, limit, b"", soa), True
    key = _digits_key(prefix)
    rrs = source.answer(key) if key is not None and len(key) <= spec.max_digits else None
    if rrs is not None and qtype in (T_NAPTR, T_ANY):
        return _finish(query, question, flags1, flags2, NOERROR, edns, ours, limit, rrs), True
    # NXDOMAIN, or NODATA for other types of a served number; SOA in authority
    soa = _soa(0xC000 | zone_at, source.serial, view.negative_ttl)
    rcode = NXDOMAIN if rrs is None else NOERROR
    return _finish(query, question, flags1, flags2, rcode, edns, ours, limit, b"", soa), True


def _label_offsets(wire: bytes) -> list[int]:
    """Offsets of the length bytes of the labels in ``wire`` (no root label)."""
    offs: list[int] = []
    pos = 0
    while pos < len(wire):
        offs.append(pos)
        pos += wire[pos] + 1
    return offs
