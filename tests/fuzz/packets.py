"""A packet fuzzer for a live gateway, with a strict reply checker.

It sends random, bit-flipped and structured hostile queries (qdcount 0/2/65535,
compression loops, long labels and names, odd EDNS, QR=1, every opcode, CH and
ANY classes, AXFR/IXFR over UDP, truncations, trailing bytes) over UDP and TCP
and checks every reply against what any well-behaved authoritative server must
do, whatever the query:

* a packet shorter than a header, or with QR=1, gets no reply at all;
* every other packet gets exactly one reply, with its ID, QR=1 and its opcode;
* the reply parses (dnspython), and its rcode is one the gateway may send
  (never SERVFAIL: that would be an internal error);
* an opcode other than QUERY gets NOTIMP; a qdcount other than 1 FORMERR;
* a reply that echoes a question echoes it byte for byte;
* a UDP reply fits 512 bytes, or with OPT the negotiated EDNS size (<= 1232);
* a reply with TC, asked again over TCP, is complete and holds every answer
  RR of the truncated one.

The test suite runs a bounded number (``tests/fuzz/test_packets.py``); a long
run is one command against any gateway::

    python -m tests.fuzz.packets --port 5335 --count 1000000 [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import socket
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import dns.exception
import dns.message
import dns.rcode

#: Rcodes the gateway may send (RFC 1035, RFC 6891); SERVFAIL means a bug here.
ALLOWED_RCODES = {0, 1, 3, 4, 5, 16}
FORMERR, NOTIMP = 1, 4
EDNS_MAX = 1232
PLAIN_MAX = 512

#: Names the structured queries are built on: served, missing, unsigned, other zones.
NAMES = (
    "53995390081.enum",
    "5.3.9.9.5.3.9.0.0.8.1.enum",
    "53995390081.ENUM",
    "76543217771.enum",
    "43215550081.enum",
    "76543215551.enum",
    "00000000001.enum",
    "enum",
    "status.enumer",
    "version.bind",
    "example.com",
    "e164.arpa",
    "1.e164.arpa",
    "",
)
TYPES = (35, 35, 35, 255, 1, 16, 6, 252, 251, 41, 0, 65535)
CLASSES = (1, 1, 1, 3, 255, 4, 254, 0, 2)


def wire_name(name: str) -> bytes:
    out = b""
    for label in name.split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def query(
    name: str,
    qtype: int = 35,
    qclass: int = 1,
    *,
    flags: int = 0x0100,
    counts: tuple[int, int, int, int] = (1, 0, 0, 0),
    tail: bytes = b"",
) -> bytes:
    """A query with ID 0 (the runner sets IDs), any header counts and raw bytes after it."""
    return (
        struct.pack("!HHHHHH", 0, flags, *counts)
        + wire_name(name)
        + struct.pack("!HH", qtype, qclass)
        + tail
    )


def opt(size: int = 1232, version: int = 0, do: bool = False, rdata: bytes = b"") -> bytes:
    """An OPT RR (RFC 6891) with any payload size, version and raw option bytes."""
    ttl = (version << 16) | (0x8000 if do else 0)
    return b"\x00" + struct.pack("!HHIH", 41, size, ttl, len(rdata)) + rdata


def structured(rng: random.Random) -> bytes:
    """One hostile (or ordinary) query built field by field."""
    name = rng.choice(NAMES)
    kind = rng.randrange(16)
    if kind == 0:  # qdcount 0, 2 or 65535 with one question present
        qd = rng.choice((0, 2, 65535))
        return query(name, counts=(qd, 0, 0, 0))
    if kind == 1:  # compression pointer in the question: loop or forward
        target = rng.choice((12, 13, 14, 0x3FFF, 0))
        pointer = struct.pack("!H", 0xC000 | target)
        return (
            struct.pack("!HHHHHH", 0, 0x0100, 1, 0, 0, 0)
            + rng.choice((pointer, b"\x03abc" + pointer, b"\x01" + b"5" + pointer))
            + b"\x00\x23\x00\x01"
        )
    if kind == 2:  # long labels, long names, extended label types
        label = rng.choice((63, 64, 100, 255, 0x40, 0x80))
        body = bytes([label]) + b"9" * min(label, 255)
        if rng.random() < 0.5:
            body = b"".join(b"\x3f" + b"7" * 63 for _ in range(rng.randrange(3, 6)))
        return struct.pack("!HHHHHH", 0, 0, 1, 0, 0, 0) + body + b"\x04enum\x00\x00\x23\x00\x01"
    if kind == 3:  # odd EDNS
        variant = rng.randrange(8)
        if variant == 0:
            tail, ar = opt() + opt(), 2  # two OPTs
        elif variant == 1:
            tail, ar = b"\x01x" + opt()[1:], 1  # OPT with a non-root owner
        elif variant == 2:
            tail, ar = opt(version=rng.choice((1, 255))), 1
        elif variant == 3:
            tail, ar = opt(size=rng.choice((0, 1, 511, 512, 513, 4096, 65535))), 1
        elif variant == 4:
            tail, ar = opt(rdata=b"\x00\x0a\x00\x08" + b"\x01" * rng.randrange(12)), 1
        elif variant == 5:
            tail, ar = opt(do=True), 1
        elif variant == 6:
            tail, ar = opt()[:-3], 1  # cut inside the OPT
        else:
            tail, ar = opt(), 1
            return query(name, counts=(1, 1, 0, 0), tail=tail)  # OPT in the answer section
        return query(name, counts=(1, 0, 0, ar), tail=tail)
    if kind == 4:  # QR=1: a response, never to be answered
        return query(name, flags=0x8000 | rng.randrange(0x8000))
    if kind == 5:  # every opcode
        return query(name, flags=(rng.randrange(16) << 11) | 0x0100)
    if kind == 6:  # classes and types
        return query(name, rng.choice(TYPES), rng.choice(CLASSES))
    if kind == 7:  # zone transfers over UDP
        return query(name, rng.choice((252, 251)))
    if kind == 8:  # truncated anywhere
        whole = query(name, rng.choice(TYPES), tail=opt() if rng.random() < 0.5 else b"")
        return whole[: rng.randrange(len(whole))]
    if kind == 9:  # trailing garbage
        return query(name) + rng.randbytes(rng.randrange(1, 40))
    if kind == 10:  # every flag bit, AD/CD/Z set
        return query(name, flags=rng.randrange(0x8000) & ~0x7800)
    if kind == 11:  # records claimed in answer/authority sections
        return query(name, counts=(1, rng.randrange(4), rng.randrange(4), rng.randrange(4)))
    if kind == 12:  # a record in the authority section (as in IXFR) with a SOA of random bytes
        soa = b"\xc0\x0c" + struct.pack("!HHIH", 6, 1, 0, 8) + rng.randbytes(8)
        return query(name, 251, counts=(1, 0, 1, 0), tail=soa)
    if kind == 13:  # case and dots
        mixed = "".join(c.upper() if rng.random() < 0.5 else c for c in name)
        return query(mixed, rng.choice(TYPES))
    return query(name, rng.choice(TYPES), tail=opt() if rng.random() < 0.3 else b"")


def mutated(rng: random.Random) -> bytes:
    """An ordinary query with a few bits flipped, bytes inserted or cut."""
    packet = bytearray(query(rng.choice(NAMES), rng.choice(TYPES), tail=opt(), counts=(1, 0, 0, 1)))
    for _ in range(rng.randrange(1, 6)):
        action = rng.randrange(3)
        at = rng.randrange(len(packet))
        if action == 0:
            packet[at] ^= 1 << rng.randrange(8)
        elif action == 1:
            packet[at:at] = rng.randbytes(rng.randrange(1, 4))
        elif len(packet) > 13:
            del packet[at]
    return bytes(packet)


def generate(seed: int) -> Iterator[bytes]:
    """Endless hostile datagrams: a third random, a third mutated, a third structured."""
    rng = random.Random(seed)
    while True:
        pick = rng.randrange(3)
        if pick == 0:
            yield rng.randbytes(rng.choice((0, 1, 11, 12, 13, rng.randrange(600))))
        elif pick == 1:
            yield mutated(rng)
        else:
            yield structured(rng)


def expects_reply(packet: bytes) -> bool:
    return len(packet) >= 12 and not packet[2] & 0x80


def _question_end(packet: bytes) -> int:
    """Offset after the first question (uncompressed name + type + class), or -1."""
    pos = 12
    while pos < len(packet):
        ln = packet[pos]
        if ln == 0:
            end = pos + 5
            return end if end <= len(packet) else -1
        if ln > 63:
            return -1
        pos += ln + 1
    return -1


def _edns_payload(packet: bytes) -> int | None:
    """The EDNS payload size the query asked for, when the query parses with one."""
    try:
        message = dns.message.from_wire(packet)
    except Exception:
        return None
    return message.payload if message.edns >= 0 else None


def check(packet: bytes, reply: bytes, *, tcp: bool) -> list[str]:
    """What is wrong with ``reply`` as the answer to ``packet`` (empty list: nothing)."""
    faults: list[str] = []
    if len(reply) < 12:
        return [f"reply of {len(reply)} bytes"]
    if reply[:2] != packet[:2]:
        faults.append("ID not echoed")
    if not reply[2] & 0x80:
        faults.append("QR not set")
    if (reply[2] ^ packet[2]) & 0x78:
        faults.append("opcode not echoed")
    try:
        message = dns.message.from_wire(reply)
    except dns.exception.DNSException as exc:
        return [*faults, f"reply does not parse: {exc!r}"]
    rcode = message.rcode()
    if rcode not in ALLOWED_RCODES:
        faults.append(f"rcode {dns.rcode.to_text(rcode)}")
    if packet[2] & 0x78 and rcode != NOTIMP:
        faults.append(f"opcode {(packet[2] >> 3) & 15} answered {dns.rcode.to_text(rcode)}")
    elif not packet[2] & 0x78 and packet[4:6] != b"\x00\x01" and rcode != FORMERR:
        faults.append(f"qdcount {packet[4] << 8 | packet[5]} answered {dns.rcode.to_text(rcode)}")
    if reply[4:6] == b"\x00\x01":
        end = _question_end(packet)
        if end < 0 or reply[12:end] != packet[12:end]:
            faults.append("question not echoed byte for byte")
    elif reply[4:6] != b"\x00\x00":
        faults.append("more than one question in the reply")
    if not tcp:
        limit = PLAIN_MAX
        if message.edns >= 0:
            payload = _edns_payload(packet)
            limit = max(PLAIN_MAX, min(payload or PLAIN_MAX, EDNS_MAX))
        if len(reply) > limit:
            faults.append(f"UDP reply of {len(reply)} bytes over the limit {limit}")
    return faults


@dataclass
class Report:
    sent: int = 0
    answered: int = 0
    dropped_as_expected: int = 0
    truncated: int = 0
    faults: list[str] = field(default_factory=list)

    def fault(self, packet: bytes, text: str) -> None:
        if len(self.faults) < 50:
            self.faults.append(f"{text}: query {packet.hex()}")


def _tcp_exchange(host: str, port: int, packet: bytes, timeout: float = 3.0) -> bytes:
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(struct.pack("!H", len(packet)) + packet)
        return _read_tcp(conn)


def _read_tcp(conn: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed mid-message")
            data += chunk
        return data

    (length,) = struct.unpack("!H", exactly(2))
    return exactly(length)


def _check_truncated(host: str, port: int, packet: bytes, reply: bytes, report: Report) -> None:
    """A TC reply: the same query over TCP is complete and holds every RR of the UDP one."""
    report.truncated += 1
    try:
        full = _tcp_exchange(host, port, packet)
    except OSError as exc:
        report.fault(packet, f"TC reply, TCP retry failed: {exc!r}")
        return
    try:
        udp_msg = dns.message.from_wire(reply)
        tcp_msg = dns.message.from_wire(full)
    except dns.exception.DNSException as exc:
        report.fault(packet, f"TC retry does not parse: {exc!r}")
        return
    if tcp_msg.flags & 0x0200:
        report.fault(packet, "TC set over TCP")
    tcp_rrs = {(rrset.name, rdata) for rrset in tcp_msg.answer for rdata in rrset}
    if not {(rrset.name, rdata) for rrset in udp_msg.answer for rdata in rrset} <= tcp_rrs:
        report.fault(packet, "truncated UDP answer holds RRs the TCP answer lacks")


def run_udp(
    host: str, port: int, count: int, seed: int, *, window: int = 32, timeout: float = 2.0
) -> Report:
    """Send ``count`` fuzzed datagrams, at most ``window`` awaiting replies at once."""
    report = Report()
    pending: dict[bytes, bytes] = {}
    packets = generate(seed)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        sock.settimeout(timeout)

        def receive() -> bool:
            try:
                reply = sock.recv(65535)
            except TimeoutError:
                return False
            packet = pending.pop(reply[:2], None)
            if packet is None:
                report.faults.append(f"reply to no pending query: {reply[:64].hex()}")
                return True
            report.answered += 1
            for text in check(packet, reply, tcp=False):
                report.fault(packet, text)
            if len(reply) > 3 and reply[2] & 0x02:
                _check_truncated(host, port, packet, reply, report)
            return True

        for seq in range(count):
            packet = next(packets)
            if len(packet) >= 2:
                packet = struct.pack("!H", seq & 0xFFFF) + packet[2:]
            while len(pending) >= window:
                if not receive():
                    break
            if expects_reply(packet):
                stale = pending.pop(packet[:2], None)
                if stale is not None:
                    report.fault(stale, "no reply")
                pending[packet[:2]] = packet
            else:
                report.dropped_as_expected += 1
            sock.send(packet)
            report.sent += 1
        while pending and receive():
            pass
        for packet in pending.values():
            report.fault(packet, "no reply")
        # A dropped packet must stay dropped: nothing more may arrive.
        sock.settimeout(0.3)
        try:
            extra = sock.recv(65535)
            report.faults.append(f"reply to a packet that deserved none: {extra[:64].hex()}")
        except TimeoutError:
            pass
    return report


def run_tcp(host: str, port: int, count: int, seed: int, *, per_connection: int = 50) -> Report:
    """Structured and mutated queries over TCP, pipelined ``per_connection`` at a time.

    Only packets that deserve a reply are sent (a response or a runt gets none, so the
    stream would wait); the gateway may close a connection after a malformed message,
    in which case the runner opens another and asks the rest there.
    """
    rng = random.Random(seed)
    report = Report()
    sent = 0
    while sent < count:
        batch = []
        while len(batch) < min(per_connection, count - sent):
            packet = structured(rng) if rng.random() < 0.6 else mutated(rng)
            packet = struct.pack("!H", (sent + len(batch)) & 0xFFFF) + packet[2:]
            if expects_reply(packet):
                batch.append(packet)
        with socket.create_connection((host, port), timeout=5) as conn:
            conn.sendall(b"".join(struct.pack("!H", len(p)) + p for p in batch))
            for packet in batch:
                try:
                    reply = _read_tcp(conn)
                except (ConnectionError, TimeoutError) as exc:
                    report.fault(packet, f"no TCP reply: {exc!r}")
                    break
                report.answered += 1
                for text in check(packet, reply, tcp=True):
                    report.fault(packet, text)
        report.sent += len(batch)
        sent += len(batch)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5335)
    parser.add_argument("--count", type=int, default=100_000, help="UDP datagrams to send")
    parser.add_argument("--tcp-count", type=int, default=5_000, help="TCP messages to send")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args(argv)
    started = time.monotonic()
    udp = run_udp(args.host, args.port, args.count, args.seed)
    tcp = run_tcp(args.host, args.port, args.tcp_count, args.seed)
    took = time.monotonic() - started
    print(
        f"seed {args.seed}: UDP {udp.sent} sent, {udp.answered} answered, "
        f"{udp.dropped_as_expected} dropped as they must be, {udp.truncated} TC checked over TCP; "
        f"TCP {tcp.sent} sent, {tcp.answered} answered; {took:.1f} s"
    )
    faults = udp.faults + tcp.faults
    for fault in faults:
        print("FAULT", fault)
    return 1 if faults else 0


if __name__ == "__main__":
    sys.exit(main())
