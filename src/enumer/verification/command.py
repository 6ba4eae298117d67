"""``enumer verifier serve`` and ``enumer verifier admin``: run the service, manage its users.

``serve`` checks everything it can before it listens (the store, the ``ver:``
record and the wallet's key for it, the trunk URI, the address), so that a
mistake is one ``error:`` line at start rather than a broken page later. It
then runs uvicorn in a thread, a chain watcher in another, and waits for
SIGTERM or SIGINT in the main thread.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click

from enumer.cliutil import Context, pass_ctx
from enumer.nvs import NameStore
from enumer.verification.calls import Caller
from enumer.verification.model import (
    DEFAULT_DENY_PREFIXES,
    Policy,
    VerificationError,
    parse_prefixes,
)

log = logging.getLogger("enumer.verification")

DEFAULT_PORT = 8480
#: The outbound trunk's password comes from the environment, never the command line
#: (which every user of the machine can read in the process list).
PASSWORD_ENV = "ENUMER_SIP_PASSWORD"


def _setup_logging() -> None:
    """One line per event on stderr with a UTC timestamp, as ``enumer serve`` logs."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(asctime)s enumer verifier: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    for name in ("enumer.verification", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
    logging.getLogger("enumer.verification").setLevel(logging.INFO)
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)


def _bare(ident: str) -> str:
    from enumer.verifier import verifier_name

    return verifier_name(ident)[4:]


def default_state_path(store_path: Path, ident: str, uses_node: bool) -> Path:
    """``<store>/verifier-<id>.db``; with a node (no store directory) ``~/.enumer/...``."""
    base = Path.home() / ".enumer" if uses_node else store_path
    return base / f"verifier-{_bare(ident)}.db"


def _open_store(store_path: Path, nvs: str | None, network: str | None) -> NameStore:
    """The chain the service reads and signs through. An embedded store must exist
    already: a verifier's key is in it, so a new empty one would be a mistake."""
    if nvs is not None:
        from enumer.nvs.rpc import open_node_store

        return open_node_store(nvs, network)
    from enumer.nvs.ledger import Ledger

    return Ledger(store_path, network, create=False)


def _policy(allow: str | None, deny: str | None, reverify_days: int | None) -> Policy:
    try:
        allowed = parse_prefixes(allow) if allow else ()
        denied = parse_prefixes(deny) if deny else ()
    except VerificationError as exc:
        raise click.BadParameter(str(exc)) from None
    policy = Policy(
        allow_prefixes=allowed,
        deny_prefixes=DEFAULT_DENY_PREFIXES
        + tuple(p for p in denied if p not in DEFAULT_DENY_PREFIXES),
    )
    if reverify_days is not None:
        policy = dataclasses.replace(policy, reverify_days=reverify_days)
    return policy


def _caller(trunk: str | None, caller_prefix: str | None, code_digits: int) -> Caller | None:
    """The flash caller on ``trunk`` (its user part is the account), or None: no calls."""
    if trunk is None:
        if caller_prefix is not None:
            raise click.UsageError("--caller-prefix is for --trunk")
        return None
    if caller_prefix is None:
        raise click.UsageError(
            "--trunk needs --caller-prefix DIGITS: the calling number's leading digits, "
            "which the code completes"
        )
    from enumer.verification.calls import FlashCaller

    try:
        return FlashCaller(
            trunk, caller_prefix, password=os.environ.get(PASSWORD_ENV), code_digits=code_digits
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--trunk/--caller-prefix") from None


def _is_loopback(bind: str) -> bool:
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return bind == "localhost"


def _listen(bind: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a taken port is an ``error:`` line."""
    try:
        infos = socket.getaddrinfo(bind, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(128)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {bind} port {port}: {exc.strerror or exc}"
        ) from None
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: Any, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> Any:
    """How ``serve`` runs the app (the tests run it the same way).

    No access log (request lines carry the owner's token in their path); no
    Server header; and uvicorn's own X-Forwarded-For handling off, because it
    trusts loopback peers by default: the web layer believes that header only
    from ``--trusted-proxy``.
    """
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        log_config=None,
        lifespan="off",
    )


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class ChainWatcher:
    """Calls ``service.poll_chain()`` every ``interval`` seconds until stopped.

    A failure (the node is down, the store is locked) is logged once per
    distinct message and never ends the service: the pages keep working and
    the next poll tries again.
    """

    def __init__(self, poll: Any, interval: float) -> None:
        self.poll = poll
        self.interval = interval
        self.stopped = threading.Event()
        self.last_error = ""

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.once()

    def once(self) -> None:
        try:
            changed = self.poll()
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            if message != self.last_error:
                log.warning("chain watch failed, will retry: %s", message)
            self.last_error = message
            return
        if self.last_error:
            log.info("chain watch works again")
            self.last_error = ""
        for req in changed:
            log.info("request %s (%s) is now %s", req.id, req.name, req.state.value)


def _day(when: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(when))


def _read_password() -> str:
    """From standard input when it is not a terminal (one line), else prompted twice."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    password: str = click.prompt(
        "Password", hide_input=True, confirmation_prompt=True, err=True, show_default=False
    )
    return password


@click.command("serve")
@click.option("--id", "ident", required=True, help="The verifier: ID of its ver:ID record.")
@click.option(
    "--store",
    "store_path",
    type=click.Path(path_type=Path),
    default=None,
    help="The embedded store whose wallet holds the verifier's key (as enumer --store).",
)
@click.option("--nvs", default=None, help="An Emercoin node instead of the store (URL).")
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
@click.option(
    "--trunk",
    default=None,
    help="Outbound SIP trunk for the flash calls, sip:USER@HOST[:PORT] "
    f"(password in ${PASSWORD_ENV}). Without it, operators approve manually.",
)
@click.option(
    "--caller-prefix",
    default=None,
    help="Leading digits of the calling number; the code is appended to them.",
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The service's SQLite file (default <store>/verifier-ID.db, "
    "~/.enumer/verifier-ID.db with --nvs).",
)
@click.option(
    "--poll",
    type=click.FloatRange(0.05, 3600),
    default=10.0,
    show_default=True,
    help="Seconds between two looks at the chain for published signatures.",
)
@click.option("--allow", default=None, help="Only call numbers with these prefixes (1,44,...).")
@click.option("--deny", default=None, help="Never call these prefixes (added to the defaults).")
@click.option(
    "--reverify-days",
    type=click.IntRange(1, 3650),
    default=None,
    help="Re-verification interval in days (default 182).",
)
@click.option(
    "--insecure-cookies",
    is_flag=True,
    help="Cookies without the Secure flag (plain HTTP; automatic on loopback).",
)
@click.option(
    "--trusted-proxy",
    default=None,
    help="Address of a reverse proxy whose X-Forwarded-For is believed.",
)
@pass_ctx
def verifier_serve(
    obj: Context,
    ident: str,
    store_path: Path | None,
    nvs: str | None,
    bind: str,
    port: int,
    trunk: str | None,
    caller_prefix: str | None,
    state_path: Path | None,
    poll: float,
    allow: str | None,
    deny: str | None,
    reverify_days: int | None,
    insecure_cookies: bool,
    trusted_proxy: str | None,
) -> None:
    """Run the verification service (owner pages, operator console, JSON API)."""
    import uvicorn

    from enumer.verification.auth import Auth
    from enumer.verification.service import VerificationService
    from enumer.verification.web import WebSettings, create_app
    from enumer.verifier import verifier_name

    name = verifier_name(ident)
    # serve's own --store/--nvs win over the global ones; --store over any node.
    if store_path is not None:
        nvs = None
    elif nvs is None:
        nvs = obj.nvs
        if nvs is None and obj.conf is not None and not obj.store_explicit:
            nvs = str(obj.conf)
    store_dir: Path = store_path if store_path is not None else obj.store_path
    policy = _policy(allow, deny, reverify_days)
    caller = _caller(trunk, caller_prefix, policy.code_digits)
    store = _open_store(store_dir, nvs, obj.network)
    state = state_path or default_state_path(store_dir, name, nvs is not None)
    try:
        service = VerificationService(str(state), store, name, caller, policy)
        service.check_wallet()  # the ver: record exists and the wallet holds its key
        auth = Auth(state, on_event=service.record_event)
    except VerificationError as exc:
        raise click.ClickException(str(exc)) from None
    settings = WebSettings(
        secure_cookies=not (insecure_cookies or _is_loopback(bind)),
        trusted_proxy=trusted_proxy,
    )
    app = create_app(service, auth, settings)
    sock = _listen(bind, port)
    _setup_logging()  # only now: a refused start is one error line, nothing else
    server = uvicorn.Server(uvicorn_config(app))
    web = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="web")
    done = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    web.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not web.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise click.ClickException("the web server did not start (see the log above)")
        time.sleep(0.02)
    watcher = ChainWatcher(service.poll_chain, poll)
    watching = threading.Thread(target=watcher.run, name="chain-watch", daemon=True)
    watching.start()
    if trunk is None:
        log.info("no --trunk: calls are off; operators approve requests manually")
    log.info("serving %s on %s (state %s)", name, _url(sock), state)
    try:
        while not done.wait(0.5):
            if not web.is_alive():
                raise click.ClickException("the web server stopped unexpectedly")
    finally:
        log.info("stopping")
        watcher.stopped.set()
        server.should_exit = True
        web.join(timeout=10)
        watching.join(timeout=10)
        sock.close()
        auth.close()
        log.info("stopped")


@click.group("admin")
def verifier_admin() -> None:
    """Users and API keys of the service's console and operator API."""


_state_option = click.option(
    "--state",
    "state_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The service's SQLite file (default: from --id, as serve).",
)
_id_option = click.option("--id", "ident", default=None, help="The verifier ID (for --state).")


def _state_file(obj: Context, state_path: Path | None, ident: str | None, must_exist: bool) -> Path:
    if state_path is None:
        if ident is None:
            raise click.UsageError("give --state PATH or --id ID")
        uses_node = obj.nvs is not None or (obj.conf is not None and not obj.store_explicit)
        state_path = default_state_path(obj.store_path, ident, uses_node)
    if must_exist and not state_path.exists():
        raise click.ClickException(
            f"no verifier state at {state_path} (add a user first, or start serve)"
        )
    return state_path


def _open_auth(path: Path) -> Any:
    from enumer.verification.auth import Auth, state_audit

    return Auth(path, on_event=state_audit(path))


@verifier_admin.command("add-user")
@click.argument("username")
@click.option(
    "--role",
    type=click.Choice(["operator", "admin"]),
    default="operator",
    show_default=True,
)
@click.option("--replace", is_flag=True, help="Set a new password and role for an existing user.")
@_state_option
@_id_option
@pass_ctx
def add_user(
    obj: Context,
    username: str,
    role: str,
    replace: bool,
    state_path: Path | None,
    ident: str | None,
) -> None:
    """Add a console user; the password is read from stdin (or prompted for twice)."""
    from enumer.verification.auth import check_password, check_username

    path = _state_file(obj, state_path, ident, must_exist=False)
    try:
        check_username(username)
        password = _read_password()
        check_password(password)
        auth = _open_auth(path)
        user = auth.add_user(username, password, role, by="cli", replace=replace)
    except VerificationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"user {user.username} ({user.role}) {'updated' if replace else 'added'} in {path}")


@verifier_admin.command("add-key")
@click.argument("username")
@click.option("--label", default="", help="What the key is for (shown in the audit log).")
@_state_option
@_id_option
@pass_ctx
def add_key(
    obj: Context, username: str, label: str, state_path: Path | None, ident: str | None
) -> None:
    """Print a new API key for USER (shown once; only its hash is kept)."""
    from enumer.verification.auth import key_id

    path = _state_file(obj, state_path, ident, must_exist=True)
    try:
        key = _open_auth(path).add_key(username, label, by="cli")
    except VerificationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(key)
    ident_of_key = key_id(key)
    click.echo(
        f"key id {ident_of_key} (revoke with: enumer verifier admin revoke-key {ident_of_key})",
        err=True,
    )


def _user_change(
    obj: Context, state_path: Path | None, ident: str | None, change: str, target: str
) -> Any:
    """One of Auth's ``disable_user``, ``enable_user``, ``remove_user``, ``revoke_key``."""
    path = _state_file(obj, state_path, ident, must_exist=True)
    try:
        return getattr(_open_auth(path), change)(target, by="cli")
    except VerificationError as exc:
        raise click.ClickException(str(exc)) from None


@verifier_admin.command("disable-user")
@click.argument("username")
@_state_option
@_id_option
@pass_ctx
def disable_user(obj: Context, username: str, state_path: Path | None, ident: str | None) -> None:
    """End USER's sessions and stop their API keys at once (enable-user undoes it)."""
    _user_change(obj, state_path, ident, "disable_user", username)
    click.echo(f"user {username} disabled: signed out, API keys refused")


@verifier_admin.command("enable-user")
@click.argument("username")
@_state_option
@_id_option
@pass_ctx
def enable_user(obj: Context, username: str, state_path: Path | None, ident: str | None) -> None:
    """Let a disabled USER sign in and use their API keys again."""
    _user_change(obj, state_path, ident, "enable_user", username)
    click.echo(f"user {username} enabled")


@verifier_admin.command("remove-user")
@click.argument("username")
@_state_option
@_id_option
@pass_ctx
def remove_user(obj: Context, username: str, state_path: Path | None, ident: str | None) -> None:
    """Delete USER with their sessions and API keys (the audit log keeps the name)."""
    _user_change(obj, state_path, ident, "remove_user", username)
    click.echo(f"user {username} removed with their sessions and API keys")


@verifier_admin.command("revoke-key")
@click.argument("key")
@_state_option
@_id_option
@pass_ctx
def revoke_key(obj: Context, key: str, state_path: Path | None, ident: str | None) -> None:
    """Revoke one API key, named by its key id (list-keys) or given whole."""
    revoked = _user_change(obj, state_path, ident, "revoke_key", key)
    click.echo(f"key {revoked.id} of {revoked.username} revoked")


@verifier_admin.command("list-keys")
@_state_option
@_id_option
@pass_ctx
def list_keys(obj: Context, state_path: Path | None, ident: str | None) -> None:
    """The API keys: key id, user, label, created, last used (never the keys)."""
    from enumer.verification.auth import Auth

    path = _state_file(obj, state_path, ident, must_exist=True)
    for key in Auth(path).list_keys():
        used = _day(key.last_used) if key.last_used is not None else "never"
        click.echo(
            f"{key.id}\t{key.username}\t{key.label or '-'}\tcreated {_day(key.created)}"
            f"\tlast used {used}"
        )


@verifier_admin.command("list-users")
@_state_option
@_id_option
@pass_ctx
def list_users(obj: Context, state_path: Path | None, ident: str | None) -> None:
    """The console's users: name, role, API keys, created."""
    from enumer.verification.auth import Auth

    path = _state_file(obj, state_path, ident, must_exist=True)
    users = Auth(path).list_users()
    if not users:
        click.echo("no users (add one with 'enumer verifier admin add-user')")
    for user in users:
        disabled = f"\tdisabled {_day(user.disabled)}" if user.disabled is not None else ""
        click.echo(
            f"{user.username}\t{user.role}\t{user.keys} key(s)\tcreated {_day(user.created)}"
            + disabled
        )
