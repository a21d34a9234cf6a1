"""Shared helpers for model-level tests: providers over either transport, a tool loop."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import llmkit
from llmkit.testing import ResponsesServer

TRANSPORTS = ["chat", "http", "websocket"]
"""How a provider reaches the server: Chat Completions over HTTP, or the Responses API
over HTTP or WebSocket mode. Agent code must run unchanged on each."""
RESPONSES_TRANSPORTS = ["http", "websocket"]
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


def provider(server: ResponsesServer, transport: str, **options: Any) -> llmkit.Provider:
    """A provider for ``server`` over ``transport`` (one of `TRANSPORTS`)."""
    settings: dict[str, Any] = {"api_key": API_KEY, "max_retries": 0, **options}
    return llmkit.Provider(
        base_url=server.base_url,
        use_responses_api=transport != "chat",
        websocket=transport == "websocket",
        **settings,
    )


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
