"""Flood: spoofed-looking sources from many loopback addresses against the rate limiter.

``enumer serve`` runs on the demo store with its limiter on and only 127.0.0.1 exempt (the
probe); the flood comes from ``--sources`` addresses spread over several /24s of 127.0.0.0/8
(an attacker spoofing its victims), asking one served number over and over (the
amplification pattern) and random missing ones (the cache-busting pattern).  Meanwhile a
PBX-like resolver in a /24 of its own dials 30 missing and 10 served numbers a second.

Reported: per traffic class, the share of queries answered in full, slipped (an empty TC
reply, so a real resolver retries over TCP) and dropped; bytes out against bytes in (the
amplification the flood achieves); and whether the resolver lost anything::

    python bench/flood.py [--seconds 10] [--sources 256] [--rate 20000]

Results go to ``bench/out/flood-<date>.json``; ``docs/reliability.md`` quotes the last run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import random
import re
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import dns.message

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BenchError, ServerProcess, free_port, run_benchmark

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
SERVED = "53995390081.enum"


@dataclass
class Tally:
    sent: int = 0
    bytes_sent: int = 0
    answered: int = 0
    slipped: int = 0
    bytes_received: int = 0

    def count(self, reply: bytes) -> None:
        self.bytes_received += len(reply)
        # TC with no answer records: the limiter's slip; anything else is a full answer.
        if reply[2] & 0x02 and reply[6:8] == b"\x00\x00":
            self.slipped += 1
        else:
            self.answered += 1

    def summary(self) -> dict[str, float]:
        sent = max(self.sent, 1)
        dropped = max(self.sent - self.answered - self.slipped, 0)
        return {
            **asdict(self),
            "answered_share": round(self.answered / sent, 4),
            "slipped_share": round(self.slipped / sent, 4),
            "dropped_share": round(dropped / sent, 4),
            "amplification": round(self.bytes_received / max(self.bytes_sent, 1), 2),
        }


def _query(name: str, qid: int) -> bytes:
    message = dns.message.make_query(name, "NAPTR", use_edns=0, payload=1232)
    message.id = qid
    return message.to_wire()


def _sources(count: int) -> list[str]:
    """``count`` addresses of 127.0.0.0/8 outside 127.0.0.0/24, 16 per /24."""
    return [f"127.{10 + i // 4096}.{(i // 16) % 256}.{1 + i % 16}" for i in range(count)]


def flood(
    port: int, sources: list[str], rate: int, seconds: float, kind: str, tally: Tally
) -> None:
    """Send ``rate`` queries a second from ``sources`` in turn; count replies as they come."""
    rng = random.Random(kind)
    sel = selectors.DefaultSelector()
    socks = []
    for address in sources:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((address, 0))
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        socks.append(sock)
    started = time.monotonic()
    deadline = started + seconds
    next_send = started
    i = 0
    try:
        while True:
            now = time.monotonic()
            if now < deadline:
                while next_send <= now:
                    name = SERVED if kind == "amplify" else f"{rng.randrange(10**11):011d}.enum"
                    packet = _query(name, i & 0xFFFF)
                    try:
                        socks[i % len(socks)].sendto(packet, ("127.0.0.1", port))
                        tally.sent += 1
                        tally.bytes_sent += len(packet)
                    except BlockingIOError:
                        pass
                    i += 1
                    next_send += 1 / rate
            elif now > deadline + 1.0:
                return
            for key, _ in sel.select(timeout=0.001):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                while True:
                    try:
                        tally.count(sock.recv(4096))
                    except BlockingIOError:
                        break
    finally:
        for sock in socks:
            sock.close()


def resolver(port: int, seconds: float, tally: Tally) -> None:
    """A PBX site's resolver: 30 misses and 10 hits a second, each waited for (2 s)."""
    rng = random.Random(7)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.200.0.1", 0))
        sock.settimeout(2.0)
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            name = SERVED if i % 4 == 0 else f"{rng.randrange(10**11):011d}.enum"
            packet = _query(name, i & 0xFFFF)
            sock.sendto(packet, ("127.0.0.1", port))
            tally.sent += 1
            tally.bytes_sent += len(packet)
            with contextlib.suppress(TimeoutError):
                tally.count(sock.recv(4096))
            i += 1
            time.sleep(1 / 40)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--sources", type=int, default=256, help="flooding addresses (16 per /24)")
    p.add_argument("--rate", type=int, default=20_000, help="queries per second of each flood")
    p.add_argument("--gateway-args", default="", help="extra arguments of 'enumer serve'")
    args = p.parse_args(argv)
    if not 1 <= args.sources <= 65536 or args.rate <= 0 or args.seconds <= 0:
        p.error("--sources from 1 to 65536, --rate and --seconds positive")
    return args


def run(args: argparse.Namespace) -> int:
    work = OUT / "flood"
    (work / "logs").mkdir(parents=True, exist_ok=True)
    store = work / "store"
    enumer = [sys.executable, "-m", "enumer", "--store", str(store)]
    seeded = subprocess.run([*enumer, "demo", "seed"], capture_output=True, text=True)
    if seeded.returncode != 0:
        raise BenchError(f"demo seed failed: {seeded.stderr.strip()}")
    port = free_port()
    argv = [*enumer, "serve", "--port", str(port), "--ratelimit-exempt", "127.0.0.1/32"]
    argv += args.gateway_args.split()
    server = ServerProcess("gateway", argv, work / "logs" / "gateway.log")
    server.start()
    try:
        server.wait_line(re.compile("ready"), 120)
        tallies = {"amplify": Tally(), "random": Tally(), "resolver": Tally()}
        sources = _sources(args.sources)
        threads = [
            threading.Thread(
                target=flood,
                args=(port, sources, args.rate // 2, args.seconds, kind, tallies[kind]),
            )
            for kind in ("amplify", "random")
        ]
        threads.append(
            threading.Thread(target=resolver, args=(port, args.seconds, tallies["resolver"]))
        )
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if not server.alive():
            raise BenchError(f"the gateway died during the flood:\n{server.tail()}")
    finally:
        server.stop()
    results = {kind: tally.summary() for kind, tally in tallies.items()}
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = OUT / f"flood-{stamp}.json"
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    for kind, r in results.items():
        print(
            f"{kind:<9} sent {r['sent']:>8,}  answered {100 * r['answered_share']:6.2f}%  "
            f"slipped {100 * r['slipped_share']:6.2f}%  dropped {100 * r['dropped_share']:6.2f}%  "
            f"bytes out/in {r['amplification']:.2f}"
        )
    print(f"results: {out}")
    return 0 if results["resolver"]["answered_share"] >= 0.999 else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_benchmark(lambda: run(args), print)


if __name__ == "__main__":
    sys.exit(main())
