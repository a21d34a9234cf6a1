"""`AsyncProvider`: `Provider` for asyncio, over httpx's AsyncClient and websockets.

The settings are validated and derived by the same `ProviderBase`; the models share the
encoders, protocols, chain planning and recovery rules with the sync ones. Use one
`AsyncProvider` on one event loop.
"""

from __future__ import annotations

import httpx

from llmkit._closing import AsyncClosing, bind_loop
from llmkit._deadline import Deadline, cap
from llmkit._provider import ProviderBase, WebSocketWiring, Wiring
from llmkit.model import AsyncLanguageModel
from llmkit.openai._aio_models import AsyncChatModel, AsyncResponsesModel
from llmkit.openai._aio_websocket import AsyncWebSocketSession
from llmkit.transports.async_http import AsyncHTTPTransport

__all__ = ["AsyncProvider"]


class AsyncProvider(ProviderBase[httpx.AsyncClient, AsyncLanguageModel], AsyncClosing):
    """`Provider` for asyncio: the same arguments (``http_client`` an `httpx.AsyncClient`).

    ```python
    async with llmkit.AsyncProvider(use_responses_api=True, websocket=True) as provider:
        model = provider.language_model("gpt-5")
        response = await model.generate(call)
    ```

    Raises:
        UsageError: an invalid combination of settings.
    """

    def _open(self, wiring: Wiring[httpx.AsyncClient]) -> None:
        self._http = AsyncHTTPTransport(**wiring.http, client=wiring.http_client)
        self._websocket: AsyncWebSocketSession | None = None
        if wiring.websocket is not None:
            self._websocket = _websocket_session(wiring.websocket)

    def _model(self, model_id: str) -> AsyncLanguageModel:
        if not self.use_responses_api:
            return AsyncChatModel(model_id, http=self._http, max_duration=self.max_duration)
        return AsyncResponsesModel(
            model_id, http=self._http, websocket=self._websocket, max_duration=self.max_duration
        )

    async def aclose(self) -> None:
        """Close the HTTP client and every WebSocket connection, as `Provider.close`.

        Raises:
            UsageError: the provider was used on another event loop. Nothing is closed
                then: its connections belong to that loop, so close it there.
        """
        bind_loop(self._http.loop)
        if self._websocket is not None:
            bind_loop(self._websocket.loop)
        self._closed = True
        if self._websocket is not None:
            self._websocket.close()
        await self._http.aclose()


def _websocket_session(wiring: WebSocketWiring) -> AsyncWebSocketSession:
    # websockets is imported only when WebSocket mode is asked for.
    from llmkit.transports.async_websocket import (
        AsyncWebSocketConnection,
        AsyncWebSocketPayloadStream,
    )

    connect_timeout, read_timeout, pool_timeout = wiring.timeouts()

    async def connect(deadline: Deadline | None) -> AsyncWebSocketConnection:
        timeout = cap(deadline, connect_timeout)
        return await AsyncWebSocketConnection.connect(
            wiring.url,
            headers=wiring.headers,
            timeout=timeout,
            secrets=wiring.secrets,
            ssl_context=wiring.ssl_context,
        )

    def payloads(
        connection: AsyncWebSocketConnection, size: int, deadline: Deadline | None
    ) -> AsyncWebSocketPayloadStream:
        return AsyncWebSocketPayloadStream(
            connection, bytes_sent=size, idle_timeout=read_timeout, deadline=deadline
        )

    return AsyncWebSocketSession(
        connect=connect,
        payloads=payloads,  # type: ignore[arg-type]
        max_connections=wiring.max_connections,
        max_age=wiring.max_age,
        wait_timeout=pool_timeout,
        cooldown=wiring.cooldown,
    )
