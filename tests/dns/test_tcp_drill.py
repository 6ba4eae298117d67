"""Chaos drill: TCP abuse of a live ``enumer serve`` while UDP is probed for latency.

For a few seconds, from other /24 networks of loopback than the probes: idle connections,
slowloris senders (one byte of a query now and then), half-written length prefixes, clients
that pipeline queries and never read, and a flood of connections opened and dropped.  What
must hold all the while: every UDP probe is answered, fast; a well-behaved TCP client in a
network of its own gets every answer; and afterwards the gateway answers as before.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

import dns.message
import dns.query
import pytest
from tests.support import Gateway

pytestmark = pytest.mark.xdist_group("tcp-drill")

ABUSE_SECONDS = 4.0
QUERY = dns.message.make_query("53995390081.enum", "NAPTR")
WIRE = QUERY.to_wire()
FRAMED = struct.pack("!H", len(WIRE)) + WIRE


def _connect(port: int, source: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(2)
    try:
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    return sock


def _abuse(port: int, halt: threading.Event, held: list[socket.socket]) -> None:
    """Every kind of abuse at once, each from its own /24 of loopback."""
    for i in range(20):  # idle
        if (s := _connect(port, f"127.0.31.{i + 1}")) is not None:
            held.append(s)
    for i in range(10):  # half-written length prefix
        if (s := _connect(port, f"127.0.32.{i + 1}")) is not None:
            s.send(FRAMED[:1])
            held.append(s)
    for i in range(5):  # pipelines and never reads
        if (s := _connect(port, f"127.0.33.{i + 1}")) is not None:
            s.setblocking(False)
            with contextlib.suppress(OSError):
                for _ in range(2000):
                    s.send(FRAMED)
            held.append(s)
    slow = [s for i in range(10) if (s := _connect(port, f"127.0.34.{i + 1}")) is not None]
    held.extend(slow)
    sent = 0
    flood = 0
    while not halt.is_set():
        for s in slow:  # slowloris: a byte of a query now and then
            with contextlib.suppress(OSError):
                s.send(FRAMED[sent % len(FRAMED) : sent % len(FRAMED) + 1])
        sent += 1
        for _ in range(20):  # connections opened and dropped
            if (s := _connect(port, f"127.0.35.{1 + flood % 250}")) is not None:
                s.close()
            flood += 1
        halt.wait(0.05)


def test_tcp_abuse_leaves_udp_and_good_tcp_clients_served(demo_gateway: Gateway) -> None:
    port = demo_gateway.port
    expected = dns.query.udp(QUERY, "127.0.0.1", port=port, timeout=3).answer
    assert expected
    halt = threading.Event()
    held: list[socket.socket] = []
    abuser = threading.Thread(target=_abuse, args=(port, halt, held))
    abuser.start()
    udp_times: list[float] = []
    tcp_answers = 0
    tcp_asked = 0
    try:
        deadline = time.monotonic() + ABUSE_SECONDS
        while time.monotonic() < deadline:
            started = time.monotonic()
            reply = dns.query.udp(QUERY, "127.0.0.1", port=port, timeout=2)
            udp_times.append(time.monotonic() - started)
            assert reply.answer == expected
            if len(udp_times) % 10 == 0:  # a good TCP client, in a network of its own
                tcp_asked += 1
                good = dns.query.tcp(QUERY, "127.0.0.1", port=port, timeout=3, source="127.0.40.1")
                tcp_answers += good.answer == expected
            time.sleep(0.01)
    finally:
        halt.set()
        abuser.join(10)
        for sock in held:
            sock.close()
    udp_times.sort()
    assert len(udp_times) > 50
    p99 = udp_times[int(len(udp_times) * 0.99)]
    assert p99 < 0.25, f"UDP p99 {p99 * 1000:.1f} ms under TCP abuse"
    assert tcp_asked > 3 and tcp_answers == tcp_asked
    assert demo_gateway.process.poll() is None
    after = dns.query.tcp(QUERY, "127.0.0.1", port=port, timeout=3)
    assert after.answer == expected
