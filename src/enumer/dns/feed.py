"""``enumer serve --feed ADDR:PORT``: the gateway's ENUM records, read-only, as a node shows them.

A record feed (SPEC 12) lets light gateways use this gateway as an upstream
exactly as they would use an Emercoin node: the same JSON-RPC transport and
shapes, from :class:`enumer.nvs.node.NodeServer`, over the gateway's own store
(the embedded ledger, a node's mirror index, or a light gateway's accepted
index), restricted to

* the read calls of the subset: ``getblockcount``, ``getblockchaininfo`` (chain and
  tip time), ``name_show``, ``name_filter`` (with ``from``/``nb`` paging) and
  ``name_history``; any other call, writes included, is refused with the node's
  error shape (``-32601 Method not found``, HTTP 404);
* the names a gateway serves from: ``enum:`` records, ``ver:`` records, the SRL
  records of the trusted verifiers' templates and the configured toll-free
  records; anything else looks absent (``-4 failed to read from name DB``);
* bounded work per request: bodies of at most :data:`MAX_FEED_BODY` bytes, batches
  of at most :data:`MAX_FEED_BATCH` calls, ``name_filter`` pages of at most
  :data:`MAX_FEED_PAGE` names (a larger result must be paged), and a request rate
  per client address (HTTP 429 beyond it).

One call of its own, beside the node's: ``name_changes since`` answers
``{"store", "stamp", "blocks", "names"}``: the relevant names written after change
stamp ``since`` (deleted ones too, marked ``"deleted": true``), each with
``registered_at`` and ``expires_in`` as in ``name_filter`` and without its value
(``name_show`` has it), at most :data:`MAX_FEED_PAGE` of them (more is an error: list
with ``name_filter`` instead); ``stamp`` is what to pass next time and ``store``
changes when the store is another one.  It is what lets a light gateway fetch only
what changed since its last poll: the node's ``maxage`` cannot, since it keeps names
by the height of their *registration* (``registered_at``), so an update, a transfer
or a deletion never shows in it (see :mod:`enumer.nvs.rpc`).  An Emercoin node
answers ``Method not found``, and a light gateway then lists it again at each block.

Paging is cheap: the store keeps the node's index order (:meth:`Ledger.index_order_page`)
and the feed remembers where each page ended, so the page after ``from=N`` starts
where the last one stopped instead of counting N names again.  A deviation from the
node, on purpose: when names are added while a client pages, the next page
continues after the last name it got (the node's offset would repeat or skip one).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Final

import re2

from enumer.cparse import re2_message
from enumer.dns.ratelimit import RateLimitConfig, RateLimiter
from enumer.nvs import (
    RPC_INVALID_PARAMETER,
    RPC_METHOD_NOT_FOUND,
    RPC_MISC_ERROR,
    NameRecord,
    NvsError,
    name_not_found,
)
from enumer.nvs.ledger import Ledger
from enumer.nvs.node import (
    METHODS,
    Call,
    Method,
    NodeServer,
    encode_value,
    filter_args,
    listing_entry,
)
from enumer.trust import SrlConfig, SrlState, TollFreeSource, TrustList

#: The read calls a feed answers (SPEC 12's subset of SPEC 3).
FEED_METHODS: Final = (
    "getblockcount",
    "getblockchaininfo",
    "name_show",
    "name_filter",
    "name_history",
)
MAX_FEED_BODY: Final = 256 * 1024
MAX_FEED_BATCH: Final = 1000
MAX_FEED_PAGE: Final = 20_000
_CHANGES_HELP: Final = (
    "name_changes since\n\nENUMER record feed: the names written after change stamp "
    "[since] (from an earlier answer's stamp; 0: all), at most "
    f"{MAX_FEED_PAGE}.\n"
)
#: Requests per second per client address (a burst of twice as many is allowed).
DEFAULT_FEED_RATE: Final = 200.0
#: Rows read from the store per step of a page.
_STEP = 2000
#: Remembered page ends ((regexp, maxage, from) -> last key), the oldest dropped first.
_CURSORS = 512


class FeedServer(NodeServer):
    """A :class:`NodeServer` over a gateway store, restricted as the module says."""

    def __init__(
        self,
        store: Path,
        host: str,
        port: int,
        trust: TrustList,
        tollfree: tuple[TollFreeSource, ...] = (),
        user: str | None = None,
        password: str | None = None,
        rate: float = DEFAULT_FEED_RATE,
    ) -> None:
        super().__init__(
            store,
            host,
            port,
            user=user,
            password=password,
            max_body=MAX_FEED_BODY,
            require_auth=password is not None,
            max_batch=MAX_FEED_BATCH,
        )
        self.trust = trust
        self.tollfree_names = {s.record_name for s in tollfree if s.record_name}
        self.methods = {name: self._wrap(METHODS[name]) for name in FEED_METHODS}
        self.methods["name_changes"] = Method(
            "name_changes", ("since",), 1, _CHANGES_HELP, self._changes
        )
        self._limiter = RateLimiter(
            RateLimitConfig(enabled=True, qps_per_client=rate, burst=2 * rate, exempt=())
        )
        self._limiter_lock = threading.Lock()
        self._cursors: OrderedDict[tuple[str, int, int], tuple[int, str]] = OrderedDict()
        self._cursor_lock = threading.Lock()
        self.served_records = 0  # names returned by name_show and name_filter (for metrics)

    def _wrap(self, method: Method) -> Method:
        handlers = {
            "name_show": self._show,
            "name_filter": self._filter,
            "name_history": self._history,
        }
        handler = handlers.get(method.name, method.handler)
        return Method(method.name, method.args, method.required, method.help, handler)

    def execute(self, request: Any) -> tuple[int, dict[str, Any]]:
        status, reply = super().execute(request)
        error = reply.get("error")
        if isinstance(error, dict) and error.get("code") == RPC_METHOD_NOT_FOUND:
            error["message"] = "Method not found (this is a read-only ENUM record feed)"
        return status, reply

    def admit(self, client: str) -> bool:
        with self._limiter_lock:
            return self._limiter.allow_query(client, time.monotonic())

    # -- what a feed shows ----------------------------------------------------------------

    def _srl_prefixes(self, ledger: Ledger) -> list[str]:
        """The literal start of every SRL record name the trusted verifiers' templates make."""
        prefixes = []
        for verifier in self.trust.verifiers:
            try:
                record = ledger.show(verifier)
            except NvsError:
                continue
            config = SrlConfig.from_value(record.value)
            if config.state is SrlState.ACTIVE:
                prefixes.append(config.template.split("%", 1)[0])
        return prefixes

    def relevant(self, name: str, srl_prefixes: list[str]) -> bool:
        return (
            name.startswith(("enum:", "ver:"))
            or name in self.tollfree_names
            or any(name.startswith(p) for p in srl_prefixes)
        )

    def _visible(self, c: Call, name: str) -> NameRecord:
        if not self.relevant(name, self._srl_prefixes(c.ledger)):
            raise name_not_found()
        return c.ledger.show(name)

    def _show(self, c: Call) -> Any:
        name = c.string(0)
        valuetype = c.string(1)
        if c.given(2):
            raise NvsError(RPC_INVALID_PARAMETER, "a record feed does not write files")
        out = self._visible(c, name).show_json(c.ledger.height())
        out["value"] = encode_value(out["value"], valuetype)
        self.served_records += 1
        return out

    def _history(self, c: Call) -> Any:
        name = c.string(0)
        full = c.boolean(1)
        valuetype = c.string(2)
        self._visible(c, name)
        out = []
        for op in c.ledger.history(name, full):
            entry = op.history_json(False)  # a feed has no wallet: nothing is "mine"
            if entry.get("value") is not None:
                entry["value"] = encode_value(entry["value"], valuetype)
            out.append(entry)
        return out

    def _filter(self, c: Call) -> Any:
        regexp, maxage, start, nb, stat, valuetype, maxvaluelen = filter_args(c)
        if start < 0 or nb < 0:
            raise NvsError(RPC_INVALID_PARAMETER, "from and nb must not be negative")
        prefix = literal_prefix(regexp)
        options = re2.Options()
        options.log_errors = False
        try:
            pattern = re2.compile(regexp, options) if regexp and prefix is None else None
        except re2.error as exc:
            raise NvsError(RPC_MISC_ERROR, re2_message(exc)) from None
        tip = c.ledger.height()
        limit = nb if 0 < nb <= MAX_FEED_PAGE else MAX_FEED_PAGE + 1
        prefixes = self._srl_prefixes(c.ledger)
        with self._cursor_lock:
            key = self._cursors.get((regexp, maxage, start)) if start else (-1, "")
        skip = 0 if key is not None else start
        key = key or (-1, "")
        chosen: list[NameRecord] = []
        while len(chosen) < limit:
            rows = c.ledger.index_order_page(key, _STEP)
            for record in rows:
                key = (len(record.name.encode()), record.name)
                if not self.relevant(record.name, prefixes):
                    continue
                if prefix is not None and not record.name.startswith(prefix):
                    continue
                if pattern is not None and not pattern.search(record.name):
                    continue
                if maxage != 0 and tip - record.registered_at >= maxage:
                    continue
                if skip:
                    skip -= 1
                    continue
                chosen.append(record)
                if len(chosen) >= limit:
                    break
            if len(rows) < _STEP:
                break
        if len(chosen) > MAX_FEED_PAGE:
            raise NvsError(
                RPC_INVALID_PARAMETER,
                f"this record feed returns at most {MAX_FEED_PAGE} names per name_filter "
                "call: page with from and nb",
            )
        if chosen:
            with self._cursor_lock:
                self._cursors[(regexp, maxage, start + len(chosen))] = key
                while len(self._cursors) > _CURSORS:
                    self._cursors.popitem(last=False)
        if stat:
            return {"blocks": tip, "count": 0}
        chosen.sort(key=lambda r: r.registered_at)
        self.served_records += len(chosen)
        return [listing_entry(r, tip, valuetype, maxvaluelen, registered=True) for r in chosen]

    def _changes(self, c: Call) -> Any:
        since = c.integer(0)
        if since < 0:
            raise NvsError(RPC_INVALID_PARAMETER, "since must not be negative")
        ledger = c.ledger
        # The stamp first: a write landing while the rows are read is fetched again
        # next time rather than lost.  A ledger's stamp is its height, and a write that
        # began as a block went by carries that height: one less covers it.
        stamp = ledger.change_stamp() - (0 if ledger.mirror else 1)
        tip = ledger.height()
        rows = ledger.changed_since(since, MAX_FEED_PAGE + 1)
        if len(rows) > MAX_FEED_PAGE:
            raise NvsError(
                RPC_INVALID_PARAMETER,
                f"more than {MAX_FEED_PAGE} names changed since stamp {since}: list them "
                "with name_filter",
            )
        prefixes = self._srl_prefixes(ledger)
        names = []
        for record in rows:
            if not self.relevant(record.name, prefixes):
                continue
            entry: dict[str, Any] = {
                "name": record.name,
                "registered_at": record.registered_at,
                "expires_in": record.expires_at - tip,
            }
            if record.deleted:
                entry["deleted"] = True
            elif record.expires_at - tip <= 0:
                entry["expired"] = True
            names.append(entry)
        self.served_records += len(names)
        return {"store": ledger.store_id(), "stamp": max(stamp, 0), "blocks": tip, "names": names}


_LITERAL = re.compile(r"\^((?:[A-Za-z0-9:_@ -]|\\[^A-Za-z0-9])*)")


def literal_prefix(regexp: str) -> str | None:
    r"""The text a regexp ``^<literal>`` matches names starting with (escapes such as
    ``\-`` undone), or None for any other regexp: what light gateways page with,
    tested with ``str.startswith`` instead of the regex engine (the per-row cost)."""
    m = _LITERAL.fullmatch(regexp)
    return None if m is None else re.sub(r"\\(.)", r"\1", m.group(1))


def serve_feed(
    store: Path,
    bind: tuple[str, int],
    trust: TrustList,
    tollfree: tuple[TollFreeSource, ...],
    user: str | None,
    password: str | None,
    rate: float,
) -> FeedServer:
    """Start a feed over ``store`` on ``bind`` in a daemon thread; stop with ``close()``."""
    server = FeedServer(store, bind[0], bind[1], trust, tollfree, user, password, rate)
    server.start()
    return server
