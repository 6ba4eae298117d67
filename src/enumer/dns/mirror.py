"""Mirror what a gateway needs from an Emercoin node into a local index.

The gateway never asks the node on the query path: it serves a table compiled
from a local index (a :class:`~enumer.nvs.ledger.Ledger` in mirror mode), and
this module keeps that index equal to the node's view of the names that
matter: every ``enum:`` record (toll-free records are ``enum:`` names too),
the trusted ``ver:`` records, their SRL records, and other toll-free records.

Each sync asks the node for all of them and writes only the differences,
stamped with the node's tip, so the answer table recompiles just the numbers
that changed.  Comparing the whole relevant set (rather than trusting
"changed since block N") also undoes re-organisations without a special case.
When the node is unreachable or still downloading blocks, the sync fails, the
index keeps its last good state, and the gateway keeps serving it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from enumer.emercoin import CHAIN_TO_NETWORK
from enumer.nvs import NameRecord, NvsError
from enumer.nvs.ledger import Ledger
from enumer.nvs.rpc import RpcClient, regex_escape
from enumer.trust import SrlConfig, SrlState, TollFreeSource, TrustList

#: A block may arrive while a sync lists names, so ``tip + expires_in`` can be off by
#: one for some names: differences this small are not changes (renewals add 175+).
EXPIRY_SLACK = 2
#: Names fetched with name_show in one HTTP request.
BATCH = 200


@dataclass(frozen=True)
class SyncResult:
    height: int
    changed: int
    names: int
    seconds: float


def _srl_regexp(config: SrlConfig) -> str:
    """A regexp for every record name an SRL template can produce."""
    literal = config.template.split("%", 1)[0]
    return "^" + regex_escape(literal)


class ChainMirror:
    """Keeps ``index`` equal to the node's relevant names (see the module docstring)."""

    def __init__(
        self, client: RpcClient, index: Ledger, trust: TrustList, tollfree: Iterable[TollFreeSource]
    ) -> None:
        self.client = client
        self.index = index
        self.trust = trust
        self.tollfree_names = [s.record_name for s in tollfree if s.record_name]
        self.last_result: SyncResult | None = None

    def network(self) -> str:
        chain = str(self.client.getblockchaininfo().get("chain", "main"))
        return CHAIN_TO_NETWORK.get(chain, chain)

    def _filter_all(self, regexp: str) -> list[dict[str, Any]]:
        """Every active or expired name matching ``regexp``, in one call.

        One call, not pages: the node scans and sorts its whole index for every
        ``name_filter``, so paging would cost a full scan per page.
        """
        rows = self.client.name_filter(regexp)
        if not isinstance(rows, list):
            raise NvsError(-1, f"unexpected name_filter answer for {regexp!r}")
        return rows

    def _show_many(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """name_show of several names (missing ones are left out), in batches."""
        found: dict[str, dict[str, Any]] = {}
        for i in range(0, len(names), BATCH):
            part = names[i : i + BATCH]
            for name, answer in zip(
                part, self.client.batch([("name_show", [n]) for n in part]), strict=True
            ):
                if isinstance(answer, dict):
                    found[name] = answer
        return found

    def _record(
        self, name: str, shown: dict[str, Any], tip: int, height: int, registered_at: int | None
    ) -> NameRecord:
        deleted = bool(shown.get("deleted"))
        expires_at = int(shown.get("expires_at") or 0)
        if not deleted and not expires_at:
            expires_at = tip + int(shown.get("expires_in", 0))
        return NameRecord(
            name,
            str(shown.get("value", "")),
            str(shown.get("address", "")),
            str(shown.get("txid", "")),
            height,
            registered_at if registered_at is not None else height,
            expires_at,
            int(shown.get("time", 0)),
            deleted,
        )

    def sync_once(self) -> SyncResult:
        """One pass: fetch, compare, write the differences, move the tip.

        Names change only with blocks, so when the tip has not moved since the
        last complete pass, asking the height is all there is to do.
        """
        started = time.monotonic()
        tip = self.client.getblockcount()
        if self.last_result is not None and tip == self.last_result.height:
            self.index.set_tip(tip)  # still in step: that is what staleness measures
            return SyncResult(tip, 0, self.last_result.names, time.monotonic() - started)
        listed = {str(r["name"]): r for r in self._filter_all("^enum:")}
        specific = [
            *self.trust.verifiers,
            *(n for n in self.tollfree_names if not n.startswith("enum:")),
        ]
        shown = self._show_many(specific)
        for verifier in self.trust.verifiers:
            srl = SrlConfig.from_value(str(shown.get(verifier, {}).get("value", "")))
            if verifier in shown and srl.state is SrlState.ACTIVE:
                for row in self._filter_all(_srl_regexp(srl)):
                    listed[str(row["name"])] = row
        changes: list[NameRecord] = []
        # Names listed by name_filter: compare value and expiry; fetch owners of changes.
        need_owner: list[str] = []
        for name, row in listed.items():
            current = self._current(name)
            expires_at = tip + int(row.get("expires_in", 0))
            if (
                current is None
                or current.deleted
                or current.value != row.get("value")
                or abs(current.expires_at - expires_at) > EXPIRY_SLACK
            ):
                need_owner.append(name)
        owners = self._show_many(need_owner)
        for name in need_owner:
            if name in owners:
                registered = listed[name].get("registered_at")
                changes.append(
                    self._record(
                        name,
                        owners[name],
                        tip,
                        tip,
                        int(registered) if registered is not None else None,
                    )
                )
        # Names shown directly (verifiers, toll-free records outside enum:).
        for name, answer in shown.items():
            current = self._current(name)
            record = self._record(name, answer, tip, tip, None)
            if current is None or (
                current.value,
                current.address,
                current.expires_at,
                current.deleted,
            ) != (record.value, record.address, record.expires_at, record.deleted):
                changes.append(record)
        # Mirrored names the node no longer lists: deleted (or gone in a re-organisation).
        keep = set(listed) | set(shown)
        for record in self.index.iter_prefix(""):
            if record.name not in keep and not record.deleted:
                changes.append(
                    NameRecord(
                        record.name,
                        "",
                        record.address,
                        record.txid,
                        tip,
                        record.registered_at,
                        0,
                        record.time,
                        True,
                    )
                )
        if changes:
            self.index.put_records(changes)
        self.index.set_tip(tip, self.client.tip_time())
        result = SyncResult(tip, len(changes), len(keep), time.monotonic() - started)
        self.last_result = result
        return result

    def _current(self, name: str) -> NameRecord | None:
        try:
            return self.index.show(name)
        except NvsError:
            return None
