"""Browser fixtures for the verifier's web pages: Debian's chromium driven by Playwright.

Playwright's own browser download (``playwright install``) cannot run here, so
the Python package drives the Debian ``chromium`` binary that ``.ci/run``
installs. Like the other Debian programs of the suite (``tests.support.need``),
a missing chromium skips the browser tests on a developer machine and fails
them in CI, so CI never passes by skipping.

One browser per test module (starting chromium costs about a second) and a
fresh context per test (its own cookies, so sessions and CSRF tokens never
leak from one test into another). Each test saves PNG screenshots of its key
pages under ``test-artifacts/screenshots/`` at the repository root, plus one
of the page as the test left it, which is what one looks at when it failed.

The rest is the end-to-end setup of the verifier: a temporary embedded store
seeded with the demo data (``ver:demo``, whose key the store's wallet holds),
records owned by addresses of that wallet, the test SIP phone as the outbound
trunk, console users added with ``enumer verifier admin add-user``, and
``enumer verifier serve`` as a real process on a loopback port.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Response, sync_playwright

from enumer.nvs.ledger import Ledger
from tests import support

if TYPE_CHECKING:
    from tests.verification.sipua import TestPhone

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"

#: Flags for a headless chromium in a container: no sandbox (CI runs as root), no GPU,
#: and nothing that phones home or updates itself while a test runs.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

#: How long a browser action may wait before the test fails (the service answers in ms).
ACTION_TIMEOUT_MS = 10_000

SIP_VALUE = "E2U+sip=100|10|!^.*$!sip:alice@pbx.example.com!"
SIP_ROUTE = "sip:alice@pbx.example.com"
VERIFIER = "ver:demo"


@pytest.fixture(name="browser", scope="module")
def browser_fixture() -> Iterator[Browser]:
    """Debian's chromium, headless, for the whole module."""
    executable = support.need("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(name="page")
def page_fixture(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a fresh browser context; its last state is saved as a screenshot."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        # A page that crashed leaves no picture; that is not a failure of its own.
        with contextlib.suppress(Exception):
            page.screenshot(path=str(screenshot_path(request.node.name, 99, "last")))
        context.close()


def screenshot_path(test: str, number: int, label: str) -> Path:
    """``test-artifacts/screenshots/<test>-<nn>-<label>.png`` (directory created)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", test)
    return SCREENSHOTS / f"{safe}-{number:02d}-{label}.png"


Shot = Callable[[Page, str], Path]


@pytest.fixture(name="shot")
def shot_fixture(request: pytest.FixtureRequest) -> Shot:
    """``shot(page, "label")`` saves a full-page PNG, numbered in the order taken."""
    taken: list[Path] = []

    def take(page: Page, label: str) -> Path:
        path = screenshot_path(request.node.name, len(taken) + 1, label)
        page.screenshot(path=str(path), full_page=True)
        taken.append(path)
        return path

    return take


def submit(page: Page, button: str, *, scope: Locator | None = None) -> Response:
    """Click the submit button named ``button``; the response to the form's POST.

    The status of the POST itself is what the contract specifies (303 on
    success, the error page's status on failure), so it is captured rather
    than the page the browser ends up showing after a redirect. The call
    returns once the page that follows (after the redirect, or the error
    page) has loaded, so the caller reads the new page, never the old one.
    """
    where: Page | Locator = scope if scope is not None else page
    with (
        page.expect_navigation(),
        page.expect_response(lambda r: r.request.method == "POST") as posted,
    ):
        where.get_by_role("button", name=button).click()
    return posted.value


def click_through(page: Page, target: Locator) -> None:
    """Click a link or a GET form's button and wait until the next page has loaded."""
    with page.expect_navigation():
        target.click()


def form_post_status(page: Page, button: str, *, scope: Locator | None = None) -> int:
    return submit(page, button, scope=scope).status


def state_of(page: Page) -> str:
    """The request page's state (``data-state`` of ``#state``)."""
    return page.locator("#state").get_attribute("data-state") or ""


def error_text(page: Page) -> str:
    return (page.locator("p.error#error").text_content() or "").strip()


# -- the verifier service ---------------------------------------------------------------


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENUMER_")}
    env["PYTHONWARNINGS"] = "ignore"
    return env


@dataclass
class Verifier:
    """A running ``enumer verifier serve`` on a demo store, and what a test needs of it."""

    store: Path
    state: Path
    base: str
    process: subprocess.Popen[str]
    log: Path
    phone: TestPhone  # the outbound trunk: every flash call rings it
    owner: str  # a wallet address that owns the test records
    stranger: str  # another wallet address: its signatures prove nothing

    def enumer(self, *args: str, input: str = "") -> str:
        """Run the ``enumer`` command line on the store; its stdout (failure: AssertionError)."""
        return enumer_cli(self.store, *args, input=input)

    def sign(self, address: str, message: str, *, cli: bool = True) -> str:
        """What the owner does in their wallet: ``enumer wallet sign ADDRESS CHALLENGE``.

        ``cli=False`` asks the same wallet in this process (``signmessage`` of the
        ledger, which the command prints), for tests where signing is only a step
        on the way and a second of command-line start-up is not worth it.
        """
        if not cli:
            with Ledger(self.store, create=False) as ledger:
                return ledger.sign_message(address, message)
        return self.enumer("wallet", "sign", address, message).strip()

    def new_record(self, digits: str, value: str = SIP_VALUE, owner: str | None = None) -> str:
        """``enum:<digits>:0`` owned by ``owner`` (default: the test owner); its name.

        Written with the ledger's ``name_new``, the operation behind ``enumer name
        new --to``, in this process: a command line costs a second of imports,
        and the browser tests have a time budget.
        """
        name = f"enum:{digits}:0"
        with Ledger(self.store, create=False) as ledger:
            ledger.name_new(name, value, 365, owner or self.owner)
        return name

    def url(self, path: str) -> str:
        return self.base + path

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=15.0, follow_redirects=False)


def enumer_cli(store: Path, *args: str, input: str = "") -> str:
    proc = subprocess.run(
        [*support.ENUMER, "--store", str(store), *args],
        input=input,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 0, f"enumer {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


def start_verifier(
    directory: Path,
    phone: TestPhone,
    users: dict[str, tuple[str, str]],
    timeout: float = 30.0,
    extra: tuple[str, ...] = (),
) -> Verifier:
    """Seed a store, add the console users, start the service and wait for its ready line.

    ``users`` maps a user name to ``(role, password)``; ``extra`` are more options
    of ``serve`` (``--org-name ...``).
    """
    store = directory / "store"
    state = directory / "verifier.db"
    enumer_cli(store, "demo", "seed")
    with Ledger(store, create=False) as ledger:  # as `enumer wallet new-address --legacy`
        owner = ledger.get_new_address("legacy")
        stranger = ledger.get_new_address("legacy")
    for user, (role, password) in users.items():
        enumer_cli(
            store,
            "verifier", "admin", "add-user", user, "--role", role,
            "--id", "demo", "--state", str(state),
            input=password + "\n",
        )  # fmt: skip
    port = support.free_port()
    log = directory / f"verifier-{port}.log"
    handle = open(log, "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [
            *support.ENUMER, "--store", str(store),
            "verifier", "serve", "--id", "demo", "--port", str(port),
            "--trunk", phone.uri, "--caller-prefix", "4420", "--allow", "1,44",
            "--poll", "1", "--state", str(state), *extra,
        ],
        stdout=handle,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        start_new_session=True,
    )  # fmt: skip
    handle.close()
    ready = f"enumer verifier: serving {VERIFIER} on http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready in log.read_text():
            return Verifier(
                store=store,
                state=state,
                base=f"http://127.0.0.1:{port}",
                process=process,
                log=log,
                phone=phone,
                owner=owner,
                stranger=stranger,
            )
        if process.poll() is not None:
            break
        time.sleep(0.05)
    support.stop(process)
    raise AssertionError(f"verifier did not start:\n{log.read_text()}")


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.25) -> None:
    """Poll ``check``; the service's chain watcher runs every second in these tests."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def received_code(verifier: Verifier, digits: str) -> str:
    """The code of the flash call that just rang the test phone, as its screen shows it.

    The phone saw the call to ``digits`` and the caller behaved (RFC 3261
    checks of the test phone); the code is the end of the caller number.
    """
    call = verifier.phone.wait_for_call(10)
    assert call.called.lstrip("+").endswith(digits), (call.called, digits)
    assert call.problems == [], call.problems
    code = verifier.phone.last_code()
    assert call.caller.startswith("4420") or call.caller.startswith("+4420"), call.caller
    return code


def drive_to_active(verifier: Verifier, name: str) -> dict[str, Any]:
    """The owner's whole path through the JSON API; the request once it is active.

    Used where a test needs an active, signed request as its starting point
    (the browser test of the owner's path covers the same steps in the pages).
    """
    with verifier.api() as api:
        started = api.post("/api/v1/requests", json={"name": name})
        assert started.status_code == 201, started.text
        request = started.json()
        token = request["token"]
        signature = verifier.sign(request["owner"], request["challenge"], cli=False)
        proved = api.post(f"/api/v1/requests/{token}/proof", json={"signature": signature})
        assert proved.status_code == 200, proved.text
        called = api.post(f"/api/v1/requests/{token}/call")
        assert called.status_code == 200, called.text
        code = received_code(verifier, request["digits"])
        checked = api.post(f"/api/v1/requests/{token}/code", json={"code": code})
        assert checked.status_code == 200, checked.text
        publish = api.get(f"/api/v1/requests/{token}/publish")
        assert publish.status_code == 200, publish.text
        verifier.enumer("name", "update", name, "-", "365", input=publish.json()["value"])
        published = api.post(f"/api/v1/requests/{token}/published")
        assert published.status_code == 200, published.text

        def active() -> bool:
            now = api.get(f"/api/v1/requests/{token}")
            return bool(now.json()["state"] == "active")

        wait_until(active, 15, f"{name} to become active")
        data: dict[str, Any] = api.get(f"/api/v1/requests/{token}").json()
        return data
