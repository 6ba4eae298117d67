"""SPEC 12's acceptance rules (enumer.light) as functions of what upstreams returned.

Most cases judge with a table of verdicts (which record is strict, at which OSIG
time) so that each rule is isolated; the last ones use real signatures made on
a demo store, judged by :func:`enumer.bound.judge_bound`, so the rules are also
checked against the real SPEC 11 verdicts they are fed in production.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from enumer import demo
from enumer.bound import SIG_ONLY, BoundCheck, BoundStatus, BoundVerdict, judge_bound
from enumer.light import (
    How,
    Seen,
    UpstreamState,
    accept_record,
    chain_time,
    choose_verifier,
    merge_srl,
    served_line,
    staleness,
)
from enumer.nvs import NameRecord
from enumer.nvs.ledger import Ledger
from enumer.owner import sealed
from enumer.resolver import Resolver
from enumer.trust import SignatureCache, TrustError, TrustList
from enumer.verifier import append_bound, sign_bound

NAME = "enum:15550009999:0"
OWNER = "EQ7gAaHn1BfFJRoQdw9D3NCNRZ3dgPczJd"


def rec(value: str, owner: str = OWNER, name: str = NAME, expires_at: int = 10_000) -> NameRecord:
    return NameRecord(name, value, owner, "t" * 64, 10, 10, expires_at, 1)


def strict_at(times: dict[str, int]) -> Callable[[NameRecord], BoundVerdict]:
    """A judge: records whose value is a key of ``times`` are strictly valid with that
    OSIG time; every other record is valid by SIG= only."""

    def judge(record: NameRecord) -> BoundVerdict:
        if record.value not in times:
            return SIG_ONLY
        osig = BoundCheck("OSIG", 2, BoundStatus.VALID, "ok", time=times[record.value])
        return BoundVerdict(True, "strict", (osig,), None, osig)

    return judge


def seen(*records: NameRecord | None) -> list[Seen]:
    return [Seen(i + 1, r) for i, r in enumerate(records)]


# -- records ------------------------------------------------------------------------------


def test_a_strict_record_from_one_upstream_wins_over_two_liars() -> None:
    good, rewritten = rec("E2U good\nOSIG"), rec("E2U evil\nOSIG")
    choice = accept_record(NAME, seen(rewritten, good, None), 3, strict_at({good.value: 100}))
    assert choice.record == good and choice.how is How.STRICT
    assert choice.sources == (2,) and choice.disagreeing == (1, 3)
    assert any("strictly valid version served by upstream 2" in n for n in choice.notes)
    assert choice.describe(3) == "strictly valid, from 1 of 3 upstreams"


def test_the_newest_osig_wins_and_an_older_one_is_never_accepted_again() -> None:
    old, new = rec("v1"), rec("v2")
    judge = strict_at({old.value: 100, new.value: 200})
    first = accept_record(NAME, seen(old, new), 2, judge)
    assert first.record == new
    # The upstream with the new version goes away: the old one is refused, not served.
    later = accept_record(NAME, seen(old, None), 2, judge, accepted_time=200)
    assert later.record is None and later.how is How.NONE
    assert any("older than the accepted 200" in n for n in later.notes)
    # Equal times are not older (the same record seen again).
    again = accept_record(NAME, seen(new, None), 2, judge, accepted_time=200)
    assert again.record == new


def test_after_a_strict_version_a_sig_only_one_is_not_served_even_by_quorum() -> None:
    unbound = rec("E2U other\nSIG=ver:enum|x")
    choice = accept_record(NAME, seen(unbound, unbound), 2, strict_at({}), accepted_time=50)
    assert choice.record is None
    assert any("at least as new" in n for n in choice.notes)


def test_sig_only_needs_the_quorum_on_value_and_owner() -> None:
    a, b = rec("SIG a"), rec("SIG b")
    judge = strict_at({})
    assert accept_record(NAME, seen(a, a, a), 3, judge).how is How.QUORUM
    short = accept_record(NAME, seen(a, a, b), 3, judge)
    assert short.record is None and "quorum 3" in short.notes[0]
    two = accept_record(NAME, seen(a, a, b), 2, judge)
    assert two.record == a and two.sources == (1, 2) and two.disagreeing == (3,)
    # The same value under another owner is another version.
    moved = rec("SIG a", owner="EXother000000000000000000000000000")
    assert accept_record(NAME, seen(a, moved, a), 3, judge).record is None
    # An upstream that does not show the record does not count towards the quorum.
    assert accept_record(NAME, seen(a, a, None), 3, judge).record is None


def test_nothing_shown_anywhere_is_nothing_accepted_without_notes() -> None:
    choice = accept_record(NAME, seen(None, None), 1, strict_at({}))
    assert choice.record is None and choice.notes == ()


def test_ties_between_strict_versions_go_to_the_one_more_upstreams_return() -> None:
    x, y = rec("x"), rec("y")
    choice = accept_record(NAME, seen(x, y, y), 1, strict_at({"x": 5, "y": 5}))
    assert choice.record == y and choice.sources == (2, 3)


# -- verifiers -------------------------------------------------------------------------------

PINNED = "EPinned11111111111111111111111111"
OTHER = "EOther222222222222222222222222222"


def ver(owner: str, value: str = "verifier\nSRL=5|srl:x-%02x") -> NameRecord:
    return rec(value, owner, "ver:enum")


def test_a_pinned_verifier_ignores_an_upstream_naming_another_address() -> None:
    choice = choose_verifier("ver:enum", seen(ver(PINNED), ver(OTHER), ver(PINNED)), PINNED, None)
    assert choice.record is not None and choice.record.address == PINNED
    assert choice.how is How.PINNED and choice.sources == (1, 3) and choice.disagreeing == (2,)
    assert any(f"owned by {OTHER}, not the pinned {PINNED}: ignored" in n for n in choice.notes)


def test_a_pinned_verifier_whose_address_changes_everywhere_is_not_followed() -> None:
    current = ver(PINNED)
    choice = choose_verifier("ver:enum", seen(ver(OTHER), ver(OTHER)), PINNED, current)
    assert choice.record == current and choice.how is How.KEPT
    never = choose_verifier("ver:enum", seen(ver(OTHER)), PINNED, None)
    assert never.record is None and "not used" in never.notes[-1]


def test_an_unpinned_verifier_needs_every_upstream() -> None:
    agreed = choose_verifier("ver:enum", seen(ver(OTHER), ver(OTHER)), None, None)
    assert agreed.how is How.UNANIMOUS and agreed.record is not None
    split = choose_verifier("ver:enum", seen(ver(OTHER), ver(PINNED)), None, ver(OTHER))
    assert split.record is None and "pin it with --trust 'ver:enum@<address>'" in split.notes[0]
    hidden = choose_verifier("ver:enum", seen(ver(OTHER), None), None, None)
    assert hidden.record is None


def test_a_verifier_value_without_its_srl_line_does_not_switch_revocation_off() -> None:
    without = ver(PINNED, "verifier")
    choice = choose_verifier("ver:enum", seen(without, ver(PINNED)), PINNED, None)
    assert choice.record is not None and "SRL=" in choice.record.value
    assert any("differ on its value" in n for n in choice.notes)


# -- SRL, time, staleness ---------------------------------------------------------------------


def test_srl_entries_are_merged_from_every_upstream() -> None:
    a = rec("enum:1:0", name="srl:x-01")
    b = rec("enum:1:0\nenum:2:0", name="srl:x-01")
    choice = merge_srl("srl:x-01", seen(a, None, b))
    assert choice.record is not None
    assert "enum:2:0" in choice.record.value and "enum:1:0" in choice.record.value
    assert choice.sources == (1, 3) and "absent on upstream 2" in choice.notes[0]
    assert merge_srl("srl:x-01", seen(None, None)).record is None
    same = merge_srl("srl:x-01", seen(a, a))
    assert same.record is not None and same.record.value == a.value and same.notes == ()


def test_not_after_is_read_at_the_latest_of_the_clock_and_the_tips() -> None:
    assert chain_time(1000, [900, 1200, 10]) == 1200
    assert chain_time(1000, [5, 7]) == 1000  # an old tip cannot move time back
    assert chain_time(1000, []) == 1000
    # A tip claimed a year ahead counts as at most two hours ahead: it cannot expire
    # every VSIG.
    assert chain_time(1000, [1000 + 365 * 86400]) == 1000 + 2 * 3600


def test_staleness_and_the_served_line() -> None:
    states = [
        UpstreamState(1, "a", 140),
        UpstreamState(2, "b", 140),
        UpstreamState(3, "c", 100),
        UpstreamState(4, "d"),
    ]
    assert staleness(states) == ["upstream 3 is 40 blocks behind", "upstream 4 has never answered"]
    choice = accept_record(NAME, seen(rec("v"), rec("v"), None, None), 1, strict_at({"v": 1}))
    assert served_line(choice, states[:3]) == (
        "served: strictly valid, from 2 of 3 upstreams; upstream 3 is 40 blocks behind"
    )
    none = accept_record(NAME, seen(None), 1, strict_at({}))
    assert served_line(none, states[:1]) == "not served: not accepted"


def test_trust_list_pins_parse_and_print() -> None:
    trust = TrustList.from_text(f"ver:enum@{PINNED}|ver:other")
    assert trust.verifiers == ("ver:enum", "ver:other")
    assert trust.pin("ver:enum") == PINNED and trust.pin("ver:other") is None
    assert trust.to_text() == f"ver:enum@{PINNED}|ver:other"
    assert TrustList.from_text(trust.to_text()) == trust
    with pytest.raises(TrustError, match="is not an address"):
        TrustList.from_text("ver:enum@not-an-address")
    with pytest.raises(TrustError, match="two addresses"):
        TrustList.from_text(f"ver:enum@{PINNED}|ver:enum@{OTHER}")


# -- with real signatures ---------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(tmp_path / "store")
    demo.seed(ledger)
    yield ledger
    ledger.close()


def real_judge(store: Ledger) -> Callable[[NameRecord], BoundVerdict]:
    trust = TrustList.from_text(demo.DEMO_VERIFIER)
    resolver = Resolver(store, trust)
    cache = SignatureCache()

    def judge(record: NameRecord) -> BoundVerdict:
        return judge_bound(
            record.name,
            record.address,
            record.value,
            trust,
            resolver.verifier,
            resolver.srl_value,
            cache,
            int(time.time()),
            store.network,
        )

    return judge


def test_a_rewritten_e2u_line_of_a_strict_record_is_refused(store: Ledger) -> None:
    owner = store.get_new_address()
    value = sealed(store, NAME, "E2U+sip=100|10|!^.*$!sip:a@good.example!", owner)
    assert isinstance(value, str)
    store.name_new(NAME, value, 1, owner)
    append_bound(store, demo.DEMO_VERIFIER, NAME, sign_bound(store, demo.DEMO_VERIFIER, NAME))
    honest = store.show(NAME)
    forged = rec(honest.value.replace("good.example", "evil.example"), owner)
    judge = real_judge(store)
    assert judge(honest).strict and not judge(forged).strict
    # Two upstreams agree on the forgery; the honest one alone still wins, and the
    # forgery never reaches a quorum of 3, nor a quorum of 2 (it is not the same value).
    choice = accept_record(NAME, seen(forged, forged, honest), 3, judge)
    assert choice.record == honest and choice.how is How.STRICT
    assert choice.disagreeing == (1, 2)
    alone = accept_record(NAME, seen(forged, forged, None), 3, judge)
    assert alone.record is None
    # Its OSIG covers other directives and another version exists: not even a quorum of
    # liars makes it SIG=-only.
    other = rec(honest.value.replace("good.example", "third.example"), owner)
    quorum = accept_record(NAME, seen(forged, forged, other), 2, judge)
    assert quorum.record is None
    assert any("OSIG does not cover" in n for n in quorum.notes)
    # What every upstream returns alike is the owner's own stale seal: SIG=-only, as the
    # full gateway in compat mode serves it.
    alike = accept_record(NAME, seen(forged, forged), 2, judge)
    assert alike.record == forged and alike.how is How.QUORUM


def test_lazy_acceptance_skips_signatures_only_where_they_cannot_matter() -> None:
    a, b = rec("a"), rec("b")
    calls: list[str] = []
    base = strict_at({"b": 300})

    def judge(record: NameRecord) -> BoundVerdict:
        calls.append(record.value)
        return base(record)

    # First sync, every upstream alike: accepted without a check.
    agreed = accept_record(NAME, seen(a, a), 2, judge, lazy=True)
    assert agreed.record == a and agreed.how is How.AGREED and calls == []
    # Fewer than the quorum, or one upstream without it: judged.
    assert accept_record(NAME, seen(a, None), 2, judge, lazy=True).record is None
    assert calls == ["a"]
    # A new version everywhere while another is accepted: judged, and the accepted
    # strict version's OSIG time (300) refuses anything not newer.
    calls.clear()
    later = accept_record(NAME, seen(a, a), 2, judge, current=b, lazy=True)
    assert later.record is None and "b" in calls and "a" in calls
    # A high-water mark without a current record also forces the check.
    calls.clear()
    assert accept_record(NAME, seen(a, a), 2, judge, 300, lazy=True).record is None
    assert calls == ["a"]
