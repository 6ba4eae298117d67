"""Light-gateway benchmark: ``enumer serve --upstream FEED`` against a first start from the store.

    .venv/bin/python bench/light.py --names 100000
    .venv/bin/python bench/light.py --names 1000000

1. Builds a regtest store with ``ver:bench`` and N strictly signed records (SIG,
   VSIG and OSIG lines, one key owning them all; ``--keep`` reuses it).
2. First start from the embedded store: ``enumer serve`` on it, no snapshot;
   seconds to ``ready:`` and peak RSS.  Its snapshot is then kept, so that the
   provider below starts at once.
3. A provider: ``enumer serve --feed`` on the same store.  A light gateway on an
   empty store: ``enumer serve --upstream <feed>``; seconds to ``ready:`` (the
   bulk first sync, the judging and the table build), its peak RSS, and the
   feed's CPU seconds per record it returned.
4. Change-to-served: the owner reseals one record with a new host (new OSIG);
   the time until the light gateway answers the new host, against its poll
   interval (``--poll``), median of ``--changes``; and how many full listings of
   the feed the light gateway made by then (1: the polls fetched only the feed's
   change list).
5. Restart of the light gateway: seconds to ``ready:`` from its snapshot.

Both starts are measured side by side in one run; the ratio is what to quote.
Everything goes to ``bench/out/light/n<N>/``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
from harness import VERIFIER, ServerProcess, build_signed_store, free_port, run_benchmark
from sync import cpu_seconds, draw_numbers

from enumer.crypto import REGTEST
from enumer.nvs.ledger import Ledger
from enumer.owner import sealed

BENCH_DIR = Path(__file__).resolve().parent
OUT = BENCH_DIR / "out" / "light"
ENUMER = Path(sys.executable).with_name("enumer")
READY = re.compile(r"ready: serving")


def say(message: str) -> None:
    print(f"[light] {message}", flush=True)


def directives(digits: str) -> str:
    return f"E2U+sip=100|10|!^(.*)$!sip:\\1@pbx{int(digits) % 1000}.example.com!"


def value_of(digits: str, signature: str) -> str:
    return f"{directives(digits)}\nSIG={VERIFIER}|{signature}"


def rss_kib(server: ServerProcess) -> int:
    try:
        for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def start(server: ServerProcess, timeout: float) -> tuple[float, int]:
    """Seconds to ``ready:`` and the peak RSS (KiB) reached by then."""
    peak = [0]

    def sample() -> None:
        peak[0] = max(peak[0], rss_kib(server))

    server.start()
    arrived, _ = server.wait_line(READY, timeout, sample)
    sample()
    return arrived - server.started, peak[0]


def answer(port: int, digits: str) -> str:
    query = dns.message.make_query(".".join(reversed(digits)) + ".enum", "NAPTR")
    try:
        reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=1)
    except Exception:
        return ""
    if reply.rcode() != dns.rcode.NOERROR or not reply.answer:
        return ""
    return str(reply.answer[0][0])


def full_listings(port: int) -> float:
    """``enumer_upstream_full_listings`` of the light gateway's one upstream (-1: not read)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return -1
    found = re.search(r'^enumer_upstream_full_listings\{upstream="1"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else -1


def run(args: argparse.Namespace) -> int:
    root = OUT / f"n{args.names}"
    root.mkdir(parents=True, exist_ok=True)
    store = root / "store"
    numbers = draw_numbers(args.names, 13)
    if not (args.keep and (store / "ledger.sqlite").exists()):
        say(f"signing {args.names} strict records")
        began = time.monotonic()
        build_signed_store(store, REGTEST, numbers, value_of, lambda d, t: None, directives)
        # The bulk import puts every record into block 2, and a feed's change list
        # repeats its tip block (a write may land in it while the list is read): one
        # block on top, as on a chain, whose blocks hold a few thousand name operations.
        with Ledger(store) as ledger:
            ledger.generate(1)
        say(f"data set built in {time.monotonic() - began:.0f} s")
    if args.prepare:
        return 0
    for old in store.glob("gateway-*.snapshot"):
        old.unlink()
    common = ["--trust", VERIFIER, "--quiet"]
    results: dict[str, float] = {"names": args.names, "poll_s": args.poll}

    port = free_port()
    embedded = ServerProcess(
        "embedded",
        [str(ENUMER), "--store", str(store), "serve", "--port", str(port), *common],
        root / "embedded.log",
    )
    try:
        seconds, peak = start(embedded, args.timeout)
        results["embedded_first_start_s"], results["embedded_peak_rss_mib"] = seconds, peak / 1024
        say(f"embedded first start: {seconds:.1f} s, peak RSS {peak / 1024:.0f} MiB")
    finally:
        embedded.stop()

    feed_port, dns_port = free_port(), free_port()
    provider = ServerProcess(
        "provider",
        [
            str(ENUMER),
            "--store",
            str(store),
            "serve",
            "--port",
            str(dns_port),
            *common,
            "--feed",
            f"127.0.0.1:{feed_port}",
            "--feed-rate",
            "100000",
        ],
        root / "provider.log",
    )
    light_store = root / "light-store"
    shutil.rmtree(light_store, ignore_errors=True)
    light_port, metrics_port = free_port(), free_port()
    light_argv = [
        str(ENUMER),
        "--store",
        str(light_store),
        "serve",
        "--port",
        str(light_port),
        *common,
        "--upstream",
        f"http://127.0.0.1:{feed_port}/",
        "--upstream-chain",
        "regtest",
        "--poll",
        str(args.poll),
        "--upstream-timeout",
        "120",
        "--metrics",
        f"127.0.0.1:{metrics_port}",
    ]
    light = ServerProcess("light", light_argv, root / "light.log")
    try:
        provider.start()
        provider.wait_line(READY, args.timeout)
        cpu_before = cpu_seconds(provider)
        seconds, peak = start(light, args.timeout)
        feed_cpu = cpu_seconds(provider) - cpu_before
        results["light_first_sync_s"], results["light_peak_rss_mib"] = seconds, peak / 1024
        # name_filter rows (values cut to 64 bytes) and name_show answers: 2 per record.
        results["feed_cpu_us_per_record"] = feed_cpu / args.names * 1e6
        say(
            f"light first sync: {seconds:.1f} s, peak RSS {peak / 1024:.0f} MiB; feed "
            f"{results['feed_cpu_us_per_record']:.0f} us CPU per record"
        )
        delays = []
        for i, digits in enumerate(numbers[: args.changes]):
            name = f"enum:{digits}:0"
            host = f"changed{i}-{time.time_ns()}.example.com"
            with Ledger(store) as ledger:
                record = ledger.show(name)
                rest = [ln for ln in record.value.splitlines() if not ln.startswith("E2U")]
                new = sealed(
                    ledger,
                    name,
                    "\n".join([f"E2U+sip=100|10|!^(.*)$!sip:\\1@{host}!", *rest]),
                    record.address,
                )
                assert isinstance(new, str)
                ledger.name_update(name, new, 1, record.address)
                changed = time.monotonic()
            while host not in answer(light_port, digits):
                if time.monotonic() - changed > args.poll * 4 + 60:
                    raise RuntimeError(f"change {i} not served")
                time.sleep(0.01)
            delays.append(time.monotonic() - changed)
            time.sleep(args.poll * (i % 3) / 3)
        # Full listings of the feed so far: 1 (the first sync) when polls fetched changes only.
        results["full_listings"] = full_listings(metrics_port)
        results["change_to_served_median_s"] = statistics.median(delays)
        results["change_to_served_max_s"] = max(delays)
        say(
            f"change-to-served: median {statistics.median(delays):.2f} s, max "
            f"{max(delays):.2f} s (poll {args.poll} s)"
        )
        light.stop()
        restart = ServerProcess("light-restart", light_argv, root / "light-restart.log")
        try:
            seconds, _ = start(restart, args.timeout)
            results["light_restart_s"] = seconds
            say(f"light restart from its snapshot: {seconds:.1f} s")
        finally:
            restart.stop()
    finally:
        light.stop()
        provider.stop()
    results["first_sync_ratio"] = results["light_first_sync_s"] / results["embedded_first_start_s"]
    results["rss_ratio"] = results["light_peak_rss_mib"] / results["embedded_peak_rss_mib"]
    (root / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    say(json.dumps(results, indent=2))
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--names", type=int, default=100_000)
    parser.add_argument("--poll", type=float, default=2.0)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--keep", action="store_true", help="Reuse the signed store.")
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="Only build (or, with --keep, check) the signed store, and stop: the data set "
        "may be made while another benchmark runs, the timed parts later with --keep.",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(run_benchmark(lambda: run(arguments), say))
