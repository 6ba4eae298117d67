"""What the benchmarks share: server processes with their logs, free ports, and a
store of signed ENUM records.

``bench/gateway.py`` and ``bench/sync.py`` both start servers they must be able
to wait for (a line such as ``ready:``), read the logs of, measure and always
stop, also after an error or a signal.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import multiprocessing
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TextIO

from enumer.bound import directives_digest, osig_message, vsig_message
from enumer.crypto import Network, PrivateKey
from enumer.nvs import NameRecord
from enumer.nvs.ledger import Ledger


class BenchError(RuntimeError):
    """A benchmark that cannot go on; the message is what to tell the user."""


class ServerProcess:
    """A server in its own process group; its output is copied to a log file and
    each line kept with the time it arrived."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.timed_lines: list[tuple[float, str]] = []
        self.started = 0.0
        self.proc: subprocess.Popen[str] | None = None
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        """Start it; the log gets a header line with the time and the command."""
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
            cwd=self.cwd,
        )
        log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 (closed by the reader)
        log.write(f"# {datetime.datetime.now().isoformat()} {shlex.join(self.argv)}\n")
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
                    self.timed_lines.append((time.monotonic(), line.rstrip("\n")))
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def lines(self) -> list[str]:
        with self._cond:
            return [line for _, line in self.timed_lines]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 15) -> str:
        return "\n".join(self.lines[-n:])

    def wait_line(
        self,
        pattern: re.Pattern[str],
        timeout: float,
        while_waiting: Callable[[], None] | None = None,
    ) -> tuple[float, re.Match[str]]:
        """(arrival time, match) of the first line matching ``pattern``;
        ``while_waiting`` runs about every 0.2 s until then."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for stamp, line in self.timed_lines[seen:]:
                    found = pattern.search(line)
                    if found:
                        return stamp, found
                seen = len(self.timed_lines)
                if not self.alive():
                    code = self.proc.returncode if self.proc else "?"
                    raise BenchError(f"{self.name} exited with status {code}:\n{self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(
                        f"{self.name}: no {pattern.pattern!r} after {timeout:.0f} s:\n{self.tail()}"
                    )
                self._cond.wait(min(left, 0.2))
                if while_waiting is not None:
                    while_waiting()

    def matches(self, pattern: re.Pattern[str], since: float = 0.0) -> list[re.Match[str]]:
        """Every match of ``pattern`` in the lines that arrived at or after ``since``."""
        with self._cond:
            lines = list(self.timed_lines)
        return [m for stamp, line in lines if stamp >= since and (m := pattern.search(line))]

    def stop(self, timeout: float = 60.0, warn: Callable[[str], None] = print) -> float | None:
        """SIGTERM to the process group, SIGKILL after ``timeout``; seconds it took to exit."""
        if self.proc is None:
            return None
        started = time.monotonic()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                warn(f"{self.name} ignored SIGTERM for {timeout:.0f} s: SIGKILL")
        # Leftovers of the group (workers) go too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(5)
        return time.monotonic() - started


def free_port(preferred: int = 0) -> int:
    """``preferred`` when both UDP and TCP are free on 127.0.0.1, else a free port."""
    for candidate in (preferred, *([0] * 50)):
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
            ):
                udp.bind(("127.0.0.1", candidate))
                port = int(udp.getsockname()[1])
                tcp.bind(("127.0.0.1", port))
                return port
        except OSError:
            continue
    raise BenchError("no free port on 127.0.0.1")


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_benchmark(run: Callable[[], int], say: Callable[[str], None]) -> int:
    """Run a benchmark to its exit status: SIGTERM and SIGHUP stop it as Ctrl-C does
    (so its ``finally`` blocks stop the servers); a :class:`BenchError` is one line."""
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGHUP, _stop_on_signal)
    try:
        return run()
    except BenchError as exc:
        say(f"benchmark aborted: {exc}")
        return 1
    except KeyboardInterrupt as exc:
        say(f"interrupted {exc}")
        return 130


# -- the data: a store of signed ENUM records ------------------------------------------

VERIFIER = "ver:bench"
FAR_EXPIRY = 100_000_000  # blocks: some 1,500 years at 175 a day
SIGN_CHUNK = 5000

_SIGNER: PrivateKey | None = None


def _init_signer(secret_hex: str) -> None:
    """In a signing worker: the key to sign with."""
    global _SIGNER
    _SIGNER = PrivateKey.from_hex(secret_hex)


def _sign_chunk(names: list[str]) -> list[str]:
    assert _SIGNER is not None
    return [_SIGNER.sign_message(name) for name in names]


#: For bound signatures (SPEC 11): (owner address, VSIG not-after, OSIG time, directives of).
_BOUND: tuple[str, str, int, Callable[[str], str]] | None = None


def _sign_bound_chunk(names: list[str]) -> list[str]:
    """SIG, VSIG and OSIG of each name, joined by ``\n`` as value lines."""
    assert _SIGNER is not None and _BOUND is not None
    owner, not_after, when, directives_of = _BOUND
    out = []
    for name in names:
        digest = directives_digest(directives_of(name[5:-2]))
        vsig = _SIGNER.sign_message(vsig_message(name, owner, not_after))
        osig = _SIGNER.sign_message(osig_message(name, when, digest))
        out.append(
            f"{_SIGNER.sign_message(name)}\nVSIG={VERIFIER}|{not_after}|{vsig}\nOSIG={when}|{osig}"
        )
    return out


def txid_of(name: str) -> str:
    """A made-up transaction id, stable per name."""
    return hashlib.sha256(name.encode()).hexdigest()


def build_signed_store(
    store: Path,
    network: Network,
    numbers: Sequence[str],
    value_of: Callable[[str, str], str],
    progress: Callable[[int, int], None],
    directives_of: Callable[[str], str] | None = None,
) -> tuple[str, int]:
    """A fresh store: ``ver:bench`` plus one signed ``enum:<digits>:0`` per number,
    its value ``value_of(digits, signature)``; returns (verifier address, records stored).

    The verifier's key is in the store's wallet, so the store can update the
    records.  Signing runs on every core (multiprocessing); the parent inserts
    what comes back in one transaction (:meth:`Ledger.put_records`) while the
    workers sign on, and reports ``progress(done, total)`` after each chunk.

    With ``directives_of`` (digits -> the record's directives) every record is
    strictly signed (SPEC 11): the signature passed to ``value_of`` is followed
    by the record's VSIG and OSIG lines (the bench key owns the records too).
    """
    global _BOUND
    if store.exists():
        shutil.rmtree(store)
    key = PrivateKey.generate()
    address = key.address(network).to_text()
    now = int(time.time())
    if directives_of is not None:
        not_after = (datetime.date.today() + datetime.timedelta(days=182)).isoformat()
        _BOUND = (address, not_after, now, directives_of)
    sign = _sign_chunk if directives_of is None else _sign_bound_chunk
    # Name order: the B-tree inserts of put_records then append instead of seeking.
    names = [f"enum:{d}:0" for d in sorted(numbers)]
    chunks = [names[i : i + SIGN_CHUNK] for i in range(0, len(names), SIGN_CHUNK)]
    with Ledger(store, network=network.name) as ledger:
        ledger.import_key(key.to_wif(network))
        verifier = NameRecord(
            VERIFIER, "bench verifier", address, txid_of(VERIFIER), 1, 1, FAR_EXPIRY, now
        )
        ledger.put_records([verifier])
        ctx = multiprocessing.get_context("fork")
        workers = os.cpu_count() or 1
        with ctx.Pool(workers, initializer=_init_signer, initargs=(key.secret_hex(),)) as pool:

            def records() -> Iterator[NameRecord]:
                done = 0
                for chunk, sigs in zip(chunks, pool.imap(sign, chunks), strict=True):
                    for name, sig in zip(chunk, sigs, strict=True):
                        value = value_of(name[5:-2], sig)
                        yield NameRecord(name, value, address, txid_of(name), 2, 2, FAR_EXPIRY, now)
                    done += len(chunk)
                    progress(done, len(names))

            stored = ledger.put_records(records())
    return address, stored
