"""A minimal SIP user agent for the end-to-end call tests: plain SIP over UDP, no RTP.

Run as a script, usually inside the test's network namespace
(``ip netns exec NS python sipua.py ...``), because Python 3.11 has no
``os.setns``:

* ``callee --port 5090 --name callee --log FILE``: answers every INVITE with
  180 Ringing and 200 OK (To-tag, Contact ``sip:<name>@127.0.0.1:<port>``),
  answers BYE and CANCEL with 200, and appends one JSON line per request to
  FILE (method and Request-URI). Prints ``ready`` once listening.
* ``caller --proxy 127.0.0.1:5060 --uri sip:+12025550142@127.0.0.1:5060``:
  sends one INVITE through the proxy, waits for the final response, ACKs it
  (and hangs up with BYE after a 2xx), then prints one JSON object: status,
  reason, the Contact user of the answering agent, and the To-tag.

Messages are built by hand, as RFC 3261 describes them, so that the test
depends on nothing but the proxy under test.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import socket
import sys
import time
from pathlib import Path


def _branch() -> str:
    return f"z9hG4bK{random.getrandbits(48):012x}"


def parse(data: bytes) -> tuple[str, dict[str, list[str]]]:
    """First line and headers (lower-case names, compact forms expanded, all values kept)."""
    text = data.decode("utf-8", "replace")
    head = text.split("\r\n\r\n", 1)[0]
    lines = head.split("\r\n")
    compact = {
        "v": "via",
        "f": "from",
        "t": "to",
        "i": "call-id",
        "m": "contact",
        "l": "content-length",
    }
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        if ":" not in line:
            continue
        name, _, value = line.partition(":")
        key = name.strip().lower()
        key = compact.get(key, key)
        headers.setdefault(key, []).append(value.strip())
    return lines[0], headers


def one(headers: dict[str, list[str]], name: str) -> str:
    return headers.get(name, [""])[0]


def uri_of(value: str) -> str:
    """The URI inside ``<...>`` of a header value, or the value up to its parameters."""
    m = re.search(r"<([^>]*)>", value)
    return m.group(1) if m else value.split(";")[0].strip()


def host_port(uri: str) -> tuple[str, int]:
    m = re.match(r"sips?:(?:[^@]*@)?([^;:>?]+)(?::([0-9]+))?", uri)
    if m is None:
        raise ValueError(f"not a SIP URI: {uri}")
    return m.group(1), int(m.group(2) or 5060)


# -- callee ----------------------------------------------------------------------------


def response(request_headers: dict[str, list[str]], status: str, extra: list[str]) -> bytes:
    lines = [f"SIP/2.0 {status}"]
    lines += [f"Via: {v}" for v in request_headers.get("via", [])]
    lines += [f"Record-Route: {v}" for v in request_headers.get("record-route", [])]
    lines += [
        f"From: {one(request_headers, 'from')}",
        f"To: {one(request_headers, 'to')}",
        f"Call-ID: {one(request_headers, 'call-id')}",
        f"CSeq: {one(request_headers, 'cseq')}",
    ]
    lines += extra
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def with_tag(to_value: str, tag: str) -> str:
    return to_value if ";tag=" in to_value else f"{to_value};tag={tag}"


def callee(port: int, name: str, log: Path) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    print("ready", flush=True)
    contact = f"Contact: <sip:{name}@127.0.0.1:{port}>"
    while True:
        data, peer = sock.recvfrom(65535)
        first, headers = parse(data)
        if first.startswith("SIP/2.0"):
            continue  # a response: nothing to do
        method, ruri = first.split(" ")[0], first.split(" ")[1]
        with log.open("a") as handle:
            handle.write(json.dumps({"method": method, "ruri": ruri, "agent": name}) + "\n")
        tag = f"{name}-{abs(hash(one(headers, 'call-id'))) % 10**8}"
        if method == "INVITE":
            headers["to"] = [with_tag(one(headers, "to"), tag)]
            sock.sendto(response(headers, "180 Ringing", [contact]), peer)
            sock.sendto(response(headers, "200 OK", [contact, f"Server: enumer-test-{name}"]), peer)
        elif method in ("BYE", "CANCEL", "OPTIONS"):
            sock.sendto(response(headers, "200 OK", []), peer)


# -- caller ----------------------------------------------------------------------------


def request(
    method: str,
    ruri: str,
    local: tuple[str, int],
    call_id: str,
    from_value: str,
    to_value: str,
    cseq: int,
    routes: list[str] | None = None,
) -> bytes:
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch={_branch()};rport",
        "Max-Forwards: 70",
        f"From: {from_value}",
        f"To: {to_value}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:caller@{local[0]}:{local[1]}>",
    ]
    lines += [f"Route: {r}" for r in routes or []]
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def caller(proxy: tuple[str, int], uri: str, timeout: float) -> dict[str, object]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    local = sock.getsockname()
    call_id = f"{random.getrandbits(64):016x}@enumer-test"
    from_value = f"<sip:caller@127.0.0.1>;tag={random.getrandbits(32):08x}"
    to_value = f"<{uri}>"
    sock.sendto(request("INVITE", uri, local, call_id, from_value, to_value, 1), proxy)
    deadline = time.monotonic() + timeout
    provisional: list[int] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return {"status": 0, "reason": "timeout", "provisional": provisional}
        sock.settimeout(left)
        try:
            data, _ = sock.recvfrom(65535)
        except TimeoutError:
            continue
        first, headers = parse(data)
        m = re.match(r"SIP/2\.0 ([0-9]{3}) ?(.*)", first)
        if m is None or "INVITE" not in one(headers, "cseq"):
            continue
        status = int(m.group(1))
        if status < 200:
            provisional.append(status)
            continue
        to_final = one(headers, "to")
        tag_m = re.search(r";tag=([^;>\s]+)", to_final)
        contact = uri_of(one(headers, "contact")) if headers.get("contact") else ""
        user_m = re.match(r"sips?:([^@]+)@", contact)
        result: dict[str, object] = {
            "status": status,
            "reason": m.group(2),
            "to_tag": tag_m.group(1) if tag_m else None,
            "agent": user_m.group(1) if user_m else None,
            "server": one(headers, "server"),
            "provisional": provisional,
        }
        if status >= 300:
            # ACK for a failure goes to the proxy, in the INVITE's transaction (RFC 3261 17.1.1.3).
            sock.sendto(request("ACK", uri, local, call_id, from_value, to_final, 1), proxy)
            return result
        routes = list(reversed(headers.get("record-route", [])))
        target = host_port(uri_of(routes[0])) if routes else host_port(contact)
        for method, cseq in (("ACK", 1), ("BYE", 2)):
            sock.sendto(
                request(method, contact, local, call_id, from_value, to_final, cseq, routes),
                target,
            )
        return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("callee")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--name", required=True)
    c.add_argument("--log", type=Path, required=True)
    k = sub.add_parser("caller")
    k.add_argument("--proxy", required=True)
    k.add_argument("--uri", required=True)
    k.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.mode == "callee":
        callee(args.port, args.name, args.log)
        return 0
    host, _, port = args.proxy.partition(":")
    print(json.dumps(caller((host, int(port)), args.uri, args.timeout)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
