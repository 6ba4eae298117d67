"""Chaos drills: the node killed mid-write, stalled, gone while the gateway restarts.

What must hold, whatever happens to the processes around it:

* a write the node acknowledged survives ``kill -9`` of the node, and the ledger passes
  SQLite's ``integrity_check`` after every kill;
* ``serve --nvs`` keeps answering its last good data, at once, while the node is stalled
  (SIGSTOP) or dead (SIGKILL), says how stale it is, and follows the node again when it is back;
* a gateway restarted while its node is down serves from its own index.

The processes are real (``enumer node``, ``enumer serve``); the helpers are the sync tests'.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import httpx
import pytest
from tests.nvs.test_sync import (
    PASSWORD,
    USER,
    Node,
    _node_on_copy,
    mirror_gateway,
    naptrs,
    publish,
    seeded_store,
    synced_ago,
    wait_served,
    wait_status,
)
from tests.support import Gateway, stop

from enumer.nvs.ledger import LEDGER_FILE

pytestmark = pytest.mark.xdist_group("chaos")
__all__ = ["seeded_store"]  # the sync tests' fixture, used here by name

WRITERS = 6
KILLS = 3


def _integrity(store: Path) -> str:
    with sqlite3.connect(store / LEDGER_FILE) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def _kill(node: Node, sig: int) -> None:
    assert node.process is not None
    os.killpg(node.process.pid, sig)


def _writer(
    node: Node, prefix: str, acknowledged: list[tuple[str, str]], halt: threading.Event
) -> None:
    """``name_new`` one name after another until the node stops answering; record every ack."""
    with httpx.Client(auth=(USER, PASSWORD), timeout=5) as client:
        serial = 0
        while not halt.is_set():
            name, value = f"chaos:{prefix}:{serial}", f"written {prefix} {serial}"
            try:
                reply = client.post(
                    f"http://127.0.0.1:{node.port}/",
                    json={"id": serial, "method": "name_new", "params": [name, value, 1]},
                )
                body = reply.json()
            except (httpx.HTTPError, ValueError):
                return  # the node is gone: this write was never acknowledged
            if body.get("error") is None:
                acknowledged.append((name, value))
            serial += 1


@pytest.fixture
def chaos_node(seeded_store: Path, tmp_path: Path) -> Iterator[Node]:
    yield from _node_on_copy(seeded_store, tmp_path)


def test_kill9_during_concurrent_writes_loses_no_acknowledged_write(chaos_node: Node) -> None:
    node = chaos_node
    acknowledged: list[tuple[str, str]] = []
    for round_ in range(KILLS):
        halt = threading.Event()
        writers = [
            threading.Thread(target=_writer, args=(node, f"{round_}-{i}", acknowledged, halt))
            for i in range(WRITERS)
        ]
        before = len(acknowledged)
        for thread in writers:
            thread.start()
        deadline = time.monotonic() + 10
        while len(acknowledged) < before + 40 and time.monotonic() < deadline:
            time.sleep(0.02)
        _kill(node, signal.SIGKILL)  # in the middle of the writes
        assert node.process is not None
        node.process.wait(10)
        node.process = None
        halt.set()
        for thread in writers:
            thread.join(10)
        assert len(acknowledged) >= before + 40, "the writers never got going"
        assert _integrity(node.store) == "ok"
        node.start()
    for name, value in acknowledged:
        assert node.rpc("name_show", name)["value"] == value, name
    assert _integrity(node.store) == "ok"


@pytest.fixture
def chaos_gateway(chaos_node: Node) -> Iterator[Gateway]:
    gateway = mirror_gateway(chaos_node, chaos_node.store.parent / "gateway")
    try:
        yield gateway
    finally:
        stop(gateway.process)


def _answer_time(gateway: Gateway) -> float:
    """Seconds one NAPTR query takes over UDP (the gateway must answer from memory)."""
    query = dns.message.make_query("53995390081.enum", "NAPTR")
    started = time.monotonic()
    reply = dns.query.udp(query, "127.0.0.1", port=gateway.port, timeout=2)
    took = time.monotonic() - started
    assert reply.answer, reply
    return took


def test_stalled_then_killed_node_changes_no_answer(
    chaos_node: Node, chaos_gateway: Gateway
) -> None:
    node, gateway = chaos_node, chaos_gateway
    before = naptrs(gateway, "18009359935")
    assert before
    # SIGSTOP: the node accepts connections but never answers.
    _kill(node, signal.SIGSTOP)
    try:
        stale = wait_status(gateway, "staleness while stalled", lambda t: synced_ago(t) >= 2)
        assert synced_ago(stale) >= 2
        worst = max(_answer_time(gateway) for _ in range(50))
        assert worst < 0.5, f"a query took {worst:.3f} s while the node was stalled"
        assert naptrs(gateway, "18009359935") == before
    finally:
        _kill(node, signal.SIGCONT)
    publish(node, "14155550171", "after-stall.example.org")
    wait_served(gateway, "14155550171", "after-stall.example.org")
    # SIGKILL: connections are refused; the failure shows, the answers stay.
    _kill(node, signal.SIGKILL)
    assert node.process is not None
    node.process.wait(10)
    node.process = None
    wait_status(gateway, "the failure in the status", lambda t: "error:" in t)
    assert naptrs(gateway, "18009359935") == before
    assert naptrs(gateway, "14155550171")
    node.start()
    publish(node, "14155550172", "after-kill.example.org")
    wait_served(gateway, "14155550172", "after-kill.example.org")
    wait_status(gateway, "status without error", lambda t: "error" not in t)


def test_gateway_restarted_while_the_node_is_down_serves_its_index(
    chaos_node: Node, chaos_gateway: Gateway
) -> None:
    node, gateway = chaos_node, chaos_gateway
    publish(node, "14155550181", "before-outage.example.org")
    wait_served(gateway, "14155550181", "before-outage.example.org")
    before = {digits: naptrs(gateway, digits) for digits in ("18009359935", "14155550181")}
    stop(gateway.process)
    _kill(node, signal.SIGKILL)
    assert node.process is not None
    node.process.wait(10)
    node.process = None
    restarted = mirror_gateway(node, gateway.store)
    try:
        assert {d: naptrs(restarted, d) for d in before} == before
        text = wait_status(restarted, "the node's failure", lambda t: "error:" in t)
        assert "error:" in text
        assert "Traceback" not in restarted.log.read_text()
        node.start()
        publish(node, "14155550182", "after-outage.example.org")
        wait_served(restarted, "14155550182", "after-outage.example.org")
    finally:
        stop(restarted.process)
