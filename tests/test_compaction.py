"""Server-side compaction through llmkit, on every Responses path (tier 3, loopback).

A 30-step tool loop whose tools return bulky results passes a 1,000-token threshold
again and again: the local server compacts five times. The loop must stay correct on
HTTP (full input every turn, compaction items replayed verbatim) and in WebSocket mode
(deltas chained on a head that holds the compacted context; after a reconnect, the
full input with its compaction items), through `Provider` and `AsyncProvider`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from loop import RESPONSES_TRANSPORTS, Transport, async_provider, idle_connections_closed, provider

import llmkit
from llmkit.testing import ResponsesServer

COMPACT = {"openai": {"context_management": [{"type": "compaction", "compact_threshold": 1000}]}}
PROMPT = "Sum 1..30 with add [steps=30]"
ANSWER = "The answer is 465. [user=1 assistant=0 tool_outputs=30 items=61 compactions=5]"
COMPACTED_STEPS = [8, 14, 20, 25, 30]
"""The steps whose response began with a compaction item (a function of the token rule)."""


@llmkit.tool
def add(a: int, b: int) -> str:
    """Add two integers (the result padded, so that the context grows quickly)."""
    return str(a + b).ljust(400)


def compaction_items(message: llmkit.AssistantMessage) -> list[llmkit.ProviderItemPart]:
    return [
        p
        for p in message.parts
        if isinstance(p, llmkit.ProviderItemPart) and p.item_type == "compaction"
    ]


def check_run(result: llmkit.ToolLoopResult, server: ResponsesServer, parts: list[Any]) -> None:
    assert result.finished and result.text == ANSWER
    assert len(result.steps) == 31
    compacted = [s.number for s in result.steps if compaction_items(s.response.message)]
    assert compacted == COMPACTED_STEPS
    assert [r.compacted for r in server.stats.requests] == [
        n in COMPACTED_STEPS for n in range(1, 32)
    ]
    starts = [p for p in parts if isinstance(p, llmkit.CompactionStart)]
    items = [p for p in parts if isinstance(p, llmkit.ProviderItemPart)]
    assert [s.id for s in starts] == [i.id for i in items] and len(starts) == 5
    assert server.stats.compactions == 5
    assert server.stats.context_violations == 0


@pytest.mark.parametrize("transport", RESPONSES_TRANSPORTS)
def test_a_thirty_step_tool_loop_with_compaction_stays_correct(
    server: ResponsesServer, transport: Transport
) -> None:
    server.record_bodies = True
    parts: list[Any] = []
    with provider(server, transport) as p:
        loop = llmkit.ToolLoop(p.language_model("gpt-test"), [add], max_steps=40)
        result = loop.run(llmkit.Call(PROMPT, provider_options=COMPACT), on_part=parts.append)
    check_run(result, server, parts)
    bodies = [r.body or {} for r in server.stats.requests]
    if transport == "websocket":
        assert [s.metadata.input_mode for s in result.steps] == ["full"] + ["incremental"] * 30
        assert all(len(b["input"]) == 1 for b in bodies)
        return
    # Full input every turn: each compaction item so far, verbatim, in its place.
    sent = [[i for i in b["input"] if i.get("type") == "compaction"] for b in bodies]
    made = [dict(i.item) for s in result.steps for i in compaction_items(s.response.message)]
    assert sent == [made[: sum(n < step for n in COMPACTED_STEPS)] for step in range(1, 32)]


@pytest.mark.parametrize("transport", [t for t in RESPONSES_TRANSPORTS if t == "websocket"])
def test_after_a_reconnect_the_full_input_carries_the_compaction_items(
    server: ResponsesServer, transport: Transport
) -> None:
    """A lost head (the connection closed between steps 15 and 16) means a full resend:
    the history's compaction items stand for what they replaced, and the chain resumes."""
    parts: list[Any] = []

    def on_step(step: llmkit.ToolLoopStep) -> None:
        if step.number == 15:
            idle_connections_closed(server)

    with provider(server, transport) as p:
        loop = llmkit.ToolLoop(p.language_model("gpt-test"), [add], max_steps=40)
        call = llmkit.Call(PROMPT, provider_options=COMPACT)
        result = loop.run(call, on_part=parts.append, on_step=on_step)
    check_run(result, server, parts)
    modes = [s.metadata.input_mode for s in result.steps]
    assert modes == ["full"] + ["incremental"] * 14 + ["full"] + ["incremental"] * 15


@pytest.mark.parametrize("path", ["http", "websocket"])
def test_async_tool_loop_with_compaction(server: ResponsesServer, path: str) -> None:
    parts: list[Any] = []

    async def main() -> llmkit.ToolLoopResult:
        async with async_provider(server, path) as p:
            loop = llmkit.AsyncToolLoop(p.language_model("gpt-test"), [add], max_steps=40)
            call = llmkit.Call(PROMPT, provider_options=COMPACT)
            return await loop.run(call, on_part=parts.append)

    check_run(asyncio.run(main()), server, parts)


def test_chat_completions_has_no_compaction(server: ResponsesServer) -> None:
    with (
        provider(server, "chat") as p,
        pytest.raises(llmkit.UsageError, match="context_management"),
    ):
        p.language_model("gpt-test").generate(llmkit.Call("hi", provider_options=COMPACT))
