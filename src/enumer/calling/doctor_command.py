"""``enumer doctor``: walk the hops of a call to NUMBER and name the one to mend.

Registered by :mod:`enumer.cli`; the global options arrive as
:class:`enumer.cliutil.Context`. Exit status 0 when the PBX would call the number over
ENUMER, 1 when it would fall back to the PSTN, 2 for bad usage.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from enumer.calling.doctor import diagnose, render_text
from enumer.calling.probes import DEFAULT_PROBE_TIMEOUT, DoctorSetup, ProbeError, default_resolver
from enumer.calling.route import DEFAULT_GATEWAY, SuffixError, parse_server
from enumer.cliutil import Context, pass_ctx


def _address(text: str | None, option: str) -> tuple[str, int] | None:
    if text is None:
        return None
    try:
        return parse_server(text)
    except SuffixError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@click.command("doctor")
@click.argument("number")
@click.option(
    "--resolver",
    default=None,
    help="The resolver the PBX asks, ADDR[:PORT] (default: the first nameserver of "
    "/etc/resolv.conf).",
)
@click.option(
    "--gateway",
    default=None,
    help="The ENUMER gateway, ADDR[:PORT] (default 127.0.0.1:5335).",
)
@click.option("--nvs", default=None, help="The gateway's Emercoin node, a JSON-RPC URL.")
@click.option(
    "--conf",
    type=click.Path(path_type=Path),
    default=None,
    help="The gateway's emercoin.conf (rpc* keys or .cookie; enumtrust, enumtollfree).",
)
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    help="A JSON-RPC chain source (repeatable; their heights are compared).",
)
@click.option("--suffix", default="enum", show_default=True, help="The ENUMER zone.")
@click.option(
    "--pbx",
    type=click.Choice(["freeswitch", "asterisk", "kamailio"]),
    default=None,
    help="Judge the answer with this PBX's rules (record check's model).",
)
@click.option("--region", default=None, help="The PBX's home region, e.g. US.")
@click.option("--area-code", default=None, help="NANP home area code for 7-digit numbers.")
@click.option(
    "--trust",
    default=None,
    help="Judge the records with this trust list (default: the gateway's own).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 10),
    default=DEFAULT_PROBE_TIMEOUT,
    show_default=True,
    help="Seconds per probe.",
)
@click.option("--json", "as_json", is_flag=True, help="The hop list as JSON.")
@pass_ctx
def doctor(
    obj: Context,
    number: str,
    resolver: str | None,
    gateway: str | None,
    nvs: str | None,
    conf: Path | None,
    upstreams: tuple[str, ...],
    suffix: str,
    pbx: str | None,
    region: str | None,
    area_code: str | None,
    trust: str | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Which hop stops a call to NUMBER from going over ENUMER, and how to mend it.

    Asks, from the PBX's side inwards: the dialplan's number, the resolver, the
    gateway, the gateway's status, the chain source, the records; compares
    their answers and names the first hop where they diverge, with the fix.
    Exit 0 when the PBX would call over ENUMER, 1 when it falls back to the PSTN.
    """
    if sum(x is not None and x != () for x in (nvs, conf, upstreams)) > 1:
        raise click.UsageError(
            "give one chain source: --nvs URL, --conf FILE or --upstream URL ..."
        )
    zone = suffix.strip().strip(".").lower()
    if not zone:
        raise click.BadParameter("empty zone", param_hint="'--suffix'")
    nodes = [nvs] if nvs is not None else list(upstreams)
    if not nodes and conf is None:  # the global --nvs/--conf name the node too
        if obj.nvs is not None:
            nodes = [obj.nvs]
        conf = obj.conf
    try:
        resolver_addr = _address(resolver, "'--resolver'") or default_resolver()
        setup = DoctorSetup(
            dialled=number,
            resolver=resolver_addr,
            gateway=_address(gateway, "'--gateway'") or DEFAULT_GATEWAY,
            zone=zone,
            pbx=pbx,
            region=region,
            area_code=area_code,
            trust=trust,
            nodes=nodes,
            conf=conf,
            store=None if nodes or conf is not None else obj.store_path,
            network=obj.network,
            timeout=timeout,
        )
        from enumer.calling.probes import run_probes

        probes, seconds = run_probes(setup)
    except ProbeError as exc:
        raise click.UsageError(str(exc)) from None
    diagnosis = diagnose(probes)
    diagnosis.seconds = seconds
    if as_json:
        click.echo(json.dumps(diagnosis.to_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(render_text(diagnosis), nl=False)
    if not diagnosis.over_enumer:
        click.get_current_context().exit(1)
