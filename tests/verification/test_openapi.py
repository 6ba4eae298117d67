"""The JSON API against its own OpenAPI document: what the document declares, and
schemathesis driving the running service with generated requests.

The document must say how the API really behaves: the bearer scheme of the
operator part, bad input as a 400 ``ErrorOut`` (never FastAPI's 422), a state
filter that is an enum, bounded ids. schemathesis then sends each operation a
bounded number of generated requests (a dozen each, about two hundred in all,
derandomised so a run is reproducible) over real HTTP to uvicorn, and checks
every answer: no 500, a documented status, a body that matches its schema.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from enumer.verification.model import State
from tests.verification import test_web
from tests.verification.conftest import MakeRecord
from tests.verification.test_web import MakeSite, Site, api_awaiting_code

make_site = test_web.make_site  # the fixture, by name

#: Examples per operation: enough to reach every parameter's edges, bounded for CI
#: (about 200 requests in all).
EXAMPLES = 12
#: Checks that take every schema-valid request for an acceptable one. The API refuses
#: schema-valid input that is wrong in meaning (a ``q`` that is no number, a wrong
#: signature) with a documented 400 or 403, which these would count as failures.
SEMANTIC = [schemathesis.checks.positive_data_acceptance]


@pytest.fixture
def running(make_site: MakeSite, make_record: MakeRecord) -> dict[str, Any]:
    """A site with a record, a request awaiting its code, and an operator's API key."""
    site = make_site()
    name, _ = make_record("15550107777")
    api_awaiting_code(site, name)
    site.user("robot")
    key = site.auth.add_key("robot", "schemathesis", by="test")
    return {"base": site.base, "key": key, "site": site}


def test_the_api_keeps_to_its_openapi_document(running: dict[str, Any]) -> None:
    """Every operation of the document, driven by schemathesis over real HTTP.

    Operation by operation under one Hypothesis run each (schemathesis' own
    pytest plugin does not run under this pytest), every answer checked by
    ``call_and_validate``: not a server error, a documented status and
    content type, a body matching the declared schema, the headers (Allow
    included) it declares.
    """
    api = schemathesis.openapi.from_url(f"{running['base']}/api/openapi.json")
    headers = {"Authorization": f"Bearer {running['key']}"}
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate(
                base_url=running["base"], headers=headers, excluded_checks=SEMANTIC
            )

        check()


def document(site: Site) -> dict[str, Any]:
    with httpx.Client(base_url=site.base) as client:
        data: dict[str, Any] = client.get("/api/openapi.json").json()
        return data


def test_the_document_declares_what_the_api_does(make_site: MakeSite) -> None:
    doc = document(make_site())
    assert doc["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "enk_...",
        "description": "An operator's API key (enumer verifier admin add-key)",
    }
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    error = {"$ref": "#/components/schemas/ErrorOut"}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            if operation.get("parameters") or operation.get("requestBody"):
                body = responses["400"]["content"]["application/json"]["schema"]
                assert body == error, (method, path)
            operator = path.startswith("/api/v1/console/")
            assert (operation.get("security") == [{"apiKey": []}]) == operator, (method, path)
            if operator:
                assert "401" in responses, (method, path)
    queue = doc["paths"]["/api/v1/console/requests"]["get"]
    params = {p["name"]: p for p in queue["parameters"]}
    state = params["state"]["schema"]
    enum = state.get("enum") or schemas[state["anyOf"][0]["$ref"].rsplit("/", 1)[1]]["enum"]
    assert enum == [s.value for s in State]
    assert (
        params["limit"]["schema"]["maximum"] == 1000 and params["offset"]["schema"]["minimum"] == 0
    )
    detail = doc["paths"]["/api/v1/console/requests/{request_id}"]["get"]
    ident = detail["parameters"][0]["schema"]
    assert (ident["minimum"], ident["maximum"]) == (1, 2**63 - 1)


def test_trace_answers_405_with_allow(make_site: MakeSite) -> None:
    site = make_site()
    with httpx.Client(base_url=site.base) as client:
        for path, allowed in (("/", {"GET"}), ("/api/v1/requests", {"POST"})):
            response = client.request("TRACE", path)
            assert response.status_code == 405, path
            assert set(response.headers["allow"].replace(" ", "").split(",")) == allowed, path
            assert "Traceback" not in response.text
        bad_state = client.get("/api/v1/console/requests", params={"state": "bogus"})
        assert bad_state.status_code in (400, 401)
