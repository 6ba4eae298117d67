"""ENUM routing as a caller does it: NAPTR over real DNS, suffix after suffix.

The article's FreeSWITCH dialplan asks the ENUMER zone ``enum`` first, then
``e164.arpa``, and calls the PSTN when neither gives a route. :func:`route`
does the same with dnspython, so that an administrator can check from a shell
exactly what the PBX will get, and a dialplan can call ``enumer route`` and
test its exit status.

Each suffix is asked either at a named server (``enum@127.0.0.1:5335``: the
ENUMER gateway speaks authoritative DNS on its own port) or through the system
resolver (``e164.arpa``: a recursive resolver from ``/etc/resolv.conf``). The
first suffix that yields a usable route wins; later suffixes are not asked,
because a dialplan would not ask them either. DDDS selection (``u`` flag,
wanted services, order and preference, the substitution expression applied to
the AUS) is :func:`enumer.ddds.select_routes`; this module only adds the DNS
and the reasons a caller needs when there is no route.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from enumer.conf import ConfigError, parse_bind
from enumer.ddds import DEFAULT_SIP_SERVICES, Route, enumservice_matches, select_routes
from enumer.e164 import E164
from enumer.naptr import Naptr

__all__ = [
    "DEFAULT_GATEWAY",
    "DEFAULT_SUFFIXES",
    "DEFAULT_TIMEOUT",
    "Outcome",
    "QueryResult",
    "RouteResult",
    "Suffix",
    "SuffixError",
    "default_suffixes",
    "parse_server",
    "route",
]

DEFAULT_GATEWAY: Final = ("127.0.0.1", 5335)
"""Where ``enumer serve`` listens by default (emcdns' port, SPEC 10)."""

DEFAULT_SUFFIXES: Final = ("enum", "e164.arpa")
"""The article's order: ENUMER first, then the public ENUM tree."""

DEFAULT_TIMEOUT: Final = 3.0
"""Seconds per suffix; a PBX waits about as long before it gives up on ENUM."""

#: EDNS0 payload advertised, the DNS flag day 2020 value the gateway also uses.
EDNS_PAYLOAD: Final = 1232

#: CNAMEs followed inside one answer before the chain is taken for a loop.
MAX_CNAME_CHAIN: Final = 8

#: Whatever a server can make a query fail with: sockets, a connection closed before the
#: answer (EOFError), a reply that does not parse or does not match the question.
QUERY_FAILURES: Final = (OSError, EOFError, ValueError, dns.exception.DNSException)


class SuffixError(ValueError):
    """A ``--suffix`` or ``--server`` the user typed wrong; one line."""


def parse_server(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST`` (port 53) or ``[V6]:PORT``; HOST must be an IP address.

    dnspython sends to an address, and resolving a name for the resolver
    itself would need a resolver: the usual chicken-and-egg, so names are
    refused with a message that says so.
    """
    try:
        return parse_bind(text, 53)
    except ConfigError:
        raise SuffixError(
            f"server {text!r}: expected an IP address with an optional port, "
            "e.g. 127.0.0.1:5335 or [::1]:5335"
        ) from None


@dataclass(frozen=True)
class Suffix:
    """An ENUM zone and where to ask it: a server, or the system resolver (None)."""

    zone: str
    server: tuple[str, int] | None = None

    @classmethod
    def from_text(cls, text: str, default_server: tuple[str, int] | None = None) -> Suffix:
        """``ZONE`` or ``ZONE@SERVER``; a bare ZONE is asked at ``default_server``.

        ``default_server`` is ``--server``; when it is None a bare zone goes to
        the system resolver.
        """
        zone, at, server_text = text.strip().partition("@")
        zone = zone.strip().strip(".").lower()
        if not zone:
            raise SuffixError(f"suffix {text!r}: empty zone (expected e.g. enum or e164.arpa)")
        try:
            dns.name.from_text(zone)
        except dns.exception.DNSException as exc:
            raise SuffixError(f"suffix {text!r}: {exc}") from None
        if at:
            return cls(zone, parse_server(server_text))
        return cls(zone, default_server)

    @property
    def label(self) -> str:
        """``enum@127.0.0.1:5335`` or ``e164.arpa``: how the suffix is shown and accepted."""
        if self.server is None:
            return self.zone
        host, port = self.server
        shown = f"[{host}]" if ":" in host else host
        return f"{self.zone}@{shown}:{port}"


def default_suffixes(server: tuple[str, int] | None = None) -> list[Suffix]:
    """The dialplan's order: ``enum`` at the gateway, then ``e164.arpa`` via the system.

    ``server`` (``--server``) replaces the gateway address; ``e164.arpa`` needs
    recursion, which a gateway does not offer, so it stays with the system
    resolver.
    """
    return [Suffix("enum", server or DEFAULT_GATEWAY), Suffix("e164.arpa", None)]


class Outcome(Enum):
    """What one DNS question gave, before DDDS looks at the records."""

    ANSWER = "answer"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass
class QueryResult:
    """One suffix asked: the DNS outcome, the NAPTRs and what DDDS made of them."""

    suffix: Suffix
    qname: str
    outcome: Outcome
    detail: str = ""
    naptrs: list[Naptr] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: The reply itself when a server was asked directly (``enumer doctor`` reads its
    #: rcode, flags and the SOA of a negative answer); None for the system resolver.
    response: dns.message.Message | None = field(default=None, repr=False)

    @property
    def reason(self) -> str | None:
        """Why this suffix gave no route, in the words an administrator needs."""
        if self.routes:
            return None
        if self.outcome is Outcome.NXDOMAIN:
            return f"NXDOMAIN (no ENUM record for {self.qname})"
        if self.outcome is Outcome.NODATA:
            return f"no NAPTR record at {self.qname}"
        if self.outcome is Outcome.TIMEOUT:
            return f"timeout ({self.detail})"
        if self.outcome is Outcome.ERROR:
            return self.detail
        if self.problems:
            return "no usable route: " + "; ".join(self.problems)
        offered = sorted({n.service for n in self.naptrs}) or ["nothing"]
        return "no usable service (offered: " + ", ".join(offered) + ")"

    def to_json(self) -> dict[str, Any]:
        host_port = None
        if self.suffix.server is not None:
            host, port = self.suffix.server
            host_port = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return {
            "suffix": self.suffix.zone,
            "server": host_port,
            "qname": self.qname,
            "outcome": self.outcome.value,
            "naptr": len(self.naptrs),
            "routes": len(self.routes),
            "problems": self.problems,
            "reason": self.reason,
        }


@dataclass
class RouteResult:
    """Where to send a call to ``number``, or why the PSTN must take it."""

    number: E164
    queries: list[QueryResult]

    @property
    def winner(self) -> QueryResult | None:
        """The suffix whose answer gave the routes (the first that gave any)."""
        return next((q for q in self.queries if q.routes), None)

    @property
    def routes(self) -> list[Route]:
        winner = self.winner
        return winner.routes if winner is not None else []

    @property
    def reason(self) -> str | None:
        """None when there is a route; else every suffix's reason, in order."""
        if self.winner is not None:
            return None
        if not self.queries:
            return "no suffix to ask"
        return "; ".join(f"{q.suffix.label}: {q.reason}" for q in self.queries)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object: ``number``, ``routes`` and, without a route, ``reason``."""
        winner = self.winner
        data: dict[str, Any] = {
            "number": self.number.digits,
            "aus": self.number.aus,
            "routes": [
                {
                    "uri": r.uri,
                    "service": r.service,
                    "order": r.order,
                    "preference": r.preference,
                    "suffix": winner.suffix.zone if winner is not None else None,
                }
                for r in self.routes
            ],
            "queries": [q.to_json() for q in self.queries],
        }
        if not self.routes:
            data["reason"] = self.reason
        return data


def _naptrs_of(rrsets: Iterable[Any]) -> tuple[list[Naptr], list[str]]:
    """Our strict :class:`Naptr` for every NAPTR in an answer; unreadable ones are reported."""
    naptrs: list[Naptr] = []
    problems: list[str] = []
    for rrset in rrsets:
        if rrset.rdtype != dns.rdatatype.NAPTR or rrset.rdclass != dns.rdataclass.IN:
            continue
        for rdata in rrset:
            try:
                naptrs.append(Naptr.from_wire(rdata.to_wire(), ttl=rrset.ttl))
            except ValueError as exc:
                problems.append(f"unreadable NAPTR: {exc}")
    return naptrs, problems


def owned_answer(
    response: dns.message.Message, qname: dns.name.Name
) -> tuple[list[Any], list[str]]:
    """The answer RRsets owned by the name asked, after its CNAME chain; the rest is reported.

    A server may put anything into the answer section; a record owned by
    another name (``attacker.example.com``) is not an answer to the question
    and must never become a route (RFC 2181 section 5.4.1 ranks such data
    lowest; a resolver discards it).
    """
    owner = qname
    for _ in range(MAX_CNAME_CHAIN):
        cname = next(
            (
                r
                for r in response.answer
                if r.name == owner and r.rdtype == dns.rdatatype.CNAME and len(r)
            ),
            None,
        )
        if cname is None:
            break
        owner = cname[0].target
    owned = [r for r in response.answer if r.name == owner]
    problems = [
        f"ignored {len(r)} NAPTR owned by {r.name.to_text(omit_final_dot=True)}, "
        "not by the name asked"
        for r in response.answer
        if r.name != owner and r.rdtype == dns.rdatatype.NAPTR
    ]
    return owned, problems


def _describe(exc: BaseException) -> str:
    """An exception as a reason: its text, or its class name when it has none."""
    return str(exc) or exc.__class__.__name__


def _ask_server(
    qname: dns.name.Name, suffix: Suffix, timeout: float, checking_disabled: bool = False
) -> QueryResult:
    """One question to the suffix's server, UDP with EDNS0, TCP when the answer is truncated."""
    assert suffix.server is not None
    server = suffix.server
    query = dns.message.make_query(qname, dns.rdatatype.NAPTR, use_edns=0, payload=EDNS_PAYLOAD)
    if checking_disabled:
        query.flags |= dns.flags.CD
    host, port = server
    text = qname.to_text(omit_final_dot=True)
    try:
        response, _ = dns.query.udp_with_fallback(query, host, port=port, timeout=timeout)
    except dns.exception.Timeout:
        return QueryResult(suffix, text, Outcome.TIMEOUT, f"no answer within {timeout:g} s")
    except EOFError:
        return QueryResult(
            suffix, text, Outcome.ERROR, "the server closed the TCP connection without answering"
        )
    except QUERY_FAILURES as exc:
        return QueryResult(suffix, text, Outcome.ERROR, f"query failed: {_describe(exc)}")
    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return QueryResult(suffix, text, Outcome.NXDOMAIN, response=response)
    if rcode != dns.rcode.NOERROR:
        return QueryResult(
            suffix,
            text,
            Outcome.ERROR,
            f"server answered {dns.rcode.to_text(rcode)}",
            response=response,
        )
    owned, foreign = owned_answer(response, qname)
    naptrs, problems = _naptrs_of(owned)
    if not naptrs and not problems and not foreign:
        return QueryResult(suffix, text, Outcome.NODATA, response=response)
    return QueryResult(
        suffix,
        text,
        Outcome.ANSWER,
        naptrs=naptrs,
        problems=foreign + problems,
        response=response,
    )


def _ask_system(qname: dns.name.Name, suffix: Suffix, timeout: float) -> QueryResult:
    """One question through the system resolver (``/etc/resolv.conf``), as a PBX asks."""
    text = qname.to_text(omit_final_dot=True)
    try:
        resolver = dns.resolver.Resolver(configure=True)
    except dns.resolver.NoResolverConfiguration:
        return QueryResult(suffix, text, Outcome.ERROR, "no system resolver (/etc/resolv.conf)")
    resolver.timeout = timeout
    resolver.lifetime = timeout
    resolver.use_edns(0, 0, EDNS_PAYLOAD)
    try:
        answer = resolver.resolve(
            qname, dns.rdatatype.NAPTR, search=False, raise_on_no_answer=False
        )
    except dns.resolver.NXDOMAIN:
        return QueryResult(suffix, text, Outcome.NXDOMAIN)
    except dns.resolver.LifetimeTimeout:
        return QueryResult(suffix, text, Outcome.TIMEOUT, f"no answer within {timeout:g} s")
    except dns.resolver.NoNameservers as exc:
        return QueryResult(suffix, text, Outcome.ERROR, f"no server could answer ({exc})")
    except QUERY_FAILURES as exc:
        return QueryResult(suffix, text, Outcome.ERROR, f"query failed: {_describe(exc)}")
    if answer.rrset is None:
        return QueryResult(suffix, text, Outcome.NODATA)
    naptrs, problems = _naptrs_of([answer.rrset])
    return QueryResult(suffix, text, Outcome.ANSWER, naptrs=naptrs, problems=problems)


def ask(
    number: E164,
    suffix: Suffix,
    services: Iterable[str] = DEFAULT_SIP_SERVICES,
    timeout: float = DEFAULT_TIMEOUT,
    checking_disabled: bool = False,
) -> QueryResult:
    """Ask one suffix for ``number`` and apply DDDS to what comes back.

    The query name is the RFC 6116 dotted form (``5.3.9.9.5.3.9.0.0.8.1.enum.``),
    the one every PBX sends; the gateway also understands the compact form.
    ``checking_disabled`` sets the CD bit (a server only): a validating
    resolver then answers even what it cannot validate, which tells a DNSSEC
    failure from an unreachable gateway.
    """
    qname = dns.name.from_text(number.to_domain(suffix.zone, dotted=True))
    if suffix.server is None:
        result = _ask_system(qname, suffix, timeout)
    else:
        result = _ask_server(qname, suffix, timeout, checking_disabled)
    if result.outcome is Outcome.ANSWER:
        wanted = tuple(services)
        routes, problems = select_routes(result.naptrs, number.aus, wanted)
        result.routes = routes
        result.problems.extend(problems)
        if not routes and not problems and result.naptrs:
            ignored = [n for n in result.naptrs if not enumservice_matches(n.service, wanted)]
            if len(ignored) < len(result.naptrs):
                # Wanted services whose flags are not "u" (non-terminal rules).
                result.problems.append("no terminal ('u') rule for a wanted service")
    return result


def route(
    number: E164,
    suffixes: Sequence[Suffix] | None = None,
    services: Iterable[str] = DEFAULT_SIP_SERVICES,
    timeout: float = DEFAULT_TIMEOUT,
) -> RouteResult:
    """Ask the suffixes in order until one gives a route (the article's dialplan).

    A suffix that fails in any way (timeout, refusal, a connection closed
    before the answer, a reply that does not parse) is a reason in its
    :class:`QueryResult`; the next suffix is always asked, as a dialplan does.
    """
    wanted = tuple(services)
    queries: list[QueryResult] = []
    for suffix in suffixes if suffixes is not None else default_suffixes():
        result = ask(number, suffix, wanted, timeout)
        queries.append(result)
        if result.routes:
            break
    return RouteResult(number, queries)
