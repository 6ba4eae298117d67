"""Light gateways (SPEC 12) with real processes: ``enumer node`` and ``enumer serve --feed``
upstreams over real HTTP, ``enumer serve --upstream ...`` answering real UDP.

Three upstreams over three stores made from one seeded store: upstream 1 is
honest (a route change sealed with a new OSIG, a new revocation), upstream 2
rewrites an E2U line of the strictly signed record and names another owner for
the verifier, upstream 3 serves the older version of the record and hides the
revocation.  Then outages, and hostile upstreams served by small HTTP servers in
this process.  Every wait polls with a deadline; nothing asserts after a sleep.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.nvs.test_sync import Node, naptrs, run
from tests.support import Gateway, free_port, start_gateway, stop

from enumer import demo
from enumer.nvs.ledger import Ledger
from enumer.owner import sealed
from enumer.verifier import append_bound, revoke, sign_bound

STRICT = "15550002001"  # the demo's strictly signed record
STRICT_NAME = f"enum:{STRICT}:0"
SIG_ONLY = "18009359935"  # the demo's SIG=-only record
SECOND = "15550009001"  # a second strict record, revoked on upstream 1 only
SECOND_NAME = f"enum:{SECOND}:0"
E2U = "E2U+sip=100|10|!^.*$!sip:{}@pbx.example.com!"
WAIT = 15.0

pytestmark = pytest.mark.xdist_group("light")


def wait_for(what: str, check: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def hosts(gw: Gateway, digits: str) -> set[str] | None:
    """The SIP users of the regexps the gateway answers for ``digits`` (None: NXDOMAIN):
    the route name :func:`publish_strict` and :func:`reseal` write."""
    found = naptrs(gw, digits)
    return None if found is None else {n[4].split("sip:")[-1].split("@")[0] for n in found}


def status(gw: Gateway) -> str:
    import dns.message
    import dns.query

    query = dns.message.make_query("status.enumer", "TXT", "CH")
    answer = dns.query.tcp(query, "127.0.0.1", port=gw.port, timeout=3)
    return b"".join(answer.answer[0][0].strings).decode()


def publish_strict(store: Ledger, name: str, host: str) -> str:
    owner = store.get_new_address()
    value = sealed(store, name, E2U.format(host), owner)
    assert isinstance(value, str)
    store.name_new(name, value, 1, owner)
    append_bound(store, demo.DEMO_VERIFIER, name, sign_bound(store, demo.DEMO_VERIFIER, name))
    return owner


def reseal(store: Ledger, name: str, host: str, days: int = 1) -> None:
    """A route change by the owner: new E2U line, new OSIG (a later time), same VSIG."""
    record = store.show(name)
    lines = [ln for ln in record.value.splitlines() if not ln.startswith("E2U")]
    time.sleep(1.1)  # OSIG times are seconds: the new one must be later
    value = sealed(store, name, "\n".join([E2U.format(host), *lines]), record.address)
    assert isinstance(value, str)
    store.name_update(name, value, days, record.address)


def forge(store: Ledger, name: str, old: str, new: str) -> None:
    """What a lying relay serves: the record with an E2U line rewritten, lines kept."""
    record = store.show(name)
    store.put_records(
        [replace(record, value=record.value.replace(old, new), height=store.height() + 1)]
    )


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("light-base") / "store"
    result = run("--store", str(store), "--network", "regtest", "demo", "seed")
    assert result.returncode == 0, result.stderr
    with Ledger(store) as ledger:
        publish_strict(ledger, SECOND_NAME, "second")
    return store


def start_nodes(base: Path, where: Path, count: int) -> list[Node]:
    nodes = []
    for i in range(count):
        store = where / f"up{i + 1}"
        shutil.copytree(base, store)
        node = Node(store, free_port(), where / f"up{i + 1}.log")
        node.start()
        nodes.append(node)
    return nodes


def light(where: Path, urls: list[str], *extra: str) -> Gateway:
    args = [f"--upstream={u}" for u in urls]
    return start_gateway(
        where,
        *args,
        "--upstream-chain",
        "regtest",
        "--tollfree",
        "@enum:tollfree",
        "--poll",
        "0.3",
        "--upstream-timeout",
        "2",
        *extra,
    )


def verifier_address(store: Path) -> str:
    with Ledger(store) as ledger:
        return ledger.show(demo.DEMO_VERIFIER).address


@pytest.fixture
def three(base: Path, tmp_path: Path) -> Iterator[list[Node]]:
    nodes = start_nodes(base, tmp_path, 3)
    try:
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def test_three_upstreams_one_honest_one_rewriting_one_stale(
    three: list[Node], base: Path, tmp_path: Path
) -> None:
    honest, liar, stale = three
    pin = verifier_address(base)
    with Ledger(honest.store) as store:
        reseal(store, STRICT_NAME, "honest-v2")
        revoke(store, "demo", SECOND_NAME)
        v2 = store.show(STRICT_NAME).value
    with Ledger(liar.store) as store:
        store.put_records([replace(store.show(STRICT_NAME), value=v2, height=store.height() + 1)])
        forge(store, STRICT_NAME, "honest-v2", "evil")
        moved = store.get_new_address()  # the liar says another key owns the verifier
        ver = store.show(demo.DEMO_VERIFIER)
        store.put_records([replace(ver, address=moved, height=store.height() + 1)])
    gw = light(
        tmp_path / "light",
        [honest.url, liar.url, stale.url],
        "--trust",
        f"ver:demo@{pin}",
        "--quorum",
        "3",
    )
    try:
        # The honest strict record, although two upstreams serve something else.
        assert hosts(gw, STRICT) == {"honest-v2"}
        # The revocation that only upstream 1 shows is applied.
        assert hosts(gw, SECOND) is None
        # SIG=-only: all three agree on value and owner.
        assert hosts(gw, SIG_ONLY) is not None
        log = gw.log.read_text()
        assert f"owned by {moved}, not the pinned {pin}: ignored" in log
        assert "srl:demo" in log and "merged" in log
        text = status(gw)
        assert "quorum 3" in text and "1 height" in text
        assert "disagreed 0" in text  # upstream 1
        # Upstream 2 disagrees on the record, the verifier and the SRL record; upstream 3
        # on the record and the SRL record.  Counts of records, not of polls: stable.
        counts = re.findall(r"(\d) height \d+ tip \d+ \w+ \S+ ago disagreed (\d+)", text)
        assert dict(counts) == {"1": "0", "2": "3", "3": "2"}, text
        time.sleep(1)
        assert re.findall(r"disagreed (\d+)", status(gw)) == ["0", "3", "2"]
        # The honest upstream goes: the last good answer stays, the older version (upstream
        # 3) and the forgery (upstream 2) are still refused after many polls.
        honest.stop()
        wait_for("upstream 1 reported failing", lambda: "failing" in status(gw))
        for _ in range(5):
            assert hosts(gw, STRICT) == {"honest-v2"}
            time.sleep(0.3)
        # SIG=-only is served only while the quorum agrees: upstream 3 changes it.
        with Ledger(stale.store) as store:
            sig_record = store.show(f"enum:{SIG_ONLY}:0")
            store.put_records(
                [
                    replace(
                        sig_record,
                        value=sig_record.value.replace("E2U", "E2U+x", 1),
                        expires_at=sig_record.expires_at + 175,
                        height=store.height() + 1,
                    )
                ]
            )
        wait_for("quorum lost", lambda: hosts(gw, SIG_ONLY) is None)
        with Ledger(stale.store) as store:
            store.put_records(
                [
                    replace(
                        sig_record,
                        expires_at=sig_record.expires_at + 350,
                        height=store.height() + 1,
                    )
                ]
            )
        # Upstream 1 is still down: its last view counts, and it agrees again.
        wait_for("quorum back", lambda: hosts(gw, SIG_ONLY) is not None)
    finally:
        stop(gw.process)
    assert "Traceback" not in gw.log.read_text()


def test_a_light_gateway_answers_as_a_strict_full_gateway(base: Path, tmp_path: Path) -> None:
    """Every demo number, through a feed of a full gateway, as the full gateway answers."""
    full, feed = full_gateway(base, tmp_path, "--signatures", "strict")
    try:
        gw = light(
            tmp_path / "light",
            [feed],
            "--trust",
            "ver:demo",
            "--signatures",
            "strict",
        )
        try:
            numbers = [
                STRICT,
                SECOND,
                SIG_ONLY,
                "12025550100",
                "17771234567",
                "15550001234",
                "15550002002",
                "15550002003",
                "15551234567",
                "15550001111",
                "18005551234",
                "18885550000",
                "19995550000",
            ]
            for digits in numbers:
                assert naptrs(gw, digits) == naptrs(full, digits), digits
            assert naptrs(gw, STRICT) is not None
        finally:
            stop(gw.process)
    finally:
        stop(full.process)


def test_the_feed_is_read_only_bounded_and_shaped_like_the_node(base: Path, tmp_path: Path) -> None:
    store = tmp_path / "full"
    shutil.copytree(base, store)
    port = free_port()
    full = start_gateway(
        store,
        "--trust",
        "ver:demo",
        "--feed",
        f"127.0.0.1:{port}",
        "--feed-user",
        "pbx",
        "--feed-password",
        "s3cret",
        "--feed-rate",
        "5",
    )
    url = f"http://127.0.0.1:{port}/"

    def call(method: str, *params: Any, auth: tuple[str, str] = ("pbx", "s3cret")) -> Any:
        body = {"jsonrpc": "1.0", "id": "t", "method": method, "params": list(params)}
        return httpx.post(url, json=body, auth=auth, timeout=10)

    try:
        assert call("getblockcount", auth=("pbx", "wrong")).status_code == 401
        shown = call("name_show", STRICT_NAME).json()["result"]
        assert list(shown) == [
            "name",
            "value",
            "txid",
            "address",
            "vout",
            "expires_in",
            "expires_at",
            "time",
        ]
        refused = call("name_new", "enum:1:0", "x", 1)
        assert refused.status_code == 404
        assert refused.json()["error"]["code"] == -32601 and refused.json()["result"] is None
        missing = call("name_show", "test:not-enum")
        assert missing.status_code == 500
        assert missing.json()["error"] == {"code": -4, "message": "failed to read from name DB"}
        page1 = call("name_filter", "^enum:", 0, 0, 3).json()["result"]
        page2 = call("name_filter", "^enum:", 0, 3, 3).json()["result"]
        assert len(page1) == 3 and len(page2) == 3
        assert not {r["name"] for r in page1} & {r["name"] for r in page2}
        assert set(page1[0]) >= {"name", "value", "registered_at", "expires_in"}
        info = call("getblockchaininfo").json()["result"]
        assert info["chain"] == "regtest" and isinstance(info["mediantime"], int)
        big = httpx.post(url, content=b"[" + b"1," * 200_000 + b"1]", auth=("pbx", "s3cret"))
        assert big.status_code == 413
        statuses = [call("getblockcount").status_code for _ in range(30)]
        assert 429 in statuses and statuses[0] == 200
    finally:
        stop(full.process)


def test_outages_one_then_all_last_good_kept_and_recovery(base: Path, tmp_path: Path) -> None:
    nodes = start_nodes(base, tmp_path, 3)
    gw = light(tmp_path / "light", [n.url for n in nodes], "--trust", "ver:demo")
    try:
        before = {d: naptrs(gw, d) for d in (STRICT, SIG_ONLY, "12025550100")}
        assert all(v is not None for v in before.values())
        nodes[2].stop()
        wait_for("upstream 3 failing", lambda: "3 height" in status(gw) and "failing" in status(gw))
        assert {d: naptrs(gw, d) for d in before} == before  # SIG=-only too: its last view counts
        for node in nodes[:2]:
            node.stop()
        wait_for("no upstream", lambda: "no upstream answered" in gw.log.read_text())
        assert {d: naptrs(gw, d) for d in before} == before
        assert "error: no upstream answered" in status(gw)
        for node in nodes:
            node.start()
        wait_for("recovery", lambda: "updates work again" in gw.log.read_text())
        wait_for("status clean", lambda: "failing" not in status(gw) and "error" not in status(gw))
        with Ledger(nodes[0].store) as store:
            reseal(store, STRICT_NAME, "after-recovery")
        wait_for("the change served", lambda: hosts(gw, STRICT) == {"after-recovery"})
    finally:
        stop(gw.process)
        for node in nodes:
            node.stop()
    log = gw.log.read_text()
    assert "upstream 3" in log and "keeping its last view" in log
    assert "Traceback" not in log


def test_restart_serves_from_the_snapshot_at_once(base: Path, tmp_path: Path) -> None:
    nodes = start_nodes(base, tmp_path, 1)
    where = tmp_path / "light"
    try:
        gw = light(where, [nodes[0].url], "--trust", "ver:demo")
        answer = naptrs(gw, STRICT)
        stop(gw.process)
        nodes[0].stop()  # no upstream at all: the restart serves what it had
        gw = light(where, [nodes[0].url], "--trust", "ver:demo")
        try:
            assert naptrs(gw, STRICT) == answer and answer is not None
            assert "first sync" not in gw.log.read_text()
        finally:
            stop(gw.process)
    finally:
        nodes[0].stop()


# -- hostile upstreams --------------------------------------------------------------------


class Hostile(ThreadingHTTPServer):
    """An upstream that misbehaves in one way (``mode``) and answers the rest as a feed."""

    daemon_threads = True

    def __init__(self, mode: str, honest: Node) -> None:
        self.mode = mode
        self.honest = honest
        super().__init__(("127.0.0.1", 0), _HostileHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def relay(self, body: bytes) -> bytes:
        reply = httpx.post(
            f"http://127.0.0.1:{self.honest.port}/",
            content=body,
            auth=("enumer-test", "node-secret-4711"),
            timeout=10,
        )
        return reply.content


class _HostileHandler(BaseHTTPRequestHandler):
    server: Hostile

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        request = json.loads(body)
        method = request.get("method") if isinstance(request, dict) else "batch"
        mode = self.server.mode
        if mode == "malformed":
            out = b'{"result": [1, 2, "unterminated'
        elif mode == "huge":
            out = b'{"result":"' + b"A" * 3_000_000 + b'","error":null,"id":0}'
        elif mode == "slow":
            time.sleep(30)
            out = self.server.relay(body)
        elif mode == "loop" and method == "name_filter":
            rows = [
                {"name": f"enum:1555{i:07d}:0", "value": "x", "registered_at": 1, "expires_in": 9}
                for i in range(10_000)
            ]
            out = json.dumps({"result": rows, "error": None, "id": request["id"]}).encode()
        else:
            out = self.server.relay(body)
        reply(self, 200, out, {"Content-Type": "application/json"})


def reply(
    handler: BaseHTTPRequestHandler, status: int, out: bytes, headers: dict[str, str]
) -> None:
    """Send one HTTP answer from a test upstream (a client that went away is ignored)."""
    try:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(out)))
        handler.end_headers()
        handler.wfile.write(out)
    except OSError:
        pass


def test_bad_upstreams_are_reported_and_nothing_they_say_is_accepted(
    base: Path, tmp_path: Path
) -> None:
    nodes = start_nodes(base, tmp_path, 1)
    honest = nodes[0]
    mainnet_store = tmp_path / "mainnet"
    assert run("--store", str(mainnet_store), "demo", "seed").returncode == 0
    other_chain = Node(mainnet_store, free_port(), tmp_path / "main.log", network="mainnet")
    other_chain.start()
    hostile = {m: Hostile(m, honest) for m in ("malformed", "huge", "slow", "loop")}
    urls = [honest.url, *(h.url for h in hostile.values()), other_chain.url]
    gw = light(
        tmp_path / "light",
        urls,
        "--trust",
        "ver:demo",
        "--quorum",
        "1",
        "--upstream-max-bytes",
        "1000000",
        "--upstream-timeout",
        "1",
    )
    try:
        assert hosts(gw, STRICT) is not None
        log = gw.log.read_text()
        assert "upstream 2" in log and "not JSON" in log
        assert "upstream 3" in log and "over the 1000000 allowed" in log
        assert "upstream 4" in log and "did not answer" in log and "within 1 s" in log
        assert "upstream 5" in log and "looping pages" in log
        assert "upstream 6" in log and "on chain 'main', this gateway on 'regtest'" in log
        # Nothing of the looping feed's names was accepted: 1555xxxxxxx is not served.
        assert naptrs(gw, "15550000001") is None
        # The honest upstream keeps working beside them: a change is served.
        with Ledger(honest.store) as store:
            reseal(store, STRICT_NAME, "despite-hostiles")
        wait_for("the change", lambda: hosts(gw, STRICT) == {"despite-hostiles"}, 30)
    finally:
        stop(gw.process)
        honest.stop()
        other_chain.stop()
        for h in hostile.values():
            h.shutdown()
    assert "Traceback" not in gw.log.read_text()


def test_lookup_upstream_says_where_a_record_was_served_from(three: list[Node], base: Path) -> None:
    for node in three[:2]:
        with Ledger(node.store) as store:
            store.generate(40)
    result = run(
        "lookup",
        STRICT,
        "--trust",
        f"ver:demo@{verifier_address(base)}",
        "--upstream-chain",
        "regtest",
        *(f"--upstream={n.url}" for n in three),
    )
    assert result.returncode == 0, result.stderr
    assert (
        f"{STRICT_NAME}: served: strictly valid, from 3 of 3 upstreams; "
        "upstream 3 is 40 blocks behind"
    ) in result.stdout
    assert "SERVED  " + STRICT_NAME in result.stdout
    wrong = run("lookup", STRICT, "--upstream=http://127.0.0.1:9/", "--quorum", "2")
    assert wrong.returncode == 1 and wrong.stderr.startswith("error: --quorum 2")


def test_verifier_show_prints_the_pin(base: Path) -> None:
    result = run("--store", str(base), "verifier", "show", "demo")
    assert result.returncode == 0, result.stderr
    address = verifier_address(base)
    assert f"ver:demo owner {address}" in result.stdout
    assert f"pin: --trust 'ver:demo@{address}'" in result.stdout
    missing = run("--store", str(base), "verifier", "show", "nobody")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: ver:nobody does not exist or is not active"


def test_feed_pages_prefix_regexps_without_the_regex_engine() -> None:
    from enumer.dns.feed import literal_prefix
    from enumer.nvs.rpc import regex_escape

    assert literal_prefix("^enum:") == "enum:"
    assert literal_prefix("^" + regex_escape("srl:demo-")) == "srl:demo-"
    assert literal_prefix("^srl:x\\.y") == "srl:x.y"
    for regexp in ("", "enum:", "^enum:1.*", "^enum:(1|2)", "^a$"):
        assert literal_prefix(regexp) is None, regexp


# -- change lists, full listings and rate limits ------------------------------------------


def metric(port: int, name: str, upstream: int = 1) -> float | None:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    found = re.search(rf'^enumer_{name}\{{upstream="{upstream}"\}} (\S+)$', text, re.MULTILINE)
    return None if found is None else float(found.group(1))


def full_gateway(base: Path, where: Path, *extra: str) -> tuple[Gateway, str]:
    """A full gateway on a copy of ``base`` with a feed: (it, the feed's URL)."""
    store = where / "full"
    shutil.copytree(base, store)
    port = free_port()
    full = start_gateway(
        store,
        "--trust",
        "ver:demo",
        "--tollfree",
        "@enum:tollfree",
        "--feed",
        f"127.0.0.1:{port}",
        *extra,
    )
    return full, f"http://127.0.0.1:{port}/"


def test_a_feed_is_polled_for_its_changes_and_listed_in_full_only_now_and_then(
    base: Path, tmp_path: Path
) -> None:
    full, feed = full_gateway(base, tmp_path)
    port = free_port()
    try:
        gw = light(
            tmp_path / "light",
            [feed],
            "--trust",
            "ver:demo",
            "--metrics",
            f"127.0.0.1:{port}",
            "--upstream-relist",
            "6",
        )
    except BaseException:
        stop(full.process)
        raise
    try:
        assert hosts(gw, STRICT) is not None and hosts(gw, SECOND) is not None
        listings = metric(port, "upstream_full_listings")
        assert listings == 1
        # A route change, a new strict record and a deletion, served from the change list.
        with Ledger(full.store) as store:
            reseal(store, STRICT_NAME, "changed-1")
            publish_strict(store, "enum:15550003001:0", "brand-new")
            store.name_delete(SECOND_NAME)
        wait_for(
            "the three changes",
            lambda: (
                hosts(gw, STRICT) == {"changed-1"}
                and hosts(gw, "15550003001") == {"brand-new"}
                and hosts(gw, SECOND) is None
            ),
        )
        after = metric(port, "upstream_full_listings")
        assert after is not None
        # A change the feed leaves out of its change list (written under an old stamp)
        # arrives with the next periodic full listing, and only then.  Right after a
        # full listing, so that the next one is about 6 s away.
        wait_for("a full listing", lambda: metric(port, "upstream_full_listings") == after + 1)
        with Ledger(full.store) as store:
            record = store.show(STRICT_NAME)
            rest = [ln for ln in record.value.splitlines() if not ln.startswith("E2U")]
            time.sleep(1.1)  # a later OSIG than the one served
            directives = "\n".join([E2U.format("omitted"), *rest])
            value = sealed(store, STRICT_NAME, directives, record.address)
            assert isinstance(value, str)
            store.put_records([replace(record, value=value, height=1)])
        old_seen = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            served = hosts(gw, STRICT)
            count = metric(port, "upstream_full_listings")
            if served == {"omitted"}:
                assert count is not None and count >= after + 2  # a full listing brought it
                break
            assert served == {"changed-1"}
            old_seen += 1
            time.sleep(0.2)
        else:
            raise AssertionError("the omitted change was never served")
        assert old_seen >= 5  # polls went by that fetched only the change list
        assert "listing it in full: the periodic full listing (every 6 s)" in gw.log.read_text()
    finally:
        stop(gw.process)
        stop(full.process)
    assert "Traceback" not in gw.log.read_text()


def test_an_update_adding_no_days_is_seen_from_a_node(base: Path, tmp_path: Path) -> None:
    """A node has no change list and lists the same registration and expiry after an
    update that adds no rental days: the start of the value tells it."""
    nodes = start_nodes(base, tmp_path, 1)
    gw = light(tmp_path / "light", [nodes[0].url], "--trust", "ver:demo")
    try:
        assert hosts(gw, STRICT) is not None
        with Ledger(nodes[0].store) as store:
            before = store.show(STRICT_NAME).expires_at
            reseal(store, STRICT_NAME, "no-days", days=0)
            assert store.show(STRICT_NAME).expires_at == before
        wait_for("the update", lambda: hosts(gw, STRICT) == {"no-days"})
    finally:
        stop(gw.process)
        nodes[0].stop()


def test_the_feed_change_list_is_shaped_and_bounded(base: Path, tmp_path: Path) -> None:
    full, feed = full_gateway(base, tmp_path)
    nodes = start_nodes(base, tmp_path, 1)

    def call(url: str, *params: Any) -> httpx.Response:
        body = {"jsonrpc": "1.0", "id": "t", "method": "name_changes", "params": list(params)}
        return httpx.post(url, json=body, timeout=10)

    try:
        everything = call(feed, 0).json()["result"]
        assert set(everything) == {"store", "stamp", "blocks", "names"}
        names = {r["name"] for r in everything["names"]}
        assert STRICT_NAME in names and demo.DEMO_VERIFIER in names
        assert not any(n.startswith("test:") for n in names)  # only what the feed shows
        assert set(everything["names"][0]) >= {"name", "registered_at", "expires_in"}
        latest = call(feed, 2**31 - 1).json()["result"]
        assert latest["names"] == [] and latest["store"] == everything["store"]
        with Ledger(full.store) as store:
            store.name_delete(SECOND_NAME)
        since = call(feed, latest["stamp"]).json()["result"]
        assert {"name": SECOND_NAME, "deleted": True}.items() <= next(
            r for r in since["names"] if r["name"] == SECOND_NAME
        ).items()
        assert since["stamp"] >= latest["stamp"]
        negative = call(feed, -1)
        assert negative.status_code == 500 and negative.json()["error"]["code"] == -8
        # maxage keeps names by the height of their registration, on the node as on the
        # feed: a new name shows in it, an update (a reseal) does not.  That is why a
        # change list is needed at all.
        fresh = "enum:15550004001:0"
        for where in (full.store, nodes[0].store):
            with Ledger(where) as store:
                store.name_new(fresh, "E2U+sip=100|10|!^.*$!sip:fresh@example.com!", 1)
                reseal(store, STRICT_NAME, "updated")
        for url in (feed, nodes[0].url):
            body = {"jsonrpc": "1.0", "id": "t", "method": "name_filter", "params": ["^enum:", 2]}
            listed = httpx.post(url, json=body, timeout=10).json()["result"]
            assert [r["name"] for r in listed] == [fresh], url
        # An Emercoin node (here enumer node) has no such call: a light gateway lists it.
        missing = httpx.post(
            nodes[0].url,
            json={"jsonrpc": "1.0", "id": "t", "method": "name_changes", "params": [0]},
            timeout=10,
        )
        assert missing.status_code == 404 and missing.json()["error"]["code"] == -32601
    finally:
        stop(full.process)
        nodes[0].stop()


class Scripted(ThreadingHTTPServer):
    """A relay to a feed that, once ``armed``, lies in one way (``mode``): ``tipdown``
    reports its tip 5 blocks lower, ``store`` names another store in its change list,
    ``wait`` answers HTTP 429 with ``Retry-After: 3600``.  ``hits``: requests since armed."""

    daemon_threads = True

    def __init__(self, mode: str, feed: str) -> None:
        self.mode = mode
        self.feed = feed
        self.armed = False
        self.hits = 0
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _ScriptedHandler(BaseHTTPRequestHandler):
    server: Scripted

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        server = self.server
        headers = {"Content-Type": "application/json"}
        if server.armed:
            server.hits += 1
        if server.armed and server.mode == "wait":
            status, out = 429, b"slow down"
            headers = {"Content-Type": "text/plain", "Retry-After": "3600"}
        else:
            relayed = httpx.post(server.feed, content=body, timeout=10)
            status, out = relayed.status_code, relayed.content
            request = json.loads(body)
            method = request.get("method") if isinstance(request, dict) else None
            if server.armed and status == 200 and method is not None:
                answer = json.loads(out)
                if server.mode == "tipdown" and method == "getblockchaininfo":
                    answer["result"]["blocks"] -= 5
                if server.mode == "store" and method == "name_changes":
                    answer["result"]["store"] = "another-store"
                out = json.dumps(answer).encode()
        reply(self, status, out, headers)


def test_a_tip_going_down_or_another_store_is_listed_in_full_and_429_is_honoured(
    base: Path, tmp_path: Path
) -> None:
    full, feed = full_gateway(base, tmp_path)
    relays = [Scripted(mode, feed) for mode in ("tipdown", "store", "wait")]
    port = free_port()
    try:
        gw = light(
            tmp_path / "light",
            [r.url for r in relays],
            "--trust",
            "ver:demo",
            "--quorum",
            "1",
            "--metrics",
            f"127.0.0.1:{port}",
            "--upstream-relist",
            "4",
        )
    except BaseException:
        stop(full.process)
        for relay in relays:
            relay.shutdown()
        raise
    try:
        assert hosts(gw, STRICT) is not None
        assert [metric(port, "upstream_full_listings", n) for n in (1, 2, 3)] == [1, 1, 1]
        for relay in relays:
            relay.armed = True
        # At once they ask for a full listing, sooner than 4 s after the first one: it
        # waits (an upstream flipping its tip or store must not make every poll one).
        wait_for("the wait", lambda: "asks to be listed in full again" in gw.log.read_text())
        assert [metric(port, "upstream_full_listings", n) for n in (1, 2)] == [1, 1]
        wait_for(
            "full listings of upstreams 1 and 2",
            lambda: all(metric(port, "upstream_full_listings", n) == 2 for n in (1, 2)),
        )
        log = gw.log.read_text()
        assert "upstream 1" in log and "again (its tip went down from" in log
        assert "again (its store is another one ('another-store'" in log
        # Retry-After 3600 s is longer than a poll waits: upstream 3 is not asked again
        # (for at most 900 s), instead of at every poll.
        wait_for("the 429 reported", lambda: "Retry-After 3600 s" in gw.log.read_text())
        asked = relays[2].hits
        time.sleep(2)  # about seven polls
        assert relays[2].hits == asked <= 2
        assert metric(port, "upstream_failing", 3) == 1
        # The other two keep serving changes, once each listing settled.
        with Ledger(full.store) as store:
            reseal(store, STRICT_NAME, "after-lies")
        wait_for("the change", lambda: hosts(gw, STRICT) == {"after-lies"})
    finally:
        stop(gw.process)
        stop(full.process)
        for relay in relays:
            relay.shutdown()
    assert "Traceback" not in gw.log.read_text()


def test_a_rate_limited_feed_is_waited_for_not_given_up(base: Path, tmp_path: Path) -> None:
    """A feed allowing 2 requests a second: the first sync takes more, and each HTTP 429
    (Retry-After: 1) is waited out and the request sent again, so the first sync
    completes and changes keep arriving.  (Given up at the first 429, the first sync
    fails and the light gateway does not start.)"""
    full, feed = full_gateway(base, tmp_path, "--feed-rate", "2")
    try:
        gw = light(tmp_path / "light", [feed], "--trust", "ver:demo")
        try:
            assert hosts(gw, STRICT) is not None
            with Ledger(full.store) as store:
                reseal(store, STRICT_NAME, "rate-limited")
            wait_for("the change", lambda: hosts(gw, STRICT) == {"rate-limited"})
            assert "failing" not in status(gw)
        finally:
            stop(gw.process)
    finally:
        stop(full.process)
    assert "Traceback" not in gw.log.read_text()


def test_an_upstream_taken_out_of_the_configuration_no_longer_counts(
    base: Path, tmp_path: Path
) -> None:
    """Quorum 2 of A and B accepts the SIG=-only record; restarted with A and C (which
    has no such record), B's view is dropped and what it had a say in is judged again:
    the record is no longer served, though A's view of it never changed."""
    a, b, c = start_nodes(base, tmp_path, 3)
    with Ledger(c.store) as store:
        store.name_delete(f"enum:{SIG_ONLY}:0")
    where = tmp_path / "light"
    try:
        gw = light(where, [a.url, b.url], "--trust", "ver:demo")
        try:
            assert naptrs(gw, SIG_ONLY) is not None
        finally:
            stop(gw.process)
        gw = light(where, [a.url, c.url], "--trust", "ver:demo")
        try:
            wait_for("the record judged again", lambda: naptrs(gw, SIG_ONLY) is None)
            assert naptrs(gw, STRICT) is not None  # strictly valid: one upstream suffices
        finally:
            stop(gw.process)
    finally:
        for node in (a, b, c):
            node.stop()
    log = gw.log.read_text()
    assert "dropped the views of 1 upstream(s) no longer configured" in log
    assert "Traceback" not in log
