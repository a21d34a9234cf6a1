"""The HTTP route of the local server: one request, answered as JSON or as an SSE stream.

`POST /v1/responses`, `GET /v1/responses/{id}` and `POST /v1/chat/completions`. Only I/O
and timing here: decisions live in `_engine` and `_chat`, event building in `_events`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from llmkit.testing import _chat as chat, _chat_request as chat_request
from llmkit.testing._core import (
    BATCH_BYTES,
    CHAT_PATH,
    RESPONSES_PATH,
    Receive,
    Scope,
    Send,
    ServerCore,
    request_id,
    unauthorized,
)
from llmkit.testing._engine import (
    ChatExchange,
    ChatProduction,
    Exchange,
    Production,
    replay_outcome,
    validate,
)
from llmkit.testing._events import ApiError, Event, dumps
from llmkit.testing._faults import ErrorFault
from llmkit.testing._gateway import error_frame
from llmkit.testing._sse import SseBlock
from llmkit.testing._state import Endpoint
from llmkit.testing._stream import RESPONSES_FRAMING, Framing, Payload, Pump

__all__ = ["Http"]


class _AbortLogFilter(logging.Filter):
    """Hides uvicorn's error line for streams this server cuts on purpose (`drop_after`)."""

    def __init__(self) -> None:
        super().__init__()
        self.expected = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() != "ASGI callable returned without completing response.":
            return True
        with self._lock:
            if self.expected > 0:
                self.expected -= 1
                return False
        return True


ABORT_FILTER = _AbortLogFilter()
logging.getLogger("uvicorn.error").addFilter(ABORT_FILTER)


class Http:
    """One HTTP request."""

    def __init__(self, core: ServerCore, scope: Scope, receive: Receive, send: Send) -> None:
        self.core = core
        self.scope = scope
        self.receive = receive
        self.send = send
        self.request_id = request_id()
        self._pending: list[bytes] = []
        self._pending_size = 0

    async def handle(self) -> None:
        method, path = self.scope["method"], self.scope["path"].rstrip("/")
        if not self.core.authorized(self.scope):
            await self.json(401, unauthorized(self.scope).body())
        elif path == RESPONSES_PATH and method == "POST":
            await self.create()
        elif path == CHAT_PATH and method == "POST":
            await self.create_chat()
        elif path.startswith(RESPONSES_PATH + "/") and method == "GET":
            await self.retrieve(path.rsplit("/", 1)[1])
        else:
            error = ApiError(404, f"Invalid URL ({method} {self.scope['path']})")
            await self.json(404, error.body())

    async def json(self, status: int, body: Any, extra: dict[str, str] | None = None) -> None:
        data = dumps(body).encode()
        headers = self.json_headers(data)
        headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": data})

    def json_headers(self, data: bytes) -> list[tuple[bytes, bytes]]:
        return [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
            (b"x-request-id", self.request_id.encode()),
        ]

    async def retrieve(self, response_id: str) -> None:
        entry = self.core.store.get(response_id)
        if entry is None:
            message = f"No response found with id '{response_id}'."
            error = ApiError(404, message, code="not_found", param="response_id")
            await self.json(404, error.body())
        else:
            await self.json(200, entry.response)

    async def read_body(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def accept(
        self, endpoint: Endpoint, check: Callable[[Any], ApiError | None]
    ) -> tuple[Any, int, ApiError | None] | None:
        """Read and check a POST body: (body, record, error), or None if it was rejected."""
        raw = await self.read_body()
        engine = self.core.engine
        rejection = self.core.faults.take_http_rejection()
        if rejection is not None:
            record = engine.record("http", None, None, len(raw), endpoint)
            engine.fail(record, str(rejection.status))
            refusal = ApiError(rejection.status, rejection.message, code=rejection.code)
            await self.json(rejection.status, refusal.body(), rejection.headers)
            return None
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
            error: ApiError | None = ApiError(400, _BAD_JSON)
        else:
            error = check(body)
        return body, engine.record("http", None, body, len(raw), endpoint), error

    async def refuse(self, record: int, error: ApiError) -> None:
        self.core.engine.fail(record, error.code or "invalid_request_error")
        await self.json(error.status, error.body())

    async def create(self) -> None:
        accepted = await self.accept("responses", lambda body: validate(body, "http"))
        if accepted is None:
            return
        body, record, error = accepted
        engine = self.core.engine
        if error is None:
            begun = engine.begin(body, record, None, head=None)
            if isinstance(begun, ApiError):
                error = begun
        if error is not None:
            await self.refuse(record, error)
            return
        assert isinstance(begun, Exchange)
        await self.respond(begun, engine.produce(begun), stream=body.get("stream") is True)

    async def create_chat(self) -> None:
        accepted = await self.accept("chat", chat_request.validate_chat)
        if accepted is None:
            return
        body, record, error = accepted
        if error is not None:
            await self.refuse(record, error)
            return
        engine = self.core.engine
        turn = engine.begin_chat(body, record)
        await self.respond_chat(turn, engine.produce_chat(turn), stream=body.get("stream") is True)

    async def answer_fault(
        self,
        record: int,
        fault: ErrorFault,
        *,
        stream: bool,
        event: Callable[[ErrorFault], Payload],
    ) -> None:
        """An armed `error_next`: the error as the stream's only payload, or as JSON
        (status 500 when the fault has none)."""
        self.core.engine.fail(record, fault.code or fault.type)
        if not stream:
            status = fault.status or 500
            error = ApiError(status, fault.message, fault.code, fault.param, fault.type)
            await self.json(status, error.body())
            return
        await self.start_stream()
        await self.send_event(event(fault))
        await self.send({"type": "http.response.body", "body": b""})

    async def respond(self, turn: Exchange, prod: Production, *, stream: bool) -> None:
        engine = self.core.engine
        if prod.error is not None:
            await self.answer_fault(
                turn.record, prod.error, stream=stream, event=lambda f: error_frame(f, 0)
            )
            return
        if prod.blocks is not None:
            status, response = replay_outcome(prod.blocks)
            payloads: Sequence[Payload] = prod.blocks
        else:
            assert prod.rendered is not None
            status, response = prod.rendered.status, prod.rendered.response
            payloads = prod.rendered.events  # built while sending
        commit = lambda: engine.finish(turn, status, response)  # noqa: E731
        if not stream:
            answer = response if response is not None else {}
            await self.respond_json(turn.record, payloads, prod, commit, answer)
            return
        await self.stream(turn.record, payloads, prod, commit)

    async def respond_chat(self, turn: ChatExchange, prod: ChatProduction, *, stream: bool) -> None:
        engine = self.core.engine
        if prod.error is not None:
            await self.answer_fault(turn.record, prod.error, stream=stream, event=chat.fault_block)
            return
        failure: ApiError | None = None
        if prod.blocks is not None:
            status, completion = chat.replay_outcome(prod.blocks)
            payloads: list[Payload] = list(prod.blocks)
        else:
            assert prod.rendered is not None
            rendered = prod.rendered
            status, completion, failure = rendered.status, rendered.completion, rendered.error
            payloads = list(rendered.payloads)
        commit = lambda: engine.finish_chat(turn, status, completion)  # noqa: E731
        framing = prod.framing or RESPONSES_FRAMING
        if stream:
            await self.stream(turn.record, payloads, prod, commit, framing)
            return
        status_code, answer = 200, completion if completion is not None else {}
        if failure is not None:  # the model failed: a 500 instead of a completion
            status_code, answer = failure.status, failure.body()
        await self.respond_json(turn.record, payloads, prod, commit, answer, status_code, framing)

    async def stream(
        self,
        record: int,
        payloads: Sequence[Payload],
        prod: Production | ChatProduction,
        commit: Callable[[], object],
        framing: Framing = RESPONSES_FRAMING,
    ) -> None:
        """A 200 SSE answer: the payloads with timing and stream faults."""
        await self.start_stream()
        config = self.core.stream_config(prod.faults, prod.first_token_delay)
        pump = Pump(self.queue_event, config, commit, framing, flush=self.flush_events)
        if await pump.run(payloads):
            pump.commit()
            await self.send({"type": "http.response.body", "body": b""})
        else:
            self.core.engine.fail(record, "dropped")
            await self.abort()

    async def respond_json(
        self,
        record: int,
        payloads: Sequence[Payload],
        prod: Production | ChatProduction,
        commit: Callable[[], object],
        answer: Any,
        status: int = 200,
        framing: Framing = RESPONSES_FRAMING,
    ) -> None:
        """Non-streaming create: same timing as the stream, then one JSON object."""
        config = self.core.stream_config(prod.faults, prod.first_token_delay)
        pump = Pump(_discard, config, commit, framing)
        if await pump.run(payloads):
            pump.commit()
            await self.json(status, answer)
            return
        self.core.engine.fail(record, "dropped")
        data = dumps(answer).encode()
        headers = self.json_headers(data)
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send(
            {"type": "http.response.body", "body": data[: len(data) // 2], "more_body": True}
        )
        await self.abort()

    async def start_stream(self) -> None:
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-request-id", self.request_id.encode()),
        ]
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})

    async def send_event(self, payload: Payload) -> None:
        await self.send({"type": "http.response.body", "body": _sse(payload), "more_body": True})

    async def queue_event(self, payload: Payload) -> None:
        """Buffer one event; written by `flush_events` (the pump's flush) or when large."""
        data = _sse(payload)
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= BATCH_BYTES:
            await self.flush_events()
            await asyncio.sleep(0)  # let the loop see a disconnect and serve the others

    async def flush_events(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def abort(self) -> None:
        """End the handler mid-body: uvicorn then closes the TCP connection."""
        with ABORT_FILTER._lock:
            ABORT_FILTER.expected += 1


def _sse(payload: Payload) -> bytes:
    if isinstance(payload, SseBlock):
        return payload.raw
    return f"event: {payload['type']}\ndata: {dumps(payload)}\n\n".encode()


async def _discard(payload: Event | SseBlock) -> None:
    await asyncio.sleep(0)


_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please "
    "contact us through our help center at help.openai.com.)"
)
