"""Which proxy, if any, serves a target URL: one decision for HTTP and both WebSocket
transports, without an I/O library.

httpx, websocket-client and websockets each read the proxy variables of the environment
in their own way (websocket-client reads ``https_proxy`` but not ``ALL_PROXY``, and its own
reading of ``NO_PROXY`` even when it is given a proxy; websockets reads
``urllib.request.getproxies()`` and prefers a SOCKS proxy). Left to themselves, HTTP
could go direct while WebSocket mode went through a proxy, or the reverse, and
``trust_env=False`` would not hold for WebSocket mode. So llmkit decides once, here, as
httpx decides for its own client, and tells each library exactly what to do.

The rules are httpx's:

* An explicit proxy (``proxy=``) serves every target; the environment is not read.
* Otherwise, with ``trust_env``, the environment's ``HTTP_PROXY``/``HTTPS_PROXY``/
  ``ALL_PROXY`` (either case; lower case wins, as ``urllib.request.getproxies`` reads
  them) serve ``http://``/``https://``/any targets, a value without a scheme meaning
  ``http://``, and ``NO_PROXY`` exempts hosts: ``*`` every host, ``example.com`` that host
  and its subdomains, ``.example.com`` its subdomains only, an IP address or
  ``localhost`` that host, ``host:port`` that port only. The most specific rule wins
  (a port first, then the longer host, then the longer scheme).
* A ``ws://`` target is matched as ``http://``, a ``wss://`` target as ``https://``.

Only HTTP proxies (``http://`` and ``https://``, the latter TLS to the proxy itself) are
supported: a SOCKS proxy is a `UsageError` when it would serve a target, rather than a
failure at the first call or, worse, a silent direct connection.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from llmkit.exceptions import ConnectError, UsageError

__all__ = [
    "MAX_HEAD",
    "Route",
    "connect_request",
    "parse_proxy",
    "refused",
    "route_for",
    "tunnel_status",
]

MAX_HEAD = 64 * 1024
"""The longest answer head a proxy may send to a ``CONNECT`` (status line and headers)."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TARGET_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


@dataclass(frozen=True, slots=True, repr=False)
class Route:
    """An HTTP proxy that serves a target: where it is and how to sign in to it.

    ``password`` is a secret: it is in no repr and no message (`shown` has no user info);
    `secrets` lists every form of it a library might print.
    """

    scheme: str
    """``http`` or ``https`` (TLS to the proxy itself)."""
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, compare=False)
    tls: object = field(default=None, compare=False)
    """An ``ssl.SSLContext`` for an ``https://`` proxy (None: the default)."""

    @property
    def shown(self) -> str:
        """The proxy's URL without credentials, for messages."""
        return f"{self.scheme}://{_host_port(self.host, self.port)}"

    @property
    def auth(self) -> tuple[str, str] | None:
        """The user name and password for Basic authentication, if any."""
        if self.username is None:
            return None
        return self.username, self.password or ""

    @property
    def url(self) -> str:
        """The proxy's URL with its credentials (percent-encoded), for a library."""
        auth = self.auth
        if auth is None:
            return self.shown
        userinfo = f"{quote(auth[0], safe='')}:{quote(auth[1], safe='')}"
        return f"{self.scheme}://{userinfo}@{_host_port(self.host, self.port)}"

    @property
    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` header value, if the proxy takes credentials."""
        auth = self.auth
        if auth is None:
            return None
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        return f"Basic {token}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every form of the password that a log line or an error could show: itself,
        ``user:password`` (plain and percent-encoded) and the Basic token."""
        auth = self.auth
        if auth is None or not auth[1]:
            return ()
        user, password = auth
        header = self.authorization or ""
        forms = (
            password,
            quote(password, safe=""),
            f"{user}:{password}",
            f"{quote(user, safe='')}:{quote(password, safe='')}",
            header.removeprefix("Basic "),
        )
        return tuple(dict.fromkeys(form for form in forms if form))

    def __repr__(self) -> str:
        return f"Route({self.shown!r})"


def parse_proxy(
    url: str, *, auth: tuple[str, str] | None = None, tls: object = None, origin: str = "proxy"
) -> Route:
    """The `Route` a proxy URL names (``http://[user:password@]host[:port]``).

    ``auth`` (an ``httpx.Proxy``'s) overrides user info in the URL. ``origin`` names where
    the URL came from in an error (``proxy`` or an environment variable).

    Raises:
        UsageError: not an ``http://`` or ``https://`` proxy URL (a SOCKS proxy among
            them); the message never shows the URL's credentials.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UsageError(f"{origin}: not a valid proxy URL") from None
    scheme = parts.scheme.lower()
    host = parts.hostname
    shown = f"{scheme}://{_host_port(host, port) if host else ''}"
    if scheme.startswith("socks"):
        raise UsageError(
            f"{origin}: SOCKS proxies ({shown}) are not supported; use an HTTP proxy "
            "(http:// or https://), or trust_env=False to ignore the environment's"
        )
    if scheme not in _DEFAULT_PORTS:
        raise UsageError(f"{origin} must be an http:// or https:// proxy URL, not {shown!r}")
    if not host:
        raise UsageError(f"{origin}: the proxy URL {shown!r} has no host")
    if auth is None and parts.username is not None:
        auth = (unquote(parts.username), unquote(parts.password or ""))
    return Route(
        scheme=scheme,
        host=host,
        port=port or _DEFAULT_PORTS[scheme],
        username=None if auth is None else auth[0],
        password=None if auth is None else auth[1],
        tls=tls,
    )


def route_for(
    url: str,
    *,
    explicit: Route | None,
    trust_env: bool,
    environment: Mapping[str, str],
) -> Route | None:
    """The proxy that serves ``url`` (``http(s)://`` or ``ws(s)://``), or None: direct.

    ``environment`` is what ``urllib.request.getproxies()`` returns (scheme → proxy
    URL, ``no`` → the ``NO_PROXY`` list), read by the caller.

    Raises:
        UsageError: the environment's proxy for ``url`` is not an HTTP proxy.
    """
    if explicit is not None:
        return explicit
    if not trust_env:
        return None
    parts = urlsplit(url)
    scheme = _TARGET_SCHEMES.get(parts.scheme.lower(), parts.scheme.lower())
    host = parts.hostname or ""
    port = parts.port
    if port == _DEFAULT_PORTS.get(scheme):
        port = None  # as httpx.URL reports a default port
    for rule, proxy in _environment_rules(environment):
        if rule.matches(scheme, host, port):
            if proxy is None:
                return None
            return parse_proxy(proxy, origin=f"the environment's {rule.variable}")
    return None


@dataclass(frozen=True, slots=True)
class _Rule:
    """One key of httpx's proxy map: a scheme (or any), a host pattern, a port."""

    scheme: str  # "" for any
    host: str  # "" for any; "*example.com", "*.example.com" or a host
    port: int | None
    variable: str

    @classmethod
    def parse(cls, key: str, variable: str) -> _Rule | None:
        try:
            parts = urlsplit(key)
            port = parts.port
        except ValueError:
            return None  # a NO_PROXY entry that is no URL exempts nothing
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        return cls("" if scheme == "all" else scheme, "" if host == "*" else host, port, variable)

    def matches(self, scheme: str, host: str, port: int | None) -> bool:
        if self.scheme and self.scheme != scheme:
            return False
        if self.host and not _host_matches(self.host, host):
            return False
        return self.port is None or self.port == port

    @property
    def priority(self) -> tuple[int, int, int]:
        return (0 if self.port is not None else 1, -len(self.host), -len(self.scheme))


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    if pattern.startswith("*"):
        domain = pattern[1:]
        return host == domain or host.endswith(f".{domain}")
    return host == pattern


def _environment_rules(environment: Mapping[str, str]) -> list[tuple[_Rule, str | None]]:
    """httpx's proxy map from the environment, most specific rule first."""
    rules: list[tuple[_Rule, str | None]] = []
    for scheme in ("http", "https", "all"):
        value = environment.get(scheme)
        if value:
            proxy = value if "://" in value else f"http://{value}"
            rules.append((_Rule("" if scheme == "all" else scheme, "", None, _var(scheme)), proxy))
    for entry in (item.strip() for item in environment.get("no", "").split(",")):
        if entry == "*":
            return []
        if not entry:
            continue
        if "://" in entry:
            key = entry
        elif _is_ipv6(entry):
            key = f"all://[{entry}]"
        elif _is_ipv4(entry) or entry.lower() == "localhost":
            key = f"all://{entry}"
        else:
            key = f"all://*{entry}"
        rule = _Rule.parse(key, "NO_PROXY")
        if rule is not None:
            rules.append((rule, None))
    rules.sort(key=lambda item: item[0].priority)  # stable: ties keep their order
    return rules


def _var(scheme: str) -> str:
    return f"{scheme.upper()}_PROXY"


def _is_ipv4(text: str) -> bool:
    pieces = text.split("/")[0].split(".")
    return len(pieces) == 4 and all(p.isdigit() for p in pieces)


def _is_ipv6(text: str) -> bool:
    return ":" in text.split("/")[0] and all(
        c in "0123456789abcdefABCDEF:." for c in text.split("/")[0]
    )


def _host_port(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


# --------------------------------------------------------------------------- CONNECT


def connect_request(route: Route, host: str, port: int) -> bytes:
    """The ``CONNECT`` request that opens a tunnel to ``host:port`` through ``route``."""
    target = _host_port(host, port)
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    authorization = route.authorization
    if authorization is not None:
        lines.append(f"Proxy-Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def tunnel_status(head: bytes) -> int:
    """The status of a proxy's answer head to a ``CONNECT`` (up to the blank line).

    Raises:
        ConnectError: the answer is not an HTTP status line.
    """
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    version, _, rest = line.partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ConnectError("the proxy did not answer the CONNECT request with an HTTP status")
    return int(code)


def refused(status: int | None, detail: str, *, proxy: str = "the proxy") -> ConnectError:
    """The error of a proxy that refused to open a tunnel (``status``: its answer).

    407 (the credentials are missing or wrong) and other 4xx answers are not retryable:
    sending again meets the same answer. A 5xx (the proxy could not reach the server) is.
    """
    hint = ""
    if status == 407:
        hint = " (check the user name and password of the proxy)"
    return ConnectError(
        f"{proxy} refused the connection: {detail}{hint}",
        retryable=status is None or status >= 500,
    )
