"""What the verifier's routers share: rendering, the callers' credentials, small helpers.

:func:`~enumer.verification.web.create_app` builds one :class:`Site` per
application and keeps it in ``app.state``; the routers (:mod:`.pages`,
:mod:`.console`, :mod:`.api`) reach it through the dependencies below. This
module is apart from :mod:`.web` so that the routers can import it while
:mod:`.web` imports the routers.

Three kinds of callers, three kinds of credentials:

- owners (public pages): nothing but the request's unguessable token in its
  URL; their forms carry a double-submit CSRF token (cookie ``enumer_csrf``);
- operators (``/console``): a session cookie (``enumer_session``) whose token
  the database keeps hashed, and the session's CSRF token in every form;
- integrations (``/api/v1``): JSON in and out; the operator part takes
  ``Authorization: Bearer <api key>``. No cookie is read there, so a browser
  cannot be tricked into acting on it (no CSRF needed).
"""

# No ``from __future__ import annotations``: FastAPI reads the dependency aliases at run time.
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, cast

import jinja2
from fastapi import Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.templating import Jinja2Templates

from enumer.verification.auth import Auth, Session, User
from enumer.verification.db import MAX_ROW_ID
from enumer.verification.model import State, VerificationError
from enumer.verification.service import RecordInfo, VerificationService
from enumer.verification.service import Request as VRequest

HERE = FilePath(__file__).resolve().parent
SESSION_COOKIE = "enumer_session"
CSRF_COOKIE = "enumer_csrf"
CSRF_FAILED = "CSRF token missing or wrong"


@dataclass(frozen=True)
class WebSettings:
    """How the web layer presents the service; ``serve``'s options fill it."""

    secure_cookies: bool = True  # False only for plain-HTTP development on loopback
    #: A reverse proxy's address: only its X-Forwarded-For is believed.
    trusted_proxy: str | None = None


class LoginRequired(Exception):
    """A console page without a live session: 303 to the sign-in page."""


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


def request_json(req: VRequest) -> dict[str, Any]:
    """The service's JSON of a request for operators: never a token (an operator acts
    through the console API, never as the owner)."""
    data = req.to_json()
    data.pop("token", None)
    return data


def owner_json(req: VRequest, token: str) -> dict[str, Any]:
    """The JSON of a request for its owner, who holds ``token`` (the state file keeps
    only its hash, so the token comes from the owner's own call)."""
    return {**req.to_json(), "token": token}


def parse_state(state: str) -> State | None:
    """A queue filter's ``state``: empty for all, else one of the states (400 otherwise)."""
    if not state:
        return None
    try:
        return State(state)
    except ValueError:
        raise VerificationError(f"unknown state {one_line(state, 40)!r}", 400) from None


def is_api(path: str) -> bool:
    return path.startswith("/api/")


def is_operator(path: str) -> bool:
    """Whether only operators use ``path`` (the console and the operator API)."""
    return path.startswith(("/console", "/api/v1/console"))


def loggable(path: str) -> str:
    """A request path fit for a log: the owner's token (a credential) masked."""
    return _TOKEN_IN_PATH.sub(r"\1<token>", path)


_TOKEN_IN_PATH = re.compile(r"(^/r/|^/api/v1/requests/)[^/]+")


def check_session_csrf(session: Session, sent: str) -> None:
    if not sent or not hmac.compare_digest(session.csrf.encode(), sent.encode()):
        raise VerificationError(CSRF_FAILED, 403)


def operator(session: Session) -> str:
    return session.user.username


# -- the site ----------------------------------------------------------------------------------


class Site:
    """One application's service, credentials and templates, shared by its routers."""

    def __init__(self, service: VerificationService, auth: Auth, settings: WebSettings) -> None:
        self.service = service
        self.auth = auth
        self.settings = settings
        self.verifier = service.verifier_id
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["utc"] = utc
        env.filters["hhmm"] = hhmm
        self.templates = Jinja2Templates(env=env)

    # -- rendering --------------------------------------------------------------------

    def client_ip(self, request: Request) -> str:
        """The client's address; behind ``trusted_proxy``, the one it reports."""
        host = request.client.host if request.client else "unknown"
        if self.settings.trusted_proxy and host == self.settings.trusted_proxy:
            forwarded = request.headers.get("x-forwarded-for", "")
            last = forwarded.split(",")[-1].strip()
            if last:
                return last[:64]
        return host

    def page(
        self,
        request: Request,
        name: str,
        status: int = 200,
        session: Session | None = None,
        **context: Any,
    ) -> Response:
        context.setdefault("csrf", "")
        return self.templates.TemplateResponse(
            request,
            name,
            {
                "verifier": self.verifier,
                "session": session,
                "user": session.user if session else None,
                "State": State,
                **context,
            },
            status_code=status,
        )

    def render_error(self, request: Request, status: int, message: str) -> Response:
        if is_api(request.url.path):
            headers = {"www-authenticate": "Bearer"} if status == 401 else None
            return JSONResponse({"error": message}, status, headers=headers)
        back = "/console" if request.url.path.startswith("/console") else "/"
        return self.page(request, "error.html", status, code=status, message=message, back=back)

    # -- public CSRF (double submit) ----------------------------------------------------

    def public_token(self, request: Request) -> tuple[str, bool]:
        """The visitor's CSRF token, and whether it is new (a cookie must be set)."""
        current = request.cookies.get(CSRF_COOKIE, "")
        if 20 <= len(current) <= 100:
            return current, False
        return secrets.token_urlsafe(32), True

    def with_public_token(self, response: Response, token: str, new: bool) -> Response:
        if new:
            response.set_cookie(
                CSRF_COOKIE,
                token,
                httponly=True,
                samesite="strict",
                secure=self.settings.secure_cookies,
                path="/",
            )
        return response

    def public_page(
        self, request: Request, name: str, status: int = 200, **context: Any
    ) -> Response:
        token, new = self.public_token(request)
        page = self.page(request, name, status, csrf=token, **context)
        return self.with_public_token(page, token, new)

    def check_public_csrf(self, request: Request, sent: str) -> None:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not cookie or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
            raise VerificationError(CSRF_FAILED, 403)

    # -- shared by the routers ------------------------------------------------------------

    def decide(self, action: str, request_id: int, by: str, reason: str) -> VRequest:
        """An operator's ``approve``, ``reject`` or ``revoke``, which needs a reason."""
        if not reason.strip():
            raise VerificationError("give a reason: it goes into the audit log", 400)
        service = self.service
        act = {"approve": service.approve, "reject": service.reject, "revoke": service.revoke}
        return act[action](request_id, by, reason.strip())

    def change_user(self, action: str, username: str, by: User) -> None:
        """An admin's ``disable``, ``enable`` or ``remove`` of a user (not of themselves:
        that would lock the last admin out; another admin or the CLI can)."""
        if action != "enable" and username == by.username:
            raise VerificationError(f"you cannot {action} your own user", 409)
        change = {
            "disable": self.auth.disable_user,
            "enable": self.auth.enable_user,
            "remove": self.auth.remove_user,
        }[action]
        change(username, by=f"operator:{by.username}")

    def find_records(self, q: str) -> list[RecordInfo]:
        if not q.strip():
            raise VerificationError("enter an ENUM record name or a phone number", 400)
        records = self.service.find_records(q.strip())
        if not records:
            raise VerificationError(f"no ENUM record for {one_line(q, 40)}", 404)
        return records


# -- dependencies --------------------------------------------------------------------------


def site_of(request: Request) -> Site:
    """The :class:`Site` of the application that serves ``request``."""
    return cast(Site, request.app.state.site)


def console_session(request: Request) -> Session:
    session = site_of(request).auth.session(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise LoginRequired()
    return session


def admin_session(session: Session = Depends(console_session)) -> Session:  # noqa: B008
    if not session.user.is_admin:
        raise VerificationError("this needs the admin role", 403)
    return session


def api_user(request: Request) -> User:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    auth = site_of(request).auth
    user = auth.api_user(key.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        raise VerificationError("missing or wrong API key", 401)
    return user


def api_admin(user: User = Depends(api_user)) -> User:  # noqa: B008
    if not user.is_admin:
        raise VerificationError("this needs the admin role", 403)
    return user


SiteDep = Annotated[Site, Depends(site_of)]
#: A request's id in a path or a query: bounded, so that a 30-digit number is a 400,
#: not an integer SQLite cannot take.
RequestId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="The request's id")]
RequestIdFilter = Annotated[
    int | None, Query(ge=1, le=MAX_ROW_ID, description="Only this request's entries")
]
ConsoleSession = Annotated[Session, Depends(console_session)]
AdminSession = Annotated[Session, Depends(admin_session)]
ApiUser = Annotated[User, Depends(api_user)]
ApiAdmin = Annotated[User, Depends(api_admin)]
