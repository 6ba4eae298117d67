"""The article's deployment: BIND 9 forwards the ``enum`` zone to the ENUMER gateway.

A PBX asks its usual resolver; BIND forwards ``*.enum`` to the gateway and the
answer comes back through BIND.  Real ``named`` and real ``dig`` from Debian.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.support import Gateway, free_port, named_options, need, start_named, stop

pytestmark = pytest.mark.e2e

FORWARD_ENUM = """\
zone "enum" {{
    type forward;
    forward only;
    forwarders {{ 127.0.0.1 port {gateway}; }};
}};
"""


def dig(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [need("dig"), "+time=3", "+tries=2", *args], capture_output=True, text=True, timeout=30
    )


@pytest.fixture
def named(tmp_path: Path, demo_gateway: Gateway):  # type: ignore[no-untyped-def]
    port = free_port()
    conf = tmp_path / "named.conf"
    conf.write_text(
        named_options(tmp_path, port, extra="dnssec-validation no;\nquerylog yes;")
        + FORWARD_ENUM.format(gateway=demo_gateway.port)
    )
    process = start_named(conf)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(
                    f"named exited: {process.stdout.read() if process.stdout else ''}"
                )
            probe = dig("-p", str(port), "@127.0.0.1", "-t", "soa", "version.bind", "+short")
            if probe.returncode == 0:
                break
            time.sleep(0.2)
        yield port
    finally:
        stop(process)


def test_bind_forwards_enum_zone_to_gateway(named: int) -> None:
    result = dig("-p", str(named), "@127.0.0.1", "-t", "naptr", "+short", "53995390081.enum")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '100 10 "u" "E2U+sip" "!^(.*)$!sip:\\\\1@pbx.example.com!" .'


def test_bind_dotted_form_and_negative_answers(named: int) -> None:
    dotted = dig(
        "-p", str(named), "@127.0.0.1", "-t", "naptr", "+short", "5.3.9.9.5.3.9.0.0.8.1.enum"
    )
    assert "sip:\\\\1@pbx.example.com" in dotted.stdout
    # Unsigned record: NXDOMAIN through BIND, with the gateway's SOA for negative caching.
    missing = dig("-p", str(named), "@127.0.0.1", "-t", "naptr", "76543215551.enum")
    assert "status: NXDOMAIN" in missing.stdout
    assert "SOA" in missing.stdout
    # A served number asked for another type: NODATA, not NXDOMAIN.
    nodata = dig("-p", str(named), "@127.0.0.1", "-t", "a", "53995390081.enum")
    assert "status: NOERROR" in nodata.stdout
    assert "ANSWER: 0" in nodata.stdout


def test_bind_sees_a_new_record_within_a_second(named: int, demo_gateway: Gateway) -> None:
    import sys

    subprocess.run(
        [
            sys.executable,
            "-m",
            "enumer",
            "--store",
            str(demo_gateway.store),
            "record",
            "new",
            "+1 202 555 0199",
            "--sip",
            "sip:new@pbx.example.org",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    sign = subprocess.run(
        [
            sys.executable,
            "-m",
            "enumer",
            "--store",
            str(demo_gateway.store),
            "verifier",
            "sign",
            "demo",
            "enum:12025550199:0",
            "--append",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert sign.stdout.startswith("SIG=ver:demo|")
    time.sleep(1.0)
    result = dig("-p", str(named), "@127.0.0.1", "-t", "naptr", "+short", "99105552021.enum")
    assert "sip:new@pbx.example.org" in result.stdout


def test_bind_gets_the_good_directives_of_a_record_with_unparsable_ones(
    named: int, demo_gateway: Gateway
) -> None:
    """Signed directives BIND would reject (NUL, ``\\9`` with one group, no final delimiter,
    an unbalanced parenthesis, ``!!!``) are dropped by the gateway, so BIND answers the good
    one instead of SERVFAIL for the whole number (issue 18, defect 2)."""
    import sys

    from tests.test_resolver import UNPARSABLE

    enumer = [sys.executable, "-m", "enumer", "--store", str(demo_gateway.store)]
    value = "\n".join(["E2U+sip=100|10|!^(.*)$!sip:\\1@good.example.org!", *UNPARSABLE])
    name = "enum:12025550177:0"
    subprocess.run(
        [*enumer, "name", "new", name, "-", "30"],
        input=value,
        check=True,
        text=True,
        capture_output=True,
    )
    subprocess.run(
        [*enumer, "verifier", "sign", "demo", name, "--append"],
        check=True,
        capture_output=True,
        text=True,
    )
    # Ask BIND only once the gateway serves the record: an earlier NXDOMAIN would
    # stay in BIND's negative cache for the SOA minimum, whatever came after.
    deadline = time.monotonic() + 30
    while True:
        direct = dig("-p", str(demo_gateway.port), "@127.0.0.1", "-t", "naptr", "77105552021.enum")
        if "good.example.org" in direct.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    result = dig("-p", str(named), "@127.0.0.1", "-t", "naptr", "77105552021.enum")
    assert "status: NOERROR" in result.stdout, result.stdout
    assert "ANSWER: 1," in result.stdout, result.stdout
    assert "sip:\\\\1@good.example.org" in result.stdout
