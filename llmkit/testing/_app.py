"""The raw ASGI application: lifespan, and the HTTP and WebSocket routes.

The routes are `_http` (HTTP) and `_ws` (WebSocket); what they share, `ServerCore`
included, is `_core`.
"""

from __future__ import annotations

import threading

from llmkit.testing._core import Receive, Scope, Send, ServerCore
from llmkit.testing._http import Http
from llmkit.testing._ws import handle_websocket

__all__ = ["ResponsesApp"]


class ResponsesApp:
    """ASGI 3 application serving the Responses API of one `ServerCore`."""

    def __init__(self, core: ServerCore) -> None:
        self.core = core
        self.started = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await Http(self.core, scope, receive, send).handle()
        elif kind == "websocket":
            await handle_websocket(self.core, scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
                self.started.set()
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
