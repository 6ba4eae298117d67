"""``enumer verifier serve`` and ``enumer verifier admin`` as a user runs them.

``serve`` runs as the real console script in a subprocess, on a store seeded
as ``enumer demo seed`` seeds it (``ver:demo``, whose key the store's wallet
holds); it is reached over loopback HTTP and its flash call goes to the test
SIP phone. The commands that only check their input or write the state file
run in-process through ``enumer.cli.main`` (the same entry point the console
script calls, with its one-line errors and exit statuses), which keeps this
module fast: an interpreter start costs about a second.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from enumer import demo
from enumer.cli import main
from enumer.nvs.ledger import Ledger
from tests import support
from tests.conftest import CliResult, CliRunner, assert_one_error_line
from tests.verification.sipua import TestPhone

READY = "enumer verifier: serving ver:demo on http://127.0.0.1:{port}/"


@dataclass
class Served:
    process: subprocess.Popen[str]
    base: str
    log: Path

    def text(self) -> str:
        return self.log.read_text()


def start_serve(store: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    """``enumer --store STORE verifier serve --id demo ...`` on a free port, once ready."""
    port = support.free_port()
    log = store.parent / f"verifier-{port}.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [*support.ENUMER, "--store", str(store), "verifier", "serve", "--id", "demo",
             "--port", str(port), *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
            start_new_session=True,
        )  # fmt: skip
    ready = READY.format(port=port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if ready in log.read_text():
            return Served(process, f"http://127.0.0.1:{port}", log)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    support.stop(process)
    raise AssertionError(f"verifier serve did not start:\n{log.read_text()}")


Run = Callable[..., CliResult]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store with the demo data, seeded in-process (as ``enumer demo seed`` does)."""
    path = tmp_path / "store"
    with Ledger(path) as ledger:
        demo.seed(ledger)
    return path


@pytest.fixture
def run(store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """``run("verifier", "admin", ..., input="...")``: ``enumer --store STORE ...`` in-process."""
    for key in ("ENUMER_STORE", "ENUMER_NVS", "ENUMER_SIP_PASSWORD"):
        monkeypatch.delenv(key, raising=False)

    def call(*args: str, input: str = "", store_path: Path | None = store) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.StringIO(input))
        prefix = ["--store", str(store_path)] if store_path is not None else []
        status = main([*prefix, *args])
        out, err = capsys.readouterr()
        return CliResult(status, out, err)

    return call


def add_user(run: Run, user: str, password: str, *args: str) -> str:
    result = run("verifier", "admin", "add-user", user, "--id", "demo", *args, input=password)
    assert result.returncode == 0, result.stderr
    return result.stdout


# -- serve ---------------------------------------------------------------------------------


def test_serve_with_users_made_by_admin_then_sigterm(store: Path, run: Run) -> None:
    """The admin commands write the state file that serve then uses (default path)."""
    state = store / "verifier-demo.db"
    out = add_user(run, "olga", "olga-password-1\n")
    assert out.strip() == f"user olga (operator) added in {state}"
    add_user(run, "boss", "boss-password-1", "--role", "admin")
    key = run("verifier", "admin", "add-key", "olga", "--id", "demo")
    assert key.returncode == 0, key.stderr
    api_key = key.stdout.strip()
    assert api_key.startswith("enk_") and len(api_key) > 40
    assert api_key.encode() not in state.read_bytes()
    listed = run("verifier", "admin", "list-users", "--state", str(state))
    assert listed.returncode == 0
    rows = [line.split("\t")[:3] for line in listed.stdout.splitlines()]
    assert rows == [["boss", "admin", "0 key(s)"], ["olga", "operator", "1 key(s)"]]

    running = start_serve(store)
    try:
        log = running.text()
        assert f"(state {state})" in log and "no --trunk" in log
        with httpx.Client(base_url=running.base, timeout=10) as client:
            home = client.get("/")
            assert home.status_code == 200 and '<span id="org-name">ver:demo</span>' in home.text
            assert "ENUM verification" in home.text
            assert "server" not in home.headers
            found = client.get("/verify", params={"q": "+15551234567"})
            assert found.status_code == 200 and "enum:15551234567:0" in found.text
            queue = client.get(
                "/api/v1/console/requests", headers={"Authorization": f"Bearer {api_key}"}
            )
            assert queue.status_code == 200 and queue.json() == []
            login = client.get("/console/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
            assert token
            signed_in = client.post(
                "/console/login",
                data={"username": "boss", "password": "boss-password-1", "csrf_token": token[1]},
            )
            assert signed_in.status_code == 303
            # Not Secure: the service listens on loopback, where plain HTTP is expected.
            assert "Secure" not in signed_in.headers["set-cookie"]
            assert client.get("/console/users").status_code == 200
    finally:
        os.killpg(running.process.pid, signal.SIGTERM)
        assert running.process.wait(15) == 0
    log = running.text()
    assert log.rstrip().endswith("enumer verifier: stopped"), log
    assert "Traceback" not in log


def test_serve_with_a_trunk_calls_through_it(store: Path, run: Run) -> None:
    """The trunk URI, its user part and ENUMER_SIP_PASSWORD reach the flash caller."""
    with Ledger(store) as ledger:
        owner = ledger.get_new_address("legacy")
        name = "enum:442079460777:0"
        ledger.name_new(name, "E2U+sip=100|10|!^.*$!sip:alice@pbx.example.com!", 365, owner)
    with TestPhone("auth", user="acme", password="s3cret-trunk") as phone:
        trunk = f"sip:acme@127.0.0.1:{phone.port}"
        running = start_serve(
            store,
            "--trunk", trunk, "--caller-prefix", "+44 20", "--allow", "44",
            env={"ENUMER_SIP_PASSWORD": "s3cret-trunk"},
        )  # fmt: skip
        try:
            with httpx.Client(base_url=running.base, timeout=30) as api:
                request = api.post("/api/v1/requests", json={"name": name}).json()
                signature = run("wallet", "sign", owner, request["challenge"]).stdout.strip()
                token = request["token"]
                proved = api.post(f"/api/v1/requests/{token}/proof", json={"signature": signature})
                assert proved.status_code == 200, proved.text
                called = api.post(f"/api/v1/requests/{token}/call")
                assert called.status_code == 200, called.text
            call = phone.wait_for_call(5)
            assert call.authenticated and call.problems == []
            assert re.fullmatch(r"\+4420\d{4}", call.caller), call.caller
        finally:
            support.stop(running.process)
    assert "s3cret-trunk" not in running.text()


def test_serve_refuses_an_unknown_verifier(store: Path, enumer: CliRunner) -> None:
    """Through the real console script: one error line, exit 1, nothing listening."""
    result = enumer("--store", str(store), "verifier", "serve", "--id", "nosuch", store=None)
    line = assert_one_error_line(result)
    assert "ver:nosuch" in line and "does not exist" in line


def test_serve_refuses_a_verifier_the_wallet_cannot_sign_for(run: Run, tmp_path: Path) -> None:
    with Ledger(tmp_path / "elsewhere") as elsewhere:
        foreign = elsewhere.get_new_address("legacy")
    keyless = tmp_path / "keyless"
    with Ledger(keyless) as ledger:
        ledger.name_new("ver:demo", "someone else's verifier", 10, foreign)
    result = run("verifier", "serve", "--id", "demo", store_path=keyless)
    assert "the wallet has no key for ver:demo" in assert_one_error_line(result)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--trunk", "http://pbx.example.com", "--caller-prefix", "4420"], "trunk"),
        (["--trunk", "sips:pbx.example.com", "--caller-prefix", "4420"], "UDP"),
        (["--trunk", "sip:pbx.example.com"], "--caller-prefix"),
        (["--trunk", "sip:pbx.example.com", "--caller-prefix", "44x"], "caller prefix"),
        (["--caller-prefix", "4420"], "--trunk"),
        (["--deny", "19a"], "bad prefix"),
        (["--trunk", "sip:pbx.example.com", "--caller-prefix", "4420"], "needs --allow"),
        (["--allow", "44,x1"], "bad prefix"),
    ],
)
def test_serve_refuses_bad_options(run: Run, args: list[str], needle: str) -> None:
    result = run("verifier", "serve", "--id", "demo", "--port", "0", *args)
    assert needle in assert_one_error_line(result, 2)


def test_serve_refuses_a_missing_store_and_a_taken_port(run: Run, tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    line = assert_one_error_line(run("verifier", "serve", "--id", "demo", store_path=missing))
    assert f"no ENUMER store at {missing}" in line
    assert not missing.exists()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        line = assert_one_error_line(run("verifier", "serve", "--id", "demo", "--port", port))
    assert f"cannot listen on 127.0.0.1 port {port}" in line


# -- admin ---------------------------------------------------------------------------------


def test_admin_refusals(store: Path, run: Run, tmp_path: Path) -> None:
    short = run("verifier", "admin", "add-user", "olga", "--id", "demo", input="short\n")
    assert "too short" in assert_one_error_line(short)
    add_user(run, "olga", "olga-password-1")
    again = run("verifier", "admin", "add-user", "olga", "--id", "demo", input="another-pass-1")
    assert "user olga exists" in assert_one_error_line(again)
    replaced = run(
        "verifier", "admin", "add-user", "olga", "--id", "demo", "--replace", "--role", "admin",
        input="another-pass-1",
    )  # fmt: skip
    assert replaced.returncode == 0 and "updated" in replaced.stdout
    listed = run("verifier", "admin", "list-users", "--id", "demo").stdout
    assert listed.startswith("olga\tadmin\t")
    no_user = run("verifier", "admin", "add-key", "nobody", "--id", "demo")
    assert "no user nobody" in assert_one_error_line(no_user)
    bad_name = run("verifier", "admin", "add-user", "bad name", "--id", "demo", input="x" * 12)
    assert "bad user name" in assert_one_error_line(bad_name)
    nowhere = tmp_path / "none.db"
    missing = run("verifier", "admin", "list-users", "--state", str(nowhere))
    assert "no verifier state" in assert_one_error_line(missing)
    assert not nowhere.exists()
    unnamed = run("verifier", "admin", "list-users")
    assert "--state PATH or --id ID" in assert_one_error_line(unnamed, 2)
    audit = [e["action"] for e in _audit(store / "verifier-demo.db")]
    assert audit == ["user.added", "user.replaced"]


def _audit(state: Path) -> list[dict[str, object]]:
    from enumer.verification.db import StateDB

    db = StateDB(state)
    try:
        return [{"action": e.action, "actor": e.actor} for e in db.iter_audit()]
    finally:
        db.close()


# -- the chain watcher -----------------------------------------------------------------------


def test_chain_watcher_survives_failures_and_logs_each_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A node that is down must not stop the service: log once, retry, say when it is back."""
    from enumer.nvs import NvsError
    from enumer.verification.command import ChainWatcher

    outcomes: list[Exception | None] = [
        NvsError(-28, "node is warming up"),
        NvsError(-28, "node is warming up"),
        OSError("connection refused"),
        None,
    ]
    polls: list[int] = []

    def poll() -> list[object]:
        polls.append(1)
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return []

    watcher = ChainWatcher(poll, 0.01)
    with caplog.at_level("INFO", "enumer.verification"):
        for _ in range(4):
            watcher.once()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "chain watch failed, will retry: NvsError: node is warming up",
        "chain watch failed, will retry: OSError: connection refused",
        "chain watch works again",
    ]
    assert len(polls) == 4
