"""Test support: a real ``enumer serve`` process, free ports, and Debian software.

Third-party programs (BIND's ``named``, ``dig``) come from Debian packages that
``.ci/run`` installs.  On a developer machine without them the tests are skipped
with the reason; in CI (``CI=true``) a missing program is a failure, so CI
never passes by skipping.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ENUMER = [sys.executable, "-m", "enumer"]


def need(program: str) -> str:
    """The path of a third-party program, or skip (fail in CI) when it is missing."""
    for candidate in (shutil.which(program), f"/usr/sbin/{program}", f"/usr/bin/{program}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    message = f"{program} is not installed (Debian package; .ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


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
    raise RuntimeError("no free port")


@dataclass
class Gateway:
    port: int
    store: Path
    process: subprocess.Popen[str]
    log: Path


def start_gateway(store: Path, *args: str, timeout: float = 60.0) -> Gateway:
    """Run ``enumer serve`` on a free port and wait for its ready line."""
    port = free_port()
    log = store.parent / f"gateway-{port}.log"
    handle = open(log, "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [*ENUMER, "--store", str(store), "serve", "--port", str(port), "--quiet", *args],
        stdout=handle,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "ready:" in log.read_text():
            return Gateway(port, store, process, log)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    stop(process)
    raise AssertionError(f"gateway did not start:\n{log.read_text()}")


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def named_options(directory: Path, port: int, *, recursion: bool = True, extra: str = "") -> str:
    """The ``options`` block of a test BIND: loopback only, its own directory and port."""
    lines = [
        f'    directory "{directory}";',
        f'    pid-file "{directory}/named.pid";',
        f"    listen-on port {port} {{ 127.0.0.1; }};",
        "    listen-on-v6 { none; };",
        f"    recursion {'yes' if recursion else 'no'};",
        "    allow-query { 127.0.0.1; };",
        *(f"    {line.strip()}" for line in extra.splitlines() if line.strip()),
    ]
    return "options {\n" + "\n".join(lines) + "\n};\n"


def start_named(conf: Path) -> subprocess.Popen[str]:
    """Debian's ``named`` in the foreground on ``conf``, in its own process group."""
    binary = need("named")
    user = ["-u", "root"] if os.geteuid() == 0 else []
    return subprocess.Popen(
        [binary, "-g", "-c", str(conf), *user],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def unbound_conf(directory: Path, port: int, extra: str = "") -> str:
    """The ``server:`` block of a test Unbound: loopback only, foreground, no chroot or user."""
    lines = [
        f"    interface: 127.0.0.1@{port}",
        f"    port: {port}",
        "    do-ip6: no",
        '    username: ""',
        '    chroot: ""',
        f'    directory: "{directory}"',
        f'    pidfile: "{directory}/unbound.pid"',
        "    use-syslog: no",
        "    num-threads: 1",
        "    so-reuseport: no",
        "    access-control: 127.0.0.0/8 allow",
        *(f"    {line.strip()}" for line in extra.splitlines() if line.strip()),
    ]
    return "server:\n" + "\n".join(lines) + "\n"


def start_unbound(conf: Path) -> subprocess.Popen[str]:
    """Debian's ``unbound`` in the foreground (``-d``) on ``conf``, in its own process group."""
    binary = need("unbound")
    return subprocess.Popen(
        [binary, "-d", "-c", str(conf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
