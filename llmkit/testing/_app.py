"""The raw ASGI application: lifespan, HTTP and the WebSocket route.

HTTP: `POST /v1/responses`, `GET /v1/responses/{id}` and `POST /v1/chat/completions`.

This layer only does I/O and timing; decisions live in `_engine` and event building in
`_events`. `ServerCore` is the state one server instance shares between its event-loop
thread and the test thread that reads stats and arms faults.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Protocol

from llmkit.testing import _chat as chat
from llmkit.testing._engine import (
    ChatExchange,
    ChatProduction,
    Engine,
    Exchange,
    Production,
    replay_outcome,
    validate,
)
from llmkit.testing._events import ApiError, Event, dumps
from llmkit.testing._sse import SseBlock
from llmkit.testing._state import (
    Endpoint,
    ErrorFault,
    Faults,
    ResponseFaults,
    ResponseStore,
    ServerStats,
)
from llmkit.testing._stream import RESPONSES_FRAMING, Framing, Payload, Pump, StreamConfig

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
RESPONSES_PATH = "/v1/responses"
CHAT_PATH = "/v1/chat/completions"
ABORT_EXTENSION = "llmkit.abort"
# Stream events are written in batches of about this many bytes when no pause separates
# them (see `_stream`): a write per event dominated the cost of long answers.
BATCH_BYTES = 64 * 1024


class Closable(Protocol):
    """What the core needs from a live WebSocket connection."""

    @property
    def busy(self) -> bool: ...

    def request_close(self, code: int, reason: str) -> None: ...


class ServerCore:
    """Configuration and shared state of one server (read by the test thread too)."""

    def __init__(
        self,
        *,
        ttft: float,
        token_delay: float,
        keepalive_interval: float | None,
        max_connection_age: float | None,
        api_key: str | None,
    ) -> None:
        self.ttft = ttft
        self.token_delay = token_delay
        self.keepalive_interval = keepalive_interval
        self.max_connection_age = max_connection_age
        self.api_key = api_key
        self.store = ResponseStore()
        self.stats = ServerStats()
        self.faults = Faults(close_idle=self.close_idle)
        self.engine = Engine(self.store, self.stats, self.faults)
        self._lock = threading.Lock()
        self._connections: dict[int, Closable] = {}

    def stream_config(self, faults: ResponseFaults) -> StreamConfig:
        return StreamConfig(
            ttft=self.ttft,
            token_delay=faults.slow if faults.slow is not None else self.token_delay,
            keepalive_interval=self.keepalive_interval,
            unknown_events=self.faults.unknown_events,
            drop_after=faults.drop_after,
        )

    def register(self, conn_id: int, conn: Closable) -> None:
        with self._lock:
            self._connections[conn_id] = conn

    def unregister(self, conn_id: int) -> None:
        with self._lock:
            self._connections.pop(conn_id, None)

    def close_idle(self) -> int:
        with self._lock:
            idle = [c for c in self._connections.values() if not c.busy]
        for conn in idle:
            conn.request_close(1001, "idle connection closed")
        return len(idle)

    def close_all(self) -> None:
        with self._lock:
            conns = list(self._connections.values())
            self._connections.clear()
        for conn in conns:
            conn.request_close(1001, "server reset")

    def reset(self) -> None:
        self.close_all()
        self.stats.clear()
        self.faults.reset()
        self.store.clear()

    def authorized(self, scope: Scope) -> bool:
        if self.api_key is None:
            return True
        return header(scope, "authorization") == f"Bearer {self.api_key}"


def header(scope: Scope, name: str) -> str | None:
    wanted = name.encode("latin-1")
    for key, value in scope.get("headers", []):
        if key.lower() == wanted:
            return bytes(value).decode("latin-1")
    return None


def request_id() -> str:
    return "req_" + secrets.token_hex(16)


def unauthorized(scope: Scope) -> ApiError:
    given = header(scope, "authorization")
    if not given:
        message = (
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
    else:
        message = "Incorrect API key provided. You can find your API key at your provider."
    return ApiError(401, message, code="invalid_api_key")


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


class ResponsesApp:
    """ASGI 3 application serving the Responses API of one `ServerCore`."""

    def __init__(self, core: ServerCore) -> None:
        self.core = core
        self.started = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await _Http(self.core, scope, receive, send).handle()
        elif kind == "websocket":
            from llmkit.testing._ws import handle_websocket

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


class _Http:
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
        accepted = await self.accept("chat", chat.validate_chat)
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
        event: Callable[[ApiError], Payload],
    ) -> None:
        """An armed `error_next`: the error as the stream's only payload, or as JSON."""
        self.core.engine.fail(record, fault.code)
        error = ApiError(fault.status, fault.message, fault.code, fault.param, fault.type)
        if not stream:
            await self.json(fault.status, error.body())
            return
        await self.start_stream()
        await self.send_event(event(error))
        await self.send({"type": "http.response.body", "body": b""})

    async def respond(self, turn: Exchange, prod: Production, *, stream: bool) -> None:
        engine = self.core.engine
        if prod.error is not None:
            shape = prod.error.shape
            await self.answer_fault(
                turn.record,
                prod.error,
                stream=stream,
                event=lambda e: e.nested(0) if shape == "nested" else e.flat(0),
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
            await self.respond_json(turn.record, payloads, prod.faults, commit, answer)
            return
        await self.stream(turn.record, payloads, prod.faults, commit)

    async def respond_chat(self, turn: ChatExchange, prod: ChatProduction, *, stream: bool) -> None:
        engine = self.core.engine
        if prod.error is not None:
            shape = prod.error.shape
            await self.answer_fault(
                turn.record,
                prod.error,
                stream=stream,
                event=lambda e: chat.error_block(e, shape),
            )
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
            await self.stream(turn.record, payloads, prod.faults, commit, framing)
            return
        status_code, answer = 200, completion if completion is not None else {}
        if failure is not None:  # the model failed: a 500 instead of a completion
            status_code, answer = failure.status, failure.body()
        await self.respond_json(
            turn.record, payloads, prod.faults, commit, answer, status_code, framing
        )

    async def stream(
        self,
        record: int,
        payloads: Sequence[Payload],
        faults: ResponseFaults,
        commit: Callable[[], object],
        framing: Framing = RESPONSES_FRAMING,
    ) -> None:
        """A 200 SSE answer: the payloads with timing and stream faults."""
        await self.start_stream()
        config = self.core.stream_config(faults)
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
        faults: ResponseFaults,
        commit: Callable[[], object],
        answer: Any,
        status: int = 200,
        framing: Framing = RESPONSES_FRAMING,
    ) -> None:
        """Non-streaming create: same timing as the stream, then one JSON object."""
        pump = Pump(_discard, self.core.stream_config(faults), commit, framing)
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
