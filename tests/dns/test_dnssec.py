"""DNSSEC signing: key files, signatures checked by dnspython, the NSEC chain's proofs.

The signed answers are built by :class:`enumer.dns.signed.SignedZone` and
served by :func:`enumer.dns.wire.respond`; every RRset of every response is
validated with ``dns.dnssec.validate`` against the zone's DNSKEY set, and every
NSEC is checked in DNS canonical order (dnspython's name comparison), so that
no NSEC denies a name the zone serves (the too-broad-denial bug that breaks
aggressive negative caching).
"""

from __future__ import annotations

import gc
import os
import stat
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
from tests.conftest import CliRunner, assert_one_error_line
from tests.support import need

from enumer.dns import flat
from enumer.dns.dnssec import (
    ED25519,
    DnssecError,
    KeySet,
    generate,
    read_key,
    read_keys,
    write_key,
)
from enumer.dns.flat import FlatTable
from enumer.dns.nsec import Chain
from enumer.dns.signed import SignedSnapshot, SignedZone, signed_diff, signed_path, sort_key
from enumer.dns.table import AnswerTable, key_of, rr_bytes
from enumer.dns.wire import GatewayView, ZoneSpec, respond
from enumer.naptr import Naptr

ORIGIN = dns.name.from_text("enum.")
#: Served numbers: a number and its extensions, neighbours, a lone short one.
NUMBERS = ["18009359935", "180093599351", "180093599359", "18009359936", "4930", "15550001234"]


@dataclass
class Source:
    """An answer source as the table is one: pre-built NAPTR bytes by key."""

    answers: dict[bytes, bytes]
    dnssec: SignedZone | None = None
    generation: int = 1
    serial: int = 7
    tollfree: dict[bytes, bytes] = field(default_factory=dict)

    def answer(self, key: bytes) -> bytes | None:
        return self.answers.get(key) or self.tollfree.get(key)


def answers_of(numbers: list[str]) -> dict[bytes, bytes]:
    return {
        key_of(d): rr_bytes(Naptr(100, 10, "u", "E2U+sip", f"!^.*$!sip:{d}@example.net!", ".", 600))
        for d in numbers
    }


def signed_view(tmp_path: Path, numbers: list[str] = NUMBERS, algorithm: int = 13) -> GatewayView:
    directory = tmp_path / "keys"
    write_key(generate("enum", algorithm), directory)
    zone = SignedZone(KeySet.load(directory))
    source = Source(answers_of(numbers), zone)
    zone.sign_all(source.answers, workers=1)
    return GatewayView(zones={"enum": (ZoneSpec("enum"), source)})


def ask(
    view: GatewayView, name: str, rdtype: str = "NAPTR", do: bool = True
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, want_dnssec=do, use_edns=0)
    wire = respond(query.to_wire(), view, 1232)
    assert wire is not None
    return dns.message.from_wire(wire)


def dnskeys(view: GatewayView) -> dns.rrset.RRset:
    reply = ask(view, "enum.", "DNSKEY")
    keys = reply.find_rrset(reply.answer, ORIGIN, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    sig = reply.find_rrset(
        reply.answer, ORIGIN, dns.rdataclass.IN, dns.rdatatype.RRSIG, dns.rdatatype.DNSKEY
    )
    dns.dnssec.validate(keys, sig, {ORIGIN: keys})
    return keys


def validate_all(reply: dns.message.Message, keys: dns.rrset.RRset) -> int:
    """Validate every RRset of the answer and authority sections; how many were."""
    count = 0
    for section in (reply.answer, reply.authority):
        for rrset in section:
            if rrset.rdtype == dns.rdatatype.RRSIG:
                continue
            sig = reply.find_rrset(
                section, rrset.name, rrset.rdclass, dns.rdatatype.RRSIG, rrset.rdtype
            )
            dns.dnssec.validate(rrset, sig, {ORIGIN: keys})
            count += 1
    return count


def dotted(digits: str) -> str:
    return ".".join(reversed(digits)) + ".enum."


def nsecs(reply: dns.message.Message) -> list[tuple[dns.name.Name, dns.name.Name]]:
    return [(r.name, r[0].next) for r in reply.authority if r.rdtype == dns.rdatatype.NSEC]


def assert_same_nsecs(zone: SignedZone, fresh: SignedZone) -> None:
    """Every NSEC record equal (their RRSIGs differ: ECDSA signatures are randomised)."""
    for key in fresh.entries:
        mine, theirs = zone.nsec(key), fresh.nsec(key)
        assert mine is not None and theirs is not None, key
        first = dns.message.from_wire(b"\x00" * 6 + b"\x00\x02" + b"\x00" * 4 + mine)
        again = dns.message.from_wire(b"\x00" * 6 + b"\x00\x02" + b"\x00" * 4 + theirs)
        assert first.answer[0] == again.answer[0], key


def covers(owner: dns.name.Name, nxt: dns.name.Name, name: dns.name.Name) -> bool:
    if nxt == ORIGIN:  # the last NSEC wraps round to the apex
        return owner < name
    return owner < name < nxt


# -- keys ---------------------------------------------------------------------------


def test_key_files_round_trip_private_file_is_0600(tmp_path: Path) -> None:
    key = generate("enum.enumer.org", 13)
    path = write_key(key, tmp_path)
    assert path.name == f"Kenum.enumer.org.+013+{key.tag:05d}.key"
    private = path.with_suffix(".private")
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    back = read_key(private)
    assert (back.zone, back.tag, back.flags, back.public) == (
        "enum.enumer.org.",
        key.tag,
        257,
        key.public,
    )
    with pytest.raises(DnssecError, match="exists already"):
        write_key(key, tmp_path)
    dnskey = dns.rrset.from_text(
        "enum.enumer.org.", 3600, "IN", "DNSKEY", key.dnskey_text().split(" IN DNSKEY ")[1]
    )
    assert dns.dnssec.key_id(dnskey[0]) == key.tag
    ds = dns.dnssec.make_ds("enum.enumer.org.", dnskey[0], "SHA256")
    assert key.ds_text().endswith(ds.to_text().upper().split(" ", 3)[3])


def test_keys_made_by_dnssec_keygen_are_read_and_ds_matches(tmp_path: Path) -> None:
    keygen = need("dnssec-keygen")
    made = []
    for alg, extra in (("ECDSAP256SHA256", ["-f", "KSK"]), ("ED25519", [])):
        out = subprocess.run(
            [keygen, "-K", str(tmp_path), "-a", alg, *extra, "enum"],
            capture_output=True,
            text=True,
            check=True,
        )
        made.append(out.stdout.strip())
    keys = {k.base_name: k for k in read_keys(tmp_path)}
    assert sorted(keys) == sorted(made)
    for name, key in keys.items():
        ds = subprocess.run(
            [need("dnssec-dsfromkey"), "-2", str(tmp_path / f"{name}.key")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert key.ds_text().split() == ds
    assert {k.is_ksk for k in keys.values()} == {True, False}


def test_a_directory_without_keys_or_with_two_zones_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(DnssecError, match="no K"):
        KeySet.load(tmp_path)
    write_key(generate("enum"), tmp_path)
    write_key(generate("test"), tmp_path)
    with pytest.raises(DnssecError, match="several zones"):
        KeySet.load(tmp_path)


# -- signed answers -------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [13, ED25519])
def test_every_answer_and_denial_validates(tmp_path: Path, algorithm: int) -> None:
    view = signed_view(tmp_path, algorithm=algorithm)
    keys = dnskeys(view)
    for digits in NUMBERS:
        reply = ask(view, dotted(digits))
        assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
        assert reply.ednsflags & dns.flags.DO
        assert [r.rdtype for r in reply.answer] == [dns.rdatatype.NAPTR, dns.rdatatype.RRSIG]
        assert validate_all(reply, keys) == 1
        nodata = ask(view, dotted(digits), "TXT")
        assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
        assert validate_all(nodata, keys) == 2  # SOA and the name's own NSEC
        ((owner, _nxt),) = nsecs(nodata)
        assert owner == dns.name.from_text(dotted(digits))
    for name, rdtype in (("enum.", "SOA"), ("enum.", "NS"), ("enum.", "ANY")):
        assert validate_all(ask(view, name, rdtype), keys) >= 1


def test_without_do_nothing_is_signed(tmp_path: Path) -> None:
    view = signed_view(tmp_path)
    for name in (dotted(NUMBERS[0]), dotted("1234"), "enum."):
        reply = ask(view, name, do=False)
        assert all(r.rdtype not in (46, 47, 48) for r in (*reply.answer, *reply.authority))


def test_denials_cover_the_name_and_the_wildcard_and_no_served_name(tmp_path: Path) -> None:
    view = signed_view(tmp_path)
    keys = dnskeys(view)
    served = {dns.name.from_text(dotted(d)) for d in NUMBERS}
    # Nodes that exist without data: every proper prefix of a served number.
    terminals = {
        dns.name.from_text(dotted(d[:i])) for d in NUMBERS for i in range(1, len(d))
    } - served
    probes = [
        "1800935993",
        "18009359937",
        "1800935993599",
        "0",
        "9",
        "49",
        "493",
        "49301",
        "1555000123",
        "99999999999",
        "155500012345",
    ]
    for digits in probes:
        name = dns.name.from_text(dotted(digits))
        reply = ask(view, name.to_text())
        assert validate_all(reply, keys) >= 2
        spans = nsecs(reply)
        for owner, nxt in spans:  # too-broad denial: no served name inside a span
            assert not any(covers(owner, nxt, s) for s in served), (digits, owner, nxt)
        if name in terminals:
            assert reply.rcode() == dns.rcode.NOERROR, digits
            assert any(covers(o, n, name) and n.is_subdomain(name) for o, n in spans)
            continue
        assert reply.rcode() == dns.rcode.NXDOMAIN, digits
        assert any(covers(o, n, name) for o, n in spans)
        # the closest encloser's wildcard is denied too
        encloser = name.parent()
        while encloser != ORIGIN and encloser not in served and encloser not in terminals:
            encloser = encloser.parent()
        wildcard = dns.name.from_text("*", encloser)
        assert any(covers(o, n, wildcard) for o, n in spans), digits


def test_names_that_are_not_dotted_digits(tmp_path: Path) -> None:
    view = signed_view(tmp_path)
    keys = dnskeys(view)
    for name in ("foo.enum.", "a.8.1.enum.", "_sip.enum.", "-x.5.3.enum.", "*.enum."):
        reply = ask(view, name)
        assert reply.rcode() == dns.rcode.NXDOMAIN, name
        validate_all(reply, keys)
        assert any(covers(o, n, dns.name.from_text(name)) for o, n in nsecs(reply)), name
    # the compact one-label form is answered, unsigned (it is not in the signed zone)
    compact = ask(view, NUMBERS[0][::-1] + ".enum.")
    assert [r.rdtype for r in compact.answer] == [dns.rdatatype.NAPTR]


def test_sort_key_orders_as_dns_canonical_order() -> None:
    names = ["", "1", "18", "18*", "180", "19", "2"]
    wires = [dns.name.from_text(dotted(n) if n else "enum.") for n in names if "*" not in n]
    assert wires == sorted(wires)
    assert sort_key(b"\x011\x018") == ("81", 2)
    assert sort_key(b"\x03foo\x011") == ("1~", 1)
    assert sort_key(b"\x0253") is None  # compact
    chain = Chain(["", "18", "1800", "19"])
    assert chain.denial("180") == (True, [1])  # empty non-terminal
    exists, spans = chain.denial("17")
    assert not exists and spans == [0]


def test_updates_keep_the_chain_as_a_full_signing_makes_it(tmp_path: Path) -> None:
    view = signed_view(tmp_path)
    source = view.zones["enum"][1]
    assert isinstance(source, Source) and source.dnssec is not None
    zone = source.dnssec
    now_served = [*NUMBERS[1:], "180093599", "1", "4931"]
    source.answers.clear()
    source.answers.update(answers_of(now_served))
    zone.update(source.answers, set(NUMBERS) | set(now_served))
    fresh = SignedZone(zone.keyset)
    fresh.sign_all(source.answers, workers=1)
    assert zone.chain == fresh.chain
    assert set(zone.entries) == set(fresh.entries) == {b"", *source.answers}
    assert_same_nsecs(zone, fresh)
    keys = dnskeys(view)
    for digits in now_served:
        assert validate_all(ask(view, dotted(digits)), keys) == 1
    gone = ask(view, dotted(NUMBERS[0]))  # now an empty non-terminal (its extensions)
    assert gone.rcode() == dns.rcode.NOERROR and not gone.answer
    assert ask(view, dotted("4932")).rcode() == dns.rcode.NXDOMAIN


def test_parallel_signing_equals_one_process(tmp_path: Path) -> None:
    numbers = [f"1555{i:07d}" for i in range(0, 12000, 2)]
    directory = tmp_path / "keys"
    write_key(generate("enum"), directory)
    keyset = KeySet.load(directory)
    answers = answers_of(numbers)
    one, many = SignedZone(keyset), SignedZone(keyset)
    one.sign_all(answers, workers=1)
    many.sign_all(answers, workers=2)
    assert one.chain == many.chain
    assert set(one.entries) == set(many.entries) == {b"", *answers}
    assert len(many) == len(answers)
    view = GatewayView(zones={"enum": (ZoneSpec("enum"), Source(answers, many))})
    keys = dnskeys(view)
    for digits in numbers[::997]:
        assert validate_all(ask(view, dotted(digits)), keys) == 1
        assert validate_all(ask(view, dotted(digits[:-1] + "1")), keys) >= 2


def test_a_small_edns_size_truncates_a_signed_answer(tmp_path: Path) -> None:
    view = signed_view(tmp_path)
    query = dns.message.make_query(dotted(NUMBERS[0]), "NAPTR", want_dnssec=True, payload=512)
    # a number with many NAPTRs: its signed answer is over 512 bytes
    source = view.zones["enum"][1]
    assert isinstance(source, Source) and source.dnssec is not None
    big = b"".join(
        rr_bytes(Naptr(100, i, "u", "E2U+sip", f"!^.*$!sip:{'x' * 40}{i}@example.net!", ".", 600))
        for i in range(8)
    )
    source.answers[key_of(NUMBERS[0])] = big
    source.dnssec.update(source.answers, {NUMBERS[0]})
    source.generation += 1
    wire = respond(query.to_wire(), view, 1232)
    assert wire is not None and len(wire) <= 512
    reply = dns.message.from_wire(wire)
    assert reply.flags & dns.flags.TC
    assert len(respond(query.to_wire(), view, None) or b"") > 512  # TCP: whole


def test_keys_not_yet_active_are_published_only(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    write_key(generate("enum"), directory)
    later = generate("enum", ksk=False)
    later.activate = int(time.time()) + 86400
    write_key(later, directory)
    keyset = KeySet.load(directory)
    ksks, zsks = keyset.signers(time.time())
    assert [k.tag for k in zsks] == [k.tag for k in ksks]  # the CSK signs everything
    assert len(keyset.published(time.time())) == 2  # the new ZSK is pre-published
    assert keyset.signers(time.time() + 2 * 86400)[1] == [
        k for k in keyset.keys if k.tag == later.tag
    ]


# -- the commands ---------------------------------------------------------------------


def test_keygen_and_ds_commands(enumer: CliRunner, store_dir: Path) -> None:
    made = enumer("dnssec", "keygen", "--zone", "enum.enumer.org", "--algorithm", "15", "--split")
    assert made.returncode == 0, made.stderr
    names = made.stdout.split()
    assert len(names) == 2 and all(n.startswith("Kenum.enumer.org.+015+") for n in names)
    keys = store_dir / "dnssec"
    for name in names:
        assert stat.S_IMODE(os.stat(keys / f"{name}.private").st_mode) == 0o600
        assert (keys / f"{name}.private").read_text().split("PrivateKey: ")[1][:20] not in (
            made.stdout + made.stderr
        )
    ds = enumer("dnssec", "ds")
    assert ds.returncode == 0, ds.stderr
    ksk = next(k for k in read_keys(keys) if k.is_ksk)
    assert ksk.ds_text() in ds.stdout  # only the KSK: the parent's DS names it
    assert f'trust-anchor: "{ksk.ds_text()}"' in ds.stdout
    assert f'"enum.enumer.org." static-ds {ksk.tag} 15 2 ' in ds.stdout
    assert ds.stdout.count(" IN DS ") == 2  # the DS line and Unbound's anchor
    unbound = enumer("pbx", "unbound", "--dnssec", "--suffix", "enum.enumer.org")
    assert unbound.returncode == 0 and f'trust-anchor: "{ksk.ds_text()}"' in unbound.stdout
    assert "domain-insecure" not in unbound.stdout
    bind = enumer("pbx", "bind", "--dnssec", "--suffix", "enum.enumer.org")
    assert bind.returncode == 0 and "trust-anchors {" in bind.stdout
    assert "validate-except" not in bind.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("dnssec", "ds"), "no keys: "),
        (("dnssec", "keygen", "--zone", "en um"), "bad zone name"),
        (("dnssec", "keygen", "--zone", "..enum"), "bad zone name"),
        (("dnssec", "keygen", "--zone", "enum..org"), "bad zone name"),
        (("dnssec", "keygen", "--zone", "énum"), "bad zone name"),
        (("pbx", "unbound", "--dnssec"), "enumer dnssec keygen --zone ZONE makes them"),
        (("pbx", "asterisk", "--dnssec"), "only for bind and unbound"),
        (("serve", "--dnssec-keys", "/nonexistent"), "is not a directory"),
    ],
)
def test_command_errors_are_one_line(
    enumer: CliRunner, args: tuple[str, ...], message: str
) -> None:
    if args[0] == "serve":
        assert enumer("demo", "seed").returncode == 0
    result = enumer(*args)
    status = 2 if args[:2] == ("pbx", "asterisk") else 1
    if status == 2:
        assert result.returncode == 2 and message in result.stderr
        return
    assert message in assert_one_error_line(result, status)


def test_serve_refuses_keys_of_a_zone_it_does_not_serve(enumer: CliRunner, store_dir: Path) -> None:
    assert enumer("demo", "seed").returncode == 0
    assert enumer("dnssec", "keygen", "--zone", "other").returncode == 0
    result = enumer("serve", "--port", "0", "--dnssec-keys", str(store_dir / "dnssec"))
    assert "the keys sign other., not a served zone" in assert_one_error_line(result)


def test_random_updates_keep_every_nsec_as_a_full_signing_makes_it(tmp_path: Path) -> None:
    """Batches that add and drop numbers next to each other, prefixes and extensions
    among them: after each, every NSEC equals the one a full signing makes."""
    import random

    rng = random.Random(15)
    pool = [str(n) for n in range(1, 400)] + [f"18{n:03d}" for n in range(0, 60)]
    directory = tmp_path / "keys"
    write_key(generate("enum"), directory)
    keyset = KeySet.load(directory)
    served = set(rng.sample(pool, 80))
    answers = answers_of(sorted(served))
    zone = SignedZone(keyset)
    zone.sign_all(answers, workers=1)
    last = zone.snapshot()
    assert last.changed is None  # after a full signing: every entry is new
    for _ in range(25):
        touched = set(rng.sample(pool, rng.randint(1, 12)))
        for digits in touched:
            if digits in served:
                served.discard(digits)
                answers.pop(key_of(digits))
            else:
                served.add(digits)
                answers.update(answers_of([digits]))
        zone.update(answers, touched)
        fresh = SignedZone(keyset)
        fresh.sign_all(answers, workers=1)
        assert zone.chain == fresh.chain
        assert set(zone.entries) == set(fresh.entries) == {b"", *answers}
        assert_same_nsecs(zone, fresh)
        # a zone version made from the last one (the changed keys only) is a full copy
        # of the entries, and its step from the last is the one a full compare finds
        copy = zone.snapshot(last)
        assert copy.entries == dict(zone.entries.items()) and copy.changed is not None
        assert copy.changed >= {key_of(d) for d in touched}
        full = SignedSnapshot(copy.apex, dict(copy.entries))
        step, compared = signed_diff(last, copy, 10**6), signed_diff(last, full, 10**6)
        assert step is not None and compared is not None
        assert sorted(step.numbers) == sorted(compared.numbers) and step.numbers
        last = copy


def test_the_signed_master_file_reads_back_as_the_same_records(tmp_path: Path) -> None:
    """Our text of every RR (written without dnspython, for speed) is what dnspython
    reads back to the wire records of the zone."""
    from enumer.dns.zone import Apex, Origin, ZoneView, master_file

    view = signed_view(tmp_path)
    source = view.zones["enum"][1]
    assert isinstance(source, Source) and source.dnssec is not None
    zone_view = ZoneView(7, source.answers, signed=source.dnssec.snapshot())
    origin = Origin("enum.", ZoneSpec("enum"))
    apex = Apex(ns=("ns1.example.net.",))
    apex_rrs = signed_apex_rrs_for(zone_view, origin, apex)
    text = "".join(piece for piece, _ in master_file(zone_view, origin, apex, False, apex_rrs))
    parsed = dns.zone.from_text(text, origin="enum.", relativize=False, check_origin=True)
    wires = set()
    for name, node in parsed.nodes.items():
        for rdataset in node.rdatasets:
            for rdata in rdataset:
                wires.add((name, rdataset.rdtype, rdata.to_digestable(ORIGIN)))
    expected = set()
    for wire in zone_view.signed_rrs(origin, apex, apex_rrs):
        name, pos = dns.name.from_wire(wire, 0)
        rdtype, rdclass, _ttl, rdlen = struct.unpack_from(">HHIH", wire, pos)
        rdata = dns.rdata.from_wire(rdclass, rdtype, wire, pos + 10, rdlen)
        expected.add((name, rdtype, rdata.to_digestable(ORIGIN)))
    assert len(expected) == 8 + 4 * len(NUMBERS) and wires == expected


def signed_apex_rrs_for(view: object, origin: object, apex: object) -> list[bytes]:
    from enumer.dns.zone import signed_apex_rrs

    signed = view.signed  # type: ignore[attr-defined]
    return signed_apex_rrs(signed.apex, origin, apex, view.serial)  # type: ignore[arg-type,attr-defined]


def test_signed_entries_live_in_a_file_beside_the_table_and_outgrow_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signed entries are a flat table in an unlinked file in the answer table's
    directory (the heap holds none of them); changes that outgrow its free room move
    them to a new generation there, and every answer still validates."""
    directory = tmp_path / "keys"
    write_key(generate("enum"), directory)
    store = tmp_path / "store"
    store.mkdir()
    numbers = [f"1555{i:04d}" for i in range(40)]
    answers = FlatTable.create(store / "gateway.snapshot", answers_of(numbers).items())
    monkeypatch.setattr(flat, "MIN_ROOM", 4096)  # the signed entries' room: small
    zone = SignedZone(KeySet.load(directory))
    zone.sign_all(answers, workers=1)
    entries = zone.entries
    assert isinstance(entries, FlatTable) and entries.path is None
    assert entries.directory == store and entries.generation == 1
    assert f"{store}/enumer-table-" in Path("/proc/self/maps").read_text()
    for round_ in range(12):  # each re-signs every number: more than the free room
        for digits in numbers:
            uri = f"!^.*$!sip:{digits}-{round_}@example.net!"
            answers.put(key_of(digits), rr_bytes(Naptr(100, 10, "u", "E2U+sip", uri, ".", 600)))
        zone.update(answers, set(numbers))
    assert isinstance(zone.entries, FlatTable) and zone.entries.generation > 1
    assert zone.entries.directory == store
    assert sorted(p.name for p in store.iterdir()) == ["gateway.snapshot"]
    fresh = SignedZone(zone.keyset)
    fresh.sign_all(dict(answers.items()), workers=1)
    assert set(zone.entries) == set(fresh.entries) == {b"", *answers}
    assert_same_nsecs(zone, fresh)
    view = GatewayView(zones={"enum": (ZoneSpec("enum"), Source(dict(answers.items()), zone))})
    keys = dnskeys(view)
    for digits in numbers[::7]:
        assert validate_all(ask(view, dotted(digits)), keys) == 1


# -- signatures kept beside the table file: a restart signs nothing -----------------------


def signed_table(store_dir: Path, keys: Path, path: Path) -> AnswerTable:
    from enumer import demo
    from enumer.nvs.ledger import Ledger
    from enumer.resolver import Resolver
    from enumer.trust import TollFreeSource, TrustList

    resolver = Resolver(
        Ledger(store_dir),
        TrustList.from_text(demo.DEMO_VERIFIER),
        TollFreeSource.parse_list("@" + demo.DEMO_TOLLFREE),
    )
    table = AnswerTable(resolver, path=path)
    table.dnssec = SignedZone(KeySet.load(keys))
    return table


def validates_everything(table: AnswerTable) -> None:
    assert table.dnssec is not None
    source = Source(dict(table.answers.items()), table.dnssec)
    view = GatewayView(zones={"enum": (ZoneSpec("enum"), source)})
    keys = dnskeys(view)
    for key in source.answers:
        assert validate_all(ask(view, dotted(key[::-1].decode())), keys) == 1
    assert validate_all(ask(view, dotted("4930001")), keys) >= 2  # a signed NXDOMAIN


def test_signatures_kept_beside_the_snapshot_are_served_after_a_restart(tmp_path: Path) -> None:
    """Kept once after a signing, then changed and committed in place with the table:
    a restart serves them without signing; a change of keys or a file left in the
    middle of a change refuses them, and everything is signed again."""
    from enumer import demo
    from enumer.nvs.ledger import Ledger

    store_dir, keys, path = tmp_path / "store", tmp_path / "keys", tmp_path / "t.snapshot"
    demo.seed(Ledger(store_dir))
    write_key(generate("enum"), keys)
    table = signed_table(store_dir, keys, path)
    table.build(workers=1)
    table.save(path)
    assert table.dnssec is not None and table.dnssec.entries.path is None  # type: ignore[attr-defined]
    table.save_signed()
    kept = signed_path(path)
    assert kept.exists() and table.dnssec.entries.path == kept  # type: ignore[attr-defined]
    table.resolver.store.name_delete("enum:12025550100:0")  # a block: changed in place
    assert "12025550100" in table.refresh()
    assert key_of("12025550100") not in table.dnssec.entries
    entries = dict(table.dnssec.entries.items())
    del table
    gc.collect()  # the writer's lock goes with it

    again = signed_table(store_dir, keys, path)
    assert again.load(path), again.refused
    assert again.dnssec is not None and again.dnssec.not_reused == ""
    assert again.dnssec.seconds == 0.0 and dict(again.dnssec.entries.items()) == entries
    assert again.dnssec.chain == Chain.of_keys(again.answers)
    validates_everything(again)
    del again
    gc.collect()

    left = FlatTable.open(kept, writable=True)  # a change its writer never committed
    left.put(b"9", b"\x00\x00")
    del left
    gc.collect()
    broken = signed_table(store_dir, keys, path)
    assert broken.load(path)
    assert broken.dnssec is not None and "middle of a change" in broken.dnssec.not_reused
    validates_everything(broken)  # signed again
    broken.save_signed()
    del broken
    gc.collect()

    kept.write_bytes(os.urandom(3 * 4096))  # not a table file at all
    garbage = signed_table(store_dir, keys, path)
    assert garbage.load(path)
    assert garbage.dnssec is not None and "bad magic" in garbage.dnssec.not_reused
    validates_everything(garbage)
    garbage.save_signed()  # a good one again, for what follows
    del garbage
    gc.collect()

    write_key(generate("enum", ksk=False), keys)  # a new key: everything is signed again
    rekeyed = signed_table(store_dir, keys, path)
    assert rekeyed.load(path)
    assert rekeyed.dnssec is not None and rekeyed.dnssec.not_reused.startswith("the keys")
    validates_everything(rekeyed)
    del rekeyed
    gc.collect()
