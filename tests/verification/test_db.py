"""The state file: schema, transactions, the chained append-only audit log, rate windows."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from enumer.verification.db import GENESIS_HASH, SCHEMA_VERSION, StateDB, entry_hash
from enumer.verification.model import RateLimit, VerificationError, token_digest


def _request_values(token: str = "tok") -> dict[str, object]:
    return {
        "token_hash": token_digest(token),
        "name": "enum:15551234567:0",
        "digits": "15551234567",
        "owner": "owner-address",
        "state": "awaiting-owner-proof",
        "challenge": "sign me",
        "created": 1.0,
        "updated": 1.0,
        "client": "192.0.2.1",
    }


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    return StateDB(tmp_path / "dir" / "state.db")


def test_created_on_first_open_with_its_settings(tmp_path: Path) -> None:
    path = tmp_path / "new" / "state.db"
    db = StateDB(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "requests", "audit", "rate_events"} <= tables
    # The web layer's tables are its own business.
    assert not tables & {"users", "sessions", "api_keys"}
    raw.close()
    secret = db.secret
    assert len(secret) == 32
    db.close()
    again = StateDB(path)
    assert again.secret == secret, "the code secret is made once, at creation"
    assert again._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert again._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    again.close()


def test_unusable_files_are_refused_in_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(VerificationError, match="not a usable verification state file"):
        StateDB(garbage)
    newer = tmp_path / "newer.db"
    raw = sqlite3.connect(newer)
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(VerificationError, match="newer than this enumer"):
        StateDB(newer)


def test_writes_need_a_transaction_and_roll_back_whole(db: StateDB) -> None:
    with pytest.raises(RuntimeError, match=r"inside StateDB\.transaction"):
        db.insert_request(_request_values())
    with pytest.raises(RuntimeError, match=r"inside StateDB\.transaction"):
        db.append_audit(1.0, "system", "x", None, {})
    with pytest.raises(ZeroDivisionError), db.transaction():
        request_id = db.insert_request(_request_values())
        db.append_audit(1.0, "system", "request.created", request_id, {"a": 1})
        _ = 1 / 0
    assert db.requests() == []
    assert db.audit() == []
    with db.transaction():
        request_id = db.insert_request(_request_values())
        db.update_request(request_id, {"state": "awaiting-code", "updated": 2.0})
    row = db.request(request_id)
    assert row is not None and (row["state"], row["updated"]) == ("awaiting-code", 2.0)
    assert db.request_by_token("tok") == row
    with pytest.raises(ValueError, match="unknown request columns: bogus"), db.transaction():
        db.update_request(request_id, {"bogus": 1})
    with pytest.raises(sqlite3.IntegrityError), db.transaction():
        db.update_request(request_id, {"state": "no-such-state"})


def test_search_and_filters(db: StateDB) -> None:
    with db.transaction():
        first = db.insert_request(_request_values("a"))
        second = db.insert_request(
            {**_request_values("b"), "name": "enum:4930123:1", "digits": "4930123"}
        )
        db.update_request(second, {"owner": "50%_owner"})
    assert [r["id"] for r in db.requests()] == [second, first]
    assert [r["id"] for r in db.requests(search="4930")] == [second]
    assert [r["id"] for r in db.requests(search="%")] == [second], "LIKE wildcards are escaped"
    assert [r["id"] for r in db.requests(name="enum:15551234567:0")] == [first]
    assert db.requests(search="nothing-like-this") == []


def test_audit_chain_links_entries(db: StateDB) -> None:
    with db.transaction():
        one = db.append_audit(10.5, "system", "a", None, {"n": 1, "text": "é"})
    with db.transaction():
        two = db.append_audit(11.0, "operator:alice", "b", None, {"reason": "x"})
    assert (one.seq, one.prev_hash) == (1, GENESIS_HASH)
    assert (two.seq, two.prev_hash) == (2, one.hash)
    assert two.hash == entry_hash(one.hash, two.hashed_part())
    assert [e.seq for e in db.audit()] == [2, 1]
    assert [e.seq for e in db.iter_audit()] == [1, 2]
    assert db.audit_problem() is None


def test_audit_is_append_only_and_tampering_shows(db: StateDB, tmp_path: Path) -> None:
    with db.transaction():
        for n in range(4):
            db.append_audit(float(n), "system", "event", None, {"n": n})
    for sql in (
        "UPDATE audit SET actor='mallory' WHERE seq=2",
        "DELETE FROM audit WHERE seq=2",
    ):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"), db.transaction():
            db._db.execute(sql)
    assert db.audit_problem() is None

    # Someone with the file drops the trigger and rewrites an entry: the chain shows it.
    raw = sqlite3.connect(db.path)
    raw.execute("DROP TRIGGER audit_no_update")
    raw.execute("""UPDATE audit SET detail='{"n":99}' WHERE seq=2""")
    raw.commit()
    assert db.audit_problem() == "audit entry 2 was altered"

    # Recomputing the edited entry's hash breaks the link to the next one instead.
    row = db.audit(request_id=None)[-2]
    assert row.seq == 2
    raw.execute(
        "UPDATE audit SET hash=? WHERE seq=2", (entry_hash(row.prev_hash, row.hashed_part()),)
    )
    raw.commit()
    assert db.audit_problem() == "audit entry 3 does not follow entry 2"
    raw.close()


def test_a_removed_audit_entry_shows(db: StateDB) -> None:
    with db.transaction():
        for n in range(3):
            db.append_audit(float(n), "system", "event", None, {})
    raw = sqlite3.connect(db.path)
    raw.execute("DROP TRIGGER audit_no_delete")
    raw.execute("DELETE FROM audit WHERE seq=2")
    raw.commit()
    raw.close()
    assert db.audit_problem() == "audit entry 2 is missing (next is 3)"


def test_sliding_window_rate_limits(db: StateDB) -> None:
    limit = RateLimit(2, 100)
    keys = [("client:a", limit), ("number:1", RateLimit(3, 1000))]
    for now in (0.0, 10.0):
        with db.transaction():
            assert db.rate_check(keys, now) is None
    with db.transaction():
        refusal = db.rate_check(keys, 50.0)
    assert refusal is not None
    assert (refusal.key, refusal.retry_after) == ("client:a", 50.0)
    assert db.rate_events("number:1") == 2, "a refused event is counted by no limit"
    with db.transaction():
        assert db.rate_check(keys, 100.5) is None  # the event at 0 left the window
    assert db.rate_events("client:a") == 2  # pruned on the way
    with db.transaction():
        refusal = db.rate_check(keys, 111.0)  # client: 1 in window; number: 3
    assert refusal is not None and refusal.key == "number:1"
    with db.transaction():
        assert db.prune_rate_events(before=1000.0) == 4
    assert db.rate_events("client:a") == db.rate_events("number:1") == 0


def test_a_crash_inside_a_transaction_leaves_nothing(tmp_path: Path) -> None:
    """A process dying between the state change and its audit entry (or before the
    commit) leaves neither on disk: the real thing, not a simulated rollback."""
    path = tmp_path / "state.db"
    StateDB(path).close()
    script = textwrap.dedent(
        f"""
        import os
        from enumer.verification.db import StateDB
        db = StateDB({str(path)!r})
        with db.transaction():
            db.insert_request({_request_values()!r})
            db.append_audit(1.0, "system", "request.created", 1, {{}})
            os._exit(3)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    db = StateDB(path)
    assert db.requests() == []
    assert db.audit() == []
    assert os.path.exists(path)
    db.close()


def test_a_schema_1_file_gets_its_tokens_hashed_and_no_clear_copy_left(tmp_path: Path) -> None:
    """Version 1 kept the owners' request tokens in clear; opening it migrates them."""
    path = tmp_path / "state.db"
    db = StateDB(path)
    tokens = [f"owner-token-{i:02d}-{'x' * 12}" for i in range(30)]
    with db.transaction():
        ids = [db.insert_request(_request_values(token)) for token in tokens]
    db.close()
    # Make it the file version 1 wrote: the column "token", holding the tokens themselves.
    raw = sqlite3.connect(path)
    raw.execute("ALTER TABLE requests RENAME COLUMN token_hash TO token")
    raw.executemany("UPDATE requests SET token=? WHERE id=?", list(zip(tokens, ids, strict=True)))
    raw.execute("PRAGMA user_version=1")
    raw.commit()
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    assert tokens[0].encode() in path.read_bytes()

    db = StateDB(path)
    assert db._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    for request_id, token in zip(ids, tokens, strict=True):
        row = db.request_by_token(token)
        assert row is not None and row["id"] == request_id
        assert row["token_hash"] == token_digest(token)
    assert db.request_by_token(token_digest(tokens[0])) is None  # the hash is no key
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("state.db"))
    assert not any(token.encode() in on_disk for token in tokens)
    db.close()
    assert StateDB(path).request_by_token(tokens[3]) is not None  # opened again: no change
