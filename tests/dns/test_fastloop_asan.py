"""The C loop under AddressSanitizer: its byte-for-byte tests again, on an ASan build.

``_fastloop.c`` parses hostile datagrams with pointer arithmetic; the tests in
``test_worker_loop.py`` show that it answers exactly what ``wire.respond``
answers, but an out-of-bounds read that happens not to change a reply would
pass them.  Here the extension is compiled again with ``-fsanitize=address``
into a temporary directory, and a child interpreter (with the ASan runtime
preloaded, since Python itself is not instrumented) runs those tests with that
build in place of the installed one.  Any ASan report fails this test, even one
from a forked worker process whose reply the parent never sees.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from enumer.dns import udp

SOURCE = Path(udp.__file__).with_name("_fastloop.c")
REPO = Path(__file__).resolve().parents[2]

#: The tests of test_worker_loop.py that run the C loop (in a worker and in a thread).
SELECTION = "[c] or [c-thread] or c_loop"

_RUNNER = textwrap.dedent(
    """
    import importlib.util, sys
    path = sys.argv[1]
    spec = importlib.util.spec_from_file_location("enumer.dns._fastloop", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["enumer.dns._fastloop"] = module
    import pytest
    from enumer.dns import udp
    assert udp._fastloop is module, "the ASan build is not the one in use"
    sys.exit(pytest.main(sys.argv[2:]))
    """
)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _asan_runtime(cc: str) -> str:
    found = subprocess.run(
        [cc, "-print-file-name=libasan.so"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not os.path.isabs(found) or not os.path.exists(found):
        _unavailable(f"{cc} has no AddressSanitizer runtime (libasan)")
    return found


def _build(cc: str, out_dir: Path) -> Path:
    target = out_dir / ("_fastloop" + str(sysconfig.get_config_var("EXT_SUFFIX")))
    include = sysconfig.get_paths()["include"]
    subprocess.run(
        [
            cc,
            *("-shared", "-fPIC", "-g", "-O1", "-fno-omit-frame-pointer"),
            *("-fsanitize=address", "-Wall", "-Wextra", "-Werror"),
            f"-I{include}",
            str(SOURCE),
            "-o",
            str(target),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return target


def test_the_c_loop_is_clean_under_address_sanitizer(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("recvmmsg and the C loop are Linux only")
    cc = shutil.which("gcc")
    if cc is None:
        _unavailable("gcc is not installed (needed for the AddressSanitizer build)")
        return
    runtime = _asan_runtime(cc)
    module = _build(cc, tmp_path)
    logs = tmp_path / "asan"
    env = {
        **os.environ,
        "LD_PRELOAD": runtime,
        "ASAN_OPTIONS": f"detect_leaks=0:log_path={logs}:halt_on_error=1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            _RUNNER,
            str(module),
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "tests/dns/test_worker_loop.py",
            "-k",
            SELECTION,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    reports = sorted(tmp_path.glob("asan*"))
    report_text = "\n".join(p.read_text(errors="replace")[:4000] for p in reports)
    assert not reports, f"AddressSanitizer reported:\n{report_text}"
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    # The C tests ran (and did not all deselect themselves away).
    assert " passed" in run.stdout and "deselected" in run.stdout, run.stdout[-2000:]
