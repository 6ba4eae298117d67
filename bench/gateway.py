"""Gateway benchmark: ``enumer serve`` against NSD on the same ENUM data.

Builds (or reuses, with ``--keep``) an embedded store of N numbers with signed
ENUMER records, the NSD zone with the same answers and a dnsperf query file;
starts both servers on loopback; checks that they give the same NAPTR sets on
a sample; then runs dnsperf against each, back to back, and reports queries
per second, latency, lost queries, server CPU time per query, memory and the
time from start to serving.

    .venv/bin/python bench/gateway.py --numbers 20000 --duration 3   # ~1 minute
    .venv/bin/python bench/gateway.py                                 # 1,000,000 numbers

Everything it writes goes to ``bench/out/``; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import random
import re
import resource
import shlex
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rdtypes.IN.NAPTR
from harness import (
    VERIFIER,
    BenchError,
    ServerProcess,
    build_signed_store,
    free_port,
    run_benchmark,
)
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from enumer.crypto import MAINNET
from enumer.nvs.ledger import LEDGER_FILE, Ledger
from enumer.records import EnumValue

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
OUT = BENCH_DIR / "out"
ENUMER = Path(sys.executable).with_name("enumer")

#: Bump when the generated data change, so that ``--keep`` never reuses stale data.
DATASET_VERSION = 1
ZONE = "enum"
HOSTS = 1000  # PBX host names the numbers are spread over
MULTI_PERCENT = 3  # numbers with two directives and a TTL line
MULTI_TTL = 600
DEFAULT_TTL = 86400
IDLE_SECONDS = 3.0  # how long idle CPU use is measured
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 132)

Naptr = tuple[int, int, str, str, str, str, int]  # order, pref, flags, service, regexp, repl, ttl


# -- the data --------------------------------------------------------------------


def number_spec(digits: str) -> tuple[int, bool]:
    """(PBX host index, has two directives and a TTL line) of a number, from its digits."""
    h = zlib.crc32(digits.encode())
    return h % HOSTS, (h >> 16) % 100 < MULTI_PERCENT


def expected_naptrs(digits: str) -> list[Naptr]:
    """The NAPTR set both servers must answer for a number of the data set."""
    host, multi = number_spec(digits)
    ttl = MULTI_TTL if multi else DEFAULT_TTL
    out: list[Naptr] = [
        (100, 10, "u", "E2U+sip", f"!^(.*)$!sip:\\1@pbx{host}.example.com!", ".", ttl)
    ]
    if multi:
        out.append((100, 20, "u", "E2U+pstn:tel", "!^(.*)$!tel:\\1!", ".", ttl))
    return out


def record_directives(digits: str) -> str:
    """The directives of ``enum:<digits>:0`` (what an OSIG covers)."""
    host, multi = number_spec(digits)
    lines = [f"TTL={MULTI_TTL}"] if multi else []
    lines.append(f"E2U+sip=100|10|!^(.*)$!sip:\\1@pbx{host}.example.com!")
    if multi:
        lines.append("E2U+pstn:tel=100|20|!^(.*)$!tel:\\1!")
    return "\n".join(lines)


def record_value(digits: str, signature: str) -> str:
    """The value of ``enum:<digits>:0``: the directives, then the verifier's SIG line
    (and, in a strict data set, the VSIG and OSIG lines that follow the signature)."""
    return f"{record_directives(digits)}\nSIG={VERIFIER}|{signature}"


def reversed_name(digits: str, dotted: bool) -> str:
    """The query name of a number, relative to the zone: compact or one label per digit."""
    rev = digits[::-1]
    return ".".join(rev) if dotted else rev


@dataclass
class Dataset:
    """The files of one data set under ``bench/out/n<N>/``."""

    numbers: int
    seed: int
    dotted: float
    queries: int
    root: Path
    strict: bool = False  # records strictly signed (SIG + VSIG + OSIG, SPEC 11)
    _drawn: tuple[list[str], list[str]] | None = field(default=None, repr=False, compare=False)

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def nsd_dir(self) -> Path:
        return self.root / "nsd"

    @property
    def zone_file(self) -> Path:
        return self.nsd_dir / "enum.zone"

    @property
    def query_file(self) -> Path:
        return self.root / "queries.txt"

    @property
    def meta_file(self) -> Path:
        return self.root / "dataset.json"

    def params(self) -> dict[str, Any]:
        return {
            "version": DATASET_VERSION,
            "numbers": self.numbers,
            "seed": self.seed,
            "dotted": self.dotted,
            "queries": self.queries,
            "strict": self.strict,
        }

    def draw(self) -> tuple[list[str], list[str]]:
        """(numbers in the store, numbers that are not), deterministic from the seed.

        11 digits: a 1 then 10 random digits, all distinct.
        """
        if self._drawn is None:
            missing = max(1000, min(self.numbers, 100_000))
            rng = random.Random(self.seed)
            drawn = rng.sample(range(10**10), self.numbers + missing)
            numbers = [f"1{x:010d}" for x in drawn]
            self._drawn = numbers[: self.numbers], numbers[self.numbers :]
        return self._drawn

    def dotted_subset(self, numbers: Sequence[str]) -> Sequence[str]:
        """The numbers that also appear in dotted form (in queries and in the zone)."""
        return numbers[::10] if self.dotted > 0 else []


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def build_store(ds: Dataset, numbers: list[str]) -> dict[str, Any]:
    """A fresh store: ``ver:bench`` plus one signed ``enum:<digits>:0`` per number."""
    started = time.monotonic()
    workers = os.cpu_count() or 1
    with _progress() as progress:
        task = progress.add_task(f"signing and storing ({workers} signers)", total=len(numbers))
        address, stored = build_signed_store(
            ds.store,
            MAINNET,
            numbers,
            record_value,
            lambda done, _total: progress.update(task, completed=done),
            record_directives if ds.strict else None,
        )
    # The parser the gateway uses must read the values as we meant them.
    with Ledger(ds.store, create=False) as ledger:
        count = ledger.count()
        for digits in numbers[:50]:
            value = EnumValue.from_text(ledger.show(f"enum:{digits}:0").value)
            got = [
                (n.order, n.preference, n.flags, n.service, n.regexp, n.replacement, n.ttl)
                for n in value.naptrs()
            ]
            if got != expected_naptrs(digits) or [s.verifier for s in value.signatures] != [
                VERIFIER
            ]:
                raise BenchError(f"generated record of {digits} reads back as {got}")
    size = sum(p.stat().st_size for p in ds.store.iterdir())
    return {
        "seconds": round(time.monotonic() - started, 1),
        "records": stored,
        "names": count,
        "verifier_address": address,
        "store_bytes": size,
    }


def _zone_rr(owner: str, naptr: Naptr) -> str:
    order, pref, flags, service, regexp, repl, ttl = naptr
    quoted = regexp.replace("\\", "\\\\").replace('"', '\\"')
    return f'{owner} {ttl} NAPTR {order} {pref} "{flags}" "{service}" "{quoted}" {repl}\n'


def write_zone(ds: Dataset, numbers: list[str]) -> dict[str, Any]:
    """Zone ``enum.``: SOA, NS and one NAPTR set per number (compact owner names).

    Numbers of the dotted subset get a second owner, one label per digit, so
    that NSD answers the dotted queries of the query file as the gateway does.
    """
    ds.nsd_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    memo: dict[tuple[int, bool], list[Naptr]] = {}
    rrs = 0
    with open(ds.zone_file, "w", encoding="ascii") as fh:
        fh.write(
            f"$ORIGIN {ZONE}.\n$TTL {DEFAULT_TTL}\n"
            f"@ SOA ns.{ZONE}. hostmaster.{ZONE}. 1 3600 900 604800 300\n"
            f"@ NS ns.{ZONE}.\nns A 127.0.0.1\n"
        )

        def emit(digits: str, dotted: bool) -> int:
            spec = number_spec(digits)
            naptrs = memo.get(spec)
            if naptrs is None:
                naptrs = memo[spec] = expected_naptrs(digits)
            owner = reversed_name(digits, dotted)
            fh.write("".join(_zone_rr(owner, n) for n in naptrs))
            return len(naptrs)

        for digits in numbers:
            rrs += emit(digits, False)
        for digits in ds.dotted_subset(numbers):
            rrs += emit(digits, True)
    return {
        "seconds": round(time.monotonic() - started, 1),
        "naptr_rrs": rrs,
        "bytes": ds.zone_file.stat().st_size,
    }


def check_zone(ds: Dataset) -> dict[str, Any]:
    started = time.monotonic()
    proc = subprocess.run(
        ["nsd-checkzone", f"{ZONE}.", str(ds.zone_file)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise BenchError(f"nsd-checkzone failed: {(proc.stdout + proc.stderr).strip()[-2000:]}")
    return {
        "seconds": round(time.monotonic() - started, 1),
        "output": (proc.stdout + proc.stderr).strip(),
    }


def write_queries(ds: Dataset, numbers: list[str], missing: list[str]) -> dict[str, Any]:
    """dnsperf input: 90% existing numbers, 10% missing, NAPTR, a share dotted, shuffled."""
    rng = random.Random(ds.seed + 1)
    dotted_pool = ds.dotted_subset(numbers)
    counts = {"existing": 0, "missing": 0, "dotted": 0}
    lines: list[str] = []
    for _ in range(ds.queries):
        is_missing = rng.random() < 0.10
        dotted = rng.random() < ds.dotted
        if is_missing:
            digits = rng.choice(missing)
        else:
            digits = rng.choice(dotted_pool if dotted else numbers)
        counts["missing" if is_missing else "existing"] += 1
        counts["dotted"] += dotted
        lines.append(f"{reversed_name(digits, dotted)}.{ZONE} NAPTR\n")
    with open(ds.query_file, "w", encoding="ascii") as fh:
        fh.writelines(lines)
    return {"lines": ds.queries, **counts}


def prepare_dataset(args: argparse.Namespace) -> tuple[Dataset, dict[str, Any]]:
    """The data set for ``--numbers``: reused with ``--keep`` when complete, else built."""
    suffix = "-strict" if args.strict else ""
    ds = Dataset(
        args.numbers,
        args.seed,
        args.dotted,
        args.queries,
        OUT / f"n{args.numbers}{suffix}",
        args.strict,
    )
    if args.keep and ds.meta_file.exists():
        meta: dict[str, Any] = json.loads(ds.meta_file.read_text())
        if (
            meta.get("params") == ds.params()
            and (ds.store / LEDGER_FILE).exists()
            and ds.zone_file.exists()
            and ds.query_file.exists()
        ):
            console.print(f"reusing the data set in {ds.root} (--keep)")
            meta["reused"] = True
            return ds, meta
        console.print("[yellow]--keep: the cached data set does not match, rebuilding[/]")
    ds.root.mkdir(parents=True, exist_ok=True)
    ds.meta_file.unlink(missing_ok=True)
    console.print(f"building the data set of {ds.numbers:,} numbers in {ds.root}")
    numbers, missing = ds.draw()
    meta = {"params": ds.params()}
    meta["store"] = build_store(ds, numbers)
    console.print(
        f"  store: {meta['store']['records']:,} records in "
        f"{meta['store']['seconds']} s ({meta['store']['store_bytes'] / 2**20:.0f} MiB)"
    )
    meta["zone"] = write_zone(ds, numbers)
    meta["zone"]["check"] = check_zone(ds)
    console.print(
        f"  zone: {meta['zone']['naptr_rrs']:,} NAPTR RRs, "
        f"{meta['zone']['bytes'] / 2**20:.0f} MiB, nsd-checkzone "
        f"{meta['zone']['check']['seconds']} s: {meta['zone']['check']['output']}"
    )
    meta["queries"] = write_queries(ds, numbers, missing)
    console.print(f"  queries: {meta['queries']}")
    ds.meta_file.write_text(json.dumps(meta, indent=2))
    meta["reused"] = False
    return ds, meta


# -- processes -------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    tree = _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(tree.get(p, []))
    return out


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of a process tree so far, robust to workers coming and going.

    utime + stime (all threads) plus cutime + cstime (children already reaped)
    of every live process of the tree: a worker that exits and is reaped moves
    its time into its parent's cutime/cstime, and a new worker starts at zero,
    so the difference of two readings is what the tree used in between.
    """
    ticks = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(v) for v in fields[11:15])
    return ticks / CLK_TCK


def memory_kib(pids: Sequence[int], pss: bool = True) -> dict[str, int]:
    """VmRSS, VmHWM (summed: shared pages of forked workers count once per process),
    RssAnon (the part that is not mapped files: heap and private memory) and Pss."""
    out = {"rss_kib": 0, "hwm_kib": 0, "anon_kib": 0, "pss_kib": 0}
    fields = {"VmRSS": "rss_kib", "VmHWM": "hwm_kib", "RssAnon": "anon_kib"}
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                name = fields.get(line.partition(":")[0])
                if name is not None:
                    out[name] += int(line.split()[1])
        if not pss:
            continue
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    out["pss_kib"] += int(line.split()[1])
    return out


class Server(ServerProcess):
    """A server of the comparison, started from the repository; ``ready_word`` is
    in its ready line (None for NSD, which has none: ``wait_answering`` is used)."""

    def __init__(self, name: str, argv: list[str], log_path: Path, ready_word: str | None) -> None:
        super().__init__(name, argv, log_path, cwd=REPO)
        self.ready_word = ready_word
        self.ready_line = ""
        self.start_peak_rss_kib = 0  # highest RSS sum of the process tree while starting

    def wait_ready(self, timeout: float) -> float:
        """Seconds from start to the ready line, sampling the tree's RSS meanwhile."""
        assert self.ready_word is not None

        def sample_rss() -> None:
            rss = memory_kib(self.tree(), pss=False)["rss_kib"]
            self.start_peak_rss_kib = max(self.start_peak_rss_kib, rss)

        pattern = re.compile(re.escape(self.ready_word), re.IGNORECASE)
        arrived, found = self.wait_line(pattern, timeout, sample_rss)
        self.ready_line = found.string.strip()
        return arrived - self.started

    def tree(self) -> list[int]:
        return process_tree(self.pid) if self.alive() else []

    def stop(
        self, timeout: float = 60.0, warn: Callable[[str], None] | None = None
    ) -> float | None:
        return super().stop(timeout, warn or (lambda text: console.print(f"[red]{text}[/]")))


# -- DNS ---------------------------------------------------------------------------


def query(port: int, name: str, rdtype: str = "NAPTR", timeout: float = 2.0) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=timeout)


def answer_of(port: int, name: str) -> Any:
    """(rcode, sorted answer RRs) of a NAPTR query, or None when nothing answered."""
    try:
        reply = query(port, name, timeout=1.0)
    except Exception:
        return None
    return (reply.rcode(), sorted(r.to_text() for rrset in reply.answer for r in rrset))


def enumer(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run an ``enumer --store STORE ...`` command; its stderr becomes the BenchError."""
    proc = subprocess.run(
        [str(ENUMER), "--store", str(store), *args], capture_output=True, text=True, timeout=3600
    )
    if proc.returncode != 0:
        raise BenchError(f"enumer {' '.join(args)}: {proc.stderr.strip()[-500:]}")
    return proc


def change_to_served(ds: Dataset, port: int, timeout: float = 60.0) -> float:
    """One block on the store (a new number, signed by the verifier), and the seconds
    from its commit to the running gateway serving it.

    The commit is the moment this process, polling the store's height, first sees
    the signing command's block; the same loop asks the gateway every 5 ms.
    """
    digits = f"1999{int(time.time()) % 10**7:07d}"  # not in the data set (10 random digits after 1)
    name = f"{'.'.join(digits[::-1])}.{ZONE}."
    before = answer_of(port, name)
    enumer(ds.store, "record", "new", "+" + digits, "--sip", "sip:bench@pbx.example")
    with Ledger(ds.store, create=False) as ledger:
        height = ledger.height()
        sign = ("verifier", "sign", "bench", f"enum:{digits}:0", "--append")
        signer = threading.Thread(target=enumer, args=(ds.store, *sign))
        signer.start()
        committed = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if committed is None and ledger.height() > height:
                committed = time.monotonic()
            now = answer_of(port, name)
            if now and now != before and now[1]:
                signer.join()
                return max(0.0, time.monotonic() - (committed or time.monotonic()))
            time.sleep(0.005)
        signer.join()
    raise BenchError(f"the gateway did not serve the new record {digits} within {timeout:.0f} s")


def wait_answering(port: int, name: str, timeout: float, server: Server | None = None) -> float:
    """Poll with a query until the server answers; returns when it did (monotonic)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            query(port, name, timeout=0.3)
            return time.monotonic()
        except (dns.exception.Timeout, OSError):
            pass
        if server is not None and not server.alive():
            raise BenchError(f"{server.name} exited:\n{server.tail()}")
        if time.monotonic() > deadline:
            raise BenchError(f"no answer on port {port} after {timeout:.0f} s")
        time.sleep(0.05)


def naptr_set(response: dns.message.Message) -> tuple[str, set[Naptr]]:
    out: set[Naptr] = set()
    for rrset in response.answer:
        for rd in rrset:
            if isinstance(rd, dns.rdtypes.IN.NAPTR.NAPTR):
                out.add(
                    (
                        rd.order,
                        rd.preference,
                        rd.flags.decode(),
                        rd.service.decode(),
                        rd.regexp.decode(),
                        rd.replacement.to_text(),
                        rrset.ttl,
                    )
                )
    return dns.rcode.to_text(response.rcode()), out


def check_answers(ds: Dataset, ports: dict[str, int], samples: int) -> dict[str, Any]:
    """Every server gives the NAPTR set (TTL included) and rcode the data set says.

    ``samples`` names: 90% numbers of the store, 10% missing ones (half of them
    dotted), plus 10 numbers of the dotted subset in dotted form.
    """
    numbers, missing = ds.draw()
    rng = random.Random(ds.seed + 2)
    present = rng.sample(numbers, min(len(numbers), samples * 9 // 10))
    absent = rng.sample(missing, samples - len(present))
    dotted_pool = list(ds.dotted_subset(numbers))
    picks = [(d, True, False) for d in present]
    picks += [(d, False, ds.dotted > 0 and i % 2 == 0) for i, d in enumerate(absent)]
    picks += [(d, True, True) for d in rng.sample(dotted_pool, min(len(dotted_pool), 10))]
    mismatches: list[str] = []
    for digits, exists, dotted in picks:
        name = f"{reversed_name(digits, dotted)}.{ZONE}."
        want = set(expected_naptrs(digits)) if exists else set()
        want_rcode = "NOERROR" if exists else "NXDOMAIN"
        for label, port in ports.items():
            rcode, naptrs = naptr_set(query(port, name))
            if naptrs != want or rcode != want_rcode:
                mismatches.append(
                    f"{label} {name}: {rcode} {sorted(naptrs)}; expected "
                    f"{want_rcode} {sorted(want)}"
                )
    return {"checked": len(picks), "mismatches": mismatches[:20], "mismatch_count": len(mismatches)}


# -- dnsperf -----------------------------------------------------------------------


def system_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (everything but idle and iowait)."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / CLK_TCK


@dataclass
class PerfRun:
    server: str
    mode: str
    round: int
    argv: list[str]
    sent: int = 0
    completed: int = 0
    lost: int = 0
    qps: float = 0.0
    avg_latency_ms: float = 0.0
    min_latency_ms: float = 0.0
    max_latency_ms: float = 0.0
    stddev_latency_ms: float = 0.0
    run_seconds: float = 0.0
    rcodes: dict[str, int] = field(default_factory=dict)
    response_bytes: float = 0.0
    server_cpu_s: float = 0.0
    server_cpu_us_per_query: float = 0.0
    server_cores: float = 0.0  # server CPU seconds per second of the run
    client_cores: float = 0.0  # dnsperf's
    other_cores: float = 0.0  # everything else on the machine (noise from other work)
    memory_after: dict[str, int] = field(default_factory=dict)


def _num(pattern: str, text: str, default: float = 0.0) -> float:
    m = re.search(pattern, text)
    return float(m.group(1)) if m else default


def parse_dnsperf(text: str, run: PerfRun) -> None:
    run.sent = int(_num(r"Queries sent:\s+(\d+)", text))
    run.completed = int(_num(r"Queries completed:\s+(\d+)", text))
    run.lost = int(_num(r"Queries lost:\s+(\d+)", text))
    run.qps = round(_num(r"Queries per second:\s+([\d.]+)", text), 1)
    run.run_seconds = _num(r"Run time \(s\):\s+([\d.]+)", text)
    m = re.search(r"Average Latency \(s\):\s+([\d.]+) \(min ([\d.]+), max ([\d.]+)\)", text)
    if m:
        run.avg_latency_ms, run.min_latency_ms, run.max_latency_ms = (
            round(float(g) * 1000, 3) for g in m.groups()
        )
    run.stddev_latency_ms = round(_num(r"Latency StdDev \(s\):\s+([\d.]+)", text) * 1000, 3)
    run.response_bytes = _num(r"Average packet size:.*response (\d+)", text)
    m2 = re.search(r"Response codes:\s+(.*)", text)
    if m2:
        run.rcodes = {code: int(n) for code, n in re.findall(r"(\w+) (\d+) \(", m2.group(1))}


def dnsperf(
    server: Server,
    port: int,
    mode: str,
    round_: int,
    ds: Dataset,
    args: argparse.Namespace,
    rate: int | None,
    queries: Path | None = None,
    extra: Sequence[str] = (),
) -> PerfRun:
    """One dnsperf run; the server's CPU time comes from /proc before and after.

    ``queries`` replaces the data set's query file, ``extra`` adds dnsperf options
    (``-D``: the DO bit, bench/dnssec.py)."""
    argv = [
        "dnsperf",
        "-s",
        "127.0.0.1",
        "-p",
        str(port),
        "-d",
        str(queries or ds.query_file),
        *extra,
        "-c",
        str(args.clients),
        "-T",
        "1",
        "-q",
        str(args.outstanding),
        "-l",
        str(args.duration),
    ]
    if rate:
        argv += ["-Q", str(rate)]
    run = PerfRun(server.name, mode, round_, argv)
    before = tree_cpu_seconds(server.pid)
    busy_before = system_busy_seconds()
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=args.duration + 60)
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = system_busy_seconds() - busy_before
    server_cpu = tree_cpu_seconds(server.pid) - before
    (OUT / "logs" / f"dnsperf-{server.name}-{mode}-{round_}.txt").write_text(
        shlex.join(argv) + "\n" + proc.stdout + proc.stderr
    )
    if proc.returncode != 0:
        raise BenchError(f"dnsperf failed ({proc.returncode}): {proc.stderr.strip()[-1000:]}")
    if not server.alive():
        raise BenchError(f"{server.name} died during dnsperf:\n{server.tail()}")
    parse_dnsperf(proc.stdout, run)
    seconds = max(run.run_seconds, 1e-9)
    client = (client_after.ru_utime + client_after.ru_stime) - (
        client_before.ru_utime + client_before.ru_stime
    )
    run.server_cpu_s = round(server_cpu, 3)
    run.server_cpu_us_per_query = round(1e6 * server_cpu / max(run.completed, 1), 2)
    run.server_cores = round(server_cpu / seconds, 3)
    run.client_cores = round(client / seconds, 3)
    run.other_cores = round(max(0.0, busy - server_cpu - client) / seconds, 3)
    run.memory_after = memory_kib(server.tree())
    noisy = " [yellow](other load)[/]" if run.other_cores > 0.25 else ""
    console.print(
        f"  {server.name:<8} {mode:<5} #{round_} {run.qps:>9,.0f} q/s  avg "
        f"{run.avg_latency_ms:6.3f} ms  max {run.max_latency_ms:6.1f} ms  lost "
        f"{run.lost:<5} server {run.server_cpu_us_per_query:5.1f} us/q "
        f"{run.server_cores:.2f} cores, dnsperf {run.client_cores:.2f}, other "
        f"{run.other_cores:.2f}{noisy}"
    )
    return run


# -- the servers -----------------------------------------------------------------


@dataclass
class ServerResult:
    label: str
    command: str
    port: int
    start_seconds: float = 0.0  # to the ready line (gateway) or to the first answer (NSD)
    start_to_answer_seconds: float = 0.0
    restart_seconds: float | None = None
    restart_to_answer_seconds: float | None = None
    stop_seconds: float | None = None
    ready_line: str = ""
    start_peak_rss_mib: float = 0.0  # RSS sum of the process tree, sampled while starting
    restart_peak_rss_mib: float | None = None
    #: A new signed record on the store: seconds from its block's commit to served.
    change_served_seconds: float | None = None
    #: ``--workers-pss N``: PSS of the whole tree with N UDP workers, after the same short
    #: dnsperf run as the single loop, and its ratio to the single loop's PSS then.
    workers_pss_mib: dict[str, float] = field(default_factory=dict)
    start_cpu_seconds: float | None = None  # CPU of the first start (build), workers included
    start_cpu_us_per_record: float | None = None
    #: libsecp256k1 key recoveries per second on all cores, measured before the first start.
    raw_recoveries_per_second: float | None = None
    #: Signatures the first build checked per second (its log line), and per second of
    #: the whole first start (to ready).
    build_checks_per_second: float | None = None
    start_checks_per_second: float | None = None
    memory_idle: dict[str, int] = field(default_factory=dict)
    processes: int = 0
    idle_cpu_cores: float = 0.0  # CPU the server uses with no queries (polling threads)
    runs: list[PerfRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def best(self, mode: str) -> PerfRun | None:
        """Best of the rounds: most queries per second, or (fixed rate) lowest latency.

        Other work on the machine only ever slows a run down, so the best round is
        the one closest to the undisturbed figure; every round is in the JSON.
        """
        runs = [r for r in self.runs if r.mode == mode]
        if not runs:
            return None
        if mode == "max":
            return max(runs, key=lambda r: r.qps)
        return min(runs, key=lambda r: (r.lost, r.avg_latency_ms))


def serve_help() -> str:
    proc = subprocess.run(
        [str(ENUMER), "serve", "--help"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    if proc.returncode != 0:
        raise BenchError(
            "'enumer serve --help' failed, the gateway is not runnable: "
            f"{(proc.stdout + proc.stderr).strip()[-500:]}"
        )
    return proc.stdout


def gateway_argv(ds: Dataset, port: int, args: argparse.Namespace, help_text: str) -> list[str]:
    argv = [
        str(ENUMER),
        "--store",
        str(ds.store),
        "serve",
        "--port",
        str(port),
        "--trust",
        VERIFIER,
    ]
    if args.strict:
        argv += ["--signatures", "strict"]
    if "--udp-workers" in help_text and "--udp-workers" not in args.gateway_args:
        argv += ["--udp-workers", str(args.udp_workers)]
    if "--no-ratelimit" in help_text and "ratelimit" not in args.gateway_args:
        argv.append("--no-ratelimit")  # as NSD's rrl-ratelimit: 0
    return argv + shlex.split(args.gateway_args)


def nsd_conf(ds: Dataset, port: int, count: int) -> Path:
    """nsd.conf of one server-count: loopback, no RRL, minimal responses, own files."""
    base = ds.nsd_dir
    conf = base / f"nsd-{count}.conf"
    run = base / f"run-{count}"
    run.mkdir(parents=True, exist_ok=True)
    conf.write_text(f"""server:
    ip-address: 127.0.0.1@{port}
    port: {port}
    server-count: {count}
    reuseport: yes
    username: ""
    chroot: ""
    zonesdir: "{base}"
    database: ""
    zonelistfile: "{run}/zone.list"
    xfrdfile: "{run}/xfrd.state"
    xfrdir: "{run}"
    pidfile: "{run}/nsd.pid"
    logfile: "{run}/nsd.log"
    verbosity: 1
    rrl-ratelimit: 0
    minimal-responses: yes
    hide-version: yes
remote-control:
    control-enable: no
zone:
    name: "{ZONE}."
    zonefile: "enum.zone"
""")
    proc = subprocess.run(["nsd-checkconf", str(conf)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise BenchError(f"nsd-checkconf {conf}: {(proc.stdout + proc.stderr).strip()}")
    return conf


def probe_name(ds: Dataset) -> str:
    """A name both servers answer with a NAPTR set: the first number of the data set."""
    return f"{ds.draw()[0][0][::-1]}.{ZONE}."


def _creation_lines(lines: list[str]) -> list[str]:
    return [ln for ln in lines if re.search(r"compiled|loaded|snapshot", ln)]


def _recoveries_for(seconds: float) -> int:
    """In a pool worker: how many ECDSA key recoveries libsecp256k1 does in ``seconds``
    (one signature parsed once, recovered again and again, through the cffi binding the
    gateway uses): the ceiling of a first start's signature checks on one core."""
    from coincurve import PrivateKey
    from coincurve._libsecp256k1 import ffi, lib

    ctx = lib.secp256k1_context_create(lib.SECP256K1_CONTEXT_NONE)
    digest = bytes(range(32))
    compact = PrivateKey().sign_recoverable(digest, hasher=None)
    sig = ffi.new("secp256k1_ecdsa_recoverable_signature *")
    pub = ffi.new("secp256k1_pubkey *")
    lib.secp256k1_ecdsa_recoverable_signature_parse_compact(ctx, sig, compact[:64], compact[64])
    recover = lib.secp256k1_ecdsa_recover
    count = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(50):
            recover(ctx, pub, sig, digest)
        count += 50
    lib.secp256k1_context_destroy(ctx)
    return count


def raw_recovery_rate(seconds: float = 5.0) -> float:
    """Key recoveries per second of libsecp256k1 on every core at once (one process per
    core, as the table build runs), measured just before the gateway's first start."""
    import multiprocessing

    cores = os.cpu_count() or 1
    pool = multiprocessing.get_context("fork").Pool(cores, initializer=_default_signals)
    try:
        counts = pool.map(_recoveries_for, [seconds] * cores)
    except BaseException:
        pool.terminate()
        raise
    pool.close()  # the workers exit by themselves: terminate would signal them
    pool.join()
    return sum(counts) / seconds


def _default_signals() -> None:
    """In a pool worker: SIGTERM and SIGINT as by default (the harness's handlers,
    inherited by fork, would print a traceback when the pool ends)."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_gateway(
    ds: Dataset, port: int, args: argparse.Namespace, probe: str, stamp: str, servers: list[Server]
) -> tuple[Server, ServerResult]:
    """First start without a snapshot (the full table build), then a restart from it."""
    for snap in ds.store.glob("gateway-*.snapshot"):
        snap.unlink()
    argv = gateway_argv(ds, port, args, serve_help())
    g = ServerResult("gateway", shlex.join(argv), port)
    g.raw_recoveries_per_second = round(raw_recovery_rate())
    console.print(
        f"libsecp256k1 alone: {g.raw_recoveries_per_second:,} key recoveries/s on "
        f"{os.cpu_count()} cores"
    )
    log_path = OUT / "logs" / f"gateway-{stamp}.log"
    console.print(f"starting the gateway (first start: table build): {g.command}")
    gw = Server("gateway", argv, log_path, "ready")
    servers.append(gw)
    gw.start()
    g.start_seconds = round(gw.wait_ready(args.start_timeout), 2)
    g.start_to_answer_seconds = round(wait_answering(port, probe, 60, gw) - gw.started, 2)
    g.ready_line = gw.ready_line
    g.start_peak_rss_mib = round(gw.start_peak_rss_kib / 1024, 1)
    g.start_cpu_seconds = round(tree_cpu_seconds(gw.pid), 2)
    g.start_cpu_us_per_record = round(g.start_cpu_seconds * 1e6 / max(ds.numbers, 1), 1)
    checks = re.search(r"\((\d+) signatures checked\) in ([0-9.]+)s", " ".join(gw.lines))
    if checks:  # the build's own rate, from its log line, and the whole start's
        g.build_checks_per_second = round(int(checks[1]) / max(float(checks[2]), 1e-3))
    g.start_checks_per_second = round(
        (int(checks[1]) if checks else ds.numbers) / max(g.start_seconds, 1e-3)
    )
    g.notes += [f"first start: {ln}" for ln in _creation_lines(gw.lines)]
    first = memory_kib(gw.tree())
    g.notes.append(f"memory after the first start (KiB): {first}")
    console.print(f"  ready after {g.start_seconds:.2f} s: {gw.ready_line}")
    if args.skip_restart:
        return gw, g
    g.stop_seconds = round(gw.stop() or 0.0, 2)
    snaps = {
        p.name: {"size": p.stat().st_size, "disk": p.stat().st_blocks * 512}
        for p in ds.store.glob("gateway-*.snapshot")
    }
    g.notes.append(
        f"snapshots after the stop (bytes; the file is sparse, 'disk' is what it uses): "
        f"{snaps}; stopping took {g.stop_seconds} s"
    )
    gw = Server("gateway", argv, log_path, "ready")
    servers.append(gw)
    gw.start()
    g.restart_seconds = round(gw.wait_ready(args.start_timeout), 2)
    g.restart_to_answer_seconds = round(wait_answering(port, probe, 60, gw) - gw.started, 2)
    g.restart_peak_rss_mib = round(gw.start_peak_rss_kib / 1024, 1)
    g.notes += [f"restart: {ln}" for ln in _creation_lines(gw.lines)]
    console.print(f"  restart: ready after {g.restart_seconds:.2f} s: {gw.ready_line}")
    g.change_served_seconds = round(change_to_served(ds, port), 3)
    console.print(f"  a new signed record: served {g.change_served_seconds:.3f} s after its block")
    return gw, g


def measure_workers_pss(
    ds: Dataset,
    gw: Server,
    g: ServerResult,
    args: argparse.Namespace,
    stamp: str,
    servers: list[Server],
) -> Server:
    """PSS of the gateway tree with one UDP loop, then with ``--workers-pss`` forked
    workers on the same table file, each measured right after the same short dnsperf
    run at max rate (so every process has read the table's pages): the shared file
    counts once, so the ratio shows what each extra worker costs.  Returns the server
    left running (the multi-worker one)."""
    short = argparse.Namespace(**{**vars(args), "duration": 3})
    dnsperf(gw, g.port, "pss", 1, ds, short, None)
    single = memory_kib(gw.tree())
    gw.stop(timeout=60)
    multi_args = argparse.Namespace(**{**vars(args), "udp_workers": args.workers_pss})
    argv = gateway_argv(ds, g.port, multi_args, serve_help())
    multi = Server("gateway", argv, OUT / "logs" / f"gateway-{stamp}-workers.log", "ready")
    servers.append(multi)
    multi.start()
    multi.wait_ready(args.start_timeout)
    dnsperf(multi, g.port, "pss", 2, ds, short, None)
    tree = multi.tree()
    many = memory_kib(tree)
    g.workers_pss_mib = {
        "single_loop": round(single["pss_kib"] / 1024, 1),
        f"udp_workers_{args.workers_pss}": round(many["pss_kib"] / 1024, 1),
        "processes": len(tree),
        "ratio": round(many["pss_kib"] / max(single["pss_kib"], 1), 3),
    }
    console.print(f"  PSS, one loop against {args.workers_pss} workers: {g.workers_pss_mib}")
    return multi


def knot_conf(ds: Dataset, port: int, workers: int) -> Path:
    """knot.conf of one udp-workers count, serving the NSD zone file as it is: loopback,
    no RRL module, no zone file sync or journal, its own run directory."""
    base = ds.nsd_dir
    run = base / f"knot-run-{workers}"
    run.mkdir(parents=True, exist_ok=True)
    conf = base / f"knot-{workers}.conf"
    conf.write_text(f"""server:
    rundir: "{run}"
    listen: 127.0.0.1@{port}
    udp-workers: {workers}
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{run}"
log:
  - target: stderr
    any: info
template:
  - id: default
    storage: "{base}"
    semantic-checks: off
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: {ZONE}.
    file: "{ds.zone_file.name}"
""")
    proc = subprocess.run(
        ["knotc", "-c", str(conf), "conf-check"], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        raise BenchError(f"knotc conf-check {conf}: {(proc.stdout + proc.stderr).strip()}")
    return conf


def start_knot(
    ds: Dataset,
    port: int,
    workers: int,
    args: argparse.Namespace,
    probe: str,
    stamp: str,
    servers: list[Server],
) -> tuple[Server, ServerResult]:
    label = f"knot-{workers}"
    conf = knot_conf(ds, port, workers)
    argv = ["knotd", "-c", str(conf)]
    k = ServerResult(label, shlex.join(argv), port)
    console.print(f"starting Knot DNS (udp-workers {workers}): {k.command}")
    ks = Server(label, argv, OUT / "logs" / f"{label}-{stamp}.log", None)
    servers.append(ks)
    ks.start()
    answered = wait_answering(port, probe, args.start_timeout, ks)
    k.start_peak_rss_mib = round(memory_kib(ks.tree(), pss=False)["hwm_kib"] / 1024, 1)
    k.start_seconds = k.start_to_answer_seconds = round(answered - ks.started, 2)
    console.print(f"  answering after {k.start_seconds:.2f} s")
    return ks, k


def start_nsd(
    ds: Dataset,
    port: int,
    count: int,
    args: argparse.Namespace,
    probe: str,
    stamp: str,
    servers: list[Server],
) -> tuple[Server, ServerResult]:
    label = f"nsd-{count}"
    conf = nsd_conf(ds, port, count)
    argv = ["nsd", "-d", "-c", str(conf)]
    n = ServerResult(label, shlex.join(argv), port)
    console.print(f"starting NSD (server-count {count}): {n.command}")
    ns = Server(label, argv, OUT / "logs" / f"{label}-{stamp}.log", None)
    servers.append(ns)
    ns.start()
    answered = wait_answering(port, probe, args.start_timeout, ns)
    n.start_peak_rss_mib = round(memory_kib(ns.tree(), pss=False)["hwm_kib"] / 1024, 1)
    n.start_seconds = n.start_to_answer_seconds = round(answered - ns.started, 2)
    console.print(f"  answering after {n.start_seconds:.2f} s")
    return ns, n


# -- report ------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def modes_of(results: dict[str, ServerResult]) -> list[str]:
    """The dnsperf modes in the order they ran (max first)."""
    return list(dict.fromkeys(r.mode for res in results.values() for r in res.runs))


def report(results: dict[str, ServerResult], primary: str) -> Table:
    labels = list(results)
    has_gateway = "gateway" in labels
    others = [lb for lb in labels if lb != "gateway"] if has_gateway else []
    table = Table(title="ENUM gateway vs NSD and Knot DNS (best of the rounds)")
    table.add_column("metric")
    for label in labels:
        table.add_column(label, justify="right")
    for other in others:
        table.add_column(f"gateway / {other}", justify="right")

    def row(name: str, values: list[float | None], spec: str, ratio: bool = True) -> None:
        g = values[labels.index("gateway")] if has_gateway else None
        table.add_row(
            name,
            *(_fmt(v, spec) for v in values),
            *((_ratio(g, values[labels.index(o)]) if ratio else "") for o in others),
        )

    for mode in modes_of(results):
        runs = [results[lb].best(mode) for lb in labels]
        title = "max rate" if mode == "max" else f"-Q {mode}"
        row(f"{title}: queries/s", [r.qps if r else None for r in runs], ",.0f")
        row(f"{title}: avg latency ms", [r.avg_latency_ms if r else None for r in runs], ".3f")
        row(f"{title}: max latency ms", [r.max_latency_ms if r else None for r in runs], ".1f")
        row(f"{title}: lost queries", [r.lost if r else None for r in runs], ",d", False)
        row(
            f"{title}: server CPU us/query",
            [r.server_cpu_us_per_query if r else None for r in runs],
            ".1f",
        )
        row(f"{title}: server CPU cores", [r.server_cores if r else None for r in runs], ".2f")
        row(
            f"{title}: dnsperf CPU cores",
            [r.client_cores if r else None for r in runs],
            ".2f",
            False,
        )
        row(
            f"{title}: other CPU cores (noise)",
            [r.other_cores if r else None for r in runs],
            ".2f",
            False,
        )
        if mode == "max":
            row("response bytes (avg)", [r.response_bytes if r else None for r in runs], ".0f")
    res = [results[lb] for lb in labels]
    row("start to ready s", [r.start_seconds for r in res], ".2f")
    row("start to answering s", [r.start_to_answer_seconds for r in res], ".2f")
    row("restart to ready s", [r.restart_seconds for r in res], ".2f")
    row("new record to served s", [r.change_served_seconds for r in res], ".3f", ratio=False)
    row(
        "PSS, N UDP workers / one loop",
        [r.workers_pss_mib.get("ratio") for r in res],
        ".2f",
        ratio=False,
    )
    row("first start CPU µs/record", [r.start_cpu_us_per_record for r in res], ".1f", False)
    row(
        "libsecp256k1 recoveries/s, all cores",
        [r.raw_recoveries_per_second for r in res],
        ",.0f",
        False,
    )
    row("first build: signatures/s", [r.build_checks_per_second for r in res], ",.0f", False)
    row("first start: signatures/s", [r.start_checks_per_second for r in res], ",.0f", False)
    row(
        "raw / first start signatures/s",
        [
            r.raw_recoveries_per_second / r.start_checks_per_second
            if r.raw_recoveries_per_second and r.start_checks_per_second
            else None
            for r in res
        ],
        ".2f",
        False,
    )
    row("first start peak RSS MiB", [r.start_peak_rss_mib for r in res], ",.0f", False)
    row("RSS MiB (sum)", [r.memory_idle.get("rss_kib", 0) / 1024 for r in res], ",.0f")
    row("PSS MiB (sum)", [r.memory_idle.get("pss_kib", 0) / 1024 for r in res], ",.0f")
    row("peak RSS MiB (VmHWM sum)", [r.memory_idle.get("hwm_kib", 0) / 1024 for r in res], ",.0f")
    row("peak RSS MiB while starting", [r.start_peak_rss_mib for r in res], ",.0f")
    row("idle CPU cores (no queries)", [r.idle_cpu_cores for r in res], ".3f", False)
    row("processes", [r.processes for r in res], "d", False)
    table.caption = (
        f"ratios: gateway divided by the column; headline baseline {primary}. Memory: idle, "
        "before the dnsperf runs; RSS sums count pages shared by forked processes once per "
        "process, PSS counts them once"
    )
    return table


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, IndexError, ValueError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    versions = {}
    for tool, flag in (("nsd", "-v"), ("knotd", "--version"), ("dnsperf", "-h")):
        proc = subprocess.run([tool, flag], capture_output=True, text=True, timeout=10)
        m = re.search(r"[Vv]ersion (\S+)", proc.stdout + proc.stderr)
        versions[tool] = m.group(1) if m else "?"
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        **versions,
    }


# -- main --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="ENUMER gateway benchmark: enumer serve vs NSD and Knot DNS",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--numbers", type=int, default=1_000_000, help="numbers in the store")
    p.add_argument("--duration", type=int, default=10, help="seconds per dnsperf run")
    p.add_argument("--clients", type=int, default=32, help="dnsperf -c")
    p.add_argument("--outstanding", type=int, default=200, help="dnsperf -q")
    p.add_argument(
        "--rate",
        default="50000,20000",
        help="dnsperf -Q of the fixed-rate (latency) runs, comma-separated; '' to skip them",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="dnsperf runs per server and mode, interleaved; the best is reported",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="reuse the cached store, zone and queries of this --numbers if complete",
    )
    p.add_argument("--gateway-args", default="", help="extra arguments of 'enumer serve'")
    p.add_argument(
        "--udp-workers",
        type=int,
        default=1,
        help="'enumer serve --udp-workers' (1, its default: a thread with the C loop; "
        "on 2 cores the load generator needs the other one)",
    )
    p.add_argument(
        "--nsd-counts",
        default="1,2",
        help="NSD server-count values, comma-separated; the first is the baseline "
        "of the headline ratio",
    )
    p.add_argument(
        "--knot-counts",
        default="1,2",
        help="Knot DNS udp-workers values, comma-separated ('' for none)",
    )
    p.add_argument("--queries", type=int, default=1_000_000, help="lines in the query file")
    p.add_argument(
        "--dotted", type=float, default=0.1, help="share of queries with one label per digit"
    )
    p.add_argument("--samples", type=int, default=200, help="numbers in the correctness check")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--gateway-port", type=int, default=15335)
    p.add_argument("--nsd-port", type=int, default=15353, help="NSD ports start here")
    p.add_argument(
        "--start-timeout",
        type=float,
        default=1800.0,
        help="seconds a server may take to start serving",
    )
    p.add_argument("--skip-restart", action="store_true", help="do not measure the restart")
    p.add_argument(
        "--workers-pss",
        type=int,
        default=2,
        help="after the runs, restart the gateway with this many --udp-workers and compare "
        "the tree's PSS with the single loop's (0 or 1: skip)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="strictly signed records (SIG + VSIG + OSIG, SPEC 11) served with "
        "'serve --signatures strict': the first build checks three signatures per record",
    )
    p.add_argument("--skip-gateway", action="store_true", help="NSD only (no ratio)")
    p.add_argument(
        "--prepare-only",
        action="store_true",
        help="build the data set (store, zone, queries) and stop",
    )
    args = p.parse_args(argv)
    args.nsd_counts = [int(x) for x in str(args.nsd_counts).split(",") if x.strip()]
    args.knot_counts = [int(x) for x in str(args.knot_counts).split(",") if x.strip()]
    args.rate = [int(x) for x in str(args.rate).split(",") if x.strip() and int(x) > 0]
    if args.numbers < 1000:
        p.error("--numbers must be at least 1000")
    if not args.nsd_counts:
        p.error("--nsd-counts: give at least one server-count")
    return args


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    (OUT / "logs").mkdir(parents=True, exist_ok=True)
    ds, meta = prepare_dataset(args)
    if args.prepare_only:
        return 0
    probe = probe_name(ds)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    results: dict[str, ServerResult] = {}
    live: dict[str, Server] = {}
    servers: list[Server] = []
    try:
        used: set[int] = set()
        if not args.skip_gateway:
            port = free_port(args.gateway_port)
            used.add(port)
            live["gateway"], results["gateway"] = start_gateway(
                ds, port, args, probe, stamp, servers
            )
        nport = args.nsd_port
        for count in args.nsd_counts:
            while nport in used:
                nport += 1
            port = free_port(nport)
            used.add(port)
            ns, n = start_nsd(ds, port, count, args, probe, stamp, servers)
            live[n.label], results[n.label] = ns, n
        for workers in args.knot_counts:
            while nport in used:
                nport += 1
            port = free_port(nport)
            used.add(port)
            ks, k = start_knot(ds, port, workers, args, probe, stamp, servers)
            live[k.label], results[k.label] = ks, k

        ports = {label: r.port for label, r in results.items()}
        check = check_answers(ds, ports, args.samples)
        meta["correctness"] = check
        if check["mismatch_count"]:
            raise BenchError(
                f"answers differ ({check['mismatch_count']} mismatches over "
                f"{check['checked']} names):\n" + "\n".join(check["mismatches"])
            )
        console.print(
            f"correctness: {check['checked']} names, the same NAPTR sets and rcodes "
            f"from {', '.join(ports)}, as generated"
        )

        idle_before = {label: tree_cpu_seconds(server.pid) for label, server in live.items()}
        time.sleep(IDLE_SECONDS)
        for label, result in results.items():
            idle = tree_cpu_seconds(live[label].pid) - idle_before[label]
            result.idle_cpu_cores = round(idle / IDLE_SECONDS, 3)
            result.memory_idle = memory_kib(live[label].tree())
            result.processes = len(live[label].tree())
        console.print(
            f"dnsperf: {args.duration} s per run, -c {args.clients} -T 1 "
            f"-q {args.outstanding}, {args.rounds} round(s), servers interleaved"
        )
        labels = list(results)
        modes: list[tuple[str, int | None]] = [("max", None)]
        modes += [(f"{r // 1000}k" if r % 1000 == 0 else str(r), r) for r in args.rate]
        for mode, rate in modes:
            for round_ in range(1, args.rounds + 1):
                shift = (round_ - 1) % len(labels)
                for label in labels[shift:] + labels[:shift]:
                    results[label].runs.append(
                        dnsperf(live[label], results[label].port, mode, round_, ds, args, rate)
                    )
        if "gateway" in live and args.workers_pss > 1:
            live["gateway"] = measure_workers_pss(
                ds, live["gateway"], results["gateway"], args, stamp, servers
            )
    finally:
        for server in reversed(servers):
            server.stop(timeout=60)

    primary = f"nsd-{args.nsd_counts[0]}"
    total = time.monotonic() - started
    console.print(report(results, primary))
    for label, result in results.items():
        for note in result.notes:
            console.print(f"[dim]{label}: {note}[/]", markup=True)
    ratios: dict[str, dict[str, float]] = {}
    if "gateway" in results:
        for label, result in results.items():
            if label == "gateway":
                continue
            for mode in modes_of(results):
                g, o = results["gateway"].best(mode), result.best(mode)
                if g and o and o.qps:
                    ratios.setdefault(f"gateway/{label}", {})[f"qps_{mode}"] = round(
                        g.qps / o.qps, 3
                    )
                if g and o and o.server_cpu_us_per_query:
                    ratios.setdefault(f"gateway/{label}", {})[f"cpu_per_query_{mode}"] = round(
                        g.server_cpu_us_per_query / o.server_cpu_us_per_query, 3
                    )
    doc = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "args": dict(vars(args)),
        "dataset": meta,
        "servers": {k: asdict(v) for k, v in results.items()},
        "best": {
            k: {m: asdict(b) for m in modes_of(results) if (b := v.best(m))}
            for k, v in results.items()
        },
        "ratios": ratios,
        "total_seconds": round(total, 1),
    }
    today = datetime.date.today().isoformat()
    path = OUT / f"gateway-{today}.json"
    if path.exists():  # keep the earlier runs of the day
        path = OUT / f"gateway-{today}-n{args.numbers}-{stamp[-6:]}.json"
    path.write_text(json.dumps(doc, indent=2, default=str))
    console.print(f"results: {path} (total {total:.0f} s)")
    gq = results["gateway"].best("max") if "gateway" in results else None
    others = {lb: r.best("max") for lb, r in results.items() if lb != "gateway"}
    best_label = max(others, key=lambda lb: b.qps if (b := others[lb]) else 0.0, default="")
    best_other = others.get(best_label)
    if gq and best_other and best_other.qps:
        print(f"gateway/best other ({best_label}) qps ratio: {gq.qps / best_other.qps:.2f}")
    nq = results[primary].best("max")
    ratio = gq.qps / nq.qps if gq and nq and nq.qps else 0.0
    print(f"gateway/nsd qps ratio: {ratio:.2f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_benchmark(lambda: run(args), lambda text: console.print(f"[red]{text}[/]"))


if __name__ == "__main__":
    sys.exit(main())
