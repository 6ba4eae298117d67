"""The embedded NVS ledger: Emercoin's semantics and messages, crash safety, concurrency."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import rpc_error, rpc_result

from enumer import crypto
from enumer.emercoin import BLOCKS_PER_DAY, MAX_NAME_BYTES, MAX_VALUE_BYTES
from enumer.nvs import (
    NameRecord,
    NvsError,
    get_active,
)
from enumer.nvs.ledger import LEDGER_FILE, Ledger
from enumer.verifier import update_keeping_owner

#: A valid regtest address whose key no test wallet holds (W2 of the reference).
FOREIGN = "mrtBxwpW2PV9FxhrC29Tpzo7zyjLQw4pqD"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(tmp_path / "store", "regtest")
    yield ledger
    ledger.close()


def assert_node_error(exc: pytest.ExceptionInfo[NvsError], reference_dir: Path, call: str) -> None:
    """Same code and message as the captured node error."""
    expected = rpc_error(reference_dir, call)
    assert (exc.value.code, exc.value.message) == (expected["code"], expected["message"])


# -- errors, with the node's codes and texts ---------------------------------------------


def test_name_new_on_an_existing_name(store: Ledger, reference_dir: Path) -> None:
    store.name_new("enum:18009359935:0", "first", 365)
    with pytest.raises(NvsError) as exc:
        store.name_new("enum:18009359935:0", "dup", 365)
    assert_node_error(exc, reference_dir, "err_name_new_existing")
    assert store.show("enum:18009359935:0").value == "first"


def test_size_limits(store: Ledger, reference_dir: Path) -> None:
    with pytest.raises(NvsError) as exc:
        store.name_new("n" * 513, "x", 1)
    assert_node_error(exc, reference_dir, "err_name_new_name_513_bytes")
    with pytest.raises(NvsError) as exc:
        store.name_new("test:toolongvalue", "v" * 20481, 1)
    assert_node_error(exc, reference_dir, "err_name_new_value_20481_bytes")
    with pytest.raises(NvsError) as exc:
        store.name_new("n" * 513, "v" * 20481, 1)
    assert_node_error(exc, reference_dir, "err_name_new_name_and_value_too_long")
    assert str(exc.value) == "name is too long.; value is too long."
    # Bytes, not characters.
    with pytest.raises(NvsError, match="name is too long"):
        store.name_new("é" * 257, "x", 1)
    # The exact limits are accepted, and stored whole.
    store.name_new("n" * MAX_NAME_BYTES, "name of exactly 512 bytes", 1)
    store.name_new("test:maxvalue", "v" * MAX_VALUE_BYTES, 1)
    assert store.show("test:maxvalue").value == "v" * 20480
    assert store.show("n" * 512).value == "name of exactly 512 bytes"
    name = "test:maxvalue"
    with pytest.raises(NvsError, match="value is too long"):
        store.name_update(name, "v" * 20481, 0)


def test_days_and_empty_value(store: Ledger, reference_dir: Path) -> None:
    with pytest.raises(NvsError) as exc:
        store.name_new("test:zerodays", "x", 0)
    assert_node_error(exc, reference_dir, "err_name_new_days_0")
    with pytest.raises(NvsError) as exc:
        store.name_new("test:emptyvalue", "", 365)
    assert_node_error(exc, reference_dir, "err_name_new_empty_value")
    with pytest.raises(NvsError) as exc:
        store.name_new("test:badaddr", "x", 10, "notanaddress")
    assert_node_error(exc, reference_dir, "err_name_new_invalid_toaddress")
    with pytest.raises(NvsError, match="emercoin address is invalid"):
        store.name_new("test:mainnetaddr", "x", 10, "EX3t46BMKEVWNFg1LqNNKRMYsCPP8HZwao")
    assert store.count() == 0
    store.name_new("test:x", "x", 1)
    store.name_update("test:x", "y", 0)  # days 0 is fine for an update
    with pytest.raises(NvsError, match="value must not be empty"):
        store.name_update("test:x", "", 1)


def test_update_and_delete_of_a_name_not_owned(store: Ledger, reference_dir: Path) -> None:
    store.name_new("enum:19990000000:0", "owned by wallet w2", 365, FOREIGN)
    with pytest.raises(NvsError) as exc:
        store.name_update("enum:19990000000:0", "steal attempt", 10)
    assert_node_error(exc, reference_dir, "err_name_update_not_owned")
    with pytest.raises(NvsError) as exc:
        store.name_delete("enum:19990000000:0")
    assert_node_error(exc, reference_dir, "err_name_delete_not_owned")
    with pytest.raises(NvsError) as exc:
        update_keeping_owner(store, "enum:19990000000:0", "steal attempt", 10)
    assert_node_error(exc, reference_dir, "err_name_update_not_owned")
    assert store.show("enum:19990000000:0").value == "owned by wallet w2"


def test_update_of_missing_and_deleted_names(store: Ledger, reference_dir: Path) -> None:
    with pytest.raises(NvsError) as exc:
        store.name_update("enum:10000000000:0", "x", 10)
    assert_node_error(exc, reference_dir, "err_name_update_missing_name")
    store.name_new("enum:15558880000:0", "soon deleted", 365)
    store.name_delete("enum:15558880000:0")
    with pytest.raises(NvsError) as exc:
        store.name_update("enum:15558880000:0", "x", 10)
    assert_node_error(exc, reference_dir, "err_name_update_deleted_name")
    with pytest.raises(NvsError, match="name_delete on an inactive name"):
        store.name_delete("enum:15558880000:0")
    with pytest.raises(NvsError, match="name_delete on an inactive name"):
        store.name_delete("enum:10000000000:0")


def test_show_and_history_of_a_missing_name(store: Ledger, reference_dir: Path) -> None:
    with pytest.raises(NvsError) as exc:
        store.show("enum:10000000000:0")
    assert_node_error(exc, reference_dir, "err_name_show_missing")
    with pytest.raises(NvsError) as exc:
        store.history("enum:10000000000:0")
    assert_node_error(exc, reference_dir, "err_name_history_missing")
    with pytest.raises(NvsError) as exc:
        store.history("enum:10000000000:0", full=True)
    assert_node_error(exc, reference_dir, "err_name_history_missing")
    assert get_active(store, "enum:10000000000:0") is None


def test_sign_message_without_the_key(store: Ledger, reference_dir: Path) -> None:
    with pytest.raises(NvsError) as exc:
        store.sign_message(FOREIGN, "enum:18009359935:0")
    assert_node_error(exc, reference_dir, "err_signmessage_key_not_in_wallet")


# -- deleted, expired, re-registered ---------------------------------------------------------


def _keys(reference_dir: Path, call: str) -> list[str]:
    result = rpc_result(reference_dir, call)
    return list((result[0] if isinstance(result, list) else result).keys())


def test_deleted_name(store: Ledger, reference_dir: Path) -> None:
    store.name_new("enum:15558880000:0", "E2U+sip=1|1|!^.*$!sip:a@b!", 365)
    first = store.history("enum:15558880000:0")
    store.name_delete("enum:15558880000:0")
    record = store.show("enum:15558880000:0")
    assert record.deleted and not record.is_active(store.height())
    shown = record.show_json(store.height())
    assert list(shown) == _keys(reference_dir, "name_show_deleted")
    assert (shown["value"], shown["expires_at"], shown["deleted"]) == ("", 0, True)
    assert shown["expires_in"] == -store.height()
    with pytest.raises(NvsError) as exc:
        store.history("enum:15558880000:0")
    assert_node_error(exc, reference_dir, "err_name_history_deleted_not_fullhistory")
    full = store.history("enum:15558880000:0", full=True)
    assert [op.operation for op in full] == ["name_new", "name_delete"]
    assert full[0] == first[0]
    entries = [op.history_json(store.is_mine(op.address)) for op in full]
    reference = rpc_result(reference_dir, "name_history_deleted_fullhistory")
    assert [list(e) for e in entries] == [list(e) for e in reference]
    assert entries[1]["height"] == entries[0]["height"] + 1
    assert get_active(store, "enum:15558880000:0") is None
    # A deleted name can be registered again; the default history starts there.
    store.name_new("enum:15558880000:0", "again", 10)
    assert [op.operation for op in store.history("enum:15558880000:0")] == ["name_new"]
    assert len(store.history("enum:15558880000:0", full=True)) == 3


def test_expired_name_and_re_registration(store: Ledger, reference_dir: Path) -> None:
    store.name_new("test:maxvalue", "v" * 20480, 1)
    record = store.show("test:maxvalue")
    assert record.expires_at == record.registered_at + BLOCKS_PER_DAY == record.height + 175
    store.generate(record.expires_at - store.height())
    assert store.height() == record.expires_at
    assert get_active(store, "test:maxvalue") is not None  # active while height <= expires_at
    with pytest.raises(NvsError, match="name_new on an unexpired name"):
        store.name_new("test:maxvalue", "too early", 1)
    store.generate(1)
    shown = store.show("test:maxvalue").show_json(store.height())
    assert list(shown) == _keys(reference_dir, "name_show_expired")
    assert shown["expired"] is True and shown["expires_in"] == -1
    assert get_active(store, "test:maxvalue") is None
    with pytest.raises(NvsError) as exc:
        store.history("test:maxvalue")
    assert_node_error(exc, reference_dir, "err_name_history_expired_not_fullhistory")
    with pytest.raises(NvsError, match="name_update on an inactive name"):
        store.name_update("test:maxvalue", "late", 10)
    # Anyone may register an expired name again.
    store.name_new("test:maxvalue", "re-registered after expiry", 365, FOREIGN)
    now = store.show("test:maxvalue")
    assert now.address == FOREIGN and now.registered_at == store.height()
    assert now.expires_at == now.registered_at + 365 * BLOCKS_PER_DAY
    active = store.history("test:maxvalue")
    assert [(op.operation, op.value) for op in active] == [
        ("name_new", "re-registered after expiry")
    ]
    (reference,) = rpc_result(reference_dir, "name_history_reregistered_active_only")
    assert list(active[0].history_json(True)) == list(reference)
    full = store.history("test:maxvalue", full=True)
    assert [op.operation for op in full] == ["name_new", "name_new"]
    assert full[0].value == "v" * 20480
    assert "address_is_mine" not in full[1].history_json(store.is_mine(full[1].address))


def test_show_json_fields(store: Ledger, reference_dir: Path) -> None:
    store.name_new("enum:18009359935:0", "value", 365)
    shown = store.show("enum:18009359935:0").show_json(store.height())
    assert list(shown) == _keys(reference_dir, "name_show_enum_18009359935_0")
    assert shown["expires_in"] == shown["expires_at"] - store.height() == 365 * 175
    assert len(shown["txid"]) == 64 and int(shown["txid"], 16) >= 0


# -- owners and transfers --------------------------------------------------------------------


def test_update_without_address_moves_to_a_fresh_wallet_address(store: Ledger) -> None:
    address = store.get_new_address("legacy")
    store.name_new("ver:enum", "Verifier", 3650, address)
    store.name_update("ver:enum", "node semantics", 0)
    moved = store.show("ver:enum").address
    assert moved != address and moved.startswith("emrt1q") and store.is_mine(moved)
    assert store.show("ver:enum").value == "node semantics"
    update_keeping_owner(store, "ver:enum", "enumer semantics", 0)
    assert store.show("ver:enum").address == moved
    store.name_update("ver:enum", "explicit", 0, address)
    assert store.show("ver:enum").address == address
    store.name_update("ver:enum", "legacy", 0, "legacy")
    assert store.show("ver:enum").address[0] in "mn"


def test_update_adds_days(store: Ledger) -> None:
    store.name_new("test:days", "x", 10)
    before = store.show("test:days").expires_at
    store.name_update("test:days", "y", 5)
    assert store.show("test:days").expires_at == before + 5 * BLOCKS_PER_DAY
    store.name_update("test:days", "z", 0)
    assert store.show("test:days").expires_at == before + 5 * BLOCKS_PER_DAY
    with pytest.raises(NvsError):
        store.name_update("test:days", "z", -1)


def test_transfer_and_name_list(store: Ledger, reference_dir: Path) -> None:
    store.name_new("enum:19990000000:0", "mine, then given away", 365)
    store.name_new("enum:18009359935:0", "kept", 365)
    store.name_new("enum:15558880000:0", "deleted", 365)
    store.name_delete("enum:15558880000:0")
    store.name_new("test:short", "expires", 1)
    # Registered straight to a foreign address, as the reference's enum:19990000000:0
    # was: the node's name_list shows it, transferred.
    store.name_new("enum:17770000000:0", "registered for someone else", 365, FOREIGN)
    store.name_update("enum:19990000000:0", "mine, then given away", 0, FOREIGN)
    store.generate(BLOCKS_PER_DAY + 1)
    names = store.list_names()
    assert [e["name"] for e in names] == [
        "enum:17770000000:0",
        "enum:18009359935:0",
        "enum:19990000000:0",
        "test:short",
    ]
    for given in (names[0], names[2]):
        assert list(given) == _keys(reference_dir, "name_list_foreign_owned_name")
        assert given["transferred"] is True and given["address"] == FOREIGN
    assert names[3]["expired"] is True and names[3]["expires_in"] < 0
    assert list(names[1]) == ["name", "value", "address", "expires_in"]
    with pytest.raises(NvsError, match="prev name tx is not yours"):
        store.name_update("enum:19990000000:0", "back", 0)


# -- height -------------------------------------------------------------------------------


def test_height_advances_with_writes_and_generate(store: Ledger) -> None:
    start = store.height()
    store.name_new("a:1", "x", 1)
    assert store.height() == start + 1 == store.show("a:1").height
    store.name_update("a:1", "y", 0)
    assert store.height() == start + 2
    store.name_delete("a:1")
    assert store.height() == start + 3
    assert store.generate(10) == start + 13
    assert store.generate(0) == start + 13
    with pytest.raises(NvsError):
        store.generate(-1)
    assert [r.name for r in store.changed_since(start)] == ["a:1"]
    assert store.changed_since(start + 3) == []


def test_height_is_shared_between_instances(store: Ledger, tmp_path: Path) -> None:
    store.generate(5)
    with Ledger(tmp_path / "store") as other:
        assert other.height() == store.height()
        assert other.network_name == "regtest"
        other.name_new("b:1", "x", 1)
    assert store.show("b:1").value == "x"


def test_network_of_a_store(tmp_path: Path) -> None:
    with Ledger(tmp_path / "main") as main:
        assert main.network_name == "mainnet"
        assert main.get_new_address().startswith("em1q")
        assert main.get_new_address("legacy").startswith("E")
    with pytest.raises(NvsError, match="is a mainnet store, not regtest"):
        Ledger(tmp_path / "main", "regtest")
    with pytest.raises(NvsError, match="no ENUMER store"):
        Ledger(tmp_path / "absent", create=False)
    with Ledger(tmp_path / "rt", "regtest") as rt:
        assert rt.get_new_address().startswith("emrt1q")
        assert rt.get_new_address("legacy")[0] in "mn"
    assert (tmp_path / "main" / LEDGER_FILE).stat().st_mode & 0o777 == 0o600


def test_import_key_and_sign(store: Ledger, reference_dir: Path) -> None:
    wif = rpc_result(reference_dir, "dumpprivkey_A_regtest_only")
    address = store.import_key(wif)
    assert address == "mqCwY8H123ACyNaemLxyWZuCK7fDzqg3Z6"
    signature = store.sign_message(address, "enum:18009359935:0")
    assert crypto.verify_message(address, signature, "enum:18009359935:0", network=crypto.REGTEST)
    assert store.dump_privkey(address) == wif
    with pytest.raises(NvsError, match="Invalid private key encoding"):
        store.import_key("not a key")


# -- name_scan and name_filter -----------------------------------------------------------------


def test_name_scan_order_matches_the_node(store: Ledger, reference_dir: Path) -> None:
    reference = [e["name"] for e in rpc_result(reference_dir, "name_scan_all")]
    names = [*reference, "enum:15558880000:0"]
    random.Random(7).shuffle(names)
    for name in names:
        store.name_new(name, "x", 365)
    store.name_delete("enum:15558880000:0")  # deleted names are not scanned
    store.name_update(reference[-1], "y", 0)
    assert [r.name for r in store.scan()] == reference
    from_start = [e["name"] for e in rpc_result(reference_dir, "name_scan_from_enum_1777_max3")]
    assert [r.name for r in store.scan("enum:1777")] == from_start


def test_name_scan_includes_expired(store: Ledger) -> None:
    store.name_new("short:1", "x", 1)
    store.name_new("a:long-name", "x", 365)
    store.generate(200)
    scanned = store.scan()
    assert [r.name for r in scanned] == ["short:1", "a:long-name"]
    assert not scanned[0].is_active(store.height())


def test_name_filter(store: Ledger, reference_dir: Path) -> None:
    reference = {e["name"] for e in rpc_result(reference_dir, "name_filter_enum")}
    for name in sorted(reference):
        store.name_new(name, "x", 1 if name == "enum:15559990000:0" else 365)
    store.name_new("ver:enum", "v", 365)
    store.name_new("enum:15558880000:0", "deleted", 365)
    store.name_delete("enum:15558880000:0")
    store.generate(BLOCKS_PER_DAY + 1)
    found = store.filter("^enum:")
    assert {r.name for r in found} == reference  # expired kept, deleted and others left out
    assert [r.registered_at for r in found] == sorted(r.registered_at for r in found)
    assert {r.name for r in store.filter("tollfree")} == {"enum:tollfree"}  # a search
    assert [r.name for r in store.filter("^enum:1777", 0, 1, 2)] == [
        r.name for r in store.filter("^enum:1777")
    ][1:3]
    store.name_new("new:one", "x", 1)
    assert [r.name for r in store.filter("", 5)] == ["new:one"]
    assert len(store.filter("")) == len(reference) + 2
    with pytest.raises(NvsError, match="invalid regular expression"):
        store.filter("(")


# -- crash safety and concurrency ---------------------------------------------------------------

CHILD_PRELUDE = textwrap.dedent("""\
    import sys, time
    from enumer.nvs.ledger import Ledger
    store = Ledger(sys.argv[1])
""")


def _child(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _integrity(path: Path) -> str:
    db = sqlite3.connect(path / LEDGER_FILE)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def test_sigkill_inside_a_write_transaction_loses_only_that_write(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Ledger(path, "regtest") as store:
        store.name_new("before:crash", "kept", 365)
        count, height = store.count(), store.height()
    child = _child(
        """
        with store._write():
            for i in range(3000):
                store._apply(f"crash:{i}", "name_new", "x" * 500, 365, "addr", store._mine(),
                             10**6, store._mine())
            print("ready", flush=True)
            time.sleep(120)
    """,
        str(path),
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready", child.stderr.read() if child.stderr else ""
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert _integrity(path) == "ok"
    with Ledger(path) as store:
        assert store.count() == count and store.height() == height
        assert list(store.iter_prefix("crash:")) == []
        assert store.show("before:crash").value == "kept"
        store.name_new("after:crash", "written", 365)
        assert store.show("after:crash").value == "written"
        assert store.height() == height + 1
    assert _integrity(path) == "ok"


def test_sigkill_during_a_stream_of_writes_keeps_every_operation_whole(tmp_path: Path) -> None:
    path = tmp_path / "store"
    Ledger(path, "regtest").close()
    child = _child(
        """
        for i in range(100000):
            store.name_new(f"n:{i}", "v" * 2000, 365)
            if i == 20:
                print("ready", flush=True)
    """,
        str(path),
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert _integrity(path) == "ok"
    with Ledger(path) as store:
        names = list(store.iter_prefix("n:"))
        assert len(names) > 20
        db = sqlite3.connect(path / LEDGER_FILE)
        history = db.execute("SELECT name, txid, height FROM history ORDER BY seq").fetchall()
        db.close()
        # Every name has exactly its one history entry and each write mined one block.
        assert {(r.name, r.txid, r.height) for r in names} == set(history)
        assert store.height() == len(names)
        store.name_new("after:crash", "ok", 1)


def test_a_reader_in_another_process_never_sees_half_a_write(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Ledger(path, "regtest") as store:
        store.name_new("enum:18009359935:0", "gen=0\n" + "a" * 3000, 365)
        store.name_new("enum:18009359935:1", "gen=0\n" + "b" * 3000, 365)
    writer = _child(
        """
        import pathlib
        started = pathlib.Path(sys.argv[1]) / "reader-started"
        deadline = time.time() + 60
        while not started.exists() and time.time() < deadline:
            time.sleep(0.01)
        current = {r.name: r for r in store.records_for_number("18009359935")}
        for gen in range(1, 301):
            with store._write():  # both records of the number in one block
                height = store._mine()
                for name, record in current.items():
                    store._apply(name, "name_update", f"gen={gen}\\n" + "c" * 3000, 0,
                                 record.address, None, record.expires_at, height)
        print("done", flush=True)
    """,
        str(path),
    )
    reader = _child(
        """
        import json
        import pathlib
        seen, mixed = set(), 0
        deadline = time.time() + 60
        while time.time() < deadline:
            records = store.records_for_number("18009359935")
            gens = {r.value.split("\\n")[0] for r in records}
            (pathlib.Path(sys.argv[1]) / "reader-started").touch()
            heights = {r.height for r in records}
            if len(records) != 2 or len(gens) != 1 or (len(heights) != 1 and gens != {"gen=0"}):
                mixed += 1
            seen |= gens
            if "gen=300" in gens:
                break
        print(json.dumps({"seen": len(seen), "mixed": mixed}), flush=True)
    """,
        str(path),
    )
    out, err = reader.communicate(timeout=120)
    _, writer_err = writer.communicate(timeout=120)
    assert writer.returncode == 0, writer_err
    assert reader.returncode == 0, err
    result: dict[str, Any] = json.loads(out)
    assert result["mixed"] == 0
    assert result["seen"] >= 2  # the reader really ran while the writer wrote
    with Ledger(path) as store:
        assert {r.value.split("\n")[0] for r in store.records_for_number("18009359935")} == {
            "gen=300"
        }


def test_readers_do_not_block_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Ledger(path, "regtest") as store:
        store.name_new("x:1", "one", 1)
        reader = sqlite3.connect(path / LEDGER_FILE)
        reader.execute("BEGIN")
        assert reader.execute("SELECT value FROM names WHERE name='x:1'").fetchone() == ("one",)
        started = time.monotonic()
        store.name_update("x:1", "two", 0)
        assert time.monotonic() - started < 5
        # The open read transaction keeps its snapshot.
        assert reader.execute("SELECT value FROM names WHERE name='x:1'").fetchone() == ("one",)
        reader.execute("COMMIT")
        assert reader.execute("SELECT value FROM names WHERE name='x:1'").fetchone() == ("two",)
        reader.close()


def test_store_directory_is_private(tmp_path: Path) -> None:
    with Ledger(tmp_path / "new" / "store", "regtest"):
        pass
    assert (tmp_path / "new" / "store").stat().st_mode & 0o777 == 0o700
    assert os.access(tmp_path / "new" / "store" / LEDGER_FILE, os.R_OK)


def test_opening_a_store_does_not_wait_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Ledger(path, "regtest") as store:
        store.name_new("a:1", "committed", 1)
    holder = _child(
        """
        with store._write():
            store._set_meta("mined", store._meta("mined") or "0")
            print("ready", flush=True)
            time.sleep(60)
    """,
        str(path),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        started = time.monotonic()
        with Ledger(path) as reader:  # must not queue behind the writer's lock
            assert reader.show("a:1").value == "committed"
            assert reader.network_name == "regtest"
        with pytest.raises(NvsError, match="is a regtest store"):
            Ledger(path, "mainnet")
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()


# -- reading in parallel ranges ------------------------------------------------------


def _bulk(store: Ledger, names: list[str]) -> None:
    store.put_records(NameRecord(name, "v", FOREIGN, "00" * 32, 1, 1, 10**6, 0) for name in names)


@pytest.mark.parametrize("parts", [1, 2, 7, 16, 64])
def test_split_points_cut_a_prefix_into_similar_ranges(store: Ledger, parts: int) -> None:
    names = sorted(f"enum:{n:011d}:0" for n in random.Random(parts).sample(range(10**11), 500))
    _bulk(store, [*names, "dns:example.com", "ver:x"])
    assert store.count_prefix("enum:") == 500
    points = store.split_points("enum:", parts)
    assert points == sorted(set(points))
    bounds = ["enum:", *points, "enum;"]
    ranges = [[r.name for r in store.iter_range(lo, hi)] for lo, hi in itertools.pairwise(bounds)]
    assert [n for r in ranges for n in r] == names  # every name once, in order
    assert len(ranges) == parts
    sizes = [len(r) for r in ranges]
    assert max(sizes) - min(sizes) <= 500 // parts + 1


def test_split_points_of_few_names(store: Ledger) -> None:
    _bulk(store, ["enum:1:0", "enum:2:0"])
    assert store.split_points("enum:", 8) == ["enum:2:0"]  # fewer names than parts
    assert store.split_points("dns:", 2) == []
    assert store.count_prefix("dns:") == 0


def test_a_store_from_before_wallet_names_gets_the_table(tmp_path: Path) -> None:
    """Stores made before ``wallet_names`` existed are given it when opened, and
    lose nothing."""
    with Ledger(tmp_path / "old", "regtest") as ledger:
        ledger.name_new("test:kept", "v", 10)
    db = sqlite3.connect(tmp_path / "old" / LEDGER_FILE)
    db.execute("DROP TABLE wallet_names")
    db.commit()
    db.close()
    with Ledger(tmp_path / "old") as ledger:
        assert [e["name"] for e in ledger.list_names()] == ["test:kept"]
        ledger.name_new("test:theirs", "v", 10, FOREIGN)
        assert [e["name"] for e in ledger.list_names()] == ["test:kept", "test:theirs"]


def test_show_many_finds_names_far_apart_deleted_ones_too(store: Ledger) -> None:
    for n in range(1200):  # more than one batch of the IN list
        store.name_new(f"enum:{n:05d}:0", f"v{n}", 100)
    store.name_delete("enum:00600:0")
    wanted = ["enum:00001:0", "enum:01199:0", "enum:00600:0", "enum:99999:0"]
    found = store.show_many(wanted + [f"enum:{n:05d}:0" for n in range(0, 1200, 2)])
    assert found["enum:00001:0"].value == "v1" and found["enum:01199:0"].value == "v1199"
    assert found["enum:00600:0"].deleted and "enum:99999:0" not in found
    assert len(found) == 602
