"""The packed NSEC chain answers every lookup as a sorted list of the names does."""

from __future__ import annotations

import bisect

from hypothesis import given, settings
from hypothesis import strategies as st

from enumer.dns.nsec import MIN_WIDTH, Chain

digits = st.text("0123456789", min_size=1, max_size=20)
#: Lookups: names, and the sort keys that denials bisect for (see signed.sort_key).
probes = st.tuples(st.text("0123456789", max_size=22), st.sampled_from(["", "*", "~", "!", "5~"]))


@settings(max_examples=200, deadline=None)
@given(
    start=st.sets(digits, max_size=60),
    edits=st.lists(st.tuples(st.booleans(), digits), max_size=40),
    looks=st.lists(probes, max_size=30),
)
def test_the_packed_chain_is_the_sorted_list(
    start: set[str], edits: list[tuple[bool, str]], looks: list[tuple[str, str]]
) -> None:
    model = ["", *sorted(start)]
    chain = Chain(model)
    before = chain.copy()
    for add, name in edits:
        if add:
            i = chain.insert(name)
            if name not in model:
                bisect.insort(model, name)
            assert i == model.index(name)
        else:
            was = model.index(name) if name in model else -1
            assert chain.remove(name) == (was - 1 if was > 0 else -1)
            if was > 0:
                model.remove(name)
    assert list(chain) == model and len(chain) == len(model) and chain[:] == model
    assert chain == Chain(model)  # the same bytes, or widened: the same names
    assert before == Chain(["", *sorted(start)])  # a copy is not changed by its source
    for name, suffix in looks:
        key = name + suffix
        assert chain.covering(key) == bisect.bisect_right(model, key) - 1
        assert chain.index(key) == (model.index(key) if key in model else -1)
        assert (key in chain) == (key in model)
    for i in range(len(model)):
        assert chain.next_of(i) == (model[i + 1] if i + 1 < len(model) else "")


def test_names_longer_than_a_number_widen_the_records_once() -> None:
    chain = Chain(["", "1", "18"])
    assert chain.width == MIN_WIDTH and len(chain.data) == 3 * MIN_WIDTH
    long = "1" * (MIN_WIDTH + 4)
    assert chain.insert(long) == 2  # "1" < "111..." < "18"
    assert chain.width == MIN_WIDTH + 4 and list(chain) == ["", "1", long, "18"]
    assert chain.covering("1" * 30) == 2 and chain.index("1" * 30) == -1


def test_denials_of_the_packed_chain() -> None:
    chain = Chain(["", "18", "1800", "19"])
    assert chain.denial("180") == (True, [1])  # an empty non-terminal
    assert chain.denial("17") == (False, [0])  # the name and the wildcard *.1: one NSEC
    # 1801: covered by 1800 -> 19; its closest encloser is 180 (an empty non-terminal),
    # whose wildcard (sort key "180*") falls between 18 and 1800
    assert chain.denial("1801") == (False, [2, 1])


@given(keys=st.sets(digits.map(lambda d: d[::-1].encode()), max_size=80))
def test_a_chain_of_table_keys_is_the_chain_of_their_sorted_names(keys: set[bytes]) -> None:
    names = ["", *sorted(k[::-1].decode() for k in keys)]
    assert Chain.of_keys(keys) == Chain(names) and list(Chain.of_keys(keys)) == names
