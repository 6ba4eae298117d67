"""``enumer route``, ``enumer record check`` and ``enumer pbx``: the caller's commands.

:mod:`enumer.cli` registers ``route`` and ``pbx`` on ``enumer`` and ``check`` on
its ``record`` group; the global options arrive as :class:`enumer.cliutil.Context`.

Exit status of ``route``: 0 when there is a route, 1 when the call must go to
the PSTN (with the reason on stdout), so that a dialplan or a script can test
it; 2 for bad usage. ``record check`` exits 0 when every PBX calls the URI
ENUMER calls, 1 otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from enumer.bound import lint_bound
from enumer.calling.compat import PBX_NAMES, PBXS, RecordReport, Status, Verdict, check_value
from enumer.calling.pbx import (
    DialplanConfig,
    PbxError,
    asterisk_fragment,
    bind_stanza,
    freeswitch_fragment,
    kamailio_config,
    unbound_stanza,
)
from enumer.calling.route import (
    DEFAULT_TIMEOUT,
    RouteResult,
    Suffix,
    SuffixError,
    default_suffixes,
    parse_server,
    route,
)
from enumer.cliutil import Context, out, pass_ctx, read_value
from enumer.ddds import DEFAULT_SIP_SERVICES
from enumer.dns.dnssec_command import anchor_keys, bind_anchor, keys_dir, unbound_anchor
from enumer.e164 import E164, DialplanError
from enumer.records import EnumName, EnumValue, RecordError, blank_led_e2u_lines


def _parse_number(number: str, region: str | None, area_code: str | None) -> E164:
    """NUMBER as the dialplan normalises it; a bad ``--region``/``--area-code`` is usage."""
    try:
        return E164.from_text(number, default_region=region, area_code=area_code)
    except DialplanError as exc:  # configuration, not a bad number
        raise click.UsageError(str(exc)) from None


def _print_route(result: RouteResult) -> None:
    winner = result.winner
    if winner is None:
        click.echo(f"no ENUM route: use the PSTN ({result.reason})")
        return
    count = len(winner.routes)
    click.echo(
        f"{result.number.aus}: {count} route{'s' if count > 1 else ''} from "
        f"{winner.suffix.label} ({winner.qname})"
    )
    for r in winner.routes:
        click.echo(f"  {r.uri}\t{r.service} order {r.order} preference {r.preference}")
    for problem in winner.problems:
        click.echo(f"  skipped: {problem}")


@click.command("route")
@click.argument("number")
@click.option(
    "--server",
    default=None,
    help="Server for suffixes given without @SERVER (HOST:PORT); without --suffix it "
    "replaces the default gateway 127.0.0.1:5335.",
)
@click.option(
    "--suffix",
    "suffixes",
    multiple=True,
    help="ENUM suffix to ask, in order (repeatable): ZONE (at --server, else the "
    "system resolver) or ZONE@HOST:PORT. Default: enum@127.0.0.1:5335, then e164.arpa.",
)
@click.option("--region", default=None, help="Home region for national numbers, e.g. US.")
@click.option("--area-code", default=None, help="NANP area code that completes 7-digit numbers.")
@click.option(
    "--service",
    "services",
    multiple=True,
    help="Enumservice to accept (repeatable; default E2U+sip and E2U+voice:sip).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 60),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for each suffix.",
)
@click.option("--json", "as_json", is_flag=True, help="number, routes, reason as JSON.")
def route_cmd(
    number: str,
    server: str | None,
    suffixes: tuple[str, ...],
    region: str | None,
    area_code: str | None,
    services: tuple[str, ...],
    timeout: float,
    as_json: bool,
) -> None:
    """Where a PBX would send a call to NUMBER: the ENUM routes in order, or the PSTN.

    NUMBER is normalised as the article's dialplan does (+, 00, 011, national
    numbers with --region and --area-code). Exit status 0 with a route, 1
    when the call must go to the PSTN.
    """
    try:
        default_server = parse_server(server) if server is not None else None
        chosen = (
            [Suffix.from_text(s, default_server) for s in suffixes]
            if suffixes
            else default_suffixes(default_server)
        )
    except SuffixError as exc:
        raise click.BadParameter(str(exc)) from None
    e164 = _parse_number(number, region, area_code)
    result = route(e164, chosen, services or DEFAULT_SIP_SERVICES, timeout)
    if as_json:
        out(result.to_json())
    else:
        _print_route(result)
    if not result.routes:
        click.get_current_context().exit(1)


# -- record check -------------------------------------------------------------------------


def _verdict_line(label: str, verdict: Verdict) -> str:
    shown = verdict.uri if verdict.uri is not None else "-"
    line = f"  {label:<22}{verdict.status.value:<9}{shown}"
    if verdict.status is not Status.YES or verdict.dial is not None:
        detail = verdict.reason if verdict.status is not Status.YES else f"dials {verdict.dial}"
        line += f"\n  {'':<31}({detail})"
    return line


def _line_warnings(text: str) -> list[str]:
    """What the value holds that no gateway reads although it looks like a directive."""
    return [
        f"line {n} starts with a blank: emcdns does not read it as an E2U directive"
        for n in blank_led_e2u_lines(text)
    ]


def _print_report(title: str, report: RecordReport, bound: Sequence[str] = ()) -> None:
    click.echo(f"{title}  (AUS {report.aus})")
    if not report.directives:
        click.echo("  no E2U directive: nothing to call")
    for d in report.directives:
        click.echo(f"directive {d.index}: {d.directive.to_text()}")
        click.echo(_verdict_line(PBX_NAMES["enumer"], d.enumer))
        for pbx in PBXS:
            click.echo(_verdict_line(PBX_NAMES[pbx], d.pbx[pbx]))
    click.echo("first route:")
    click.echo(f"  {PBX_NAMES['enumer']:<22}{report.first_route or 'none'}")
    for pbx in PBXS:
        verdict = report.summary[pbx]
        click.echo(f"  {PBX_NAMES[pbx]:<22}{verdict.status.value:<9}{verdict.reason}")
    for line in bound:
        click.echo(f"bound signatures: {line}")
    click.echo("works everywhere" if report.ok else "does not work the same everywhere")


@click.command("check")
@click.argument("name_")
@click.option(
    "--value",
    default=None,
    help="Check this value instead of the published one (- reads stdin); NAME may "
    "then also be a phone number.",
)
@click.option("--region", default=None, help="Region for a national NAME number.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def record_check(
    obj: Context, name_: str, value: str | None, region: str | None, as_json: bool
) -> None:
    """Would FreeSWITCH, Asterisk and Kamailio call the URI ENUMER computes?

    NAME is enum:<number>:<N> (the published record is read) or, with --value
    or to check every active record of a number, a phone number. For each
    E2U directive: yes, differs (another URI), no (ignored or refused) or
    unknown; then the route each PBX would call first. Exit 1 unless every
    PBX calls ENUMER's first route. The PBX models and their assumptions are
    in docs/pbx-guide.md.
    """
    parsed = EnumName.parse(name_)
    digits = parsed.digits if parsed is not None else _parse_number(name_, region, None).digits
    if parsed is not None:
        E164.from_digits(digits)  # an ENUM name with more than 15 digits is no number
    targets: list[tuple[str, str]] = []
    owners: dict[str, str] = {}  # published records: their owner, for the OSIG check
    if value is not None:
        targets.append((name_, read_value(value)))
    else:
        store = obj.store
        tip = store.height()
        if parsed is not None:
            record = store.show(name_)
            if not record.is_active(tip):
                raise RecordError(f"{name_} is expired or deleted")
            targets.append((name_, record.value))
            owners[name_] = record.address
        else:
            active = [r for r in store.records_for_number(digits) if r.is_active(tip)]
            targets += [(r.name, r.value) for r in active]
            owners.update((r.name, r.address) for r in active)
            if not targets:
                raise RecordError(f"no active record enum:{digits}:N (use --value to check one)")
    aus = "+" + digits
    reports = [
        (title, check_value(EnumValue.from_text(text), aus), _line_warnings(text))
        for title, text in targets
    ]
    # Bound lines (SPEC 11): missing, stale or malformed VSIG/OSIG, after the PBX verdicts.
    bound = {
        title: [str(i) for i in lint_bound(text, title, owners.get(title))]
        for title, text in targets
    }
    if as_json:
        data = [
            {"name": title, **report.to_json(), "bound": bound[title], "warnings": warnings}
            for title, report, warnings in reports
        ]
        out(data[0] if len(data) == 1 else data)
    else:
        for index, (title, report, warnings) in enumerate(reports):
            if index:
                click.echo()
            _print_report(title, report, bound[title])
            for warning in warnings:
                click.echo(f"warning: {warning}")
    if not all(report.ok for _, report, _ in reports):
        click.get_current_context().exit(1)


# -- pbx ------------------------------------------------------------------------------


@click.command("pbx")
@click.argument(
    "kind", type=click.Choice(["freeswitch", "asterisk", "kamailio", "bind", "unbound"])
)
@click.option("--region", default="US", show_default=True, help="Home region of the PBX.")
@click.option("--area-code", default=None, help="NANP home area code for 7-digit numbers.")
@click.option(
    "--gateway",
    default="127.0.0.1:5335",
    show_default=True,
    help="The ENUMER gateway, HOST:PORT (bind/unbound forward to it).",
)
@click.option("--suffix", default="enum", show_default=True, help="The ENUMER zone.")
@click.option(
    "--fallback",
    default="e164.arpa",
    show_default=True,
    help="Zone asked when ENUMER has no route ('' for none).",
)
@click.option("--caller-id", default=None, help="Caller ID for ENUM calls, e.g. +15553550000.")
@click.option(
    "--pstn",
    default=None,
    help="PSTN route: FreeSWITCH gateway, Asterisk PJSIP endpoint (default 'pstn'), "
    "Kamailio HOST[:PORT] (default pstn.example.net).",
)
@click.option(
    "--listen",
    default="udp:127.0.0.1:5060",
    show_default=True,
    help="Kamailio's listen socket.",
)
@click.option(
    "--dnssec",
    is_flag=True,
    help="bind/unbound: validate the signed zone with its trust anchor (from --dnssec-keys).",
)
@click.option(
    "--dnssec-keys",
    "dnssec_keys",
    type=click.Path(path_type=Path),
    default=None,
    help="The gateway's key directory (default: dnssec/ in the store directory).",
)
@pass_ctx
def pbx(
    obj: Context,
    /,
    kind: str,
    region: str,
    area_code: str | None,
    gateway: str,
    suffix: str,
    fallback: str,
    caller_id: str | None,
    pstn: str | None,
    listen: str,
    dnssec: bool,
    dnssec_keys: Path | None,
) -> None:
    """Print a configuration fragment: a PBX dialplan using ENUMER, or the resolver's
    forwarding stanza for the ENUMER zone."""
    try:
        config = DialplanConfig(
            region=region,
            area_code=area_code,
            gateway=parse_server(gateway),
            suffix=suffix.strip("."),
            fallback_suffix=fallback.strip(".") or None,
            caller_id=caller_id,
            pstn=pstn,
            listen=listen,
        )
        if dnssec:
            if kind not in ("bind", "unbound"):
                raise click.UsageError("--dnssec: only for bind and unbound")
            keys = anchor_keys(keys_dir(obj, dnssec_keys), config.suffix)
            if kind == "bind":
                click.echo(bind_stanza(config, tuple(bind_anchor(keys))), nl=False)
            else:
                click.echo(unbound_stanza(config, tuple(unbound_anchor(keys))), nl=False)
            return
        render = {
            "freeswitch": freeswitch_fragment,
            "asterisk": asterisk_fragment,
            "kamailio": kamailio_config,
            "bind": bind_stanza,
            "unbound": unbound_stanza,
        }[kind]
        click.echo(render(config), nl=False)
    except (PbxError, SuffixError) as exc:
        raise click.UsageError(str(exc)) from None
