"""The verifier's web layer over real HTTP: the owner's pages, the console, the JSON API.

Each test runs the app in uvicorn on a loopback port and talks to it with
httpx, as a browser without JavaScript would (forms, cookies, redirects) or as
an integration would (JSON, API keys). The service underneath is the real one
on a ledger on disk (tests/verification/conftest.py); the flash call of the
owner's path goes through a real SIP exchange with the test phone.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from html import unescape
from typing import Any

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher

from enumer.nvs.ledger import Ledger
from enumer.verification.auth import LOGIN_LIMIT, Auth
from enumer.verification.calls import FlashCaller
from enumer.verification.command import uvicorn_config
from enumer.verification.model import RateLimit
from enumer.verification.service import VerificationService
from enumer.verification.web import WebSettings, create_app
from enumer.verifier import update_keeping_owner
from tests.support import free_port
from tests.verification.conftest import (
    E2U,
    VERIFIER,
    Clock,
    MakeRecord,
    MakeService,
    RecordingCaller,
)
from tests.verification.sipua import TestPhone

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
CSP = "default-src 'self'; form-action 'self'; frame-ancestors 'none'"
ROUTE = "pbx.example.com"


# -- a running site ---------------------------------------------------------------------------


class Running:
    """uvicorn serving an app on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn_config(app, port=self.port))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class Site:
    base: str
    service: VerificationService
    auth: Auth
    ledger: Ledger
    caller: RecordingCaller
    clock: Clock
    passwords: dict[str, str] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=15.0, follow_redirects=False)

    def user(self, name: str, role: str = "operator") -> str:
        password = f"{name}-password-123"
        self.auth.add_user(name, password, role)
        self.passwords[name] = password
        return password

    def signed_in(self, name: str, role: str = "operator") -> httpx.Client:
        client = self.client()
        response = sign_in(client, name, self.user(name, role))
        assert response.status_code == 303, response.text
        return client


MakeSite = Callable[..., Site]


@pytest.fixture
def make_site(
    make_service: MakeService, ledger: Ledger, caller: RecordingCaller, clock: Clock
) -> Iterator[MakeSite]:
    """``make_site(trusted_proxy=..., login_limit=..., service=..., **policy)``."""
    running: list[Running] = []

    def make(
        *,
        trusted_proxy: str | None = None,
        login_limit: RateLimit = LOGIN_LIMIT,
        service: VerificationService | None = None,
        **policy: Any,
    ) -> Site:
        svc = service or make_service(**policy)
        auth = Auth(
            svc.db_path,
            clock=clock,
            hasher=FAST,
            login_limit=login_limit,
            on_event=svc.record_event,
        )
        app = create_app(svc, auth, WebSettings(secure_cookies=False, trusted_proxy=trusted_proxy))
        server = Running(app)
        running.append(server)
        return Site(f"http://127.0.0.1:{server.port}", svc, auth, ledger, caller, clock)

    yield make
    for server in running:
        server.stop()


@pytest.fixture
def site(make_site: MakeSite) -> Site:
    return make_site()


# -- reading pages ----------------------------------------------------------------------------


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def by_id(html: str, ident: str) -> str:
    match = re.search(rf'id="{ident}"[^>]*>(.*?)</', html, re.S)
    assert match, f"no element #{ident} in the page"
    return unescape(match.group(1)).strip()


def state_of(html: str) -> str:
    match = re.search(r'id="state" data-state="([^"]+)"', html)
    assert match, "no #state in the page"
    return match.group(1)


def error_of(response: httpx.Response, status: int) -> str:
    """An error page (or JSON error) with ``status``: its one-line message."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert "Traceback" not in response.text and 'File "' not in response.text
    if response.headers["content-type"].startswith("application/json"):
        message = response.json()["error"]
        assert isinstance(message, str)
        return message
    html = response.text
    assert f"<h1>Error {status}</h1>" in html
    assert re.search(r'<a href="/[^"]*" id="back">Back</a>', html)
    message = by_id(html, "error")
    assert '<p class="error" id="error">' in html and "\n" not in message
    return message


def sign_in(client: httpx.Client, user: str, password: str) -> httpx.Response:
    page = client.get("/console/login")
    return client.post(
        "/console/login",
        data={"username": user, "password": password, "csrf_token": csrf_of(page.text)},
    )


def post_form(client: httpx.Client, page_url: str, action: str, **fields: str) -> httpx.Response:
    """Load ``page_url``, then POST ``fields`` to ``action`` with the page's CSRF token."""
    page = client.get(page_url)
    assert page.status_code == 200, page.text[:300]
    return client.post(action, data={**fields, "csrf_token": csrf_of(page.text)})


def owner_start(browser: httpx.Client, name: str) -> str:
    """Look the record up and press "Start verification": the request page's path."""
    page = browser.get("/verify", params={"q": name})
    started = browser.post("/verify", data={"name": name, "csrf_token": csrf_of(page.text)})
    assert started.status_code == 303, started.text[:300]
    return started.headers["location"]


def publish(ledger: Ledger, value: str, name: str) -> None:
    """What the owner does with the shown value: a name_update from their wallet."""
    update_keeping_owner(ledger, name, value, 0)


# -- owner steps through the JSON API (the setup of many tests) ----------------------------


def api_signed(site: Site, name: str) -> dict[str, Any]:
    with site.client() as api:
        started = api.post("/api/v1/requests", json={"name": name}).json()
        token = started["token"]
        signature = site.ledger.sign_message(started["owner"], started["challenge"])
        assert api.post(f"/api/v1/requests/{token}/proof", json={"signature": signature}).is_success
        assert api.post(f"/api/v1/requests/{token}/call").is_success
        done = api.post(f"/api/v1/requests/{token}/code", json={"code": site.caller.last_code})
        assert done.status_code == 200, done.text
        data: dict[str, Any] = done.json()
        return data


def api_active(site: Site, name: str) -> dict[str, Any]:
    signed = api_signed(site, name)
    with site.client() as api:
        commands = api.get(f"/api/v1/requests/{signed['token']}/publish").json()
        publish(site.ledger, commands["value"], name)
        done = api.post(f"/api/v1/requests/{signed['token']}/published").json()
    assert done["state"] == "active", done
    return signed


def api_awaiting_code(site: Site, name: str) -> dict[str, Any]:
    with site.client() as api:
        started = api.post("/api/v1/requests", json={"name": name}).json()
        signature = site.ledger.sign_message(started["owner"], started["challenge"])
        proved = api.post(
            f"/api/v1/requests/{started['token']}/proof", json={"signature": signature}
        )
        data: dict[str, Any] = proved.json()
        assert data["state"] == "awaiting-code", data
        return data


# -- 1. the owner's whole path -----------------------------------------------------------------


def test_owner_path_through_the_pages_with_a_real_flash_call(
    make_service: MakeService, make_site: MakeSite, make_record: MakeRecord
) -> None:
    name, owner = make_record("442079460123")
    with TestPhone("ring") as phone:
        caller = FlashCaller(phone.uri, "4420", ring_seconds=0.05, timeout=5)
        site = make_site(service=make_service(), trusted_proxy=None)
        site.service.caller = caller
        with site.client() as browser:
            home = browser.get("/")
            assert home.status_code == 200
            assert '<form method="get" action="/verify"' in home.text
            assert '<label for="q">ENUM record name or phone number</label>' in home.text
            assert ">Look up</button>" in home.text

            found = browser.get("/verify", params={"q": "+44 20 7946 0123"})
            assert found.status_code == 200
            section = found.text.split('<section class="record card">')[1]
            assert name in section and owner in section
            assert f'<pre class="value">{E2U}</pre>' in unescape(section)
            assert "No problems found" in section
            assert f"not signed by {VERIFIER}" in section
            assert f'name="name" value="{name}"' in section

            started = browser.post(
                "/verify", data={"name": name, "csrf_token": csrf_of(found.text)}
            )
            assert started.status_code == 303
            url = started.headers["location"]
            assert re.fullmatch(r"/r/[A-Za-z0-9_-]{16,}", url)

            page = browser.get(url).text
            assert f"Verification of <code>{name}</code>" in page
            assert state_of(page) == "awaiting-owner-proof"
            assert by_id(page, "owner") == owner
            challenge = by_id(page, "challenge")
            assert name in challenge and owner in challenge
            assert f'signmessage {owner} "{challenge}"' in unescape(page)
            assert f'enumer wallet sign {owner} "{challenge}"' in unescape(page)
            signature = site.ledger.sign_message(owner, challenge)
            proved = post_form(browser, url, f"{url}/proof", signature=signature)
            assert (proved.status_code, proved.headers["location"]) == (303, url)

            page = browser.get(url).text
            assert state_of(page) == "awaiting-code"
            assert "Nobody needs to answer" in page
            called = post_form(browser, url, f"{url}/call")
            assert called.status_code == 303, called.text
            call = phone.wait_for_call(5)
            assert call.called == "+442079460123" and call.problems == []
            page = browser.get(url).text
            assert re.search(r"valid until \d\d:\d\d UTC, 5 attempts left", page)
            assert caller.hint in unescape(page)
            assert 'inputmode="numeric"' in page and 'autocomplete="one-time-code"' in page

            checked = post_form(browser, url, f"{url}/code", code=phone.last_code())
            assert checked.status_code == 303, checked.text
            page = browser.get(url).text
            assert state_of(page) == "signed"
            sig_line = by_id(page, "sig-line")
            assert sig_line.startswith(f"SIG={VERIFIER}|")
            new_value = by_id(page, "new-value")
            assert new_value == E2U + "\n" + sig_line
            assert name in by_id(page, "cmd-enumer")
            assert "name_update" in by_id(page, "cmd-emercoin")

            publish(site.ledger, new_value, name)
            done = post_form(browser, url, f"{url}/published")
            assert done.status_code == 303
            page = browser.get(url).text
            assert state_of(page) == "active"
            assert 'href="/lookup/+442079460123"' in page

            lookup = browser.get("/lookup/+442079460123").text
            assert "<h1>Lookup +442079460123</h1>" in lookup
            records = lookup.split('id="records"')[1]
            assert name in records and "valid" in records and "served" in records
            assert ROUTE in lookup.split('id="route"')[1].split("</section>")[0]


def test_owner_path_through_the_json_api_to_active_after_the_chain_update(
    site: Site, make_record: MakeRecord
) -> None:
    name, owner = make_record("15550104444")
    with site.client() as api:
        records = api.get("/api/v1/records", params={"q": "+1 555 010 4444"})
        assert records.status_code == 200
        [record] = records.json()
        assert (record["name"], record["owner"], record["signed_by_us"]) == (name, owner, False)
        assert record["lint"]["ok"] is True

        started = api.post("/api/v1/requests", json={"name": name})
        assert started.status_code == 201
        request = started.json()
        token = request["token"]
        assert request["state"] == "awaiting-owner-proof"
        assert api.get(f"/api/v1/requests/{token}").json()["id"] == request["id"]

        signature = site.ledger.sign_message(owner, request["challenge"])
        proved = api.post(f"/api/v1/requests/{token}/proof", json={"signature": signature})
        assert proved.status_code == 200 and proved.json()["state"] == "awaiting-code"
        called = api.post(f"/api/v1/requests/{token}/call")
        assert called.status_code == 200 and called.json()["calls_made"] == 1
        assert site.caller.calls[-1][0] == "15550104444"
        coded = api.post(f"/api/v1/requests/{token}/code", json={"code": site.caller.last_code})
        assert coded.status_code == 200
        assert coded.json()["state"] == "signed"

        commands = api.get(f"/api/v1/requests/{token}/publish").json()
        assert commands["value"].endswith(coded.json()["sig_line"])
        # Said before the line is on the chain: the service waits for it.
        waiting = api.post(f"/api/v1/requests/{token}/published").json()
        assert waiting["state"] == "waiting-for-chain"
        publish(site.ledger, commands["value"], name)
        assert [r.name for r in site.service.poll_chain()] == [name]
        assert api.get(f"/api/v1/requests/{token}").json()["state"] == "active"

        lookup = api.get("/api/v1/lookup/+15550104444").json()
        assert ROUTE in lookup["uri"]
        assert lookup["records"][0]["signatures"][0]["status"] == "valid"


# -- 2. errors: the right status, one line, never a traceback ---------------------------------


def test_lookup_errors(site: Site) -> None:
    with site.client() as browser:
        assert "no ENUM record" in error_of(
            browser.get("/verify", params={"q": "enum:15559990000:0"}), 404
        )
        assert "no ENUM record" in error_of(
            browser.get("/verify", params={"q": "+15559990000"}), 404
        )
        assert "letter" in error_of(browser.get("/verify", params={"q": "+1 555 CALL"}), 400)
        assert error_of(browser.get("/verify", params={"q": ""}), 400)
        assert "national number" in error_of(browser.get("/lookup/0301234567"), 400)
        assert error_of(browser.get("/lookup/12ab"), 400)
        assert error_of(browser.get("/r/no-such-token"), 404) == "no such request (check the link)"
        assert error_of(browser.get("/no/such/page"), 404) == "no such page"
        unknown = browser.get("/api/v1/records", params={"q": "+15559990000"})
        assert "no ENUM record" in error_of(unknown, 404)
        assert error_of(browser.get("/api/v1/requests/nope"), 404)
        bad_body = browser.post("/api/v1/requests", json={"nom": "x"})
        assert "name" in error_of(bad_body, 400)


def test_start_refuses_unknown_records_through_the_form(site: Site) -> None:
    with site.client() as browser:
        response = post_form(browser, "/console/login", "/verify", name="enum:15559990000:0")
        assert "no ENUM record" in error_of(response, 404)


def test_wrong_owner_signature_is_refused(site: Site, make_record: MakeRecord) -> None:
    name, _ = make_record("15550105555")
    stranger = site.ledger.get_new_address()
    with site.client() as browser:
        url = owner_start(browser, name)
        page = browser.get(url).text
        forged = site.ledger.sign_message(stranger, by_id(page, "challenge"))
        response = post_form(browser, url, f"{url}/proof", signature=forged)
        assert "does not prove ownership" in error_of(response, 403)
        assert "base64" in error_of(post_form(browser, url, f"{url}/proof", signature="@@"), 400)
        # No call before the proof.
        assert (
            error_of(post_form(browser, url, f"{url}/call"), 403) == "prove record ownership first"
        )
        assert site.caller.calls == []
        assert state_of(browser.get(url).text) == "awaiting-owner-proof"


def test_wrong_expired_and_replayed_codes(site: Site, make_record: MakeRecord) -> None:
    name, _ = make_record("15550106666")
    request = api_awaiting_code(site, name)
    url = f"/r/{request['token']}"
    with site.client() as browser:
        assert post_form(browser, url, f"{url}/call").status_code == 303
        code = site.caller.last_code
        wrong = f"{(int(code) + 1) % 10000:04d}"
        response = post_form(browser, url, f"{url}/code", code=wrong)
        assert error_of(response, 403) == "wrong code, 4 attempts left"
        assert "4 attempts left" in browser.get(url).text
        assert "4 digits" in error_of(post_form(browser, url, f"{url}/code", code="12"), 400)

        site.clock.advance(601)  # the code lived 10 minutes
        expired = post_form(browser, url, f"{url}/code", code=code)
        assert "expired" in error_of(expired, 410)

        assert post_form(browser, url, f"{url}/call").status_code == 303
        code = site.caller.last_code
        page = browser.get(url).text
        token = csrf_of(page)
        assert (
            browser.post(f"{url}/code", data={"code": code, "csrf_token": token}).status_code == 303
        )
        # The same form sent again: the code was used up with the signature.
        replay = browser.post(f"{url}/code", data={"code": code, "csrf_token": token})
        assert "takes no code" in error_of(replay, 409)
        assert state_of(browser.get(url).text) == "signed"


def test_deny_listed_prefix_is_never_called(site: Site, make_record: MakeRecord) -> None:
    name, _ = make_record("19005550123")
    request = api_awaiting_code(site, name)
    url = f"/r/{request['token']}"
    with site.client() as browser:
        response = post_form(browser, url, f"{url}/call")
        assert "premium-rate" in error_of(response, 403)
    with site.client() as api:
        called = api.post(f"/api/v1/requests/{request['token']}/call")
        assert "premium-rate" in error_of(called, 403)
    assert site.caller.calls == []


def test_rate_limit_per_client(make_site: MakeSite, make_record: MakeRecord) -> None:
    site = make_site(per_client=RateLimit(2, 3600))
    names = [make_record(f"1555010700{i}")[0] for i in range(3)]
    with site.client() as browser:
        for name in names[:2]:
            owner_start(browser, name)
        limited = post_form(browser, "/console/login", "/verify", name=names[2])
        assert "too many attempts from your address" in error_of(limited, 429)
    with site.client() as api:
        assert error_of(api.post("/api/v1/requests", json={"name": names[2]}), 429)


def test_no_trunk_means_503_for_calls(make_site: MakeSite, make_record: MakeRecord) -> None:
    site = make_site(no_caller=True)
    name, _ = make_record("15550108888")
    request = api_awaiting_code(site, name)
    url = f"/r/{request['token']}"
    with site.client() as browser:
        page = browser.get(url).text
        # The page promises no call: no button that could only answer 503.
        assert "flash call" not in page and f'action="{url}/call"' not in page
        assert "checks that you hold the number +15550108888 by hand" in page
        assert "operator of" in browser.get("/").text.split('id="manual-step"')[1]
        response = post_form(browser, f"/verify?q={name}", f"{url}/call")
        assert error_of(response, 503) == (
            "no outbound trunk configured; an operator can approve manually"
        )


def test_csrf_is_required_on_every_form(site: Site, make_record: MakeRecord) -> None:
    name, _ = make_record("15550109999")
    with site.client() as fresh:
        # No cookie and no token (a form posted from another site).
        response = fresh.post("/verify", data={"name": name})
        assert error_of(response, 403) == "CSRF token missing or wrong"
    with site.client() as browser:
        browser.get("/verify", params={"q": name})  # gets the cookie
        assert error_of(browser.post("/verify", data={"name": name}), 403)
        wrong = browser.post("/verify", data={"name": name, "csrf_token": "x" * 43})
        assert error_of(wrong, 403) == "CSRF token missing or wrong"
        url = owner_start(browser, name)
        for step in ("proof", "call", "code", "published"):
            forged = browser.post(f"{url}/{step}", data={"csrf_token": "forged", "code": "1234"})
            assert error_of(forged, 403) == "CSRF token missing or wrong"
        login = browser.post("/console/login", data={"username": "a", "password": "b"})
        assert error_of(login, 403) == "CSRF token missing or wrong"
    with closing(site.signed_in("olga")) as operator:
        request = site.service.list_requests()[0]
        # The public double-submit token is not the session's: console forms refuse it.
        public = csrf_of(operator.get("/verify", params={"q": name}).text)
        reject = operator.post(
            f"/console/requests/{request.id}/reject", data={"reason": "r", "csrf_token": public}
        )
        assert error_of(reject, 403) == "CSRF token missing or wrong"
        assert site.service.get(request.id).state.value == "awaiting-owner-proof"
    assert site.caller.calls == []


def test_unexpected_exceptions_become_a_500_page_without_details(
    site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(query: str) -> Any:
        raise RuntimeError("database exploded at /secret/path")

    monkeypatch.setattr(site.service, "find_records", broken)
    with site.client() as browser, caplog.at_level("ERROR", "enumer.verification.web"):
        page = browser.get("/verify", params={"q": "+15551234567", "token": "abc"})
        assert error_of(page, 500) == "internal error"
        assert "exploded" not in page.text
        api = browser.get("/api/v1/records", params={"q": "+15551234567"})
        assert api.json() == {"error": "internal error"} and api.status_code == 500
        assert page.headers["content-security-policy"] == CSP
        monkeypatch.setattr(site.service, "by_token", broken)
        assert error_of(browser.get("/r/owners-secret-token"), 500) == "internal error"
    logged = [r.getMessage() for r in caplog.records]
    assert any("GET /verify: RuntimeError: database exploded" in m for m in logged), logged
    assert any("GET /r/<token>: RuntimeError" in m for m in logged), logged
    assert not any("token=abc" in m for m in logged)  # no query strings in the log
    assert not any("owners-secret-token" in m for m in logged)  # no tokens either


# -- 3. the console ----------------------------------------------------------------------------


def test_console_needs_a_session(site: Site) -> None:
    with site.client() as anonymous:
        for path in ("/console", "/console/requests/1", "/console/audit", "/console/users"):
            response = anonymous.get(path)
            back = "" if path == "/console" else f"?next={path}"  # the page, after sign-in
            assert (response.status_code, response.headers["location"]) == (
                303,
                "/console/login" + back,
            )
        posted = anonymous.post("/console/requests/1/reject", data={"reason": "x"})
        assert posted.status_code == 303
        page = anonymous.get("/console/login").text
        assert '<form method="post" action="/console/login">' in page
        assert 'id="username"' in page and 'type="password" name="password" id="password"' in page


def test_login_logout_and_cookie_flags(site: Site) -> None:
    password = site.user("olga")
    with site.client() as browser:
        wrong = sign_in(browser, "olga", "not her password")
        assert wrong.status_code == 401
        assert by_id(wrong.text, "error") == "wrong user name or password"
        assert 'id="username" value="olga"' in wrong.text
        assert sign_in(browser, "nobody", password).status_code == 401

        ok = sign_in(browser, "olga", password)
        assert (ok.status_code, ok.headers["location"]) == (303, "/console")
        cookie = ok.headers["set-cookie"]
        assert cookie.startswith("enumer_session=")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # this test site runs on plain HTTP
        queue = browser.get("/console")
        assert queue.status_code == 200 and 'id="queue"' in queue.text
        assert "Signed in as <strong>olga</strong>" in queue.text
        assert 'href="/console/users"' not in queue.text  # operators see no Users link

        out = browser.post("/console/logout", data={"csrf_token": csrf_of(queue.text)})
        assert (out.status_code, out.headers["location"]) == (303, "/console/login")
        assert browser.get("/console").status_code == 303
    actions = [e.action for e in site.service.audit()]
    assert actions[:3] == ["logout", "login", "login.failed"]


def test_login_attempts_are_rate_limited(make_site: MakeSite) -> None:
    site = make_site(login_limit=RateLimit(3, 900))
    password = site.user("olga")
    with site.client() as browser:
        for _ in range(3):
            assert sign_in(browser, "olga", "guess-guess-guess").status_code == 401
        limited = sign_in(browser, "olga", password)
        assert "too many failed sign-ins" in error_of(limited, 429)


def test_queue_filter_decisions_and_audit(site: Site, make_record: MakeRecord) -> None:
    active_name, _ = make_record("15550201111")
    manual_name, _ = make_record("15550202222")
    other_name, _ = make_record("15550203333")
    active = api_active(site, active_name)
    manual = api_awaiting_code(site, manual_name)
    with site.client() as api:
        other = api.post("/api/v1/requests", json={"name": other_name}).json()
    with closing(site.signed_in("olga")) as operator:
        queue = operator.get("/console").text
        rows = re.findall(r'<tr class="request" data-id="(\d+)">', queue)
        assert sorted(int(r) for r in rows) == sorted([active["id"], manual["id"], other["id"]])
        filtered = operator.get("/console", params={"state": "active"}).text
        assert re.findall(r'<tr class="request" data-id="(\d+)">', filtered) == [str(active["id"])]
        assert '<option value="active" selected>' in filtered
        searched = operator.get("/console", params={"q": "15550202222"}).text
        assert re.findall(r'<tr class="request" data-id="(\d+)">', searched) == [str(manual["id"])]
        assert "unknown state" in error_of(operator.get("/console", params={"state": "x"}), 400)

        # Manual approval where the call cannot reach the number.
        detail_url = f"/console/requests/{manual['id']}"
        detail = operator.get(detail_url).text
        assert f'action="/console/requests/{manual["id"]}/approve"' in detail
        assert "/revoke" not in detail  # nothing signed yet
        empty = post_form(operator, detail_url, f"{detail_url}/approve", reason="  ")
        assert error_of(empty, 400) == "give a reason: it goes into the audit log"
        approved = post_form(
            operator, detail_url, f"{detail_url}/approve", reason="called the office line"
        )
        assert (approved.status_code, approved.headers["location"]) == (303, detail_url)
        detail = operator.get(detail_url).text
        assert state_of(detail) == "signed"
        assert by_id(detail, "reason") == "called the office line"
        assert "/approve" not in detail and "/revoke" in detail

        # Reject before the owner proved anything.
        other_url = f"/console/requests/{other['id']}"
        rejected = post_form(operator, other_url, f"{other_url}/reject", reason="spam")
        assert rejected.status_code == 303
        assert state_of(operator.get(other_url).text) == "rejected"
        again = post_form(operator, detail_url, f"{detail_url}/reject", reason="late")
        assert error_of(again, 409)

        # Re-verification: the active request is due within 400 days, not within 30.
        due = operator.get("/console/due", params={"days": 400}).text
        assert re.findall(r'<tr class="request" data-id="(\d+)">', due) == [str(active["id"])]
        due = operator.get("/console/due", params={"days": 30}).text
        assert 'id="due"' in due and "Nothing is due." in due

        # Revoke the active one: the SRL goes on the chain, the lookup shows it.
        active_url = f"/console/requests/{active['id']}"
        revoked = post_form(
            operator,
            active_url,
            f"{active_url}/revoke",
            reason="number ported away",
            confirm="yes",
        )
        assert revoked.status_code == 303
        page = operator.get(active_url).text
        assert state_of(page) == "revoked" and "/revoke" not in page
        assert "request.revoked" in page  # its audit entries are on the detail page
        lookup = operator.get("/lookup/+15550201111").text
        assert "revoked" in lookup.split('id="records"')[1]
        assert ROUTE not in lookup.split('id="route"')[1].split("</section>")[0]

        audit = operator.get("/console/audit").text
        assert 'id="audit"' in audit and 'id="chain"' in audit and "chain intact" in audit
        for action in ("request.created", "owner.proved", "code.sent", "request.approved"):
            assert action in audit
        assert "operator:olga" in audit and "number ported away" in audit
        assert (
            "called the office line"
            in operator.get("/console/audit", params={"request_id": manual["id"]}).text
        )

        assert error_of(operator.get("/console/due", params={"days": "soon"}), 400)
        assert operator.get("/console/flagged").status_code == 200
        assert "no request" in error_of(operator.get("/console/requests/999"), 404)


def test_operator_and_admin_roles(site: Site) -> None:
    with (
        closing(site.signed_in("olga")) as operator,
        closing(site.signed_in("boss", "admin")) as admin,
    ):
        for path in ("/console/users", "/console/audit/export"):
            assert error_of(operator.get(path), 403) == "this needs the admin role"
        token = csrf_of(operator.get("/console").text)
        posted = operator.post(
            "/console/users",
            data={
                "username": "mallory",
                "password": "x" * 12,
                "role": "admin",
                "csrf_token": token,
            },
        )
        assert error_of(posted, 403) == "this needs the admin role"
        assert site.auth.get_user("mallory") is None

        users = admin.get("/console/users")
        assert users.status_code == 200 and "olga" in users.text and "boss" in users.text
        added = post_form(
            admin,
            "/console/users",
            "/console/users",
            username="nina",
            password="nina-password-1",
            role="operator",
        )
        assert (added.status_code, added.headers["location"]) == (303, "/console/users")
        assert sign_in(site.client(), "nina", "nina-password-1").status_code == 303
        short = post_form(
            admin, "/console/users", "/console/users", username="z", password="short", role="admin"
        )
        assert "too short" in error_of(short, 400)

        export = admin.get("/console/audit/export")
        assert export.status_code == 200
        assert export.headers["content-type"].startswith("application/x-ndjson")
        assert "attachment" in export.headers["content-disposition"]
        entries = [json.loads(line) for line in export.text.splitlines()]
        assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
        assert {"user.added", "login"} <= {e["action"] for e in entries}
        assert "nina-password-1" not in export.text


# -- 4. the operator API -----------------------------------------------------------------------


def test_operator_api_needs_a_key(site: Site, make_record: MakeRecord) -> None:
    site.user("olga")
    key = site.auth.add_key("olga")
    with site.client() as api:
        missing = api.get("/api/v1/console/requests")
        assert error_of(missing, 401) == "missing or wrong API key"
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = api.get("/api/v1/console/requests", headers={"Authorization": f"Bearer {key}x"})
        assert error_of(wrong, 401)
        # A console session cookie is no key: the API reads no cookies.
        browser = site.signed_in("boss", "admin")
        assert error_of(browser.get("/api/v1/console/requests"), 401)
        browser.close()

        name, _ = make_record("15550301111")
        request = api_awaiting_code(site, name)
        auth = {"Authorization": f"Bearer {key}"}
        listed = api.get(
            "/api/v1/console/requests", params={"state": "awaiting-code"}, headers=auth
        )
        assert listed.status_code == 200
        assert [r["id"] for r in listed.json()] == [request["id"]]
        assert "token" not in listed.json()[0]
        detail = api.get(f"/api/v1/console/requests/{request['id']}", headers=auth).json()
        assert detail["request"]["name"] == name
        assert [e["action"] for e in detail["audit"]] == ["owner.proved", "request.created"]

        no_reason = api.post(
            f"/api/v1/console/requests/{request['id']}/approve", json={"reason": ""}, headers=auth
        )
        assert error_of(no_reason, 400)
        approved = api.post(
            f"/api/v1/console/requests/{request['id']}/approve",
            json={"reason": "verified by a call to the main line"},
            headers=auth,
        )
        assert approved.status_code == 200 and approved.json()["state"] == "signed"
        revoke_again = api.post(
            f"/api/v1/console/requests/{request['id']}/reject", json={"reason": "x"}, headers=auth
        )
        assert error_of(revoke_again, 409)
        due = api.get("/api/v1/console/due", params={"days": 400}, headers=auth).json()
        assert [r["id"] for r in due] == []  # signed, not active yet
        assert api.get("/api/v1/console/flagged", headers=auth).json() == []
        audit = api.get(
            "/api/v1/console/audit", params={"request_id": request["id"]}, headers=auth
        ).json()
        assert audit[0]["action"] == "request.approved"
        assert audit[0]["actor"] == "operator:olga"


# -- 5. headers, proxies, the API document ----------------------------------------------------


def test_security_headers_on_every_kind_of_answer(site: Site) -> None:
    with site.client() as client:
        answers = [
            client.get("/"),
            client.get("/verify", params={"q": "+1 555 CALL"}),  # error page
            client.get("/console"),  # redirect
            client.get("/api/v1/requests/nope"),  # JSON error
            client.get("/api/openapi.json"),
            client.get("/static/style.css"),
        ]
    for response in answers:
        assert response.headers["content-security-policy"] == CSP, response.url
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    for response in answers[:5]:
        assert response.headers["cache-control"] == "no-store", response.url
    assert "server" not in answers[0].headers


def test_client_address_comes_from_the_trusted_proxy_only(
    make_site: MakeSite, make_record: MakeRecord
) -> None:
    name, _ = make_record("15550401111")
    forged = {"X-Forwarded-For": "203.0.113.66"}
    plain = make_site()
    with plain.client() as api:
        api.post("/api/v1/requests", json={"name": name}, headers=forged)
    assert plain.service.audit()[0].actor == "owner@127.0.0.1"
    proxied = make_site(service=plain.service, trusted_proxy="127.0.0.1")
    with proxied.client() as api:
        headers = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
        api.post("/api/v1/requests", json={"name": name}, headers=headers)
    assert proxied.service.audit()[0].actor == "owner@203.0.113.7"


def test_openapi_document_lists_the_api(site: Site) -> None:
    with site.client() as client:
        response = client.get("/api/openapi.json")
        assert response.status_code == 200
        document = response.json()
        assert client.get("/docs").status_code == 404  # no Swagger UI (it would need a CDN)
    paths = document["paths"]
    for path in (
        "/api/v1/records",
        "/api/v1/requests",
        "/api/v1/requests/{token}",
        "/api/v1/requests/{token}/proof",
        "/api/v1/requests/{token}/call",
        "/api/v1/requests/{token}/code",
        "/api/v1/requests/{token}/published",
        "/api/v1/requests/{token}/publish",
        "/api/v1/lookup/{number}",
        "/api/v1/console/requests",
        "/api/v1/console/requests/{request_id}",
        "/api/v1/console/requests/{request_id}/approve",
        "/api/v1/console/requests/{request_id}/reject",
        "/api/v1/console/requests/{request_id}/revoke",
        "/api/v1/console/due",
        "/api/v1/console/flagged",
        "/api/v1/console/audit",
    ):
        assert path in paths, path
    assert all(p.startswith("/api/v1/") for p in paths)  # HTML pages are not API
    created = paths["/api/v1/requests"]["post"]["responses"]
    assert created["201"]["content"]["application/json"]["schema"]["$ref"].endswith("RequestOut")
    assert "429" in created
    schemas = document["components"]["schemas"]
    assert "token" in schemas["RequestOut"]["properties"]
    assert "uri" in schemas["LookupOut"]["properties"]
