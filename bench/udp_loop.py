"""Responses per second of ``enumer.dns.wire.respond`` (and optionally of a live UDP server).

    .venv/bin/python bench/udp_loop.py                 # respond() only, cache on and off
    .venv/bin/python bench/udp_loop.py --server 5      # also a real UDP server for 5 s
                                                       # (needs dnsperf; loopback only)

The synthetic AnswerSource serves 10,000 numbers with one or two NAPTR RRs each.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from enumer.dns import wire
from enumer.dns.wire import GatewayView, ZoneSpec, respond


def naptr_rr(order: int, pref: int, service: bytes, regexp: bytes, ttl: int = 86400) -> bytes:
    rdata = (
        struct.pack(">HH", order, pref)
        + b"\x01u"
        + bytes([len(service)])
        + service
        + bytes([len(regexp)])
        + regexp
        + b"\x00"
    )
    return struct.pack(">HHHIH", 0xC00C, 35, 1, ttl, len(rdata)) + rdata


class Source:
    generation = 1
    serial = 123456

    def __init__(self, count: int) -> None:
        self.answers: dict[bytes, bytes] = {}
        for i in range(count):
            digits = str(15550000000 + i)
            rr = naptr_rr(100, 10, b"E2U+sip", b"!^(.*)$!sip:\\1@gw%d.example.com!" % i)
            if i % 2:
                rr += naptr_rr(100, 20, b"E2U+email:mailto", b"!^.*$!mailto:n%d@example.com!" % i)
            self.answers[digits[::-1].encode()] = rr

    def answer(self, key: bytes) -> bytes | None:
        return self.answers.get(key)


def make_query(name: str, qtype: int = 35, edns: bool = False) -> bytes:
    wire_name = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    ar = 1 if edns else 0
    q = struct.pack(">HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, ar) + wire_name
    q += struct.pack(">HH", qtype, 1)
    if edns:
        q += b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
    return q


def queries(n_names: int) -> list[bytes]:
    out = []
    for i in range(n_names):
        digits = str(15550000000 + (i * 7919) % 20000)  # half served, half NXDOMAIN
        rev = digits[::-1]
        name = (rev if i % 2 else ".".join(rev)) + ".enum"
        out.append(make_query(name, 35, edns=i % 3 == 0))
    return out


def bench_respond(view: GatewayView, qs: list[bytes], seconds: float, cache: bool) -> float:
    saved = wire.CACHE_MAX
    wire.CACHE_MAX = 100_000 if cache else 0
    try:
        done = 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            for q in qs:
                respond(q, view, 1232)
            done += len(qs)
        return done / (time.perf_counter() - start)
    finally:
        wire.CACHE_MAX = saved


def bench_server(view: GatewayView, seconds: int, workers: int, cache: bool) -> None:
    from enumer.dns.metrics import Metrics
    from enumer.dns.server import GatewayServer, ServerConfig

    if shutil.which("dnsperf") is None:
        print("dnsperf not found: skipping the server benchmark")
        return
    server = GatewayServer(
        lambda: view,
        ServerConfig(binds=[("127.0.0.1", 0)], tcp=False, udp_workers=workers),
        Metrics(),
        lambda line: None,
    )
    saved = wire.CACHE_MAX
    wire.CACHE_MAX = 100_000 if cache else 0
    server.start()
    port = server.bound[0][2]
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
            for i in range(2000):
                digits = str(15550000000 + (i * 7919) % 20000)[::-1]
                fh.write(f"{digits if i % 2 else '.'.join(digits)}.enum NAPTR\n")
            path = fh.name
        out = subprocess.run(
            [
                "dnsperf",
                "-s",
                "127.0.0.1",
                "-p",
                str(port),
                "-d",
                path,
                "-l",
                str(seconds),
                "-c",
                "4",
                "-T",
                "2",
                "-q",
                "500",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=False,
        ).stdout
        os.unlink(path)
        for line in out.splitlines():
            if "Queries per second" in line or "Queries lost" in line:
                print(
                    f"server udp_workers={workers} cache {'on ' if cache else 'off'}: "
                    f"{' '.join(line.split())}"
                )
    finally:
        server.stop()
        wire.CACHE_MAX = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--server", type=int, default=0, help="seconds of dnsperf per run")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    args = parser.parse_args()
    source = Source(10_000)
    view = GatewayView({"enum": (ZoneSpec("enum"), source)})
    qs = queries(2000)
    for cache in (False, True):
        rate = bench_respond(view, qs, args.seconds, cache)
        print(f"respond(), cache {'on ' if cache else 'off'}: {rate:,.0f} responses/s")
    if args.server:
        for workers in args.workers:
            for cache in (False, True):
                bench_server(view, args.server, workers, cache)


if __name__ == "__main__":
    main()
