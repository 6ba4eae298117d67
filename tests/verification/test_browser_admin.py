"""An admin takes access away in a real browser: disable, enable and remove users, revoke
keys (issue 11, item 9), and the operator alerts on the queue page (item 10).

The same running ``enumer verifier serve`` as ``test_browser.py`` (its fixtures),
Debian's chromium driven by Playwright.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.verification.browser import (  # noqa: F401 - fixtures are used by name
    Shot,
    Verifier,
    browser_fixture,
    error_text,
    form_post_status,
    page_fixture,
    shot_fixture,
)
from tests.verification.test_browser import (  # noqa: F401 - fixtures are used by name
    ADMIN,
    check_structure,
    phone,
    sign_in,
    verifier,
)

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


def test_admin_disables_removes_and_revokes_in_the_console(
    page: Page,
    shot: Shot,
    verifier: Verifier,  # noqa: F811 - the fixture imported above
) -> None:
    temp_password = "temp-password-8910"
    verifier.enumer(
        "verifier", "admin", "add-user", "temp", "--state", str(verifier.state),
        input=temp_password,
    )  # fmt: skip
    key = verifier.enumer(
        "verifier", "admin", "add-key", "temp", "--label", "crm", "--state", str(verifier.state)
    ).strip()
    with verifier.api() as api:
        bearer = {"Authorization": f"Bearer {key}"}
        assert api.get("/api/v1/console/requests", headers=bearer).status_code == 200

        admin, _, admin_password = ADMIN
        assert sign_in(page, verifier, admin, admin_password) == 303
        page.goto(verifier.url("/console/users"))
        check_structure(page)
        row = page.locator("#user-temp")
        assert "active" in row.inner_text()
        assert page.locator(f"#user-{admin}").get_by_role("button").count() == 0  # not oneself
        keys = page.locator("#keys tbody tr").filter(has_text="crm")
        assert keys.count() == 1 and key not in page.content()
        shot(page, "users")

        assert form_post_status(page, "Disable", scope=row) == 303
        assert page.url.endswith("/console/users")
        assert "disabled" in page.locator("#user-temp").inner_text()
        assert api.get("/api/v1/console/requests", headers=bearer).status_code == 401
        shot(page, "user-disabled")

        # The disabled user's own browser: the right password, and a clear refusal.
        other = page.context.browser.new_page() if page.context.browser else None
        assert other is not None
        assert sign_in(other, verifier, "temp", temp_password) == 403
        assert error_text(other) == "this user is disabled; ask an admin"
        other.close()

        assert form_post_status(page, "Enable", scope=page.locator("#user-temp")) == 303
        assert api.get("/api/v1/console/requests", headers=bearer).status_code == 200
        keys = page.locator("#keys tbody tr").filter(has_text="crm")
        assert form_post_status(page, "Revoke", scope=keys) == 303
        assert page.locator("#keys tbody tr").filter(has_text="crm").count() == 0
        assert api.get("/api/v1/console/requests", headers=bearer).status_code == 401

        assert form_post_status(page, "Remove", scope=page.locator("#user-temp")) == 303
        assert page.locator("#user-temp").count() == 0
        shot(page, "user-removed")

    page.goto(verifier.url("/console/audit"))
    audit = page.locator("#audit").inner_text()
    for action in ("user.disabled", "user.enabled", "key.revoked", "user.removed"):
        assert action in audit, action
