"""Emercoin's parameters, as Emercoin Core 0.8 defines them: one home for each.

Every module that talks to a node, emulates one or mirrors one (the RPC client,
``enumer node``, the gateway's mirror, the embedded ledger, the emercoin.conf
reader) takes these from here, so that they cannot drift apart.  Sources:
``src/chainparamsbase.cpp`` (chains, ports, data directories), ``src/namecoin.cpp``
(name and value sizes, rental days), ``src/rpc/server.cpp`` (the cookie).
"""

from __future__ import annotations

from typing import Final

#: Rental time is counted in blocks: 175 blocks a day.
BLOCKS_PER_DAY: Final = 175
#: NVS limits: a name holds at most 512 bytes, a value 20480.
MAX_NAME_BYTES: Final = 512
MAX_VALUE_BYTES: Final = 20480

#: The node's chain names (``getblockchaininfo``'s ``chain``, emercoin.conf ``chain=`` and
#: sections ``[main]``/``[test]``/``[regtest]``) and ENUMER's network names for them.
CHAIN_TO_NETWORK: Final[dict[str, str]] = {
    "main": "mainnet",
    "test": "testnet",
    "regtest": "regtest",
}
NETWORK_TO_CHAIN: Final[dict[str, str]] = {v: k for k, v in CHAIN_TO_NETWORK.items()}
#: Per-chain data subdirectory (where the node writes its ``.cookie``).
CHAIN_SUBDIRS: Final[dict[str, str]] = {"main": "", "test": "testnet3", "regtest": "regtest"}

#: The JSON-RPC port, the same on every chain (``CreateBaseChainParams``).
DEFAULT_RPC_PORT: Final = 6662
DEFAULT_RPC_PORTS: Final[dict[str, int]] = dict.fromkeys(CHAIN_TO_NETWORK, DEFAULT_RPC_PORT)
#: The credentials file a node writes at each start, and the user name in it.
COOKIE_FILE: Final = ".cookie"
COOKIE_USER: Final = "__cookie__"

#: The node's suffix of a value cut by ``maxvaluelen``.
TRUNCATED_SUFFIX: Final = "\n...(value too large - use name_show to see full value)"
