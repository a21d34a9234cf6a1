"""`Transports`: the one place a provider's transports are built.

`Provider` and `AsyncProvider` build every transport through their ``transports``
factory (a class attribute), so a test can give a provider other transports, e.g. a
subclass that wraps each connection, without touching the provider's wiring. The
WebSocket libraries are imported only when WebSocket mode is asked for.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from typing import TypedDict

import httpx

from llmkit.transports._retry import RetryPolicy
from llmkit.transports.async_http import AsyncHTTPTransport
from llmkit.transports.base import AsyncConnectionOpener, ConnectionOpener
from llmkit.transports.http import HTTPTransport

__all__ = ["HTTPSettings", "Transports", "WebSocketSettings"]


class HTTPSettings(TypedDict):
    """The arguments of either HTTP transport, as a provider derives them."""

    base_url: str
    headers: Mapping[str, str]
    timeout: float | httpx.Timeout
    retry: RetryPolicy
    secrets: Sequence[str]
    verify: ssl.SSLContext | bool


class WebSocketSettings(TypedDict):
    """The arguments of either WebSocket transport (`Endpoint`), as a provider derives them."""

    url: str
    headers: Mapping[str, str]
    connect_timeout: float | None
    read_timeout: float | None
    secrets: Sequence[str]
    ssl_context: ssl.SSLContext | None
    keepalive: float | None


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
