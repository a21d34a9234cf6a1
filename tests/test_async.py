"""`AsyncProvider` in its own terms: awaited calls, ``async with``/``async for``,
cancellation and ``asyncio.timeout``, and the same answers as `Provider`.

The behaviour suite, the fault matrix and the concurrency suite already run on
`AsyncProvider` (through `tests/portal.py` and `tests/test_concurrency.py`); what is
tested here needs a test that is itself a coroutine: cancelling a task mid-stream,
timing a call out, leaving an ``async for`` early.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from loop import PATHS, async_provider, provider

import llmkit
from llmkit.testing import ResponsesServer

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")
SLOW = "bench-words-400"
"""A model that streams 400 words: with a token delay, long enough to interrupt."""


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main`` on a new event loop, bounded in time."""

    async def bounded() -> T:
        async with asyncio.timeout(30):
            return await main()

    return asyncio.run(bounded())


@llmkit.tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@llmkit.tool
async def async_add(a: int, b: int) -> int:
    """Add two integers."""
    await asyncio.sleep(0)
    return a + b


def eventually(predicate: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds, at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def prompt(steps: int) -> str:
    return f"Sum 1..{steps} with add [steps={steps}]"


def answer(steps: int) -> str:
    return f"The answer is {steps * (steps + 1) // 2}."


def shape(metadata: llmkit.ResponseMetadata) -> dict[str, Any]:
    """What two runs of the same loop must share: every field but ids and timings."""
    fields = dataclasses.asdict(metadata)
    for varying in ("response_id", "previous_response_id", "time_to_first_token", "duration"):
        fields[varying] = type(fields[varying]).__name__
    return fields


def calls(step: llmkit.ToolLoopStep) -> list[tuple[str, str, str, bool]]:
    """A step's tool calls and results, without the ids the server makes up."""
    return [
        (call.name, call.arguments, result.output, result.is_error)
        for call, result in zip(step.response.tool_calls, step.results, strict=True)
    ]


# --------------------------------------------------------------------------- the API


@pytest.mark.parametrize("path", PATHS)
def test_generate_stream_and_warmup_are_awaited(server: ResponsesServer, path: str) -> None:
    async def main() -> None:
        async with async_provider(server, path) as p:
            model = p.language_model("gpt-test")
            assert isinstance(model, llmkit.AsyncLanguageModel)
            warm = await model.warmup(llmkit.Call("hi"))
            assert warm.transport == ("websocket" if path == "websocket" else "http")
            response = await model.generate(llmkit.Call("hi"))
            async with model.stream(llmkit.Call("hi")) as stream:
                assert isinstance(stream, llmkit.AsyncStream)
                parts = [part async for part in stream]
            assert stream.finished
            assert stream.response.text == response.text
            assert isinstance(parts[-1], llmkit.Finish)
            assert await stream.until_done() == stream.response  # idempotent once done

    run(main)


@pytest.mark.parametrize("path", PATHS)
def test_the_parts_are_those_of_the_sync_provider(server: ResponsesServer, path: str) -> None:
    call = llmkit.Call(prompt(2), tools=[add.spec])
    with provider(server, path) as p, p.language_model("scripted").stream(call) as stream:
        sync_parts = [type(part).__name__ for part in stream]

    async def main() -> list[str]:
        async with (
            async_provider(server, path) as p,
            p.language_model("scripted").stream(call) as stream,
        ):
            return [type(part).__name__ async for part in stream]

    assert run(main) == sync_parts


def test_a_usage_error_is_raised_when_the_stream_is_made(server: ResponsesServer) -> None:
    async def main() -> None:
        async with async_provider(server, "chat") as p:
            model = p.language_model("gpt-test")
            bad = llmkit.Call("hi", provider_options={"openai": {"bogus": 1}})
            with pytest.raises(llmkit.UsageError):
                model.stream(bad)  # not awaited, not iterated: raised at once
            with pytest.raises(llmkit.UsageError):
                await model.warmup(bad)

    run(main)
    assert server.stats.requests == []


def test_the_response_of_an_unfinished_stream_is_a_usage_error(server: ResponsesServer) -> None:
    async def main() -> None:
        async with async_provider(server, "http") as p:
            stream = p.language_model("gpt-test").stream(llmkit.Call("hi"))
            with pytest.raises(llmkit.UsageError, match="has not finished"):
                _ = stream.response
            await stream.aclose()  # never iterated: nothing was sent

    run(main)
    assert server.stats.requests == []


def test_the_provider_repr_and_settings_match_provider() -> None:
    options: dict[str, Any] = {
        "base_url": "http://127.0.0.1:9/v1?token=sk-hidden-1234567890",
        "api_key": "sk-hidden-1234567890",
        "use_responses_api": True,
        "websocket": True,
    }
    sync, asynchronous = llmkit.Provider(**options), llmkit.AsyncProvider(**options)
    try:
        assert repr(asynchronous) == repr(sync).replace("Provider(", "AsyncProvider(", 1)
        assert "sk-hidden" not in repr(asynchronous)
        with pytest.raises(llmkit.UsageError, match="use_responses_api=True"):
            llmkit.AsyncProvider(websocket=True)
        with pytest.raises(llmkit.UsageError, match="model_id"):
            asynchronous.language_model("")
    finally:
        sync.close()
        run(asynchronous.aclose)


def test_a_callers_async_client_is_left_open(server: ResponsesServer) -> None:
    async def main() -> None:
        import httpx

        async with httpx.AsyncClient() as client:
            async with async_provider(server, "http", http_client=client) as p:
                await p.language_model("gpt-test").generate(llmkit.Call("hi"))
            assert not client.is_closed

    run(main)


# --------------------------------------------------------------------------- tool loops


@pytest.mark.parametrize("path", PATHS)
def test_the_same_tool_loop_gives_identical_answers_and_metadata_shapes(
    server: ResponsesServer, path: str
) -> None:
    """Acceptance: `ToolLoop` on `Provider` and `AsyncToolLoop` on `AsyncProvider`."""
    with provider(server, path) as p:
        sync = llmkit.ToolLoop(p.language_model("scripted"), [add], warmup=True).run(prompt(5))

    async def main() -> llmkit.ToolLoopResult:
        async with async_provider(server, path) as p:
            loop = llmkit.AsyncToolLoop(p.language_model("scripted"), [add], warmup=True)
            return await loop.run(prompt(5))

    result = run(main)
    assert result.finished and sync.finished
    assert result.text.startswith(answer(5))
    assert result.text == sync.text
    assert [calls(s) for s in result.steps] == [calls(s) for s in sync.steps]
    assert [shape(s.metadata) for s in result.steps] == [shape(s.metadata) for s in sync.steps]
    assert result.warmup is not None and sync.warmup is not None
    assert result.warmup.transport == sync.warmup.transport
    assert result.warmup.usage == sync.warmup.usage
    assert server.stats.context_violations == 0
    if path == "websocket":  # the point of WebSocket mode, on both providers
        modes = [s.metadata.input_mode for s in result.steps]
        assert modes == ["incremental"] * len(result.steps)  # the warm-up was turn one


def test_the_async_tool_loop_awaits_async_tools_and_reports_their_failures(
    server: ResponsesServer,
) -> None:
    @llmkit.tool
    async def broken(a: int, b: int) -> int:
        """Add two integers, badly."""
        raise RuntimeError("out of order")

    async def main() -> tuple[llmkit.ToolLoopResult, llmkit.ToolLoopResult]:
        async with async_provider(server, "websocket") as p:
            model = p.language_model("scripted")
            good = await llmkit.AsyncToolLoop(model, [async_add]).run(prompt(3))
            bad = await llmkit.AsyncToolLoop(model, [broken], max_steps=2).run(prompt(3))
            return good, bad

    good, bad = run(main)
    assert good.text.startswith(answer(3))
    (result,) = bad.steps[0].results
    assert result.is_error and result.output == "Error: RuntimeError: out of order"


def test_the_sync_tool_loop_refuses_an_async_tool(server: ResponsesServer) -> None:
    with provider(server, "http") as p, pytest.raises(llmkit.UsageError, match="AsyncToolLoop"):
        llmkit.ToolLoop(p.language_model("scripted"), [async_add])


# --------------------------------------------------------------------------- cancellation


async def first_delta(stream: llmkit.AsyncStream) -> None:
    async for part in stream:
        if isinstance(part, llmkit.TextDelta):
            return


@pytest.mark.parametrize("lanes", [True, False])
def test_cancelling_a_websocket_stream_drops_its_chain_and_its_lane_or_connection(
    server: ResponsesServer, lanes: bool
) -> None:
    """Cancellation is an abandoned stream like any other: its chain goes, and its lane
    drains (lanes) or its connection is closed (one response at a time); either way it
    is given back (one connection in the pool, so a leak would hang)."""
    server.token_delay = 0.005
    history: list[llmkit.Message] = [llmkit.UserMessage("Say many words")]
    metadata: list[llmkit.ResponseMetadata] = []

    async def main() -> None:
        async with async_provider(
            server, "websocket", ws_max_connections=1, timeout=5, ws_lanes=lanes
        ) as p:
            model = p.language_model(SLOW)
            first = await model.generate(llmkit.Call(history))
            history.extend([first.message, llmkit.UserMessage("More")])
            stream = model.stream(llmkit.Call(history))
            task = asyncio.create_task(first_delta(stream))
            await task  # the second turn is streaming now, on the chained connection
            consuming = asyncio.Event()

            async def consume() -> None:
                async for _ in stream:
                    consuming.set()

            cut = asyncio.create_task(consume())
            await asyncio.wait_for(consuming.wait(), 5)  # mid-stream, waiting for frames
            cut.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cut
            again = await model.generate(llmkit.Call(history))  # the turn, from history
            metadata.extend([first.metadata, again.metadata])

    run(main)
    first, again = metadata
    assert first.transport == again.transport == "websocket"
    assert again.input_mode == "full"  # the chain went with the lane or connection
    assert server.stats.context_violations == 0
    if lanes:  # the other lanes would have gone on: the socket stays
        assert again.connection_reused is True
        assert server.stats.connections_opened == 1
        return
    assert again.connection_reused is False
    assert server.stats.connections_opened == 2
    # The cancelled turn's connection was closed (the server notices it a moment later).
    assert eventually(lambda: not server.stats.connections[0].open)
    assert [r.status for r in server.stats.requests][-1] == "completed"


@pytest.mark.parametrize("transport", PATHS)
def test_asyncio_timeout_ends_a_call_and_the_next_one_is_correct(
    server: ResponsesServer, transport: str
) -> None:
    server.token_delay = 0.005
    answers: list[str] = []

    async def main() -> None:
        async with async_provider(server, transport, ws_max_connections=1, timeout=5) as p:
            slow, quick = p.language_model(SLOW), p.language_model("scripted")
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await slow.generate(llmkit.Call("Say many words"))
            assert time.monotonic() - started < 5  # ended by the timeout, not the stream
            server.token_delay = 0.0
            loop = llmkit.AsyncToolLoop(quick, [add])
            answers.append((await loop.run(prompt(3))).text)

    run(main)
    assert answers[0].startswith(answer(3))
    assert server.stats.context_violations == 0


@pytest.mark.parametrize("lanes", [True, False])
@pytest.mark.parametrize("path", PATHS)
def test_leaving_an_async_for_early_releases_the_connection(
    server: ResponsesServer, path: str, lanes: bool
) -> None:
    server.token_delay = 0.002
    options = {"ws_lanes": lanes} if path == "websocket" else {}

    async def main() -> str:
        async with async_provider(server, path, ws_max_connections=1, timeout=5, **options) as p:
            model = p.language_model(SLOW)
            for _ in range(3):  # one connection: an unreleased lease would time out
                async with model.stream(llmkit.Call("Say many words")) as stream:
                    await first_delta(stream)
            return (await p.language_model("gpt-test").generate(llmkit.Call("hi"))).text

    assert run(main).startswith("Echo: hi")
    if path == "websocket":  # each abandoned turn's lane drained, or its socket closed
        assert server.stats.connections_opened == (1 if lanes else 4)
        assert server.stats.context_violations == 0


def test_an_error_mid_stream_carries_the_partial_response(server: ResponsesServer) -> None:
    server.faults.drop_after(5)

    async def main() -> llmkit.LLMKitError:
        async with async_provider(server, "websocket") as p:
            with pytest.raises(llmkit.ConnectionClosed) as caught:
                await p.language_model(SLOW).generate(llmkit.Call("Say many words"))
            return caught.value

    error = run(main)
    assert error.partial is not None
    assert error.partial.text  # the words that arrived
    assert error.partial.metadata.transport == "websocket"
    assert error.partial.metadata.response_id is not None


def test_aclose_closes_every_websocket_connection(server: ResponsesServer) -> None:
    async def main() -> None:
        p = async_provider(server, "websocket", ws_max_connections=3, ws_lanes=False)
        model = p.language_model("gpt-test")
        await asyncio.gather(*(model.generate(llmkit.Call(f"hi {i}")) for i in range(3)))
        assert server.stats.connections_opened == 3
        await p.aclose()

    run(main)
    assert eventually(lambda: not any(c.open for c in server.stats.connections))


def test_a_rejected_upgrade_falls_back_to_http_and_says_so(server: ResponsesServer) -> None:
    server.faults.reject_upgrades(status=503)

    async def main() -> list[llmkit.ResponseMetadata]:
        async with async_provider(server, "websocket", ws_cooldown=0.1) as p:
            model = p.language_model("gpt-test")
            first = await model.generate(llmkit.Call("hi"))
            await asyncio.sleep(0.15)  # the cool-down passes
            second = await model.generate(llmkit.Call("hi"))
            return [first.metadata, second.metadata]

    first, second = run(main)
    assert first.transport == "http"
    assert first.fallback_reason == "the WebSocket upgrade was rejected with status 503"
    assert second.transport == "websocket" and second.fallback_reason is None
    assert server.stats.generations == 2  # the fallback did not bill twice


def test_the_async_tool_loop_streams_parts_and_reports_steps(server: ResponsesServer) -> None:
    parts: list[llmkit.StreamPart] = []
    steps: list[int] = []

    async def main() -> llmkit.ToolLoopResult:
        async with async_provider(server, "websocket") as p:
            loop = llmkit.AsyncToolLoop(p.language_model("scripted"), [add])
            return await loop.run(
                prompt(2), on_part=parts.append, on_step=lambda s: steps.append(s.number)
            )

    result = run(main)
    assert result.text.startswith(answer(2))
    assert steps == [1, 2, 3]
    assert sum(isinstance(part, llmkit.Finish) for part in parts) == 3
    assert sum(isinstance(part, llmkit.ToolCall) for part in parts) == 2
