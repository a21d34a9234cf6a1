"""The stream consumers compared by the throughput and first-token benchmarks.

Each consumer sends one Responses request for a model id (``bench-words-<N>``), reads the
whole answer and counts the `response.output_text.delta` events (or llmkit's
`TextDelta` parts) it saw. `first_delta` times a request from just before sending to the
first text delta, then drains the rest so the connection stays clean.

The floor is what any client must do at least: read the socket and `json.loads` each
event, with no SDK (httpx splitting SSE on blank lines; websocket-client `recv()`).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from typing import Any

import httpx
import openai
import websocket

import llmkit
from bench.common import BenchError, ws_url

DELTA = "response.output_text.delta"
COMPLETED = "response.completed"
FAILED = ("error", "response.failed", "response.incomplete")
TIMEOUT = 120.0


class Consumer(ABC):
    """One way of reading a streamed response."""

    library: str  # "llmkit", "openai" or "floor"
    transport: str  # "http" or "websocket"

    @property
    def name(self) -> str:
        return f"{self.library} {'HTTP' if self.transport == 'http' else 'WS'}"

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
        self._check(stream.response)
        return deltas

    def first_delta(self, model: str) -> float:
        first = None
        start = time.perf_counter()
        with self.model(model).stream(llmkit.Call("x")) as stream:
            for part in stream:
                if first is None and isinstance(part, llmkit.TextDelta):
                    first = time.perf_counter()
        self._check(stream.response)
        if first is None:
            raise BenchError(f"{self.name}: no text delta")
        return first - start

    def _check(self, response: llmkit.Response) -> None:
        expected = "websocket" if self.transport == "websocket" else "http"
        if response.metadata.transport != expected:
            reason = response.metadata.fallback_reason
            raise BenchError(f"{self.name} went over {response.metadata.transport}: {reason}")

    def close(self) -> None:
        self.provider.close()


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


def all_consumers(base_url: str) -> list[Consumer]:
    """llmkit, openai and the floor, each over HTTP and over WebSocket."""
    return [
        LlmkitConsumer(base_url, websocket=False),
        LlmkitConsumer(base_url, websocket=True),
        OpenAIHttpConsumer(base_url),
        OpenAIWebSocketConsumer(base_url),
        FloorHttpConsumer(base_url),
        FloorWebSocketConsumer(base_url),
    ]
