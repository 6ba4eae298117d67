"""The verifier's web pages driven in a real browser (Debian's chromium with Playwright).

What a number owner and an operator do, by clicking: the owner goes from an
unsigned record to a signed, routed one (the code arrives by a flash call to
the test SIP phone), an operator revokes it in the console, and the abuse
cases are refused with the error page the contract promises. Element ids,
URLs and button texts come from the web contract; each test saves screenshots
of its key pages under ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator
from functools import partial
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests import support
from tests.verification.browser import (  # noqa: F401 - fixtures are used by name
    SIP_ROUTE,
    SIP_VALUE,
    VERIFIER,
    Shot,
    Verifier,
    browser_fixture,
    click_through,
    drive_to_active,
    error_text,
    form_post_status,
    page_fixture,
    received_code,
    shot_fixture,
    start_verifier,
    state_of,
    submit,
    wait_until,
)
from tests.verification.sipua import TestPhone

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

OPERATOR = ("op", "operator", "op-password-0123")
ADMIN = ("boss", "admin", "admin-password-4567")

#: Test numbers in Ofcom's drama range (+44 20 7946 0xxx): never a real subscriber.
#: One per test, so the per-number call limit of one test never touches another.
OWNER_PATH = "442079460101"
CONSOLE = "442079460102"
ABUSE = "442079460103"
ACCESSIBLE = "442079460104"
PREMIUM = "19005550123"  # +1 900: premium rate, on the default deny list


# -- proof that chromium and Playwright work here -------------------------------------


@pytest.fixture
def static_site(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "index.html").write_text(
        "<!doctype html><html lang=en><title>smoke</title>"
        "<main><h1 id=hello>Chromium works</h1><p>served by http.server</p></main></html>"
    )
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = HTTPServer(("127.0.0.1", support.free_port()), handler)
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_chromium_renders_a_local_page(page: Page, shot: Shot, static_site: str) -> None:
    response = page.goto(static_site)
    assert response is not None and response.status == 200
    assert page.locator("#hello").inner_text() == "Chromium works"
    path = shot(page, "smoke")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


# -- the verifier service for this module ----------------------------------------------


@pytest.fixture(scope="module")
def phone() -> Iterator[TestPhone]:
    """The test SIP phone on loopback, standing in for the verifier's outbound trunk."""
    with TestPhone() as test_phone:
        yield test_phone


@pytest.fixture(scope="module")
def verifier(tmp_path_factory: pytest.TempPathFactory, phone: TestPhone) -> Iterator[Verifier]:
    users = {OPERATOR[0]: OPERATOR[1:], ADMIN[0]: ADMIN[1:]}
    running = start_verifier(tmp_path_factory.mktemp("verifier"), phone, users)
    try:
        yield running
    finally:
        support.stop(running.process)
    log = running.log.read_text()
    assert "Traceback" not in log, log


def look_up(page: Page, verifier: Verifier, query: str) -> None:
    """Home page -> the search field -> Look up."""
    page.goto(verifier.url("/"))
    page.get_by_label("ENUM record name or phone number").fill(query)
    click_through(page, page.get_by_role("button", name="Look up"))


def start_request(page: Page, verifier: Verifier, name: str) -> str:
    """From the records page, Start verification of ``name``; the request page's URL."""
    record = page.locator(".record").filter(has_text=name)
    assert submit(page, "Start verification", scope=record).status == 303
    assert re.search(r"/r/[^/?#]+$", page.url), page.url
    return page.url


def prove_owner(
    page: Page, verifier: Verifier, address: str | None = None, *, cli: bool = True
) -> int:
    """Sign the page's challenge as the owner would (``enumer wallet sign``) and paste it."""
    challenge = (page.locator("#challenge").text_content() or "").strip()
    owner = (page.locator("#owner").text_content() or "").strip()
    signature = verifier.sign(address or owner, challenge, cli=cli)
    page.locator("#signature").fill(signature)
    return form_post_status(page, "Prove ownership")


def call_for_code(page: Page, verifier: Verifier, digits: str) -> str:
    """Call me now; the code the test phone read from the INVITE's caller number."""
    assert form_post_status(page, "Call me now") == 303
    return received_code(verifier, digits)


def lookup_row(page: Page, name: str) -> str:
    return page.locator("#records tr").filter(has_text=name).inner_text()


# -- 1. the owner's whole path ---------------------------------------------------------


def test_owner_path_from_unsigned_record_to_routed_number(
    page: Page, shot: Shot, verifier: Verifier
) -> None:
    name = verifier.new_record(OWNER_PATH)
    look_up(page, verifier, "+" + OWNER_PATH)
    shot(page, "records")
    record = page.locator(".record").filter(has_text=name)
    assert record.count() == 1
    assert verifier.owner in record.inner_text()
    assert (record.locator("pre.value").text_content() or "").strip() == SIP_VALUE
    assert f"not signed by {VERIFIER}" in record.inner_text()

    start_request(page, verifier, name)
    assert f"Verification of {name}" in page.locator("h1").inner_text()
    assert state_of(page) == "awaiting-owner-proof"
    assert (page.locator("#owner").text_content() or "").strip() == verifier.owner
    challenge = (page.locator("#challenge").text_content() or "").strip()
    assert name in challenge and verifier.owner in challenge
    shot(page, "challenge")

    assert prove_owner(page, verifier) == 303
    assert state_of(page) == "awaiting-code"
    shot(page, "call")

    code = call_for_code(page, verifier, OWNER_PATH)
    assert re.fullmatch(r"[0-9]{4,8}", code), code
    assert re.search(
        r"valid until \d\d:\d\d UTC, 5 attempts left", page.locator("main").inner_text()
    )
    page.locator("#code").fill(code)
    shot(page, "code")
    assert form_post_status(page, "Check code") == 303
    assert state_of(page) == "signed"
    shot(page, "signed")

    sig_line = (page.locator("#sig-line").text_content() or "").strip()
    assert sig_line.startswith(f"SIG={VERIFIER}|"), sig_line
    new_value = (page.locator("#new-value").text_content() or "").strip()
    assert new_value.splitlines() == [SIP_VALUE, *sig_line.splitlines()]  # SIG= and VSIG=
    assert name in (page.locator("#cmd-enumer").text_content() or "")
    assert "name_update" in (page.locator("#cmd-emercoin").text_content() or "")

    # The owner publishes the shown value from their own wallet.
    verifier.enumer("name", "update", name, "-", "365", input=new_value + "\n")
    assert form_post_status(page, "I have published it") == 303
    assert state_of(page) in ("waiting-for-chain", "active")

    def active() -> bool:
        page.reload()
        return state_of(page) == "active"

    wait_until(active, 15, "the request to become active")
    shot(page, "active")

    click_through(page, page.locator(f"main a[href*='/lookup/'][href$='{OWNER_PATH}']").first)
    assert page.locator("h1").inner_text().strip() == f"Lookup +{OWNER_PATH}"
    row = lookup_row(page, name)
    assert VERIFIER in row and "valid" in row, row
    assert "served" in row and "not served" not in row, row
    assert SIP_ROUTE in page.locator("#route").inner_text()
    shot(page, "lookup")


# -- 2. the operator console -----------------------------------------------------------


def sign_in(page: Page, verifier: Verifier, user: str, password: str) -> int:
    page.goto(verifier.url("/console/login"))
    page.locator("#username").fill(user)
    page.locator("#password").fill(password)
    return form_post_status(page, "Sign in")


def test_operator_revokes_in_the_console(page: Page, shot: Shot, verifier: Verifier) -> None:
    name = verifier.new_record(CONSOLE)
    request = drive_to_active(verifier, name)

    # Not signed in: the console sends the browser to the login page.
    page.goto(verifier.url("/console"))
    assert page.url.endswith("/console/login")
    user, _, password = OPERATOR
    assert sign_in(page, verifier, user, password + "-wrong") == 401
    assert error_text(page) == "wrong user name or password"
    shot(page, "login-refused")
    assert sign_in(page, verifier, user, password) == 303
    assert page.locator("#queue").count() == 1
    shot(page, "queue")

    # Filter the queue by state: the active request is there, not under "rejected".
    page.locator("select[name=state]").select_option("active")
    click_through(page, page.get_by_role("button", name="Filter"))
    assert "state=active" in page.url
    rows = page.locator("#queue tr.request")
    assert rows.filter(has_text=name).count() == 1
    for text in rows.all_inner_texts():
        assert "active" in text, text
    shot(page, "queue-active")
    page.locator("select[name=state]").select_option("rejected")
    click_through(page, page.get_by_role("button", name="Filter"))
    assert page.locator("#queue tr.request").filter(has_text=name).count() == 0
    page.locator("select[name=state]").select_option("")
    page.locator("input[name=q]").fill(CONSOLE)
    click_through(page, page.get_by_role("button", name="Filter"))
    found = page.locator("#queue tr.request").all_inner_texts()
    assert found and all(CONSOLE in text for text in found), found
    assert page.locator("a[href='/console/users']").count() == 0  # not for operators

    click_through(page, page.locator(f"a[href$='/console/requests/{request['id']}']").first)
    assert page.url.endswith(f"/console/requests/{request['id']}")
    assert state_of(page) == "active"
    shot(page, "detail")

    # The session's cookie alone does not revoke: the form's CSRF token must match.
    for token in ("forged-token", ""):
        forged = page.request.post(
            verifier.url(f"/console/requests/{request['id']}/revoke"),
            form={"reason": "forged", "csrf_token": token},
            max_redirects=0,
        )
        assert forged.status == 403 and "CSRF token missing or wrong" in forged.text()
    page.reload()
    assert state_of(page) == "active"
    revoke_form = page.locator("form[action$='/revoke']")
    reason = "number ported to another carrier"
    revoke_form.locator("textarea[name=reason]").fill(reason)
    assert form_post_status(page, "Revoke signature", scope=revoke_form) == 303
    assert page.url.endswith(f"/console/requests/{request['id']}")
    assert state_of(page) == "revoked"
    assert page.locator("#reason").inner_text() == reason
    entries = page.locator("#audit tr").filter(has_text="request.revoked")
    assert entries.count() == 1 and f"operator:{user}" in entries.inner_text()
    assert page.locator("#audit tr").filter(has_text="request.signed").count() == 1
    assert page.locator("form[action$='/revoke']").count() == 0  # no second revocation
    shot(page, "revoked")

    page.goto(verifier.url("/console/audit"))
    audit = page.locator("#audit tr").filter(has_text=name)
    assert audit.filter(has_text="request.created").count() == 1
    assert audit.filter(has_text="request.revoked").count() == 1
    shot(page, "audit")

    def revoked_in_lookup() -> bool:
        page.goto(verifier.url(f"/lookup/+{CONSOLE}"))
        return "revoked" in lookup_row(page, name)

    wait_until(revoked_in_lookup, 15, "the lookup to show the revocation")
    assert "not served" in lookup_row(page, name)
    route = page.locator("#route").inner_text()
    assert SIP_ROUTE not in route and "no route" in route, route
    shot(page, "lookup-revoked")

    # The operator is not an admin; the admin can see the users.
    response = page.goto(verifier.url("/console/users"))
    assert response is not None and response.status == 403
    assert error_text(page)
    page.context.clear_cookies()
    admin, _, admin_password = ADMIN
    assert sign_in(page, verifier, admin, admin_password) == 303
    response = page.goto(verifier.url("/console/users"))
    assert response is not None and response.status == 200
    users = page.locator("main").inner_text()
    assert OPERATOR[0] in users and ADMIN[0] in users
    assert page.locator("a[href='/console/users']").count() >= 1  # the admin's nav link
    shot(page, "users")


# -- 3. abuse cases --------------------------------------------------------------------


def test_abuse_is_refused_with_an_error_page(page: Page, shot: Shot, verifier: Verifier) -> None:
    name = verifier.new_record(ABUSE)
    look_up(page, verifier, name)
    request_url = start_request(page, verifier, name)

    # A signature by another key of the same wallet is not the owner's.
    assert prove_owner(page, verifier, verifier.stranger) == 403
    assert "does not prove ownership" in error_text(page)
    shot(page, "wrong-signature")
    page.goto(request_url)
    assert state_of(page) == "awaiting-owner-proof"
    assert prove_owner(page, verifier) == 303

    code = call_for_code(page, verifier, ABUSE)
    wrong = f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"
    page.locator("#code").fill(wrong)
    assert form_post_status(page, "Check code") == 403
    assert "wrong code, 4 attempts left" in error_text(page)
    shot(page, "wrong-code")

    page.goto(request_url)
    csrf = page.locator("form[action$='/code'] input[name=csrf_token]").get_attribute("value")
    page.locator("#code").fill(code)
    assert form_post_status(page, "Check code") == 303
    assert state_of(page) == "signed"

    # Replaying the right code once the request is signed: the same form, sent again.
    page.evaluate(
        """([action, csrf, code]) => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = action;
            for (const [name, value] of [["csrf_token", csrf], ["code", code]]) {
                const input = document.createElement("input");
                input.type = "hidden"; input.name = name; input.value = value;
                form.appendChild(input);
            }
            const button = document.createElement("button");
            button.textContent = "Replay code";
            form.appendChild(button);
            document.body.appendChild(form);
        }""",
        [request_url + "/code", csrf, code],
    )
    assert form_post_status(page, "Replay code") == 409
    assert "code" in error_text(page)
    shot(page, "replayed-code")
    page.goto(request_url)
    assert state_of(page) == "signed"

    # CSRF: the browser carries its enumer_csrf cookie, but the form's token is forged
    # or missing.
    forged: list[dict[str, str | float | bool]] = [
        {"name": name, "csrf_token": "forged-token"},
        {"name": name},
    ]
    for form in forged:
        response = page.request.post(verifier.url("/verify"), form=form, max_redirects=0)
        assert response.status == 403, (form, response.status)
        assert "CSRF token missing or wrong" in response.text()
    page.goto(verifier.url("/"))
    page.evaluate(
        """() => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = "/console/login";
            for (const [name, value] of [["username", "op"], ["password", "x"],
                                         ["csrf_token", "forged-token"]]) {
                const input = document.createElement("input");
                input.type = "hidden"; input.name = name; input.value = value;
                form.appendChild(input);
            }
            const button = document.createElement("button");
            button.textContent = "Forged sign in";
            form.appendChild(button);
            document.body.appendChild(form);
        }"""
    )
    assert form_post_status(page, "Forged sign in") == 403
    assert error_text(page) == "CSRF token missing or wrong"
    shot(page, "csrf")


def test_premium_rate_number_is_never_called(page: Page, shot: Shot, verifier: Verifier) -> None:
    name = verifier.new_record(PREMIUM)
    calls_before = len(verifier.phone.calls)
    look_up(page, verifier, "+" + PREMIUM)
    record = page.locator(".record").filter(has_text=name)
    # The service may refuse at the start, after the owner proof, or at the call; it must
    # refuse with the deny-list message before any call is placed.
    status = submit(page, "Start verification", scope=record).status
    if status == 303:
        status = prove_owner(page, verifier, cli=False)
    if status == 303:
        status = form_post_status(page, "Call me now")
    assert status == 403
    assert "premium-rate or high-risk prefix" in error_text(page)
    shot(page, "deny-listed")
    assert len(verifier.phone.calls) == calls_before


# -- 4. accessibility basics -----------------------------------------------------------

UNLABELLED = """() => [...document.querySelectorAll(
    "input:not([type=hidden]):not([type=submit]):not([type=button]), textarea, select")]
    .filter(el => el.labels.length === 0 && !el.getAttribute("aria-label")
                  && !el.getAttribute("aria-labelledby"))
    .map(el => el.outerHTML)"""

HEADINGS = """() => [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")]
    .map(h => Number(h.tagName[1]))"""


def check_structure(page: Page) -> None:
    """Every input labelled, one h1, one <main>, headings without skipped levels."""
    assert page.evaluate(UNLABELLED) == [], page.url
    assert page.locator("h1").count() == 1, page.url
    assert page.locator("main").count() == 1, page.url
    levels: list[int] = page.evaluate(HEADINGS)
    assert levels and levels[0] == 1, (page.url, levels)
    for before, after in itertools.pairwise(levels):
        assert after <= before + 1, (page.url, levels)


def test_pages_are_labelled_and_structured(page: Page, shot: Shot, verifier: Verifier) -> None:
    name = verifier.new_record(ACCESSIBLE)
    page.goto(verifier.url("/"))
    check_structure(page)
    assert page.get_by_label("ENUM record name or phone number").get_attribute("id") == "q"
    shot(page, "home")

    look_up(page, verifier, name)
    check_structure(page)
    start_request(page, verifier, name)
    check_structure(page)
    assert page.locator("#signature").evaluate("el => el.labels.length") >= 1
    shot(page, "request")
    assert prove_owner(page, verifier, cli=False) == 303
    check_structure(page)
    code = page.locator("#code")
    assert code.get_attribute("inputmode") == "numeric"
    assert code.get_attribute("autocomplete") == "one-time-code"

    page.goto(verifier.url("/console/login"))
    check_structure(page)
    assert page.locator("#password").get_attribute("type") == "password"
    shot(page, "login")

    # Error pages are pages too: a malformed query, a number without records, a bad link.
    for path, status, message in (
        ("/verify?q=not+a+number", 400, ""),
        ("/verify?q=%2B442079460199", 404, "no ENUM record"),
        ("/r/no-such-token", 404, ""),
    ):
        response = page.goto(verifier.url(path))
        assert response is not None and response.status == status, (path, response)
        assert message in error_text(page) and error_text(page), (path, error_text(page))
        assert "Traceback" not in page.content()
        check_structure(page)
    shot(page, "error")
