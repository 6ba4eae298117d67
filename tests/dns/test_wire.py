"""``enumer.dns.wire.respond``: one query in, one response out, decoded with dnspython."""

from __future__ import annotations

import struct
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enumer.dns import wire
from enumer.dns.wire import (
    SOA_POINTER_OFFSETS,
    GatewayView,
    SuffixRule,
    ZoneSpec,
    respond,
    response_rcode,
    rr_count,
    servfail,
    slip_response,
    soa_template,
    summarize,
)

MAIN = '100 10 "u" "E2U+sip" "!^(.*)$!sip:\\\\1@tollfree.example.com!" .'
MAIN_KEY = b"53995390081"  # +18009359935 in label order
SIP_A = '100 10 "u" "E2U+sip" "!^(.*)$!sip:\\\\1@a.example.com!" .'
H323_B = '100 20 "u" "E2U+h323" "!^(.*)$!h323:\\\\1@b.example.com!" .'


def naptr_rr(text: str, ttl: int = 86400) -> bytes:
    """One NAPTR RR owned by the pointer c00c (the question name)."""
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.NAPTR, text).to_wire()
    assert rdata is not None
    return b"\xc0\x0c" + struct.pack(">HHIH", 35, 1, ttl, len(rdata)) + rdata


def many_rrs(count: int) -> bytes:
    return b"".join(
        naptr_rr(
            f'{100 + i} 10 "u" "E2U+sip" '
            f'"!^(.*)$!sip:\\\\1@host{i:02d}.long-domain-name-for-truncation.example.com!" .'
        )
        for i in range(count)
    )


class Source:
    """A dict-backed AnswerSource."""

    def __init__(self, answers: dict[bytes, bytes], serial: int = 4242) -> None:
        self.answers = answers
        self.generation = 1
        self.serial = serial

    def answer(self, key: bytes) -> bytes | None:
        return self.answers.get(key)


def make_source() -> Source:
    return Source(
        {
            MAIN_KEY: naptr_rr(MAIN),
            b"76543217771": naptr_rr(
                '100 10 "u" "E2U+sip" "!^(.*)$!sip:\\\\1@a.example.com!" .', 600
            )
            + naptr_rr('100 20 "u" "E2U+h323" "!^(.*)$!h323:\\\\1@b.example.com!" .', 600),
            b"00009997771": many_rrs(12),
        }
    )


STATUS = "enumer test; height 4242"


def make_view(source: Source | None = None, **kw: object) -> GatewayView:
    src = source or make_source()
    return GatewayView(
        zones={"enum": (ZoneSpec("enum"), src)},
        suffixes=(SuffixRule("enumer.org"), SuffixRule("e164.org", "enum")),
        status=lambda: STATUS,
        **kw,  # type: ignore[arg-type]
    )


def ask(
    name: str,
    rdtype: str | int = "NAPTR",
    rdclass: str | int = "IN",
    view: GatewayView | None = None,
    max_udp: int | None = 1232,
    **kw: object,
) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, rdclass, **kw)  # type: ignore[arg-type]
    raw = respond(q.to_wire(), view or make_view(), max_udp)
    assert raw is not None
    r = dns.message.from_wire(raw)
    assert r.id == q.id
    assert r.flags & dns.flags.QR
    return r


def raw_ask(query: bytes, view: GatewayView | None = None, max_udp: int | None = 1232) -> bytes:
    raw = respond(query, view or make_view(), max_udp)
    assert raw is not None
    return raw


def naptrs(r: dns.message.Message) -> list[str]:
    return [rd.to_text() for rrset in r.answer for rd in rrset]


def soa_of(r: dns.message.Message) -> dns.rrset.RRset:
    assert len(r.authority) == 1
    rrset = r.authority[0]
    assert rrset.rdtype == dns.rdatatype.SOA
    return rrset


# --- names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "53995390081.enum",
        "5.3.9.9.5.3.9.0.0.8.1.enum",
        "5.3.9.9.5.3.9.0.0.8.1.ENUM",
        "5.3.9.9.5.3.9.0.0.8.1.EnUm.",
        "539.953.90081.enum",  # any label split: the digits in label order
        "53995390081.enum.enumer.org",  # suffix stripped
        "5.3.9.9.5.3.9.0.0.8.1.enum.ENUMER.ORG",
        "53995390081.e164.org",  # suffix translated to .enum
    ],
)
def test_answer_for_compact_dotted_and_suffixed_names(name: str) -> None:
    r = ask(name)
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA
    assert r.flags & dns.flags.RD  # echoed
    assert not r.flags & dns.flags.RA
    assert not r.flags & dns.flags.TC
    assert len(r.answer) == 1
    rrset = r.answer[0]
    assert rrset.name == dns.name.from_text(name)  # the owner is the question as written
    assert rrset.ttl == 86400
    assert naptrs(r) == [dns.rdata.from_text("IN", "NAPTR", MAIN).to_text()]
    assert r.edns == -1  # no OPT unless asked


def test_several_rrs_keep_ttls_and_order() -> None:
    r = ask("7.6.5.4.3.2.1.7.7.7.1.enum")
    assert [rd.preference for rd in r.answer[0]] == [10, 20]
    assert r.answer[0].ttl == 600


def test_question_case_is_echoed_verbatim() -> None:
    q = dns.message.make_query("53995390081.EnUm", "NAPTR")
    raw = raw_ask(q.to_wire())
    assert b"\x04EnUm\x00" in raw


@pytest.mark.parametrize(
    "name", ["example.com", "5.3.9.9.5.3.9.0.0.8.1.e164.arpa", "enumer.org", "enum.example"]
)
def test_names_outside_the_served_zones_are_refused(name: str) -> None:
    r = ask(name, "A" if name == "example.com" else "NAPTR")
    assert r.rcode() == dns.rcode.REFUSED
    assert not r.flags & dns.flags.AA
    assert not r.answer and not r.authority


def test_root_name_is_refused() -> None:
    assert ask(".", "NS").rcode() == dns.rcode.REFUSED


@pytest.mark.parametrize(
    ("name", "zone"),
    [
        ("18009359935.enum", "enum."),  # not reversed: another number
        ("abc.enum", "enum."),
        ("5.3.e164.enum", "enum."),
        ("5.3.9.9.5.3.9.0.0.8.1.e164.enum", "enum."),
        ("5-3.enum", "enum."),
        ("1" * 41 + ".enum", "enum."),  # more digits than the zone allows
        ("1.2.enum.enumer.org", "enum.enumer.org."),
        ("12.e164.org", "e164.org."),
    ],
)
def test_nxdomain_with_soa(name: str, zone: str) -> None:
    r = ask(name)
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert r.flags & dns.flags.AA
    assert not r.answer
    soa = soa_of(r)
    assert soa.name == dns.name.from_text(zone)
    assert soa.ttl == 300
    rd = soa[0]
    assert rd.serial == 4242
    assert rd.minimum == 300
    assert (rd.refresh, rd.retry, rd.expire) == (3600, 600, 1209600)
    assert rd.mname == dns.name.from_text("ns." + zone)
    assert rd.rname == dns.name.from_text("hostmaster." + zone)


def test_soa_owner_follows_the_case_the_client_wrote() -> None:
    r = ask("1.ENUM")
    assert soa_of(r).name.to_text() == "ENUM."


def test_negative_ttl_and_serial_come_from_view_and_source() -> None:
    src = make_source()
    src.serial = (1 << 32) + 7  # masked to 32 bits
    r = ask("1.enum", view=make_view(src, negative_ttl=60))
    soa = soa_of(r)
    assert soa.ttl == 60
    assert soa[0].minimum == 60
    assert soa[0].serial == 7


def test_max_digits_is_per_zone() -> None:
    src = Source({b"123456": naptr_rr(MAIN), b"12345": naptr_rr(MAIN)})
    view = GatewayView({"enum": (ZoneSpec("enum", max_digits=5), src)})
    assert ask("12345.enum", view=view).rcode() == dns.rcode.NOERROR
    assert ask("123456.enum", view=view).rcode() == dns.rcode.NXDOMAIN


@pytest.mark.parametrize("rdtype", ["A", "TXT", "AAAA", "SOA", "NS"])
def test_nodata_with_soa_for_other_types_of_a_served_number(rdtype: str) -> None:
    r = ask("5.3.9.9.5.3.9.0.0.8.1.enum", rdtype)
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA
    assert not r.answer
    assert soa_of(r).name == dns.name.from_text("enum.")


def test_other_types_of_an_unserved_number_are_nxdomain() -> None:
    r = ask("1.2.3.enum", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN
    soa_of(r)


def test_any_returns_the_naptrs() -> None:
    r = ask("53995390081.enum", "ANY")
    assert r.rcode() == dns.rcode.NOERROR
    assert len(naptrs(r)) == 1


def test_class_any_is_treated_as_in() -> None:
    r = ask("53995390081.enum", "NAPTR", "ANY")
    assert r.rcode() == dns.rcode.NOERROR
    assert len(naptrs(r)) == 1


def test_zone_apex() -> None:
    r = ask("enum", "SOA")
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA
    assert r.answer[0].rdtype == dns.rdatatype.SOA
    assert r.answer[0].name == dns.name.from_text("enum.")
    r = ask("enum", "NAPTR")
    assert r.rcode() == dns.rcode.NOERROR
    assert not r.answer
    soa_of(r)
    r = ask("enum.enumer.org", "SOA")
    assert r.answer[0].name == dns.name.from_text("enum.enumer.org.")


def test_zone_transfers_are_refused() -> None:
    assert ask("1.enum", "AXFR").rcode() == dns.rcode.REFUSED
    assert ask("enum", "AXFR", max_udp=None).rcode() == dns.rcode.REFUSED
    assert ask("enum", "IXFR").rcode() == dns.rcode.REFUSED


# --- malformed and unsupported ---------------------------------------------------


def header(
    qid: int = 0x1234,
    flags: int = 0x0100,
    qd: int = 1,
    an: int = 0,
    ns: int = 0,
    ar: int = 0,
) -> bytes:
    return struct.pack(">HHHHHH", qid, flags, qd, an, ns, ar)


QNAME = b"\x0b53995390081\x04enum\x00"
QUESTION = QNAME + b"\x00\x23\x00\x01"
OPT = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"


def test_short_packets_and_responses_are_dropped() -> None:
    view = make_view()
    assert respond(b"", view) is None
    assert respond(header()[:11], view) is None
    assert respond(header(flags=0x8100) + QUESTION, view) is None


FORMERR = dns.rcode.FORMERR
LONG_NAME = (b"\x3f" + b"a" * 63) * 4 + b"\x00"  # 257 bytes


@pytest.mark.parametrize(
    ("packet", "rcode", "has_question"),
    [
        (header(qd=0), FORMERR, False),
        (header(qd=2) + QUESTION + QUESTION, FORMERR, False),
        (header() + QNAME[:6], FORMERR, False),  # truncated name
        (header() + QNAME + b"\x00\x23", FORMERR, False),  # truncated type/class
        (header() + b"\x03abc\xc0\x0c\x00\x23\x00\x01", FORMERR, False),  # pointer
        (header() + b"\x40" + b"a" * 64 + b"\x00\x00\x23\x00\x01", FORMERR, False),  # label 64
        (header() + LONG_NAME + b"\x00\x23\x00\x01", FORMERR, False),  # name > 255
        (header(ar=2) + QUESTION + OPT + OPT, FORMERR, True),  # two OPTs
        (header(ar=1) + QUESTION + b"\x01a" + OPT[1:], FORMERR, True),  # OPT owner not root
        (header(an=1) + QUESTION + OPT, FORMERR, True),  # OPT in the answer section
        (header(ar=1) + QUESTION + OPT[:-1], FORMERR, True),  # truncated OPT
        (header(ar=1) + QUESTION + OPT[:-2] + b"\x00\x03\x00\x0a\x00", FORMERR, True),
        (header() + QUESTION + b"garbage", FORMERR, True),  # trailing bytes
        (header(ar=1) + QUESTION, FORMERR, True),  # announced record missing
        (
            header(ar=9) + QUESTION + b"\x00\x00\x10\x00\x01\x00\x00\x00\x00\x00\x00" * 9,
            FORMERR,
            True,
        ),
        (header() + b"\x00\x00\x29\x00\x01", FORMERR, True),  # qtype OPT
        # a label of 63 is fine (REFUSED: not a zone)
        (header() + b"\x3f" + b"a" * 63 + b"\x00\x00\x23\x00\x01", dns.rcode.REFUSED, True),
    ],
)
def test_formerr(packet: bytes, rcode: int, has_question: bool) -> None:
    r = dns.message.from_wire(raw_ask(packet))
    assert r.rcode() == rcode
    assert r.id == 0x1234
    assert len(r.question) == (1 if has_question else 0)
    assert not r.answer


def test_name_of_exactly_255_bytes_is_accepted() -> None:
    # 3 labels of 63 + one of 61: 64*3 + 62 + 1 (root) = 255
    name = (b"\x3f" + b"1" * 63) * 3 + b"\x3d" + b"1" * 61 + b"\x00"
    assert len(name) == 255
    r = dns.message.from_wire(raw_ask(header() + name + b"\x00\x23\x00\x01"))
    assert r.rcode() == dns.rcode.REFUSED  # last label is not a zone, but it parsed


def test_additional_records_other_than_opt_are_ignored() -> None:
    extra = b"\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x00\x00\x02\x01x"  # a TXT RR
    r = dns.message.from_wire(raw_ask(header(ar=2) + QUESTION + extra + OPT))
    assert r.rcode() == dns.rcode.NOERROR
    assert r.edns == 0


def test_notimp_for_other_opcodes_is_header_only() -> None:
    q = dns.message.make_query("53995390081.enum", "NAPTR")
    q.set_opcode(dns.opcode.STATUS)
    r = dns.message.from_wire(raw_ask(q.to_wire()))
    assert r.rcode() == dns.rcode.NOTIMP
    assert r.opcode() == dns.opcode.STATUS
    assert r.id == q.id
    # Other opcodes give the first section another meaning (UPDATE: the zone), so
    # the reply carries no section at all and always parses.
    assert not r.question
    notify = header(flags=0x2000, qd=1) + b"\x04enum\x00\x00\x06\x00\x01"
    r = dns.message.from_wire(raw_ask(notify))
    assert (r.rcode(), r.opcode()) == (dns.rcode.NOTIMP, dns.opcode.NOTIFY)
    garbled = header(flags=0x1000, qd=3) + b"\xff"
    r = dns.message.from_wire(raw_ask(garbled))
    assert r.rcode() == dns.rcode.NOTIMP and not r.question


def test_notimp_for_class_hesiod() -> None:
    r = ask("53995390081.enum", "NAPTR", dns.rdataclass.HS)
    assert r.rcode() == dns.rcode.NOTIMP
    assert len(r.question) == 1


def test_rd_and_cd_are_echoed_ra_never() -> None:
    q = dns.message.make_query("53995390081.enum", "NAPTR")
    q.flags = dns.flags.CD  # no RD
    r = dns.message.from_wire(raw_ask(q.to_wire()))
    assert r.flags & dns.flags.CD
    assert not r.flags & (dns.flags.RD | dns.flags.RA | dns.flags.AD)


# --- EDNS ------------------------------------------------------------------------


def test_edns_is_echoed_only_when_asked() -> None:
    assert ask("53995390081.enum").edns == -1
    assert ask("1.enum").edns == -1
    r = ask("53995390081.enum", use_edns=0, payload=4096, want_dnssec=True)
    assert r.edns == 0
    assert r.payload == 1232
    assert not r.ednsflags & dns.flags.DO
    assert r.options == ()
    r = ask("1.enum", use_edns=0)
    assert r.edns == 0 and r.rcode() == dns.rcode.NXDOMAIN
    r = ask("example.com", use_edns=0)
    assert r.edns == 0 and r.rcode() == dns.rcode.REFUSED


def test_unknown_edns_options_are_ignored() -> None:
    cookie = dns.edns.CookieOption(b"12345678", b"")
    other = dns.edns.GenericOption(65001, b"\x01\x02")  # type: ignore[arg-type]
    r = ask("53995390081.enum", use_edns=0, options=[cookie, other])
    assert r.rcode() == dns.rcode.NOERROR
    assert r.options == ()
    assert len(naptrs(r)) == 1


def test_badvers() -> None:
    r = ask("53995390081.enum", use_edns=1)
    assert r.rcode() == dns.rcode.BADVERS
    assert r.edns == 0
    assert not r.answer
    raw = raw_ask(dns.message.make_query("53995390081.enum", "NAPTR", use_edns=1).to_wire())
    assert raw[3] & 0x0F == 0  # the low bits in the header, the high ones in the OPT
    assert response_rcode(raw) == 16


def test_size_without_edns_is_512_with_whole_rrs() -> None:
    full = ask("0.0.0.0.9.9.9.7.7.7.1.enum", max_udp=None)
    assert len(naptrs(full)) == 12
    assert not full.flags & dns.flags.TC
    raw = raw_ask(dns.message.make_query("0.0.0.0.9.9.9.7.7.7.1.enum", "NAPTR").to_wire())
    assert len(raw) <= 512
    r = dns.message.from_wire(raw)  # well formed, unlike emcdns (p5)
    assert r.flags & dns.flags.TC
    got = naptrs(r)
    assert 0 < len(got) < 12
    assert got == naptrs(full)[: len(got)]  # whole RRs from the front
    assert r.edns == -1


@pytest.mark.parametrize(
    ("payload", "limit", "complete"),
    [
        (512, 512, False),
        (100, 512, False),
        (900, 900, False),
        (1232, 1232, True),
        (4096, 1232, True),
    ],
)
def test_size_negotiation_with_edns(payload: int, limit: int, complete: bool) -> None:
    q = dns.message.make_query("0.0.0.0.9.9.9.7.7.7.1.enum", "NAPTR", use_edns=0, payload=payload)
    raw = raw_ask(q.to_wire())
    assert len(raw) <= limit
    r = dns.message.from_wire(raw)
    assert r.edns == 0  # the OPT survives truncation
    assert bool(r.flags & dns.flags.TC) is not complete
    assert (len(naptrs(r)) == 12) is complete
    if not complete:
        assert len(raw) > limit - 120  # as many RRs as fit


def test_server_max_udp_caps_the_edns_size() -> None:
    q = dns.message.make_query("0.0.0.0.9.9.9.7.7.7.1.enum", "NAPTR", use_edns=0, payload=4096)
    raw = raw_ask(q.to_wire(), max_udp=700)
    assert len(raw) <= 700
    assert dns.message.from_wire(raw).payload == 700


def test_tcp_has_no_size_limit() -> None:
    q = dns.message.make_query("0.0.0.0.9.9.9.7.7.7.1.enum", "NAPTR", use_edns=0, payload=512)
    r = dns.message.from_wire(raw_ask(q.to_wire(), max_udp=None))
    assert len(naptrs(r)) == 12
    assert not r.flags & dns.flags.TC


def test_truncation_that_leaves_no_answer() -> None:
    big = [
        naptr_rr(f'{i} 1 "u" "E2U+' + "s" * 200 + '" "!^.*$!sip:' + "x" * 200 + '@e.com!" .')
        for i in (1, 2)
    ]
    src = Source({b"2" * 100: b"".join(big)})
    view = GatewayView({"enum": (ZoneSpec("enum", max_digits=100), src)})
    long_name = ".".join(["2"] * 100) + ".enum"  # a question of 211 bytes
    for edns in (-1, 0):
        q = dns.message.make_query(long_name, "NAPTR", use_edns=edns, payload=512)
        raw = raw_ask(q.to_wire(), view)
        assert len(raw) <= 512
        r = dns.message.from_wire(raw)
        assert r.flags & dns.flags.TC
        assert r.rcode() == dns.rcode.NOERROR
        assert not r.answer and len(r.question) == 1
        assert r.edns == edns
        full = dns.message.from_wire(raw_ask(q.to_wire(), view, None))
        assert len(naptrs(full)) == 2


# --- CHAOS and status ------------------------------------------------------------


@pytest.mark.parametrize("name", ["version.bind", "id.server", "status.enumer", "VERSION.BIND"])
def test_chaos_status(name: str) -> None:
    r = ask(name, "TXT", "CH")
    assert r.rcode() == dns.rcode.NOERROR
    assert r.answer[0].rdclass == dns.rdataclass.CH
    assert [s.decode() for s in r.answer[0][0].strings] == [STATUS]


def test_status_in_class_in_and_long_text_is_split() -> None:
    text = "x" * 300 + "y" * 300
    view = GatewayView({"enum": (ZoneSpec("enum"), make_source())}, status=lambda: text)
    r = ask("status.enumer", "TXT", view=view)
    assert r.flags & dns.flags.TC and not r.answer  # 600 bytes do not fit in 512
    r = ask("status.enumer", "TXT", view=view, max_udp=None)
    strings = r.answer[0][0].strings
    assert [len(s) for s in strings] == [255, 255, 90]
    assert b"".join(strings).decode() == text
    r = ask("status.enumer", "A", view=view)
    assert r.rcode() == dns.rcode.NOERROR and not r.answer


def test_chaos_other_names_refused() -> None:
    assert ask("hostname.example", "TXT", "CH").rcode() == dns.rcode.REFUSED
    assert ask("53995390081.enum", "NAPTR", "CH").rcode() == dns.rcode.REFUSED


def test_status_is_not_cached() -> None:
    texts = iter(["one", "two"])
    view = GatewayView({"enum": (ZoneSpec("enum"), make_source())}, status=lambda: next(texts))
    q = dns.message.make_query("version.bind", "TXT", "CH").to_wire()
    first = dns.message.from_wire(raw_ask(q, view))
    second = dns.message.from_wire(raw_ask(q, view))
    assert first.answer[0][0].strings != second.answer[0][0].strings


# --- cache ---------------------------------------------------------------------------


def test_cache_follows_generation_and_serial() -> None:
    src = make_source()
    view = make_view(src)
    # With EDNS the query takes the general (cached) path, not the fast one.
    q = dns.message.make_query("53995390081.enum", "NAPTR", use_edns=0)
    first = raw_ask(q.to_wire(), view)
    q.id ^= 0x5555
    again = raw_ask(q.to_wire(), view)
    assert again[:2] == q.to_wire()[:2]  # the id of this query, from the cache
    assert again[2:] == first[2:]
    src.answers[MAIN_KEY] = naptr_rr('1 1 "u" "E2U+sip" "!^.*$!sip:new@example.com!" .')
    assert raw_ask(q.to_wire(), view)[2:] == first[2:]  # same generation: cached
    src.generation += 1
    assert "new@example.com" in naptrs(dns.message.from_wire(raw_ask(q.to_wire(), view)))[0]
    nx = dns.message.make_query("1.enum", "NAPTR").to_wire()
    assert soa_of(dns.message.from_wire(raw_ask(nx, view)))[0].serial == 4242
    src.serial = 4243
    assert soa_of(dns.message.from_wire(raw_ask(nx, view)))[0].serial == 4243


def test_fast_path_equals_the_general_path() -> None:
    """The fast path must build exactly the bytes the general path builds."""
    from enumer.dns.wire import _respond

    src = make_source()
    view = make_view(src)
    answered = 0
    for name in (
        "53995390081.enum",
        "76543217771.enum",
        "1.enum",
        "99999.enum",
        "0000999777.enum",
        "5.3.9.9.5.3.9.0.0.8.1.enum",
    ):
        for flags in (0, dns.flags.RD, dns.flags.CD, dns.flags.RD | dns.flags.CD):
            q = dns.message.make_query(name, "NAPTR")
            q.flags = flags
            wire = q.to_wire()
            fast = respond(wire, view, 1232)
            general, _ = _respond(wire, view, 1232)
            assert fast == general, (name, flags)
            answered += dns.message.from_wire(general).rcode() == dns.rcode.NOERROR
    assert answered >= 8
    src.answers[MAIN_KEY] = naptr_rr('1 1 "u" "E2U+sip" "!^.*$!sip:new@example.com!" .')
    fresh = respond(dns.message.make_query("53995390081.enum", "NAPTR").to_wire(), view, 1232)
    assert fresh is not None and b"new@example.com" in fresh  # reads the live table


def test_cache_is_per_transport_size() -> None:
    view = make_view()
    q = dns.message.make_query("0.0.0.0.9.9.9.7.7.7.1.enum", "NAPTR").to_wire()
    assert dns.message.from_wire(raw_ask(q, view, 1232)).flags & dns.flags.TC
    assert not dns.message.from_wire(raw_ask(q, view, None)).flags & dns.flags.TC


def test_several_zones() -> None:
    signed, unsigned = make_source(), Source({b"1": naptr_rr(MAIN)})
    view = GatewayView(
        {
            "enum": (ZoneSpec("enum"), signed),
            "test": (ZoneSpec("test", verified=False), unsigned),
        }
    )
    assert ask("1.test", view=view).rcode() == dns.rcode.NOERROR
    assert ask("1.enum", view=view).rcode() == dns.rcode.NXDOMAIN
    unsigned.generation += 1  # invalidates the cache of the view
    unsigned.answers.clear()
    assert ask("1.test", view=view).rcode() == dns.rcode.NXDOMAIN


# --- helpers -----------------------------------------------------------------------


def test_helpers() -> None:
    rrs = many_rrs(3)
    assert rr_count(rrs) == 3
    assert rr_count(rrs) == 3  # memoised
    raw = raw_ask(dns.message.make_query("53995390081.enum", "NAPTR").to_wire())
    assert summarize(raw) == ("53995390081.enum.", 35)
    slip = dns.message.from_wire(slip_response(raw))
    assert slip.flags & dns.flags.TC and not slip.answer and len(slip.question) == 1
    sf = servfail(dns.message.make_query("53995390081.enum", "NAPTR").to_wire())
    assert sf is not None
    assert dns.message.from_wire(sf).rcode() == dns.rcode.SERVFAIL
    assert servfail(b"\x00") is None
    assert summarize(b"\x00" * 12) == ("-", 0)


def test_bad_zone_label_is_rejected() -> None:
    with pytest.raises(ValueError):
        GatewayView({"a.b": (ZoneSpec("a.b"), make_source())})


# --- never raises ---------------------------------------------------------------------

VALID = [
    dns.message.make_query("53995390081.enum", "NAPTR").to_wire(),
    dns.message.make_query("5.3.9.9.5.3.9.0.0.8.1.enum", "NAPTR", use_edns=0).to_wire(),
    dns.message.make_query("0.0.0.0.9.9.9.7.7.7.1.enum", "A", use_edns=0).to_wire(),
    dns.message.make_query("1.enum.enumer.org", "NAPTR").to_wire(),
    dns.message.make_query("version.bind", "TXT", "CH").to_wire(),
]
VIEW = make_view()


def check_response(query: bytes, raw: bytes | None) -> None:
    if raw is None:
        assert len(query) < 12 or query[2] & 0x80
        return
    assert raw[:2] == query[:2]
    assert raw[2] & 0x80
    dns.message.from_wire(raw)  # always well formed


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_respond_never_raises_on_random_bytes(data: bytes) -> None:
    for max_udp in (1232, None):
        check_response(data, respond(data, VIEW, max_udp))


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 20),
)
def test_respond_never_raises_on_mutated_queries(
    base: bytes, edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(base)
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
        else:
            data.append(value)
    packet = bytes(data[: len(data) - cut] if cut < len(data) else data)
    for max_udp in (512, 1232, None):
        check_response(packet, respond(packet, VIEW, max_udp))


# --- replaying the reference gateway's captures ------------------------------------------


def _captures(reference_dir: Path) -> list[tuple[str, bytes, bytes]]:
    """(case, query, emcdns response) of every first-run capture (``p1_*``)."""
    out = []
    for path in sorted((reference_dir / "dns").glob("p1_*.py-wire.txt")):
        fields = dict(
            line.split(": ", 1) for line in path.read_text().splitlines() if "_hex: " in line
        )
        out.append(
            (
                path.name.split(".")[0],
                bytes.fromhex(fields["query_hex"]),
                bytes.fromhex(fields["response_hex"]),
            )
        )
    return out


def _answer_section(response: bytes) -> bytes:
    """The answer RRs of an emcdns response (pointer owners, as our sources hold them)."""
    pos = 12
    while response[pos]:
        pos += response[pos] + 1
    start = pos = pos + 5
    for _ in range(struct.unpack(">H", response[6:8])[0]):
        pos += 12 + struct.unpack(">H", response[pos + 10 : pos + 12])[0]
    return response[start:pos]


def test_replay_of_the_reference_captures(reference_dir: Path) -> None:
    """Same answers as emcdns, and the documented improvements (SPEC 7.2) where it erred."""
    captures = _captures(reference_dir)
    assert len(captures) >= 30
    served: dict[bytes, bytes] = {}
    for _case, query, response in captures:
        q = dns.message.from_wire(query)
        labels = q.question[0].name.labels[:-2]
        if response[3] & 0x0F == 0 and q.question[0].rdtype == dns.rdatatype.NAPTR and labels:
            served[b"".join(labels)] = _answer_section(response)
    view = GatewayView({"enum": (ZoneSpec("enum"), Source(served))})
    for case, query, reference in captures:
        ours = respond(query, view, 1232)
        assert ours is not None, case
        r = dns.message.from_wire(ours)
        ref_rcode = reference[3] & 0x0F
        qtype = r.question[0].rdtype
        if case.startswith("p1_25"):  # .coin is EmerDNS, not served by ENUMER
            assert r.rcode() == dns.rcode.REFUSED, case
        elif ref_rcode == 0 and qtype == dns.rdatatype.NAPTR:
            answers = _answer_section(reference)
            assert _answer_section(ours) == answers, case
            assert ours[2:4] == reference[2:4], case  # QR AA RD, NOERROR
            if r.edns < 0:  # identical but for the OPT emcdns always added
                assert ours == reference[:11] + b"\x00" + reference[12 : len(ours)], case
        elif case.startswith("p1_21"):  # A/TXT/ANY on a served number: not NXDOMAIN
            assert r.rcode() == dns.rcode.NOERROR, case
            assert bool(r.answer) == (qtype == dns.rdatatype.ANY), case
        elif case.startswith("p1_23"):  # the zone apex exists
            assert r.rcode() == dns.rcode.NOERROR and not r.answer, case
            soa_of(r)
        elif ref_rcode == dns.rcode.NXDOMAIN:
            assert r.rcode() == dns.rcode.NXDOMAIN, case
            soa_of(r)  # negative answers carry the SOA
        else:
            assert r.rcode() == ref_rcode == dns.rcode.REFUSED, case


def test_a_suffix_rule_for_a_longer_name_turns_the_fast_path_off() -> None:
    """A rule that ends in the zone (here one number's whole name) must win over
    the fast path, which would otherwise answer that name from the table."""
    view = GatewayView(
        zones={"enum": (ZoneSpec("enum"), make_source())},
        suffixes=(SuffixRule("53995390081.enum"),),
    )
    assert view._fast == {}
    assert ask("53995390081.enum", view=view).rcode() == dns.rcode.REFUSED
    assert ask("5.3.9.9.5.3.9.0.0.8.1.enum", view=view).rcode() == dns.rcode.NOERROR
    assert make_view()._fast  # the usual rules leave it on


@pytest.mark.parametrize("zone_at", [12, 25, 0x3FFF])
def test_soa_template_has_its_pointers_where_the_c_loop_sets_them(zone_at: int) -> None:
    template = bytearray(soa_template(4242, 300))
    for offset in SOA_POINTER_OFFSETS:
        assert template[offset : offset + 2] == b"\xc0\x00"
        template[offset : offset + 2] = (0xC000 | zone_at).to_bytes(2, "big")
    # the SOA the general path puts in the authority section of a negative answer
    assert wire._make_soa(0xC000 | zone_at, 4242, 300) == bytes(template)


def test_a_compact_label_over_63_bytes_is_formerr_even_with_a_64_digit_cap() -> None:
    digits = b"1" * 64
    source = make_source()
    source.answers[digits] = naptr_rr(MAIN)
    view = GatewayView(zones={"enum": (ZoneSpec("enum", max_digits=64), source)})
    header = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0)
    packet = header + bytes([64]) + digits + b"\x04enum\x00" + struct.pack(">HH", 35, 1)
    reply = raw_ask(packet, view)
    assert reply[3] & 0x0F == dns.rcode.FORMERR
    # the same number dotted is a valid name, answered
    dotted = dns.message.make_query(".".join("1" * 64) + ".enum", "NAPTR")
    assert naptrs(dns.message.from_wire(raw_ask(dotted.to_wire(), view)))
