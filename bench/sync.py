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
import contextlib
import datetime
import hashlib
import json
import multiprocessing
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import dns.exception
import dns.message
import dns.query
import dns.rcode
import httpx

from enumer.crypto import REGTEST, PrivateKey
from enumer.nvs import NameRecord
from enumer.nvs.ledger import Ledger

# The signing workers are the gateway benchmark's (bench/gateway.py).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway import init_signer, sign_chunk

BENCH_DIR = Path(__file__).resolve().parent
OUT = BENCH_DIR / "out" / "sync"
ENUMER = Path(sys.executable).with_name("enumer")

#: Bump when the generated data change, so that ``--keep`` never reuses stale data.
DATASET_VERSION = 1
VERIFIER = "ver:bench"
USER = "bench"
HOSTS = 1000
FAR_EXPIRY = 100_000_000  # blocks: some 1,500 years at 175 a day
SIGN_CHUNK = 2000
CLK_TCK = os.sysconf("SC_CLK_TCK")
SYNCED = re.compile(
    r"synced (\d+) names from the node at height (\d+) \((\d+) changed, ([\d.]+)s\)"
)
COMPILED = re.compile(r"compiled (\d+) served numbers from (\d+) records .* in ([\d.]+)s")
CHANGED = re.compile(r"node height (\d+): (\d+) name\(s\) changed \(([\d.]+)s\)")


class BenchError(Exception):
    """The benchmark cannot go on (a server failed, an answer is wrong, a timeout)."""


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
    if store.exists():
        shutil.rmtree(store)
    started = time.monotonic()
    key = PrivateKey.generate()
    address = key.address(REGTEST).to_text()
    now = int(time.time())
    workers = os.cpu_count() or 1
    names = [f"enum:{d}:0" for d in sorted(numbers)]  # name order: appending B-tree inserts
    chunks = [names[i : i + SIGN_CHUNK] for i in range(0, len(names), SIGN_CHUNK)]
    with Ledger(store, network="regtest") as ledger:
        ledger.import_key(key.to_wif(REGTEST))
        verifier = NameRecord(
            VERIFIER, "bench verifier", address, _txid(VERIFIER), 1, 1, FAR_EXPIRY, now
        )
        ledger.put_records([verifier])
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers, initializer=init_signer, initargs=(key.secret_hex(),)) as pool:

            def records() -> Iterator[NameRecord]:
                done = 0
                for chunk, sigs in zip(chunks, pool.imap(sign_chunk, chunks), strict=True):
                    for name, sig in zip(chunk, sigs, strict=True):
                        value = record_value(host_of(name[5:-2]), sig)
                        yield NameRecord(name, value, address, _txid(name), 2, 2, FAR_EXPIRY, now)
                    done += len(chunk)
                    if done % 20000 < SIGN_CHUNK:
                        say(f"  signed and stored {done}/{len(names)}")

            stored = ledger.put_records(records())
        count = ledger.count()
    return {
        "seconds": round(time.monotonic() - started, 1),
        "records": stored,
        "names": count,
        "signers": workers,
        "verifier_address": address,
        "store_bytes": sum(p.stat().st_size for p in store.iterdir()),
    }


def _txid(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


# -- processes --------------------------------------------------------------------------------


class Server:
    """A process in its own process group; its output copied to a log, lines timestamped."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self.started = 0.0
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env=self.env,
        )
        log = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 (closed by the reader)
        self._reader = threading.Thread(
            target=self._read, args=(self.proc.stdout, log), daemon=True
        )
        self._reader.start()

    def _read(self, stream: TextIO | None, log: TextIO) -> None:
        assert stream is not None
        with log:
            for line in stream:
                log.write(line)
                log.flush()
                with self._cond:
                    self.lines.append((time.monotonic(), line.rstrip("\n")))
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 15) -> str:
        return "\n".join(line for _, line in self.lines[-n:])

    def wait_line(self, pattern: re.Pattern[str], timeout: float) -> tuple[float, re.Match[str]]:
        """(arrival time, match) of the first line matching ``pattern``."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for stamp, line in self.lines[seen:]:
                    found = pattern.search(line)
                    if found:
                        return stamp, found
                seen = len(self.lines)
                if not self.alive():
                    code = self.proc.returncode if self.proc else "?"
                    raise BenchError(f"{self.name} exited with status {code}:\n{self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"{self.name}: no {pattern.pattern!r} after {timeout:.0f} s")
                self._cond.wait(min(left, 0.5))

    def matches(self, pattern: re.Pattern[str], since: float = 0.0) -> list[re.Match[str]]:
        with self._cond:
            lines = list(self.lines)
        return [m for stamp, line in lines if stamp >= since and (m := pattern.search(line))]

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (Linux /proc)."""
        if not self.alive() or self.proc is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the process group, SIGKILL after ``timeout``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                say(f"{self.name} ignored SIGTERM for {timeout:.0f} s: SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(5)


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise BenchError("no free port on 127.0.0.1")


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
    gateway: Server,
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
    node = Server("enumer node", node_argv, root / "node.log", node_env)
    gw_argv = [str(ENUMER), "--store", str(gw_store), "serve", "--port", str(dns_port)]
    gw_argv += ["--trust", VERIFIER, "--poll", str(args.poll), "--quiet"]
    gateway = Server("enumer serve", gw_argv, root / "gateway.log", gw_env)
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

        cpu_start = (time.monotonic(), gateway.cpu_seconds(), node.cpu_seconds())
        since = time.monotonic()
        measure_updates(args, rpc, gateway, dns_port, numbers, res)
        wall = time.monotonic() - cpu_start[0]
        res.gateway_cpu_share = (gateway.cpu_seconds() - cpu_start[1]) / wall
        res.node_cpu_share = (node.cpu_seconds() - cpu_start[2]) / wall
        res.poll_sync_s = [float(m.group(3)) for m in gateway.matches(CHANGED, since)]
    finally:
        rpc.close()
        gateway.stop()
        node.stop()
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


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    try:
        return run(args)
    except BenchError as exc:
        say(f"benchmark aborted: {exc}")
        return 1
    except KeyboardInterrupt as exc:
        say(f"interrupted {exc}")
        return 130


if __name__ == "__main__":
    sys.exit(main())
