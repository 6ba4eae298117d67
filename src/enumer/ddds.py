"""DDDS for ENUM (RFC 3402/3403/6116): from the NAPTRs of a number to the URIs to call.

The caller's side of ENUM, shared by ``enumer route``, the PBX compatibility
check, ``lookup`` and the verification service: keep the terminal rules for a
wanted enumservice, order them, apply each regexp (:mod:`enumer.substitution`)
to the AUS, and say why each rule that gives no URI was skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from enumer.messages import show
from enumer.naptr import Naptr
from enumer.substitution import RegexpError, SubstitutionExpression

__all__ = [
    "DEFAULT_SIP_SERVICES",
    "Route",
    "enumservice_matches",
    "select_routes",
]


@dataclass(frozen=True)
class Route:
    """A URI a caller may try, with the record that produced it for logs and answers."""

    uri: str
    service: str
    order: int
    preference: int
    naptr: Naptr


DEFAULT_SIP_SERVICES: Final[frozenset[str]] = frozenset({"E2U+sip", "E2U+voice:sip"})


def _enumservices(service: str) -> frozenset[str]:
    """The lower-cased enumservices of a service field, ``type`` or ``type:subtype``.

    RFC 6116 allows one ``E2U+type[:subtype]``; RFC 3761 allowed several
    ``+``-separated specs (``E2U+sip+h323``) and several subtypes per type, so
    each spec and subtype counts on its own. Not an E2U field: nothing.
    """
    parts = service.lower().split("+")
    if len(parts) < 2 or parts[0] != "e2u":
        return frozenset()
    found: set[str] = set()
    for spec in parts[1:]:
        kind, *subtypes = spec.split(":")
        if not kind or not all(subtypes):
            continue
        if subtypes:
            found.update(f"{kind}:{subtype}" for subtype in subtypes)
        else:
            found.add(kind)
    return frozenset(found)


def _wanted_enumservices(wanted: Iterable[str]) -> frozenset[str]:
    """Normalise a configured service list; a bare ``sip`` means ``E2U+sip``."""
    if isinstance(wanted, str):  # a single service, not an iterable of characters
        wanted = (wanted,)
    found: set[str] = set()
    for item in wanted:
        text = item if item.lower().startswith("e2u+") else f"E2U+{item}"
        found.update(_enumservices(text))
    return frozenset(found)


def enumservice_matches(service: str, wanted: Iterable[str]) -> bool:
    """Whether a NAPTR service field offers one of the wanted enumservices.

    Case-insensitive (RFC 6116 section 3.4.3). ``wanted`` holds entries like
    ``"E2U+sip"`` or ``"E2U+voice:sip"``; ``"E2U+sip+h323"`` matches ``E2U+sip``.
    """
    return not _enumservices(service).isdisjoint(_wanted_enumservices(wanted))


def _is_uri(text: str) -> bool:
    """An ENUM result must be an absolute URI: it needs a scheme (RFC 3986)."""
    try:
        return bool(urlsplit(text).scheme)
    except ValueError:
        return False


def select_routes(
    naptrs: Iterable[Naptr],
    aus: str,
    services: Iterable[str] = DEFAULT_SIP_SERVICES,
) -> tuple[list[Route], list[str]]:
    """DDDS for ENUM (RFC 3402/3403/6116): the URIs to call for ``aus``, best first.

    Keeps terminal rules (flags ``u``, case-insensitive) for a wanted service,
    sorts them by (order, preference) keeping the answer's order for ties, and
    applies each regexp to the AUS (``"+18009359935"``). A record that cannot
    produce a URI (bad regexp, no match, non-URI result, a ``u`` rule with a
    replacement name) is skipped, and why is reported in the second list, e.g.
    ``"E2U+sip 100/10: regexp: ERE is empty"``: one broken record must not hide
    the others. Records of other flags or services are ignored silently.

    All orders are returned. RFC 3403 says a client that got a match MUST NOT
    consider records of another order, so a dialler should try only the routes
    whose order equals ``routes[0].order``; the rest are for display.
    """
    wanted = _wanted_enumservices(services)
    candidates = [
        naptr
        for naptr in naptrs
        if naptr.flags.lower() == "u" and not _enumservices(naptr.service).isdisjoint(wanted)
    ]
    candidates.sort(key=lambda naptr: (naptr.order, naptr.preference))
    routes: list[Route] = []
    reasons: list[str] = []
    for naptr in candidates:
        label = f"{naptr.service} {naptr.order}/{naptr.preference}"
        if naptr.replacement not in (".", ""):
            reasons.append(
                f"{label}: terminal rule has replacement {show(naptr.replacement)}, expected '.'"
            )
            continue
        try:
            expression = SubstitutionExpression.from_text(naptr.regexp)
        except RegexpError as exc:
            reasons.append(f"{label}: regexp: {exc}")
            continue
        uri = expression.apply(aus)
        if uri is None:
            reasons.append(f"{label}: regexp {naptr.regexp!r} does not match {show(aus)}")
            continue
        if not _is_uri(uri):
            reasons.append(f"{label}: result {show(uri)} is not a URI")
            continue
        routes.append(
            Route(
                uri=uri,
                service=naptr.service,
                order=naptr.order,
                preference=naptr.preference,
                naptr=naptr,
            )
        )
    return routes, reasons
