"""`Transports`: the one place a provider's transports are built.

`Provider` and `AsyncProvider` build every transport through their ``transports``
factory (a class attribute), so a test can give a provider other transports, e.g. a
subclass that wraps each connection, without touching the provider's wiring. The
WebSocket libraries are imported only when WebSocket mode is asked for.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Mapping, Sequence
from typing import TypeAlias, TypedDict

import httpx

from llmkit.exceptions import UsageError
from llmkit.transports._proxy import Route, parse_proxy, route_for
from llmkit.transports._retry import RetryPolicy
from llmkit.transports.async_http import AsyncHTTPTransport
from llmkit.transports.base import AsyncConnectionOpener, ConnectionOpener
from llmkit.transports.http import HTTPTransport

__all__ = [
    "HTTPSettings",
    "ProxyTypes",
    "Transports",
    "WebSocketSettings",
    "httpx_proxy",
    "proxy_routes",
]

ProxyTypes: TypeAlias = str | httpx.URL | httpx.Proxy


class HTTPSettings(TypedDict):
    """The arguments of either HTTP transport, as a provider derives them."""

    base_url: str
    headers: Mapping[str, str]
    timeout: float | httpx.Timeout
    retry: RetryPolicy
    secrets: Sequence[str]
    verify: ssl.SSLContext | bool
    proxy: httpx.Proxy | None
    """The proxy of the client llmkit creates (`proxy_routes` decided it)."""
    trust_env: bool
    """Whether that client reads the environment (False: llmkit read it already)."""


class WebSocketSettings(TypedDict):
    """The arguments of either WebSocket transport (`Endpoint`), as a provider derives them."""

    url: str
    headers: Mapping[str, str]
    connect_timeout: float | None
    read_timeout: float | None
    secrets: Sequence[str]
    ssl_context: ssl.SSLContext | None
    keepalive: float | None
    proxy: Route | None


def proxy_routes(
    proxy: ProxyTypes | None, *, trust_env: bool, urls: Sequence[str | None]
) -> list[Route | None]:
    """The proxy (None: direct) serving each of ``urls`` (None: a transport not used),
    from the provider's ``proxy`` and ``trust_env`` and the environment as httpx reads
    it (`_proxy.route_for`).

    Raises:
        UsageError: ``proxy`` is invalid or a SOCKS proxy, or the environment's proxy for
            one of ``urls`` is.
    """
    explicit: Route | None = None
    if isinstance(proxy, httpx.Proxy):
        if proxy.headers:
            raise UsageError("proxy: httpx.Proxy(headers=...) is not supported")
        explicit = parse_proxy(str(proxy.url), auth=proxy.auth, tls=proxy.ssl_context)
    elif isinstance(proxy, str | httpx.URL):
        explicit = parse_proxy(str(proxy))
    elif proxy is not None:
        raise UsageError(
            f"proxy must be a URL (str or httpx.URL) or an httpx.Proxy, not {type(proxy).__name__}"
        )
    environment = urllib.request.getproxies() if explicit is None and trust_env else {}
    return [
        None
        if url is None
        else route_for(url, explicit=explicit, trust_env=trust_env, environment=environment)
        for url in urls
    ]


def httpx_proxy(route: Route | None) -> httpx.Proxy | None:
    """``route`` as httpx takes it (None: direct)."""
    if route is None:
        return None
    context = route.tls if isinstance(route.tls, ssl.SSLContext) else None
    return httpx.Proxy(route.shown, auth=route.auth, ssl_context=context)


class Transports:
    """Builds the transports of a provider, sync or async, from its settings."""

    def http(self, settings: HTTPSettings, client: httpx.Client | None) -> HTTPTransport:
        """The HTTP transport of a `Provider` (``client``: the caller's, kept open)."""
        return HTTPTransport(**settings, client=client)

    def async_http(
        self, settings: HTTPSettings, client: httpx.AsyncClient | None
    ) -> AsyncHTTPTransport:
        """The HTTP transport of an `AsyncProvider`."""
        return AsyncHTTPTransport(**settings, client=client)

    def websocket(self, settings: WebSocketSettings) -> ConnectionOpener:
        """The WebSocket transport of a `Provider` (websocket-client)."""
        from llmkit.transports.websocket import WebSocketTransport

        return WebSocketTransport(**settings)

    def async_websocket(self, settings: WebSocketSettings) -> AsyncConnectionOpener:
        """The WebSocket transport of an `AsyncProvider` (websockets)."""
        from llmkit.transports.async_websocket import AsyncWebSocketTransport

        return AsyncWebSocketTransport(**settings)
