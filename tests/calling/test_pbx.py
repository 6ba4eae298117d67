"""``enumer pbx``: the fragments are well-formed, real software accepts them, and the
number normalisation they contain agrees with ``enumer route`` (E164.from_text).

The normalisation rules are extracted from the generated text itself (XML
attributes, Kamailio ``=~`` conditions, Asterisk ``REGEX()`` calls) and applied
to sample numbers, so a rendering mistake in any one syntax shows up here.
"""

from __future__ import annotations

import re
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from enumer.calling.pbx import DialplanConfig, PbxError, normalisation_rules, normalise
from enumer.e164 import E164
from tests.support import ENUMER, Gateway, free_port, named_options, need, start_named, stop

#: (region, area code, dialled, E.164 digits or None when no rule applies)
SAMPLES: list[tuple[str, str | None, str, str | None]] = [
    ("US", "202", "+18009359935", "18009359935"),
    ("US", "202", "01149301234567", "49301234567"),
    ("US", "202", "0049301234567", "49301234567"),
    ("US", "202", "8009359935", "18009359935"),
    ("US", "202", "18009359935", "18009359935"),
    ("US", "202", "5550100", "12025550100"),
    ("US", "202", "+4930123456", "4930123456"),
    ("US", None, "5550100", None),
    ("DE", None, "030123456", "4930123456"),
    ("DE", None, "0049301234567", "49301234567"),
    ("DE", None, "+12025550100", "12025550100"),
    ("RU", None, "89161234567", "79161234567"),
    ("RU", None, "81012025550100", "12025550100"),
    ("GB", None, "02079460000", "442079460000"),
]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


def pbx(*args: str) -> subprocess.CompletedProcess[str]:
    return run(*ENUMER, "pbx", *args)


def config_for(region: str, area: str | None) -> list[str]:
    return ["--region", region] + (["--area-code", area] if area else [])


@pytest.mark.parametrize(("region", "area", "dialled", "expected"), SAMPLES)
def test_rules_agree_with_enumer_route(
    region: str, area: str | None, dialled: str, expected: str | None
) -> None:
    rules = normalisation_rules(region, area)
    assert normalise(dialled, rules) == expected
    if expected is not None:
        assert E164.from_text(dialled, default_region=region, area_code=area).digits == expected


def test_rule_parameters_are_checked() -> None:
    with pytest.raises(PbxError, match="NANP"):
        normalisation_rules("DE", "030")
    with pytest.raises(PbxError, match="unknown region"):
        normalisation_rules("XX")
    with pytest.raises(PbxError, match="area code"):
        normalisation_rules("US", "02")
    with pytest.raises(PbxError, match="zone"):
        DialplanConfig(suffix="en um")


# -- FreeSWITCH -----------------------------------------------------------------------


def freeswitch_rules(text: str) -> list[tuple[str, str]]:
    root = ET.fromstring(text)
    (normaliser,) = [e for e in root.iter("extension") if e.get("name") == "enumer_normalise"]
    rules = []
    for condition in normaliser.iter("condition"):
        assert condition.get("field") == "destination_number"
        assert condition.get("break") == "on-true"
        (action,) = condition.iter("action")
        assert action.get("application") == "set" and action.get("inline") == "true"
        data = action.get("data", "")
        assert data.startswith("enumer_e164=") and data.endswith("$1")
        rules.append((condition.get("expression", ""), data.removeprefix("enumer_e164=")[:-2]))
    return rules


def apply_first(rules: list[tuple[str, str]], dialled: str) -> str | None:
    for pattern, prefix in rules:
        m = re.fullmatch(pattern, dialled)
        if m:
            return prefix + m.group(1)
    return None


@pytest.mark.parametrize(("region", "area"), [("US", "202"), ("DE", None), ("RU", None)])
def test_freeswitch_fragment(region: str, area: str | None) -> None:
    result = pbx("freeswitch", *config_for(region, area), "--caller-id", "+15553550000")
    assert result.returncode == 0, result.stderr
    rules = freeswitch_rules(result.stdout)
    for sample_region, sample_area, dialled, expected in SAMPLES:
        if (sample_region, sample_area) == (region, area):
            assert apply_first(rules, dialled) == expected, dialled
    root = ET.fromstring(result.stdout)
    (lookup,) = [e for e in root.iter("extension") if e.get("name") == "enumer_lookup"]
    actions = [(a.get("application"), a.get("data")) for a in lookup.iter("action")]
    assert ("set", "effective_caller_id_number=+15553550000") in actions
    assert [d for a, d in actions if a == "enum"] == ["+$1 enum", "+$1 e164.arpa"]
    assert actions[-1] == ("bridge", "sofia/gateway/pstn/+$1")
    assert [d for a, d in actions if a == "bridge"][:2] == ["${enum_auto_route}"] * 2


def test_freeswitch_without_fallback_and_other_suffix() -> None:
    result = pbx("freeswitch", "--suffix", "enum.example.net", "--fallback", "", "--pstn", "gw1")
    root = ET.fromstring(result.stdout)
    enums = [a.get("data") for a in root.iter("action") if a.get("application") == "enum"]
    assert enums == ["+$1 enum.example.net"]
    assert "sofia/gateway/gw1/+$1" in result.stdout


# -- Asterisk -------------------------------------------------------------------------

_ASTERISK_LINE = re.compile(
    r"(\[[A-Za-z0-9_-]+\])|exten => (_?[^,]+),1,([A-Za-z]+)\((.*)\)"
    r"| same => n(?:\(([a-z0-9]+)\))?,([A-Za-z]+)\((.*)\)"
)


def balanced(text: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    in_quote = False
    for char in text:
        if char == '"':
            in_quote = not in_quote
        elif char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack and not in_quote


def asterisk_checked(text: str) -> tuple[list[tuple[str, int, str]], list[str]]:
    """Syntax sanity of extensions.conf; returns the normalisation rules and the apps."""
    labels: set[str] = set()
    targets: set[str] = set()
    apps: list[str] = []
    rules: list[tuple[str, int, str]] = []
    for raw in text.splitlines():
        line = raw.split(" ;", 1)[0].rstrip() if not raw.startswith(";") else ""
        if not line.strip():
            continue
        m = _ASTERISK_LINE.fullmatch(line)
        assert m is not None, f"not extensions.conf syntax: {raw!r}"
        if m.group(1):
            continue
        app, args = (m.group(3), m.group(4)) if m.group(3) else (m.group(6), m.group(7))
        assert balanced(args), raw
        if m.group(5):
            labels.add(m.group(5))
        apps.append(app)
        if app == "GotoIf":
            targets.update(t for t in re.split(r"[?:]", args.rsplit("?", 1)[1]) if t)
        r = re.search(
            r'REGEX\("([^"]+)" \$\{ENUMER_NUM\}\)\}\]\?Set\(ENUMER_E164=([0-9]*)'
            r"\$\{ENUMER_NUM:([0-9]+)\}\)",
            args,
        )
        if r:
            rules.append((r.group(1), int(r.group(3)), r.group(2)))
    assert targets <= labels, targets - labels
    return rules, apps


@pytest.mark.parametrize(("region", "area"), [("US", "202"), ("DE", None), ("GB", None)])
def test_asterisk_fragment(region: str, area: str | None) -> None:
    result = pbx("asterisk", *config_for(region, area), "--caller-id", "15553550000")
    assert result.returncode == 0, result.stderr
    rules, apps = asterisk_checked(result.stdout)
    assert len(rules) == len(normalisation_rules(region, area))
    for sample_region, sample_area, dialled, expected in SAMPLES:
        if (sample_region, sample_area) == (region, area):
            got = None
            for pattern, strip, prefix in rules:
                if re.fullmatch(pattern, dialled):
                    got = prefix + dialled[strip:]
                    break
            assert got == expected, dialled
    assert "ENUMLOOKUP(+${ENUMER_E164},sip,u,1,enum)" in result.stdout
    assert "ENUMLOOKUP(+${ENUMER_E164},sip,u,1,e164.arpa)" in result.stdout
    assert "Set(CALLERID(all)=+15553550000 <+15553550000>)" in result.stdout
    assert apps.count("Dial") == 3 and apps[-1] == "Hangup"


# -- Kamailio -------------------------------------------------------------------------


def kamailio_rules(text: str) -> list[tuple[str, int, str]]:
    found = re.findall(
        r'if \(\$rU =~ "([^"]+)"\) \{\n\t\t\$var\(e164\) = "([0-9]*)" \+ '
        r"\$\(rU\{s\.substr,([0-9]+),0\}\);",
        text,
    )
    return [(pattern, int(strip), prefix) for pattern, prefix, strip in found]


@pytest.mark.parametrize(("region", "area"), [("US", "202"), ("RU", None)])
def test_kamailio_config_passes_kamailio_check(
    tmp_path: Path, region: str, area: str | None
) -> None:
    binary = need("kamailio")
    result = pbx("kamailio", *config_for(region, area), "--pstn", "gw.example.net:5070")
    assert result.returncode == 0, result.stderr
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(result.stdout)
    check = run(binary, "-c", "-f", str(cfg))
    assert check.returncode == 0, check.stdout + check.stderr
    rules = kamailio_rules(result.stdout)
    assert len(rules) == len(normalisation_rules(region, area))
    for sample_region, sample_area, dialled, expected in SAMPLES:
        if (sample_region, sample_area) == (region, area):
            got = None
            for pattern, strip, prefix in rules:
                if re.fullmatch(pattern, dialled):
                    got = prefix + dialled[strip:]
                    break
            assert got == expected, dialled
    assert 'enum_query("enum.")' in result.stdout
    assert 'enum_query("e164.arpa.")' in result.stdout
    assert "@gw.example.net:5070" in result.stdout


def test_kamailio_check_rejects_a_broken_config(tmp_path: Path) -> None:
    """The -c check is a real check: the same config with a typo fails it."""
    binary = need("kamailio")
    broken = pbx("kamailio").stdout.replace("route(NORMALISE);", "route(NORMALISE;")
    cfg = tmp_path / "broken.cfg"
    cfg.write_text(broken)
    assert run(binary, "-c", "-f", str(cfg)).returncode != 0


# -- resolvers ------------------------------------------------------------------------


def test_bind_stanza_forwards_to_the_gateway(tmp_path: Path, demo_gateway: Gateway) -> None:
    stanza = pbx("bind", "--gateway", f"127.0.0.1:{demo_gateway.port}")
    assert stanza.returncode == 0, stanza.stderr
    # The options line the stanza's comment asks for, taken from the comment itself.
    (validate,) = [
        line.removeprefix("//").strip()
        for line in stanza.stdout.splitlines()
        if "validate-except" in line
    ]
    port = free_port()
    conf = tmp_path / "named.conf"
    conf.write_text(
        named_options(tmp_path, port, extra=f"dnssec-validation auto;\n{validate}") + stanza.stdout
    )
    checked = run(need("named-checkconf"), str(conf))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    process = start_named(conf)
    try:
        deadline = time.monotonic() + 30
        answer = ""
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            dig = run(
                need("dig"),
                "+time=2",
                "+tries=1",
                "-p",
                str(port),
                "@127.0.0.1",
                "-t",
                "naptr",
                "+short",
                "5.3.9.9.5.3.9.0.0.8.1.enum",
            )
            answer = dig.stdout.strip()
            if dig.returncode == 0 and answer and not answer.startswith(";;"):
                break
            time.sleep(0.2)
        assert answer == '100 10 "u" "E2U+sip" "!^(.*)$!sip:\\\\1@pbx.example.com!" .'
    finally:
        stop(process)


def test_unbound_stanza_structure() -> None:
    """unbound is not in CI's packages: the stanza is checked for what unbound needs."""
    text = pbx("unbound", "--gateway", "127.0.0.1:5335").stdout
    sections: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            current = line.strip()
            assert current in ("server:", "forward-zone:"), line
            sections[current] = []
        else:
            sections[current].append(line.strip())
    assert sections["server:"] == ['domain-insecure: "enum"', "do-not-query-localhost: no"]
    assert sections["forward-zone:"] == ['name: "enum"', "forward-addr: 127.0.0.1@5335"]
    remote = [
        line.strip()
        for line in pbx("unbound", "--gateway", "192.0.2.7:53").stdout.splitlines()
        if not line.startswith("#")
    ]
    assert not any("do-not-query-localhost" in line for line in remote)
    assert "forward-addr: 192.0.2.7@53" in remote


def test_pbx_usage_errors() -> None:
    for args, message in (
        (("kamailio", "--region", "DE", "--area-code", "030"), "NANP region"),
        (("bind", "--gateway", "gateway.example.net"), "IP address"),
        (("freeswitch", "--region", "ZZ"), "unknown region"),
        (("asterisk", "--caller-id", "alice"), "caller ID"),
        (("kamailio", "--listen", "127.0.0.1"), "listen"),
    ):
        result = pbx(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        (line,) = result.stderr.splitlines()
        assert line.startswith("error: ") and message in line, line
