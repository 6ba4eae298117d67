"""Configuration every command reads: emercoin.conf with bitcoind's rules, and shared values.

**emercoin.conf.**  One reader for every command (``serve --conf``, ``--conf`` of
the node commands, ``doctor``): :meth:`EmercoinConf.from_text` is pure parsing,
:func:`read_emercoin_conf` the thin file reader.  The rules are bitcoind's
(``ArgsManager::ReadConfigStream`` and ``GetArg``), which Emercoin Core 0.8 uses:

* ``#`` starts a comment anywhere on a line; blanks (C's) around keys, values
  and lines are trimmed; a line that is not ``[section]`` or ``key=value`` is an
  error naming the file and the line;
* ``[main]``, ``[test]``, ``[regtest]`` open a section that applies to that chain
  only, until the next section; ``section.key=value`` at the top of the file
  sets a key of a section too; a key in the chain's section beats the same key at
  the top;
* top-of-file values apply to every chain, except the network-only options
  (``rpcport``, ``rpcwallet``, ``port``, ``bind`` ...), which apply to mainnet only
  (:data:`NETWORK_ONLY`): testnet and regtest take them from their section;
* a key written ``-key`` is ``key``; ``nokey=1`` (also ``-nokey``, or ``nokey``
  with an empty value) means ``key=0``, and ``nokey=0`` means ``key=1``;
* for a key given more than once, the *first* value counts (:meth:`EmercoinConf.get`);
  multi-valued keys (``addnode``, ``rpcallowip``) read them all (:meth:`~EmercoinConf.get_all`);
* the chain is the file's ``chain=``, ``testnet=`` or ``regtest=`` (top of the file,
  bitcoind's booleans) unless the caller names one; contradicting ones are an error.

Booleans are read two ways, each where its reader reads it: bitcoind's own
options (``testnet=``, ``regtest=``) with ``InterpretBool`` (:func:`conf_bool`: an
empty value is *true*), and emcdns's integer options (``emcdnsverbose=``, a log
level that emcdns reads with ``atoi``) as integers: an empty ``emcdnsverbose=`` is
0, quiet.

**Shared values.**  The gateway (``serve``), the caller's side (``route
--server``) and the metrics endpoint all take ``ADDR[:PORT]`` the same way, and
report a bad value the same way: one line naming the key and the value.  This
module sits below every command package so that none has to import another to
share it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from enumer.cparse import C_BLANKS, atoi
from enumer.emercoin import CHAIN_SUBDIRS, NETWORK_TO_CHAIN

#: Options bitcoind takes from a network's own section only, when not on mainnet.
NETWORK_ONLY: Final = frozenset(
    {"rpcport", "rpcwallet", "rpcbind", "port", "bind", "connect", "addnode", "wallet"}
)


class ConfigError(ValueError):
    """A bad configuration value: ``<key>: <problem> (<value>)``, one line."""


def parse_bind(text: str, port: int) -> tuple[str, int]:
    """``ADDR``, ``ADDR:PORT`` or ``[V6]:PORT``; emcdns's leading-dot form ``.127.0.0.1`` too."""
    text = text.strip().lstrip(".")
    host, bind_port = text, port
    m = re.fullmatch(r"\[([^\]]+)\](?::([0-9]+))?", text)
    if m:
        host, bind_port = m.group(1), int(m.group(2) or port)
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        bind_port = int(p) if p.isdigit() else -1
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"bind address {text!r} is not an IPv4 or IPv6 address") from None
    if not 0 <= bind_port <= 65535:
        raise ConfigError(f"bind address {text!r}: bad port")
    return host, bind_port


def parse_port(text: str, key: str) -> int:
    """A TCP/UDP port ``0..65535`` given as the value of ``key``."""
    if not text.strip().isdigit() or not 0 <= int(text) <= 65535:
        raise ConfigError(f"{key}: port must be 0-65535, got {text!r}")
    return int(text)


def conf_bool(value: str) -> bool:
    """bitcoind's ``InterpretBool``: an empty value is true, else ``atoi(value) != 0``."""
    return value == "" or atoi(value) != 0


def conf_level(value: str) -> int:
    """An emcdns integer option (``emcdnsverbose``): ``atoi``, so empty or text is 0."""
    return atoi(value)


@dataclass(frozen=True)
class EmercoinConf:
    """An emercoin.conf, read with bitcoind's rules (see the module docstring).

    ``sections`` maps ``""`` (the top of the file) and each chain section name to
    every key's values in file order, negations already turned into ``0``/``1``.
    """

    sections: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    source: str = "emercoin.conf"

    @classmethod
    def from_text(cls, text: str, source: str = "emercoin.conf") -> EmercoinConf:
        """Parse the text of a file; :class:`ConfigError` names ``source`` and the line."""
        sections: dict[str, dict[str, list[str]]] = {"": {}}
        section = ""
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip(C_BLANKS)
            if not line:
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip(C_BLANKS)
                sections.setdefault(section, {})
                continue
            key, eq, value = line.partition("=")
            key, value = key.strip(C_BLANKS).lstrip("-"), value.strip(C_BLANKS)
            if not eq or not key:
                raise ConfigError(f"{source}:{number}: expected key=value, got {raw.strip()!r}")
            target = section
            if not section and "." in key:
                target, _, key = key.partition(".")
            if key.startswith("no") and len(key) > 2:
                key, value = key[2:], "0" if conf_bool(value) else "1"
            sections.setdefault(target, {}).setdefault(key, []).append(value)
        return cls(sections, source)

    @property
    def chain(self) -> str:
        """The chain the file selects (``main``, ``test`` or ``regtest``)."""
        top = self.sections.get("", {})
        chosen = [
            name
            for name, key in (("test", "testnet"), ("regtest", "regtest"))
            if key in top and conf_bool(top[key][0])
        ]
        if "chain" in top:
            named = top["chain"][0]
            if named not in CHAIN_SUBDIRS:
                raise ConfigError(f"{self.source}: unknown chain={named} (main, test or regtest)")
            chosen.append(named)
        if len(set(chosen)) > 1:
            raise ConfigError(f"{self.source}: testnet, regtest and chain select different chains")
        return chosen[0] if chosen else "main"

    def _chain(self, network: str | None) -> str:
        if network is None:
            return self.chain
        if network not in NETWORK_TO_CHAIN:
            raise ConfigError(f"unknown network {network!r}: use mainnet, testnet or regtest")
        return NETWORK_TO_CHAIN[network]

    def get_all(self, key: str, network: str | None = None) -> list[str]:
        """Every value of ``key`` for ``network`` (None: the file's chain): the chain's
        section first, then the top of the file (not for network-only keys off mainnet)."""
        chain = self._chain(network)
        values = list(self.sections.get(chain, {}).get(key, []))
        if chain == "main" or key not in NETWORK_ONLY:
            values += self.sections.get("", {}).get(key, [])
        return values

    def get(self, key: str, network: str | None = None) -> str | None:
        """The value of a single-valued key: the first one :meth:`get_all` finds, or None."""
        values = self.get_all(key, network)
        return values[0] if values else None

    def values(self, network: str | None = None) -> dict[str, str]:
        """Every key with its value (as :meth:`get` reads it) for ``network``."""
        chain = self._chain(network)
        keys = {*self.sections.get("", {}), *self.sections.get(chain, {})}
        found = {key: self.get(key, network) for key in sorted(keys)}
        return {key: value for key, value in found.items() if value is not None}


def read_emercoin_conf(path: str | Path) -> EmercoinConf:
    """Read and parse an emercoin.conf; :class:`ConfigError` when it cannot be read.

    Bytes that are not UTF-8 are replaced, not fatal: bitcoind reads bytes, and a
    Latin-1 comment must not stop a gateway.
    """
    conf = Path(path).expanduser()
    try:
        text = conf.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read {conf}: {exc.strerror or exc}") from None
    return EmercoinConf.from_text(text, str(conf))
