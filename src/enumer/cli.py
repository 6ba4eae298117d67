"""The ``enumer`` command line.

Contract (other tools rely on it): the store is chosen by the global
``--store PATH`` or ``ENUMER_STORE``; errors are one line on stderr starting
with ``error:``, exit status 1 for bad input or a refused operation and 2 for
bad usage; no traceback unless ``--debug``.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import click

from enumer import crypto
from enumer.bound import POLICY_HELP, POLICY_NAMES, BoundLineError, Policy
from enumer.calling.command import pbx, record_check, route_cmd
from enumer.calling.doctor_command import doctor
from enumer.cliutil import Context, default_store_path, fail, out, pass_ctx, read_value
from enumer.conf import ConfigError
from enumer.ddds import select_routes
from enumer.dns.command import serve
from enumer.dns.dnssec_command import dnssec
from enumer.dns.zone_command import zone
from enumer.e164 import E164, NumberError
from enumer.nvs import NameRecord, NameStore, NvsError
from enumer.nvs.command import node
from enumer.nvs.ledger import Ledger
from enumer.nvs.rpc import NamePendingError
from enumer.owner import OwnerError
from enumer.records import (
    E2UDirective,
    EnumName,
    EnumValue,
    LintReport,
    RecordError,
    Severity,
    lint_value,
)
from enumer.resolver import Resolver, TollFreeLoadError, lookup_json
from enumer.substitution import RegexpError
from enumer.trust import TollFreeSource, TrustError, TrustList
from enumer.verification.command import verifier_admin, verifier_serve
from enumer.verifier import VerifierError, update_keeping_owner

#: Errors that are the user's input or a refused operation: one line, exit 1.
USER_ERRORS: tuple[type[Exception], ...] = (
    NvsError,
    RecordError,
    NumberError,
    RegexpError,
    crypto.CryptoError,
    TrustError,
    VerifierError,
    OwnerError,
    BoundLineError,
    ConfigError,
    TollFreeLoadError,
    OSError,
    sqlite3.Error,
)

SETTING_TRUST = "enumtrust"
SETTING_TOLLFREE = "enumtollfree"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    "store_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Store directory (default $ENUMER_STORE or the XDG data directory).",
)
@click.option(
    "--network",
    type=click.Choice(["mainnet", "testnet", "regtest"]),
    default=None,
    help="Address format of a new store (default mainnet).",
)
@click.option(
    "--nvs",
    default=None,
    envvar="ENUMER_NVS",
    help="Use this Emercoin node instead of the embedded store "
    "(http://user:pass@127.0.0.1:6662/, or $ENUMER_NVS).",
)
@click.option(
    "--conf",
    type=click.Path(path_type=Path),
    default=None,
    help="Use the Emercoin node this emercoin.conf describes (rpc* keys or .cookie).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="enumer")
@click.pass_context
def cli(
    ctx: click.Context,
    store_path: Path | None,
    network: str | None,
    nvs: str | None,
    conf: Path | None,
    debug: bool,
) -> None:
    """ENUMER: decentralized ENUM on Emercoin NVS."""
    # Only --store itself outranks a node named by --conf: $ENUMER_STORE is a default,
    # and an option given on the command line wins over a default (issue 11, item 2).
    ctx.obj = Context(
        store_path or default_store_path(), network, store_path is not None, nvs, conf
    )


# -- name ---------------------------------------------------------------------


@cli.group()
def name() -> None:
    """NVS operations with Emercoin's semantics (name_new, name_update, ...)."""


@name.command("new")
@click.argument("name_")
@click.argument("value")
@click.argument("days", type=int)
@click.option("--to", "to", default=None, help="Owner address (default: a new wallet address).")
@pass_ctx
def name_new(ctx: Context, name_: str, value: str, days: int, to: str | None) -> None:
    """Register NAME with VALUE for DAYS (VALUE - reads stdin); prints the txid."""
    click.echo(ctx.store.name_new(name_, read_value(value), days, to))


@name.command("update")
@click.argument("name_")
@click.argument("value")
@click.argument("days", type=int)
@click.option(
    "--to", "to", default=None, help="New owner address (transfer). Without it the owner is kept."
)
@click.option("--force", is_flag=True, help="Allow moving a ver: record to another address.")
@pass_ctx
def name_update(
    ctx: Context, name_: str, value: str, days: int, to: str | None, force: bool
) -> None:
    """Replace NAME's value and add DAYS; prints the txid.

    Unlike a bare node call, the owner is kept unless --to names another, and
    a ver: record is never moved without --force (it would invalidate every
    signature the verifier made).  An ENUM record with an OSIG line is resealed
    (SPEC 11) when its directives or owner change and the wallet holds the key.
    """
    text = read_value(value)
    if EnumName.matches(name_):
        text = _resealed(ctx.store, name_, text, to)
    click.echo(update_keeping_owner(ctx.store, name_, text, days, to, force))


def _resealed(store: NameStore, name_: str, text: str, to: str | None) -> str:
    """``text`` with its OSIG renewed for the update of ``name_`` (see ``record seal``);
    unchanged, with the signing instructions on stderr, when the key is elsewhere."""
    from enumer.nvs import get_active
    from enumer.owner import SealRequest, reseal_on_change

    current = get_active(store, name_)
    if current is None:
        return text
    owner = to or current.address
    result = reseal_on_change(store, name_, current.value, current.address, text, owner)
    if isinstance(result, SealRequest):
        click.echo(
            "warning: the OSIG is stale after this update; " + result.instructions()[0], err=True
        )
        for line in result.instructions()[1:]:
            click.echo(line, err=True)
        return text
    return result


@name.command("delete")
@click.argument("name_")
@pass_ctx
def name_delete(ctx: Context, name_: str) -> None:
    """Delete NAME; prints the txid."""
    click.echo(ctx.store.name_delete(name_))


@name.command("show")
@click.argument("name_")
@click.option("--json", "as_json", is_flag=True, help="The node's name_show object.")
@pass_ctx
def name_show(ctx: Context, name_: str, as_json: bool) -> None:
    """Show NAME's current value, owner and expiry."""
    store = ctx.store
    data = store.show(name_).show_json(store.height())
    if as_json:
        out(data)
        return
    for key, item in data.items():
        if key != "value":
            click.echo(f"{key}: {item}")
    click.echo("value:")
    click.echo(data["value"])


@name.command("history")
@click.argument("name_")
@click.option("--full", is_flag=True, help="Include earlier registrations (fullhistory).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def name_history(ctx: Context, name_: str, full: bool, as_json: bool) -> None:
    """Operations on NAME, oldest first."""
    store = ctx.store
    ops = store.history(name_, full)
    data = [op.history_json(store.is_mine(op.address)) for op in ops]
    if as_json:
        out(data)
        return
    for op in ops:
        days = f" +{op.days_added}d" if op.days_added is not None else ""
        click.echo(f"{op.height:>8} {op.operation:<12}{days:<8} {op.address} {op.txid}")


def _print_records(records: Sequence[NameRecord], tip: int, as_json: bool) -> None:
    if as_json:
        out([r.show_json(tip) for r in records])
        return
    for record in records:
        state = (
            "deleted"
            if record.deleted
            else (
                "expired" if not record.is_active(tip) else f"{record.expires_at - tip} blocks left"
            )
        )
        first = record.value.splitlines()[0] if record.value else ""
        click.echo(f"{record.name}\t{record.address}\t{state}\t{first[:60]}")


@name.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def name_list(ctx: Context, as_json: bool) -> None:
    """The wallet's names (name_list)."""
    data = ctx.store.list_names()
    if as_json:
        out(data)
        return
    for entry in data:
        flag = " (transferred)" if entry.get("transferred") else ""
        left = int(entry["expires_in"])
        # A negative expires_in is how far past its expiry the name is: expired, as filter says.
        state = "expired" if left < 0 else f"{left} blocks"
        click.echo(f"{entry['name']}\t{entry['address']}\t{state}{flag}")


@name.command("filter")
@click.argument("regex", default="")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def name_filter(ctx: Context, regex: str, as_json: bool) -> None:
    """Names matching REGEX (searched anywhere in the name), by registration."""
    store = ctx.store
    _print_records(store.filter(regex), store.height(), as_json)


# -- wallet -------------------------------------------------------------------


@cli.group()
def wallet() -> None:
    """Keys of the embedded store's wallet."""


@wallet.command("new-address")
@click.option("--legacy", is_flag=True, help="P2PKH (E...) instead of bech32 (em1...).")
@pass_ctx
def wallet_new_address(ctx: Context, legacy: bool) -> None:
    """Create a key and print its address."""
    click.echo(ctx.store.get_new_address("legacy" if legacy else "bech32"))


@wallet.command("import")
@click.argument("wif", envvar="ENUMER_WIF")
@pass_ctx
def wallet_import(ctx: Context, wif: str) -> None:
    """Import a private key given as WIF (or in $ENUMER_WIF, to keep it out of shell history)."""
    click.echo(ctx.ledger.import_key(wif))


@wallet.command("sign")
@click.argument("address")
@click.argument("message")
@pass_ctx
def wallet_sign(ctx: Context, address: str, message: str) -> None:
    """Sign MESSAGE with ADDRESS's key, like the node's signmessage; prints base64.

    This is how a record's owner answers a verifier's challenge: the
    signature proves the holder of the name's key, not just someone who read
    the chain.
    """
    click.echo(ctx.store.sign_message(address, message))


@wallet.command("height")
@click.option("--generate", type=int, default=0, help="Mine this many empty blocks first.")
@pass_ctx
def wallet_height(ctx: Context, generate: int) -> None:
    """Print the ledger's block height (optionally advancing it, like regtest's generate)."""
    if generate:
        ctx.ledger.generate(generate)
    click.echo(ctx.store.height())


# -- record -------------------------------------------------------------------


def sip_directive(uri: str, preference: int) -> E2UDirective:
    """``--sip URI``: a directive that routes every call of the number to URI."""
    if not uri.lower().startswith(("sip:", "sips:")) or any(c.isspace() for c in uri):
        raise RecordError(f"--sip {uri!r}: expected a SIP URI like sip:user@host, without blanks")
    delimiter = next(d for d in "!#/|~%" if d not in uri)
    return E2UDirective("E2U+sip", 100, preference, f"{delimiter}^.*${delimiter}{uri}{delimiter}")


def parse_number(number: str, region: str | None) -> E164:
    """NUMBER as a dialplan reads it; an unknown ``--region`` is bad usage (exit 2)."""
    try:
        return E164.from_text(number, default_region=region)
    except NumberError:
        raise
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--region'") from None


#: How many suffixes ``record new`` tries when names turn out to be pending.
MAX_PENDING_SKIPS = 100


def first_free_index(store: NameStore, digits: str, pending: Iterable[int] = ()) -> int:
    """The first anti-squatter suffix N whose name is absent, expired or deleted, and
    not in ``pending`` (names whose registration waits in the node's mempool)."""
    tip = store.height()
    taken = {
        EnumName.from_text(r.name).index
        for r in store.records_for_number(digits)
        if r.is_active(tip)
    }
    taken.update(pending)
    index = 0
    while index in taken:
        index += 1
    return index


@cli.group()
def record() -> None:
    """ENUM records: enum:<number>:<N>."""


@record.command("new")
@click.argument("number")
@click.option("--sip", "sips", multiple=True, help="Route every call to this SIP URI.")
@click.option(
    "--e2u",
    "e2us",
    multiple=True,
    help="A directive, e.g. 'E2U+sip=100|10|!^(.*)$!sip:\\1@host!' (repeatable).",
)
@click.option(
    "--ttl",
    type=click.IntRange(0, 0x7FFFFFFF),
    default=None,
    help="TTL of the answers in seconds (default 86400).",
)
@click.option("--days", type=int, default=365, show_default=True, help="Rental days.")
@click.option("--region", default=None, help="Region for national numbers, e.g. US, DE.")
@click.option(
    "--seal/--no-seal",
    default=True,
    show_default=True,
    help="Add the owner's OSIG (SPEC 11) so that strict gateways can serve the record.",
)
@pass_ctx
def record_new(
    ctx: Context,
    number: str,
    sips: tuple[str, ...],
    e2us: tuple[str, ...],
    ttl: int | None,
    days: int,
    region: str | None,
    seal: bool,
) -> None:
    """Publish an ENUM record for NUMBER at the first free suffix; prints its name."""
    if not sips and not e2us:
        raise click.UsageError("give at least one --sip URI or --e2u directive")
    e164 = parse_number(number, region)
    directives = [sip_directive(uri, 10 * (i + 1)) for i, uri in enumerate(sips)]
    for line in e2us:
        directive = E2UDirective.from_text(line)
        errors = lint_value(line).errors
        if errors:
            raise RecordError(f"--e2u {line!r}: {errors[0].message}")
        directives.append(directive)
    text = EnumValue.build(directives, ttl).to_text()
    report = lint_value(text)
    if report.errors:
        raise RecordError(str(report.errors[0]))
    for issue in report.issues:
        if issue.severity is Severity.WARNING:
            click.echo(f"warning: {issue.message}", err=True)
    store = ctx.store
    pending: set[int] = set()
    # The OSIG names the owner, so the owner address comes first (SPEC 11).
    owner = store.get_new_address() if seal else None
    while True:
        index = first_free_index(store, e164.digits, pending)
        enum_name = EnumName(e164.digits, index).to_text()
        value = text
        if owner is not None:
            from enumer.owner import sealed

            result = sealed(store, enum_name, text, owner)
            value = result if isinstance(result, str) else text
        try:
            store.name_new(enum_name, value, days, owner)
        except NamePendingError:
            # Registered by someone a moment ago, not mined yet: taken all the same.
            if len(pending) >= MAX_PENDING_SKIPS:
                raise
            pending.add(index)
            continue
        break
    click.echo(enum_name)


@record.command("seal")
@click.argument("name_")
@click.option(
    "--time",
    "when",
    type=click.IntRange(0),
    default=None,
    help="With --signature: the OSIG time it was made for.",
)
@click.option("--signature", default=None, help="An OSIG made elsewhere (signmessage) to add.")
@pass_ctx
def record_seal(ctx: Context, name_: str, when: int | None, signature: str | None) -> None:
    """Add or renew NAME's OSIG= (SPEC 11): the owner binds the directives to its key.

    Needed after every change of the directives (a route change needs no new
    verification).  When the wallet has no key for the owner, prints the exact
    message to sign with the owner's wallet and the command that adds the result.
    """
    from enumer.owner import seal_record

    txid, request = seal_record(ctx.store, name_, when, signature)
    if request is not None:
        for line in request.instructions():
            click.echo(line)
        ctx_exit = click.get_current_context()
        ctx_exit.exit(1)
    click.echo(txid)


@record.command("lint")
@click.argument("value")
@click.option("--name", "name_", default=None, help="The record's name: check the OSIG too.")
@click.option("--owner", default=None, help="The record's owner address: check the OSIG too.")
def record_lint(value: str, name_: str | None, owner: str | None) -> None:
    """Check a record VALUE (- reads stdin) the strict way; exit 1 on errors.

    Bound lines (SPEC 11) are checked too: malformed VSIG/OSIG lines, a missing
    one, and with --name and --owner an OSIG that no longer matches the directives.
    """
    from enumer.bound import lint_bound

    text = read_value(value)
    base = lint_value(text)
    report = LintReport((*base.issues, *lint_bound(text, name_, owner)))
    for issue in report.issues:
        click.echo(str(issue))
    if not report.ok:
        fail(f"{len(report.errors)} error(s) in the value")
    if not report.issues:
        click.echo("ok")


# -- verifier -----------------------------------------------------------------


@cli.group()
def verifier() -> None:
    """Act as a verifier: create ver: records, sign record names, revoke signatures."""


@verifier.command("new")
@click.argument("ident")
@click.option("--days", type=int, default=3650, show_default=True)
@click.option("--description", default="ENUMER verifier", show_default=True)
@pass_ctx
def verifier_new(ctx: Context, ident: str, days: int, description: str) -> None:
    """Create ver:IDENT owned by a fresh address; prints the name and the address."""
    from enumer.verifier import create_verifier, verifier_name

    address = create_verifier(ctx.store, ident, description, days)
    click.echo(f"{verifier_name(ident)} {address}")


@verifier.command("show")
@click.argument("ident")
@pass_ctx
def verifier_show(ctx: Context, ident: str) -> None:
    """Show ver:IDENT's owner address (its key) and SRL, and the pinned trust entry.

    A light gateway reads ``ver:`` records from untrusted upstreams; pinning the
    address printed here (``--trust 'ver:IDENT@ADDRESS'``) keeps any of them from
    changing whose signatures count.
    """
    from enumer.nvs import get_active
    from enumer.trust import Verifier
    from enumer.verifier import verifier_name

    name = verifier_name(ident)
    record = get_active(ctx.store, name)
    if record is None:
        fail(f"{name} does not exist or is not active")
    state = Verifier.from_record(name, record)
    click.echo(f"{name} owner {record.address}")
    click.echo(f"srl: {state.srl.to_line() if state.srl.template else 'none'}")
    if state.problem:
        click.echo(f"problem: {state.problem}")
    click.echo(f"pin: --trust '{name}@{record.address}'")


@verifier.command("sign")
@click.argument("ident")
@click.argument("enum_name")
@click.option("--append", is_flag=True, help="Add both lines to the record (wallet-owned).")
@click.option(
    "--valid-days",
    type=click.IntRange(1, 36500),
    default=182,
    show_default=True,
    help="Days the VSIG stays valid (the re-verification period).",
)
@pass_ctx
def verifier_sign(ctx: Context, ident: str, enum_name: str, append: bool, valid_days: int) -> None:
    """Sign ENUM_NAME with ver:IDENT's key; prints the SIG= and VSIG= lines.

    SIG= signs the name (emcdns and older gateways); VSIG= binds the name to the
    record's current owner until a date (SPEC 11), so a copy onto a re-registered
    name does not verify.  The record must exist: the VSIG names its owner.
    """
    from enumer.verifier import append_bound, sign_bound

    signed = sign_bound(ctx.store, ident, enum_name, valid_days)
    for line in signed.lines:
        click.echo(line)
    if append:
        append_bound(ctx.store, ident, enum_name, signed)
        click.echo(f"appended to {enum_name}", err=True)


@verifier.command("revoke")
@click.argument("ident")
@click.argument("enum_name")
@pass_ctx
def verifier_revoke(ctx: Context, ident: str, enum_name: str) -> None:
    """Revoke ver:IDENT's signature of ENUM_NAME through its SRL records."""
    from enumer.verifier import revoke

    result = revoke(ctx.store, ident, enum_name)
    if result.created_srl_line:
        click.echo(
            f"added an SRL line to {ident if ident.startswith('ver:') else 'ver:' + ident}",
            err=True,
        )
    state = "already listed in" if result.already_listed else "listed in"
    click.echo(f"{enum_name} {state} {result.srl_record}")


# -- lookup -------------------------------------------------------------------


def trust_option(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--trust",
        default=None,
        help="Trusted verifiers, e.g. 'ver:enum|ver:other' (default: the "
        "store's enumtrust setting, else ver:enum).",
    )(f)
    f = click.option(
        "--tollfree",
        default=None,
        help="Toll-free sources, e.g. '@enum:tollfree|/etc/enumer/tf.txt'.",
    )(f)
    return f


def make_resolver(
    ctx: Context,
    trust: str | None,
    tollfree: str | None,
    exact_srl: bool = False,
    policy: Policy = Policy.COMPAT,
) -> Resolver:
    trust_text = trust if trust is not None else (ctx.setting(SETTING_TRUST) or "ver:enum")
    tf_text = tollfree if tollfree is not None else (ctx.setting(SETTING_TOLLFREE) or "")
    return Resolver(
        ctx.store,
        TrustList.from_text(trust_text),
        TollFreeSource.parse_list(tf_text),
        exact_srl,
        policy=policy,
        explain=True,
    )


@cli.command()
@click.argument("number")
@trust_option
@click.option("--region", default=None, help="Region for national numbers, e.g. US.")
@click.option("--exact-srl", is_flag=True, help="Revoke only names listed on a line of their own.")
@click.option(
    "--signatures",
    type=click.Choice(POLICY_NAMES),
    default=Policy.COMPAT.value,
    show_default=True,
    help=POLICY_HELP,
)
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    metavar="URL",
    help="Ask these untrusted upstreams (nodes or record feeds) as a light gateway "
    "would, and say which served each record (repeatable).",
)
@click.option("--quorum", type=click.IntRange(1, 64), default=None, help="As serve --quorum.")
@click.option(
    "--upstream-chain",
    type=click.Choice(["main", "test", "regtest"]),
    default="main",
    show_default=True,
)
@pass_ctx
def lookup(
    ctx: Context,
    number: str,
    trust: str | None,
    tollfree: str | None,
    region: str | None,
    exact_srl: bool,
    signatures: str,
    as_json: bool,
    upstreams: tuple[str, ...],
    quorum: int | None,
    upstream_chain: str,
) -> None:
    """Why NUMBER resolves or not: every record, every signature, the answer, the URI."""
    e164 = parse_number(number, region)
    if upstreams:
        lookup_upstreams(
            e164, upstreams, quorum, upstream_chain, trust, tollfree, exact_srl, signatures
        )
        return
    resolver = make_resolver(ctx, trust, tollfree, exact_srl, Policy(signatures))
    explain_lookup(resolver, e164, ctx.store.height(), as_json)


def lookup_upstreams(
    e164: E164,
    upstreams: tuple[str, ...],
    quorum: int | None,
    chain: str,
    trust: str | None,
    tollfree: str | None,
    exact_srl: bool,
    signatures: str,
) -> None:
    """``lookup --upstream``: the light rules over what each upstream returns for the
    number, then the usual explanation, and per record where it was served from."""
    import tempfile

    from enumer.dns.light import light_lookup
    from enumer.emercoin import CHAIN_TO_NETWORK
    from enumer.light import served_line

    trust_list = TrustList.from_text(trust or "ver:enum")
    sources = TollFreeSource.parse_list(tollfree or "")
    with tempfile.TemporaryDirectory(prefix="enumer-lookup-") as where:
        index, sync = light_lookup(
            Path(where),
            list(upstreams),
            quorum,
            CHAIN_TO_NETWORK[chain],
            trust_list,
            sources,
            e164.digits,
        )
        resolver = Resolver(
            index, trust_list, sources, exact_srl, policy=Policy(signatures), explain=True
        )
        explain_lookup(resolver, e164, index.height(), False)
        states = sync.states()
        for state in states:
            if state.error:
                click.echo(f"  {state.error}")
        for name, choice in sorted((sync.choices or {}).items()):
            if choice.record is not None or choice.notes:
                click.echo(f"{name}: {served_line(choice, states)}")
                for note in choice.notes:
                    click.echo(f"  {note}")
        index.close()
        sync.views.close()


def explain_lookup(resolver: Resolver, e164: E164, tip: int, as_json: bool) -> None:
    """The lookup report of ``e164`` through ``resolver`` at chain height ``tip``."""
    resolution = resolver.resolve(e164.digits)
    routes, problems = select_routes(resolution.naptrs, e164.aus)
    if as_json:
        out(lookup_json(resolution, e164, routes, problems, tip, resolver.policy))
        return
    click.echo(
        f"number {e164.aus}  (trust {resolver.trust.to_text()}, height {tip}, "
        f"signatures {resolver.policy.value})"
    )
    if not resolution.records:
        click.echo("  no active record enum:" + e164.digits + ":N")
    for verdict in resolution.records:
        mark = "SERVED " if verdict.verified else "ignored"
        click.echo(f"  {mark} {verdict.name}  owner {verdict.address}")
        click.echo(f"          {verdict.reason}")
        for check in verdict.bound.checks if verdict.bound is not None else ():
            click.echo(
                f"          line {check.line} {check.kind}: {check.status.value}: {check.detail}"
            )
    for problem in resolver.tollfree.problems:
        click.echo(f"  toll-free problem: {problem}")
    if resolution.tollfree is not None:
        click.echo(
            f"  toll-free match: ={resolution.tollfree.pattern} from {resolution.tollfree.source}"
        )
    if not resolution.naptrs:
        click.echo("answer: NXDOMAIN (nothing served)")
    else:
        click.echo(f"answer ({len(resolution.naptrs)} NAPTR):")
        for naptr in resolution.naptrs:
            click.echo(f"  {naptr.ttl:>6} IN NAPTR {naptr.to_text()}")
    for problem in problems:
        click.echo(f"  skipped: {problem}")
    click.echo(f"uri: {routes[0].uri}" if routes else "uri: none (no usable SIP route)")


# -- demo ---------------------------------------------------------------------


@cli.group()
def demo() -> None:
    """Demo data for a first run."""


@demo.command("seed")
@click.option("--force", is_flag=True, help="Seed even if the store already has names.")
@pass_ctx
def demo_seed(ctx: Context, force: bool) -> None:
    """Fill an empty store with a demo verifier, records and a toll-free list."""
    from enumer import demo as demo_data

    store = ctx.store
    if not force and not demo_data.is_empty(store):
        click.echo(f"store {ctx.store_path} already has names: not seeded")
        return
    for line in demo_data.seed(store):
        click.echo(line)
    where = "use --trust/--tollfree, or enumtrust/enumtollfree in emercoin.conf"
    if isinstance(store, Ledger):
        store.set_setting(SETTING_TRUST, demo_data.DEMO_VERIFIER)
        store.set_setting(SETTING_TOLLFREE, "@" + demo_data.DEMO_TOLLFREE)
        where = f"saved in {ctx.store_path}"
    click.echo(f"trust: {demo_data.DEMO_VERIFIER}; toll-free: @{demo_data.DEMO_TOLLFREE} ({where})")


# -- the commands of the gateway, the node, the caller and the verification service --

cli.add_command(serve)
cli.add_command(zone)
cli.add_command(dnssec)
cli.add_command(node)
cli.add_command(route_cmd)
cli.add_command(pbx)
cli.add_command(doctor)
record.add_command(record_check)
verifier.add_command(verifier_serve)
verifier.add_command(verifier_admin)


#: click >= 8.2 raises this for a group called without its command.
_NO_ARGS_IS_HELP: tuple[type[click.UsageError], ...] = tuple(
    e for e in (getattr(click.exceptions, "NoArgsIsHelpError", None),) if e is not None
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: maps every failure to one ``error:`` line and an exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        result = cli.main(args=args, prog_name="enumer", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except _NO_ARGS_IS_HELP as exc:
        if exc.ctx is not None:
            click.echo(exc.ctx.get_help())
        return 0
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return 1
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return 1
    except USER_ERRORS as exc:
        if debug:
            raise
        message = str(exc) or exc.__class__.__name__
        if isinstance(exc, OSError) and exc.strerror:
            message = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
        click.echo(f"error: {message}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: never a traceback
        if debug:
            raise
        click.echo(
            f"error: internal error: {exc.__class__.__name__}: {exc} (rerun with --debug)", err=True
        )
        return 1
    # A command may return its exit status (``ctx.exit(n)`` arrives as the return value).
    return result if isinstance(result, int) else 0
