"""The stream consumers compared by the throughput and first-token benchmarks.

Each consumer sends one Responses request for a model id (``bench-words-<N>``), reads the
whole answer and counts the `response.output_text.delta` events (or llmkit's
`TextDelta` parts) it saw. `first_delta` times a request from just before sending to the
first text delta, then drains the rest so the connection stays clean.

The floor is what any client must do at least: read the socket and `json.loads` each
event, with no SDK (httpx splitting SSE on blank lines; websocket-client `recv()`).

Every consumer comes in two flavours: sync, and asyncio (`AsyncConsumer`: llmkit's
`AsyncProvider`, `openai.AsyncOpenAI`, and an asyncio floor of `httpx.AsyncClient` and
`websockets`). An asyncio consumer keeps its own event loop across runs, so its
connections stay warm as a sync consumer's do; each run is one coroutine on that loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import openai
import websocket
from websockets.asyncio.client import ClientConnection, connect

import llmkit
from bench.common import BenchError, ws_url

DELTA = "response.output_text.delta"
COMPLETED = "response.completed"
FAILED = ("error", "response.failed", "response.incomplete")
TIMEOUT = 120.0
# An asyncio run as a whole must end within this (websockets' `recv` has no timeout of its
# own); the slowest client reads 100,000 events in well under a minute.
RUN_TIMEOUT = 600.0
T = TypeVar("T")


class Consumer(ABC):
    """One way of reading a streamed response."""

    library: str  # "llmkit", "openai" or "floor"
    transport: str  # "http" or "websocket"
    flavour = "sync"  # "sync" or "async" (asyncio)

    @property
    def name(self) -> str:
        flavour = " async" if self.flavour == "async" else ""
        return f"{self.library}{flavour} {'HTTP' if self.transport == 'http' else 'WS'}"

    @abstractmethod
    def consume(self, model: str) -> int:
        """Stream one answer; the number of text deltas seen."""

    @abstractmethod
    def first_delta(self, model: str) -> float:
        """Seconds from just before sending to the first text delta (the rest is drained)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""


# -- llmkit ---------------------------------------------------------------------------------
class LlmkitConsumer(Consumer):
    library = "llmkit"

    def __init__(self, base_url: str, *, websocket: bool) -> None:
        self.transport = "websocket" if websocket else "http"
        self.provider = llmkit.Provider(
            api_key="bench",
            base_url=base_url,
            use_responses_api=True,
            websocket=websocket,
            max_retries=0,
            timeout=TIMEOUT,
        )
        self._models: dict[str, llmkit.LanguageModel] = {}

    def model(self, model_id: str) -> llmkit.LanguageModel:
        if model_id not in self._models:
            self._models[model_id] = self.provider.language_model(model_id)
        return self._models[model_id]

    def consume(self, model: str) -> int:
        deltas = 0
        with self.model(model).stream(llmkit.Call("x")) as stream:
            for part in stream:
                if isinstance(part, llmkit.TextDelta):
                    deltas += 1
        _check_transport(self, stream.response)
        return deltas

    def first_delta(self, model: str) -> float:
        first = None
        start = time.perf_counter()
        with self.model(model).stream(llmkit.Call("x")) as stream:
            for part in stream:
                if first is None and isinstance(part, llmkit.TextDelta):
                    first = time.perf_counter()
        _check_transport(self, stream.response)
        if first is None:
            raise BenchError(f"{self.name}: no text delta")
        return first - start

    def close(self) -> None:
        self.provider.close()


def _check_transport(consumer: Consumer, response: llmkit.Response) -> None:
    """The answer came over the consumer's transport (no silent fallback to HTTP)."""
    if response.metadata.transport != consumer.transport:
        reason = response.metadata.fallback_reason
        raise BenchError(f"{consumer.name} went over {response.metadata.transport}: {reason}")


# -- the official openai package -----------------------------------------------------------
class OpenAIHttpConsumer(Consumer):
    library = "openai"
    transport = "http"

    def __init__(self, base_url: str) -> None:
        self.client = openai.OpenAI(
            api_key="bench", base_url=base_url, max_retries=0, timeout=TIMEOUT
        )

    def _events(self, model: str) -> Any:
        return self.client.responses.create(model=model, input="x", store=False, stream=True)

    def consume(self, model: str) -> int:
        deltas = 0
        with self._events(model) as events:
            for event in events:
                if event.type == DELTA:
                    deltas += 1
                elif event.type in FAILED:
                    raise BenchError(f"{self.name}: {event.type}")
        return deltas

    def first_delta(self, model: str) -> float:
        first = None
        start = time.perf_counter()
        with self._events(model) as events:
            for event in events:
                if first is None and event.type == DELTA:
                    first = time.perf_counter()
        if first is None:
            raise BenchError(f"{self.name}: no text delta")
        return first - start

    def close(self) -> None:
        self.client.close()


class OpenAIWebSocketConsumer(Consumer):
    """`client.responses.connect()`: one connection, one `response.create` per answer."""

    library = "openai"
    transport = "websocket"

    def __init__(self, base_url: str) -> None:
        self.client = openai.OpenAI(
            api_key="bench", base_url=base_url, max_retries=0, timeout=TIMEOUT
        )
        self.connection = self.client.responses.connect().enter()

    def consume(self, model: str) -> int:
        deltas = 0
        self.connection.response.create(model=model, input="x", store=False)
        for event in self.connection:
            if event.type == DELTA:
                deltas += 1
            elif event.type == COMPLETED:
                return deltas
            elif event.type in FAILED:
                raise BenchError(f"{self.name}: {event.type}")
        raise BenchError(f"{self.name}: the connection ended")

    def first_delta(self, model: str) -> float:
        first = None
        start = time.perf_counter()
        self.connection.response.create(model=model, input="x", store=False)
        for event in self.connection:
            if first is None and event.type == DELTA:
                first = time.perf_counter()
            elif event.type == COMPLETED:
                break
            elif event.type in FAILED:
                raise BenchError(f"{self.name}: {event.type}")
        if first is None:
            raise BenchError(f"{self.name}: no text delta")
        return first - start

    def close(self) -> None:
        self.connection.close()
        self.client.close()


# -- the floor: socket reads and json.loads, nothing else ------------------------------------
class FloorHttpConsumer(Consumer):
    library = "floor"
    transport = "http"

    def __init__(self, base_url: str) -> None:
        self.url = f"{base_url}/responses"
        self.http = httpx.Client(timeout=TIMEOUT)
        self.headers = {"content-type": "application/json", "authorization": "Bearer bench"}

    def _post(self, model: str) -> Any:
        body = json.dumps({"model": model, "input": "x", "store": False, "stream": True})
        return self.http.stream("POST", self.url, content=body.encode(), headers=self.headers)

    def consume(self, model: str) -> int:
        deltas = 0
        with self._post(model) as response:
            buffer = b""
            for chunk in response.iter_raw():
                buffer += chunk
                *blocks, buffer = buffer.split(b"\n\n")
                for block in blocks:
                    event = json.loads(block[block.index(b"data: ") + 6 :])
                    if event["type"] == DELTA:
                        deltas += 1
        return deltas

    def first_delta(self, model: str) -> float:
        first = None
        start = time.perf_counter()
        with self._post(model) as response:
            buffer = b""
            for chunk in response.iter_raw():
                buffer += chunk
                *blocks, buffer = buffer.split(b"\n\n")
                for block in blocks:
                    event = json.loads(block[block.index(b"data: ") + 6 :])
                    if first is None and event["type"] == DELTA:
                        first = time.perf_counter()
        if first is None:
            raise BenchError(f"{self.name}: no text delta")
        return first - start

    def close(self) -> None:
        self.http.close()


class FloorWebSocketConsumer(Consumer):
    library = "floor"
    transport = "websocket"

    def __init__(self, base_url: str) -> None:
        self.ws = websocket.create_connection(
            ws_url(base_url),
            header=["Authorization: Bearer bench"],
            skip_utf8_validation=True,
            timeout=TIMEOUT,
        )

    def _send(self, model: str) -> None:
        create = {"type": "response.create", "model": model, "input": "x", "store": False}
        self.ws.send(json.dumps(create))

    def consume(self, model: str) -> int:
        deltas = 0
        self._send(model)
        while True:
            event = json.loads(self.ws.recv())
            kind = event["type"]
            if kind == DELTA:
                deltas += 1
            elif kind == COMPLETED:
                return deltas
            elif kind in FAILED:
                raise BenchError(f"{self.name}: {event}")

    def first_delta(self, model: str) -> float:
        first = None
        start = time.perf_counter()
        self._send(model)
        while True:
            event = json.loads(self.ws.recv())
            kind = event["type"]
            if first is None and kind == DELTA:
                first = time.perf_counter()
            elif kind == COMPLETED:
                break
            elif kind in FAILED:
                raise BenchError(f"{self.name}: {event}")
        if first is None:
            raise BenchError(f"{self.name}: no text delta")
        return first - start

    def close(self) -> None:
        self.ws.close()


def sync_consumers(base_url: str) -> list[Consumer]:
    """llmkit, openai and the floor, each over HTTP and over WebSocket (sync)."""
    return [
        LlmkitConsumer(base_url, websocket=False),
        LlmkitConsumer(base_url, websocket=True),
        OpenAIHttpConsumer(base_url),
        OpenAIWebSocketConsumer(base_url),
        FloorHttpConsumer(base_url),
        FloorWebSocketConsumer(base_url),
    ]


# -- asyncio ---------------------------------------------------------------------------------
class AsyncConsumer(Consumer):
    """A consumer for asyncio, on an event loop of its own kept for its whole life.

    The clients are bound to that loop (an `AsyncProvider` refuses another one), and
    keeping it keeps their connections warm between runs, as a sync consumer's stay. A run
    is one `asyncio.Runner.run` of a coroutine, bounded by `RUN_TIMEOUT`: the loop's start
    and stop per run cost microseconds, next to a run of 100,000 events.
    """

    flavour = "async"

    def __init__(self) -> None:
        self._runner = asyncio.Runner()
        self._run(self._open())

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        async def bounded() -> T:
            async with asyncio.timeout(RUN_TIMEOUT):
                return await coroutine

        try:
            return self._runner.run(bounded())
        except TimeoutError:
            raise BenchError(f"{self.name}: no answer in {RUN_TIMEOUT:g} s") from None

    async def _open(self) -> None:
        """Connect what needs a running loop (nothing by default)."""

    @abstractmethod
    async def _consume(self, model: str) -> int: ...

    @abstractmethod
    async def _first_delta(self, model: str) -> float: ...

    @abstractmethod
    async def _close(self) -> None: ...

    def consume(self, model: str) -> int:
        return self._run(self._consume(model))

    def first_delta(self, model: str) -> float:
        return self._run(self._first_delta(model))

    def close(self) -> None:
        try:
            self._run(self._close())
        finally:
            self._runner.close()


class AsyncLlmkitConsumer(AsyncConsumer):
    """`AsyncProvider`: `model.stream` entered with `async with`, iterated with `async for`."""

    library = "llmkit"

    def __init__(self, base_url: str, *, websocket: bool) -> None:
        self.transport = "websocket" if websocket else "http"
        self.provider = llmkit.AsyncProvider(
            api_key="bench",
            base_url=base_url,
            use_responses_api=True,
            websocket=websocket,
            max_retries=0,
            timeout=TIMEOUT,
        )
        self._models: dict[str, llmkit.AsyncLanguageModel] = {}
        super().__init__()

    def model(self, model_id: str) -> llmkit.AsyncLanguageModel:
        if model_id not in self._models:
            self._models[model_id] = self.provider.language_model(model_id)
        return self._models[model_id]

    async def _consume(self, model: str) -> int:
        deltas = 0
        async with self.model(model).stream(llmkit.Call("x")) as stream:
            async for part in stream:
                if isinstance(part, llmkit.TextDelta):
                    deltas += 1
        _check_transport(self, stream.response)
        return deltas

    async def _first_delta(self, model: str) -> float:
        first = None
        start = time.perf_counter()
        async with self.model(model).stream(llmkit.Call("x")) as stream:
            async for part in stream:
                if first is None and isinstance(part, llmkit.TextDelta):
                    first = time.perf_counter()
        _check_transport(self, stream.response)
        if first is None:
            raise BenchError(f"{self.name}: no text delta")
        return first - start

    async def _close(self) -> None:
        await self.provider.aclose()


class AsyncOpenAIHttpConsumer(AsyncConsumer):
    """`AsyncOpenAI`: `await client.responses.create(..., stream=True)`, `async for`."""

    library = "openai"
    transport = "http"

    def __init__(self, base_url: str) -> None:
        self.client = openai.AsyncOpenAI(
            api_key="bench", base_url=base_url, max_retries=0, timeout=TIMEOUT
        )
        super().__init__()

    async def _events(self, model: str) -> Any:
        return await self.client.responses.create(model=model, input="x", store=False, stream=True)

    async def _consume(self, model: str) -> int:
        deltas = 0
        async with await self._events(model) as events:
            async for event in events:
                if event.type == DELTA:
                    deltas += 1
                elif event.type in FAILED:
                    raise BenchError(f"{self.name}: {event.type}")
        return deltas

    async def _first_delta(self, model: str) -> float:
        first = None
        start = time.perf_counter()
        async with await self._events(model) as events:
            async for event in events:
                if first is None and event.type == DELTA:
                    first = time.perf_counter()
        if first is None:
            raise BenchError(f"{self.name}: no text delta")
        return first - start

    async def _close(self) -> None:
        await self.client.close()


class AsyncOpenAIWebSocketConsumer(AsyncConsumer):
    """`AsyncOpenAI.responses.connect()`: one connection, `await response.create(...)`."""

    library = "openai"
    transport = "websocket"

    def __init__(self, base_url: str) -> None:
        self.client = openai.AsyncOpenAI(
            api_key="bench", base_url=base_url, max_retries=0, timeout=TIMEOUT
        )
        super().__init__()

    async def _open(self) -> None:
        self.connection = await self.client.responses.connect().enter()

    async def _consume(self, model: str) -> int:
        deltas = 0
        await self.connection.response.create(model=model, input="x", store=False)
        async for event in self.connection:
            if event.type == DELTA:
                deltas += 1
            elif event.type == COMPLETED:
                return deltas
            elif event.type in FAILED:
                raise BenchError(f"{self.name}: {event.type}")
        raise BenchError(f"{self.name}: the connection ended")

    async def _first_delta(self, model: str) -> float:
        first = None
        start = time.perf_counter()
        await self.connection.response.create(model=model, input="x", store=False)
        async for event in self.connection:
            if first is None and event.type == DELTA:
                first = time.perf_counter()
            elif event.type == COMPLETED:
                break
            elif event.type in FAILED:
                raise BenchError(f"{self.name}: {event.type}")
        if first is None:
            raise BenchError(f"{self.name}: no text delta")
        return first - start

    async def _close(self) -> None:
        await self.connection.close()
        await self.client.close()


class AsyncFloorHttpConsumer(AsyncConsumer):
    """The asyncio floor over HTTP: `httpx.AsyncClient` stream, blank-line split, loads."""

    library = "floor"
    transport = "http"

    def __init__(self, base_url: str) -> None:
        self.url = f"{base_url}/responses"
        self.http = httpx.AsyncClient(timeout=TIMEOUT)
        self.headers = {"content-type": "application/json", "authorization": "Bearer bench"}
        super().__init__()

    def _post(self, model: str) -> Any:
        body = json.dumps({"model": model, "input": "x", "store": False, "stream": True})
        return self.http.stream("POST", self.url, content=body.encode(), headers=self.headers)

    async def _consume(self, model: str) -> int:
        deltas = 0
        async with self._post(model) as response:
            buffer = b""
            async for chunk in response.aiter_raw():
                buffer += chunk
                *blocks, buffer = buffer.split(b"\n\n")
                for block in blocks:
                    event = json.loads(block[block.index(b"data: ") + 6 :])
                    if event["type"] == DELTA:
                        deltas += 1
        return deltas

    async def _first_delta(self, model: str) -> float:
        first = None
        start = time.perf_counter()
        async with self._post(model) as response:
            buffer = b""
            async for chunk in response.aiter_raw():
                buffer += chunk
                *blocks, buffer = buffer.split(b"\n\n")
                for block in blocks:
                    event = json.loads(block[block.index(b"data: ") + 6 :])
                    if first is None and event["type"] == DELTA:
                        first = time.perf_counter()
        if first is None:
            raise BenchError(f"{self.name}: no text delta")
        return first - start

    async def _close(self) -> None:
        await self.http.aclose()


class AsyncFloorWebSocketConsumer(AsyncConsumer):
    """The asyncio floor over WebSocket: `websockets` `recv` (bytes, not decoded) + loads."""

    library = "floor"
    transport = "websocket"

    def __init__(self, base_url: str) -> None:
        self.url = ws_url(base_url)
        super().__init__()

    async def _open(self) -> None:
        # No compression, as llmkit's and openai's async transports (the same frames), and
        # no keepalive pings: the floor does nothing but read.
        self.ws: ClientConnection = await connect(
            self.url,
            additional_headers={"Authorization": "Bearer bench"},
            compression=None,
            open_timeout=TIMEOUT,
            ping_interval=None,
        )

    async def _send(self, model: str) -> None:
        create = {"type": "response.create", "model": model, "input": "x", "store": False}
        await self.ws.send(json.dumps(create))

    async def _consume(self, model: str) -> int:
        deltas = 0
        await self._send(model)
        while True:
            event = json.loads(await self.ws.recv(decode=False))
            kind = event["type"]
            if kind == DELTA:
                deltas += 1
            elif kind == COMPLETED:
                return deltas
            elif kind in FAILED:
                raise BenchError(f"{self.name}: {event}")

    async def _first_delta(self, model: str) -> float:
        first = None
        start = time.perf_counter()
        await self._send(model)
        while True:
            event = json.loads(await self.ws.recv(decode=False))
            kind = event["type"]
            if first is None and kind == DELTA:
                first = time.perf_counter()
            elif kind == COMPLETED:
                break
            elif kind in FAILED:
                raise BenchError(f"{self.name}: {event}")
        if first is None:
            raise BenchError(f"{self.name}: no text delta")
        return first - start

    async def _close(self) -> None:
        await self.ws.close()


def async_consumers(base_url: str) -> list[Consumer]:
    """The same six for asyncio: llmkit `AsyncProvider`, `openai.AsyncOpenAI`, the floor."""
    return [
        AsyncLlmkitConsumer(base_url, websocket=False),
        AsyncLlmkitConsumer(base_url, websocket=True),
        AsyncOpenAIHttpConsumer(base_url),
        AsyncOpenAIWebSocketConsumer(base_url),
        AsyncFloorHttpConsumer(base_url),
        AsyncFloorWebSocketConsumer(base_url),
    ]


def all_consumers(base_url: str) -> list[Consumer]:
    """Every consumer: the sync six, then the asyncio six."""
    return [*sync_consumers(base_url), *async_consumers(base_url)]
