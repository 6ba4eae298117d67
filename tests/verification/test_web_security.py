"""The verifier's web layer against a hostile client, over real HTTP (issue 11).

The same running site as ``test_web.py`` (uvicorn on loopback, the real
service on a ledger on disk): oversized bodies and integers, infrastructure
details in owners' errors, request tokens, users and keys that are taken away,
the toll-fraud defaults and the budgets of the calls.
"""

from __future__ import annotations

import json
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
    sign_in,
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


# -- 9. keys revoked, users disabled or removed: at once, audited -------------------------


def _admin_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``enumer verifier admin ...`` in-process, on the running site's state file."""
    from enumer.cli import main

    capsys.readouterr()
    status = main(["verifier", "admin", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_admin_cli_takes_access_away_at_once(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    state = site.service.db_path
    session = site.signed_in("olga")
    key = site.auth.add_key("olga", "crm")
    other_key = site.auth.add_key("olga", "billing")
    bearer = {"Authorization": f"Bearer {key}"}
    with site.client() as api:
        assert api.get("/api/v1/console/requests", headers=bearer).status_code == 200
        assert session.get("/console").status_code == 200

        status, out, _ = _admin_cli(capsys, "disable-user", "olga", "--state", state)
        assert (status, out) == (0, "user olga disabled: signed out, API keys refused\n")
        assert error_of(api.get("/api/v1/console/requests", headers=bearer), 401)
        assert session.get("/console").headers["location"] == "/console/login"
        again = sign_in(site.client(), "olga", site.passwords["olga"])
        assert error_of(again, 403) == "this user is disabled; ask an admin"
        listed = _admin_cli(capsys, "list-users", "--state", state)[1]
        assert listed.startswith("olga\toperator\t2 key(s)\tcreated ") and "\tdisabled " in listed

        assert _admin_cli(capsys, "enable-user", "olga", "--state", state)[0] == 0
        assert api.get("/api/v1/console/requests", headers=bearer).status_code == 200
        assert session.get("/console").status_code == 303  # the session stays ended

        keys = _admin_cli(capsys, "list-keys", "--state", state)[1].splitlines()
        assert [line.split("\t")[1:3] for line in keys] == [["olga", "crm"], ["olga", "billing"]]
        crm_id = keys[0].split("\t")[0]
        assert len(crm_id) == 12 and crm_id not in key
        status, out, _ = _admin_cli(capsys, "revoke-key", crm_id, "--state", state)
        assert (status, out) == (0, f"key {crm_id} of olga revoked\n")
        assert error_of(api.get("/api/v1/console/requests", headers=bearer), 401)
        other = {"Authorization": f"Bearer {other_key}"}
        assert api.get("/api/v1/console/requests", headers=other).status_code == 200
        status, _, err = _admin_cli(capsys, "revoke-key", crm_id, "--state", state)
        assert (status, err) == (1, f"error: no API key {crm_id}\n")

        status, out, _ = _admin_cli(capsys, "remove-user", "olga", "--state", state)
        assert (status, out) == (0, "user olga removed with their sessions and API keys\n")
        assert error_of(api.get("/api/v1/console/requests", headers=other), 401)
        assert _admin_cli(capsys, "disable-user", "olga", "--state", state)[2] == (
            "error: no user olga\n"
        )
    session.close()
    actions = [(e.actor, e.action, e.detail.get("user")) for e in site.service.export_audit()]
    assert ("cli", "user.disabled", "olga") in actions
    assert ("cli", "user.enabled", "olga") in actions
    assert ("cli", "key.revoked", "olga") in actions
    assert ("cli", "user.removed", "olga") in actions


def test_admins_take_access_away_in_the_console_and_the_api(site: Site) -> None:
    boss = site.signed_in("boss", "admin")
    site.user("olga")
    olga_key = site.auth.add_key("olga", "crm")
    boss_key = site.auth.add_key("boss", "admin scripts")
    olga = {"Authorization": f"Bearer {olga_key}"}
    admin = {"Authorization": f"Bearer {boss_key}"}
    with site.client() as api:
        page = boss.get("/console/users").text
        assert 'action="/console/users/olga/disable"' in page
        assert 'action="/console/users/boss/disable"' not in page  # not oneself
        olga_id = next(k.id for k in site.auth.list_keys("olga"))
        assert f'action="/console/keys/{olga_id}/revoke"' in page and olga_key not in page

        disabled = post_form(boss, "/console/users", "/console/users/olga/disable")
        assert disabled.headers["location"] == "/console/users"
        assert error_of(api.get("/api/v1/console/requests", headers=olga), 401)
        row = boss.get("/console/users").text.split('id="user-olga"')[1].split("</tr>")[0]
        assert "<td>disabled " in row and ">Enable</button>" in row
        myself = post_form(boss, "/console/users", "/console/users/boss/remove")
        assert error_of(myself, 409) == "you cannot remove your own user"
        assert post_form(boss, "/console/users", "/console/users/olga/enable").status_code == 303
        assert api.get("/api/v1/console/requests", headers=olga).status_code == 200
        revoked = post_form(boss, "/console/users", f"/console/keys/{olga_id}/revoke")
        assert revoked.status_code == 303
        assert error_of(api.get("/api/v1/console/requests", headers=olga), 401)
        no_csrf = boss.post("/console/users/olga/remove", data={"csrf_token": "x" * 40})
        assert error_of(no_csrf, 403) == "CSRF token missing or wrong"

        # The API: admins only.
        new_key = site.auth.add_key("olga", "second")
        olga = {"Authorization": f"Bearer {new_key}"}
        assert error_of(api.get("/api/v1/console/users", headers=olga), 403)
        users = api.get("/api/v1/console/users", headers=admin).json()
        assert [(u["username"], u["disabled"]) for u in users] == [("boss", None), ("olga", None)]
        keys = api.get("/api/v1/console/keys", headers=admin).json()
        assert [k["label"] for k in keys] == ["admin scripts", "second"]
        assert all(len(k["id"]) == 12 for k in keys) and new_key not in json.dumps(keys)
        done = api.post("/api/v1/console/users/olga/disable", headers=admin).json()
        assert [u["disabled"] is not None for u in done] == [False, True]
        assert error_of(api.get("/api/v1/console/requests", headers=olga), 401)
        assert api.post("/api/v1/console/users/olga/enable", headers=admin).status_code == 200
        gone = api.delete(f"/api/v1/console/keys/{keys[1]['id']}", headers=admin)
        assert gone.json()["label"] == "second"
        assert error_of(api.get("/api/v1/console/requests", headers=olga), 401)
        assert error_of(api.delete("/api/v1/console/keys/0123456789ab", headers=admin), 404)
        assert error_of(api.delete("/api/v1/console/keys/nonsense", headers=admin), 400)
        removed = api.delete("/api/v1/console/users/olga", headers=admin).json()
        assert [u["username"] for u in removed] == ["boss"]
        assert error_of(api.delete("/api/v1/console/users/boss", headers=admin), 409)
    boss.close()
    actions = [(e.actor, e.action) for e in site.service.export_audit()]
    for action in ("user.disabled", "user.enabled", "key.revoked", "user.removed"):
        assert ("operator:boss", action) in actions, action
