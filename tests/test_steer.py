"""Steering a running response (``Stream.steer``, ``ToolLoop.steer``) against the local
server, over real sockets: `Provider` and `AsyncProvider` (through the portal), lanes on
and off (issue 18's acceptance).

What every test checks, whatever the server's timing: the steer input is either in the
conversation where the server put it (`Response.messages`) or handed back
(`Stream.unapplied_steers`, `SteerError.input`), never lost; the server made one billable
generation per response; and the next turn of the conversation is incremental on the
last response and gets a correct answer (no context violation).

`Faults.hold_for_steer` pauses a response after its first delta until a steer is
answered, so a steer sent on the first delta stops the response mid-answer without any
timing in the test.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
from loop import RESPONSES_TRANSPORTS, TRANSPORTS, Transport, async_provider, provider

import llmkit
from llmkit.testing import ResponsesServer

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")

WEBSOCKET = [t for t in TRANSPORTS if t == "websocket"]
NOT_WEBSOCKET = [t for t in TRANSPORTS if t != "websocket"]
STEER = "Also mention dogs"


@pytest.fixture(params=WEBSOCKET, ids=lambda t: t.id)
def transport(request: pytest.FixtureRequest) -> Transport:
    value: Transport = request.param
    return value


@pytest.fixture(params=[True, False], ids=["lanes", "no-lanes"])
def lanes(request: pytest.FixtureRequest) -> bool:
    value: bool = request.param
    return value


@pytest.fixture
def model(
    server: ResponsesServer, transport: Transport, lanes: bool
) -> Iterator[llmkit.LanguageModel]:
    with provider(server, transport, ws_lanes=lanes) as p:
        yield p.language_model("gpt-test")


def steer_on_first_delta(stream: llmkit.Stream, *inputs: str) -> list[llmkit.StreamPart]:
    """Iterate ``stream``, steering with ``inputs`` at its first text delta."""
    parts: list[llmkit.StreamPart] = []
    for part in stream:
        parts.append(part)
        if (
            isinstance(part, llmkit.TextDelta)
            and len([p for p in parts if isinstance(p, llmkit.TextDelta)]) == 1
        ):
            for text in inputs:
                stream.steer(text)
    return parts


def next_turn_is_exact(
    server: ResponsesServer,
    model: llmkit.LanguageModel,
    history: list[llmkit.Message],
    last: str | None,
    tools: tuple[llmkit.FunctionTool, ...] = (),
) -> llmkit.Response:
    """The next turn of ``history``: incremental on ``last``, and the server saw no
    context violation (its history equals the caller's)."""
    history = [*history, llmkit.UserMessage("next")]
    response = model.generate(llmkit.Call(history, tools=tools))
    assert response.metadata.input_mode == "incremental"
    assert response.metadata.previous_response_id == last
    assert response.tool_calls or response.text.startswith("Echo: next")
    assert all(record.violations == 0 for record in server.stats.requests)
    return response


def test_steering_mid_answer_continues_in_the_successor(
    server: ResponsesServer, model: llmkit.LanguageModel
) -> None:
    server.faults.hold_for_steer()
    history: list[llmkit.Message] = [llmkit.UserMessage("tell me a story")]
    with model.stream(llmkit.Call(history)) as stream:
        parts = steer_on_first_delta(stream, STEER)
    response = stream.response
    steered = [p for p in parts if isinstance(p, llmkit.Steered)]
    assert len(steered) == 1
    assert steered[0].input == (llmkit.UserMessage(STEER),)
    records = server.stats.requests
    first, successor = records[0], records[1]
    assert first.status == "incomplete" and successor.successor_of == first.response_id
    assert steered[0].previous_response_id == first.response_id
    assert steered[0].response_id == successor.response_id == response.id
    # The successor's answer reflects the steer; the first answer stopped after one delta.
    assert response.text.endswith(f"Echo: {STEER} [user=2 assistant=1 tool_outputs=0 items=3]")
    first_part, steer_input, answer = response.messages
    assert isinstance(first_part, llmkit.AssistantMessage)
    assert llmkit.Response(content=first_part.parts).text == "Echo:"
    assert steer_input == llmkit.UserMessage(STEER)
    assert isinstance(answer, llmkit.AssistantMessage)
    assert response.finish_reason is llmkit.FinishReason.STOP
    assert response.usage.output_tokens == steered[0].usage.output_tokens + 8
    assert server.stats.generations == 2  # one per response the server made
    assert stream.unapplied_steers == ()
    next_turn_is_exact(server, model, [*history, *response.messages], response.id)
    assert server.stats.generations == 3


def test_a_steer_given_before_the_response_started_waits_for_it(
    server: ResponsesServer, model: llmkit.LanguageModel
) -> None:
    server.faults.hold_for_steer()
    history: list[llmkit.Message] = [llmkit.UserMessage("tell me a story")]
    with model.stream(llmkit.Call(history)) as stream:
        stream.steer(llmkit.UserMessage([llmkit.TextPart(STEER)]))  # nothing sent yet
        parts = list(stream)
    assert any(isinstance(p, llmkit.Steered) for p in parts)
    response = stream.response
    assert f"Echo: {STEER}" in response.text
    next_turn_is_exact(server, model, [*history, *response.messages], response.id)


def test_steering_twice(server: ResponsesServer, model: llmkit.LanguageModel) -> None:
    server.faults.hold_for_steer()
    history: list[llmkit.Message] = [llmkit.UserMessage("tell me a story")]
    with model.stream(llmkit.Call(history)) as stream:
        parts = steer_on_first_delta(stream, "first steer", "second steer")
    response = stream.response
    applied = [m for m in response.messages if isinstance(m, llmkit.UserMessage)]
    given = [llmkit.UserMessage("first steer"), llmkit.UserMessage("second steer")]
    assert applied + list(stream.unapplied_steers) == given  # each once, nothing lost
    assert applied, "at least the first steer is applied"
    successors = len([p for p in parts if isinstance(p, llmkit.Steered)])
    users, items = 1 + len(applied), 1 + len(applied) + successors
    counts = f"[user={users} assistant={successors} tool_outputs=0 items={items}]"
    assert response.text.endswith(counts)
    assert server.stats.generations == 1 + successors
    next_turn_is_exact(server, model, [*history, *response.messages], response.id)


def test_a_steer_racing_the_end_is_applied_or_handed_back(
    server: ResponsesServer, model: llmkit.LanguageModel
) -> None:
    history: list[llmkit.Message] = [llmkit.UserMessage("short")]
    with model.stream(llmkit.Call(history)) as stream:
        for part in stream:
            if isinstance(part, llmkit.TextEnd):
                stream.steer(STEER)  # the server may have completed already
    response = stream.response
    if stream.unapplied_steers:
        assert stream.unapplied_steers == (llmkit.UserMessage(STEER),)
        assert response.messages == (response.message,)
    else:
        assert llmkit.UserMessage(STEER) in response.messages
        assert f"Echo: {STEER}" in response.text
    next_turn_is_exact(server, model, [*history, *response.messages], response.id)


def test_steering_after_completion_hands_the_input_back(
    server: ResponsesServer, model: llmkit.LanguageModel
) -> None:
    with model.stream("hello") as stream:
        stream.until_done()
    with pytest.raises(llmkit.SteerError) as caught:
        stream.steer(STEER)
    assert caught.value.code == "response_already_completed"
    assert caught.value.input == (llmkit.UserMessage(STEER),)
    assert server.stats.steers == 0


def test_a_model_without_steering_refuses_with_the_input(
    server: ResponsesServer, model: llmkit.LanguageModel
) -> None:
    server.steering = False
    server.faults.hold_for_steer()
    history: list[llmkit.Message] = [llmkit.UserMessage("tell me a story")]
    again: list[llmkit.SteerError] = []
    with model.stream(llmkit.Call(history)) as stream:
        parts = []
        for part in steer_on_first_delta(stream, STEER):
            parts.append(part)
        failed = [p for p in parts if isinstance(p, llmkit.SteerFailed)]
    assert len(failed) == 1
    assert failed[0].error.code == "steering_not_supported"
    assert failed[0].error.input == (llmkit.UserMessage(STEER),)
    assert stream.unapplied_steers == (llmkit.UserMessage(STEER),)
    response = stream.response
    assert response.text == "Echo: tell me a story [user=1 assistant=0 tool_outputs=0 items=1]"
    assert response.messages == (response.message,)
    assert server.stats.generations == 1
    del again
    next_turn_is_exact(server, model, [*history, *response.messages], response.id)


def test_a_refused_model_refuses_the_next_steer_at_once(
    server: ResponsesServer, model: llmkit.LanguageModel
) -> None:
    server.steering = False
    server.faults.hold_for_steer()
    raised: list[llmkit.SteerError] = []
    with model.stream("tell me a story") as stream:
        for part in stream:
            if (
                isinstance(part, llmkit.TextDelta)
                and not raised
                and server.stats.steers_failed == 0
            ):
                stream.steer(STEER)
            if isinstance(part, llmkit.SteerFailed):
                with pytest.raises(llmkit.SteerError) as caught:
                    stream.steer("again")
                raised.append(caught.value)
    assert raised and raised[0].code == "steering_not_supported"
    assert raised[0].input == (llmkit.UserMessage("again"),)
    assert server.stats.steers_failed == 1


def test_a_dropped_socket_right_after_steer_loses_no_input(
    server: ResponsesServer, model: llmkit.LanguageModel
) -> None:
    server.faults.hold_for_steer()
    server.faults.drop_after(5)  # created, in_progress, item, part, the first delta
    with (
        model.stream("tell me a story") as stream,
        pytest.raises(llmkit.ConnectionClosed) as caught,
    ):
        steer_on_first_delta(stream, STEER)
    assert caught.value.partial is not None and caught.value.partial.text == "Echo:"
    assert stream.unapplied_steers == (llmkit.UserMessage(STEER),)
    assert model.generate("again").text.startswith("Echo: again")


def test_an_abandoned_steered_stream_drains_its_lane(
    server: ResponsesServer, model: llmkit.LanguageModel
) -> None:
    server.faults.hold_for_steer()
    seen = []
    with model.stream("tell me a story") as stream:
        for part in stream:
            seen.append(part)
            if isinstance(part, llmkit.TextDelta):
                stream.steer(STEER)
                break  # closed at once: the successor's frames are drained, not read
    assert stream.unapplied_steers == (llmkit.UserMessage(STEER),), (seen, server.stats.requests)
    for text in ("one", "two", "three"):
        assert model.generate(text).text.startswith(f"Echo: {text} ")


def test_a_tool_loop_steered_while_a_tool_call_is_pending(
    server: ResponsesServer, model: llmkit.LanguageModel
) -> None:
    server.record_bodies = True
    server.faults.hold_for_steer()

    @llmkit.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    loop = llmkit.ToolLoop(model, [add], max_steps=5)
    seen: list[llmkit.StreamPart] = []

    def on_part(part: llmkit.StreamPart) -> None:
        seen.append(part)
        if isinstance(part, llmkit.ToolInputDelta) and len(seen) == 2:
            loop.steer("Use small numbers")

    result = loop.run("Add 1 and 2 [steps=2]", on_part=on_part)
    pending = [p for p in seen if isinstance(p, llmkit.SteerPending)]
    assert len(pending) == 1 and pending[0].input == (llmkit.UserMessage("Use small numbers"),)
    call = result.steps[0].response.tool_calls[0]
    assert pending[0].required == (call.call_id,)
    kinds = [type(m).__name__ for m in result.history]
    assert kinds == [
        "UserMessage",
        "AssistantMessage",
        "UserMessage",
        "ToolMessage",
        "AssistantMessage",
    ]
    assert result.history[2] == llmkit.UserMessage("Use small numbers")
    # The tool results went alone; the server put the steer input before them.
    second = server.stats.requests[1].body
    assert second is not None
    assert [item["type"] for item in second["input"]] == ["function_call_output"]
    assert result.text == "The answer is 1. [user=2 assistant=0 tool_outputs=1 items=4]"
    assert server.stats.generations == 2
    assert loop.pending_steers == ()
    next_turn_is_exact(server, model, list(result.history), result.response.id, (add.spec,))


def test_a_tool_loop_steered_while_its_tool_runs_takes_it_next(
    server: ResponsesServer, model: llmkit.LanguageModel
) -> None:
    holder: list[llmkit.ToolLoop] = []

    @llmkit.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        if len(holder) == 1:  # no response runs now: the next request takes it
            holder[0].steer("and say hello")
            holder.append(holder[0])
        return a + b

    loop = llmkit.ToolLoop(model, [add], max_steps=5)
    holder.append(loop)
    result = loop.run("Add 1 and 2")
    kinds = [type(m).__name__ for m in result.history[:4]]
    assert kinds == ["UserMessage", "AssistantMessage", "ToolMessage", "UserMessage"]
    assert result.history[3] == llmkit.UserMessage("and say hello")
    assert result.history.count(llmkit.UserMessage("and say hello")) == 1
    # The model read the steer: a new user turn, so it called the tool again (step 1).
    assert result.steps[1].response.tool_calls[0].arguments == '{"a":0,"b":1}'
    assert result.steps[1].response.metadata.input_mode == "incremental"
    assert all(record.violations == 0 for record in server.stats.requests)


def test_a_tool_loop_answers_a_steer_its_last_step_refused(
    server: ResponsesServer, model: llmkit.LanguageModel
) -> None:
    server.steering = False
    server.faults.hold_for_steer()
    loop = llmkit.ToolLoop(model, [], max_steps=3)

    def on_part(part: llmkit.StreamPart) -> None:
        if (
            isinstance(part, llmkit.TextDelta)
            and not loop.steps
            and server.stats.steers_failed == 0
        ):
            loop.steer(STEER)

    result = loop.run("tell me a story", on_part=on_part)
    assert len(result.steps) == 2  # the refused input got a step of its own
    assert result.history[2] == llmkit.UserMessage(STEER)
    assert result.text.startswith(f"Echo: {STEER}")


def test_a_tool_loop_steered_from_another_thread(
    server: ResponsesServer, model: llmkit.LanguageModel
) -> None:
    server.faults.hold_for_steer()
    loop = llmkit.ToolLoop(model, [], max_steps=3)
    started = threading.Event()
    done = threading.Event()

    def on_part(part: llmkit.StreamPart) -> None:
        if isinstance(part, llmkit.TextDelta) and not started.is_set():
            started.set()
            assert done.wait(10)

    def steer() -> None:
        assert started.wait(10)
        loop.steer(STEER)
        done.set()

    thread = threading.Thread(target=steer)
    thread.start()
    result = loop.run("tell me a story", on_part=on_part)
    thread.join(10)
    assert llmkit.UserMessage(STEER) in result.history
    assert f"Echo: {STEER}" in result.text
    assert all(record.violations == 0 for record in server.stats.requests)


@pytest.mark.parametrize("path", NOT_WEBSOCKET, ids=lambda t: t.id)
def test_steer_is_a_usage_error_over_http_and_chat(
    server: ResponsesServer, path: Transport
) -> None:
    with provider(server, path) as p, p.language_model("gpt-test").stream("hi") as stream:
        with pytest.raises(llmkit.UsageError, match="WebSocket"):
            stream.steer(STEER)
        assert stream.until_done().text.startswith("Echo: hi")
        assert stream.unapplied_steers == ()


@pytest.mark.parametrize("path", RESPONSES_TRANSPORTS, ids=lambda t: t.id)
@pytest.mark.parametrize(
    "value", [[], [llmkit.ToolMessage(llmkit.ToolResult("c", "x"))], 3, {"role": "user"}]
)
def test_steer_takes_user_messages_only(
    server: ResponsesServer, path: Transport, value: object
) -> None:
    with provider(server, path) as p, p.language_model("gpt-test").stream("hi") as stream:
        with pytest.raises(llmkit.UsageError, match="UserMessage"):
            stream.steer(value)  # type: ignore[arg-type]
        stream.until_done()


# -- asyncio in its own terms: awaited steers, from another task -------------------------


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(30):
            return await main()

    return asyncio.run(bounded())


@pytest.mark.parametrize("lanes", [True, False], ids=["lanes", "no-lanes"])
def test_an_async_stream_is_steered_from_another_task(server: ResponsesServer, lanes: bool) -> None:
    server.faults.hold_for_steer()

    async def main() -> llmkit.Response:
        async with async_provider(server, "websocket", ws_lanes=lanes) as p:
            model = p.language_model("gpt-test")
            first_delta = asyncio.Event()
            async with model.stream("tell me a story") as stream:

                async def steer() -> None:
                    await first_delta.wait()
                    await stream.steer(STEER)

                task = asyncio.create_task(steer())
                async for part in stream:
                    if isinstance(part, llmkit.TextDelta):
                        first_delta.set()
                await task
            with pytest.raises(llmkit.SteerError):
                await stream.steer("too late")
            return stream.response

    response = run(main)
    assert llmkit.UserMessage(STEER) in response.messages
    assert f"Echo: {STEER}" in response.text
    assert server.stats.generations == 2


def test_an_async_steer_queued_before_the_start_is_sent_by_the_protocol(
    server: ResponsesServer,
) -> None:
    server.faults.hold_for_steer()

    async def main() -> llmkit.Response:
        async with async_provider(server, "websocket") as p:
            model = p.language_model("gpt-test")
            async with model.stream("tell me a story") as stream:
                await stream.steer(STEER)  # queued: sent in the background at created
                return await stream.until_done()

    assert f"Echo: {STEER}" in run(main).text


def test_an_async_tool_loop_is_steered_from_another_task(server: ResponsesServer) -> None:
    server.faults.hold_for_steer()

    async def main() -> llmkit.ToolLoopResult[None]:
        async with async_provider(server, "websocket") as p:
            loop = llmkit.AsyncToolLoop(p.language_model("gpt-test"), [], max_steps=3)
            first_delta = asyncio.Event()

            async def steer() -> None:
                await first_delta.wait()
                await loop.steer(STEER)

            task = asyncio.create_task(steer())

            def on_part(part: llmkit.StreamPart) -> None:
                if isinstance(part, llmkit.TextDelta):
                    first_delta.set()

            result = await loop.run("tell me a story", on_part=on_part)
            await task
            await loop.steer("after the end")  # no response runs: the next request takes it
            assert loop.pending_steers == (llmkit.UserMessage("after the end"),)
            return result

    result = run(main)
    assert llmkit.UserMessage(STEER) in result.history
    assert f"Echo: {STEER}" in result.text


def test_an_async_stream_over_http_refuses_steer(server: ResponsesServer) -> None:
    async def main() -> None:
        async with async_provider(server, "http") as p, p.language_model("m").stream("hi") as s:
            with pytest.raises(llmkit.UsageError):
                await s.steer(STEER)
            await s.until_done()

    run(main)


def test_a_successor_that_cannot_start_ends_the_stream_with_the_input(
    server: ResponsesServer, model: llmkit.LanguageModel
) -> None:
    server.faults.hold_for_steer()
    history: list[llmkit.Message] = [llmkit.UserMessage("tell me a story")]
    with model.stream(llmkit.Call(history)) as stream:
        parts = []
        for part in stream:
            parts.append(part)
            if isinstance(part, llmkit.TextDelta) and len(parts) == 2:
                server.faults.error_next()  # the successor's
                stream.steer(STEER)
    failed = [p for p in parts if isinstance(p, llmkit.SteerFailed)]
    assert [f.error.code for f in failed] == ["successor_creation_failed"]
    assert stream.unapplied_steers == (llmkit.UserMessage(STEER),)
    response = stream.response
    assert response.text == "Echo:" and response.messages == (response.message,)
    next_turn_is_exact(server, model, [*history, *response.messages], response.id)


def test_a_tool_loop_steered_at_its_last_part_takes_one_more_step(
    server: ResponsesServer, model: llmkit.LanguageModel
) -> None:
    loop = llmkit.ToolLoop(model, [], max_steps=3)

    def on_part(part: llmkit.StreamPart) -> None:
        if isinstance(part, llmkit.Finish) and not loop.steps:
            loop.steer(STEER)  # the response ended: refused by the stream, kept for next

    result = loop.run("hello", on_part=on_part)
    assert len(result.steps) == 2
    assert result.history[2] == llmkit.UserMessage(STEER)
    assert result.text.startswith(f"Echo: {STEER}")
    assert result.steps[1].response.metadata.input_mode == "incremental"
