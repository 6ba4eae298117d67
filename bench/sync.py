"""Node-mirror benchmark: ``enumer serve --nvs`` against ``enumer node`` with N signed records.

    .venv/bin/python bench/sync.py --names 20000      # about a minute
    .venv/bin/python bench/sync.py --names 100000

1. Builds a regtest ledger with ``ver:bench`` and N signed ``enum:<digits>:0``
   records (signing on every core, one :meth:`Ledger.put_records` transaction).
2. Starts ``enumer node`` on it (user/password auth, password in
   ``$ENUMER_RPCPASSWORD``), then ``enumer serve --nvs URL --poll P`` on a fresh
   ``--store`` (the URL in ``$ENUMER_NVS``, so that no password shows in ``ps``).
3. Measures the first sync: seconds from start to the ``ready:`` line and the
   gateway's own ``synced N names ... (Xs)`` line, as names per second.
4. Measures update-to-answer: ``name_update`` of one record over JSON-RPC (a new
   PBX host, the same signature), then DNS queries every 10 ms until the answer
   shows the new host; median of ``--updates`` updates.  Each update waits a
   random fraction of a poll cycle first, so the updates land at random points of
   the gateway's poll loop, as real ones do.  An update whose answer does not come
   within ``--update-timeout`` is counted as missed (not in the median); the updates
   stop early when ``--budget`` seconds are spent.
5. Prints a table and ends with ``first sync: X names/s; update-to-answer: Y s``.

Everything goes to ``bench/out/sync/n<N>/`` (``--keep`` reuses the ledger).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import re
import secrets
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import httpx

from enumer.crypto import REGTEST
from enumer.nvs.ledger import Ledger

# What the benchmarks share is in bench/harness.py.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    SIGN_CHUNK,
    VERIFIER,
    BenchError,
    ServerProcess,
    build_signed_store,
    free_port,
    run_benchmark,
)

BENCH_DIR = Path(__file__).resolve().parent
OUT = BENCH_DIR / "out" / "sync"
ENUMER = Path(sys.executable).with_name("enumer")

#: Bump when the generated data change, so that ``--keep`` never reuses stale data.
DATASET_VERSION = 1
USER = "bench"
HOSTS = 1000
CLK_TCK = os.sysconf("SC_CLK_TCK")
SYNCED = re.compile(
    r"synced (\d+) names from the node at height (\d+) \((\d+) changed, ([\d.]+)s\)"
)
COMPILED = re.compile(r"compiled (\d+) served numbers from (\d+) records .* in ([\d.]+)s")
CHANGED = re.compile(r"node height (\d+): (\d+) name\(s\) changed \(([\d.]+)s\)")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the data ---------------------------------------------------------------------------------


def draw_numbers(count: int, seed: int) -> list[str]:
    """``count`` distinct 11-digit numbers (a 1 then 10 random digits), deterministic."""
    rng = random.Random(seed)
    return [f"1{x:010d}" for x in rng.sample(range(10**10), count)]


def host_of(digits: str) -> str:
    return f"pbx{int(digits) % HOSTS}.example.com"


def record_value(host: str, signature: str) -> str:
    return f"E2U+sip=100|10|!^(.*)$!sip:\\1@{host}!\nSIG={VERIFIER}|{signature}"


def build_ledger(store: Path, numbers: list[str]) -> dict[str, Any]:
    """A regtest ledger: ``ver:bench`` and one signed record per number, all owned by the
    verifier's key (imported into the ledger's wallet, so the node can update them)."""
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        if done % 20000 < SIGN_CHUNK or done == total:
            say(f"  signed and stored {done}/{total}")

    address, stored = build_signed_store(
        store, REGTEST, numbers, lambda digits, sig: record_value(host_of(digits), sig), progress
    )
    with Ledger(store, create=False) as ledger:
        count = ledger.count()
    return {
        "seconds": round(time.monotonic() - started, 1),
        "records": stored,
        "names": count,
        "signers": os.cpu_count() or 1,
        "verifier_address": address,
        "store_bytes": sum(p.stat().st_size for p in store.iterdir()),
    }


# -- processes --------------------------------------------------------------------------------


def cpu_seconds(server: ServerProcess) -> float:
    """User + system CPU time of a server's main process so far (Linux /proc)."""
    if not server.alive():
        return 0.0
    try:
        fields = Path(f"/proc/{server.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Rpc:
    """JSON-RPC to the node."""

    def __init__(self, port: int, password: str) -> None:
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", auth=(USER, password), timeout=120
        )

    def call(self, method: str, *params: Any) -> Any:
        reply = self.client.post(
            "/", json={"jsonrpc": "1.0", "id": "bench", "method": method, "params": list(params)}
        )
        body = reply.json()
        if body.get("error"):
            raise BenchError(f"{method}: {body['error']}")
        return body["result"]

    def close(self) -> None:
        self.client.close()


def answer_regexps(port: int, digits: str, timeout: float = 2.0) -> str | None:
    """The joined regexps of the NAPTR answer for ``digits``; None for a negative answer."""
    query = dns.message.make_query(digits[::-1] + ".enum", "NAPTR")
    response = dns.query.udp(query, "127.0.0.1", port=port, timeout=timeout)
    if response.rcode() != dns.rcode.NOERROR or not response.answer:
        return None
    return " ".join(rd.regexp.decode() for rrset in response.answer for rd in rrset)


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Results:
    names: int
    build: dict[str, Any] = field(default_factory=dict)
    node_ready_s: float = 0.0
    start_to_ready_s: float = 0.0
    synced_names: int = 0
    sync_s: float = 0.0
    compile_s: float = 0.0
    served: int = 0
    poll_sync_s: list[float] = field(default_factory=list)
    delays_s: list[float] = field(default_factory=list)
    rpc_s: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    updates_done: int = 0
    gateway_cpu_share: float = 0.0
    node_cpu_share: float = 0.0

    @property
    def names_per_s(self) -> float:
        return self.synced_names / self.sync_s if self.sync_s else 0.0

    @property
    def median_delay(self) -> float | None:
        return statistics.median(self.delays_s) if self.delays_s else None


def prepare(args: argparse.Namespace, root: Path, res: Results) -> list[str]:
    numbers = draw_numbers(args.names, args.seed)
    store = root / "node"
    meta_path = root / "dataset.json"
    params = {"version": DATASET_VERSION, "names": args.names, "seed": args.seed}
    if args.keep and meta_path.exists() and (store / "ledger.sqlite").exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("params") == params:
            say(f"reusing the ledger in {store}")
            res.build = meta["build"]
            return numbers
    say(f"building a regtest ledger with {args.names} signed records in {store}")
    res.build = build_ledger(store, numbers)
    meta_path.write_text(json.dumps({"params": params, "build": res.build}, indent=2))
    say(f"  built in {res.build['seconds']} s")
    return numbers


def measure_updates(
    args: argparse.Namespace,
    rpc: Rpc,
    gateway: ServerProcess,
    dns_port: int,
    numbers: list[str],
    res: Results,
) -> None:
    rng = random.Random(args.seed + 1)
    cycle = args.poll + max(res.sync_s, 0.1)
    timeout = args.update_timeout or max(30.0, 4 * cycle)
    budget_end = time.monotonic() + args.budget
    for i in range(args.updates):
        if time.monotonic() + cycle > budget_end:
            say(f"  update budget of {args.budget:.0f} s spent: {i} of {args.updates} updates done")
            break
        res.updates_done = i + 1
        time.sleep(rng.uniform(0, cycle))  # a random point of the gateway's poll loop
        digits = rng.choice(numbers)
        name = f"enum:{digits}:0"
        host = f"upd{i}-{secrets.token_hex(3)}.example.net"
        shown = rpc.call("name_show", name)
        value = re.sub(r"@[^!]+!", f"@{host}!", shown["value"], count=1)
        sent = time.monotonic()
        rpc.call("name_update", name, value, 0, shown["address"])
        res.rpc_s.append(time.monotonic() - sent)
        deadline = sent + timeout
        while True:
            try:
                answer = answer_regexps(dns_port, digits, timeout=1.0)
            except dns.exception.Timeout:
                answer = None
            if answer and host in answer:
                res.delays_s.append(time.monotonic() - sent)
                say(f"  update {i + 1}/{args.updates}: answered after {res.delays_s[-1]:.2f} s")
                break
            if not gateway.alive():
                raise BenchError(f"the gateway exited:\n{gateway.tail()}")
            if time.monotonic() > deadline:
                res.missed.append(name)
                say(f"  update {i + 1}/{args.updates}: {name} NOT answered after {timeout:.0f} s")
                break
            time.sleep(0.01)


def run(args: argparse.Namespace) -> int:
    root = OUT / f"n{args.names}"
    root.mkdir(parents=True, exist_ok=True)
    res = Results(args.names)
    numbers = prepare(args, root, res)
    gw_store = root / "gateway"
    if gw_store.exists():
        shutil.rmtree(gw_store)
    password = secrets.token_hex(16)
    node_port, dns_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENUMER_")}
    node_env = {**env, "ENUMER_RPCPASSWORD": password}
    gw_env = {**env, "ENUMER_NVS": f"http://{USER}:{password}@127.0.0.1:{node_port}/"}
    node_argv = [str(ENUMER), "--store", str(root / "node"), "--network", "regtest", "node"]
    node_argv += ["--rpcport", str(node_port), "--rpcuser", USER]
    node = ServerProcess("enumer node", node_argv, root / "node.log", node_env)
    gw_argv = [str(ENUMER), "--store", str(gw_store), "serve", "--port", str(dns_port)]
    gw_argv += ["--trust", VERIFIER, "--poll", str(args.poll), "--quiet"]
    gateway = ServerProcess("enumer serve", gw_argv, root / "gateway.log", gw_env)
    rpc = Rpc(node_port, password)
    try:
        node.start()
        ready_at, _ = node.wait_line(re.compile(r"\bready\b"), 120)
        res.node_ready_s = ready_at - node.started
        say(f"node ready in {res.node_ready_s:.1f} s at height {rpc.call('getblockcount')}")

        gateway.start()
        ready_at, _ = gateway.wait_line(re.compile(r"ready:"), args.timeout)
        res.start_to_ready_s = ready_at - gateway.started
        synced = gateway.matches(SYNCED)
        if not synced:
            raise BenchError(f"no 'synced N names' line:\n{gateway.tail()}")
        res.synced_names, res.sync_s = int(synced[0].group(1)), float(synced[0].group(4))
        compiled = gateway.matches(COMPILED)
        if compiled:
            res.served, res.compile_s = int(compiled[0].group(1)), float(compiled[0].group(3))
        say(
            f"gateway ready in {res.start_to_ready_s:.1f} s: synced {res.synced_names} names "
            f"in {res.sync_s:.1f} s, compiled {res.served} answers in {res.compile_s:.1f} s"
        )
        if res.synced_names != args.names + 1:
            raise BenchError(f"synced {res.synced_names} names, expected {args.names + 1}")
        for digits in random.Random(args.seed + 2).sample(numbers, min(20, len(numbers))):
            answer = answer_regexps(dns_port, digits)
            if answer is None or host_of(digits) not in answer:
                raise BenchError(f"+{digits}: answer {answer!r}, expected {host_of(digits)}")

        cpu_start = (time.monotonic(), cpu_seconds(gateway), cpu_seconds(node))
        since = time.monotonic()
        measure_updates(args, rpc, gateway, dns_port, numbers, res)
        wall = time.monotonic() - cpu_start[0]
        res.gateway_cpu_share = (cpu_seconds(gateway) - cpu_start[1]) / wall
        res.node_cpu_share = (cpu_seconds(node) - cpu_start[2]) / wall
        res.poll_sync_s = [float(m.group(3)) for m in gateway.matches(CHANGED, since)]
    finally:
        rpc.close()
        gateway.stop(warn=say)
        node.stop(warn=say)
    report(args, res, root)
    return 0


def report(args: argparse.Namespace, res: Results, root: Path) -> None:
    def row(label: str, value: str) -> str:
        return f"  {label:<42} {value}"

    delays = sorted(res.delays_s)
    polls = res.poll_sync_s
    lines = [
        f"enumer node -> enumer serve --nvs --poll {args.poll}: {res.names} signed records",
        row("ledger built (sign + store)", f"{res.build.get('seconds', 0):.1f} s"),
        row("node start to ready", f"{res.node_ready_s:.1f} s"),
        row("gateway start to ready:", f"{res.start_to_ready_s:.1f} s"),
        row("  first sync (gateway's own figure)", f"{res.sync_s:.1f} s, {res.synced_names} names"),
        row("  first sync rate", f"{res.names_per_s:,.0f} names/s"),
        row("  start-to-ready rate", f"{res.synced_names / res.start_to_ready_s:,.0f} names/s"),
        row("  answers compiled", f"{res.served} in {res.compile_s:.1f} s"),
        row("steady-state sync per poll (when changed)", _spread(polls)),
        row("update RPC (name_update) latency", _spread(res.rpc_s)),
        row(f"update-to-answer ({len(delays)} answered)", _spread(delays)),
        row("updates never answered", f"{len(res.missed)} of {res.updates_done}"),
        row("gateway CPU while polling", f"{100 * res.gateway_cpu_share:.0f}% of a core"),
        row("node CPU while polling", f"{100 * res.node_cpu_share:.0f}% of a core"),
        row("machine", f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"),
    ]
    print("\n".join(lines))
    doc = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "args": dict(vars(args)),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "results": {**res.__dict__, "names_per_s": res.names_per_s},
    }
    path = root / f"result-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(doc, indent=2, default=str))
    print(f"results: {path}")
    median = res.median_delay
    if res.missed:
        print(f"WARNING: {len(res.missed)} update(s) never reached the DNS answer: {res.missed}")
    shown = f"{median:.2f}" if median is not None else "n/a"
    print(f"first sync: {res.names_per_s:,.0f} names/s; update-to-answer: {shown} s")


def _spread(values: Sequence[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return (
        f"median {statistics.median(ordered):.2f} s "
        f"(min {ordered[0]:.2f}, max {ordered[-1]:.2f}, n={len(ordered)})"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--names", type=int, default=100_000, help="signed ENUM records (>= 100)")
    p.add_argument("--poll", type=float, default=1.0, help="the gateway's --poll (seconds)")
    p.add_argument("--updates", type=int, default=10, help="name_update round trips to time")
    p.add_argument(
        "--update-timeout",
        type=float,
        default=0.0,
        help="seconds an update may take to be answered (default: 4 poll cycles, >= 30)",
    )
    p.add_argument("--budget", type=float, default=900.0, help="seconds for all updates together")
    p.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds the gateway may take to be ready"
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the drawn numbers")
    p.add_argument("--keep", action="store_true", help="reuse a ledger built with the same data")
    args = p.parse_args(argv)
    if args.names < 100:
        p.error("--names must be at least 100")
    if args.updates < 1:
        p.error("--updates must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_benchmark(lambda: run(args), say)


if __name__ == "__main__":
    sys.exit(main())
