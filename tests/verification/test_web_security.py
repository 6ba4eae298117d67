"""The verifier's web layer against a hostile client, over real HTTP (issue 11).

The same running site as ``test_web.py`` (uvicorn on loopback, the real
service on a ledger on disk): oversized bodies and integers, infrastructure
details in owners' errors, request tokens, users and keys that are taken away,
the toll-fraud defaults and the budgets of the calls.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from enumer.verification.calls import FlashCaller
from tests.verification.conftest import MakeRecord, MakeService
from tests.verification.sipua import TestPhone
from tests.verification.test_web import (
    CSP,
    MakeSite,
    Site,
    by_id,
    error_of,
    make_site,
    owner_start,
    post_form,
    site,
)

__all__ = ["make_site", "site"]  # fixtures, used by name

BIG = "99999999999999999999999"


def _headers_only(site: Site, path: str, headers: dict[str, str]) -> bytes:
    """A POST's head written by hand, and the whole answer; no byte of the body is sent,
    so a server that waited for the declared body would time the test out."""
    host, port = site.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as conn:
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        conn.sendall(head.encode())
        answer = b""
        while data := conn.recv(65536):
            answer += data
    return answer


# -- 13. request bodies are capped ----------------------------------------------------------


def test_a_declared_large_body_is_refused_with_413_before_it_is_read(site: Site) -> None:
    answer = _headers_only(
        site,
        "/api/v1/requests",
        {"Content-Type": "application/json", "Content-Length": str(100 * 2**20)},
    )
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 Request Entity Too Large", answer[:300]
    assert b'{"error":"the request body is over 64 KiB"}' in rest
    assert f"content-security-policy: {CSP}".encode() in rest.lower()


def test_a_chunked_body_is_cut_off_at_64_kib(site: Site) -> None:
    with site.client() as client:

        def chunks() -> Iterator[bytes]:
            yield b'{"name": "'
            for _ in range(40):
                yield b"1" * 4096
            yield b'"}'

        api = client.post(
            "/api/v1/requests", content=chunks(), headers={"content-type": "application/json"}
        )
        assert error_of(api, 413) == "the request body is over 64 KiB"

        def form() -> Iterator[bytes]:
            yield b"name="
            for _ in range(40):
                yield b"a" * 4096

        page = client.post(
            "/verify",
            content=form(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert error_of(page, 413) == "the request body is over 64 KiB"
        # Just under the limit is read and judged as usual.
        small = client.post("/api/v1/requests", json={"name": "x" * 60_000})
        assert error_of(small, 400).startswith("bad input: name:")


# -- 14. oversized integers ---------------------------------------------------------------


def test_oversized_ids_are_a_400_with_one_log_line(
    site: Site, make_record: MakeRecord, caplog: pytest.LogCaptureFixture
) -> None:
    site.user("olga")
    key = site.auth.add_key("olga")
    auth = {"Authorization": f"Bearer {key}"}
    browser = site.signed_in("boss", "admin")
    with site.client() as api, caplog.at_level(logging.INFO, "enumer.verification"):
        caplog.clear()
        page = browser.get(f"/console/requests/{BIG}")
        assert "request_id" in error_of(page, 400)
        assert error_of(browser.get("/console/audit", params={"request_id": BIG}), 400)
        assert error_of(browser.get("/console/requests/0"), 400)
        for path in (
            f"/api/v1/console/requests/{BIG}",
            f"/api/v1/console/audit?request_id={BIG}",
            f"/api/v1/console/requests/{2**63}",
            "/api/v1/console/requests/-1",
        ):
            assert "request_id" in error_of(api.get(path, headers=auth), 400), path
        post = api.post(
            f"/api/v1/console/requests/{BIG}/approve", json={"reason": "x"}, headers=auth
        )
        assert error_of(post, 400)
        # The largest id SQLite holds names no request: 404.
        assert error_of(api.get(f"/api/v1/console/requests/{2**63 - 1}", headers=auth), 404)
    browser.close()
    records = [r for r in caplog.records if r.name.startswith("enumer.verification")]
    assert all(r.levelno < logging.ERROR and r.exc_info is None for r in records), records
    refused = [r.getMessage() for r in records if "refused" in r.getMessage()]
    assert len(refused) == 8, refused
    assert all("\n" not in m for m in refused), refused


def test_oversized_ids_are_no_request_in_the_service(site: Site) -> None:
    from enumer.verification.model import VerificationError

    with pytest.raises(VerificationError) as refused:
        site.service.get(int(BIG))
    assert refused.value.status == 404
    assert site.service.audit(request_id=int(BIG)) == []


# -- 16. infrastructure details stay with the operators ------------------------------------


def test_the_owner_never_sees_the_trunk_address(
    make_service: MakeService,
    make_site: MakeSite,
    make_record: MakeRecord,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name, owner = make_record("442079460124")
    with TestPhone("silent") as phone:
        site = make_site(service=make_service())
        site.service.caller = FlashCaller(phone.uri, "4420", timeout=0.3)
        trunk = f"127.0.0.1:{phone.port}"
        with site.client() as browser, caplog.at_level(logging.INFO, "enumer.verification"):
            url = owner_start(browser, name)
            challenge = by_id(browser.get(url).text, "challenge")
            signature = site.ledger.sign_message(owner, challenge)
            assert post_form(browser, url, f"{url}/proof", signature=signature).status_code == 303
            called = post_form(browser, url, f"{url}/call")
            message = error_of(called, 502)
            assert message.startswith("the call did not reach +442079460124; try again")
            assert trunk not in called.text and "trunk" not in called.text
            token = url.rsplit("/", 1)[1]
            api = browser.post(f"/api/v1/requests/{token}/call")
            assert error_of(api, 502) == message and trunk not in api.text
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert f"no answer from the trunk {trunk}" in logged  # the operator's log has it
    request_id = site.service.by_token(token).id
    console = site.signed_in("olga")
    page = console.get(f"/console/requests/{request_id}").text
    console.close()
    assert trunk in page  # and so has the console's audit of the request


# -- 12 and 18. request tokens: never handed out twice, kept hashed ------------------------


def test_a_second_start_never_hands_out_the_first_token(
    site: Site, make_record: MakeRecord
) -> None:
    name, owner = make_record("15550401111")
    with site.client() as owner_client, site.client() as neighbour:
        first = owner_client.post("/api/v1/requests", json={"name": name})
        assert first.status_code == 201
        token = first.json()["token"]
        # Same client address (behind one NAT): a new request, a new token.
        second = neighbour.post("/api/v1/requests", json={"name": name})
        assert second.status_code == 201
        assert second.json()["token"] != token and second.json()["id"] != first.json()["id"]
        old = owner_client.get(f"/api/v1/requests/{token}").json()
        assert old["state"] == "expired"
        assert old["reason"] == f"superseded by request #{second.json()['id']}"
        signature = site.ledger.sign_message(owner, first.json()["challenge"])
        late = owner_client.post(f"/api/v1/requests/{token}/proof", json={"signature": signature})
        assert "expired" in error_of(late, 409)
        # The form's path too: each start is a new page, never the old one's.
        pages = {owner_start(owner_client, name) for _ in range(2)}
        assert len(pages) == 2 and f"/r/{token}" not in pages
    state = b"".join(
        Path(site.service.db_path + suffix).read_bytes()
        for suffix in ("", "-wal")
        if Path(site.service.db_path + suffix).exists()
    )
    assert token.encode() not in state and second.json()["token"].encode() not in state
