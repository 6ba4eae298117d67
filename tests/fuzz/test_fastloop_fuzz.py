"""The C loop's fast path under libFuzzer and AddressSanitizer (clang from Debian).

``fastloop_fuzz.c`` includes ``_fastloop.c`` itself, so libFuzzer's coverage guidance and ASan
see the very code the gateway runs; each reply C produces is compared with ``wire.respond``'s.
A bounded run here (a fixed seed and count, from the checked-in corpus); the self-test shows
that a wrong reply is caught.
"""

from __future__ import annotations

import os
import subprocess
import sysconfig
from pathlib import Path

import pytest

from tests.support import need

HERE = Path(__file__).parent
REPO = HERE.parent.parent
RUNS = 300_000


def _build(out: Path, *defines: str) -> Path:
    clang = need("clang")
    include = sysconfig.get_paths()["include"]
    libdir = str(sysconfig.get_config_var("LIBDIR"))
    version = str(sysconfig.get_config_var("LDVERSION"))
    build = subprocess.run(
        [
            clang,
            *("-g", "-O1", "-fno-omit-frame-pointer", "-fsanitize=fuzzer,address"),
            *("-Wall", "-Wextra", "-Werror", *defines),
            f"-I{include}",
            str(HERE / "fastloop_fuzz.c"),
            f"-L{libdir}",
            f"-lpython{version}",
            f"-Wl,-rpath,{libdir}",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0 and "cannot find -lpython" in build.stderr:
        pytest.skip("this Python has no shared libpython to embed")
    assert build.returncode == 0, build.stderr
    return out


def _run(binary: Path, tmp_path: Path, runs: int) -> subprocess.CompletedProcess[str]:
    found = tmp_path / "found"
    found.mkdir(exist_ok=True)
    path = [str(REPO), str(REPO / "src"), sysconfig.get_paths()["purelib"]]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(path),
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
    }
    return subprocess.run(
        [
            str(binary),
            "-seed=20261202",
            f"-runs={runs}",
            f"-artifact_prefix={tmp_path}/",
            str(found),
            str(HERE / "corpus" / "fastloop"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_the_fast_path_survives_libfuzzer_under_asan(tmp_path: Path) -> None:
    run = _run(_build(tmp_path / "fastloop_fuzz"), tmp_path, RUNS)
    assert run.returncode == 0, run.stderr[-4000:]
    assert f"Done {RUNS} runs" in run.stderr
    assert "AddressSanitizer" not in run.stderr


def test_a_wrong_reply_is_caught(tmp_path: Path) -> None:
    run = _run(_build(tmp_path / "selftest", "-DCORRUPT_REPLY"), tmp_path, 1000)
    assert run.returncode != 0
    assert "fast path reply differs from wire.respond" in run.stderr
