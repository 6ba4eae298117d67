"""``enumer node``: serve the store over Emercoin's JSON-RPC (see :mod:`enumer.nvs.node`).

Registered by :mod:`enumer.cli`.  It prints one ready line on stderr::

    enumer node ready: JSON-RPC on 127.0.0.1:6662 (cookie /s/.cookie), regtest store /s

and runs until SIGTERM, SIGINT or the ``stop`` call, then stops cleanly (the
cookie file is removed) with exit status 0.
"""

from __future__ import annotations

import signal
from types import FrameType

import click

from enumer.cliutil import Context, pass_ctx
from enumer.emercoin import DEFAULT_RPC_PORT
from enumer.nvs.node import serve_node


@click.command("node")
@click.option(
    "--rpcport",
    type=click.IntRange(0, 65535),
    default=DEFAULT_RPC_PORT,
    show_default=True,
    help="Port to listen on (Emercoin's RPC port on every chain; 0: any free port, "
    "shown in the ready line).",
)
@click.option("--rpcbind", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--rpcuser", default=None, help="User name for basic auth (with --rpcpassword).")
@click.option(
    "--rpcpassword",
    default=None,
    envvar="ENUMER_RPCPASSWORD",
    help="Password for basic auth (better: $ENUMER_RPCPASSWORD, not visible in ps). "
    "Without one the node writes a cookie file <store>/.cookie.",
)
@pass_ctx
def node(
    obj: Context, rpcport: int, rpcbind: str, rpcuser: str | None, rpcpassword: str | None
) -> None:
    """Serve the store over Emercoin's JSON-RPC (name_show, name_new, ...).

    Tools written for an Emercoin node (emercoin-cli, scripts, an ENUMER gateway
    pointed at a node) then work on the embedded ledger.  Writes are mined at once.
    """
    if rpcuser is not None and rpcpassword is None:
        raise click.UsageError(
            "--rpcuser needs --rpcpassword (or $ENUMER_RPCPASSWORD); "
            "without both the node uses a cookie file"
        )
    try:
        server, thread = serve_node(
            obj.store_path, rpcbind, rpcport, rpcuser, rpcpassword, network=obj.network
        )
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise click.ClickException(f"cannot listen on {rpcbind}:{rpcport}: {reason}") from None

    stop = server.stop_event

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        click.echo(
            f"enumer node ready: JSON-RPC on {server.endpoint} "
            f"({server.describe_auth()}), {server.network} store {server.ledger_path}",
            err=True,
        )
        while not stop.wait(0.5):
            if not thread.is_alive():
                break
    finally:
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("enumer node stopped", err=True)
