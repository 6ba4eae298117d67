"""Zone transfers out of the gateway (SPEC 12): AXFR (RFC 5936), IXFR (RFC 1995), NOTIFY (RFC 1996).

``enumer serve`` is a hidden primary: standard secondaries (NSD, Knot, BIND)
take its zones by transfer and answer the PBXs.

* :class:`ZonePublisher` turns every change of an answer table into a zone
  version with a serial (:func:`enumer.dns.zone.next_serial`) and keeps the
  differences of the last K serials for IXFR; the table's SOA serial is set
  to it, so the gateway's own SOA answers agree with the transfers.
* :class:`TransferService` answers an AXFR/IXFR query that arrived on a TCP
  connection of the gateway, in that connection's thread: access by address
  list and TSIG (RFC 8945, via dnspython's ``dns.tsig``), REFUSED or NOTAUTH
  otherwise; a client that stops reading is dropped after a send timeout.
* :class:`Notifier` sends NOTIFY to the configured secondaries on every new
  serial, retrying until each one answers.

Transfers are built from raw bytes (the table's NAPTR RRs with a new owner);
dnspython only parses requests and signs (it is not on the query hot path).
"""

from __future__ import annotations

import ipaddress
import json
import os
import queue
import re
import select
import signal
import socket
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig

from enumer.dns.flat import copy_changed
from enumer.dns.signed import (
    SignedApex,
    SignedSnapshot,
    SignedStep,
    SignedZone,
    number_wire,
    signed_diff,
)
from enumer.dns.zone import (
    C_IN,
    T_NS,
    T_SOA,
    Apex,
    Origin,
    ZoneView,
    distinct_rrs,
    name_to_wire,
    next_serial,
    number_records,
    signed_apex_rrs,
    tollfree_records,
)

T_TSIG = 250
T_IXFR = 251
T_AXFR = 252
OPCODE_NOTIFY = 4
NOTAUTH = 9
REFUSED = 5
FORMERR = 1
NOTIMP = 4
SERVFAIL = 2

#: Bytes of RRs per transfer message (RFC 5936 allows up to 65535; smaller ones
#: let a secondary start parsing early and bound the memory of one message).
MESSAGE_BYTES = 16000
#: IXFR differences kept per zone mode unless the operator says otherwise.
DEFAULT_JOURNAL = 64
#: Seconds a transfer waits for a client to take more bytes before dropping it.
DEFAULT_SEND_TIMEOUT = 10.0
NOTIFY_PORT = 53
NOTIFY_TRIES = 5
NOTIFY_WAIT = 1.0  # seconds before the first retry; doubled each time


class XfrError(ValueError):
    """A bad transfer setting (``--xfr-allow``, ``--notify``, ``--tsig-key``), one line."""


# -- persisted serials ----------------------------------------------------------------


@dataclass
class ZoneState:
    """The last published serial of a zone mode and its content digest, kept in the store.

    A restart at the same height with the same content keeps the serial (no
    needless AXFR); a restart at a height that did not pass the last serial
    with a different content (a re-organisation) takes the next serial, so
    secondaries never see a serial go back.
    """

    path: Path | None
    serial: int | None = None
    digest: str = ""

    @classmethod
    def load(cls, store: Path | None, verified: bool) -> ZoneState:
        if store is None:
            return cls(None)
        path = store / f"zone-{'verified' if verified else 'unsigned'}.serial"
        try:
            data = json.loads(path.read_text())
            return cls(path, int(data["serial"]), str(data["digest"]))
        except (OSError, ValueError, KeyError, TypeError):
            return cls(path)

    def save(self) -> None:
        if self.path is None or self.serial is None:
            return
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({"serial": self.serial, "digest": self.digest}))
            os.replace(tmp, self.path)
        except OSError:
            pass  # read-only store: serials still grow with the height


class TableLike(Protocol):
    """What the publisher reads of an :class:`enumer.dns.table.AnswerTable`."""

    @property
    def answers(self) -> Mapping[bytes, bytes]: ...

    generation: int
    serial: int
    synced_height: int
    changed_keys: list[bytes] | None
    _lock: threading.Lock
    _tollfree: Any


def _digest_sum(answers: Mapping[bytes, bytes]) -> int:
    total = 0
    for key, rrs in answers.items():
        total += zlib.crc32(rrs, zlib.crc32(key + b"\0"))
    return total & 0xFFFFFFFFFFFF


def _digest(count: int, total: int, tollfree: Iterable[tuple[bytes, bytes]]) -> str:
    extra = b"".join(sorted(o + b"\0" + r for o, r in tollfree))
    return f"{count}:{total:x}:{zlib.crc32(extra):x}"


def _snapshot(
    table: TableLike,
    last: dict[bytes, bytes] | None = None,
    last_signed: SignedSnapshot | None = None,
) -> tuple[dict[bytes, bytes], int, Any, SignedSnapshot | None, set[bytes] | None]:
    """The table's answers as a dict of their own (transfers must not see later
    changes), its height, toll-free entries and signed side, and the keys changed
    since ``last`` (None: compare them all).

    With ``last``, the previous version this publisher took of the same table,
    only the keys the table logged since then are read again: a block of k
    changes costs a C-level dict copy and k lookups, not a walk of the table
    (``last_signed``: the same for the signed side).
    """
    with table._lock:  # refresh holds it: a copy never sees half a block
        signed = getattr(table, "dnssec", None)
        keys = table.changed_keys
        table.changed_keys = []  # log from here on, for the next version
        changed: set[bytes] | None = None
        if last is None or keys is None:
            answers = dict(table.answers.items())
        else:
            changed = set(keys)
            answers = copy_changed(last, table.answers, changed)
        return (
            answers,
            table.synced_height,
            table._tollfree,
            signed.snapshot(last_signed) if isinstance(signed, SignedZone) else None,
            changed,
        )


def capture(table: TableLike, state: ZoneState, expand_regexp: bool) -> ZoneView:
    """The table's zone now, with the serial the state says (for export and a first start)."""
    answers, height, tollfree, signed, _ = _snapshot(table)
    tf = tollfree_records(answers, tollfree.entries, expand_regexp)
    digest = _digest(len(answers), _digest_sum(answers), tf.records)
    if state.serial is not None and digest == state.digest and height <= state.serial:
        serial = state.serial
    else:
        serial = next_serial(state.serial, height)
    return ZoneView(serial, answers, tuple(tf.records), tuple(tf.left_out), signed)


# -- versions and the IXFR journal --------------------------------------------------


@dataclass(frozen=True)
class Step:
    """The difference from serial ``old`` to ``new``: per number the old and new RRs."""

    old: int
    new: int
    numbers: tuple[tuple[bytes, bytes | None, bytes | None], ...]
    tollfree_removed: tuple[tuple[bytes, bytes], ...]
    tollfree_added: tuple[tuple[bytes, bytes], ...]
    #: The change of the signed zone (the keys' origin); None: only a whole zone will do.
    signed: SignedStep | None = None


@dataclass
class Published:
    """The current version of one zone mode and the steps that led to it."""

    view: ZoneView
    steps: deque[Step]
    digest_total: int
    generation: int
    table_id: int

    def steps_from(self, serial: int) -> list[Step] | None:
        """The steps from ``serial`` to now, or None when it is not in the journal."""
        chain = list(self.steps)
        for i, step in enumerate(chain):
            if step.old == serial:
                return chain[i:]
        return None


class ZonePublisher:
    """Versions of the zone of each table, their serials and the IXFR journal.

    ``poll()`` runs in the publisher's own thread: it compares a table's
    generation, and on a change copies the answers (under the table's lock)
    and diffs them against the last version, so queries never wait for it.
    """

    def __init__(
        self,
        tables: Callable[[], Mapping[bool, TableLike]],
        store: Path | None,
        *,
        keep: int = DEFAULT_JOURNAL,
        expand_regexp: bool = False,
        on_change: Callable[[bool, int], None] | None = None,
        log: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.tables = tables
        self.store = store
        self.keep = keep
        self.expand_regexp = expand_regexp
        self.on_change = on_change
        self.log = log
        self.published: dict[bool, Published] = {}
        self._states: dict[bool, ZoneState] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self, verified: bool) -> Published | None:
        return self.published.get(verified)

    def serial(self, verified: bool) -> int | None:
        found = self.published.get(verified)
        return found.view.serial if found else None

    def poll(self) -> list[bool]:
        """Publish a new version of every table that changed; returns the modes published."""
        changed = []
        for verified, table in list(self.tables().items()):
            with self._lock:
                if self._publish(verified, table):
                    changed.append(verified)
        for verified in changed:
            serial = self.published[verified].view.serial
            if self.on_change is not None:
                self.on_change(verified, serial)
        return changed

    def _publish(self, verified: bool, table: TableLike) -> bool:
        last = self.published.get(verified)
        if last is not None and last.table_id == id(table) and last.generation == table.generation:
            if table.serial != last.view.serial:
                table.serial = last.view.serial  # the table reset it to its height
            return False
        generation = table.generation
        state = self._states.get(verified)
        if state is None:
            state = self._states[verified] = ZoneState.load(self.store, verified)
        if last is None:
            view = capture(table, state, self.expand_regexp)
            total = _digest_sum(view.answers)
            published = Published(view, deque(maxlen=self.keep), total, generation, id(table))
        else:
            same_table = last.table_id == id(table)
            old = last.view.answers
            answers, height, tollfree, signed, changed = _snapshot(
                table, old if same_table else None, last.view.signed if same_table else None
            )
            tf = tollfree_records(answers, tollfree.entries, self.expand_regexp)
            total = last.digest_total
            numbers: list[tuple[bytes, bytes | None, bytes | None]] = []
            for key in sorted(changed) if changed is not None else answers:
                rrs = answers.get(key)
                before = old.get(key)
                if rrs is not None and before is not rrs and before != rrs:
                    numbers.append((key, before, rrs))
                    total += zlib.crc32(rrs, zlib.crc32(key + b"\0"))
                    if before is not None:
                        total -= zlib.crc32(before, zlib.crc32(key + b"\0"))
                elif rrs is None and before is not None:
                    numbers.append((key, before, None))
                    total -= zlib.crc32(before, zlib.crc32(key + b"\0"))
            if changed is None and (len(answers) != len(old) or numbers):
                for key, before in old.items():
                    if key not in answers:
                        numbers.append((key, before, None))
                        total -= zlib.crc32(before, zlib.crc32(key + b"\0"))
            total &= 0xFFFFFFFFFFFF
            old_tf = set(last.view.tollfree)
            new_tf = set(tf.records)
            serial = next_serial(last.view.serial, height)
            signed_step = None
            if last.view.signed is not None and signed is not None:
                # past a few thousand numbers (a full re-signing), a whole zone is better
                limit = max(1000, len(signed.entries) // 4)
                signed_step = signed_diff(last.view.signed, signed, limit)
            step = Step(
                last.view.serial,
                serial,
                tuple(numbers),
                tuple(sorted(old_tf - new_tf)),
                tuple(sorted(new_tf - old_tf)),
                signed_step,
            )
            view = ZoneView(serial, answers, tuple(tf.records), tuple(tf.left_out), signed)
            steps = last.steps
            steps.append(step)
            published = Published(view, steps, total, generation, id(table))
            if last.view.left_out != view.left_out:
                for reason in view.left_out:
                    self.log(f"toll-free entry left out of the zone: {reason}")
        self.published[verified] = published
        table.serial = published.view.serial
        signed_zone = getattr(table, "dnssec", None)
        if isinstance(signed_zone, SignedZone):  # sign the new SOA now, not on a query
            signed_zone.presign_soa(table.serial)
        state.serial = published.view.serial
        state.digest = _digest(len(view.answers), published.digest_total, view.tollfree)
        state.save()
        if last is None:
            for reason in view.left_out:
                self.log(f"toll-free entry left out of the zone: {reason}")
        return True

    # -- thread ------------------------------------------------------------------
    def start(self, interval: float = 0.1) -> None:
        self.poll()
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="enumer-zone", daemon=True
        )
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.poll()
            except Exception as exc:  # keep the last published version
                self.log(f"zone publisher: {exc!r}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


# -- access: addresses, TSIG keys ---------------------------------------------------

_KEY_STATEMENT = re.compile(
    r'key\s+"?([A-Za-z0-9._-]+)"?\s*\{(.*?)\}\s*;', re.DOTALL | re.IGNORECASE
)
_KEY_FIELD = re.compile(r'(algorithm|secret)\s+"?([^";\s]+)"?\s*;', re.IGNORECASE)


def read_tsig_keys(path: Path) -> dict[dns.name.Name, dns.tsig.Key]:
    """TSIG keys from a file in BIND's ``key`` statement format (``tsig-keygen``'s output)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise XfrError(f"--tsig-key: cannot read {path}: {exc}") from None
    text = re.sub(r"(#|//)[^\n]*", "", text)
    keys: dict[dns.name.Name, dns.tsig.Key] = {}
    for name, body in _KEY_STATEMENT.findall(text):
        fields = {k.lower(): v for k, v in _KEY_FIELD.findall(body)}
        if "secret" not in fields:
            raise XfrError(f"--tsig-key: key {name} in {path} has no secret")
        algorithm = fields.get("algorithm", "hmac-sha256").lower()
        if algorithm not in ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224"):
            raise XfrError(f"--tsig-key: key {name}: unsupported algorithm {algorithm}")
        try:
            key = dns.tsig.Key(name, fields["secret"], algorithm)
        except Exception:
            raise XfrError(f"--tsig-key: key {name}: the secret is not base64") from None
        keys[key.name] = key
    if not keys:
        raise XfrError(f"--tsig-key: no 'key \"NAME\" {{ algorithm ...; secret ...; }};' in {path}")
    return keys


@dataclass(frozen=True)
class AccessList:
    """``--xfr-allow``: networks and key names allowed to transfer (nothing when empty)."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    keys: frozenset[dns.name.Name] = frozenset()

    @classmethod
    def parse(
        cls, items: Iterable[str], known: dict[dns.name.Name, dns.tsig.Key] | None = None
    ) -> AccessList:
        networks = []
        keys = set()
        for raw in items:
            for item in (i.strip() for i in raw.split(",")):
                if not item:
                    continue
                if item.lower().startswith("key:"):
                    name = dns.name.from_text(item[4:])
                    if not known or name not in known:
                        raise XfrError(f"--xfr-allow: {item}: no such key in --tsig-key")
                    keys.add(name)
                    continue
                try:
                    networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    raise XfrError(
                        f"--xfr-allow: {item!r} is neither an address/CIDR nor key:NAME"
                    ) from None
        return cls(tuple(networks), frozenset(keys))

    def allows(self, address: str, key: dns.name.Name | None) -> bool:
        if key is not None and key in self.keys:
            return True
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.networks)

    def __bool__(self) -> bool:
        return bool(self.networks or self.keys)


def parse_target(text: str) -> tuple[str, int]:
    """``--notify ADDR[:PORT]`` (``[::1]:53`` for IPv6) -> (address, port)."""
    text = text.strip()
    host, port = text, NOTIFY_PORT
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise XfrError(f"--notify: bad port in {text!r}")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        if not p.isdigit():
            raise XfrError(f"--notify: bad port in {text!r}")
        port = int(p)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise XfrError(f"--notify: {host!r} is not an IP address") from None
    if not 0 < port < 65536:
        raise XfrError(f"--notify: port out of range in {text!r}")
    return host, port


# -- wire building -----------------------------------------------------------------


def _soa_rr(apex: Apex, origin: Origin, serial: int) -> bytes:
    rdata = apex.soa_rdata(origin.name, serial)
    return b"\xc0\x0c" + struct.pack(">HHIH", T_SOA, C_IN, apex.soa_ttl, len(rdata)) + rdata


def _ns_rrs(apex: Apex, origin: Origin) -> list[bytes]:
    out = []
    for ns in apex.ns_names(origin.name):
        rdata = name_to_wire(ns)
        out.append(b"\xc0\x0c" + struct.pack(">HHIH", T_NS, C_IN, apex.ns_ttl, len(rdata)) + rdata)
    return out


def _owned(owner: bytes, rrs: bytes) -> Iterator[bytes]:
    """The RRs of one owner, with the owner as labels + pointer to the question (the origin)."""
    head = owner + b"\xc0\x0c"
    for rr in distinct_rrs(rrs):
        yield head + rr


class Signer:
    """TSIG for the messages of one response (RFC 8945 5.3.1: each message signed, chained)."""

    def __init__(self, key: dns.tsig.Key, request_mac: bytes, original_id: int) -> None:
        self.key = key
        self.request_mac = request_mac
        self.original_id = original_id
        self.ctx: Any = None
        self.first = True

    def sign(self, wire: bytes) -> bytes:
        rdata = dns.rdtypes.ANY.TSIG.TSIG(  # type: ignore[no-untyped-call]
            dns.rdataclass.ANY,
            dns.rdatatype.TSIG,
            self.key.algorithm,
            0,
            300,
            b"",
            self.original_id,
            0,
            b"",
        )
        tsig, self.ctx = dns.tsig.sign(  # type: ignore[no-untyped-call]
            wire,
            self.key,
            rdata,
            int(time.time()),
            self.request_mac if self.first else None,
            self.ctx,
            multi=True,
        )
        self.first = False
        body: bytes = tsig.to_wire()
        owner: bytes = self.key.name.to_wire() or b""
        rr = owner + struct.pack(">HHIH", T_TSIG, 255, 0, len(body)) + body
        ar = struct.unpack_from(">H", wire, 10)[0] + 1
        return wire[:10] + struct.pack(">H", ar) + wire[12:] + rr


def messages(
    query_id: int, question: bytes, rrs: Iterable[bytes], signer: Signer | None
) -> Iterator[bytes]:
    """Transfer messages (without the TCP length) carrying ``rrs`` in order."""
    batch: list[bytes] = []
    size = 0

    def one() -> bytes:
        head = struct.pack(">HBBHHHH", query_id, 0x84, 0, 1, len(batch), 0, 0)
        wire = head + question + b"".join(batch)
        return signer.sign(wire) if signer is not None else wire

    for rr in rrs:
        if size + len(rr) > MESSAGE_BYTES and batch:
            yield one()
            batch, size = [], 0
        batch.append(rr)
        size += len(rr)
    yield one()


def axfr_rrs(
    view: ZoneView,
    origin: Origin,
    apex: Apex,
    compact: bool,
    signed_apex: list[bytes] | None = None,
) -> Iterator[bytes]:
    """SOA, NS, every record, SOA (RFC 5936 2.2); the signed zone for the keys' origin
    (``signed_apex``: its apex records as signed for this version)."""
    if view.signed_for(origin) is not None:
        first = None
        for rr in view.signed_rrs(origin, apex, signed_apex):
            first = first or rr
            yield rr
        assert first is not None
        yield first
        return
    soa = _soa_rr(apex, origin, view.serial)
    yield soa
    yield from _ns_rrs(apex, origin)
    for owner, rrs in view.records(origin.spec, compact):
        yield from _owned(owner, rrs)
    yield soa


def signed_ixfr_rrs(
    published: Published,
    steps: list[Step],
    origin: Origin,
    apex_of: Callable[[int, SignedApex], list[bytes]],
) -> Iterator[bytes]:
    """The IXFR of a signed zone: per step, the old apex records (SOA first) and the old
    RRs of each changed number deleted, the new ones added (RFC 1995 4).  ``apex_of``
    gives a version's apex records exactly as they were sent before."""
    current = published.view.signed
    assert current is not None
    head = apex_of(published.view.serial, current.apex)[0]
    yield head
    for step in steps:
        change = step.signed
        assert change is not None
        yield from apex_of(step.old, change.old)
        for key, before, _after in change.numbers:
            if before is not None:
                yield from number_wire(origin.wire, key, before)
        yield from apex_of(step.new, change.new)
        for key, _before, after in change.numbers:
            if after is not None:
                yield from number_wire(origin.wire, key, after)
    yield head


def ixfr_rrs(
    published: Published, steps: list[Step], origin: Origin, apex: Apex, compact: bool
) -> Iterator[bytes]:
    """SOA(new), then per step SOA(old) deletions SOA(new) additions, then SOA(new) (RFC 1995 4)."""
    cap = origin.spec.max_digits
    current = _soa_rr(apex, origin, published.view.serial)
    yield current
    for step in steps:
        yield _soa_rr(apex, origin, step.old)
        for key, before, _after in step.numbers:
            if len(key) <= cap:
                for owner, rrs in number_records(key, before, compact):
                    yield from _owned(owner, rrs)
        for owner, rrs in step.tollfree_removed:
            yield from _owned(owner, rrs)
        yield _soa_rr(apex, origin, step.new)
        for key, _before, after in step.numbers:
            if len(key) <= cap:
                for owner, rrs in number_records(key, after, compact):
                    yield from _owned(owner, rrs)
        for owner, rrs in step.tollfree_added:
            yield from _owned(owner, rrs)
    yield current


# -- serving ------------------------------------------------------------------------


def is_transfer(query: bytes) -> bool:
    """Whether a TCP query asks for AXFR or IXFR (a plain QUERY with one question)."""
    if len(query) < 17 or query[2] & 0xF8 or query[4:6] != b"\x00\x01":
        return False
    pos = 12
    n = len(query)
    while pos < n and query[pos]:
        if query[pos] > 63:
            return False
        pos += query[pos] + 1
    if pos + 5 > n:
        return False
    qtype = (query[pos + 1] << 8) | query[pos + 2]
    return qtype in (T_AXFR, T_IXFR)


def tsig_start(query: bytes) -> int:
    """Offset of the TSIG RR that ends ``query`` (RFC 8945: the last additional RR), or -1."""
    if len(query) < 12 or query[10:12] == b"\x00\x00":
        return -1
    counts = struct.unpack_from(">HHHH", query, 4)
    pos = 12
    n = len(query)

    def skip_name(pos: int) -> int:
        while pos < n:
            ln = query[pos]
            if ln == 0:
                return pos + 1
            if ln >= 0xC0:
                return pos + 2
            pos += ln + 1
        return -1

    for _ in range(counts[0]):
        pos = skip_name(pos)
        if pos < 0:
            return -1
        pos += 4
    start = -1
    for _ in range(counts[1] + counts[2] + counts[3]):
        start = pos
        pos = skip_name(pos)
        if pos < 0 or pos + 10 > n:
            return -1
        rtype = (query[pos] << 8) | query[pos + 1]
        pos += 10 + ((query[pos + 8] << 8) | query[pos + 9])
        if rtype == T_TSIG:
            return start if pos == n else -1
    return -1


def _error(query: bytes, rcode: int, question: bytes = b"") -> bytes:
    flags1 = 0x80 | (query[2] & 0x79)
    return struct.pack(">2sBBHHHH", query[:2], flags1, rcode, 1 if question else 0, 0, 0, 0) + (
        question
    )


def yield_cpu() -> str:
    """Put this process behind every normal one for the CPU; returns how.

    ``SCHED_IDLE`` (Linux) runs it only on CPU time no other process wants;
    elsewhere the lowest nice value is the closest there is.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "idle"
    except (AttributeError, OSError):
        try:
            os.nice(19)
            return "nice"
        except OSError:
            return "normal"


class ForkedStream:
    """A whole-zone transfer written by a forked child process.

    Building a million-number AXFR is seconds of Python; in a thread it would
    hold the GIL the UDP loop needs.  The child (a copy-on-write snapshot of
    the published version) writes the messages to the connection and reports
    what it sent through a pipe; the connection's thread waits without the GIL.

    The child runs in the kernel's idle scheduling class (:func:`yield_cpu`):
    queries come first, and a transfer takes the CPU the gateway leaves.  A
    secondary keeps serving its copy while it waits, so a slower transfer
    under load costs nobody an answer; a transfer that steals a core from the
    query loop would.
    """

    def __init__(self, stream: Iterator[bytes]) -> None:
        self.stream = stream
        self.count = 0
        self.size = 0

    def run(self, conn: socket.socket) -> None:
        """Send everything; raises TimeoutError when the client stopped reading."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: no logging, no locks, only the socket
            status = 1
            try:
                os.close(r)
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(signum, signal.SIG_DFL)
                yield_cpu()
                ok = 1
                try:
                    for wire in self.stream:
                        conn.sendall(len(wire).to_bytes(2, "big") + wire)
                        self.count += 1
                        self.size += len(wire)
                except OSError:
                    ok = 0
                os.write(w, struct.pack(">QQB", self.count, self.size, ok))
                status = 0
            finally:
                os._exit(status)
        os.close(w)
        report = b""
        with os.fdopen(r, "rb") as pipe:
            report = pipe.read()
        os.waitpid(pid, 0)
        ok = 0
        if len(report) == 17:
            self.count, self.size, ok = struct.unpack(">QQB", report)
        if not ok:
            raise TimeoutError("the client stopped reading")


@dataclass
class PeerRecord:
    """What a secondary last took: for the metrics and the operator's log."""

    zone: str
    kind: str
    serial: int
    at: float
    messages: int
    nbytes: int


@dataclass
class TransferService:
    """Answers AXFR/IXFR on a gateway TCP connection (call :meth:`serve` from its thread)."""

    publisher: ZonePublisher
    origins: list[Origin]
    apex: Apex
    allow: AccessList
    keys: dict[dns.name.Name, dns.tsig.Key] = field(default_factory=dict)
    compact: bool = False
    send_timeout: float = DEFAULT_SEND_TIMEOUT
    log: Callable[[str], None] = lambda _m: None
    peers: dict[tuple[str, str], PeerRecord] = field(default_factory=dict)
    #: Stream whole zones from a forked child (no GIL shared with the query threads).
    fork: bool = hasattr(os, "fork")
    transfers: dict[str, int] = field(default_factory=dict)  # (kind|refused...) -> count
    #: The signed apex records sent per (origin, serial): a later IXFR deletes exactly these.
    signed_apexes: dict[tuple[str, int], list[bytes]] = field(default_factory=dict)

    def signed_apex(self, origin: Origin, serial: int, signed: SignedApex) -> list[bytes]:
        """The apex records of the signed ``origin`` at ``serial``, signed once."""
        found = self.signed_apexes.get((origin.name, serial))
        if found is None:
            if len(self.signed_apexes) > 4 * DEFAULT_JOURNAL:
                self.signed_apexes.clear()  # the journal no longer reaches those serials
            found = signed_apex_rrs(signed, origin, self.apex, serial)
            self.signed_apexes[(origin.name, serial)] = found
        return found

    def _count(self, what: str) -> None:
        self.transfers[what] = self.transfers.get(what, 0) + 1

    def _origin(self, qname: dns.name.Name) -> Origin | None:
        text = qname.to_text().lower()
        for origin in self.origins:
            if origin.name == text:
                return origin
        return None

    def signed_answer(self, query: bytes, respond: Callable[[bytes], bytes | None]) -> bytes | None:
        """The answer to a TSIG-signed query that is not a transfer (a secondary's SOA
        probe), signed with the same key; None when the query carries no TSIG.

        ``respond`` answers the query without its TSIG, as the gateway does.
        """
        start = tsig_start(query)
        if start < 0:
            return None
        end = 12
        while end < len(query) and query[end]:
            end += query[end] + 1
        question = query[12 : end + 5] if query[4:6] == b"\x00\x01" else b""
        try:
            msg = dns.message.from_wire(query, keyring=self.keys or None)
        except (dns.message.UnknownTSIGKey, dns.tsig.BadSignature, dns.tsig.BadKey) as exc:
            self.log(f"signed query: TSIG {type(exc).__name__}: NOTAUTH")
            return _error(query, NOTAUTH, question)
        except (dns.tsig.BadTime, dns.tsig.BadAlgorithm) as exc:
            self.log(f"signed query: TSIG {type(exc).__name__}: NOTAUTH")
            return _error(query, NOTAUTH, question)
        except (dns.exception.DNSException, ValueError, IndexError, struct.error):
            return None  # malformed: the gateway's own answer (FORMERR)
        if not msg.had_tsig or msg.keyname is None:
            return None
        ar = struct.unpack_from(">H", query, 10)[0] - 1
        plain = query[:10] + struct.pack(">H", ar) + query[12:start]
        answer = respond(plain)
        if answer is None:
            return None
        return Signer(self.keys[msg.keyname], msg.mac or b"", msg.id).sign(answer)

    def serve(self, conn: socket.socket, addr: tuple[str, int], query: bytes) -> None:
        """Answer one transfer request on ``conn``; raises OSError when the client is gone."""
        sent = 0
        try:
            for item in self._answer(query, addr[0]):
                conn.settimeout(self.send_timeout)
                if isinstance(item, ForkedStream):
                    try:
                        item.run(conn)
                    finally:
                        sent += item.count
                    continue
                conn.sendall(len(item).to_bytes(2, "big") + item)
                sent += 1
        except OSError as exc:
            self._count("abandoned")
            reason = "stopped reading" if isinstance(exc, TimeoutError) else str(exc)
            self.log(f"transfer to {addr[0]} abandoned after {sent} message(s): {reason}")
            raise

    def _answer(self, query: bytes, address: str) -> Iterator[bytes | ForkedStream]:
        end = 12
        while end < len(query) and query[end]:
            end += query[end] + 1
        question = query[12 : end + 5]
        try:
            msg = dns.message.from_wire(query, keyring=self.keys or None)
        except (dns.message.UnknownTSIGKey, dns.tsig.BadSignature, dns.tsig.BadKey) as exc:
            self._count("notauth")
            self.log(f"transfer from {address}: TSIG {type(exc).__name__}: NOTAUTH")
            yield _error(query, NOTAUTH, question)
            return
        except (dns.tsig.BadTime, dns.tsig.BadAlgorithm) as exc:
            self._count("notauth")
            self.log(f"transfer from {address}: TSIG {type(exc).__name__}: NOTAUTH")
            yield _error(query, NOTAUTH, question)
            return
        except (dns.exception.DNSException, ValueError, IndexError, struct.error):
            self._count("formerr")
            yield _error(query, FORMERR, question)
            return
        q = msg.question[0]
        kind = "AXFR" if q.rdtype == T_AXFR else "IXFR"
        origin = self._origin(q.name) if q.rdclass == C_IN else None
        key_name = msg.keyname if msg.had_tsig else None
        if origin is None:
            self._count("refused")
            self.log(f"{kind} of {q.name} from {address}: not a served zone: REFUSED")
            yield _error(query, NOTAUTH if msg.had_tsig else REFUSED, question)
            return
        if not self.allow.allows(address, key_name):
            self._count("refused")
            self.log(f"{kind} of {origin.name} from {address}: not allowed: REFUSED")
            yield _error(query, REFUSED, question)
            return
        published = self.publisher.current(origin.spec.verified)
        if published is None:
            yield _error(query, SERVFAIL, question)
            return
        client_serial: int | None = None
        if kind == "IXFR":
            soas = [r for r in msg.authority if r.rdtype == T_SOA]
            if len(soas) != 1 or len(soas[0]) != 1 or soas[0].name != q.name:
                self._count("formerr")
                self.log(f"IXFR of {origin.name} from {address}: no client SOA: FORMERR")
                yield _error(query, FORMERR, question)
                return
            client_serial = int(soas[0][0].serial)
        signer = None
        if msg.had_tsig and key_name is not None:
            signer = Signer(self.keys[key_name], msg.mac or b"", msg.id)
        view = published.view
        rrs: Iterable[bytes]
        if client_serial is not None and client_serial == view.serial:
            kind, rrs = "IXFR-current", [_soa_rr(self.apex, origin, view.serial)]
        else:
            steps = published.steps_from(client_serial) if client_serial is not None else None
            signed = view.signed_for(origin)
            if signed is not None and steps is not None:
                if any(step.signed is None for step in steps):
                    steps = None  # a full re-signing on the way: the whole zone is sent
                else:
                    rrs = signed_ixfr_rrs(
                        published,
                        steps,
                        origin,
                        lambda serial, apex: self.signed_apex(origin, serial, apex),
                    )
            elif steps is not None:
                rrs = ixfr_rrs(published, steps, origin, self.apex, self.compact)
            if steps is None:
                if kind == "IXFR":
                    kind = "IXFR-as-AXFR"
                apex_rrs = (
                    self.signed_apex(origin, view.serial, signed.apex) if signed else None
                )  # signed here, not in a forked child: a later IXFR deletes these
                rrs = axfr_rrs(view, origin, self.apex, self.compact, apex_rrs)
        count = 0
        size = 0
        started = time.monotonic()
        stream = messages(msg.id, question, rrs, signer)
        if self.fork and kind in ("AXFR", "IXFR-as-AXFR"):
            forked = ForkedStream(stream)
            yield forked
            count, size = forked.count, forked.size
        else:
            for wire in stream:
                count += 1
                size += len(wire)
                yield wire
        self._count(kind)
        self.peers[(address, origin.name)] = PeerRecord(
            origin.name, kind, view.serial, time.time(), count, size
        )
        self.log(
            f"{kind} of {origin.name} serial {view.serial} to {address}"
            + (f" (from serial {client_serial})" if client_serial is not None else "")
            + f": {count} message(s), {size} bytes, {time.monotonic() - started:.2f}s"
        )


# -- NOTIFY --------------------------------------------------------------------------


def notify_message(query_id: int, origin: Origin, apex: Apex, serial: int) -> bytes:
    """NOTIFY (opcode 4, AA) for ``origin`` with its new SOA in the answer (RFC 1996 3.7)."""
    question = origin.wire + struct.pack(">HH", T_SOA, C_IN)
    head = struct.pack(">HBBHHHH", query_id, (OPCODE_NOTIFY << 3) | 0x04, 0, 1, 1, 0, 0)
    return head + question + _soa_rr(apex, origin, serial)


class Notifier:
    """Sends NOTIFY for each new serial to every target, retrying until it is answered."""

    def __init__(
        self,
        targets: list[tuple[str, int]],
        apex: Apex,
        log: Callable[[str], None] = lambda _m: None,
        tries: int = NOTIFY_TRIES,
        wait: float = NOTIFY_WAIT,
    ) -> None:
        self.targets = targets
        self.apex = apex
        self.log = log
        self.tries = tries
        self.wait = wait
        self.acknowledged: dict[tuple[str, int, str], int] = {}
        self._queue: queue.Queue[tuple[list[Origin], int] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def notify(self, origins: list[Origin], serial: int) -> None:
        self._queue.put((origins, serial))

    def start(self) -> None:
        if self.targets:
            self._thread = threading.Thread(target=self._run, name="enumer-notify", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            # Only the newest serial matters: a secondary fetches everything up to it.
            while not self._queue.empty():
                newer = self._queue.get()
                if newer is None:
                    return
                item = newer
            origins, serial = item
            try:
                self._send_all(origins, serial)
            except OSError as exc:
                self.log(f"NOTIFY failed: {exc}")

    def _send_all(self, origins: list[Origin], serial: int) -> None:
        socks: dict[int, socket.socket] = {}
        pending: dict[int, tuple[str, int, Origin, bytes]] = {}
        try:
            for host, port in self.targets:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                if family not in socks:
                    socks[family] = socket.socket(family, socket.SOCK_DGRAM)
                for origin in origins:
                    qid = int.from_bytes(os.urandom(2), "big")
                    while qid in pending:
                        qid = (qid + 1) & 0xFFFF
                    wire = notify_message(qid, origin, self.apex, serial)
                    pending[qid] = (host, port, origin, wire)
            wait = self.wait
            for attempt in range(self.tries):
                for host, port, _origin, wire in list(pending.values()):
                    family = socket.AF_INET6 if ":" in host else socket.AF_INET
                    try:
                        socks[family].sendto(wire, (host, port))
                    except OSError as exc:
                        self.log(f"NOTIFY to {host}:{port}: {exc}")
                deadline = time.monotonic() + wait
                while pending and time.monotonic() < deadline:
                    ready, _, _ = select.select(
                        list(socks.values()), [], [], max(0.0, deadline - time.monotonic())
                    )
                    for sock in ready:
                        try:
                            data, _peer = sock.recvfrom(4096)
                        except OSError:
                            continue
                        if len(data) < 12 or not data[2] & 0x80:
                            continue
                        qid = int.from_bytes(data[:2], "big")
                        found = pending.pop(qid, None)
                        if found is not None:
                            host, port, origin, _ = found
                            self.acknowledged[(host, port, origin.name)] = serial
                if not pending:
                    return
                wait *= 2
                if attempt + 1 < self.tries:
                    self.log(f"NOTIFY serial {serial}: {len(pending)} unanswered, retrying")
            for host, port, origin, _ in pending.values():
                self.log(f"NOTIFY of {origin.name} serial {serial} to {host}:{port}: no answer")
        finally:
            for sock in socks.values():
                sock.close()
