"""Soak: ``enumer serve`` (and NSD beside it) under a fixed query rate for a long time.

What it reports per server, slice by slice, so a trend shows: queries lost, CPU per query,
RSS and PSS after each slice (memory growth is the last slice's RSS minus the first's), and
average and maximum latency.  It uses ``bench/gateway.py``'s data set (store, zone, query
file) and its dnsperf runner, so the figures compare with that benchmark's::

    python bench/soak.py --numbers 100000 --rate 30000 --minutes 3 [--keep] [--no-nsd]

Results go to ``bench/out/soak-<date>.json``; ``docs/reliability.md`` quotes the last run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateway as gw
from harness import free_port, run_benchmark


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--numbers", type=int, default=100_000)
    p.add_argument("--rate", type=int, default=30_000, help="queries per second (dnsperf -Q)")
    p.add_argument("--minutes", type=float, default=3.0, help="soak length per server")
    p.add_argument("--slices", type=int, default=6, help="measurements per soak")
    p.add_argument("--keep", action="store_true", help="reuse bench/gateway.py's cached data set")
    p.add_argument("--no-nsd", action="store_true", help="the gateway only")
    p.add_argument("--gateway-args", default="", help="extra arguments of 'enumer serve'")
    args = p.parse_args(argv)
    if args.slices < 2 or args.minutes <= 0 or args.rate <= 0:
        p.error("--slices must be at least 2, --minutes and --rate positive")
    return args


def soak(server: gw.Server, port: int, ds: gw.Dataset, opts: argparse.Namespace) -> dict[str, Any]:
    """Back-to-back fixed-rate dnsperf slices against one server."""
    slice_seconds = max(1, round(opts.minutes * 60 / opts.slices))
    perf_args = argparse.Namespace(clients=8, outstanding=200, duration=slice_seconds)
    runs = [
        gw.dnsperf(server, port, "soak", i, ds, perf_args, opts.rate) for i in range(opts.slices)
    ]
    first, last = runs[0].memory_after, runs[-1].memory_after
    sent = sum(r.sent for r in runs)
    lost = sum(r.lost for r in runs)
    return {
        "server": server.name,
        "rate": opts.rate,
        "seconds": sum(r.run_seconds for r in runs),
        "sent": sent,
        "lost": lost,
        "lost_share": lost / max(sent, 1),
        "cpu_us_per_query": round(
            1e6 * sum(r.server_cpu_s for r in runs) / max(sum(r.completed for r in runs), 1), 2
        ),
        "rss_growth_kib": last.get("rss_kib", 0) - first.get("rss_kib", 0),
        "max_latency_ms": max(r.max_latency_ms for r in runs),
        "slices": [asdict(r) for r in runs],
    }


def run(opts: argparse.Namespace) -> int:
    (gw.OUT / "logs").mkdir(parents=True, exist_ok=True)
    base = gw.parse_args(["--numbers", str(opts.numbers), "--gateway-args", opts.gateway_args])
    base.keep = opts.keep
    ds, _meta = gw.prepare_dataset(base)
    probe = gw.probe_name(ds)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    results: list[dict[str, Any]] = []
    servers: list[gw.Server] = []
    try:
        port = free_port(base.gateway_port)
        base.skip_restart = True
        server, _ = gw.start_gateway(ds, port, base, probe, stamp, servers)
        results.append(soak(server, port, ds, opts))
        server.stop()
        if not opts.no_nsd:
            nsd_port = free_port(base.nsd_port)
            nsd, _ = gw.start_nsd(ds, nsd_port, 1, base, probe, stamp, servers)
            results.append(soak(nsd, nsd_port, ds, opts))
    finally:
        for server in servers:
            server.stop()
    out = gw.OUT / f"soak-{stamp}.json"
    out.write_text(json.dumps({"machine": gw.machine(), "args": vars(opts), "results": results}))
    for r in results:
        gw.console.print(
            f"{r['server']:<8} {r['sent']:,} sent at {r['rate']:,}/s over {r['seconds']:.0f} s: "
            f"lost {r['lost']:,} ({100 * r['lost_share']:.3f}%), "
            f"{r['cpu_us_per_query']} us CPU/query, RSS growth {r['rss_growth_kib']:,} KiB, "
            f"max latency {r['max_latency_ms']} ms"
        )
    gw.console.print(f"results: {out}")
    return 0 if all(r["lost"] == 0 for r in results if r["server"] == "gateway") else 1


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    return run_benchmark(lambda: run(opts), gw.console.print)


if __name__ == "__main__":
    sys.exit(main())
