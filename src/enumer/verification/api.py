"""The JSON API (``/api/v1``): the owner's path, a public lookup, and the operators' actions.

The same actions as the pages, in JSON, described by the OpenAPI document at
``/api/openapi.json``. The owner's part is keyed by the request's token; the
operator part (``/api/v1/console``) needs ``Authorization: Bearer <api key>``
(:data:`~enumer.verification.site.ApiUser`) and never answers with an owner's
token.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from enumer.verification.model import State
from enumer.verification.site import (
    ApiAdmin,
    ApiUser,
    RequestId,
    RequestIdFilter,
    SiteDep,
    owner_json,
    parse_state,
    request_json,
)

# -- JSON API schemas ------------------------------------------------------------------------


class ErrorOut(BaseModel):
    error: str = Field(description="One line for a person; never a traceback.")


class NameIn(BaseModel):
    name: str = Field(min_length=1, max_length=600, examples=["enum:15551234567:0"])


class SignatureIn(BaseModel):
    signature: str = Field(
        min_length=1, max_length=400, description="signmessage output (base64) over the challenge"
    )


class CodeIn(BaseModel):
    code: str = Field(min_length=1, max_length=32, description="The code the call delivered")


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="Why (kept in the audit log)")


class PublicRequestOut(BaseModel):
    """A verification request as anyone looking up its record sees it."""

    model_config = ConfigDict(extra="allow")

    id: int
    name: str
    digits: str
    owner: str
    state: State
    state_label: str
    created: float
    updated: float
    code_expires: float | None = None
    attempts_left: int
    calls_made: int
    signature: str | None = None
    sig_line: str | None = None
    signed_at: float | None = None
    active_at: float | None = None
    reverify_due: float | None = None
    reason: str = ""


class RequestOut(PublicRequestOut):
    """A verification request; ``token`` (which acts on it) only in its owner's answers."""

    token: str | None = None
    challenge: str = Field(description="The text the owner signs with the record's address")
    client: str = Field(description="The address that started the request")


class LintIssueOut(BaseModel):
    severity: str
    line: int
    message: str


class LintOut(BaseModel):
    ok: bool
    issues: list[LintIssueOut]


class RecordOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    digits: str
    value: str
    owner: str
    active: bool
    expires_at: int
    lint: LintOut
    signed_by_us: bool = Field(description="The value carries a valid SIG line of this verifier")
    requests: list[PublicRequestOut]


class PublishOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    sig_line: str
    value: str = Field(description="The record's current value plus the SIG line")
    enumer: str = Field(description="The enumer command that publishes it")
    emercoin: str = Field(description="The Emercoin name_update that publishes it")


class AuditOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    seq: int
    at: float
    actor: str
    action: str
    request_id: int | None = None
    detail: dict[str, Any]
    hash: str


class SignatureOut(BaseModel):
    verifier: str
    status: str = Field(description="valid, revoked, bad signature, untrusted verifier, ...")
    detail: str


class LookupRecordOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    verified: bool = Field(description="Whether a gateway trusting this verifier serves it")
    reason: str
    owner: str
    expires_at: int
    signatures: list[SignatureOut]
    naptr: list[dict[str, Any]]


class RouteOut(BaseModel):
    uri: str
    service: str
    order: int
    preference: int


class InactiveOut(BaseModel):
    name: str
    owner: str
    state: str = Field(description="expired or deleted")
    expires_at: int


class LookupOut(BaseModel):
    """What ``enumer lookup --json`` reports for a number, as this verifier's trust sees it."""

    model_config = ConfigDict(extra="allow")

    number: str
    aus: str
    height: int
    trust: str
    records: list[LookupRecordOut]
    inactive: list[InactiveOut]
    tollfree: dict[str, Any] | None = None
    tollfree_problems: list[str] = []
    naptr: list[dict[str, Any]]
    routes: list[RouteOut]
    route_problems: list[str]
    uri: str | None = Field(description="Where a PBX would send the call; null: no route")


class FlaggedOut(BaseModel):
    request: RequestOut
    problem: str


class RequestDetailOut(BaseModel):
    request: RequestOut
    audit: list[AuditOut]


class UserOut(BaseModel):
    username: str
    role: str
    created: float
    keys: int = Field(description="API keys the user holds")
    disabled: float | None = Field(description="When the user was disabled; null: active")


class KeyOut(BaseModel):
    id: str = Field(description="The key id: the first 12 hex digits of the key's hash")
    username: str
    label: str
    created: float
    last_used: float | None


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 403, 404, 409, 410, 429, 502, 503)
}
API_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {**ERRORS, 401: {"model": ErrorOut}}


API = "/api/v1"
router = APIRouter(prefix=API)


# -- the owner's path ----------------------------------------------------------------------


@router.get("/records", response_model=list[RecordOut], responses=ERRORS, tags=["owner"])
def api_records(site: SiteDep, q: str) -> list[dict[str, Any]]:
    """The records for a record name or a number, with lint and our signature state."""
    return [r.to_json() for r in site.find_records(q)]


@router.post(
    "/requests",
    status_code=201,
    response_model=RequestOut,
    responses=ERRORS,
    tags=["owner"],
)
def api_start(request: Request, site: SiteDep, body: NameIn) -> dict[str, Any]:
    """Start a request for a record; the answer's ``token`` names it (and only this
    answer has it). It supersedes this client's unproven request for the record."""
    return site.service.start(body.name.strip(), site.client_ip(request)).to_json()


@router.get("/requests/{token}", response_model=RequestOut, responses=ERRORS, tags=["owner"])
def api_request(site: SiteDep, token: str) -> dict[str, Any]:
    return owner_json(site.service.by_token(token), token)


@router.post(
    "/requests/{token}/proof",
    response_model=RequestOut,
    responses=ERRORS,
    tags=["owner"],
)
def api_proof(request: Request, site: SiteDep, token: str, body: SignatureIn) -> dict[str, Any]:
    """The owner address's ``signmessage`` signature over ``challenge``."""
    service = site.service
    req = service.by_token(token)
    done = service.prove_owner(req.id, body.signature.strip(), site.client_ip(request))
    return owner_json(done, token)


@router.post(
    "/requests/{token}/call",
    response_model=RequestOut,
    responses=ERRORS,
    tags=["owner"],
)
def api_call(request: Request, site: SiteDep, token: str) -> dict[str, Any]:
    """Call the number with a fresh code (503 when the service has no trunk)."""
    req = site.service.by_token(token)
    return owner_json(site.service.send_code(req.id, site.client_ip(request)), token)


@router.post(
    "/requests/{token}/code",
    response_model=RequestOut,
    responses=ERRORS,
    tags=["owner"],
)
def api_code(request: Request, site: SiteDep, token: str, body: CodeIn) -> dict[str, Any]:
    """The code the call delivered; on success the request is ``signed``."""
    service = site.service
    req = service.by_token(token)
    return owner_json(
        service.submit_code(req.id, body.code.strip(), site.client_ip(request)), token
    )


@router.post(
    "/requests/{token}/published",
    response_model=RequestOut,
    responses=ERRORS,
    tags=["owner"],
)
def api_published(request: Request, site: SiteDep, token: str) -> dict[str, Any]:
    """The owner has sent the SIG line; the service watches the chain for it."""
    req = site.service.by_token(token)
    return owner_json(site.service.mark_published(req.id, site.client_ip(request)), token)


@router.get(
    "/requests/{token}/publish",
    response_model=PublishOut,
    responses=ERRORS,
    tags=["owner"],
)
def api_publish(site: SiteDep, token: str) -> dict[str, str]:
    """How to add the SIG line to the record (the value and both commands)."""
    return site.service.publish_commands(site.service.by_token(token).id)


@router.get("/lookup/{number}", response_model=LookupOut, responses=ERRORS, tags=["public"])
def api_lookup(site: SiteDep, number: str) -> dict[str, Any]:
    """Records of a number, who signed them, revocations, and the PBX route."""
    return site.service.lookup(number)


# -- operators -----------------------------------------------------------------------------


@router.get(
    "/console/requests",
    response_model=list[RequestOut],
    responses=API_AUTH_ERRORS,
    response_model_exclude_unset=True,
    tags=["operator"],
)
def api_queue(site: SiteDep, user: ApiUser, state: str = "", q: str = "") -> list[dict[str, Any]]:
    return [request_json(r) for r in site.service.list_requests(parse_state(state), q)]


@router.get(
    "/console/requests/{request_id}",
    response_model=RequestDetailOut,
    responses=API_AUTH_ERRORS,
    response_model_exclude_unset=True,
    tags=["operator"],
)
def api_detail(site: SiteDep, user: ApiUser, request_id: RequestId) -> dict[str, Any]:
    return {
        "request": request_json(site.service.get(request_id)),
        "audit": [e.to_json() for e in site.service.audit(request_id=request_id)],
    }


def _api_decision(action: str) -> None:
    """``POST /console/requests/{id}/<action>``: the service's method of that name."""

    @router.post(
        f"/console/requests/{{request_id}}/{action}",
        response_model=RequestOut,
        responses=API_AUTH_ERRORS,
        response_model_exclude_unset=True,
        tags=["operator"],
        name=f"api_{action}",
        summary=f"{action.capitalize()} a request (with a reason for the audit log)",
    )
    def decision(
        site: SiteDep, user: ApiUser, request_id: RequestId, body: ReasonIn
    ) -> dict[str, Any]:
        return request_json(site.decide(action, request_id, user.username, body.reason))


for _action in ("approve", "reject", "revoke"):
    _api_decision(_action)


@router.get(
    "/console/due",
    response_model=list[RequestOut],
    responses=API_AUTH_ERRORS,
    response_model_exclude_unset=True,
    tags=["operator"],
)
def api_due(
    site: SiteDep, user: ApiUser, days: Annotated[int, Query(ge=0, le=3650)] = 30
) -> list[dict[str, Any]]:
    return [request_json(r) for r in site.service.due(days)]


@router.get(
    "/console/flagged",
    response_model=list[FlaggedOut],
    responses=API_AUTH_ERRORS,
    response_model_exclude_unset=True,
    tags=["operator"],
)
def api_flagged(site: SiteDep, user: ApiUser) -> list[dict[str, Any]]:
    return [
        {"request": request_json(r), "problem": problem} for r, problem in site.service.flagged()
    ]


@router.get(
    "/console/audit",
    response_model=list[AuditOut],
    responses=API_AUTH_ERRORS,
    response_model_exclude_unset=True,
    tags=["operator"],
)
def api_audit(
    site: SiteDep,
    user: ApiUser,
    request_id: RequestIdFilter = None,
    limit: Annotated[int, Query(ge=1, le=100000)] = 500,
) -> list[dict[str, Any]]:
    return [e.to_json() for e in site.service.audit(limit=limit, request_id=request_id)]


# -- admins: users and keys ----------------------------------------------------------------


@router.get(
    "/console/users", response_model=list[UserOut], responses=API_AUTH_ERRORS, tags=["admin"]
)
def api_users(site: SiteDep, user: ApiAdmin) -> list[dict[str, Any]]:
    return [asdict(u) for u in site.auth.list_users()]


@router.get("/console/keys", response_model=list[KeyOut], responses=API_AUTH_ERRORS, tags=["admin"])
def api_keys(site: SiteDep, user: ApiAdmin) -> list[dict[str, Any]]:
    """The API keys by key id (the keys themselves are not kept)."""
    return [asdict(k) for k in site.auth.list_keys()]


@router.post(
    "/console/users/{username}/{action}",
    response_model=list[UserOut],
    responses=API_AUTH_ERRORS,
    tags=["admin"],
)
def api_change_user(
    site: SiteDep, user: ApiAdmin, username: str, action: Literal["disable", "enable"]
) -> list[dict[str, Any]]:
    """Disable a user (sessions end, keys refused, at once) or enable them again."""
    site.change_user(action, username, user)
    return api_users(site, user)


@router.delete(
    "/console/users/{username}",
    response_model=list[UserOut],
    responses=API_AUTH_ERRORS,
    tags=["admin"],
)
def api_remove_user(site: SiteDep, user: ApiAdmin, username: str) -> list[dict[str, Any]]:
    """Remove a user with their sessions and API keys."""
    site.change_user("remove", username, user)
    return api_users(site, user)


@router.delete(
    "/console/keys/{key_id}", response_model=KeyOut, responses=API_AUTH_ERRORS, tags=["admin"]
)
def api_revoke_key(site: SiteDep, user: ApiAdmin, key_id: str) -> dict[str, Any]:
    """Revoke one API key; it is refused from the next request on."""
    return asdict(site.auth.revoke_key(key_id, by=f"operator:{user.username}"))
