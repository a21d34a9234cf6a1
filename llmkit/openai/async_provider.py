"""`AsyncProvider`: `Provider` for asyncio, over httpx's AsyncClient and websockets.

The settings are validated and derived by the same `ProviderBase`; the models share the
encoders, protocols, chain planning and recovery rules with the sync ones. Use one
`AsyncProvider` on one event loop.
"""

from __future__ import annotations

import httpx

from llmkit._closing import AsyncClosing, bind_loop
from llmkit.model import AsyncLanguageModel
from llmkit.openai._async_websocket import AsyncWebSocketSession
from llmkit.openai.async_model import AsyncResponsesModel
from llmkit.openai.chat.async_model import AsyncChatModel
from llmkit.openai.provider import ProviderBase, Wiring

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
        self._http = self.transports.async_http(wiring.http, wiring.http_client)
        self._websocket: AsyncWebSocketSession | None = None
        if wiring.websocket is not None:
            transport = self.transports.async_websocket(wiring.websocket.endpoint)
            self._websocket = AsyncWebSocketSession(transport=transport, **wiring.websocket.session)

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
