"""The packet fuzzer against a live ``enumer serve``: 100,000 datagrams and 5,000 TCP messages.

Each reply is held to ``tests.fuzz.packets.check``; afterwards the gateway must still be up and
answer an ordinary query exactly as before.  ``python -m tests.fuzz.packets --count N`` is the
long run.
"""

from __future__ import annotations

import os

import dns.message
import dns.query
import pytest

from tests.fuzz import packets
from tests.support import Gateway

UDP_COUNT = int(os.environ.get("ENUMER_FUZZ_COUNT", "100000"))


def _naptrs(gateway: Gateway) -> list[str]:
    reply = dns.query.udp(
        dns.message.make_query("53995390081.enum", "NAPTR"),
        "127.0.0.1",
        port=gateway.port,
        timeout=5,
    )
    return [rd.to_text() for rrset in reply.answer for rd in rrset]


@pytest.mark.xdist_group("fuzz")
def test_hostile_datagrams_get_strictly_correct_replies(demo_gateway: Gateway) -> None:
    before = _naptrs(demo_gateway)
    report = packets.run_udp("127.0.0.1", demo_gateway.port, UDP_COUNT, seed=20261202)
    assert report.faults == []
    assert report.sent == UDP_COUNT
    # Each class of outcome occurred, so the checker's rules were all exercised.
    assert report.answered > UDP_COUNT // 2
    assert report.dropped_as_expected > UDP_COUNT // 20
    assert demo_gateway.process.poll() is None
    assert _naptrs(demo_gateway) == before


@pytest.mark.xdist_group("fuzz")
def test_hostile_tcp_messages_get_strictly_correct_replies(demo_gateway: Gateway) -> None:
    before = _naptrs(demo_gateway)
    report = packets.run_tcp("127.0.0.1", demo_gateway.port, 5_000, seed=7)
    assert report.faults == []
    assert report.answered == 5_000
    assert demo_gateway.process.poll() is None
    assert _naptrs(demo_gateway) == before


def test_the_checker_catches_what_it_must() -> None:
    """The rules themselves: each broken reply is named, a good one passes."""
    good_query = packets.query("53995390081.enum")
    good_reply = dns.message.make_response(dns.message.from_wire(good_query)).to_wire()
    assert packets.check(good_query, good_reply, tcp=False) == []
    assert "ID not echoed" in packets.check(good_query, b"\x12\x34" + good_reply[2:], tcp=False)
    servfail = good_reply[:3] + bytes([good_reply[3] | 2]) + good_reply[4:]
    assert "rcode SERVFAIL" in packets.check(good_query, servfail, tcp=False)
    trailing = packets.check(good_query, good_reply + b"\x00" * 600, tcp=False)
    assert any("does not parse" in fault for fault in trailing)
    update = packets.query("enum", flags=5 << 11)
    header_only = update[:2] + bytes([0x80 | (5 << 3), 0]) + b"\x00" * 8
    assert packets.check(update, header_only, tcp=False) == ["opcode 5 answered NOERROR"]
    two = packets.query("enum", counts=(2, 0, 0, 0))
    two_reply = two[:2] + b"\x81\x00" + b"\x00" * 8
    assert packets.check(two, two_reply, tcp=False) == ["qdcount 2 answered NOERROR"]
    echoed_wrong = bytearray(good_reply)
    echoed_wrong[14] ^= 1
    assert "question not echoed byte for byte" in packets.check(
        good_query, bytes(echoed_wrong), tcp=False
    )
    assert not packets.expects_reply(packets.query("enum", flags=0x8000))
    assert not packets.expects_reply(b"\x00" * 11)
