"""A real call routed by ENUMER: Debian's Kamailio as the caller's SIP proxy.

Kamailio's ``enum`` module asks the system resolver, so the whole scene runs in
a network namespace of its own (``ip netns``): there ``/etc/resolv.conf`` says
``nameserver 127.0.0.1`` (``ip netns exec`` bind-mounts
``/etc/netns/<name>/resolv.conf``) and the ENUMER gateway listens on
127.0.0.1:53. The gateway serves a demo store with verified records whose URIs
point at a callee agent in the namespace; a small SIP agent (``sipua.py``)
calls through Kamailio and the callee records the Request-URI it receives.

Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) for ``ip netns add``: skipped
with the reason elsewhere, failed instead in CI, which runs as root.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from enumer.calling.compat import check_value
from tests.support import ENUMER, need

pytestmark = pytest.mark.e2e

SIPUA = Path(__file__).with_name("sipua.py")
CALLEE_PORT = 5090
PSTN_PORT = 5070
PROXY = "127.0.0.1:5060"

#: Verified records made for the test; the callee listens on 127.0.0.1:5090.
FIXED = "+12025550142"  # enumer record new --sip: a fixed URI
BACKREF = "+12025550143"  # a back-reference regexp, the usual published form
BACKREF_E2U = r"E2U+sip=100|10|!^\+(.*)$!sip:\1@127.0.0.1:5090!"
UNSIGNED = "+15551234567"  # demo: unsigned record, not served
REVOKED = "+15550001111"  # demo: signed then revoked, not served
MISSING = "+12025550199"  # no record at all

MINIMAL_CFG = """\
#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:127.0.0.1:5060

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "maxfwd.so"
loadmodule "xlog.so"
loadmodule "enum.so"

request_route {
	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}
	if (is_method("ACK")) {
		if (t_check_trans()) {
			t_relay();
		}
		exit;
	}
	if (is_method("INVITE") && $rU =~ "^[+][0-9]+$") {
		if (enum_query("enum.")) {
			xlog("L_INFO", "ENUMER route for $fU: $ru\\n");
			t_relay();
			exit;
		}
		sl_send_reply("404", "PSTN branch");
		exit;
	}
	sl_send_reply("501", "Not Implemented");
}
"""


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


def enumer(store: Path, *args: str) -> str:
    result = run(*ENUMER, "--store", str(store), *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def kill_group(process: subprocess.Popen[str]) -> None:
    """Stop a process and everything it started, whatever state it is in."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def unavailable(reason: str) -> None:
    """Skip where namespaces cannot be made; CI runs as root, so there it is a failure."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class Namespace:
    """A network namespace with its own resolv.conf, and the processes started in it."""

    name: str
    tmp: Path
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def cmd(self, *args: str) -> list[str]:
        return [need("ip"), "netns", "exec", self.name, *args]

    def start(self, log_name: str, *args: str) -> tuple[subprocess.Popen[str], Path]:
        log = self.tmp / log_name
        handle = log.open("w")
        process = subprocess.Popen(
            self.cmd(*args),
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        handle.close()
        self.processes.append(process)
        return process, log

    def wait_for(self, process: subprocess.Popen[str], log: Path, marker: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if marker in log.read_text():
                return
            if process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{log.name}: no {marker!r}:\n{log.read_text()}")

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            kill_group(process)
        self.processes.clear()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo store plus two verified records whose URIs reach the callee agent."""
    path = tmp_path_factory.mktemp("calling") / "store"
    enumer(path, "demo", "seed")
    fixed = enumer(path, "record", "new", FIXED, "--sip", f"sip:callee@127.0.0.1:{CALLEE_PORT}")
    backref = enumer(path, "record", "new", BACKREF, "--e2u", BACKREF_E2U)
    for name in (fixed.strip(), backref.strip()):
        enumer(path, "verifier", "sign", "demo", name, "--append")
    return path


@pytest.fixture(scope="module")
def netns(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Namespace]:
    """Namespace, resolv.conf, gateway on 127.0.0.1:53 and the two agents; removed after."""
    ip = need("ip")
    if os.geteuid() != 0:
        unavailable("network namespaces need root (ip netns add)")
    name = f"enumer-test-{uuid.uuid4().hex[:8]}"
    created = run(ip, "netns", "add", name)
    if created.returncode != 0:
        unavailable(f"cannot create a network namespace: {created.stderr.strip()}")
    etc = Path("/etc/netns") / name
    space = Namespace(name, tmp_path_factory.mktemp("netns"))
    try:
        etc.mkdir(parents=True)
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        assert run(*space.cmd(ip, "link", "set", "lo", "up")).returncode == 0
        gateway, gateway_log = space.start(
            "gateway.log",
            *ENUMER,
            "--store",
            str(store),
            "serve",
            "--bind",
            "127.0.0.1",
            "--port",
            "53",
            "--quiet",
        )
        space.wait_for(gateway, gateway_log, "ready:")
        for agent, port in (("callee", CALLEE_PORT), ("pstn", PSTN_PORT)):
            process, log = space.start(
                f"{agent}.out",
                sys.executable,
                str(SIPUA),
                "callee",
                "--port",
                str(port),
                "--name",
                agent,
                "--log",
                str(space.tmp / f"{agent}.jsonl"),
            )
            space.wait_for(process, log, "ready")
        yield space
    finally:
        space.stop_all()
        run(ip, "netns", "del", name)
        shutil.rmtree(etc, ignore_errors=True)


Kamailio = Callable[[str], Path]


@pytest.fixture
def kamailio(netns: Namespace, tmp_path: Path) -> Iterator[Kamailio]:
    """Start Kamailio in the namespace with a given config (checked with -c first)."""
    binary = need("kamailio")
    started: list[subprocess.Popen[str]] = []

    def start(config: str) -> Path:
        cfg = tmp_path / "kamailio.cfg"
        cfg.write_text(config)
        check = run(binary, "-c", "-f", str(cfg))
        assert check.returncode == 0, check.stdout + check.stderr
        runtime = tmp_path / "run"
        runtime.mkdir(exist_ok=True)
        process, log = netns.start(
            "kamailio.log",
            binary,
            "-DD",
            "-E",
            "-f",
            str(cfg),
            "-Y",
            str(runtime),
            "-P",
            str(runtime / "kamailio.pid"),
            "-u",
            "root",
            "-g",
            "root",
        )
        started.append(process)
        # Ready when it answers: an OPTIONS gets 501 from the configs used here.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            probe = run(*netns.cmd(sys.executable, "-c", _PROBE), timeout=10)
            if probe.stdout.strip() == "up":
                return log
            time.sleep(0.1)
        raise AssertionError(f"kamailio did not answer:\n{log.read_text()}")

    try:
        yield start
    finally:
        for process in started:
            kill_group(process)


_PROBE = """\
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.3)
msg = ("OPTIONS sip:probe@127.0.0.1:5060 SIP/2.0\\r\\n"
       "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKprobe;rport\\r\\nMax-Forwards: 70\\r\\n"
       "From: <sip:probe@127.0.0.1>;tag=1\\r\\nTo: <sip:probe@127.0.0.1>\\r\\n"
       "Call-ID: probe\\r\\nCSeq: 1 OPTIONS\\r\\nContent-Length: 0\\r\\n\\r\\n")
s.sendto(msg.encode(), ("127.0.0.1", 5060))
try:
    s.recvfrom(4096)
    print("up")
except OSError:
    print("down")
"""


def call(netns: Namespace, uri: str) -> dict[str, object]:
    result = run(
        *netns.cmd(sys.executable, str(SIPUA), "caller", "--proxy", PROXY, "--uri", uri),
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


def received(netns: Namespace, agent: str) -> list[dict[str, str]]:
    path = netns.tmp / f"{agent}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def invites(netns: Namespace, agent: str) -> list[str]:
    return [r["ruri"] for r in received(netns, agent) if r["method"] == "INVITE"]


def test_verified_record_routes_the_call_to_the_callee(
    netns: Namespace,
    kamailio: Kamailio,
) -> None:
    kamailio(MINIMAL_CFG)
    before = len(invites(netns, "callee"))
    answer = call(netns, f"sip:{FIXED}@{PROXY}")
    assert answer["status"] == 200, answer
    assert answer["agent"] == "callee"
    assert invites(netns, "callee")[before:] == [f"sip:callee@127.0.0.1:{CALLEE_PORT}"]

    # The back-reference record: Kamailio applies \1 to "+12025550143", as compat predicts.
    predicted = check_value(BACKREF_E2U, BACKREF).directives[0].pbx["kamailio"]
    assert predicted.uri == f"sip:{BACKREF[1:]}@127.0.0.1:{CALLEE_PORT}"
    answer = call(netns, f"sip:{BACKREF}@{PROXY}")
    assert answer["status"] == 200, answer
    assert invites(netns, "callee")[-1] == predicted.uri
    # The callee also got the ACK and the BYE of each dialog, straight from the caller.
    methods = [r["method"] for r in received(netns, "callee")]
    assert methods.count("ACK") >= 2 and methods.count("BYE") >= 2


@pytest.mark.parametrize(
    "number", [UNSIGNED, REVOKED, MISSING], ids=["unsigned", "revoked", "missing"]
)
def test_unserved_record_takes_the_pstn_branch(
    netns: Namespace,
    kamailio: Kamailio,
    number: str,
) -> None:
    kamailio(MINIMAL_CFG)
    before = invites(netns, "callee")
    answer = call(netns, f"sip:{number}@{PROXY}")
    assert (answer["status"], answer["reason"]) == (404, "PSTN branch"), answer
    assert invites(netns, "callee") == before


def test_generated_kamailio_config_routes_and_falls_back(
    netns: Namespace,
    kamailio: Kamailio,
) -> None:
    """``enumer pbx kamailio`` as written, with a national number and a PSTN agent."""
    config = run(
        *ENUMER,
        "pbx",
        "kamailio",
        "--region",
        "US",
        "--area-code",
        "202",
        "--listen",
        "udp:127.0.0.1:5060",
        "--pstn",
        f"127.0.0.1:{PSTN_PORT}",
    )
    assert config.returncode == 0, config.stderr
    kamailio(config.stdout)
    # Dialled as a national 10-digit number: normalised to +12025550142, found in ENUMER.
    answer = call(netns, f"sip:2025550142@{PROXY}")
    assert (answer["status"], answer["agent"]) == (200, "callee"), answer
    assert invites(netns, "callee")[-1] == f"sip:callee@127.0.0.1:{CALLEE_PORT}"
    # Dialled as a 7-digit local number with the home area code.
    answer = call(netns, f"sip:5550143@{PROXY}")
    assert (answer["status"], answer["agent"]) == (200, "callee"), answer
    assert invites(netns, "callee")[-1] == f"sip:12025550143@127.0.0.1:{CALLEE_PORT}"
    # No record: ENUMER, then e164.arpa (refused by the gateway), then the PSTN agent.
    answer = call(netns, f"sip:011{MISSING[1:]}@{PROXY}")
    assert (answer["status"], answer["agent"]) == (200, "pstn"), answer
    assert invites(netns, "pstn")[-1] == f"sip:{MISSING}@127.0.0.1:{PSTN_PORT}"


def test_enumer_route_through_the_system_resolver(netns: Namespace) -> None:
    """``enumer route`` without a server uses /etc/resolv.conf, like the PBX."""
    found = run(*netns.cmd(*ENUMER, "route", FIXED, "--suffix", "enum", "--json"))
    assert found.returncode == 0, found.stderr
    data = json.loads(found.stdout)
    assert data["routes"][0]["uri"] == f"sip:callee@127.0.0.1:{CALLEE_PORT}"
    assert data["queries"][0]["server"] is None
    missing = run(*netns.cmd(*ENUMER, "route", UNSIGNED, "--suffix", "enum"))
    assert missing.returncode == 1
    assert missing.stdout.startswith("no ENUM route: use the PSTN (enum: NXDOMAIN")
