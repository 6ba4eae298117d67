"""The JSON-RPC client and NodeStore, against ``enumer node`` and small fake nodes over HTTP.

No mocks: every test talks HTTP on loopback, to the real server of
:mod:`enumer.nvs.node` or to a tiny HTTP server that answers like a node in a
state ours never reaches (warming up, downloading blocks, behind a proxy).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from enumer import crypto
from enumer.emercoin import BLOCKS_PER_DAY
from enumer.nvs import NameReader, NameStore, NvsError, get_active
from enumer.nvs.ledger import Ledger
from enumer.nvs.node import NodeServer, serve_node
from enumer.nvs.rpc import (
    MethodNotFoundError,
    NodeAuthError,
    NodeConnectionError,
    NodeDownloadingError,
    NodeProtocolError,
    NodeStore,
    NodeTimeoutError,
    NodeWarmingUpError,
    RpcClient,
    RpcConfig,
    RpcConfigError,
    RpcError,
    open_node_store,
    regex_escape,
    retry_after_seconds,
)

PASSWORD = "hunter2-very-secret"
FOREIGN = "mrtBxwpW2PV9FxhrC29Tpzo7zyjLQw4pqD"  # valid regtest address, key in no wallet
A_WIF = "cQN1Taa5fLzUatAmrnvm1sLDE8wFuPD2yaVLjLPpY11RNJkJt49n"  # regtest-only (reference A)
A = "mqCwY8H123ACyNaemLxyWZuCK7fDzqg3Z6"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NodeServer]:
    srv, _ = serve_node(tmp_path / "store", "127.0.0.1", 0, "alice", PASSWORD, network="regtest")
    try:
        yield srv
    finally:
        srv.close()


def url_of(server: NodeServer, password: str = PASSWORD) -> str:
    return f"http://alice:{password}@127.0.0.1:{server.port}/"


@pytest.fixture
def client(server: NodeServer) -> Iterator[RpcClient]:
    with RpcClient(RpcConfig.from_url(url_of(server)), timeout=10) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- configuration ---------------------------------------------------------------------------


def test_config_from_url() -> None:
    cfg = RpcConfig.from_url("http://u%40x:p%3Aa%2Fss@10.0.0.5:7000/wallet/my%20wallet")
    assert (cfg.host, cfg.port, cfg.user, cfg.wallet) == ("10.0.0.5", 7000, "u@x", "my wallet")
    assert cfg.url == "http://10.0.0.5:7000/wallet/my%20wallet"
    assert cfg.authorization() == "Basic " + base64.b64encode(b"u@x:p:a/ss").decode()
    cfg = RpcConfig.from_url("http://127.0.0.1/")
    assert (cfg.port, cfg.wallet, cfg.path, cfg.authorization()) == (6662, None, "/", None)
    cfg = RpcConfig.from_url("http://[::1]:6662/wallet/", cookie_file="/x/.cookie")
    assert (cfg.host, cfg.endpoint, cfg.wallet, cfg.uses_cookie) == ("::1", "[::1]:6662", "", True)
    for bad in ("ftp://u:pw@h/", "http://u:pw@h:99999/", "http://u:pw@h/rest", "nonsense"):
        with pytest.raises(RpcConfigError) as exc:
            RpcConfig.from_url(bad.replace("pw", PASSWORD))
        assert PASSWORD not in str(exc.value)


def test_config_from_conf(tmp_path: Path) -> None:
    conf = tmp_path / "emercoin.conf"
    conf.write_text("rpcuser=bob\nrpcpassword=pw1\nrpcport=7001\nrpcconnect=10.1.1.1:7002\n")
    cfg = RpcConfig.from_conf(conf)
    assert (cfg.host, cfg.port, cfg.user, cfg.chain, cfg.uses_cookie) == (
        "10.1.1.1",
        7001,
        "bob",
        "main",
        False,
    )
    # cookie auth: <datadir>/.cookie on mainnet, testnet3/ and regtest/ otherwise
    conf.write_text("server=1\n")
    cfg = RpcConfig.from_conf(conf)
    assert (cfg.host, cfg.port, cfg.cookie_file) == ("127.0.0.1", 6662, tmp_path / ".cookie")
    conf.write_text("testnet=1\nrpcport=9999\n")  # top-level rpcport is mainnet's only
    cfg = RpcConfig.from_conf(conf)
    assert (cfg.chain, cfg.port, cfg.cookie_file) == (
        "test",
        6662,
        tmp_path / "testnet3" / ".cookie",
    )
    conf.write_text("regtest=1\ndatadir=/data/emc\n[regtest]\nrpcport=7003\n[test]\nrpcport=1\n")
    cfg = RpcConfig.from_conf(conf)
    assert (cfg.chain, cfg.port, cfg.cookie_file) == (
        "regtest",
        7003,
        Path("/data/emc/regtest/.cookie"),
    )
    cfg = RpcConfig.from_conf(conf, network="testnet")  # the caller knows better
    assert (cfg.chain, cfg.port) == ("test", 1)
    conf.write_text(
        "chain=regtest\nrpccookiefile=auth/c\nrpcconnect=[::1]\nrpcclienttimeout=5\n"
        "rpcuser=first\nrpcuser=second\n"
    )
    cfg = RpcConfig.from_conf(conf)
    assert (cfg.cookie_file, cfg.host, cfg.timeout) == (
        tmp_path / "regtest" / "auth" / "c",
        "::1",
        5.0,
    )
    conf.write_text("rpcpassword=x\nrpcuser=first\nrpcuser=second\n")
    assert RpcConfig.from_conf(conf).user == "first"  # the first of a repeated key counts
    conf.write_text("testnet=1\nregtest=1\n")
    with pytest.raises(RpcConfigError, match="different chains"):
        RpcConfig.from_conf(conf)
    with pytest.raises(RpcConfigError, match="cannot read"):
        RpcConfig.from_conf(tmp_path / "missing.conf")


def test_config_from_spec(tmp_path: Path) -> None:
    assert RpcConfig.from_spec("http://u:p@h:1/").endpoint == "h:1"
    assert RpcConfig.from_spec(str(tmp_path)).cookie_file == tmp_path / ".cookie"
    assert (
        RpcConfig.from_spec(str(tmp_path), "regtest").cookie_file
        == tmp_path / "regtest" / ".cookie"
    )
    (tmp_path / "emercoin.conf").write_text("rpcport=1234\nrpcpassword=x\n")
    assert RpcConfig.from_spec(str(tmp_path)).port == 1234
    assert RpcConfig.from_spec(str(tmp_path / "emercoin.conf")).port == 1234
    with pytest.raises(RpcConfigError, match="neither"):
        RpcConfig.from_spec(str(tmp_path / "nothing-here"))


def test_regex_escape_is_literal_for_the_server() -> None:
    assert regex_escape("enum:1.2+3") == "enum:1\\.2\\+3"
    assert re.fullmatch(regex_escape("a.b*(c)-d e#"), "a.b*(c)-d e#")


# -- the client against enumer node ------------------------------------------------------------


def test_typed_methods(client: RpcClient, server: NodeServer) -> None:
    tip = client.getblockcount()
    assert client.getblockchaininfo()["chain"] == "regtest"
    address = client.getnewaddress()
    legacy = client.getnewaddress("", "legacy")
    assert address.startswith("emrt1q") and legacy[0] in "mn"
    txid = client.name_new("enum:18005550001:0", "E2U+sip=100|10|!^.*$!sip:a@b!", 1, address)
    shown = client.name_show("enum:18005550001:0")
    assert (shown["txid"], shown["address"], shown["expires_at"]) == (
        txid,
        address,
        tip + 1 + BLOCKS_PER_DAY,
    )
    assert (
        client.name_show("enum:18005550001:0", "hex")["value"]
        == b"E2U+sip=100|10|!^.*$!sip:a@b!".hex()
    )
    client.name_update("enum:18005550001:0", "6e6577", 2, address, "hex")
    assert client.name_show("enum:18005550001:0")["value"] == "new"
    history = client.name_history("enum:18005550001:0")
    assert [h["operation"] for h in history] == ["name_new", "name_update"]
    assert client.name_history("enum:18005550001:0", True, "base64")[-1]["value"] == "bmV3"
    assert [e["name"] for e in client.name_filter("^enum:")] == ["enum:18005550001:0"]
    assert client.name_filter("^enum:", stat=True) == {"blocks": tip + 2, "count": 0}
    assert client.name_filter("", maxage=1, maxvaluelen=1) == []
    assert client.name_filter("", maxage=3, maxvaluelen=1)[0]["value"].startswith("n\n...")
    assert client.name_scan()[0]["name"] == "enum:18005550001:0"
    assert client.name_scan("", 1, 2, "hex")[0]["value"].startswith("6e\n")
    assert [e["name"] for e in client.name_list()] == ["enum:18005550001:0"]
    assert client.name_list("enum:18005550001:0", "hex")[0]["value"] == "6e6577"
    assert client.name_mempool() == [] and client.name_mempool("hex") == []
    signature = client.signmessage(address, "enum:18005550001:0")
    assert client.verifymessage(address, signature, "enum:18005550001:0") is True
    assert client.verifymessage(legacy, signature, "enum:18005550001:0") is False
    assert client.validateaddress(address)["ismine"] is True
    assert client.getaddressinfo(legacy)["iscompressed"] is True
    assert len(client.generatetoaddress(2, address)) == 2
    assert (
        client.name_delete("enum:18005550001:0") == client.name_show("enum:18005550001:0")["txid"]
    )
    assert client.call("getblockcount") == tip + 5


def test_node_errors_are_rpc_errors_with_code_and_message(client: RpcClient) -> None:
    with pytest.raises(RpcError) as exc:
        client.name_show("enum:10000000000:0")
    assert (exc.value.code, exc.value.message) == (-4, "failed to read from name DB")
    assert isinstance(exc.value, NvsError) and str(exc.value) == "failed to read from name DB"
    with pytest.raises(RpcError) as exc:
        client.name_new("test:zero", "x", 0)
    assert (exc.value.code, exc.value.message) == (-32603, "rental days must be greater than 0.\n")
    assert str(exc.value) == "rental days must be greater than 0."
    with pytest.raises(RpcError) as exc:
        client.verifymessage(A, "not base64!!", "x")
    assert (exc.value.code, exc.value.message) == (-5, "Malformed base64 encoding")
    with pytest.raises(RpcError) as exc:
        client.call("name_show")
    assert exc.value.code == -1 and exc.value.message.startswith("name_show <name>")
    with pytest.raises(MethodNotFoundError) as exc:
        client.call("name_updatemany", [])
    assert exc.value.code == -32601 and exc.value.message == "Method not found"
    assert "name_updatemany" in str(exc.value)


def test_batch(client: RpcClient) -> None:
    results = client.batch(
        [("getblockcount", []), ("name_show", ["missing"]), ("getblockchaininfo", [])]
    )
    assert isinstance(results[0], int)
    assert isinstance(results[1], RpcError) and results[1].code == -4
    assert results[2]["chain"] == "regtest"
    assert client.batch([]) == []


# -- transport failures --------------------------------------------------------------------------


def test_connection_refused_is_one_clear_line() -> None:
    port = free_port()
    config = RpcConfig.from_url(f"http://u:{PASSWORD}@127.0.0.1:{port}/")
    with RpcClient(config) as client, pytest.raises(NodeConnectionError) as exc:
        client.getblockcount()
    assert str(exc.value) == (
        f"cannot connect to the Emercoin node at 127.0.0.1:{port}: "
        "connection refused - is emercoind running with -server?"
    )
    assert isinstance(exc.value, NvsError) and exc.value.__cause__ is None


def test_a_node_that_never_answers_times_out() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    port = listener.getsockname()[1]
    try:
        config = RpcConfig.from_url(f"http://u:{PASSWORD}@127.0.0.1:{port}/")
        with RpcClient(config, timeout=0.5) as client, pytest.raises(NodeTimeoutError) as exc:
            client.name_show("x")
        assert str(exc.value) == (
            f"the Emercoin node at 127.0.0.1:{port} did not answer name_show within 0.5 s"
        )
    finally:
        listener.close()
        for s in held:
            s.close()


def test_bad_password_is_a_clear_401(server: NodeServer) -> None:
    config = RpcConfig.from_url(url_of(server, "wrong-" + PASSWORD))
    with RpcClient(config) as client, pytest.raises(NodeAuthError) as exc:
        client.getblockcount()
    assert str(exc.value).startswith(
        "the node refused the RPC credentials (check rpcuser/rpcpassword or the .cookie file)"
    )


def test_missing_cookie_file_is_a_clear_error(tmp_path: Path) -> None:
    config = RpcConfig("127.0.0.1", free_port(), cookie_file=tmp_path / ".cookie")
    with RpcClient(config) as client, pytest.raises(RpcConfigError) as exc:
        client.getblockcount()
    assert f"cannot read the RPC cookie file {tmp_path / '.cookie'}" in str(exc.value)


class FakeNode:
    """An HTTP server that answers every request with one canned reply."""

    def __init__(self) -> None:
        self.reply: tuple[int, bytes, dict[str, str]] = (200, b"", {})
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, body, headers = fake.reply
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.client = RpcClient(
            RpcConfig.from_url(f"http://u:{PASSWORD}@127.0.0.1:{self.server.server_address[1]}/"),
            timeout=5,
        )

    def answer(self, status: int, body: Any, **headers: str) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.reply = (status, raw, headers)

    def close(self) -> None:
        self.client.close()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[FakeNode]:
    node = FakeNode()
    yield node
    node.close()


def _error(code: int, message: str) -> dict[str, Any]:
    return {"result": None, "error": {"code": code, "message": message}, "id": 0}


def test_node_states_and_broken_answers_are_clear_errors(fake: FakeNode) -> None:
    where = f"127.0.0.1:{fake.server.server_address[1]}"
    cases: list[tuple[int, Any, type[RpcError], str]] = [
        (
            500,
            _error(-10, "Emercoin is downloading blocks..."),
            NodeDownloadingError,
            "the Emercoin node is still downloading blocks (initial block download); try again "
            "when it has caught up",
        ),
        (
            500,
            _error(-28, "Loading block index..."),
            NodeWarmingUpError,
            "the Emercoin node is warming up (Loading block index...); try again in a moment",
        ),
        (
            200,
            b"<html>proxy says hi</html>",
            NodeProtocolError,
            f"the Emercoin node at {where} answered getblockcount with HTTP 200 and a body that "
            "is not JSON: '<html>proxy says hi</html>'",
        ),
        (
            404,
            b"Not Found",
            NodeProtocolError,
            f"no JSON-RPC service at http://{where}/ (HTTP 404): check the URL and the wallet name",
        ),
        (
            403,
            b"",
            NodeAuthError,
            f"the Emercoin node at {where} refused this client (HTTP 403): allow its address with "
            "rpcallowip",
        ),
        (
            503,
            b"Work queue depth exceeded",
            NodeProtocolError,
            f"the Emercoin node at {where} is overloaded (HTTP 503, work queue depth exceeded); "
            "try again",
        ),
        (
            # a stopping bitcoind rejects requests with libevent's bare error page
            503,
            b"<HTML><HEAD>\n<TITLE>503 Service Unavailable</TITLE>\n</HEAD><BODY>\n"
            b"<H1>Service Unavailable</H1>\n</BODY></HTML>\n",
            NodeProtocolError,
            f"the Emercoin node at {where} is stopping or unavailable (HTTP 503)",
        ),
        (
            200,
            {"jsonrpc": "2.0"},
            NodeProtocolError,
            f"the Emercoin node at {where} answered getblockcount with JSON that is not a "
            "JSON-RPC reply",
        ),
        (
            500,
            {"result": None, "error": "boom", "id": 0},
            NodeProtocolError,
            f"the Emercoin node at {where} answered getblockcount with a malformed error object",
        ),
    ]
    for status, body, kind, message in cases:
        fake.answer(status, body)
        with pytest.raises(kind) as exc:
            fake.client.getblockcount()
        assert str(exc.value) == message
        assert len(str(exc.value).splitlines()) == 1
    fake.answer(500, _error(-28, "Loading wallet..."))  # one error for a whole batch
    with pytest.raises(NodeWarmingUpError):
        fake.client.batch([("getblockcount", []), ("getblockcount", [])])


def test_credentials_never_appear(
    server: NodeServer, fake: FakeNode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    cfg = RpcConfig.from_url(url_of(server))
    client = RpcClient(cfg)
    client.getblockcount()
    seen += [repr(cfg), str(cfg), repr(client), str(client), cfg.url]
    errors: list[BaseException] = []
    for make in (
        lambda: RpcClient(RpcConfig.from_url(url_of(server, PASSWORD + "x"))).getblockcount(),
        lambda: RpcClient(
            RpcConfig.from_url(f"http://alice:{PASSWORD}@127.0.0.1:{free_port()}/")
        ).getblockcount(),
        lambda: client.name_show("missing"),
        lambda: fake.client.getblockcount(),
        lambda: RpcConfig.from_url(f"http://alice:{PASSWORD}@host:notaport/"),
    ):
        try:
            make()
        except RpcError as exc:
            errors.append(exc)
    assert len(errors) == 5
    seen += [text for e in errors for text in (str(e), repr(e), str(e.args))]
    seen.append(caplog.text)
    seen += [str(r.args) for r in caplog.records]
    assert all(PASSWORD not in text for text in seen)
    client.close()


def test_cookie_auth_through_a_data_directory_and_a_new_cookie(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "store"
    srv, _ = serve_node(store, port=0, network="regtest")
    port = srv.port
    (store / "emercoin.conf").write_text(f"rpcport={port}\n")
    node_store = open_node_store(str(store), timeout=10)
    try:
        assert node_store.network_name == "regtest"
        first_cookie = (store / ".cookie").read_text()
        assert first_cookie not in repr(node_store.client)
        height = node_store.height()
        srv.close()
        # a closed node answers nothing more, not even on a kept-alive connection
        with pytest.raises(NodeConnectionError):
            node_store.height()
        # the node restarts and writes a new cookie: the client reads it after one 401
        srv, _ = serve_node(store, port=port, network="regtest")
        assert (store / ".cookie").read_text() != first_cookie
        caplog.set_level(logging.WARNING, logger="enumer.node")
        assert node_store.height() == height
        assert "incorrect RPC password attempt" in caplog.text
        assert first_cookie not in caplog.text
    finally:
        node_store.close()
        srv.close()


# -- NodeStore: the NameStore protocol, checked the same way on both back-ends ---------------------


def check_name_store(store: NameStore, advance: Callable[[int], object], foreign: str) -> None:
    """What ENUMER relies on from any NameStore, with the node's codes and messages."""

    def refused(call: Callable[[], Any], code: int, message: str) -> None:
        with pytest.raises(NvsError) as exc:
            call()
        assert (exc.value.code, exc.value.message) == (code, message)

    assert isinstance(store, NameReader) and store.network_name == "regtest"
    n0, n1, n2 = (f"enum:15550009999:{i}" for i in range(3))
    v0 = "E2U+sip=100|10|!^(.*)$!sip:\\1@a.example.com!"
    base = store.height()
    txid = store.name_new(n0, v0, 10)
    assert re.fullmatch(r"[0-9a-f]{64}", txid)
    r0 = store.show(n0)
    assert (r0.name, r0.value, r0.txid, r0.deleted) == (n0, v0, txid, False)
    assert r0.height > base and r0.registered_at == r0.height
    assert r0.expires_at == r0.height + 10 * BLOCKS_PER_DAY
    assert r0.address.startswith("emrt1q") and store.is_mine(r0.address)
    assert r0.is_active(store.height())
    store.name_new(n1, "E2U+sip=100|10|!^(.*)$!sip:\\1@b.example.com!", 1, foreign)
    r1 = store.show(n1)
    assert r1.address == foreign and not store.is_mine(foreign)

    refused(lambda: store.name_new(n0, "dup", 1), -32603, "name_new on an unexpired name")
    refused(lambda: store.show("enum:10000000000:0"), -4, "failed to read from name DB")
    refused(lambda: store.history("enum:10000000000:0"), -20, "failed to read from name DB")
    refused(
        lambda: store.name_update(n1, "steal", 1),
        -32603,
        "prev name tx is not yours or is not spendable",
    )
    refused(
        lambda: store.name_update("enum:10000000000:0", "x", 1),
        -32603,
        "name_update on an inactive name",
    )
    refused(
        lambda: store.name_new("test:zero", "x", 0), -32603, "rental days must be greater than 0.\n"
    )
    refused(lambda: store.name_new("test:empty", "", 1), -32603, "value must not be empty")
    refused(
        lambda: store.name_new("n" * 513, "v" * 20481, 1),
        -32603,
        "name is too long.\nvalue is too long.\n",
    )
    refused(
        lambda: store.name_new("test:addr", "x", 1, "notanaddress"),
        -5,
        "emercoin address is invalid",
    )

    before_update = store.height()
    t2 = store.name_update(n0, "updated", 2, r0.address)
    u0 = store.show(n0)
    assert (u0.value, u0.address, u0.txid) == ("updated", r0.address, t2)
    assert u0.height > before_update and u0.registered_at == r0.registered_at
    assert u0.expires_at == r0.expires_at + 2 * BLOCKS_PER_DAY
    ops = store.history(n0)
    assert [(o.operation, o.days_added, o.value) for o in ops] == [
        ("name_new", 10, v0),
        ("name_update", 2, "updated"),
    ]
    assert (ops[-1].height, ops[-1].txid, ops[0].height) == (u0.height, t2, r0.height)

    store.name_new(n2, "third", 3)
    assert [r.name for r in store.records_for_number("15550009999")] == [n0, n1, n2]
    assert store.records_for_number("15550009998") == []
    assert [r.name for r in store.iter_prefix("enum:1555000999")] == [n0, n1, n2]
    assert {r.name for r in store.changed_since(before_update)} == {n0, n2}
    assert all(r.height > before_update for r in store.changed_since(before_update))
    assert store.changed_since(store.height()) == []

    before_delete = store.height()
    store.name_delete(n2)
    d2 = store.show(n2)
    assert d2.deleted and not d2.is_active(store.height())
    assert d2.show_json(store.height())["deleted"] is True
    refused(
        lambda: store.history(n2), -1, "record for this name exists, but this name is not active"
    )
    assert [o.operation for o in store.history(n2, full=True)] == ["name_new", "name_delete"]
    assert [(r.name, r.deleted) for r in store.changed_since(before_delete)] == [(n2, True)]
    assert all(r.deleted for r in store.records_for_number("15550009999") if r.name == n2)
    refused(lambda: store.name_update(n2, "x", 1), -32603, "name_update on an inactive name")

    tip = store.height()
    expiring = {r.name for r in store.expiring_between(tip, r1.expires_at + 1)}
    assert n1 in expiring and n0 not in expiring and n2 not in expiring
    advance(r1.expires_at - store.height() + 1)
    assert not store.show(n1).is_active(store.height())
    assert store.show(n1).show_json(store.height())["expired"] is True
    store.name_new(n1, "mine now", 1)  # anyone may register an expired name
    assert [o.value for o in store.history(n1)] == ["mine now"]
    assert [o.value for o in store.history(n1, full=True)] == [r1.value, "mine now"]
    again = store.show(n1)
    assert again.registered_at == again.height and store.is_mine(again.address)

    for kind, prefixes in (("bech32", ("emrt1q",)), ("legacy", ("m", "n"))):
        address = store.get_new_address(kind)
        assert address.startswith(prefixes) and store.is_mine(address)
        signature = store.sign_message(address, n0)
        assert crypto.verify_message(address, signature, n0, network=crypto.REGTEST)
    refused(lambda: store.sign_message(foreign, n0), -4, "Private key not available")
    listed = {e["name"]: e for e in store.list_names()}
    assert listed[n0]["value"] == "updated" and n2 not in listed and n1 in listed


@pytest.mark.parametrize("backend", ["ledger", "node"])
def test_name_store_behaviour(tmp_path: Path, backend: str) -> None:
    if backend == "ledger":
        with Ledger(tmp_path / "ledger", "regtest") as ledger:
            check_name_store(ledger, ledger.generate, FOREIGN)
        return
    srv, _ = serve_node(tmp_path / "store", port=0, user="u", password=PASSWORD, network="regtest")
    try:
        store = NodeStore(
            RpcClient(RpcConfig.from_url(f"http://u:{PASSWORD}@127.0.0.1:{srv.port}/"), timeout=10),
            batch_size=2,
        )
        address = store.get_new_address()
        check_name_store(store, lambda n: store.client.generatetoaddress(n, address), FOREIGN)
        assert store.exact_heights
        store.close()
    finally:
        srv.close()


def test_node_store_changed_since_follows_the_index_between_calls(
    server: NodeServer, client: RpcClient
) -> None:
    with Ledger(server.ledger_path) as ledger:
        ledger.import_key(A_WIF)
    store = NodeStore(client)
    client.name_new("ver:test", "Verifier", 10, A)
    client.name_new("enum:1:0", "one", 10)
    client.name_new("enum:2:0", "two", 10)
    assert [r.name for r in store.iter_prefix("enum:")] == ["enum:1:0", "enum:2:0"]
    synced = store.height()  # the snapshot iter_prefix took is at this tip: no sweep needed
    assert store.changed_since(synced) == []
    client.name_update("enum:1:0", "one, updated", 0, store.show("enum:1:0").address)
    client.name_delete("enum:2:0")
    client.name_new("enum:3:0", "three", 1)
    new_owner = client.getnewaddress("", "legacy")
    client.name_update("ver:test", "Verifier", 0, new_owner)  # a pure transfer: new key
    changed = store.changed_since(synced)
    assert [(r.name, r.deleted) for r in changed] == [
        ("enum:1:0", False),
        ("enum:2:0", True),
        ("enum:3:0", False),
        ("ver:test", False),
    ]
    assert [r.height for r in changed] == list(range(synced + 1, synced + 5))
    assert store.show("ver:test").address == new_owner
    synced = store.height()
    client.generatetoaddress(3, A)
    assert store.changed_since(synced) == []
    expiring = store.expiring_between(synced, synced + BLOCKS_PER_DAY + 10)
    assert [r.name for r in expiring] == ["enum:3:0"]


def test_node_store_without_a_wallet_approximates_heights(
    server: NodeServer, client: RpcClient
) -> None:
    client.name_new("enum:5:0", "five", 10)
    del server.methods["name_history"]  # like a node running with -disablewallet
    store = NodeStore(client)
    record = store.show("enum:5:0")
    assert not store.exact_heights
    assert record.value == "five" and record.registered_at == record.height == 1
    synced = store.height()
    client.name_new("enum:6:0", "six", 10)
    assert [r.name for r in store.changed_since(synced)] == ["enum:6:0"]
    with pytest.raises(MethodNotFoundError):
        store.history("enum:5:0")


def test_node_store_reads_the_network_and_listings(server: NodeServer, client: RpcClient) -> None:
    store = NodeStore(client)
    assert store.network_name == "regtest"
    store.network_name = "mainnet"  # settable, as the protocol's attribute
    assert store.network_name == "mainnet"
    client.name_new("dns:x.coin", "A=1.2.3.4", 1)
    client.name_new("enum:7:0", "seven", 1)
    assert [r.name for r in store.filter("^enum:")] == ["enum:7:0"]
    assert [r.name for r in store.scan()] == ["enum:7:0", "dns:x.coin"]
    assert store.verify_message(A, "AAAA", "x") is False
    assert store.is_mine("not an address") is False
    assert "NodeStore(RpcClient(" in repr(store)


def test_an_outage_is_not_a_missing_record(tmp_path: Path, fake: FakeNode) -> None:
    """get_active: the node's "no such name" is None; a node that is down, warming
    up or downloading blocks is an error, never taken for an absent record."""
    srv, _ = serve_node(tmp_path / "store", port=0, user="u", password=PASSWORD, network="regtest")
    config = RpcConfig.from_url(f"http://u:{PASSWORD}@127.0.0.1:{srv.port}/")
    store = NodeStore(RpcClient(config, timeout=2))
    try:
        assert get_active(store, "enum:19995550000:0") is None
        srv.close()
        with pytest.raises(NodeConnectionError):
            get_active(store, "enum:19995550000:0")  # the node is gone now
    finally:
        store.close()
        srv.close()
    fake.answer(500, _error(-28, "Loading block index..."))
    with pytest.raises(NodeWarmingUpError):
        get_active(NodeStore(fake.client), "ver:enum")


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    """RFC 9110: delta-seconds or an HTTP date; anything else means one second."""
    import email.utils

    now = 1_800_000_000.0
    assert retry_after_seconds("7", now) == 7
    assert retry_after_seconds(" 0 ", now) == 0
    in_ten = email.utils.formatdate(now + 10, usegmt=True)
    assert retry_after_seconds(in_ten, now) == pytest.approx(10)
    assert retry_after_seconds(email.utils.formatdate(now - 60, usegmt=True), now) == 0
    for unreadable in (None, "", "-3", "soon", "1.5", "Mon, 99 Foo 2026"):
        assert retry_after_seconds(unreadable, now) == 1, unreadable
    assert retry_after_seconds("9" * 40, now) == 10**9  # bounded, not an overflow
