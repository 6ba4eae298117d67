"""The operator console (``/console``): sign-in, the queue, decisions, audit, users.

Every page needs a live session (:data:`ConsoleSession`), the users pages and
the audit export the admin role; every form carries the session's CSRF token.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.
import json
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from enumer.verification.auth import ROLES, Session
from enumer.verification.model import TRANSITIONS, State, VerificationError
from enumer.verification.service import AuditEntry
from enumer.verification.site import (
    SESSION_COOKIE,
    AdminSession,
    ConsoleSession,
    RequestId,
    RequestIdFilter,
    Site,
    SiteDep,
    check_session_csrf,
    one_line,
    operator,
    parse_state,
)

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, site: SiteDep) -> Response:
    if site.auth.session(request.cookies.get(SESSION_COOKIE)) is not None:
        return RedirectResponse("/console", 303)
    return site.public_page(request, "login.html", error="", username="")


@router.post("/login")
def login(
    request: Request,
    site: SiteDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    site.check_public_csrf(request, csrf_token)
    try:
        token, _ = site.auth.login(username.strip(), password, site.client_ip(request))
    except VerificationError as exc:
        if exc.status != 401:
            raise
        return site.public_page(
            request, "login.html", 401, error=str(exc), username=one_line(username, 64)
        )
    response = RedirectResponse("/console", 303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=site.settings.secure_cookies,
        path="/",
    )
    return response


@router.post("/logout")
def logout(
    request: Request,
    site: SiteDep,
    session: ConsoleSession,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_session_csrf(session, csrf_token)
    site.auth.logout(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/console/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("", response_class=HTMLResponse)
def queue(
    request: Request, site: SiteDep, session: ConsoleSession, state: str = "", q: str = ""
) -> Response:
    requests = site.service.list_requests(parse_state(state), q.strip())
    return site.page(
        request,
        "console_queue.html",
        session=session,
        csrf=session.csrf,
        requests=requests,
        state=state,
        q=q,
    )


@router.get("/requests/{request_id}")
def detail(
    request: Request, site: SiteDep, session: ConsoleSession, request_id: RequestId
) -> Response:
    req = site.service.get(request_id)
    allowed = TRANSITIONS[req.state]
    return site.page(
        request,
        "console_request.html",
        session=session,
        csrf=session.csrf,
        req=req,
        entries=site.service.audit(request_id=request_id),
        # The service decides; these only hide buttons that would surely be refused:
        # approval replaces the call, so it needs the owner proof and no signature yet.
        can_approve=req.state is State.AWAITING_CODE,
        can_reject=State.REJECTED in allowed,
        can_revoke=State.REVOKED in allowed,
    )


def decide(
    site: Site, session: Session, request_id: int, action: str, reason: str, csrf: str
) -> Response:
    check_session_csrf(session, csrf)
    site.decide(action, request_id, operator(session), reason)
    return RedirectResponse(f"/console/requests/{request_id}", 303)


@router.post("/requests/{request_id}/approve")
def approve_form(
    site: SiteDep,
    session: ConsoleSession,
    request_id: RequestId,
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    return decide(site, session, request_id, "approve", reason, csrf_token)


@router.post("/requests/{request_id}/reject")
def reject_form(
    site: SiteDep,
    session: ConsoleSession,
    request_id: RequestId,
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    return decide(site, session, request_id, "reject", reason, csrf_token)


@router.post("/requests/{request_id}/revoke")
def revoke_form(
    site: SiteDep,
    session: ConsoleSession,
    request_id: RequestId,
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    return decide(site, session, request_id, "revoke", reason, csrf_token)


@router.get("/due", response_class=HTMLResponse)
def due_page(
    request: Request,
    site: SiteDep,
    session: ConsoleSession,
    days: Annotated[int, Query(ge=0, le=3650)] = 30,
) -> Response:
    return site.page(
        request,
        "console_due.html",
        session=session,
        csrf=session.csrf,
        days=days,
        requests=site.service.due(days),
    )


@router.get("/flagged", response_class=HTMLResponse)
def flagged_page(request: Request, site: SiteDep, session: ConsoleSession) -> Response:
    return site.page(
        request,
        "console_flagged.html",
        session=session,
        csrf=session.csrf,
        flagged=site.service.flagged(),
    )


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request, site: SiteDep, session: ConsoleSession, request_id: RequestIdFilter = None
) -> Response:
    return site.page(
        request,
        "console_audit.html",
        session=session,
        csrf=session.csrf,
        entries=site.service.audit(request_id=request_id),
        request_id=request_id,
        chain_ok=site.service.verify_audit_chain(),
    )


@router.get("/audit/export")
def audit_export(site: SiteDep, session: AdminSession) -> Response:
    body = "".join(_ndjson(e) for e in site.service.export_audit())
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    filename = f"{site.verifier.replace(':', '-')}-audit-{stamp}.ndjson"
    return Response(
        body,
        media_type="application/x-ndjson",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, site: SiteDep, session: AdminSession) -> Response:
    return site.page(
        request,
        "console_users.html",
        session=session,
        csrf=session.csrf,
        users=site.auth.list_users(),
        keys=site.auth.list_keys(),
        roles=ROLES,
    )


@router.post("/users")
def add_user(
    site: SiteDep,
    session: AdminSession,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "operator",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_session_csrf(session, csrf_token)
    site.auth.add_user(username.strip(), password, role, by=f"operator:{operator(session)}")
    return RedirectResponse("/console/users", 303)


@router.post("/users/{username}/{action}")
def change_user(
    site: SiteDep,
    session: AdminSession,
    username: str,
    action: Literal["disable", "enable", "remove"],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Disable, enable or remove a user; effective at the user's next request."""
    check_session_csrf(session, csrf_token)
    site.change_user(action, username, session.user)
    return RedirectResponse("/console/users", 303)


@router.post("/keys/{key_id}/revoke")
def revoke_key(
    site: SiteDep, session: AdminSession, key_id: str, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    check_session_csrf(session, csrf_token)
    site.auth.revoke_key(key_id, by=f"operator:{operator(session)}")
    return RedirectResponse("/console/users", 303)


def _ndjson(entry: AuditEntry) -> str:
    return json.dumps(entry.to_json(), ensure_ascii=False, sort_keys=True) + "\n"
