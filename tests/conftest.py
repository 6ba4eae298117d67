"""Shared fixtures: a temporary store, the real console script, and /work/shared data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import support

REPO = Path(__file__).resolve().parent.parent
#: The console script installed next to the interpreter running the tests.
ENUMER_BIN = Path(sys.executable).with_name("enumer")


def shared_path() -> Path:
    """``$ENUMER_SHARED``, else ``<repo>/../shared``."""
    env = os.environ.get("ENUMER_SHARED")
    return Path(env) if env else REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = shared_path()
    if not (path / "SPEC.md").is_file():
        pytest.fail(f"shared data not found at {path} (set ENUMER_SHARED)")
    return path


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path) -> Path:
    return shared_dir / "reference"


@pytest.fixture(scope="session")
def records_created(reference_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((reference_dir / "records-created.json").read_text())
    return data


@pytest.fixture(scope="session")
def reference_values(records_created: dict[str, Any]) -> dict[str, str]:
    """name -> exact value of every record in records-created.json with a real value."""
    out: dict[str, str] = {}
    for rec in records_created["records"]:
        # A few entries describe their value in prose ("\"v\" * 20480"); skip those.
        if (
            rec["name"].startswith('"')
            or rec["value"].startswith('"')
            or rec["value"].startswith("12 lines")
        ):
            continue
        out[rec["name"]] = rec["value"]
    return out


def rpc_result(reference_dir: Path, call: str) -> Any:
    """``response.result`` of one captured RPC call."""
    data = json.loads((reference_dir / "rpc" / f"{call}.json").read_text())
    return data["response"]["result"]


def rpc_error(reference_dir: Path, call: str) -> dict[str, Any]:
    data = json.loads((reference_dir / "rpc" / f"{call}.json").read_text())
    error: dict[str, Any] = data["response"]["error"]
    return error


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """A directory for a fresh store (not created yet: the first command creates it)."""
    return tmp_path / "store"


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def err_lines(self) -> list[str]:
        return self.stderr.splitlines()


CliRunner = Callable[..., CliResult]


def _run(args: list[str], env: dict[str, str], input_text: str | None) -> CliResult:
    proc = subprocess.run(
        args,
        input=input_text if input_text is not None else "",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def _clean_env(store: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENUMER_")}
    if "ENUMER_SHARED" in os.environ:
        env["ENUMER_SHARED"] = os.environ["ENUMER_SHARED"]
    if store is not None:
        env["ENUMER_STORE"] = str(store)
    env["PYTHONWARNINGS"] = "ignore"
    return env


@pytest.fixture
def enumer(store_dir: Path) -> Iterator[CliRunner]:
    """Run the real ``enumer`` console script with ENUMER_STORE set to ``store_dir``.

    ``enumer("name", "show", "x", input="...", env={...}, store=None)``; ``store=None``
    leaves ENUMER_STORE unset (for --store tests).
    """
    if not ENUMER_BIN.exists():
        pytest.fail(f"console script not installed at {ENUMER_BIN}")

    def run(
        *args: str,
        input: str | None = None,
        env: dict[str, str] | None = None,
        store: Path | str | None = "default",
    ) -> CliResult:
        chosen = store_dir if store == "default" else (None if store is None else Path(store))
        full_env = _clean_env(chosen)
        full_env.update(env or {})
        return _run([str(ENUMER_BIN), *args], full_env, input)

    yield run


@pytest.fixture
def python_m(store_dir: Path) -> CliRunner:
    """Run ``python -m enumer`` with ENUMER_STORE set."""

    def run(*args: str, input: str | None = None) -> CliResult:
        return _run([sys.executable, "-m", "enumer", *args], _clean_env(store_dir), input)

    return run


def assert_one_error_line(result: CliResult, status: int = 1) -> str:
    """A failure must be exactly one ``error:`` line on stderr, no traceback."""
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    lines = result.err_lines
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# -- a real gateway process on the demo store ------------------------------------


@pytest.fixture
def demo_store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    subprocess.run(
        [*support.ENUMER, "--store", str(store), "demo", "seed"],
        check=True,
        capture_output=True,
        text=True,
    )
    return store


@pytest.fixture
def demo_gateway(demo_store: Path) -> Iterator[support.Gateway]:
    gateway = support.start_gateway(demo_store)
    try:
        yield gateway
    finally:
        support.stop(gateway.process)
