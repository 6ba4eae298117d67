"""Each atheris target, bounded: a fixed seed and number of inputs, from the checked-in corpus.

A finding makes libFuzzer exit non-zero and write the input under the test's temporary folder;
the assertion message carries the traceback.  Long runs: see ``tests/fuzz/targets.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).with_name("corpus")
RUNS = {"records": 6_000, "naptr": 6_000, "wire": 3_000}


@pytest.mark.parametrize("target", sorted(RUNS))
def test_fuzz_target_finds_nothing(target: str, tmp_path: Path) -> None:
    found = tmp_path / "found"
    found.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.targets",
            target,
            "-seed=20261202",
            f"-runs={RUNS[target]}",
            "-timeout=10",
            "-rss_limit_mb=2048",
            f"-artifact_prefix={tmp_path}/",
            str(found),
            str(CORPUS / target),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=CORPUS.parent.parent.parent,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"Done {RUNS[target]} runs" in result.stderr
    assert not list(tmp_path.glob("crash-*"))


def test_a_broken_contract_is_found(tmp_path: Path) -> None:
    """The harness really reports: a target whose contract fails on the corpus exits non-zero."""
    script = tmp_path / "broken.py"
    script.write_text(
        "import sys, atheris\n"
        "def target(data):\n"
        "    if data.startswith(b'E2U'):\n"
        "        raise AssertionError('found')\n"
        "atheris.Setup(sys.argv, target)\n"
        "atheris.Fuzz()\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "-runs=100",
            f"-artifact_prefix={tmp_path}/",
            str(tmp_path),
            str(CORPUS / "records"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "AssertionError: found" in result.stdout + result.stderr
    assert list(tmp_path.glob("crash-*"))
