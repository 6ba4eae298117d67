"""The verifier's web service over HTTP: the application that joins its routers.

Everything here is presentation and access control; every decision (may this
number be called, is this code right, may this request be approved) is the
service's (:class:`~enumer.verification.service.VerificationService`), so the
HTML forms and the JSON API cannot drift apart.

The routes live in three routers: :mod:`~enumer.verification.pages` (the
owner's pages), :mod:`~enumer.verification.console` (the operator console) and
:mod:`~enumer.verification.api` (the JSON API). What they share (rendering,
CSRF, the callers' credentials) is in :mod:`~enumer.verification.site`. This
module builds the application: the site, the error handlers, and the guard that
puts security headers on every answer.

Pages are rendered on the server and work without JavaScript. Endpoints are
plain functions: FastAPI runs them in its thread pool, and the service
serialises what must be serialised.
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations.
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from enumer.nvs import NvsError
from enumer.verification import api, console, pages
from enumer.verification.auth import Auth
from enumer.verification.model import VerificationError
from enumer.verification.service import STORE_UNAVAILABLE, VerificationService
from enumer.verification.site import (
    HERE,
    LoginRequired,
    Site,
    WebSettings,
    is_operator,
    loggable,
    one_line,
    site_of,
)

__all__ = ["SECURITY_HEADERS", "WebSettings", "create_app"]

log = logging.getLogger("enumer.verification.web")

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; form-action 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


#: The largest request body read (forms and JSON are a few hundred bytes): 413 beyond.
MAX_BODY = 64 * 1024
TOO_LARGE = f"the request body is over {MAX_BODY // 1024} KiB"

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _static(path: str) -> bool:
    return path.startswith("/static/")


class _BodyLimit:
    """No request body over :data:`MAX_BODY` is read: 413 instead.

    A declared ``Content-Length`` over the limit is refused before anything is
    read; a chunked body is counted as it arrives and refused at the first
    byte past the limit (the endpoint's body parsing re-raises the 413), so
    memory never holds more than the limit.
    """

    def __init__(self, app: Any, render_error: Callable[[Request, int, str], Response]) -> None:
        self.app = app
        self.render_error = render_error

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > MAX_BODY:
            status, message = (
                (413, TOO_LARGE) if declared.isdigit() else (400, "bad Content-Length")
            )
            await self.render_error(Request(scope), status, message)(scope, receive, send)
            return
        seen = 0

        async def counted() -> MutableMapping[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_BODY:
                    raise HTTPException(413, TOO_LARGE)
            return message

        await self.app(scope, counted, send)


class _Guard:
    """The ASGI layer around the routes: security headers on every answer, and the
    last line of defence.

    An exception nothing else handled becomes a 500 "internal error" page (or
    JSON) and one log line; the visitor never sees a traceback.
    """

    def __init__(self, app: Any, render_error: Callable[[Request, int, str], Response]) -> None:
        self.app = app
        self.render_error = render_error

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
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


def _add_error_handlers(app: FastAPI) -> None:
    """Refusals as error pages (or JSON under ``/api``) with one line each."""

    @app.exception_handler(VerificationError)
    def refused(request: Request, exc: VerificationError) -> Response:
        # Infrastructure details (exc.detail) for operators only; the log has them too.
        text = exc.for_operator() if is_operator(request.url.path) else str(exc)
        return site_of(request).render_error(request, exc.status, one_line(text, 300))

    @app.exception_handler(NvsError)
    def chain_down(request: Request, exc: NvsError) -> Response:
        log.warning("name store error on %s: %s", loggable(request.url.path), exc)
        return site_of(request).render_error(request, 503, STORE_UNAVAILABLE)

    @app.exception_handler(LoginRequired)
    def to_login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse("/console/login", 303)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "no such page", 405: "method not allowed"}
        message = messages.get(exc.status_code, str(exc.detail))
        return site_of(request).render_error(request, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    def bad_input(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for error in exc.errors()[:3]:
            where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
            problems.append(f"{where}: {error.get('msg', 'invalid')}" if where else error["msg"])
        message = one_line("bad input: " + "; ".join(problems), 300)
        # One line, as for every refusal: no traceback, no values (they may be tokens).
        log.info("refused %s %s: %s", request.method, loggable(request.url.path), message)
        return site_of(request).render_error(request, 400, message)


def create_app(service: VerificationService, auth: Auth, settings: WebSettings) -> FastAPI:
    """The whole site: public pages, ``/console``, ``/api/v1`` and ``/static``."""
    app = FastAPI(
        title=f"{service.verifier_id} ENUM verification",
        summary="Prove ownership of an ENUM record and its phone number; get it signed.",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    site = Site(service, auth, settings)
    app.state.site = site
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _add_error_handlers(app)
    app.include_router(pages.router)
    app.include_router(console.router)
    app.include_router(api.router)
    # Both inside Starlette's ServerErrorMiddleware, outside the exception handlers;
    # the guard outermost: it sees every answer (headers), the body limit's too, and
    # every exception the handlers did not take.
    app.add_middleware(_BodyLimit, render_error=site.render_error)
    app.add_middleware(_Guard, render_error=site.render_error)
    return app
