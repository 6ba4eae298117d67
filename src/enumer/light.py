"""What a light gateway accepts from untrusted upstreams (SPEC 12): pure rules.

A light gateway has no node.  It reads the chain's ENUM records from several
upstreams (Emercoin nodes or ENUMER record feeds), none of which it trusts, and
keeps a local index of what it accepts; its answer table is built from that
index exactly as a full gateway's is built from the chain.  Everything here is
a function of what the upstreams returned (one :class:`Seen` per upstream and
name) and of what was accepted before; fetching it is the poller's job
(:mod:`enumer.dns.light`).  The rules, and why:

* a **strictly valid** record (SPEC 11: VSIG of a trusted verifier bound to its
  owner, OSIG over its directives) proves itself, so one upstream is enough,
  however many others lie or hide it;
* a record valid only by ``SIG=`` proves nothing about its E2U lines, so it is
  accepted only when at least ``quorum`` upstreams return the same value and
  owner for it, and never when it carries an OSIG over other directives while
  another upstream returns another version (what an upstream rewriting an E2U
  line of a sealed record produces);
* freshness: never a record whose OSIG time is older than one already accepted
  for that name (a relay may replay an older, once-valid version);
* a ``ver:`` record decides whose signatures count, so no single upstream may
  change it: a pinned address (``ver:<id>@<address>``) is the only one used; an
  unpinned verifier is used only where every upstream agrees on its owner;
* revocations only remove trust, so SRL records are merged from every upstream:
  one upstream can hide a revocation from none;
* a VSIG's ``not-after`` is read against the later of the local clock and the
  highest tip time any upstream reported, so an upstream cannot extend a
  verification by reporting an old tip.

Every disagreement is returned (:attr:`Choice.notes`, :attr:`Choice.disagreeing`)
so that the gateway can report it per upstream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final

from enumer.bound import BoundStatus, BoundVerdict
from enumer.nvs import NameRecord
from enumer.trust import SrlConfig, SrlState


@dataclass(frozen=True)
class Seen:
    """What upstream number ``upstream`` (1-based, in the operator's order) shows for a
    name: the record when it is active there, None when it is absent, expired or deleted."""

    upstream: int
    record: NameRecord | None


class How(Enum):
    STRICT = "strictly valid"
    QUORUM = "SIG= agreed by quorum"
    AGREED = "returned alike by every upstream"
    PINNED = "pinned verifier"
    UNANIMOUS = "unanimous verifier"
    KEPT = "kept (last accepted)"
    MERGED = "merged"
    NONE = "not accepted"


@dataclass(frozen=True)
class Choice:
    """The accepted record of a name (None: nothing is served for it), how it was
    accepted, which upstreams returned exactly it, and which disagreed."""

    record: NameRecord | None
    how: How
    sources: tuple[int, ...] = ()
    disagreeing: tuple[int, ...] = ()
    notes: tuple[str, ...] = ()

    def describe(self, upstreams: int) -> str:
        """``strictly valid, from 2 of 3 upstreams`` (what ``lookup`` and logs print)."""
        return f"{self.how.value}, from {len(self.sources)} of {upstreams} upstreams"


def identity(record: NameRecord) -> tuple[str, str]:
    """What upstreams must agree on for a record: its value and its owner."""
    return record.value, record.address


#: How far ahead of the local clock a reported tip time counts (Bitcoin's and
#: Emercoin's limit on a block's time): an upstream claiming a tip in a year must not
#: expire every VSIG.
MAX_FUTURE_TIP: Final = 2 * 3600


def chain_time(clock: int, tip_times: Sequence[int]) -> int:
    """The time ``not-after`` is read against: the later of the local clock and the
    highest tip time reported, so a lagging or lying upstream cannot move it back;
    a tip time is taken at most :data:`MAX_FUTURE_TIP` seconds ahead of the clock,
    so a lying upstream cannot move it far forward either."""
    return max([clock, *(min(t, clock + MAX_FUTURE_TIP) for t in tip_times)])


def _agreeing(seen: Sequence[Seen], record: NameRecord) -> tuple[int, ...]:
    key = identity(record)
    return tuple(s.upstream for s in seen if s.record is not None and identity(s.record) == key)


def _others(seen: Sequence[Seen], sources: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(s.upstream for s in seen if s.upstream not in sources)


def accept_record(
    name: str,
    seen: Sequence[Seen],
    quorum: int,
    judge: Callable[[NameRecord], BoundVerdict],
    accepted_time: int | None = None,
    current: NameRecord | None = None,
    lazy: bool = False,
) -> Choice:
    """The record of ENUM name ``name`` to serve, from what each upstream returned.

    ``judge`` gives a record's SPEC 11 verdict (trusted verifiers, merged SRL,
    :func:`chain_time`); ``accepted_time`` is the newest OSIG time accepted for
    the name so far.  A strictly valid version wins over any other, the newest
    OSIG first (then the one most upstreams agree on); else a version that at
    least ``quorum`` upstreams return identically; else nothing.  Once a strict
    version was accepted, nothing older and nothing unbound replaces it.

    ``current`` is the version accepted now (its OSIG time counts as accepted).
    ``lazy`` spares the signature checks where they cannot change the choice: one
    version, returned alike by every upstream that has a view and by at least
    ``quorum`` of them, and nothing else accepted for the name before (the first
    sync, or the version accepted already).  The answer table judges it anyway.
    """
    notes: list[str] = []
    versions: dict[tuple[str, str], NameRecord] = {}
    for s in seen:
        if s.record is not None:
            versions.setdefault(identity(s.record), s.record)
    if lazy and len(versions) == 1:
        (only,) = versions.values()
        sources = _agreeing(seen, only)
        fresh = current is None and accepted_time is None
        if len(sources) == len(seen) >= quorum and (fresh or current == only):
            return Choice(only, How.AGREED, sources)
    if current is not None:
        held = judge(current).accepted_time
        if held is not None:
            accepted_time = max(held, accepted_time or held)
    strict: list[tuple[int, int, NameRecord]] = []
    tampered: set[tuple[str, str]] = set()
    for record in versions.values():
        verdict = judge(record)
        time = verdict.accepted_time
        where = ", ".join(str(u) for u in _agreeing(seen, record))
        stale = any(c.kind == "OSIG" and c.status is BoundStatus.STALE for c in verdict.checks)
        if stale and len(versions) > 1:
            # Its owner sealed other directives and another upstream returns another
            # version: what a relay rewriting E2U lines makes.  (A stale OSIG that every
            # upstream returns is the owner's own, served by SIG= as a full gateway does.)
            tampered.add(identity(record))
            notes.append(
                f"{name}: upstream {where} returns directives its OSIG does not cover: refused"
            )
        if not verdict.strict or time is None:
            continue
        if accepted_time is not None and time < accepted_time:
            notes.append(
                f"{name}: upstream {where} serves an OSIG of {time}, older than the "
                f"accepted {accepted_time}: refused"
            )
            continue
        strict.append((time, len(_agreeing(seen, record)), record))
    if strict:
        strict.sort(key=lambda t: (t[0], t[1]), reverse=True)
        record = strict[0][2]
        sources = _agreeing(seen, record)
        disagreeing = _others(seen, sources)
        if disagreeing:
            notes.append(
                f"{name}: upstream {', '.join(map(str, disagreeing))} "
                f"{'does' if len(disagreeing) == 1 else 'do'} not return the strictly "
                f"valid version served by upstream {', '.join(map(str, sources))}"
            )
        return Choice(record, How.STRICT, sources, disagreeing, tuple(notes))
    if accepted_time is not None:
        if versions:
            notes.append(
                f"{name}: no upstream returns a strictly valid version at least as new as "
                f"the accepted OSIG of {accepted_time}: nothing older is served"
            )
        return Choice(None, How.NONE, (), _others(seen, ()), tuple(notes))
    best: tuple[int, ...] = ()
    best_record: NameRecord | None = None
    for record in versions.values():
        sources = _agreeing(seen, record)
        if identity(record) not in tampered and len(sources) > len(best):
            best, best_record = sources, record
    if best_record is not None and len(best) >= quorum:
        disagreeing = _others(seen, best)
        if disagreeing:
            notes.append(
                f"{name}: upstream {', '.join(map(str, disagreeing))} disagree(s) with "
                f"the value and owner returned by upstream {', '.join(map(str, best))}"
            )
        return Choice(best_record, How.QUORUM, best, disagreeing, tuple(notes))
    if versions:
        agreeing = len(best)
        notes.append(
            f"{name}: not strictly valid, and only {agreeing} upstream(s) agree on one value "
            f"and owner (quorum {quorum}): not served"
        )
    return Choice(None, How.NONE, (), _others(seen, best), tuple(notes))


def _prefer_srl(records: Sequence[NameRecord]) -> NameRecord:
    """Of several values of one verifier's record (same owner), one with an SRL line:
    an upstream dropping the SRL line must not switch revocation off."""
    for record in records:
        if SrlConfig.from_value(record.value).state is not SrlState.NONE:
            return record
    return records[0]


def choose_verifier(
    name: str,
    seen: Sequence[Seen],
    pinned: str | None,
    current: NameRecord | None,
) -> Choice:
    """The ``ver:`` record whose owner address decides whose signatures count.

    Pinned (``ver:<id>@<address>``): only a version owned by that address is used;
    an upstream showing another owner is reported and ignored, and when none shows
    the pinned owner the last accepted version (if it had that owner) is kept.
    Unpinned: used only when every upstream returns the same owner.
    """
    notes: list[str] = []
    if pinned is not None:
        matching = [s for s in seen if s.record is not None and s.record.address == pinned]
        for s in seen:
            if s.record is not None and s.record.address != pinned:
                notes.append(
                    f"{name}: upstream {s.upstream} says it is owned by {s.record.address}, "
                    f"not the pinned {pinned}: ignored"
                )
        sources = tuple(s.upstream for s in matching)
        if matching:
            records = [s.record for s in matching if s.record is not None]
            if len({r.value for r in records}) > 1:
                notes.append(
                    f"{name}: upstreams {', '.join(map(str, sources))} differ on its value"
                )
            return Choice(
                _prefer_srl(records), How.PINNED, sources, _others(seen, sources), tuple(notes)
            )
        if current is not None and current.address == pinned:
            notes.append(f"{name}: no upstream shows the pinned owner now: the last one is kept")
            return Choice(current, How.KEPT, (), _others(seen, ()), tuple(notes))
        notes.append(f"{name}: no upstream shows it owned by the pinned {pinned}: not used")
        return Choice(None, How.NONE, (), _others(seen, ()), tuple(notes))
    owners = {s.record.address if s.record is not None else None for s in seen}
    if len(owners) == 1 and None not in owners and seen:
        records = [s.record for s in seen if s.record is not None]
        sources = tuple(s.upstream for s in seen)
        if len({r.value for r in records}) > 1:
            notes.append(f"{name}: upstreams differ on its value")
        return Choice(_prefer_srl(records), How.UNANIMOUS, sources, (), tuple(notes))
    if seen:
        shown = ", ".join(
            f"upstream {s.upstream}: {s.record.address if s.record else 'absent'}" for s in seen
        )
        notes.append(
            f"{name}: upstreams do not agree on its owner ({shown}); pin it with "
            f"--trust '{name}@<address>': not used"
        )
    return Choice(None, How.NONE, (), tuple(s.upstream for s in seen), tuple(notes))


def merge_srl(name: str, seen: Sequence[Seen]) -> Choice:
    """An SRL record as the union of every upstream's: its value holds each distinct
    value returned (one per line block), so a name listed by one upstream is revoked."""
    records = [s.record for s in seen if s.record is not None]
    if not records:
        return Choice(None, How.NONE)
    values = list(dict.fromkeys(r.value for r in records))
    sources = tuple(s.upstream for s in seen if s.record is not None)
    notes: tuple[str, ...] = ()
    if len(values) > 1 or len(sources) < len(seen):
        missing = _others(seen, sources)
        notes = (
            f"{name}: upstreams differ on it"
            + (f" (absent on upstream {', '.join(map(str, missing))})" if missing else "")
            + ": merged",
        )
    first = records[0]
    merged = NameRecord(
        name,
        "\n".join(values),
        first.address,
        first.txid,
        first.height,
        first.registered_at,
        max(r.expires_at for r in records),
        max(r.time for r in records),
    )
    return Choice(merged, How.MERGED, sources, _others(seen, sources), notes)


@dataclass(frozen=True)
class UpstreamState:
    """What the gateway knows of one upstream, for logs, status, metrics and lookup."""

    number: int
    url: str
    height: int = -1
    tip_time: int = 0
    last_success: float = 0.0
    disagreements: int = 0
    error: str = ""


def staleness(states: Sequence[UpstreamState]) -> list[str]:
    """``upstream 3 is 40 blocks behind`` for each upstream below the highest height,
    ``upstream 2 has never answered`` for one that has no height yet."""
    top = max((s.height for s in states), default=-1)
    out = []
    for s in states:
        if s.height < 0:
            out.append(f"upstream {s.number} has never answered")
        elif s.height < top:
            out.append(f"upstream {s.number} is {top - s.height} blocks behind")
    return out


def served_line(choice: Choice, states: Sequence[UpstreamState]) -> str:
    """``served: strictly valid, from 2 of 3 upstreams; upstream 3 is 40 blocks behind``."""
    head = (
        f"served: {choice.describe(len(states))}"
        if choice.record is not None
        else f"not served: {choice.how.value}"
    )
    return "; ".join([head, *staleness(states)])
