"""The Emercoin node over JSON-RPC: a client, and :class:`NodeStore`, the NameStore over it.

:class:`RpcConfig` says where the node is and how to log in: a URL
(``http://user:pass@127.0.0.1:6662/``, optionally ``/wallet/NAME``), or an
``emercoin.conf`` read the way ``emercoin-cli`` reads it, or a data directory.
:class:`RpcClient` speaks bitcoind-style JSON-RPC 1.0 over HTTP with basic auth
(user/password or the node's ``.cookie`` file).  :class:`NodeStore` implements
:class:`enumer.nvs.NameStore` with the node's ``name_*`` calls, so the gateway,
the trust layer and the CLI run unchanged on a real node.

Facts taken from Emercoin Core 0.8.x (``src/chainparamsbase.cpp``, ``src/namecoin.cpp``):

* The default RPC port is **6662 on every chain** (main, test and regtest), and
  the per-chain data subdirectories are ``""``, ``testnet3`` and ``regtest``;
  the cookie file is ``<datadir>/<subdir>/.cookie`` (``rpccookiefile`` may
  change it; a relative one is taken in that subdirectory).
* As in bitcoind >= 0.17, ``rpcport`` (and ``rpcwallet``) at the top of the
  file apply to mainnet only; testnet and regtest read them from their
  ``[test]``/``[regtest]`` section.  For a key given twice the first wins.
* ``name_show`` has no block heights; ``name_history`` (a wallet call) has
  them.  ``name_filter``'s ``registered_at`` is the height of the ``name_new``
  that started the current registration, **not** of the last operation: ver:enum,
  updated at 65, still shows ``registered_at`` 64 (captures
  ``name_history_ver_enum`` and ``name_filter_ver_base64_maxlen10``), and its
  ``maxage`` keeps names with ``tip - registered_at < maxage``.  So
  ``name_filter "" N`` lists names *registered* in the last N blocks, not
  updated ones, whatever its help text says; :meth:`NodeStore.changed_since`
  therefore also diffs the name index between calls (see there).

Credentials never appear in a repr, a log line or an error message: the URL
handed to httpx carries none (the Authorization header is built per request),
and every transport failure is re-raised as one of the exceptions below with
only ``host:port`` in its text.
"""

from __future__ import annotations

import base64
import email.utils
import json
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, unquote, urlsplit

import httpx

from enumer.conf import ConfigError, read_emercoin_conf
from enumer.emercoin import (
    BLOCKS_PER_DAY,
    CHAIN_SUBDIRS,
    CHAIN_TO_NETWORK,
    COOKIE_FILE,
    COOKIE_USER,
    DEFAULT_RPC_PORT,
    DEFAULT_RPC_PORTS,
    NETWORK_TO_CHAIN,
)
from enumer.nvs import (
    RPC_CLIENT_IN_INITIAL_DOWNLOAD,
    RPC_IN_WARMUP,
    RPC_METHOD_NOT_FOUND,
    RPC_WALLET_NOT_FOUND,
    RPC_WALLET_NOT_SPECIFIED,
    NameOperation,
    NameRecord,
    NvsError,
)
from enumer.records import EnumName

if TYPE_CHECKING:
    from enumer.nvs import NameStore

DEFAULT_CONNECT: Final = "127.0.0.1"
DEFAULT_TIMEOUT: Final = 30.0

#: ``code`` of the errors that did not come from the node (transport, configuration).
NOT_FROM_NODE: Final = 0

_READ_ONLY: Final = frozenset(
    {
        "getblockcount",
        "getblockchaininfo",
        "getbestblockhash",
        "getblockhash",
        "getblock",
        "getinfo",
        "name_show",
        "name_history",
        "name_filter",
        "name_changes",
        "name_scan",
        "name_list",
        "name_mempool",
        "verifymessage",
        "validateaddress",
        "getaddressinfo",
        "help",
        "uptime",
    }
)


# -- errors ----------------------------------------------------------------------------


class RpcError(NvsError):
    """An error answer of the node: ``code`` and ``message`` exactly as the node sent them.

    A subclass of :class:`NvsError`, so the CLI prints it as one ``error:`` line.  The
    subclasses for transport and configuration problems (code 0) carry our own message.
    """

    def __init__(self, code: int, message: str, method: str | None = None) -> None:
        super().__init__(code, message)
        self.method = method

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.message!r})"


class NodeDownloadingError(RpcError):
    """-10: the node is in initial block download and refuses name calls."""

    def __str__(self) -> str:
        return (
            "the Emercoin node is still downloading blocks (initial block download); "
            "try again when it has caught up"
        )


class NodeWarmingUpError(RpcError):
    """-28: the node has just started and is still loading."""

    def __str__(self) -> str:
        detail = self.message.strip() or "warming up"
        return f"the Emercoin node is warming up ({detail}); try again in a moment"


class MethodNotFoundError(RpcError):
    """-32601: the node has no such method (wallet calls when the wallet is disabled)."""

    def __str__(self) -> str:
        what = f" {self.method!r}" if self.method else ""
        return (
            f"the Emercoin node has no RPC method{what} (Method not found; "
            "wallet calls need a node with its wallet enabled)"
        )


class NamePendingError(RpcError):
    """A name operation refused because another one on that name waits in the mempool
    (``there are N pending operations on that name, including <txid>``): until it is
    mined the name is taken, though no listing shows it yet."""


#: How the node words :class:`NamePendingError` (code -32603, like any wallet failure).
PENDING_MESSAGE: Final = re.compile(r"there are \d+ pending operations on that name")


class RpcTransportError(RpcError):
    """The node could not be asked or did not answer properly (code 0)."""

    def __init__(self, message: str, method: str | None = None) -> None:
        super().__init__(NOT_FROM_NODE, message, method)


class NodeConnectionError(RpcTransportError):
    """Nothing listens at the node's address, or the connection broke."""


class NodeTimeoutError(RpcTransportError):
    """The node accepted the connection but did not answer in time."""


class NodeAuthError(RpcTransportError):
    """HTTP 401 (bad credentials) or 403 (address not in ``rpcallowip``)."""


class NodeProtocolError(RpcTransportError):
    """An answer that is not JSON-RPC: non-JSON body, unexpected HTTP status."""


class RateLimitedError(NodeProtocolError):
    """HTTP 429: the server (a record feed) asks this client to wait ``retry_after``
    seconds before its next request."""

    def __init__(self, message: str, method: str | None, retry_after: float) -> None:
        super().__init__(message, method)
        self.retry_after = retry_after


def retry_after_seconds(header: str | None, now: float | None = None) -> float:
    """RFC 9110 ``Retry-After``: delta-seconds or an HTTP date, as seconds from now
    (at least 0); 1 when it is absent or unreadable (a 429 says "slow down" anyway)."""
    text = (header or "").strip()
    if text.isdigit():
        return float(min(int(text), 10**9))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return 1.0
    if when.tzinfo is None:
        return 1.0
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class RpcConfigError(RpcTransportError):
    """The connection settings cannot be used: bad URL, unreadable conf or cookie file."""


# -- configuration -----------------------------------------------------------------------


def _redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for error messages)."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """bitcoind's ``SplitHostPort``: ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    text = text.strip()
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", text)
    if m:
        return m.group(1), int(m.group(2)) if m.group(2) else default_port
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        if port.isdigit() and 0 < int(port) < 65536:
            return host, int(port)
    return text, default_port


class RpcConfig:
    """Where the node listens and how to authenticate; never shows the password.

    Either ``user``/``password`` (basic auth) or ``cookie_file`` (read at first use
    and again after a 401, since the node writes a new cookie at every start).
    """

    __slots__ = (
        "_password",
        "chain",
        "cookie_file",
        "host",
        "port",
        "scheme",
        "timeout",
        "user",
        "wallet",
    )

    def __init__(
        self,
        host: str = DEFAULT_CONNECT,
        port: int = DEFAULT_RPC_PORT,
        *,
        user: str | None = None,
        password: str | None = None,
        cookie_file: str | Path | None = None,
        wallet: str | None = None,
        scheme: str = "http",
        chain: str | None = None,
        timeout: float | None = None,
    ) -> None:
        if scheme not in ("http", "https"):
            raise RpcConfigError(f"unsupported scheme {scheme!r}: the node speaks http")
        if not 0 < port < 65536:
            raise RpcConfigError(f"invalid RPC port {port}")
        self.host = host
        self.port = port
        self.user = user
        self._password = password
        self.cookie_file = Path(cookie_file) if cookie_file is not None else None
        self.wallet = wallet
        self.scheme = scheme
        self.chain = chain
        self.timeout = timeout

    # -- constructors -----------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, cookie_file: str | Path | None = None) -> RpcConfig:
        """``http://[user:password@]host[:port][/wallet/NAME]``; port 6662 when omitted.

        User and password may be percent-encoded.  Without them, ``cookie_file`` (if
        given) supplies the credentials.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise RpcConfigError(f"invalid node URL {_redact_url(url)}: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RpcConfigError(
                f"invalid node URL {_redact_url(url)}: expected http://user:password@host:port/"
            )
        path = parts.path or "/"
        wallet: str | None = None
        if path.startswith("/wallet/"):
            wallet = unquote(path[len("/wallet/") :])
        elif path != "/":
            raise RpcConfigError(
                f"invalid node URL {_redact_url(url)}: the path must be / or /wallet/NAME"
            )
        user = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        if user is not None and password is None:
            password = ""
        return cls(
            parts.hostname,
            port or DEFAULT_RPC_PORT,
            user=user,
            password=password,
            cookie_file=None if password is not None else cookie_file,
            wallet=wallet,
            scheme=parts.scheme,
        )

    @classmethod
    def from_conf(cls, path: str | Path, network: str | None = None) -> RpcConfig:
        """Read an ``emercoin.conf`` the way ``emercoin-cli`` does.

        ``network`` (mainnet/testnet/regtest) overrides ``testnet=1``/``regtest=1``/
        ``chain=``.  The data directory is ``datadir=`` or the file's directory; without
        ``rpcpassword`` the cookie is ``<datadir>/<chain subdir>/.cookie``.
        """
        conf = Path(path).expanduser()
        if network is not None and network not in NETWORK_TO_CHAIN:
            raise RpcConfigError(f"unknown network {network!r}: use mainnet, testnet or regtest")
        try:
            parsed = read_emercoin_conf(conf)
            chain = NETWORK_TO_CHAIN[network] if network is not None else parsed.chain
        except ConfigError as exc:
            raise RpcConfigError(str(exc)) from None

        def get(key: str) -> str | None:
            return parsed.get(key, CHAIN_TO_NETWORK[chain])

        datadir = Path(get("datadir") or conf.parent).expanduser()
        chaindir = datadir / CHAIN_SUBDIRS[chain] if CHAIN_SUBDIRS[chain] else datadir
        default_port = DEFAULT_RPC_PORTS[chain]
        host, port = _split_host_port(get("rpcconnect") or DEFAULT_CONNECT, default_port)
        if get("rpcport"):
            try:
                port = int(get("rpcport") or "")
            except ValueError:
                raise RpcConfigError(f"{conf}: rpcport is not a number") from None
        password = get("rpcpassword") or None
        cookie: Path | None = None
        if password is None:
            cookie = Path(get("rpccookiefile") or COOKIE_FILE).expanduser()
            if not cookie.is_absolute():
                cookie = chaindir / cookie
        timeout: float | None = None
        if get("rpcclienttimeout"):
            try:
                timeout = float(get("rpcclienttimeout") or "") or None
            except ValueError:
                raise RpcConfigError(f"{conf}: rpcclienttimeout is not a number") from None
        return cls(
            host,
            port,
            user=(get("rpcuser") or "") if password is not None else None,
            password=password,
            cookie_file=cookie,
            wallet=get("rpcwallet"),
            chain=chain,
            timeout=timeout,
        )

    @classmethod
    def from_datadir(cls, datadir: str | Path, network: str | None = None) -> RpcConfig:
        """A data directory: its ``emercoin.conf`` if there is one, else cookie auth on
        127.0.0.1:6662 with ``<datadir>/<chain subdir>/.cookie``.  An ``enumer node``
        store directory is such a directory (its cookie is ``<store>/.cookie``: leave
        ``network`` unset)."""
        root = Path(datadir).expanduser()
        conf = root / "emercoin.conf"
        if conf.is_file():
            return cls.from_conf(conf, network)
        chain = NETWORK_TO_CHAIN.get(network or "mainnet")
        if chain is None:
            raise RpcConfigError(f"unknown network {network!r}: use mainnet, testnet or regtest")
        sub = CHAIN_SUBDIRS[chain]
        return cls(
            DEFAULT_CONNECT,
            DEFAULT_RPC_PORTS[chain],
            cookie_file=(root / sub if sub else root) / COOKIE_FILE,
            chain=chain,
        )

    @classmethod
    def from_spec(cls, spec: str, network: str | None = None) -> RpcConfig:
        """A URL, an ``emercoin.conf`` file or a data directory."""
        if "://" in spec:
            return cls.from_url(spec)
        path = Path(spec).expanduser()
        if path.is_dir():
            return cls.from_datadir(path, network)
        if path.is_file():
            return cls.from_conf(path, network)
        raise RpcConfigError(
            f"{spec}: neither a node URL (http://user:password@host:port/) nor "
            "an emercoin.conf file nor a data directory"
        )

    # -- derived ---------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``host:port`` (brackets around an IPv6 host)."""
        return _host_port(self.host, self.port)

    @property
    def path(self) -> str:
        return "/" if self.wallet is None else "/wallet/" + quote(self.wallet, safe="")

    @property
    def url(self) -> str:
        """The endpoint URL, without credentials."""
        return f"{self.scheme}://{self.endpoint}{self.path}"

    @property
    def uses_cookie(self) -> bool:
        return self._password is None and self.cookie_file is not None

    @property
    def has_password(self) -> bool:
        return self._password is not None

    def describe_auth(self) -> str:
        if self._password is not None:
            return f"rpcuser {self.user or ''!r}"
        if self.cookie_file is not None:
            return f"cookie {self.cookie_file}"
        return "no credentials"

    def authorization(self) -> str | None:
        """The ``Authorization`` header value (reads the cookie file now)."""
        if self._password is not None:
            pair = f"{self.user or ''}:{self._password}"
        elif self.cookie_file is not None:
            pair = read_cookie(self.cookie_file)
        else:
            return None
        return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")

    def __repr__(self) -> str:
        return f"RpcConfig({self.url!r}, {self.describe_auth()})"

    __str__ = __repr__


def read_cookie(path: Path) -> str:
    """``user:password`` from a node's cookie file (``__cookie__:<hex>``)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise RpcConfigError(
            f"cannot read the RPC cookie file {path}: {exc.strerror or type(exc).__name__} "
            "(the node writes it when it starts: is it running, with this data directory? "
            "Otherwise set rpcuser/rpcpassword)"
        ) from None
    except UnicodeDecodeError:
        text = ""
    if ":" not in text:
        raise RpcConfigError(f"the RPC cookie file {path} is not user:password")
    return text


# -- client ------------------------------------------------------------------------------


def _excerpt(body: bytes, limit: int = 80) -> str:
    text = body[: limit * 4].decode("utf-8", errors="replace")
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


class RpcClient:
    """bitcoind-style JSON-RPC 1.0 over HTTP to an Emercoin node.

    :meth:`call` returns the result or raises :class:`RpcError` (or one of its
    subclasses); :meth:`batch` sends several calls in one request.  Thread-safe.
    """

    def __init__(
        self,
        config: RpcConfig,
        timeout: float | None = None,
        max_response_bytes: int | None = None,
        retry_after: tuple[float, int] | None = None,
    ) -> None:
        self.config = config
        #: HTTP 429 (a record feed's rate limit): wait its Retry-After and send again,
        #: when it is at most ``retry_after[0]`` seconds, ``retry_after[1]`` times in a
        #: row; beyond, :class:`RateLimitedError`.  None: no waiting.
        self.retry_after = retry_after
        self.timeout = timeout if timeout is not None else (config.timeout or DEFAULT_TIMEOUT)
        #: For an untrusted upstream (a light gateway's): the largest answer read, and
        #: ``timeout`` bounds the whole exchange, not each read (a server trickling bytes
        #: must not hold the client for ever).  None: a trusted node, no bounds.
        self.max_response_bytes = max_response_bytes
        # trust_env=False: no proxy from the environment between us and our own node.
        self._http = httpx.Client(
            timeout=httpx.Timeout(self.timeout), trust_env=False, follow_redirects=False
        )
        self._lock = threading.Lock()
        self._next_id = 0
        self._auth: str | None = None

    def __repr__(self) -> str:
        return (
            f"RpcClient({self.config.url!r}, {self.config.describe_auth()}, "
            f"timeout={self.timeout:g})"
        )

    __str__ = __repr__

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------

    def _ids(self, n: int) -> list[int]:
        with self._lock:
            first = self._next_id
            self._next_id += n
        return list(range(first, first + n))

    def _authorization(self, refresh: bool) -> str | None:
        with self._lock:
            if self._auth is None or refresh:
                self._auth = self.config.authorization()
            return self._auth

    def _exchange(self, payload: Any, label: str, retry_safe: bool) -> Any:
        """POST one JSON-RPC payload; the decoded JSON answer."""
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        where = self.config.endpoint
        transport_retry = retry_safe  # once: e.g. a kept-alive connection the node closed
        cookie_retry = self.config.uses_cookie  # once: the node restarted with a new cookie
        refresh = False
        longest, waits = self.retry_after or (0.0, 0)
        while True:
            headers = {"Content-Type": "application/json"}
            auth = self._authorization(refresh=refresh)
            if auth is not None:
                headers["Authorization"] = auth
            try:
                if self.max_response_bytes is None:
                    response = self._http.post(self.config.url, content=data, headers=headers)
                else:
                    response = self._bounded_post(data, headers, label)
            except httpx.TimeoutException:
                raise NodeTimeoutError(
                    f"the Emercoin node at {where} did not answer {label} within "
                    f"{self.timeout:g} s",
                    label,
                ) from None
            except httpx.ConnectError as exc:
                reason = str(exc)
                if "refused" in reason.lower():
                    raise NodeConnectionError(
                        f"cannot connect to the Emercoin node at {where}: connection refused "
                        "- is emercoind running with -server?",
                        label,
                    ) from None
                raise NodeConnectionError(
                    f"cannot connect to the Emercoin node at {where}: {_reason(exc)}", label
                ) from None
            except httpx.TransportError as exc:
                if transport_retry:
                    transport_retry = False
                    continue
                raise NodeConnectionError(
                    f"the connection to the Emercoin node at {where} failed during {label}: "
                    f"{_reason(exc)}",
                    label,
                ) from None
            if response.status_code == 401 and cookie_retry:
                cookie_retry = False
                refresh = True
                continue
            if response.status_code == 429 and waits > 0:
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                if wait <= longest:
                    waits -= 1
                    time.sleep(wait)
                    continue
            break
        return self._decode(response, label)

    def _bounded_post(self, data: bytes, headers: dict[str, str], label: str) -> httpx.Response:
        """POST and read the answer within ``timeout`` seconds in all and
        ``max_response_bytes`` bytes; beyond either, :class:`NodeTimeoutError` or
        :class:`NodeProtocolError` (the connection is dropped, nothing is kept)."""
        limit = self.max_response_bytes or 0
        deadline = time.monotonic() + self.timeout
        with self._http.stream("POST", self.config.url, content=data, headers=headers) as answer:
            declared = answer.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise NodeProtocolError(
                    f"{self.config.endpoint} answered {label} with {int(declared)} bytes, "
                    f"over the {limit} allowed",
                    label,
                )
            body = bytearray()
            for chunk in answer.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise NodeProtocolError(
                        f"{self.config.endpoint} answered {label} with over {limit} bytes",
                        label,
                    )
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("total timeout")
            kept = {"Content-Type": answer.headers.get("Content-Type", "application/json")}
            if "Retry-After" in answer.headers:
                kept["Retry-After"] = answer.headers["Retry-After"]
            return httpx.Response(answer.status_code, headers=kept, content=bytes(body))

    def _decode(self, response: httpx.Response, label: str) -> Any:
        where = self.config.endpoint
        status = response.status_code
        if status == 401:
            hint = ""
            if self.config.user == COOKIE_USER and not self.config.uses_cookie:
                # Nothing to re-read: the node wrote a new cookie at its last start.
                hint = (
                    "; a cookie given in the URL is stale once the node restarts: give "
                    "--conf or the data directory instead, so that it is re-read"
                )
            raise NodeAuthError(
                "the node refused the RPC credentials (check rpcuser/"
                f"rpcpassword or the .cookie file) at {where}{hint}",
                label,
            )
        if status == 403:
            raise NodeAuthError(
                f"the Emercoin node at {where} refused this client (HTTP 403): "
                "allow its address with rpcallowip",
                label,
            )
        if status == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise RateLimitedError(
                f"{where} is rate-limiting this client (HTTP 429, Retry-After {wait:.0f} s)",
                label,
                wait,
            )
        if status == 503:
            # bitcoind answers 503 in two cases: its work queue is full (it says so in
            # the body), or it is shutting down (libevent's bare error page).
            if b"work queue depth exceeded" in response.content.lower():
                raise NodeProtocolError(
                    f"the Emercoin node at {where} is overloaded (HTTP 503, work "
                    "queue depth exceeded); try again",
                    label,
                )
            raise NodeProtocolError(
                f"the Emercoin node at {where} is stopping or unavailable (HTTP 503)", label
            )
        try:
            return json.loads(response.content)
        except (ValueError, RecursionError):
            if status == 404:
                raise NodeProtocolError(
                    f"no JSON-RPC service at {self.config.url} (HTTP 404): check the URL and "
                    "the wallet name",
                    label,
                ) from None
            raise NodeProtocolError(
                f"the Emercoin node at {where} answered {label} with HTTP {status} and a body "
                f"that is not JSON: {_excerpt(response.content)}",
                label,
            ) from None

    def _unwrap(self, answer: Any, label: str) -> Any:
        """The result of one reply object, or raise its error."""
        if not isinstance(answer, dict) or ("result" not in answer and "error" not in answer):
            raise NodeProtocolError(
                f"the Emercoin node at {self.config.endpoint} answered "
                f"{label} with JSON that is not a JSON-RPC reply",
                label,
            )
        error = answer.get("error")
        if error is not None:
            raise _node_error(error, label, self.config.endpoint)
        return answer.get("result")

    # -- calls -----------------------------------------------------------------------------

    def call(self, method: str, *params: Any) -> Any:
        """Call ``method`` with positional ``params``; its result."""
        rid = self._ids(1)[0]
        answer = self._exchange(
            {"jsonrpc": "1.0", "id": rid, "method": method, "params": list(params)},
            method,
            method in _READ_ONLY,
        )
        return self._unwrap(answer, method)

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several calls in one HTTP request (executed in order by the node).

        Returns one item per call: its result, or the :class:`RpcError` it failed with
        (returned, not raised).  Transport errors are raised.
        """
        if not calls:
            return []
        ids = self._ids(len(calls))
        payload = [
            {"jsonrpc": "1.0", "id": rid, "method": m, "params": list(p)}
            for rid, (m, p) in zip(ids, calls, strict=True)
        ]
        label = f"a batch of {len(calls)} calls"
        answer = self._exchange(payload, label, all(m in _READ_ONLY for m, _ in calls))
        if isinstance(answer, dict):  # the whole batch was refused (e.g. parse error)
            self._unwrap(answer, label)
            raise NodeProtocolError(
                f"the Emercoin node at {self.config.endpoint} answered a batch with a single reply",
                label,
            )
        if not isinstance(answer, list):
            raise NodeProtocolError(
                f"the Emercoin node at {self.config.endpoint} answered a "
                "batch with JSON that is not a list",
                label,
            )
        by_id = {item.get("id"): item for item in answer if isinstance(item, dict)}
        out: list[Any] = []
        for rid, (method, _) in zip(ids, calls, strict=True):
            item = by_id.get(rid)
            if item is None:
                raise NodeProtocolError(
                    f"the Emercoin node at {self.config.endpoint} left "
                    f"call {method} out of its batch answer",
                    method,
                )
            try:
                out.append(self._unwrap(item, method))
            except RpcTransportError:
                raise
            except RpcError as exc:
                out.append(exc)
        return out

    # -- typed methods -----------------------------------------------------------------------

    def getblockcount(self) -> int:
        return int(self.call("getblockcount"))

    def getblockchaininfo(self) -> dict[str, Any]:
        return _dict(self.call("getblockchaininfo"))

    def getblock(self, blockhash: str) -> dict[str, Any]:
        return _dict(self.call("getblock", blockhash))

    def tip_time(self) -> int:
        """The tip's block time (``getblock`` of ``getblockchaininfo``'s best block);
        the median time of the last blocks when the node has no ``getblock``."""
        info = self.getblockchaininfo()
        try:
            return int(self.getblock(str(info["bestblockhash"]))["time"])
        except MethodNotFoundError:
            return int(info["mediantime"])

    def name_show(self, name: str, valuetype: str | None = None) -> dict[str, Any]:
        params: list[Any] = [name] if valuetype is None else [name, valuetype]
        return _dict(self.call("name_show", *params))

    def name_history(
        self, name: str, fullhistory: bool = False, valuetype: str | None = None
    ) -> list[dict[str, Any]]:
        params: list[Any] = [name, fullhistory]
        if valuetype is not None:
            params.append(valuetype)
        return _list(self.call("name_history", *params))

    def name_filter(
        self,
        regexp: str = "",
        maxage: int = 0,
        from_: int = 0,
        nb: int = 0,
        stat: bool = False,
        valuetype: str = "",
        maxvaluelen: int | None = None,
    ) -> Any:
        """A list of ``{name, value, registered_at, expires_in[, expired]}``, or with
        ``stat`` ``{blocks, count}`` (count is always 0: a bug of the node)."""
        params: list[Any] = [
            regexp,
            maxage,
            from_,
            nb,
            "stat" if stat else "",
            valuetype,
            maxvaluelen,
        ]
        while params and params[-1] in (None, "", 0) and len(params) > 1:
            params.pop()  # only what is needed: older nodes take fewer parameters
        if params == [""]:
            params = []
        return self.call("name_filter", *params)

    def name_scan(
        self, start: str = "", max_: int = 500, maxvaluelen: int = 0, valuetype: str = ""
    ) -> list[dict[str, Any]]:
        """Note: the node ignores ``max_`` and returns every name from ``start`` on, in its
        index order (shorter names first)."""
        params: list[Any] = [start, max_, maxvaluelen, valuetype]
        while len(params) > 1 and params[-1] in ("", 0):
            params.pop()
        return _list(self.call("name_scan", *params))

    def name_list(
        self, name: str | None = None, valuetype: str | None = None
    ) -> list[dict[str, Any]]:
        params: list[Any] = []
        if name is not None or valuetype is not None:
            params.append(name or "")
        if valuetype is not None:
            params.append(valuetype)
        return _list(self.call("name_list", *params))

    def name_mempool(self, valuetype: str | None = None) -> list[dict[str, Any]]:
        return _list(self.call("name_mempool", *([] if valuetype is None else [valuetype])))

    def name_new(
        self,
        name: str,
        value: str,
        days: int,
        toaddress: str | None = None,
        valuetype: str | None = None,
    ) -> str:
        return str(self.call("name_new", *_op_params(name, value, days, toaddress, valuetype)))

    def name_update(
        self,
        name: str,
        value: str,
        days: int,
        toaddress: str | None = None,
        valuetype: str | None = None,
    ) -> str:
        return str(self.call("name_update", *_op_params(name, value, days, toaddress, valuetype)))

    def name_delete(self, name: str) -> str:
        return str(self.call("name_delete", name))

    def signmessage(self, address: str, message: str) -> str:
        return str(self.call("signmessage", address, message))

    def verifymessage(self, address: str, signature: str, message: str) -> bool:
        return bool(self.call("verifymessage", address, signature, message))

    def getnewaddress(self, label: str = "", address_type: str | None = None) -> str:
        params: list[Any] = [label] if address_type is None else [label, address_type]
        return str(self.call("getnewaddress", *params))

    def validateaddress(self, address: str) -> dict[str, Any]:
        return _dict(self.call("validateaddress", address))

    def getaddressinfo(self, address: str) -> dict[str, Any]:
        return _dict(self.call("getaddressinfo", address))

    def generatetoaddress(self, nblocks: int, address: str) -> list[str]:
        return [str(h) for h in _list(self.call("generatetoaddress", nblocks, address))]


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    m = re.search(r"\[Errno -?\d+\]\s*(.*)", text)
    return (m.group(1) if m else text) or type(exc).__name__


def _node_error(error: Any, method: str, where: str) -> RpcError:
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        return NodeProtocolError(
            f"the Emercoin node at {where} answered {method} with a malformed error object", method
        )
    code: int = error["code"]
    message = str(error.get("message", ""))
    kind: type[RpcError] = {
        RPC_CLIENT_IN_INITIAL_DOWNLOAD: NodeDownloadingError,
        RPC_IN_WARMUP: NodeWarmingUpError,
        RPC_METHOD_NOT_FOUND: MethodNotFoundError,
    }.get(code, RpcError)
    if kind is RpcError and PENDING_MESSAGE.match(message):
        kind = NamePendingError
    return kind(code, message, method)


def _op_params(
    name: str, value: str, days: int, toaddress: str | None, valuetype: str | None
) -> list[Any]:
    params: list[Any] = [name, value, days]
    if toaddress is not None or valuetype is not None:
        params.append(toaddress or "")
    if valuetype is not None:
        params.append(valuetype)
    return params


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise NodeProtocolError(f"expected a JSON object from the node, got {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise NodeProtocolError(f"expected a JSON array from the node, got {type(value).__name__}")
    return value


# -- the NameStore over RPC ----------------------------------------------------------------


def regex_escape(text: str) -> str:
    """``text`` as a literal for both boost regex (the node) and RE2 (``enumer node``)."""
    return "".join(c if c.isalnum() or c in "_:" or ord(c) > 127 else "\\" + c for c in text)


@dataclass(frozen=True)
class _Listed:
    """One row of ``name_filter ""``: the node's whole name index, deleted names excluded."""

    name: str
    value: str
    registered_at: int
    expires_at: int


_WALLET_MISSING: Final = frozenset(
    {RPC_METHOD_NOT_FOUND, RPC_WALLET_NOT_FOUND, RPC_WALLET_NOT_SPECIFIED}
)


class NodeStore:
    """:class:`enumer.nvs.NameStore` over an Emercoin node's JSON-RPC.

    Cost and fidelity, call by call (each "batch" is one HTTP request of at most
    ``batch_size`` calls):

    * :meth:`show` = ``name_show`` + ``name_history name true`` (heights are only in
      the history; cached per name by txid, so a second show of an unchanged name
      costs one call).  Without a node wallet (``name_history`` is a wallet call) the
      heights are approximations: ``registered_at`` from ``name_filter``, ``height``
      = ``registered_at``; see :attr:`exact_heights`.
    * :meth:`records_for_number`: ``name_filter ^enum:<digits>:`` then a batch of shows.
    * :meth:`iter_prefix`, :meth:`expiring_between`, :meth:`changed_since` work on
      the node's whole name index (``name_filter ""``, fetched once per block tip
      together with two ``getblockcount`` in one batch, so it is consistent).
    * :meth:`changed_since` (h): names registered after h (``registered_at``) plus
      the names whose value or expiry changed, or that disappeared (deleted), since
      the previous index snapshot — exact when the snapshot was taken at a tip
      ``<= h``, which is the gateway's pattern (each refresh asks for the changes
      since the tip of its previous refresh; :meth:`iter_prefix` takes the first
      snapshot).  Otherwise it checks the history of every name once (slow on
      mainnet, once).  An update that keeps the value and adds 0 days (a pure
      transfer) is only seen through a snapshot if it is a ``ver:`` name, whose
      owner is its key: those are always re-checked.

    Deleted names are not in the node's index listings, so unlike the ledger,
    :meth:`records_for_number` and :meth:`iter_prefix` leave them out (readers
    treat deleted names as absent anyway); :meth:`show` and :meth:`changed_since`
    report them with ``deleted=True``.
    """

    def __init__(self, client: RpcClient, *, batch_size: int = 200) -> None:
        self.client = client
        self.batch_size = max(1, batch_size)
        self._network_name: str | None = None
        self._lock = threading.RLock()
        #: name -> (txid of the last operation, height, registered_at, expires_at)
        self._heights: dict[str, tuple[str, int, int, int]] = {}
        self._history_ok: bool | None = None
        self._listing_cache: tuple[int, list[_Listed]] | None = None
        self._snapshot: dict[str, tuple[str, int, int]] | None = None
        self._snapshot_tip = -1
        self._ver_txids: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"NodeStore({self.client!r})"

    def close(self) -> None:
        self.client.close()

    @property
    def network_name(self) -> str:
        """mainnet/testnet/regtest, from ``getblockchaininfo`` (asked once)."""
        if self._network_name is None:
            chain = str(self.client.getblockchaininfo().get("chain", ""))
            self._network_name = CHAIN_TO_NETWORK.get(chain, chain)
        return self._network_name

    @network_name.setter
    def network_name(self, value: str) -> None:
        self._network_name = value

    @property
    def exact_heights(self) -> bool:
        """False once the node turned out to have no wallet (no ``name_history``)."""
        return self._history_ok is not False

    # -- helpers ---------------------------------------------------------------------------

    def _batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        out: list[Any] = []
        for i in range(0, len(calls), self.batch_size):
            out.extend(self.client.batch(calls[i : i + self.batch_size]))
        return out

    def _listing(self) -> tuple[int, list[_Listed]]:
        """The whole name index at a consistent tip (cached while the tip stays)."""
        cached = self._listing_cache
        if cached is not None and cached[0] == self.client.getblockcount():
            return cached
        rows: Any = []
        tip = 0
        for _ in range(3):
            first, rows, tip = self.client.batch(
                [("getblockcount", []), ("name_filter", [""]), ("getblockcount", [])]
            )
            for item in (first, rows, tip):
                if isinstance(item, RpcError):
                    raise item
            if first == tip:
                break
        entries = [
            _Listed(
                str(r["name"]),
                str(r.get("value", "")),
                int(r["registered_at"]),
                int(r["expires_in"]) + int(tip),
            )
            for r in _list(rows)
        ]
        self._listing_cache = (int(tip), entries)
        return self._listing_cache

    def _history_failed(self, exc: RpcError) -> bool:
        if exc.code in _WALLET_MISSING:
            self._history_ok = False
            return True
        return False

    def _records(self, names: Sequence[str], strict: bool = False) -> list[NameRecord]:
        """Full records of ``names``: a batch of ``name_show``, then of ``name_history``
        for those whose last txid is not cached.  Names that fail are skipped unless
        ``strict``."""
        shown: list[tuple[str, dict[str, Any]]] = []
        for name, res in zip(names, self._batch([("name_show", [n]) for n in names]), strict=True):
            if isinstance(res, RpcError):
                if strict:
                    raise res
                continue
            shown.append((name, _dict(res)))
        with self._lock:
            need = [n for n, r in shown if self._heights.get(n, ("",))[0] != r.get("txid")]
        if need and self._history_ok is not False:
            results = self._batch([("name_history", [n, True]) for n in need])
            for name, hist in zip(need, results, strict=True):
                if isinstance(hist, RpcError):
                    if self._history_failed(hist):
                        break
                    continue
                heights = _heights_from_history(hist)
                if heights is not None:
                    with self._lock:
                        if len(self._heights) > 500_000:
                            self._heights.clear()
                        self._heights[name] = heights
            else:
                self._history_ok = True
        registered: dict[str, int] = {}
        if self._history_ok is False and shown:
            registered = {e.name: e.registered_at for e in self._listing()[1]}
        out: list[NameRecord] = []
        for name, r in shown:
            txid = str(r.get("txid", ""))
            deleted = bool(r.get("deleted", False))
            expires_at = int(r.get("expires_at", 0))
            with self._lock:
                cached = self._heights.get(name)
            if cached is not None and cached[0] == txid:
                height, reg = cached[1], cached[2]
                if deleted:
                    expires_at = cached[3]
            else:
                reg = registered.get(name, 0)
                height = reg
            out.append(
                NameRecord(
                    name=name,
                    value=str(r.get("value", "")),
                    address=str(r.get("address", "")),
                    txid=txid,
                    height=height,
                    registered_at=reg,
                    expires_at=expires_at,
                    time=int(r.get("time", 0)),
                    deleted=deleted,
                    vout=int(r.get("vout", 0)),
                )
            )
        return out

    # -- NameReader --------------------------------------------------------------------------

    def height(self) -> int:
        return self.client.getblockcount()

    def tip_time(self) -> int:
        """The block time of the node's tip (where VSIG ``not-after`` is read)."""
        return self.client.tip_time()

    def show(self, name: str) -> NameRecord:
        return self._records([name], strict=True)[0]

    def history(self, name: str, full: bool = False) -> list[NameOperation]:
        ops = self.client.name_history(name, full)
        return [
            NameOperation(
                name=name,
                txid=str(op.get("txid", "")),
                height=int(op.get("height", 0)),
                time=int(op.get("time", 0)),
                address=str(op.get("address", "")),
                operation=str(op.get("operation", "")),
                days_added=op.get("days_added"),
                value=op.get("value"),
                vout=int(op.get("vout", 0)),
            )
            for op in ops
        ]

    def records_for_number(self, digits: str) -> list[NameRecord]:
        if not re.fullmatch(r"[0-9]{1,64}", digits):
            return []
        rows = self.client.name_filter(f"^enum:{digits}:")
        numbered: list[tuple[int, str]] = []
        for row in _list(rows):
            parsed = EnumName.parse(str(row.get("name", "")))
            if parsed is not None and parsed.digits == digits:
                numbered.append((parsed.index, parsed.to_text()))
        numbered.sort()
        return self._records([n for _, n in numbered])

    def iter_prefix(self, prefix: str) -> Iterator[NameRecord]:
        tip, entries = self._listing()
        with self._lock:
            if self._snapshot is None:
                self._take_snapshot(tip, entries)
        names = sorted(e.name for e in entries if e.name.startswith(prefix))
        for i in range(0, len(names), self.batch_size):
            yield from self._records(names[i : i + self.batch_size])

    def expiring_between(self, low: int, high: int) -> list[NameRecord]:
        _, entries = self._listing()
        names = [e.name for e in entries if low <= e.expires_at < high]
        return [r for r in self._records(names) if not r.deleted and low <= r.expires_at < high]

    def _verifier_txids(self, entries: list[_Listed]) -> dict[str, str]:
        """The last txid of every ``ver:`` name (few): a transfer that keeps value and
        expiry changes nothing else the index shows, but it changes the verifier's key."""
        names = [e.name for e in entries if e.name.startswith("ver:")]
        out: dict[str, str] = {}
        for name, res in zip(names, self._batch([("name_show", [n]) for n in names]), strict=True):
            if not isinstance(res, RpcError):
                out[name] = str(_dict(res).get("txid", ""))
        return out

    def _take_snapshot(
        self, tip: int, entries: list[_Listed], verifiers: dict[str, str] | None = None
    ) -> None:
        self._snapshot = {e.name: (e.value, e.registered_at, e.expires_at) for e in entries}
        self._snapshot_tip = tip
        self._ver_txids = self._verifier_txids(entries) if verifiers is None else verifiers

    def change_stamp(self) -> int:
        """The chain height: :meth:`changed_since` compares the node's names by height."""
        return self.height()

    def changed_since(self, height: int) -> list[NameRecord]:
        with self._lock:
            tip, entries = self._listing()
            verifiers = self._verifier_txids(entries)
            previous, previous_tip = self._snapshot, self._snapshot_tip
            previous_verifiers = self._ver_txids
            self._take_snapshot(tip, entries, verifiers)
            current = self._snapshot
            assert current is not None
            if height >= tip:
                return []
            registered = {e.name for e in entries if e.registered_at > height}
            if previous is not None and height >= previous_tip:
                changed = {n for n, v in current.items() if previous.get(n) != v}
                changed |= set(previous) - set(current)
                changed |= {
                    n for n, txid in verifiers.items() if previous_verifiers.get(n, txid) != txid
                }
            elif self._history_ok is not False:
                changed = set(current)  # no usable snapshot: check every name's history once
            else:
                changed = set()
            candidates = sorted(registered | changed)
            records = self._records(candidates)
            if self._history_ok is not False:
                records = [r for r in records if r.height > height]
            else:
                records = [r for r in records if r.name in changed or r.registered_at > height]
            return sorted(records, key=lambda r: (r.height, r.name))

    # -- the node's own listings, as records ------------------------------------------------

    def filter(
        self, regexp: str = "", maxage: int = 0, start: int = 0, count: int = 0
    ) -> list[NameRecord]:
        """``name_filter`` (the node's semantics: ``start``/``count`` in index order, then
        sorted by ``registered_at``) as full records."""
        rows = _list(self.client.name_filter(regexp, maxage, start, count))
        return self._records([str(r["name"]) for r in rows])

    def scan(self, start: str = "") -> list[NameRecord]:
        """``name_scan`` from ``start`` (index order: shorter names first) as full records."""
        return self._records([str(r["name"]) for r in self.client.name_scan(start)])

    # -- NameStore: the wallet ------------------------------------------------------------------

    def name_new(self, name: str, value: str, days: int, to: str | None = None) -> str:
        self._listing_cache = None
        return self.client.name_new(name, value, days, to)

    def name_update(self, name: str, value: str, days: int, to: str | None = None) -> str:
        self._listing_cache = None
        return self.client.name_update(name, value, days, to)

    def name_delete(self, name: str) -> str:
        self._listing_cache = None
        return self.client.name_delete(name)

    def get_new_address(self, kind: str = "bech32") -> str:
        return self.client.getnewaddress("", kind)

    def is_mine(self, address: str) -> bool:
        try:
            info = self.client.validateaddress(address)
        except RpcError as exc:
            if isinstance(exc, RpcTransportError):
                raise
            return False
        if not info.get("isvalid", False):
            return False
        if "ismine" not in info:  # bitcoind >= 0.18 moved it to getaddressinfo
            info = self.client.getaddressinfo(address)
        return bool(info.get("ismine", False))

    def sign_message(self, address: str, message: str) -> str:
        return self.client.signmessage(address, message)

    def verify_message(self, address: str, signature: str, message: str) -> bool:
        return self.client.verifymessage(address, signature, message)

    def list_names(self) -> list[dict[str, Any]]:
        return self.client.name_list()


def _heights_from_history(history: Any) -> tuple[str, int, int, int] | None:
    """(last txid, last height, registered_at, expires_at) from ``name_history name true``.

    ``registered_at`` is the height of the last ``name_new``; ``expires_at`` is
    registered_at + BLOCKS_PER_DAY * the days added since (what the node had before a delete).
    """
    if not isinstance(history, list) or not history:
        return None
    try:
        last = history[-1]
        start = max(
            (i for i, op in enumerate(history) if op.get("operation") == "name_new"), default=0
        )
        registered_at = int(history[start]["height"])
        days = sum(int(op.get("days_added") or 0) for op in history[start:])
        return (
            str(last["txid"]),
            int(last["height"]),
            registered_at,
            registered_at + BLOCKS_PER_DAY * days,
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def open_node_store(
    spec: str, network: str | None = None, timeout: float | None = None
) -> NodeStore:
    """A :class:`NodeStore` for a URL, an ``emercoin.conf`` or a data directory.

    Nothing is sent until the first call.
    """
    return NodeStore(RpcClient(RpcConfig.from_spec(spec, network), timeout=timeout))


if TYPE_CHECKING:

    def _is_a_name_store(store: NodeStore) -> NameStore:
        return store
