"""What every ``enumer`` command module shares: the global options and the output rules.

:mod:`enumer.cli` builds the command group and imports each command module
(``enumer.dns.command``, ``enumer.nvs.command``, ...) to register its
commands.  Those modules need the same context object and the same printers
as the commands of ``cli.py`` itself; they find them here, so that no command
module has to import :mod:`enumer.cli` (which imports them) back.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from enumer.nvs import NameStore
from enumer.nvs.ledger import Ledger


def default_store_path() -> Path:
    """``$ENUMER_STORE``, else ``$XDG_DATA_HOME/enumer/store`` (``~/.local/share``)."""
    env = os.environ.get("ENUMER_STORE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "enumer" / "store"


class Context:
    """What the global options chose; the store is opened on first use."""

    def __init__(
        self,
        store_path: Path,
        network: str | None,
        store_explicit: bool = False,
        nvs: str | None = None,
        conf: Path | None = None,
    ) -> None:
        self.store_path = store_path
        self.network = network
        #: Whether --store was given on the command line.  Then ``--conf`` only supplies
        #: settings; otherwise ``--conf`` also names the node, even with $ENUMER_STORE set
        #: (an explicit option wins over an environment default, for every command).
        self.store_explicit = store_explicit
        #: An Emercoin node to use instead of the embedded store (URL, or an emercoin.conf).
        self.nvs = nvs
        self.conf = conf
        self._store: NameStore | None = None

    @property
    def uses_node(self) -> bool:
        return self.nvs is not None or self.conf is not None

    @property
    def store(self) -> NameStore:
        if self._store is None:
            if self.uses_node:
                from enumer.nvs.rpc import open_node_store

                spec = self.nvs if self.nvs is not None else str(self.conf)
                self._store = open_node_store(spec, self.network)
            else:
                self._store = Ledger(self.store_path, self.network)
        return self._store

    @property
    def ledger(self) -> Ledger:
        """The embedded store, for what only it can do (settings, imports, generate)."""
        store = self.store
        if not isinstance(store, Ledger):
            raise click.UsageError("this works on the embedded store only, not on a node")
        return store

    def setting(self, key: str) -> str | None:
        """A gateway default saved in the embedded store (a node has none; its
        emercoin.conf keys are given to ``serve --conf``)."""
        store = self.store
        return store.setting(key) if isinstance(store, Ledger) else None


pass_ctx = click.make_pass_decorator(Context)


def fail(message: str) -> NoReturn:
    """End the command with one ``error: MESSAGE`` line and exit status 1."""
    raise click.ClickException(message)


def out(data: Any) -> None:
    """Print DATA as the commands' ``--json`` output: indented, UTF-8 kept as is."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def read_value(value: str) -> str:
    """VALUE ``-`` reads standard input byte for byte (CR LF stays CR LF), as UTF-8,
    without its final newline."""
    if value == "-":
        raw = sys.stdin.buffer.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            fail(f"standard input is not UTF-8: {exc.reason} at byte {exc.start}")
        return text[:-1] if text.endswith("\n") else text
    return value
