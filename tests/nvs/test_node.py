"""``enumer node``: the embedded ledger over Emercoin's JSON-RPC, against the captures.

Real HTTP on loopback, no mocks: every capture in shared/reference/rpc is replayed
(same URL path, same request) against a node whose ledger holds the same names,
values, owners and states as the reference node, and the answer must have the same
HTTP status, the same JSON shape (keys and their order, types) and, for errors,
the same code and message, byte for byte.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from enumer.nvs.ledger import Ledger
from enumer.nvs.node import (
    MAX_BODY_BYTES,
    METHODS,
    Method,
    NodeServer,
    descriptor_checksum,
    serve_node,
)
from enumer.nvs.rpc import RpcClient, RpcConfig

#: shared/reference/rpc: $ENUMER_SHARED, else <repo>/../shared (as tests/conftest.py says).
SHARED = Path(os.environ.get("ENUMER_SHARED") or Path(__file__).resolve().parents[3] / "shared")
RPC_DIR = SHARED / "reference" / "rpc"
CAPTURES = sorted(p.stem for p in RPC_DIR.glob("*.json")) if RPC_DIR.is_dir() else []

A = "mqCwY8H123ACyNaemLxyWZuCK7fDzqg3Z6"
B = "mrKuPX3ZRb6XNj1kP3s9CLbrPo6LPuXV3R"
C = "emrt1qh2jqsq4974hwtt629y5acw4uwm9dnl4f9zkytn"
W2 = "mrtBxwpW2PV9FxhrC29Tpzo7zyjLQw4pqD"  # the second wallet's address: not ours

#: Captures we do not replay, and why (documented differences).
SKIPPED = {
    "name_mempool": "a pending operation: enumer node mines every write at once (automine)",
    "err_name_update_pending": "needs a pending operation: automine has no mempool",
    "getnetworkinfo": "not served (no P2P network)",
    "getwalletinfo": "not served",
    "name_indexinfo": "not served",
}
#: Written by the reference node after its last listing capture.
LATE_NAMES = {"enum:17779990000:0"}
#: Captured while the name was still active; it has expired in our (final) state.
CAPTURED_BEFORE_EXPIRY = {"name_show_name_512_bytes"}
#: Not in getaddressinfo for non-HD (imported) keys, as in bitcoind.
HD_FIELDS = {"hdkeypath", "hdseedid", "hdmasterfingerprint"}

WRITES = [c for c in CAPTURES if c.startswith(("name_new_", "name_update_", "name_delete_"))]
ERRORS = [c for c in CAPTURES if c.startswith("err_") and c not in SKIPPED]
READS = [c for c in CAPTURES if c not in SKIPPED and c not in WRITES and c not in ERRORS]


def capture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RPC_DIR / f"{name}.json").read_text())
    return data


# -- a node over HTTP ---------------------------------------------------------------------


@dataclass
class Node:
    server: NodeServer
    user: str
    password: str

    @property
    def port(self) -> int:
        return self.server.port

    def auth(self, user: str | None = None, password: str | None = None) -> str:
        user = self.user if user is None else user
        pair = f"{user}:{self.password if password is None else password}"
        return "Basic " + base64.b64encode(pair.encode()).decode()

    def raw(
        self,
        body: bytes,
        path: str = "/",
        method: str = "POST",
        headers: dict[str, str] | None = None,
        auth: str | None = "default",
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            all_headers = {"Content-Type": "application/json"}
            if auth == "default":
                all_headers["Authorization"] = self.auth()
            elif auth is not None:
                all_headers["Authorization"] = auth
            all_headers.update(headers or {})
            conn.request(method, path, body=body, headers=all_headers)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def post(self, payload: Any, path: str = "/") -> tuple[int, Any]:
        status, _, body = self.raw(json.dumps(payload).encode(), path)
        return status, json.loads(body)

    def call(self, method: str, *params: Any) -> Any:
        status, reply = self.post(
            {"jsonrpc": "1.0", "id": "t", "method": method, "params": list(params)}
        )
        assert status == 200, reply
        return reply["result"]

    def client(self) -> RpcClient:
        return RpcClient(
            RpcConfig.from_url(f"http://{self.user}:{self.password}@127.0.0.1:{self.port}/"),
            timeout=10,
        )


def start_node(path: Path, network: str = "regtest") -> Iterator[Node]:
    server, _ = serve_node(path, "127.0.0.1", 0, "tester", "s3cret-pw", network=network)
    try:
        yield Node(server, "tester", "s3cret-pw")
    finally:
        server.close()


def reference_keys() -> list[str]:
    return [capture(f"dumpprivkey_{k}_regtest_only")["response"]["result"] for k in "ABC"]


def populate_reference(ledger: Ledger, records_created: dict[str, Any]) -> None:
    """The reference node's names, values, owners and states, written into ``ledger``."""
    for wif in reference_keys():
        ledger.import_key(wif)
    owners = {"A": A, "B": B}
    for rec in records_created["records"]:
        name, value = rec["name"], rec["value"]
        if name.startswith('"') or value.startswith(('"', "12 lines")):
            continue
        to = rec.get("toaddress")
        owner = owners.get(to) if to in owners else (W2 if to and to.startswith("W2") else None)
        ledger.name_new(name, value, rec["days"], owner)
    ledger.name_new("test:maxvalue", "v" * 20480, 1)
    ledger.name_new("n" * 512, "name of exactly 512 bytes", 1)
    twelve = capture("name_show_12_e2u_truncation_test")["response"]["result"]["value"]
    ledger.name_new("enum:17779990000:0", twelve, 365)
    ledger.name_update("ver:enum", "Verifier test\nSRL=5|srl:test-%02x", 10, A)
    ledger.name_update(
        "enum:15551234567:0", "E2U+sip=100|10|!^(.*)$!sip:\\1@unsigned-updated.example.com!", 0
    )
    ledger.name_delete("enum:15558880000:0")
    ledger.generate(176)  # the 1-day names expire
    ledger.name_new("test:maxvalue", "re-registered after expiry", 365)


@pytest.fixture(scope="module")
def ref_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    if not CAPTURES:
        pytest.fail(f"no captures in {RPC_DIR} (set ENUMER_SHARED)")
    path = tmp_path_factory.mktemp("refnode") / "store"
    records = json.loads((RPC_DIR.parent / "records-created.json").read_text())
    with Ledger(path, "regtest") as ledger:
        populate_reference(ledger, records)
    yield from start_node(path)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    path = tmp_path / "store"
    with Ledger(path, "regtest") as ledger:
        for wif in reference_keys():
            ledger.import_key(wif)
    yield from start_node(path)


# -- shapes -------------------------------------------------------------------------------------


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return {int: "int", float: "float", str: "str", list: "list", dict: "dict"}[type(value)]


def assert_same_shape(
    ours: Any, ref: Any, where: str = "$", ignore: frozenset[str] = frozenset()
) -> None:
    """Same JSON types; objects with the same keys in the same order; list items paired
    by ``name`` when they have one, else by position."""
    assert json_type(ours) == json_type(ref), f"{where}: {json_type(ours)} != {json_type(ref)}"
    if isinstance(ref, dict):
        wanted = [k for k in ref if k not in ignore]
        keys = [k for k in ours if k not in ignore]
        assert keys == wanted, f"{where}: keys {keys} != {wanted}"
        for key in wanted:
            assert_same_shape(ours[key], ref[key], f"{where}.{key}", ignore)
    elif isinstance(ref, list):
        if where == "$" and ref and all(isinstance(r, dict) and "name" in r for r in ref):
            by_name = {o["name"]: o for o in ours}
            paired = [r for r in ref if r["name"] in by_name]
            assert paired, f"{where}: no item in common"
            for r in paired:
                assert_same_shape(by_name[r["name"]], r, f"{where}[{r['name'][:30]}]", ignore)
        else:
            assert len(ours) == len(ref), f"{where}: {len(ours)} items, reference {len(ref)}"
            for i, (o, r) in enumerate(zip(ours, ref, strict=True)):
                assert_same_shape(o, r, f"{where}[{i}]", ignore)


# -- the captures -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", READS)
def test_read_capture_same_status_and_shape(ref_node: Node, name: str) -> None:
    cap = capture(name)
    status, _, raw = ref_node.raw(json.dumps(cap["request"]).encode(), cap["url_path"])
    reply = json.loads(raw)
    assert status == cap["http_status"] == 200
    assert list(reply) == ["result", "error", "id"] and reply["error"] is None
    assert reply["id"] == "ref"
    ours, ref = reply["result"], cap["response"]["result"]
    method = cap["request"]["method"]
    ignore = frozenset(HD_FIELDS) if method == "getaddressinfo" else frozenset()
    if name in CAPTURED_BEFORE_EXPIRY:
        assert ours["expired"] is True and ours["expires_in"] <= 0
        ignore = frozenset({"expired"})
    assert_same_shape(ours, ref, ignore=ignore)
    if method in ("signmessage", "verifymessage", "dumpprivkey"):
        assert ours == ref  # same keys, RFC 6979: the very same signatures
    elif method == "name_show" and ref["name"] != "test:maxvalue":
        assert (ours["name"], ours["value"]) == (ref["name"], ref["value"])
    elif method == "name_history":
        assert [(o["operation"], o.get("days_added"), o.get("value")) for o in ours] == [
            (r["operation"], r.get("days_added"), r.get("value")) for r in ref
        ]
    elif method in ("name_filter", "name_scan", "name_list") and isinstance(ref, list):
        assert {o["name"] for o in ours} - LATE_NAMES == {r["name"] for r in ref}
    elif method in ("getaddressinfo", "validateaddress"):
        assert (ours["address"], ours["ismine"]) == (ref["address"], ref["ismine"])
        assert ours.get("scriptPubKey") == ref.get("scriptPubKey") or method == "getaddressinfo"
    if method == "getaddressinfo":
        # Same key, same descriptor (less the HD origin our non-HD wallet does not have).
        origin = re.sub(r"\[[^\]]*\]", "", ref["desc"].split("#")[0])
        assert ours["desc"] == descriptor_checksum(origin)
        assert ours["pubkey"] == ref["pubkey"]


@pytest.mark.parametrize("name", ERRORS)
def test_error_capture_same_code_message_and_bytes(ref_node: Node, name: str) -> None:
    cap = capture(name)
    status, headers, raw = ref_node.raw(json.dumps(cap["request"]).encode(), cap["url_path"])
    assert status == cap["http_status"] == 500
    assert json.loads(raw) == cap["response"]
    assert raw == cap["raw_body"].encode()  # same serialization, byte for byte
    assert headers["Content-Type"] == "application/json"


def test_reference_state_matches_the_captured_names(ref_node: Node) -> None:
    shown = ref_node.call("name_show", "enum:15558880000:0")
    assert shown["deleted"] is True and shown["value"] == "" and shown["expires_at"] == 0
    assert ref_node.call("name_show", "enum:15559990000:0")["expired"] is True
    assert ref_node.call("name_show", "ver:enum")["address"] == A
    assert ref_node.call("name_show", "enum:15551234567:0")["address"].startswith("emrt1q")


#: Before replaying a write capture: what must exist (as on the reference node then).
WRITE_SETUP: dict[str, list[tuple[str, list[Any]]]] = {
    "name_update_ver_enum_add_srl": [("name_new", ["ver:enum", "Verifier test", 3650, A])],
    "name_update_no_toaddress_days0": [("name_new", ["enum:15551234567:0", "old", 365])],
    "name_update_enum_tollfree": [("name_new", ["enum:tollfree", "old", 365])],
    "name_delete_enum_15558880000_0": [("name_new", ["enum:15558880000:0", "old", 365])],
    "name_new_reregister_expired_name": [
        ("name_new", ["test:maxvalue", "v", 1]),
        ("generatetoaddress", [176, A]),
    ],
}


@pytest.mark.parametrize("name", WRITES)
def test_write_capture_succeeds_with_a_txid(node: Node, name: str) -> None:
    for method, params in WRITE_SETUP.get(name, []):
        node.call(method, *params)
    cap = capture(name)
    request = cap["request"]
    status, reply = node.post(request, cap["url_path"])
    assert status == cap["http_status"] == 200, reply
    assert re.fullmatch(r"[0-9a-f]{64}", reply["result"]), reply
    assert_same_shape(reply["result"], cap["response"]["result"])
    params = request["params"]
    shown = node.call("name_show", params[0])
    assert shown["txid"] == reply["result"]
    if request["method"] == "name_delete":
        assert shown["deleted"] is True
        return
    assert shown["value"] == params[1]
    if len(params) > 3:
        assert shown["address"] == params[3]
    else:  # the node's way: a fresh bech32 address of the wallet
        assert shown["address"].startswith("emrt1q")
        assert node.call("validateaddress", shown["address"])["ismine"] is True


def test_raw_success_body_is_compact_json_and_a_newline(ref_node: Node) -> None:
    cap = capture("getblockcount")
    _, headers, raw = ref_node.raw(json.dumps(cap["request"]).encode())
    assert re.fullmatch(rb'\{"result":\d+,"error":null,"id":"ref"\}\n', raw)
    assert re.fullmatch(r'\{"result":\d+,"error":null,"id":"ref"\}\n', cap["raw_body"])
    assert headers["Content-Type"] == "application/json"


# -- name_* semantics ---------------------------------------------------------------------------


def test_name_filter_node_semantics(node: Node) -> None:
    for i in range(4):
        node.call("name_new", f"enum:1555000000{i}:0", f"v{i}", 10)
    tip = node.call("getblockcount")
    # maxage keeps tip - registered_at < maxage (the node's >= test excludes the boundary)
    names = [e["name"] for e in node.call("name_filter", "^enum:", 2)]
    assert names == [f"enum:1555000000{i}:0" for i in (2, 3)]
    assert all(tip - e["registered_at"] < 2 for e in node.call("name_filter", "^enum:", 2))
    # from/nb count in index order; the output is sorted by registered_at
    page = node.call("name_filter", "^enum:", 0, 1, 2)
    assert [e["name"] for e in page] == ["enum:15550000001:0", "enum:15550000002:0"]
    assert node.call("name_filter", "^enum:", 0, 0, 0, "stat") == {"blocks": tip, "count": 0}
    cut = node.call("name_filter", "^enum:15550000000", 0, 0, 0, "", "hex", 2)
    assert cut[0]["value"] == "76\n...(value too large - use name_show to see full value)"
    with pytest.raises(AssertionError):
        node.call("name_filter", "(")  # an invalid regexp is an error, not a crash
    status, reply = node.post({"method": "name_filter", "params": ["("], "id": 1})
    assert status == 500 and reply["error"]["code"] == -1


def test_malformed_name_filter_regexp_gets_the_nodes_message(node: Node) -> None:
    """Emercoin compiles name_filter's regexp with boost::xpressive and answers its
    regex_error as code -1 with what(): the same words where both engines refuse."""
    for regexp, message in (
        ("[abc", "unexpected end of pattern found"),
        ("enum:(", "mismatched parenthesis"),
        ("a)", "mismatched parenthesis"),
        ("enum:\\", "incomplete escape sequence"),
        ("*enum", "quantifier not expected"),
        ("[z-a]", "invalid charset range"),
    ):
        status, reply = node.post(
            {"jsonrpc": "1.0", "id": "t", "method": "name_filter", "params": [regexp]}
        )
        assert (status, reply["error"]) == (500, {"code": -1, "message": message}), regexp
    # where the node's message is not known, ours names the regexp and the reason
    _, reply = node.post(
        {"jsonrpc": "1.0", "id": "t", "method": "name_filter", "params": ["a{2,1}"]}
    )
    assert reply["error"]["code"] == -1
    assert reply["error"]["message"].startswith("invalid regular expression 'a{2,1}': ")


def test_name_scan_ignores_max_and_orders_shorter_names_first(node: Node) -> None:
    for name in ("bbbb", "a", "ccc", "aaaa"):
        node.call("name_new", name, "x", 1)
    assert [e["name"] for e in node.call("name_scan", "", 1)] == ["a", "ccc", "aaaa", "bbbb"]
    assert [e["name"] for e in node.call("name_scan", "b")] == ["ccc", "aaaa", "bbbb"]


def test_valuetype_hex_and_base64_in_and_out(node: Node) -> None:
    node.call("name_new", "test:hex", "48656c6c6f", 1, "", "hex")
    node.call("name_new", "test:b64", base64.b64encode(b"Hi there").decode(), 1, "", "base64")
    assert node.call("name_show", "test:hex")["value"] == "Hello"
    assert (
        node.call("name_show", "test:b64", "base64")["value"]
        == base64.b64encode(b"Hi there").decode()
    )
    assert node.call("name_show", "test:hex", "hex")["value"] == "48656c6c6f"
    for value, kind, message in (
        ("4x", "hex", "failed to decode value as hex"),
        ("%%%", "base64", "failed to decode value as base64"),
        ("/etc/passwd", "/etc/passwd", "enumer node does not read"),
    ):
        status, reply = node.post(
            {"method": "name_new", "id": 1, "params": ["test:bad", value, 1, "", kind]}
        )
        assert status == 500 and reply["error"]["code"] == -32603
        assert reply["error"]["message"].startswith(message)
    status, reply = node.post(
        {"method": "name_show", "id": 1, "params": ["test:hex", "", "/tmp/out"]}
    )
    assert status == 500 and reply["error"]["code"] == -8
    assert not Path("/tmp/out").exists() or Path("/tmp/out").read_bytes() != b"Hello"


def test_generate_advances_the_ledger_and_returns_block_hashes(node: Node) -> None:
    tip = node.call("getblockcount")
    hashes = node.call("generatetoaddress", 3, A)
    assert node.call("getblockcount") == tip + 3
    assert hashes == [node.call("getblockhash", h) for h in range(tip + 1, tip + 4)]
    assert node.call("getbestblockhash") == hashes[-1]
    assert len(set(hashes)) == 3 and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes)
    status, reply = node.post({"method": "generatetoaddress", "params": [1, "nope"], "id": 1})
    assert (status, reply["error"]) == (500, {"code": -5, "message": "Error: Invalid address"})
    status, reply = node.post({"method": "getblockhash", "params": [tip + 100], "id": 1})
    assert reply["error"] == {"code": -8, "message": "Block height out of range"}
    assert node.call("generate", 2) and node.call("getblockcount") == tip + 5


def test_wallet_calls(node: Node) -> None:
    legacy = node.call("getnewaddress", "", "legacy")
    bech32 = node.call("getnewaddress")
    assert legacy.startswith(("m", "n")) and bech32.startswith("emrt1q")
    for address in (legacy, bech32):
        assert node.call("validateaddress", address)["ismine"] is True
        info = node.call("getaddressinfo", address)
        assert info["ismine"] and info["solvable"] and info["desc"].split("(")[0] in ("pkh", "wpkh")
        sig = node.call("signmessage", address, "enum:1:0")
        assert node.call("verifymessage", address, sig, "enum:1:0") is True
        assert node.call("verifymessage", address, sig, "enum:1:1") is False
    assert node.call("validateaddress", "xyz") == {"isvalid": False}
    foreign = node.call("getaddressinfo", W2)
    assert foreign["ismine"] is False and "desc" not in foreign and foreign["labels"] == []
    _, reply = node.post({"method": "getnewaddress", "params": ["", "p2sh-segwit"], "id": 1})
    assert reply["error"] == {"code": -5, "message": "Unknown address type 'p2sh-segwit'"}
    _, reply = node.post({"method": "dumpprivkey", "params": [W2], "id": 1})
    assert reply["error"] == {"code": -4, "message": f"Private key for address {W2} is not known"}
    assert node.call("importprivkey", reference_keys()[0]) is None
    # a well-formed base64 signature of the wrong length is false, not an error
    assert node.call("verifymessage", A, "AAAA", "x") is False
    assert node.call("name_mempool") == []
    assert node.call("getinfo")["blocks"] == node.call("getblockcount")
    assert node.call("getblockchaininfo")["chain"] == "regtest"


# -- the transport ------------------------------------------------------------------------------


def test_no_or_bad_credentials_get_401_with_an_empty_body(node: Node) -> None:
    body = json.dumps({"method": "getblockcount", "id": 1}).encode()
    for auth in (
        None,
        node.auth(password="wrong"),
        node.auth(user="other"),
        "Basic !!!",
        "Bearer x",
    ):
        status, headers, raw = node.raw(body, auth=auth)
        assert (status, raw) == (401, b""), auth
        assert headers["WWW-Authenticate"] == 'Basic realm="jsonrpc"'
    assert node.call("getblockcount") >= 0


def test_bad_requests_never_crash_the_server(node: Node) -> None:
    def err(body: bytes) -> tuple[int, Any]:
        status, _, raw = node.raw(body)
        return status, json.loads(raw)

    assert err(b"{not json") == (
        500,
        {"result": None, "error": {"code": -32700, "message": "Parse error"}, "id": None},
    )
    assert err(b"\xff\xfe")[1]["error"]["code"] == -32700
    assert err(b"[" * 100000 + b"]" * 100000)[1]["error"]["code"] == -32700
    assert err(b'{"method":"getblockcount","params":[NaN]}')[1]["error"]["code"] == -32700
    assert err(b"42") == (
        500,
        {
            "result": None,
            "error": {"code": -32700, "message": "Top-level object parse error"},
            "id": None,
        },
    )
    assert err(b'{"method": 5, "id": 7}') == (
        400,
        {"result": None, "error": {"code": -32600, "message": "Method must be a string"}, "id": 7},
    )
    assert err(b'{"id": 7}')[1]["error"] == {"code": -32600, "message": "Missing method"}
    assert err(b'{"method": "getblockcount", "params": 3, "id": 7}')[1]["error"] == {
        "code": -32600,
        "message": "Params must be an array or object",
    }
    assert err(b'{"method": "nope", "id": "x"}') == (
        404,
        {"result": None, "error": {"code": -32601, "message": "Method not found"}, "id": "x"},
    )
    # wrong parameter counts: -1 with the help text
    status, reply = err(b'{"method": "name_delete", "params": [], "id": 1}')
    assert (status, reply["error"]["code"]) == (500, -1)
    assert reply["error"]["message"].startswith('name_delete "name"\n')
    status, reply = err(b'{"method": "getblockcount", "params": [1], "id": 1}')
    assert reply["error"]["message"].startswith("getblockcount\n")
    # wrong types
    for params, message in (
        (["x", "y", "ten"], "JSON value is not an integer as expected"),
        (["x", "y", 1.5], "JSON integer out of range"),
        (["x", "y", 2**40], "JSON integer out of range"),
        (["x", "y", True], "JSON value is not an integer as expected"),
        ([5, "y", 1], "JSON value is not a string as expected"),
        (["x", ["y"], 1], "JSON value is not a string as expected"),
    ):
        status, reply = err(json.dumps({"method": "name_new", "params": params, "id": 1}).encode())
        assert reply["error"] == {"code": -1, "message": message}, params
    status, reply = err(b'{"method": "name_history", "params": ["x", "yes"], "id": 1}')
    assert reply["error"] == {"code": -1, "message": "JSON value is not a boolean as expected"}
    # named parameters
    status, reply = err(b'{"method": "name_show", "params": {"name": "nope"}, "id": 1}')
    assert reply["error"] == {"code": -4, "message": "failed to read from name DB"}
    status, reply = err(b'{"method": "name_show", "params": {"bogus": 1}, "id": 1}')
    assert reply["error"] == {"code": -8, "message": "Unknown named parameter bogus"}
    # other HTTP methods and paths
    assert node.raw(b"", method="GET")[0] == 405
    assert node.raw(b"{}", path="/rest/x")[0] == 404
    assert (
        node.raw(
            json.dumps({"method": "getblockcount", "id": 1}).encode(), path="/wallet/anything"
        )[0]
        == 200
    )
    assert node.call("getblockcount") >= 0


def test_batch_requests(node: Node) -> None:
    status, reply = node.post(
        [
            {"method": "getblockcount", "id": 1},
            {"method": "nope", "id": 2},
            {"method": "name_show", "params": ["missing"], "id": 3},
            5,
        ]
    )
    assert status == 200 and len(reply) == 4
    assert reply[0]["error"] is None and isinstance(reply[0]["result"], int)
    assert reply[1] == {
        "result": None,
        "error": {"code": -32601, "message": "Method not found"},
        "id": 2,
    }
    assert reply[2]["error"]["code"] == -4 and reply[2]["id"] == 3
    assert reply[3] == {
        "result": None,
        "error": {"code": -32600, "message": "Invalid Request object"},
        "id": None,
    }
    assert node.post([])[1] == []


def test_oversized_and_unframed_bodies(node: Node) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
    conn.putrequest("POST", "/")
    conn.putheader("Authorization", node.auth())
    conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    # really sending it: the server answers 413 and closes; the client may see a reset
    try:
        status, _, _ = node.raw(b" " * (4 * MAX_BODY_BYTES))
        assert status == 413
    except (BrokenPipeError, ConnectionResetError):
        pass
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: " + node.auth().encode() + b"\r\n\r\n"
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 411")
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.sendall(b"NOT A REQUEST LINE\r\n\r\n")
        assert b"Bad request" in sock.recv(1000)
    assert node.call("getblockcount") >= 0


def test_an_unexpected_exception_is_an_internal_error_and_the_server_survives(node: Node) -> None:
    def boom(_: Any) -> Any:
        raise RuntimeError("secret internals")

    node.server.methods["boom"] = Method("boom", (), 0, "boom\n", boom)
    status, reply = node.post({"method": "boom", "id": 1})
    assert (status, reply["error"]) == (500, {"code": -32603, "message": "Internal error"})
    assert "boom" not in METHODS
    assert node.call("getblockcount") >= 0


def test_keep_alive_and_concurrent_writes(node: Node) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
    for _ in range(3):
        conn.request(
            "POST",
            "/",
            body=b'{"method":"getblockcount","id":1}',
            headers={"Authorization": node.auth()},
        )
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["error"] is None
    conn.close()
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            with node.client() as client:
                for j in range(5):
                    client.name_new(f"enum:1777000{i:02d}{j:02d}:0", f"v{i}-{j}", 1)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(node.call("name_filter", "^enum:1777000")) == 40


def test_stop_call_closes_the_server(tmp_path: Path) -> None:
    server, thread = serve_node(tmp_path / "s", port=0, user="u", password="p")
    node = Node(server, "u", "p")
    assert node.call("stop") == "enumer node stopping"
    thread.join(5)
    assert not thread.is_alive() and server.stop_event.is_set()
    with pytest.raises(OSError):
        node.call("getblockcount")
    server.close()


# -- cookie and the command ---------------------------------------------------------------------


def test_cookie_file_mode_content_and_removal(tmp_path: Path) -> None:
    server, _ = serve_node(tmp_path / "store", network="regtest")
    cookie = tmp_path / "store" / ".cookie"
    try:
        assert server.cookie_path == cookie
        assert stat.S_IMODE(cookie.stat().st_mode) == 0o600
        assert re.fullmatch(r"__cookie__:[0-9a-f]{64}", cookie.read_text())
        with pytest.raises(Exception, match="another enumer node already serves"):
            serve_node(tmp_path / "store", network="regtest")
        client = RpcClient(RpcConfig("127.0.0.1", server.port, cookie_file=cookie))
        assert client.getblockchaininfo()["chain"] == "regtest"
        client.close()
    finally:
        server.close()
    assert not cookie.exists()
    server2, _ = serve_node(tmp_path / "store", network="regtest")  # the lock went too
    server2.close()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENUMER_")}
    if "ENUMER_SHARED" in os.environ:
        env["ENUMER_SHARED"] = os.environ["ENUMER_SHARED"]
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _start_command(
    store: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "enumer",
            "--store",
            str(store),
            "--network",
            "regtest",
            "node",
            "--rpcport",
            "0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or _env(),
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            line = proc.stderr.readline()
            if "ready" in line or not line:
                return proc, line
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"enumer node did not start: {proc.communicate()}")


READY = re.compile(
    r"enumer node ready: JSON-RPC on 127\.0\.0\.1:(\d+) \((cookie (\S+)|rpcuser "
    r"\S+)\), regtest store (\S+)$"
)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_node_command_with_cookie_and_emercoin_conf(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    store = tmp_path / "store"
    proc, line = _start_command(store)
    try:
        m = READY.match(line.strip())
        assert m, line
        port, cookie = int(m.group(1)), Path(m.group(3))
        assert cookie == store / ".cookie"
        assert stat.S_IMODE(cookie.stat().st_mode) == 0o600
        secret = cookie.read_text()
        # an emercoin.conf whose data directory is the store: the cookie is found there
        conf = store / "emercoin.conf"
        conf.write_text(f"server=1\nrpcport={port}\n")
        with RpcClient(RpcConfig.from_conf(conf)) as client:
            assert client.getblockchaininfo()["chain"] == "regtest"
            txid = client.name_new("enum:18005550000:0", "E2U+sip=100|10|!^.*$!sip:x@y!", 1)
            assert client.name_show("enum:18005550000:0")["txid"] == txid
            assert secret not in repr(client) and secret not in repr(client.config)
        # regtest=1 reads [regtest] and <datadir>/regtest/.cookie unless rpccookiefile says
        conf2 = tmp_path / "emercoin.conf"
        conf2.write_text(
            f"regtest=1\ndatadir={store}\n[regtest]\nrpcport={port}\nrpccookiefile={cookie}\n"
        )
        with RpcClient(RpcConfig.from_conf(conf2)) as client:
            assert client.getblockcount() >= 1
        proc.send_signal(stop_signal)
        assert proc.wait(15) == 0
        _, err = proc.communicate()
        assert "enumer node stopped" in err and "Traceback" not in err
        assert not cookie.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_node_command_with_password_never_prints_it(tmp_path: Path) -> None:
    env = _env()
    env["ENUMER_RPCPASSWORD"] = "pw-that-must-not-show"
    proc, line = _start_command(tmp_path / "store", "--rpcuser", "alice", env=env)
    try:
        m = READY.match(line.strip())
        assert m and "rpcuser alice" in line and "pw-that-must-not-show" not in line, line
        assert not (tmp_path / "store" / ".cookie").exists()
        url = f"http://alice:pw-that-must-not-show@127.0.0.1:{m.group(1)}/"
        with RpcClient(RpcConfig.from_url(url)) as client:
            assert client.getblockcount() >= 0
        proc.terminate()
        assert proc.wait(15) == 0
        out, err = proc.communicate()
        assert "pw-that-must-not-show" not in out + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_node_command_errors_are_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "enumer",
                "--store",
                str(tmp_path / "s"),
                "node",
                "--rpcport",
                str(port),
            ],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "enumer",
            "--store",
            str(tmp_path / "s"),
            "node",
            "--rpcuser",
            "bob",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert result.returncode == 2 and result.stderr.startswith("error: --rpcuser needs")
