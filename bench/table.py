"""The answer table file alone, at any size: build, restart, change, share (no signatures).

``bench/gateway.py`` measures the whole gateway against NSD and Knot, but at
10,000,000 numbers its data set and first start take the better part of an
hour on the 2-core project machine.  This benchmark isolates what the table
file (``enumer.dns.flat``) adds and what must not grow with the data: it
writes a table of N numbers with answers shaped like the gateway benchmark's
(one NAPTR to one of 1000 PBX hosts, 3% with a second NAPTR and a TTL of 600),
then measures

* the write (what a first start adds after its signature checks), the file's
  size and the disk it uses (it is sparse);
* a restart: open, check (header, every index page) and serve the first answer;
* lookups per second through the Python ``get`` (the C loop is faster still);
* a change of K numbers (new answers, deleted and new numbers) and its commit,
  which must cost the same at every N;
* memory: PSS of R forked readers that each read every answer, against one.

    .venv/bin/python bench/table.py --numbers 1000000 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from enumer.dns.flat import FlatTable
from enumer.dns.table import key_of, rr_bytes
from enumer.naptr import Naptr

OUT = Path(__file__).resolve().parent / "out"


def answers(n: int, seed: int) -> Iterator[tuple[bytes, bytes]]:
    """N distinct 11-digit numbers and answers like bench/gateway.py's, in a fixed order."""
    rng = random.Random(seed)
    memo: dict[tuple[int, bool], bytes] = {}
    seen: set[int] = set()
    while len(seen) < n:
        number = 10_000_000_000 + rng.randrange(10_000_000_000)
        if number in seen:
            continue
        seen.add(number)
        host, two = number % 1000, number % 100 < 3
        rrs = memo.get((host, two))
        if rrs is None:
            ttl = 600 if two else 86400
            rrs = rr_bytes(
                Naptr(100, 10, "u", "E2U+sip", f"!^(.*)$!sip:\\1@pbx{host}.example.com!", ".", ttl)
            )
            if two:
                rrs += rr_bytes(Naptr(100, 20, "u", "E2U+pstn:tel", "!^(.*)$!tel:\\1!", ".", ttl))
            memo[(host, two)] = rrs
        yield key_of(str(number)), rrs


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def readers_pss(table: FlatTable, readers: int) -> int:
    """Total PSS (KiB) of ``readers`` forked processes after each read every answer."""
    pids = []
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    for _ in range(readers):
        pid = os.fork()
        if pid == 0:
            for _key, _value in table.items():
                pass
            os.write(done_w, b"x")
            os.read(go_r, 1)  # wait to be measured
            os._exit(0)
        pids.append(pid)
    for _ in pids:
        os.read(done_r, 1)
    total = sum(pss_kib(p) for p in pids)
    os.write(go_w, b"x" * readers)
    for pid in pids:
        os.waitpid(pid, 0)
    for fd in (go_r, go_w, done_r, done_w):
        os.close(fd)
    return total


def measure(n: int, changes: int, readers: int, directory: Path) -> dict[str, float]:
    path = directory / f"table-{n}.snapshot"
    started = time.perf_counter()
    table = FlatTable.create(path, answers(n, 20240601), n, height=1, stamp=1)
    write_s = time.perf_counter() - started
    st = path.stat()
    keys = [k for k, _ in answers(min(n, 100_000), 20240601)]

    started = time.perf_counter()
    again = FlatTable.open(path, writable=True)
    first = again.get(keys[0])
    restart_s = time.perf_counter() - started
    assert first is not None

    started = time.perf_counter()
    for key in keys:
        again.get(key)
    lookup_us = (time.perf_counter() - started) / len(keys) * 1e6

    rng = random.Random(7)
    value = table.get(keys[1]) or b""
    started = time.perf_counter()
    for i in range(changes):
        if i % 10 == 0:
            again.delete(keys[rng.randrange(len(keys))])
        elif i % 10 == 1:
            again.put(b"9" + str(i).encode(), value)  # a new number
        else:
            again.put(keys[rng.randrange(len(keys))], value[::-1])
    again.commit(2, 2)
    change_ms = (time.perf_counter() - started) * 1e3

    one = readers_pss(again, 1)
    many = readers_pss(again, readers)
    return {
        "numbers": n,
        "write_s": round(write_s, 2),
        "file_mib": round(st.st_size / 2**20, 1),
        "disk_mib": round(st.st_blocks * 512 / 2**20, 1),
        "restart_s": round(restart_s, 3),
        "lookup_us": round(lookup_us, 2),
        f"change_{changes}_ms": round(change_ms, 1),
        "reader_pss_mib": round(one / 1024, 1),
        f"readers_{readers}_pss_mib": round(many / 1024, 1),
        "peak_rss_mib_so_far": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--numbers", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--changes", type=int, default=1000, help="numbers changed in one commit")
    p.add_argument("--readers", type=int, default=2, help="forked readers sharing the file")
    p.add_argument("--dir", type=Path, default=None, help="where the files go (a temp dir)")
    args = p.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(dir=args.dir or OUT) as tmp:
        for n in args.numbers:
            row = measure(n, args.changes, args.readers, Path(tmp))
            print(json.dumps(row), flush=True)
            results.append(row)
            for f in Path(tmp).iterdir():
                f.unlink()
    (OUT / "table.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
