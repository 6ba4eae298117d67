"""Issue 11's paging, export and usability items over real HTTP (httpx against uvicorn),
where a browser is not needed: the operators' export, the API's pages, a code that
expires on the service's clock, where sign-in may return to, the organisation's
file and logo, and ``serve --org-*``."""

from __future__ import annotations

import csv
import io
import json
import re
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from enumer.verification.model import RateLimit, VerificationError
from enumer.verification.view import Organisation, Pager, detail_text, load_organisation, safe_next
from tests import support
from tests.verification import test_command, test_web
from tests.verification.conftest import MakeRecord
from tests.verification.test_command import Run, start_serve
from tests.verification.test_web import MakeSite, Site, api_awaiting_code, csrf_of, sign_in

make_site = test_web.make_site  # fixtures, by name
site = test_web.site
store = test_command.store
run = test_command.run

LOGO = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def started(site: Site, name: str, count: int) -> None:
    with site.client() as api:
        for _ in range(count):
            assert api.post("/api/v1/requests", json={"name": name}).status_code == 201


def test_queue_export_and_pages_for_operators(make_site: MakeSite, make_record: MakeRecord) -> None:
    site = make_site(per_client=RateLimit(1000, 3600))
    name, owner = make_record("15550301111")
    started(site, name, 55)
    with closing(site.signed_in("olga")) as operator:
        first = operator.get("/console").text
        assert "1–50 of 55 · page 1 of 2" in first
        assert len(re.findall(r'<tr class="request"', first)) == 50
        assert 'href="/console?page=2"' in first
        second = operator.get("/console", params={"page": 2}).text
        assert len(re.findall(r'<tr class="request"', second)) == 5
        assert "51–55 of 55" in second and 'id="page-prev" href="/console"' in second
        for bad in ("0", "-1", "99999999999999999999", "x"):
            assert operator.get("/console", params={"page": bad}).status_code == 400

        exported = operator.get("/console/export")
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        assert re.fullmatch(
            r'attachment; filename="ver-test-requests-\d{8}T\d{6}Z\.csv"',
            exported.headers["content-disposition"],
        )
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert len(rows) == 55 and {r["owner"] for r in rows} == {owner}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", rows[0]["created"])
        assert "token" not in rows[0] and "token_hash" not in rows[0]
        # A new request supersedes the unproven one before it: one is still open.
        only_open = operator.get("/console/export", params={"state": "awaiting-owner-proof"})
        assert len(list(csv.DictReader(io.StringIO(only_open.text)))) == 1
        lines = operator.get("/console/export", params={"format": "ndjson", "q": "1555030"})
        records = [json.loads(line) for line in lines.text.splitlines()]
        assert len(records) == 55 and records[0]["state"] == "awaiting-owner-proof"
        assert records[0]["id"] == 55 and records[-1]["id"] == 1
        assert operator.get("/console/export", params={"format": "xml"}).status_code == 400
    with site.client() as anonymous:
        assert anonymous.get("/console/export").status_code == 303  # a session is needed


def test_api_pages_with_total_and_link(make_site: MakeSite, make_record: MakeRecord) -> None:
    site = make_site(per_client=RateLimit(1000, 3600))
    name, _ = make_record("15550302222")
    started(site, name, 7)
    site.user("robot")
    auth = {"Authorization": f"Bearer {site.auth.add_key('robot', 'paging', by='test')}"}
    with site.client() as api:
        page = api.get("/api/v1/console/requests", params={"limit": 3}, headers=auth)
        assert page.status_code == 200 and len(page.json()) == 3
        assert page.headers["x-total-count"] == "7"
        assert page.headers["link"] == '</api/v1/console/requests?limit=3&offset=3>; rel="next"'
        last = api.get("/api/v1/console/requests", params={"limit": 3, "offset": 6}, headers=auth)
        assert len(last.json()) == 1 and "link" not in last.headers
        ids = [r["id"] for r in page.json()] + [r["id"] for r in last.json()]
        assert ids == sorted(ids, reverse=True)
        filtered = api.get("/api/v1/console/requests", params={"state": "active"}, headers=auth)
        assert filtered.json() == [] and filtered.headers["x-total-count"] == "0"
        audit = api.get("/api/v1/console/audit", params={"limit": 2}, headers=auth)
        total = int(audit.headers["x-total-count"])
        assert total >= 7 and len(audit.json()) == 2 and "offset=2" in audit.headers["link"]
        rest = api.get("/api/v1/console/audit", params={"offset": 2, "limit": 1000}, headers=auth)
        assert len(rest.json()) == total - 2
        assert (
            api.get("/api/v1/console/requests", params={"offset": -1}, headers=auth)
            .json()["error"]
            .startswith("bad input")
        )


def test_the_code_form_goes_when_the_code_expires(site: Site, make_record: MakeRecord) -> None:
    name, _ = make_record("15550303333")
    request = api_awaiting_code(site, name)
    url = f"/r/{request['token']}"
    with site.client() as browser:
        assert 'id="code"' not in browser.get(url).text  # no code sent yet
        page = browser.get(url).text
        called = browser.post(f"{url}/call", data={"csrf_token": csrf_of(page)})
        assert called.status_code == 303
        page = browser.get(url).text
        assert 'id="code"' in page and "5 attempts left" in page
        site.clock.advance(site.service.policy.code_ttl + 1)
        page = browser.get(url).text
        assert 'id="code"' not in page and "attempts left" not in page
        assert "The code has expired." in page and ">Call me now</button>" in page


def test_sign_in_returns_only_to_console_pages(site: Site) -> None:
    password = site.user("nina")
    with site.client() as client:
        page = client.get("/console/login", params={"next": "/console/audit?page=2"}).text
        assert 'name="next" value="/console/audit?page=2"' in page
        done = client.post(
            "/console/login",
            data={
                "username": "nina",
                "password": password,
                "csrf_token": csrf_of(page),
                "next": "/console/audit?page=2",
            },
        )
        assert (done.status_code, done.headers["location"]) == (303, "/console/audit?page=2")
    for evil in ("//evil.example/", "https://evil.example/", "/console\\@evil", "/r/x", ""):
        assert safe_next(evil) == "/console", evil
    with site.client() as client:
        assert sign_in(client, "nina", password).headers["location"] == "/console"


def test_pager_detail_text_and_contact() -> None:
    pager = Pager("/console", 2, 50, 120, (("state", ""), ("q", "1555")))
    assert (pager.offset, pager.pages, pager.first_row, pager.last_row) == (50, 3, 51, 100)
    assert (pager.previous, pager.next) == ("/console?q=1555", "/console?q=1555&page=3")
    assert Pager("/x", 1, 50, 0).pages == 1 and Pager("/x", 1, 50, 0).next == ""
    assert detail_text("already_listed", False) == "no"
    assert detail_text("created_srl_line", True) == "yes"
    assert detail_text("code_expires", 1_700_000_600.5) == "2023-11-14 22:23 UTC"
    assert detail_text("call", 2) == "2" and detail_text("x", None) == "—"
    assert detail_text("alert", {"b": 1, "a": [True]}) == '{"a": [true], "b": 1}'
    assert Organisation(contact="help@acme.example").contact_href == "mailto:help@acme.example"
    assert Organisation(contact="https://acme.example/help").contact_href.startswith("https")
    assert Organisation(contact="call our desk").contact_href == ""
    assert Organisation().display_name("ver:demo") == "ver:demo"


def test_organisation_file_and_options(tmp_path: Path) -> None:
    (tmp_path / "logo.png").write_bytes(LOGO)
    config = tmp_path / "org.toml"
    config.write_text(
        '[organisation]\nname = "ACME  Telecom"\nlogo = "logo.png"\ncontact = "help@acme.example"\n'
    )
    org = load_organisation(config, None, None, None)
    assert (org.name, org.contact, org.logo, org.logo_type) == (
        "ACME Telecom",
        "help@acme.example",
        LOGO,
        "image/png",
    )
    assert load_organisation(config, "Other", None, "x").name == "Other"
    for text, problem in (
        ('name = "A"\ncolour = "red"\n', "unknown key 'colour'"),
        ("name = 3\n", "name must be a string"),
        ("name = \n", "cannot read the organisation file"),
        ('logo = "logo.txt"\n', "is not one of"),
        ('logo = "missing.png"\n', "cannot read the logo"),
    ):
        config.write_text(text)
        with pytest.raises(VerificationError, match=problem):
            load_organisation(config, None, None, None)
    big = tmp_path / "big.png"
    big.write_bytes(b"x" * (512 * 1024 + 1))
    with pytest.raises(VerificationError, match="over 512 KiB"):
        load_organisation(None, None, big, None)


def test_serve_shows_the_organisation(store: Path, run: Run, tmp_path: Path) -> None:
    (tmp_path / "logo.png").write_bytes(LOGO)
    config = tmp_path / "org.toml"
    config.write_text('name = "From the file"\ncontact = "help@acme.example"\n')
    refused = run("verifier", "serve", "--id", "demo", "--org-logo", str(tmp_path / "org.toml"))
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "is not one of" in refused.stderr
    running = start_serve(
        store, "--org-config", str(config), "--org-name", "ACME Telecom",
        "--org-logo", str(tmp_path / "logo.png"),
    )  # fmt: skip
    try:
        with httpx.Client(base_url=running.base, timeout=10) as client:
            home = client.get("/").text
            assert '<span id="org-name">ACME Telecom</span>' in home
            assert "<title>Verify an ENUM record · ACME Telecom ENUM verification</title>" in home
            assert 'href="mailto:help@acme.example"' in home and 'src="/org/logo"' in home
            logo = client.get("/org/logo")
            assert (logo.status_code, logo.headers["content-type"]) == (200, "image/png")
            assert logo.content == LOGO
    finally:
        support.stop(running.process)


def test_no_logo_no_logo_route(site: Site) -> None:
    with site.client() as client:
        assert client.get("/org/logo").status_code == 404
        assert 'id="org-logo"' not in client.get("/").text
