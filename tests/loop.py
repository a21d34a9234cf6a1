"""Shared helpers for model-level tests: providers over either transport, a tool loop."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from portal import PortalProvider

import llmkit
from llmkit.testing import ResponsesServer

PATHS = ["chat", "http", "websocket"]
"""How a provider reaches the server: Chat Completions over HTTP, or the Responses API
over HTTP or WebSocket mode. Agent code must run unchanged on each."""


class Transport(str):
    """One of `PATHS`, through `llmkit.Provider` or through `llmkit.AsyncProvider`.

    It equals its path (``Transport("websocket", is_async=True) == "websocket"``), so
    tests that branch on the path need not know which provider runs.
    """

    is_async: bool

    def __new__(cls, path: str, *, is_async: bool = False) -> Transport:
        self = super().__new__(cls, path)
        self.is_async = is_async
        return self

    @property
    def id(self) -> str:
        return f"async-{self}" if self.is_async else str(self)


TRANSPORTS = [Transport(path, is_async=a) for a in (False, True) for path in PATHS]
"""Every path, once through `Provider` and once through `AsyncProvider`."""
RESPONSES_TRANSPORTS = [t for t in TRANSPORTS if t != "chat"]
API_KEY = "sk-test-4f1c2b9e8d7a6c5b"

ADD = llmkit.FunctionTool(
    "add",
    "Add two integers.",
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)


def options(server: ResponsesServer, transport: str, **overrides: Any) -> dict[str, Any]:
    """The provider arguments for ``server`` over ``transport`` (a path of `PATHS`)."""
    return {
        "api_key": API_KEY,
        "max_retries": 0,
        "base_url": server.base_url,
        "use_responses_api": transport != "chat",
        "websocket": transport == "websocket",
        **overrides,
    }


def provider(
    server: ResponsesServer, transport: str, **overrides: Any
) -> llmkit.Provider | PortalProvider:
    """A provider for ``server`` over ``transport`` (one of `TRANSPORTS`, or a path).

    An async `Transport` gives an `AsyncProvider` driven through a `PortalProvider`.
    """
    settings = options(server, transport, **overrides)
    if getattr(transport, "is_async", False):
        return PortalProvider(**settings)
    return llmkit.Provider(**settings)


def async_provider(server: ResponsesServer, path: str, **overrides: Any) -> llmkit.AsyncProvider:
    """An `AsyncProvider` for ``server`` over ``path``, for tests that run their own loop."""
    return llmkit.AsyncProvider(**options(server, path, **overrides))


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds. For a state
    another thread (the server's) reaches, instead of sleeping a guessed time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s")
        time.sleep(0.005)


def idle_connections_closed(server: ResponsesServer) -> None:
    """Close the server's idle WebSocket connections and wait until it has (its close
    frame is then on the way: the client's probe finds it before the next send)."""
    assert server.faults.close_idle() >= 1
    wait_until(lambda: not any(c.open for c in server.stats.connections))


def run_tool(call: llmkit.ToolCall) -> llmkit.ToolResult:
    """Execute the ``add`` tool."""
    args = json.loads(call.arguments)
    return llmkit.ToolResult(call.call_id, str(args["a"] + args["b"]))


@dataclass
class Loop:
    """One conversation driven to its answer, turn by turn."""

    model: llmkit.LanguageModel
    steps: int
    history: list[llmkit.Message] = field(default_factory=list)
    responses: list[llmkit.Response] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.history:
            self.history.append(
                llmkit.UserMessage(f"Sum 1..{self.steps} with add [steps={self.steps}]")
            )

    @property
    def call(self) -> llmkit.Call:
        return llmkit.Call(self.history, tools=[ADD])

    def turn(self) -> llmkit.Response:
        """One model call; appends its message and tool results to the history."""
        response = self.model.generate(self.call)
        self.record(response)
        return response

    def record(self, response: llmkit.Response) -> None:
        self.responses.append(response)
        self.history.append(response.message)
        if response.tool_calls:
            self.history.append(llmkit.ToolMessage([run_tool(c) for c in response.tool_calls]))

    @property
    def done(self) -> bool:
        return bool(self.responses) and not self.responses[-1].tool_calls

    def run(self) -> llmkit.Response:
        """Turns until the model answers without calling a tool (bounded)."""
        for _ in range(self.steps + 2):
            response = self.turn()
            if not response.tool_calls:
                return response
        raise AssertionError("the tool loop did not finish")

    @property
    def expected_answer(self) -> str:
        return f"The answer is {self.steps * (self.steps + 1) // 2}."
