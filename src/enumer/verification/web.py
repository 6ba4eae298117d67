"""The verifier's web service over HTTP: the owner's pages, the operator console, the JSON API.

Everything here is presentation and access control; every decision (may this
number be called, is this code right, may this request be approved) is the
service's (:class:`~enumer.verification.service.VerificationService`), so the
HTML forms and the JSON API cannot drift apart.

Pages are rendered on the server and work without JavaScript. Three kinds of
callers, three kinds of credentials:

- owners (public pages): nothing but the request's unguessable token in its
  URL; their forms carry a double-submit CSRF token (cookie ``enumer_csrf``);
- operators (``/console``): a session cookie (``enumer_session``) whose token
  the database keeps hashed, and the session's CSRF token in every form;
- integrations (``/api/v1``): JSON in and out; the operator part takes
  ``Authorization: Bearer <api key>``. No cookie is read there, so a browser
  cannot be tricked into acting on it (no CSRF needed).

Endpoints are plain functions: FastAPI runs them in its thread pool, and the
service serialises what must be serialised.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations at
# run time, and the dependency aliases (ConsoleSession, ...) are local to create_app.
import hmac
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import jinja2
from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from enumer.nvs import NvsError
from enumer.verification.auth import ROLES, Auth, Session, User
from enumer.verification.model import TRANSITIONS, State, VerificationError
from enumer.verification.service import (
    NO_TRUNK,
    AuditEntry,
    RecordInfo,
    VerificationService,
)
from enumer.verification.service import Request as VRequest

log = logging.getLogger("enumer.verification.web")

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "enumer_session"
CSRF_COOKIE = "enumer_csrf"
CSRF_FAILED = "CSRF token missing or wrong"

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; form-action 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


@dataclass(frozen=True)
class WebSettings:
    """How the web layer presents the service; ``serve``'s options fill it."""

    secure_cookies: bool = True  # False only for plain-HTTP development on loopback
    #: A reverse proxy's address: only its X-Forwarded-For is believed.
    trusted_proxy: str | None = None


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


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 403, 404, 409, 410, 429, 502, 503)
}
API_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {**ERRORS, 401: {"model": ErrorOut}}


# -- small helpers ---------------------------------------------------------------------------


def one_line(text: str, limit: int = 80) -> str:
    """User input quoted in a message: one line, bounded."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def utc(when: float | None) -> str:
    if when is None:
        return "—"
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC")


def hhmm(when: float | None) -> str:
    if when is None:
        return "—"
    return datetime.fromtimestamp(when, UTC).strftime("%H:%M UTC")


def request_json(req: VRequest, with_token: bool) -> dict[str, Any]:
    """The service's JSON of a request; its token only in the owner's own API answers
    (an operator acts through the console API, never as the owner)."""
    data = req.to_json()
    if not with_token:
        data.pop("token", None)
    return data


class LoginRequired(Exception):
    """A console page without a live session: 303 to the sign-in page."""


def _is_api(path: str) -> bool:
    return path.startswith("/api/")


def _static(path: str) -> bool:
    return path.startswith("/static/")


def loggable(path: str) -> str:
    """A request path fit for a log: the owner's token (a credential) masked."""
    return _TOKEN_IN_PATH.sub(r"\1<token>", path)


_TOKEN_IN_PATH = re.compile(r"(^/r/|^/api/v1/requests/)[^/]+")


class _Guard:
    """The ASGI layer around the routes: security headers on every answer, and the
    last line of defence.

    An exception nothing else handled becomes a 500 "internal error" page (or
    JSON) and one log line; the visitor never sees a traceback.
    """

    def __init__(self, app: Any, render_error: Callable[[Request, int, str], Response]) -> None:
        self.app = app
        self.render_error = render_error

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        path = str(scope.get("path", ""))

        async def guarded_send(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers[key] = value
                if not _static(path):
                    headers["cache-control"] = "no-store"
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception as exc:
            # The path without its query string and with the owner's token masked,
            # the exception's type and message; no form data, headers or cookies.
            log.error(
                "internal error on %s %s: %s: %s",
                scope.get("method"),
                loggable(path),
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            if started:
                raise
            response = self.render_error(Request(scope), 500, "internal error")
            await response(scope, receive, guarded_send)


# -- the application -------------------------------------------------------------------------


def create_app(service: VerificationService, auth: Auth, settings: WebSettings) -> FastAPI:
    """The whole site: public pages, ``/console``, ``/api/v1`` and ``/static``."""
    verifier = service.verifier_id
    app = FastAPI(
        title=f"{verifier} ENUM verification",
        summary="Prove ownership of an ENUM record and its phone number; get it signed.",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["utc"] = utc
    env.filters["hhmm"] = hhmm
    templates = Jinja2Templates(env=env)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    # -- rendering --------------------------------------------------------------------

    def client_ip(request: Request) -> str:
        """The client's address; behind ``trusted_proxy``, the one it reports."""
        host = request.client.host if request.client else "unknown"
        if settings.trusted_proxy and host == settings.trusted_proxy:
            forwarded = request.headers.get("x-forwarded-for", "")
            last = forwarded.split(",")[-1].strip()
            if last:
                return last[:64]
        return host

    def page(
        request: Request,
        name: str,
        status: int = 200,
        session: Session | None = None,
        **context: Any,
    ) -> Response:
        context.setdefault("csrf", "")
        return templates.TemplateResponse(
            request,
            name,
            {
                "verifier": verifier,
                "session": session,
                "user": session.user if session else None,
                "State": State,
                **context,
            },
            status_code=status,
        )

    def render_error(request: Request, status: int, message: str) -> Response:
        if _is_api(request.url.path):
            headers = {"www-authenticate": "Bearer"} if status == 401 else None
            return JSONResponse({"error": message}, status, headers=headers)
        back = "/console" if request.url.path.startswith("/console") else "/"
        return page(request, "error.html", status, code=status, message=message, back=back)

    # -- public CSRF (double submit) ----------------------------------------------------

    def public_token(request: Request) -> tuple[str, bool]:
        """The visitor's CSRF token, and whether it is new (a cookie must be set)."""
        current = request.cookies.get(CSRF_COOKIE, "")
        if 20 <= len(current) <= 100:
            return current, False
        return secrets.token_urlsafe(32), True

    def with_public_token(response: Response, token: str, new: bool) -> Response:
        if new:
            response.set_cookie(
                CSRF_COOKIE,
                token,
                httponly=True,
                samesite="strict",
                secure=settings.secure_cookies,
                path="/",
            )
        return response

    def public_page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        token, new = public_token(request)
        return with_public_token(page(request, name, status, csrf=token, **context), token, new)

    def check_public_csrf(request: Request, sent: str) -> None:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not cookie or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
            raise VerificationError(CSRF_FAILED, 403)

    # -- console sessions ------------------------------------------------------------

    def console_session(request: Request) -> Session:
        session = auth.session(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise LoginRequired()
        return session

    def admin_session(session: Session = Depends(console_session)) -> Session:  # noqa: B008
        if not session.user.is_admin:
            raise VerificationError("this needs the admin role", 403)
        return session

    def check_session_csrf(session: Session, sent: str) -> None:
        if not sent or not hmac.compare_digest(session.csrf.encode(), sent.encode()):
            raise VerificationError(CSRF_FAILED, 403)

    def operator(session: Session) -> str:
        return session.user.username

    def api_user(request: Request) -> User:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        user = auth.api_user(key.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise VerificationError("missing or wrong API key", 401)
        return user

    ConsoleSession = Annotated[Session, Depends(console_session)]
    AdminSession = Annotated[Session, Depends(admin_session)]
    ApiUser = Annotated[User, Depends(api_user)]

    # -- errors ---------------------------------------------------------------------------

    @app.exception_handler(VerificationError)
    def refused(request: Request, exc: VerificationError) -> Response:
        return render_error(request, exc.status, one_line(str(exc), 300))

    @app.exception_handler(NvsError)
    def chain_down(request: Request, exc: NvsError) -> Response:
        log.warning("name store error on %s: %s", request.url.path, exc)
        return render_error(request, 503, f"the name store is unavailable: {one_line(str(exc))}")

    @app.exception_handler(LoginRequired)
    def to_login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse("/console/login", 303)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "no such page", 405: "method not allowed"}
        message = messages.get(exc.status_code, str(exc.detail))
        return render_error(request, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    def bad_input(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for error in exc.errors()[:3]:
            where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
            problems.append(f"{where}: {error.get('msg', 'invalid')}" if where else error["msg"])
        return render_error(request, 400, one_line("bad input: " + "; ".join(problems), 300))

    # -- the owner's pages ----------------------------------------------------------------

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def home(request: Request) -> Response:
        return page(request, "home.html")

    @app.get("/verify", include_in_schema=False, response_class=HTMLResponse)
    def verify_page(request: Request, q: str = "") -> Response:
        records = find_records(q)
        return public_page(request, "records.html", q=q, records=records)

    def find_records(q: str) -> list[RecordInfo]:
        if not q.strip():
            raise VerificationError("enter an ENUM record name or a phone number", 400)
        records = service.find_records(q.strip())
        if not records:
            raise VerificationError(f"no ENUM record for {one_line(q, 40)}", 404)
        return records

    @app.post("/verify", include_in_schema=False)
    def verify_start(
        request: Request, name: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = ""
    ) -> Response:
        check_public_csrf(request, csrf_token)
        if not name.strip():
            raise VerificationError("which record? the form carried no name", 400)
        req = service.start(name.strip(), client_ip(request))
        return RedirectResponse(f"/r/{req.token}", 303)

    @app.get("/r/{token}", include_in_schema=False, response_class=HTMLResponse)
    def request_page(request: Request, token: str) -> Response:
        req = service.by_token(token)
        commands: dict[str, str] = {}
        if req.state in (State.SIGNED, State.WAITING_FOR_CHAIN):
            commands = service.publish_commands(req.id)
        caller = service.caller
        return public_page(
            request,
            "request.html",
            req=req,
            commands=commands,
            can_call=caller is not None,
            call_hint=caller.hint if caller is not None else "",
            no_trunk=NO_TRUNK,
        )

    def owner_step(request: Request, token: str, sent: str) -> VRequest:
        check_public_csrf(request, sent)
        return service.by_token(token)

    def back_to(req: VRequest) -> Response:
        return RedirectResponse(f"/r/{req.token}", 303)

    @app.post("/r/{token}/proof", include_in_schema=False)
    def proof_form(
        request: Request,
        token: str,
        signature: Annotated[str, Form()] = "",
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        req = owner_step(request, token, csrf_token)
        return back_to(service.prove_owner(req.id, signature.strip(), client_ip(request)))

    @app.post("/r/{token}/call", include_in_schema=False)
    def call_form(
        request: Request, token: str, csrf_token: Annotated[str, Form()] = ""
    ) -> Response:
        req = owner_step(request, token, csrf_token)
        return back_to(service.send_code(req.id, client_ip(request)))

    @app.post("/r/{token}/code", include_in_schema=False)
    def code_form(
        request: Request,
        token: str,
        code: Annotated[str, Form()] = "",
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        req = owner_step(request, token, csrf_token)
        return back_to(service.submit_code(req.id, code.strip(), client_ip(request)))

    @app.post("/r/{token}/published", include_in_schema=False)
    def published_form(
        request: Request, token: str, csrf_token: Annotated[str, Form()] = ""
    ) -> Response:
        req = owner_step(request, token, csrf_token)
        return back_to(service.mark_published(req.id, client_ip(request)))

    @app.get("/lookup", include_in_schema=False)
    def lookup_form(number: str = "") -> Response:
        """The home page's lookup form (a GET form cannot put the number in the path)."""
        if not number.strip():
            raise VerificationError("enter a phone number in international format", 400)
        return RedirectResponse(f"/lookup/{quote(number.strip(), safe='+')}", 303)

    @app.get("/lookup/{number}", include_in_schema=False, response_class=HTMLResponse)
    def lookup_page(request: Request, number: str) -> Response:
        return page(request, "lookup.html", data=service.lookup(number))

    # -- the console ---------------------------------------------------------------------

    @app.get("/console/login", include_in_schema=False, response_class=HTMLResponse)
    def login_page(request: Request) -> Response:
        if auth.session(request.cookies.get(SESSION_COOKIE)) is not None:
            return RedirectResponse("/console", 303)
        return public_page(request, "login.html", error="", username="")

    @app.post("/console/login", include_in_schema=False)
    def login(
        request: Request,
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        check_public_csrf(request, csrf_token)
        try:
            token, _ = auth.login(username.strip(), password, client_ip(request))
        except VerificationError as exc:
            if exc.status != 401:
                raise
            return public_page(
                request, "login.html", 401, error=str(exc), username=one_line(username, 64)
            )
        response = RedirectResponse("/console", 303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookies,
            path="/",
        )
        return response

    @app.post("/console/logout", include_in_schema=False)
    def logout(
        request: Request, session: ConsoleSession, csrf_token: Annotated[str, Form()] = ""
    ) -> Response:
        check_session_csrf(session, csrf_token)
        auth.logout(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/console/login", 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def parse_state(state: str) -> State | None:
        if not state:
            return None
        try:
            return State(state)
        except ValueError:
            raise VerificationError(f"unknown state {one_line(state, 40)!r}", 400) from None

    @app.get("/console", include_in_schema=False, response_class=HTMLResponse)
    def queue(request: Request, session: ConsoleSession, state: str = "", q: str = "") -> Response:
        requests = service.list_requests(parse_state(state), q.strip())
        return page(
            request,
            "console_queue.html",
            session=session,
            csrf=session.csrf,
            requests=requests,
            state=state,
            q=q,
        )

    @app.get("/console/requests/{request_id}", include_in_schema=False)
    def detail(request: Request, session: ConsoleSession, request_id: int) -> Response:
        req = service.get(request_id)
        allowed = TRANSITIONS[req.state]
        return page(
            request,
            "console_request.html",
            session=session,
            csrf=session.csrf,
            req=req,
            entries=service.audit(request_id=request_id),
            # The service decides; these only hide buttons that would surely be refused:
            # approval replaces the call, so it needs the owner proof and no signature yet.
            can_approve=req.state is State.AWAITING_CODE,
            can_reject=State.REJECTED in allowed,
            can_revoke=State.REVOKED in allowed,
        )

    def decide(
        session: Session, request_id: int, action: str, reason: str, csrf_token: str
    ) -> Response:
        check_session_csrf(session, csrf_token)
        if not reason.strip():
            raise VerificationError("give a reason: it goes into the audit log", 400)
        act = {"approve": service.approve, "reject": service.reject, "revoke": service.revoke}
        act[action](request_id, operator(session), reason.strip())
        return RedirectResponse(f"/console/requests/{request_id}", 303)

    @app.post("/console/requests/{request_id}/approve", include_in_schema=False)
    def approve_form(
        session: ConsoleSession,
        request_id: int,
        reason: Annotated[str, Form()] = "",
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        return decide(session, request_id, "approve", reason, csrf_token)

    @app.post("/console/requests/{request_id}/reject", include_in_schema=False)
    def reject_form(
        session: ConsoleSession,
        request_id: int,
        reason: Annotated[str, Form()] = "",
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        return decide(session, request_id, "reject", reason, csrf_token)

    @app.post("/console/requests/{request_id}/revoke", include_in_schema=False)
    def revoke_form(
        session: ConsoleSession,
        request_id: int,
        reason: Annotated[str, Form()] = "",
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        return decide(session, request_id, "revoke", reason, csrf_token)

    @app.get("/console/due", include_in_schema=False, response_class=HTMLResponse)
    def due_page(
        request: Request,
        session: ConsoleSession,
        days: Annotated[int, Query(ge=0, le=3650)] = 30,
    ) -> Response:
        return page(
            request,
            "console_due.html",
            session=session,
            csrf=session.csrf,
            days=days,
            requests=service.due(days),
        )

    @app.get("/console/flagged", include_in_schema=False, response_class=HTMLResponse)
    def flagged_page(request: Request, session: ConsoleSession) -> Response:
        return page(
            request,
            "console_flagged.html",
            session=session,
            csrf=session.csrf,
            flagged=service.flagged(),
        )

    @app.get("/console/audit", include_in_schema=False, response_class=HTMLResponse)
    def audit_page(
        request: Request, session: ConsoleSession, request_id: int | None = None
    ) -> Response:
        return page(
            request,
            "console_audit.html",
            session=session,
            csrf=session.csrf,
            entries=service.audit(request_id=request_id),
            request_id=request_id,
            chain_ok=service.verify_audit_chain(),
        )

    @app.get("/console/audit/export", include_in_schema=False)
    def audit_export(session: AdminSession) -> Response:
        body = "".join(_ndjson(e) for e in service.export_audit())
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        filename = f"{verifier.replace(':', '-')}-audit-{stamp}.ndjson"
        return Response(
            body,
            media_type="application/x-ndjson",
            headers={"content-disposition": f'attachment; filename="{filename}"'},
        )

    @app.get("/console/users", include_in_schema=False, response_class=HTMLResponse)
    def users_page(request: Request, session: AdminSession) -> Response:
        return page(
            request,
            "console_users.html",
            session=session,
            csrf=session.csrf,
            users=auth.list_users(),
            roles=ROLES,
        )

    @app.post("/console/users", include_in_schema=False)
    def add_user(
        session: AdminSession,
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        role: Annotated[str, Form()] = "operator",
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        check_session_csrf(session, csrf_token)
        auth.add_user(username.strip(), password, role, by=f"operator:{operator(session)}")
        return RedirectResponse("/console/users", 303)

    # -- the JSON API: the owner's path -------------------------------------------------

    api = "/api/v1"

    @app.get(f"{api}/records", response_model=list[RecordOut], responses=ERRORS, tags=["owner"])
    def api_records(q: str) -> list[dict[str, Any]]:
        """The records for a record name or a number, with lint and our signature state."""
        return [r.to_json() for r in find_records(q)]

    @app.post(
        f"{api}/requests",
        status_code=201,
        response_model=RequestOut,
        responses=ERRORS,
        tags=["owner"],
    )
    def api_start(request: Request, body: NameIn) -> dict[str, Any]:
        """Start (or resume) a request for a record; the answer's ``token`` names it."""
        return request_json(service.start(body.name.strip(), client_ip(request)), True)

    @app.get(
        f"{api}/requests/{{token}}", response_model=RequestOut, responses=ERRORS, tags=["owner"]
    )
    def api_request(token: str) -> dict[str, Any]:
        return request_json(service.by_token(token), True)

    @app.post(
        f"{api}/requests/{{token}}/proof",
        response_model=RequestOut,
        responses=ERRORS,
        tags=["owner"],
    )
    def api_proof(request: Request, token: str, body: SignatureIn) -> dict[str, Any]:
        """The owner address's ``signmessage`` signature over ``challenge``."""
        req = service.by_token(token)
        done = service.prove_owner(req.id, body.signature.strip(), client_ip(request))
        return request_json(done, True)

    @app.post(
        f"{api}/requests/{{token}}/call",
        response_model=RequestOut,
        responses=ERRORS,
        tags=["owner"],
    )
    def api_call(request: Request, token: str) -> dict[str, Any]:
        """Call the number with a fresh code (503 when the service has no trunk)."""
        req = service.by_token(token)
        return request_json(service.send_code(req.id, client_ip(request)), True)

    @app.post(
        f"{api}/requests/{{token}}/code",
        response_model=RequestOut,
        responses=ERRORS,
        tags=["owner"],
    )
    def api_code(request: Request, token: str, body: CodeIn) -> dict[str, Any]:
        """The code the call delivered; on success the request is ``signed``."""
        req = service.by_token(token)
        return request_json(
            service.submit_code(req.id, body.code.strip(), client_ip(request)), True
        )

    @app.post(
        f"{api}/requests/{{token}}/published",
        response_model=RequestOut,
        responses=ERRORS,
        tags=["owner"],
    )
    def api_published(request: Request, token: str) -> dict[str, Any]:
        """The owner has sent the SIG line; the service watches the chain for it."""
        req = service.by_token(token)
        return request_json(service.mark_published(req.id, client_ip(request)), True)

    @app.get(
        f"{api}/requests/{{token}}/publish",
        response_model=PublishOut,
        responses=ERRORS,
        tags=["owner"],
    )
    def api_publish(token: str) -> dict[str, str]:
        """How to add the SIG line to the record (the value and both commands)."""
        return service.publish_commands(service.by_token(token).id)

    @app.get(
        f"{api}/lookup/{{number}}", response_model=LookupOut, responses=ERRORS, tags=["public"]
    )
    def api_lookup(number: str) -> dict[str, Any]:
        """Records of a number, who signed them, revocations, and the PBX route."""
        return service.lookup(number)

    # -- the JSON API: operators -------------------------------------------------------

    @app.get(
        f"{api}/console/requests",
        response_model=list[RequestOut],
        responses=API_AUTH_ERRORS,
        response_model_exclude_unset=True,
        tags=["operator"],
    )
    def api_queue(user: ApiUser, state: str = "", q: str = "") -> list[dict[str, Any]]:
        return [request_json(r, False) for r in service.list_requests(parse_state(state), q)]

    @app.get(
        f"{api}/console/requests/{{request_id}}",
        response_model=RequestDetailOut,
        responses=API_AUTH_ERRORS,
        response_model_exclude_unset=True,
        tags=["operator"],
    )
    def api_detail(user: ApiUser, request_id: int) -> dict[str, Any]:
        return {
            "request": request_json(service.get(request_id), False),
            "audit": [e.to_json() for e in service.audit(request_id=request_id)],
        }

    def api_decision(path: str, action: Callable[[int, str, str], VRequest]) -> None:
        @app.post(
            f"{api}/console/requests/{{request_id}}/{path}",
            response_model=RequestOut,
            responses=API_AUTH_ERRORS,
            response_model_exclude_unset=True,
            tags=["operator"],
            name=f"api_{path}",
            summary=f"{path.capitalize()} a request (with a reason for the audit log)",
        )
        def decision(user: ApiUser, request_id: int, body: ReasonIn) -> dict[str, Any]:
            if not body.reason.strip():
                raise VerificationError("give a reason: it goes into the audit log", 400)
            return request_json(action(request_id, user.username, body.reason.strip()), False)

    api_decision("approve", service.approve)
    api_decision("reject", service.reject)
    api_decision("revoke", service.revoke)

    @app.get(
        f"{api}/console/due",
        response_model=list[RequestOut],
        responses=API_AUTH_ERRORS,
        response_model_exclude_unset=True,
        tags=["operator"],
    )
    def api_due(
        user: ApiUser, days: Annotated[int, Query(ge=0, le=3650)] = 30
    ) -> list[dict[str, Any]]:
        return [request_json(r, False) for r in service.due(days)]

    @app.get(
        f"{api}/console/flagged",
        response_model=list[FlaggedOut],
        responses=API_AUTH_ERRORS,
        response_model_exclude_unset=True,
        tags=["operator"],
    )
    def api_flagged(user: ApiUser) -> list[dict[str, Any]]:
        return [
            {"request": request_json(r, False), "problem": problem}
            for r, problem in service.flagged()
        ]

    @app.get(
        f"{api}/console/audit",
        response_model=list[AuditOut],
        responses=API_AUTH_ERRORS,
        response_model_exclude_unset=True,
        tags=["operator"],
    )
    def api_audit(
        user: ApiUser,
        request_id: int | None = None,
        limit: Annotated[int, Query(ge=1, le=100000)] = 500,
    ) -> list[dict[str, Any]]:
        return [e.to_json() for e in service.audit(limit=limit, request_id=request_id)]

    # Inside Starlette's ServerErrorMiddleware, outside the exception handlers: it
    # sees every answer (headers) and every exception the handlers did not take.
    app.add_middleware(_Guard, render_error=render_error)
    return app


def _ndjson(entry: AuditEntry) -> str:
    return json.dumps(entry.to_json(), ensure_ascii=False, sort_keys=True) + "\n"
