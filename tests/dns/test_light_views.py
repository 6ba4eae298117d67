"""A light gateway's views of its upstreams: which names of a full listing to fetch
again, when blocks came while the listing's pages did."""

from __future__ import annotations

from pathlib import Path

from enumer.dns.light import LISTED_VALUE, Listed, Views
from enumer.nvs import NameRecord
from enumer.nvs.node import limit_value

UPSTREAM = "http://feed.example/"


def record(name: str, value: str, registered: int = 10, expires: int = 1000) -> NameRecord:
    return NameRecord(name, value, "addr", "txid", registered, registered, expires, 0)


def listing(r: NameRecord, tip_moved_by: int = 0) -> Listed:
    """What a listing page says of ``r``: ``expires_in`` read at a tip that many blocks
    later than the one the light gateway counts it from."""
    return (r.registered_at, r.expires_at - tip_moved_by, hash(limit_value(r.value, LISTED_VALUE)))


def test_blocks_during_a_listing_do_not_make_every_later_name_differ(tmp_path: Path) -> None:
    views = Views(tmp_path / "views.sqlite")
    same, renewed, rewritten, moved_up = (
        record("enum:1:0", "E2U+sip=a"),
        record("enum:2:0", "E2U+sip=b"),
        record("enum:3:0", "E2U+sip=c"),
        record("enum:4:0", "E2U+sip=d"),
    )
    gone = record("enum:5:0", "E2U+sip=e")
    views.put(UPSTREAM, [same, renewed, rewritten, moved_up, gone], [])
    listed = {
        same.name: listing(same, tip_moved_by=2),  # a page read two blocks later
        renewed.name: listing(record(renewed.name, renewed.value, expires=1500)),
        rewritten.name: listing(record(rewritten.name, "E2U+sip=other")),
        moved_up.name: listing(moved_up, tip_moved_by=-1),  # never lower than the view's
        "enum:6:0": listing(record("enum:6:0", "new")),
    }
    differ, unlisted = views.differing(UPSTREAM, listed, moved=2)
    assert sorted(differ) == ["enum:2:0", "enum:3:0", "enum:4:0", "enum:6:0"]
    assert unlisted == [gone.name]
    # Had no block come, the page read two blocks later would be a change.
    assert same.name in views.differing(UPSTREAM, listed, moved=0)[0]
    views.close()
