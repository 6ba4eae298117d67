"""Issue 11's usability items in a real browser (Debian's chromium with Playwright).

The service runs as ``enumer verifier serve --org-name ... --org-logo ...
--org-contact ...``. What an owner and an operator see: the organisation
instead of ``ver:demo``, error pages that lead back to the request, no code
form once the code is dead, national numbers refused, records with errors
not startable, a console with readable states and dates, the record on the
request being decided, a confirmed revocation, sign-in that returns to the
page, paging, a lookup that shows raw values and says "revoked", pages that
fit a phone, and focus rings of at least 3:1 contrast. Screenshots go to
``test-artifacts/screenshots/`` as in test_browser.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from enumer.verification.db import StateDB
from tests import support
from tests.verification import test_browser
from tests.verification.browser import (  # noqa: F401 - fixtures are used by name
    SIP_VALUE,
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
)
from tests.verification.sipua import TestPhone

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

OPERATOR = ("olivia", "operator", "olivia-password-0123")
ORG = "ACME Telecom"
CONTACT = "verify@acme.example"
LOGO = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="32" viewBox="0 0 96 32">'
    '<rect width="96" height="32" rx="6" fill="#e8eef6"/></svg>'
)
BROKEN = "E2U+sip=100|10|!^(.*$!sip:x@pbx.example.com!"  # the ERE does not compile
PHONE_WIDTH = 390

#: Drama-range numbers (+44 20 7946 0xxx), one per test.
IDENTITY = "442079460201"
DEAD_CODE = "442079460202"
BROKEN_RECORD = "442079460203"
CONSOLE = "442079460204"


phone = test_browser.phone  # the module's test SIP phone, by name


@pytest.fixture(scope="module")
def verifier(tmp_path_factory: pytest.TempPathFactory, phone: TestPhone) -> Iterator[Verifier]:
    directory = tmp_path_factory.mktemp("verifier-ux")
    logo = directory / "logo.svg"
    logo.write_text(LOGO)
    org = ("--org-name", ORG, "--org-logo", str(logo), "--org-contact", CONTACT)
    users = {OPERATOR[0]: OPERATOR[1:]}
    running = start_verifier(directory, phone, users, extra=org)
    try:
        yield running
    finally:
        support.stop(running.process)
    log = running.log.read_text()
    assert "Traceback" not in log, log


# -- measuring pages ---------------------------------------------------------------------

WIDER_THAN_VIEWPORT = """() => {
    const width = document.documentElement.clientWidth;
    return [...document.querySelectorAll("body *")]
        .filter(el => el.getBoundingClientRect().right > width + 1 && !el.closest(".scroll"))
        .slice(0, 5)
        .map(el => el.tagName + "." + el.className + ": " + el.textContent.slice(0, 40));
}"""

FOCUS_CONTRAST = """() => {
    const el = document.activeElement;
    const style = getComputedStyle(el);
    const rgb = text => (text.match(/[\\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
        const lin = c => {
            c /= 255;
            return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
        };
        return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
    };
    let node = el.parentElement, behind = [255, 255, 255];
    while (node) {
        const bg = rgb(getComputedStyle(node).backgroundColor);
        if (bg.length >= 3 && (bg.length < 4 || bg[3] > 0)) { behind = bg.slice(0, 3); break; }
        node = node.parentElement;
    }
    const ring = rgb(style.outlineColor).slice(0, 3);
    const [a, b] = [lum(ring), lum(behind)].sort((x, y) => y - x);
    return {tag: el.tagName, text: (el.textContent || "").trim().slice(0, 30),
            style: style.outlineStyle, width: parseFloat(style.outlineWidth),
            ratio: (a + 0.05) / (b + 0.05)};
}"""


def fits_the_phone(page: Page, url: str) -> None:
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    page.goto(url)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH, (url, width, page.evaluate(WIDER_THAN_VIEWPORT))
    page.set_viewport_size({"width": 1280, "height": 900})


def sign_in(page: Page, user: str, password: str) -> int:
    page.locator("#username").fill(user)
    page.locator("#password").fill(password)
    return form_post_status(page, "Sign in")


def look_up(page: Page, verifier: Verifier, query: str) -> int:
    page.goto(verifier.url("/"))
    page.get_by_label("ENUM record name or phone number").fill(query)
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Look up").click()
    response = navigation.value
    assert response is not None
    return response.status


def start_request(page: Page, verifier: Verifier, name: str) -> str:
    assert look_up(page, verifier, name) == 200
    record = page.locator(".record").filter(has_text=name)
    assert submit(page, "Start verification", scope=record).status == 303
    return page.url


# -- the owner ---------------------------------------------------------------------------


def test_the_organisation_not_ver_demo_fits_a_phone_with_visible_focus(
    page: Page, shot: Shot, verifier: Verifier
) -> None:
    page.goto(verifier.url("/"))
    assert page.locator("#org-name").inner_text() == ORG
    assert ORG in page.title() and "ver:demo ENUM" not in page.title()
    logo = page.locator("img#org-logo")
    assert logo.evaluate("img => img.complete && img.naturalWidth") == 96
    assert page.locator(".brand").inner_text().strip().startswith(ORG)  # no "+" glyph
    contact = page.locator("#org-contact a")
    assert contact.inner_text() == CONTACT and contact.get_attribute("href") == f"mailto:{CONTACT}"
    shot(page, "home")

    # Keyboard focus: every ring is drawn and contrasts 3:1 with what it sits on
    # (the amber ring on white measured 1.6:1).
    seen = []
    for _ in range(8):
        page.keyboard.press("Tab")
        focus = page.evaluate(FOCUS_CONTRAST)
        seen.append(focus)
        assert focus["style"] != "none" and focus["width"] >= 2, focus
        assert focus["ratio"] >= 3, focus
    assert {f["tag"] for f in seen} >= {"A", "INPUT", "BUTTON"}, seen
    shot(page, "focus")

    name = verifier.new_record(IDENTITY)
    request = start_request(page, verifier, name)
    for url in (verifier.url("/"), verifier.url(f"/verify?q=%2B{IDENTITY}"), request):
        fits_the_phone(page, url)
    fits_the_phone(page, verifier.url(f"/lookup/+{IDENTITY}"))
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    page.goto(request)
    shot(page, "request-on-a-phone")


def test_owner_errors_lead_back_and_dead_codes_take_no_entry(
    page: Page, shot: Shot, verifier: Verifier
) -> None:
    # A national number is refused with the hint, not read as +55 ...
    assert look_up(page, verifier, "5551234567") == 400
    assert "looks like a national number: write it with + and the country code" in (
        error_text(page)
    )
    shot(page, "national-number")

    name = verifier.new_record(DEAD_CODE)
    request = start_request(page, verifier, name)
    page.locator("#signature").fill("not a signature of the challenge")
    assert form_post_status(page, "Prove ownership") in (400, 403)
    back = page.locator("#back")
    assert back.get_attribute("href") == request.removeprefix(verifier.base)
    shot(page, "error-back")
    click_through(page, back)
    assert page.url == request and state_of(page) == "awaiting-owner-proof"

    challenge = (page.locator("#challenge").text_content() or "").strip()
    owner = (page.locator("#owner").text_content() or "").strip()
    page.locator("#signature").fill(verifier.sign(owner, challenge, cli=False))
    assert form_post_status(page, "Prove ownership") == 303
    assert page.locator("#code").count() == 0, "no code form before a call"
    assert form_post_status(page, "Call me now") == 303
    code = received_code(verifier, DEAD_CODE)
    wrong = f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"
    for left in (4, 3, 2, 1, 0):
        page.goto(request)
        page.locator("#code").fill(wrong)
        assert form_post_status(page, "Check code") == 403
        assert ("too many wrong codes" if left == 0 else f"{left} attempt") in error_text(page)
    page.goto(request)
    assert state_of(page) == "awaiting-code"
    assert page.locator("#code").count() == 0
    status = page.locator("#call-status").inner_text()
    assert "Too many wrong codes" in status and "attempts left" not in status, status
    assert page.get_by_role("button", name="Call me now").count() == 1
    shot(page, "dead-code")


def test_a_record_whose_check_reports_errors_cannot_start(
    page: Page, shot: Shot, verifier: Verifier
) -> None:
    name = verifier.new_record(BROKEN_RECORD, value=BROKEN)
    assert look_up(page, verifier, name) == 200
    record = page.locator(".record").filter(has_text=name)
    assert "does not compile" in record.locator("ul.lint").inner_text()
    assert record.get_by_role("button", name="Start verification").count() == 0
    assert "cannot be verified" in record.locator(".not-startable").inner_text()
    shot(page, "broken-record")
    csrf = page.context.cookies()
    token = next(c["value"] for c in csrf if c["name"] == "enumer_csrf")
    forced = page.request.post(
        verifier.url("/verify"), form={"name": name, "csrf_token": token}, max_redirects=0
    )
    assert forced.status == 409 and "cannot be verified until its check passes" in forced.text()


# -- the operator ------------------------------------------------------------------------


def test_console_is_readable_confirms_revocation_returns_after_sign_in_and_pages(
    page: Page, shot: Shot, verifier: Verifier
) -> None:
    name = verifier.new_record(CONSOLE)
    active = drive_to_active(verifier, name)
    detail = verifier.url(f"/console/requests/{active['id']}")

    # Not signed in: the sign-in page, and after it the page asked for.
    page.goto(detail)
    assert "/console/login?next=" in page.url
    user, _, password = OPERATOR
    assert sign_in(page, user, password) == 303
    assert page.url == detail
    assert state_of(page) == "active"

    # The record being decided on: its value (with the SIG line) and its check.
    value = page.locator("#record-value").inner_text()
    assert value.startswith(SIP_VALUE) and "SIG=ver:demo|" in value
    # An unsealed record: the check has no error, only the bound-signature advice (SPEC 11).
    check = page.locator("#record-check").inner_text()
    assert "OSIG" in check and "error" not in check.lower(), check
    audit = page.locator("#audit").inner_text()
    assert not re.search(r"\b1\d{9}\.\d+", audit), "an epoch float in the audit table"
    assert "False" not in audit and "True" not in audit
    assert re.search(r"code_expires: \d{4}-\d\d-\d\d \d\d:\d\d UTC", audit), audit
    shot(page, "detail")

    # Revoking needs the tick: without it the browser does not send the form.
    form = page.locator("form[action$='/revoke']")
    form.locator("textarea[name=reason]").fill("number ported")
    form.get_by_role("button", name="Revoke signature").click()
    page.wait_for_timeout(300)
    assert page.url == detail and state_of(page) == "active"
    refused = page.request.post(
        verifier.url(f"/console/requests/{active['id']}/revoke"),
        form={
            "reason": "x",
            "csrf_token": form.locator("input[name=csrf_token]").get_attribute("value") or "",
        },
        max_redirects=0,
    )
    assert refused.status == 400 and "tick the box to confirm" in refused.text()
    form.get_by_label("Yes, revoke").check()
    shot(page, "revoke-confirm")
    assert form_post_status(page, "Revoke signature", scope=form) == 303
    assert state_of(page) == "revoked"
    audit = page.locator("#audit tr").filter(has_text="request.revoked").inner_text()
    assert "created_srl_line: yes" in audit or "already_listed: no" in audit, audit
    assert "False" not in audit and "True" not in audit
    fits_the_phone(page, detail)

    # The lookup shows the raw value and says "revoked".
    page.goto(verifier.url(f"/lookup/+{CONSOLE}"))
    row = page.locator("#records tr.record-row").filter(has_text=name)
    assert "SIG=ver:demo|" in row.locator("pre.raw").inner_text()
    assert "revoked" in row.locator("td").nth(2).inner_text()
    assert "revoked" in page.locator("#route-note").inner_text()
    assert "usable SIP directive" not in page.locator("#route").inner_text()
    shot(page, "lookup-revoked")

    # The queue: readable state names, and pages past the first 50 rows.
    add_requests(verifier.state, name, 60)
    page.goto(verifier.url("/console"))
    states = page.locator("#queue tr.request .badge").all_inner_texts()
    assert "awaiting owner proof" in states and "awaiting-owner-proof" not in states
    status = page.locator("#pager-status").inner_text()
    total = int(status.split(" of ")[1].split()[0])
    assert status.startswith("1–50 of ") and total >= 61, status
    assert page.locator("#queue tr.request").count() == 50
    shot(page, "queue-page-1")
    click_through(page, page.locator("#page-next"))
    assert "page=2" in page.url
    assert page.locator("#queue tr.request").count() == total - 50
    assert page.locator("#page-prev").count() == 1
    assert page.locator("#export-csv").get_attribute("href") is not None
    fits_the_phone(page, verifier.url("/console"))
    fits_the_phone(page, verifier.url("/console/audit"))
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    page.goto(verifier.url("/console"))
    shot(page, "queue-on-a-phone")


def add_requests(state: Path, name: str, count: int) -> None:
    """``count`` requests awaiting the owner proof, written into the state file as
    ``serve`` would (the per-client limit keeps a test from starting 60 by HTTP)."""
    db = StateDB(state)
    try:
        with db.transaction():
            for i in range(count):
                db.insert_request(
                    {
                        "token_hash": f"paging-{i}",
                        "name": name,
                        "digits": name.split(":")[1],
                        "owner": "EPagingOwnerAddress",
                        "state": "awaiting-owner-proof",
                        "challenge": "paging",
                        "created": 1_700_000_000.0 + i,
                        "updated": 1_700_000_000.0 + i,
                        "client": "192.0.2.1",
                    }
                )
    finally:
        db.close()
