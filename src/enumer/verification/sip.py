"""The small part of SIP (RFC 3261) that a flash call needs, over UDP.

The verifier places one kind of call: an INVITE that rings a phone, then a
CANCEL (or an ACK and a BYE when someone answers). That needs building and
parsing messages, the ``tag`` and ``branch`` parameters, name-addr and SIP
URIs, and digest authentication (RFC 2617 / RFC 7616 as RFC 3261 section 22
uses it). No SIP library is among the project's dependencies and a full stack
would be far more than this, so this module is the subset, written from the
RFCs and kept strict where a wrong guess would send a wrong message.

Everything here is pure (no sockets, no clock): the caller in
:mod:`enumer.verification.calls` and the test phone in the tests use it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

#: Retransmission base interval (RFC 3261 section 17.1.1.1): an estimate of the round trip.
T1 = 0.5
#: The longest interval between retransmissions of a non-INVITE request.
T2 = 4.0
#: Every branch made by an RFC 3261 element starts with this (section 8.1.1.7).
BRANCH_MAGIC = "z9hG4bK"


class SipError(ValueError):
    """A message or URI that does not parse. The message is one line saying what is wrong."""


# -- header names ---------------------------------------------------------------------------

#: Compact forms (RFC 3261 section 7.3.3, and the ones later RFCs registered).
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
}

_CANONICAL: dict[str, str] = {
    name.lower(): name
    for name in (
        *COMPACT_FORMS.values(),
        "Call-ID",
        "CSeq",
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "Authorization",
        "Proxy-Authorization",
        "Max-Forwards",
        "Record-Route",
        "Route",
        "User-Agent",
        "P-Asserted-Identity",
        "RSeq",
        "RAck",
        "MIME-Version",
    )
}

#: Headers whose grammar is a comma-separated list: one line may carry several values.
#: (Not From/To/Authorization/WWW-Authenticate: their values contain commas themselves.)
LIST_HEADERS = frozenset(
    name.lower()
    for name in (
        "Via",
        "Route",
        "Record-Route",
        "Contact",
        "Allow",
        "Supported",
        "Require",
        "Proxy-Require",
        "Unsupported",
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Allow-Events",
        "Content-Encoding",
        "P-Asserted-Identity",
    )
)

_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")


def canonical_name(name: str) -> str:
    """``v`` -> ``Via``, ``call-id`` -> ``Call-ID``, ``x-foo`` -> ``X-Foo``."""
    key = name.strip().lower()
    if key in COMPACT_FORMS:
        return COMPACT_FORMS[key]
    return _CANONICAL.get(key) or "-".join(part.capitalize() for part in key.split("-"))


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, leaving commas inside quotes and ``<...>`` alone."""
    items: list[str] = []
    current: list[str] = []
    quoted = angled = False
    escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char == "<":
            angled = True
        elif not quoted and char == ">":
            angled = False
        elif char == "," and not quoted and not angled:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


class Headers:
    """Ordered SIP headers, looked up case-insensitively with compact forms expanded.

    Order matters in SIP (the top Via, the Route set), so this is a list of
    ``(name, value)`` pairs rather than a dict.
    """

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        if not _TOKEN.fullmatch(name.strip()):
            raise SipError(f"bad header name {name!r}")
        if "\r" in value or "\n" in value:
            raise SipError(f"header {name} has a line break in its value")
        self._items.append((canonical_name(name), value.strip()))

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with one (appended where the first one was)."""
        key = canonical_name(name)
        index = next((i for i, (n, _) in enumerate(self._items) if n == key), None)
        self.remove(key)
        if index is None:
            self.add(key, value)
        else:
            self._items.insert(index, (key, value.strip()))

    def remove(self, name: str) -> None:
        key = canonical_name(name)
        self._items = [(n, v) for n, v in self._items if n != key]

    def get(self, name: str) -> str | None:
        """The first value of ``name`` (the first list element for list headers), or None."""
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in order; list headers are split at their commas."""
        key = canonical_name(name)
        out: list[str] = []
        for n, v in self._items:
            if n == key:
                out.extend(split_list(v) if key.lower() in LIST_HEADERS else [v])
        return out

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.get_all(name))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


# -- messages -------------------------------------------------------------------------------


def _serialize(start: str, headers: Headers, body: bytes) -> bytes:
    lines = [start]
    lines += [f"{name}: {value}" for name, value in headers if name != "Content-Length"]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Request:
    """A SIP request. ``to_bytes`` writes Content-Length from the body."""

    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"

    def to_bytes(self) -> bytes:
        return _serialize(self.start_line, self.headers, self.body)


@dataclass
class Response:
    """A SIP response. ``status_line`` is what logs and outcomes show: ``486 Busy Here``."""

    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def status_line(self) -> str:
        return f"{self.status} {self.reason}".strip()

    @property
    def start_line(self) -> str:
        return f"SIP/2.0 {self.status_line}"

    def to_bytes(self) -> bytes:
        return _serialize(self.start_line, self.headers, self.body)


Message = Request | Response

_RESPONSE_LINE = re.compile(r"SIP/2\.0 ([1-6][0-9][0-9])(?: (.*))?")
_REQUEST_LINE = re.compile(r"([A-Za-z0-9.!%*_+`'~-]+) (\S+) SIP/2\.0")


def parse_message(data: bytes) -> Request | Response:
    """Parse one datagram. Raises :class:`SipError` saying what is wrong.

    Lenient where RFC 3261 asks receivers to be (bare LF line ends, folded
    header lines, leading blank lines, a missing Content-Length on UDP),
    strict elsewhere: a bad start line, a header line without a colon, a
    Content-Length that is not a number or is longer than the body.
    """
    text_end = data.find(b"\r\n\r\n")
    separator = 4
    if text_end < 0:
        text_end, separator = data.find(b"\n\n"), 2
    if text_end < 0:
        head_bytes, rest = data, b""
    else:
        head_bytes, rest = data[:text_end], data[text_end + separator :]
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise SipError("the message head is not UTF-8") from None
    lines = head.replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise SipError("empty message")
    start = lines[0].strip()
    headers = Headers()
    for line in _unfold(lines[1:]):
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise SipError(f"header line without a name and colon: {line[:60]!r}")
        headers.add(name, value)
    body = _body(headers, rest)
    response = _RESPONSE_LINE.fullmatch(start)
    if response:
        return Response(int(response.group(1)), response.group(2) or "", headers, body)
    request = _REQUEST_LINE.fullmatch(start)
    if request:
        return Request(request.group(1), request.group(2), headers, body)
    raise SipError(f"not a SIP/2.0 request or response line: {start[:60]!r}")


def _unfold(lines: list[str]) -> list[str]:
    """Join continuation lines (starting with a space or tab) to the header line above."""
    out: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t") and out:
            out[-1] += " " + line.strip()
        elif line.strip():
            out.append(line)
    return out


def _body(headers: Headers, rest: bytes) -> bytes:
    length_text = headers.get("Content-Length")
    if length_text is None:
        return rest
    if not length_text.isdigit():
        raise SipError(f"Content-Length is not a number: {length_text[:20]!r}")
    length = int(length_text)
    if length > len(rest):
        raise SipError(f"Content-Length {length} but only {len(rest)} body bytes")
    return rest[:length]


def cseq(message: Message) -> tuple[int, str]:
    """The CSeq header as ``(number, method)``."""
    value = message.headers.get("CSeq") or ""
    number, _, method = value.partition(" ")
    if not number.isdigit() or not method.strip():
        raise SipError(f"bad CSeq {value!r}")
    return int(number), method.strip().upper()


def build_response(
    request: Request,
    status: int,
    reason: str,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """A response to ``request`` as RFC 3261 section 8.2.6.2 builds it.

    Via, From, To, Call-ID and CSeq are copied; ``to_tag`` is added to To
    when it has none yet; Record-Route is copied into responses that can
    create a dialog (101-299 to an INVITE).
    """
    out = Headers()
    for name in ("Via", "Record-Route") if _creates_dialog(request, status) else ("Via",):
        for value in request.headers.get_all(name):
            out.add(name, value)
    to = request.headers.get("To") or ""
    if to_tag is not None and tag_of(to) is None:
        to = f"{to};tag={to_tag}"
    for name, value in (
        ("From", request.headers.get("From") or ""),
        ("To", to),
        ("Call-ID", request.headers.get("Call-ID") or ""),
        ("CSeq", request.headers.get("CSeq") or ""),
    ):
        out.add(name, value)
    for name, value in headers:
        out.add(name, value)
    return Response(status, reason, out, body)


def _creates_dialog(request: Request, status: int) -> bool:
    return request.method == "INVITE" and 100 < status < 300


# -- parameters, name-addr and URIs --------------------------------------------------------


def split_params(text: str) -> tuple[str, dict[str, str]]:
    """``value;a=1;b`` -> ``("value", {"a": "1", "b": ""})``; names lower-cased, quotes kept out."""
    parts = _split_outside_quotes(text, ";")
    params: dict[str, str] = {}
    for part in parts[1:]:
        name, _, value = part.partition("=")
        if name.strip():
            params[name.strip().lower()] = _unquote(value.strip())
    return parts[0].strip(), params


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class NameAddr:
    """A From/To/Contact/Route value: optional display name, URI, header parameters."""

    display: str
    uri: str
    params: dict[str, str]

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")


def parse_name_addr(value: str) -> NameAddr:
    """``"Alice" <sip:a@h;user=phone>;tag=1`` or ``sip:a@h;tag=1`` (parameters then belong
    to the header, RFC 3261 section 20)."""
    text = value.strip()
    if "<" in text:
        head, _, rest = text.partition("<")
        uri, closing, after = rest.partition(">")
        if not closing:
            raise SipError(f"unclosed '<' in {value[:60]!r}")
        _, params = split_params(after)
        return NameAddr(_unquote(head.strip()), uri.strip(), params)
    if not text:
        raise SipError("empty address")
    uri, params = split_params(text)
    return NameAddr("", uri, params)


def tag_of(value: str) -> str | None:
    """The ``tag`` parameter of a From or To value, or None."""
    try:
        return parse_name_addr(value).tag
    except SipError:
        return None


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")
_USER = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;/%]+")


@dataclass(frozen=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI. ``host`` is bare (no brackets around IPv6)."""

    scheme: str
    user: str | None
    host: str
    port: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    headers: str = ""
    password: str | None = field(default=None, repr=False)

    @property
    def hostport(self) -> str:
        return format_hostport(self.host, self.port)

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user is not None else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        headers = f"?{self.headers}" if self.headers else ""
        return f"{self.scheme}:{user}{self.hostport}{params}{headers}"


def format_hostport(host: str, port: int | None) -> str:
    """``host[:port]`` with IPv6 addresses in brackets, as URIs and Via headers write them."""
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port is not None else shown


def parse_uri(text: str) -> SipUri:
    """Parse a SIP URI (RFC 3261 section 19.1). Raises :class:`SipError` naming the bad part."""
    scheme, colon, rest = text.strip().partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in ("sip", "sips"):
        raise SipError(f"not a sip: URI: {text[:80]!r}")
    rest, _, headers = rest.partition("?")
    user: str | None = None
    password: str | None = None
    if "@" in rest:
        userinfo, _, rest = rest.partition("@")
        user, has_password, secret = userinfo.partition(":")
        password = secret if has_password else None
        if not _USER.fullmatch(user):
            raise SipError("the user part of the URI is empty or has characters a URI cannot")
    hostport, params = split_params(rest)
    host, port = _parse_hostport(hostport)
    return SipUri(scheme, user, host, port, params, headers, password)


def _parse_hostport(text: str) -> tuple[str, int | None]:
    port_text: str | None = None
    if text.startswith("["):
        host, closing, after = text[1:].partition("]")
        if not closing:
            raise SipError(f"unclosed '[' in host {text!r}")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise SipError(f"{host!r} is not an IPv6 address") from None
        if after:
            if not after.startswith(":"):
                raise SipError(f"unexpected {after!r} after the host")
            port_text = after[1:]
    else:
        host, colon, port_text_raw = text.partition(":")
        port_text = port_text_raw if colon else None
        if not _HOSTNAME.fullmatch(host):
            raise SipError(f"{host!r} is not a host name or IP address")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SipError(f"port {port_text!r} is not a number from 1 to 65535")
    return host, int(port_text)


def uri_user(value: str) -> str | None:
    """The user part of the URI in a header value or URI (what a phone shows as the number)."""
    try:
        return parse_uri(parse_name_addr(value).uri).user
    except SipError:
        return None


# -- identifiers and SDP ---------------------------------------------------------------------


def new_branch() -> str:
    """A Via branch unique in space and time, with the RFC 3261 magic cookie."""
    return BRANCH_MAGIC + secrets.token_hex(10)


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(12)}@{format_hostport(host, None)}"


def minimal_sdp(
    address: str, session_id: int, *, port: int = 9, direction: str = "sendrecv"
) -> bytes:
    """An SDP offer or answer (RFC 4566/3264) for one PCMU audio stream.

    Many trunks refuse an INVITE without SDP; the verifier never wants media, so the
    stream points at the discard port 9.
    """
    family = "IP6" if ":" in address else "IP4"
    lines = [
        "v=0",
        f"o=- {session_id} {session_id} IN {family} {address}",
        "s=-",
        f"c=IN {family} {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP 0",
        "a=rtpmap:0 PCMU/8000",
        f"a={direction}",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


# -- digest authentication -------------------------------------------------------------------

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def _h(algorithm: str, text: str) -> str:
    base = algorithm.upper().removesuffix("-SESS")
    return _HASHES[base](text.encode()).hexdigest()


def supported_algorithm(algorithm: str) -> bool:
    """MD5 and SHA-256 (RFC 8760), each with its ``-sess`` variant."""
    return algorithm.upper().removesuffix("-SESS") in _HASHES


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` / ``Proxy-Authenticate`` Digest challenge."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False


def parse_auth_params(text: str) -> dict[str, str]:
    """``a="x, y", b=z`` -> ``{"a": "x, y", "b": "z"}`` (names lower-cased)."""
    params: dict[str, str] = {}
    for item in _split_outside_quotes(text, ","):
        name, equals, value = item.partition("=")
        if not item.strip():
            continue
        if not equals or not name.strip():
            raise SipError(f"bad authentication parameter {item.strip()[:40]!r}")
        params[name.strip().lower()] = _unquote(value.strip())
    return params


def parse_challenge(value: str) -> Challenge:
    """Parse a Digest challenge; raises :class:`SipError` for other schemes or missing fields."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipError(f"authentication scheme {scheme!r} is not Digest")
    params = parse_auth_params(rest)
    if "nonce" not in params or "realm" not in params:
        raise SipError("Digest challenge without realm or nonce")
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=params.get("algorithm", "MD5"),
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
    )


def digest_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str = "00000001",
    cnonce: str = "",
    body: bytes = b"",
) -> str:
    """The ``response`` value of RFC 2617 section 3.2.2 (RFC 7616 for SHA-256).

    ``qop`` is None (the RFC 2069 form), ``auth`` or ``auth-int`` (the body is hashed in).
    """
    if not supported_algorithm(algorithm):
        raise SipError(f"digest algorithm {algorithm!r} is not supported")
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        body_hash = _HASHES[algorithm.upper().removesuffix("-SESS")](body).hexdigest()
        ha2 = _h(algorithm, f"{method}:{uri}:{body_hash}")
    else:
        ha2 = _h(algorithm, f"{method}:{uri}")
    if qop is None:
        return _h(algorithm, f"{ha1}:{nonce}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def authorization(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    body: bytes = b"",
    cnonce: str | None = None,
    nc: int = 1,
) -> str:
    """The value of the ``Authorization`` / ``Proxy-Authorization`` header answering ``challenge``.

    Prefers ``qop=auth`` when offered, then ``auth-int``, else the RFC 2069 form.
    """
    qop = "auth" if "auth" in challenge.qop else "auth-int" if "auth-int" in challenge.qop else None
    cnonce = cnonce or secrets.token_hex(8)
    nc_text = f"{nc:08x}"
    response = digest_response(
        algorithm=challenge.algorithm,
        username=username,
        realm=challenge.realm,
        password=password,
        method=method,
        uri=uri,
        nonce=challenge.nonce,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce,
        body=body,
    )
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
        f"algorithm={challenge.algorithm}",
    ]
    if qop is not None:
        parts += [f"qop={qop}", f"nc={nc_text}", f"cnonce={_quote(cnonce)}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    return "Digest " + ", ".join(parts)
