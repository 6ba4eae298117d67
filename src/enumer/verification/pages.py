"""The owner's pages: find a record, start a request, prove, take the call, publish; lookup.

The request's token in ``/r/<token>`` is the owner's only credential; every
form also carries the double-submit CSRF token (:meth:`Site.check_public_csrf`).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from enumer.verification.model import State, VerificationError
from enumer.verification.service import NO_TRUNK
from enumer.verification.service import Request as VRequest
from enumer.verification.site import Site, SiteDep

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, site: SiteDep) -> Response:
    return site.page(request, "home.html")


@router.get("/verify", response_class=HTMLResponse)
def verify_page(request: Request, site: SiteDep, q: str = "") -> Response:
    records = site.find_records(q)
    return site.public_page(request, "records.html", q=q, records=records)


@router.post("/verify")
def verify_start(
    request: Request,
    site: SiteDep,
    name: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    site.check_public_csrf(request, csrf_token)
    if not name.strip():
        raise VerificationError("which record? the form carried no name", 400)
    req = site.service.start(name.strip(), site.client_ip(request))
    return RedirectResponse(f"/r/{req.token}", 303)


@router.get("/r/{token}", response_class=HTMLResponse)
def request_page(request: Request, site: SiteDep, token: str) -> Response:
    service = site.service
    req = service.by_token(token)
    commands: dict[str, str] = {}
    if req.state in (State.SIGNED, State.WAITING_FOR_CHAIN):
        commands = service.publish_commands(req.id)
    caller = service.caller
    return site.public_page(
        request,
        "request.html",
        req=req,
        commands=commands,
        can_call=caller is not None,
        call_hint=caller.hint if caller is not None else "",
        no_trunk=NO_TRUNK,
    )


def owner_step(site: Site, request: Request, token: str, sent: str) -> VRequest:
    site.check_public_csrf(request, sent)
    return site.service.by_token(token)


def back_to(token: str) -> Response:
    """After an owner's step, their request's page (the token they used)."""
    return RedirectResponse(f"/r/{token}", 303)


@router.post("/r/{token}/proof")
def proof_form(
    request: Request,
    site: SiteDep,
    token: str,
    signature: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    req = owner_step(site, request, token, csrf_token)
    site.service.prove_owner(req.id, signature.strip(), site.client_ip(request))
    return back_to(token)


@router.post("/r/{token}/call")
def call_form(
    request: Request, site: SiteDep, token: str, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    req = owner_step(site, request, token, csrf_token)
    site.service.send_code(req.id, site.client_ip(request))
    return back_to(token)


@router.post("/r/{token}/code")
def code_form(
    request: Request,
    site: SiteDep,
    token: str,
    code: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    req = owner_step(site, request, token, csrf_token)
    site.service.submit_code(req.id, code.strip(), site.client_ip(request))
    return back_to(token)


@router.post("/r/{token}/published")
def published_form(
    request: Request, site: SiteDep, token: str, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    req = owner_step(site, request, token, csrf_token)
    site.service.mark_published(req.id, site.client_ip(request))
    return back_to(token)


@router.get("/lookup")
def lookup_form(number: str = "") -> Response:
    """The home page's lookup form (a GET form cannot put the number in the path)."""
    if not number.strip():
        raise VerificationError("enter a phone number in international format", 400)
    return RedirectResponse(f"/lookup/{quote(number.strip(), safe='+')}", 303)


@router.get("/lookup/{number}", response_class=HTMLResponse)
def lookup_page(request: Request, site: SiteDep, number: str) -> Response:
    return site.page(request, "lookup.html", data=site.service.lookup(number))
