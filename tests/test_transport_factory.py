"""Both providers build every transport through their `Transports` factory.

A test replaces the factory in a subclass and sees each transport the provider makes
and each connection it opens, over the local server with real sockets.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import loop

import llmkit
from llmkit._deadline import Deadline
from llmkit.testing import ResponsesServer
from llmkit.transports.async_http import AsyncHTTPTransport
from llmkit.transports.async_websocket import AsyncWebSocketConnection
from llmkit.transports.base import (
    AsyncConnection,
    AsyncConnectionOpener,
    Connection,
    ConnectionOpener,
)
from llmkit.transports.factory import HTTPSettings, Transports, WebSocketSettings
from llmkit.transports.http import HTTPTransport
from llmkit.transports.websocket import WebSocketConnection


class Recording(Transports):
    """The default transports, with a record of what was built and connected."""

    def __init__(self) -> None:
        self.built: list[str] = []
        self.settings: list[WebSocketSettings] = []
        self.connections: list[object] = []

    def http(self, settings: HTTPSettings, client: httpx.Client | None) -> HTTPTransport:
        self.built.append(f"http {settings['base_url']}")
        return super().http(settings, client)

    def async_http(
        self, settings: HTTPSettings, client: httpx.AsyncClient | None
    ) -> AsyncHTTPTransport:
        self.built.append(f"async_http {settings['base_url']}")
        return super().async_http(settings, client)

    def websocket(self, settings: WebSocketSettings) -> ConnectionOpener:
        self.settings.append(settings)
        inner, connections = super().websocket(settings), self.connections

        class Counting:
            def connect(self, deadline: Deadline | None) -> Connection:
                connection = inner.connect(deadline)
                connections.append(connection)
                return connection

            def close(self) -> None:
                inner.close()

        return Counting()

    def async_websocket(self, settings: WebSocketSettings) -> AsyncConnectionOpener:
        self.settings.append(settings)
        inner, connections = super().async_websocket(settings), self.connections

        class Counting:
            async def connect(self, deadline: Deadline | None) -> AsyncConnection:
                connection = await inner.connect(deadline)
                connections.append(connection)
                return connection

        return Counting()


def _history(first: llmkit.Response) -> list[llmkit.Message]:
    return [llmkit.UserMessage("one"), first.message, llmkit.UserMessage("two")]


def _arguments(server: ResponsesServer) -> dict[str, Any]:
    return loop.options(server, "websocket", timeout=7.0)


def test_a_provider_builds_its_transports_through_its_factory(server: ResponsesServer) -> None:
    factory = Recording()

    class Recorded(llmkit.Provider):
        transports = factory

    with Recorded(**_arguments(server)) as provider:
        model = provider.language_model("scripted")
        first = model.generate("one")
        second = model.generate(llmkit.Call(_history(first)))

    assert factory.built == [f"http {server.base_url}"]
    [settings] = factory.settings
    assert settings["url"] == server.base_url.replace("http://", "ws://") + "/responses"
    assert (settings["connect_timeout"], settings["read_timeout"]) == (7.0, 7.0)
    [connection] = factory.connections  # both turns on one connection, the second chained
    assert isinstance(connection, WebSocketConnection)
    assert connection.idle_timeout == 7.0
    assert second.metadata.input_mode == "incremental"
    assert llmkit.Provider.transports is not factory  # the default is left alone


def test_an_async_provider_builds_its_transports_through_its_factory(
    server: ResponsesServer,
) -> None:
    factory = Recording()

    class Recorded(llmkit.AsyncProvider):
        transports = factory

    async def main() -> llmkit.Response:
        async with Recorded(**_arguments(server)) as provider:
            model = provider.language_model("scripted")
            first = await model.generate("one")
            return await model.generate(llmkit.Call(_history(first)))

    second = asyncio.run(main())
    assert factory.built == [f"async_http {server.base_url}"]
    [connection] = factory.connections
    assert isinstance(connection, AsyncWebSocketConnection)
    assert connection.idle_timeout == 7.0
    assert second.metadata.input_mode == "incremental"
