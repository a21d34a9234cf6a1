"""Lanes with agents: sub-agents forked from one parent, and faults that stay on one lane.

Both run through `llmkit.Provider` and `llmkit.AsyncProvider` against the local server,
whose lanes follow PROTOCOL.md §5.2 (per-lane heads, forks across lanes). The server's
request records say what went out: which lane, chained on which response, how many items.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
from loop import TRANSPORTS, Loop, Transport, async_provider, provider

import llmkit
from llmkit.testing import ResponsesServer

WEBSOCKET = [t for t in TRANSPORTS if t == "websocket"]
JOIN = 30.0


def together(*jobs: Callable[[], object]) -> None:
    """Run ``jobs`` on threads started at once; fail if one raised or still runs."""
    start = threading.Barrier(len(jobs), timeout=10)
    errors: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        try:
            start.wait()
            job()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + JOIN
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "a job still runs: a hang"
    assert not errors, errors


def record_of(server: ResponsesServer, response: llmkit.Response) -> llmkit.testing.RequestRecord:
    (record,) = [r for r in server.stats.requests if r.response_id == response.id]
    return record


@pytest.mark.parametrize("transport", WEBSOCKET, ids=lambda t: t.id)
def test_sub_agents_fork_from_the_parents_last_response(
    server: ResponsesServer, transport: Transport
) -> None:
    """1 parent, then 4 sub-agents continuing from its last response at once (3 turns
    each), then the parent goes on: every answer right, and each sub-agent's first
    request chained on the parent's response with only its own new item."""
    server.ttft = 0.05  # the sub-agents' first responses overlap
    with provider(server, transport) as p:
        model = p.language_model("scripted")
        parent = Loop(model, steps=2)
        assert parent.run().text.startswith(parent.expected_answer)
        head = parent.responses[-1]
        subs = [
            Loop(
                model,
                steps=2,
                history=[*parent.history, llmkit.UserMessage(f"Sub-agent {i}: [steps=2]")],
            )
            for i in range(4)
        ]
        together(*(sub.run for sub in subs))
        parent.history.append(llmkit.UserMessage("Go on: [steps=3]"))
        goes_on = Loop(model, steps=3, history=parent.history)
        assert goes_on.run().text.startswith(goes_on.expected_answer)

    for sub in subs:
        assert sub.done and sub.responses[-1].text.startswith(sub.expected_answer)
        first = sub.responses[0]
        assert first.metadata.input_mode == "incremental"
        assert first.metadata.previous_response_id == head.id
        assert first.metadata.input_items_sent == 1
        record = record_of(server, first)
        assert (record.previous_response_id, record.input_items) == (head.id, 1)
        assert all(r.metadata.input_mode == "incremental" for r in sub.responses[1:])
    firsts = [record_of(server, sub.responses[0]) for sub in subs]
    assert sum(r.fork for r in firsts) >= 3  # one may go on the parent's own lane
    assert len({r.stream_id for r in firsts}) == 4
    turns = len(parent.responses) + sum(len(s.responses) for s in subs) + len(goes_on.responses)
    assert server.stats.generations == turns
    assert server.stats.context_violations == 0
    assert server.stats.connections_opened == 1


def start(model: llmkit.LanguageModel, loop: Loop) -> tuple[llmkit.Stream, list[llmkit.StreamPart]]:
    """Open ``loop``'s next turn as a stream and read up to its first delta."""
    stream = model.stream(loop.call)
    parts: list[llmkit.StreamPart] = []
    for part in stream:
        parts.append(part)
        if isinstance(part, llmkit.TextDelta | llmkit.ToolInputDelta):
            break
    return stream, parts


def finish(loop: Loop, stream: llmkit.Stream) -> llmkit.Response:
    for _ in stream:
        pass
    loop.record(stream.response)
    return stream.response


FAULTS = ["error", "abandon"]


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("transport", WEBSOCKET, ids=lambda t: t.id)
def test_a_fault_on_one_lane_leaves_the_others_right_and_incremental(
    server: ResponsesServer, transport: Transport, fault: str
) -> None:
    """Three agents stream on lanes of one socket while a fourth lane meets an error
    frame or is abandoned mid-stream: the three finish right, their next turns stay
    incremental on the same socket, and the fourth conversation goes on correctly."""
    server.token_delay = 0.01  # every stream is still running when the fault comes
    with provider(server, transport) as p:
        model = p.language_model("scripted")
        agents = [Loop(model, steps=3) for _ in range(3)]
        victim = Loop(model, steps=3)
        for loop in [*agents, victim]:
            loop.turn()
        running = [start(model, loop) for loop in agents]
        if fault == "error":
            server.faults.fail_next()
            with pytest.raises(llmkit.ResponseFailed):
                victim.turn()
        else:
            stream, _ = start(model, victim)
            stream.close()
        for loop, (stream, _) in zip(agents, running, strict=True):
            response = finish(loop, stream)
            assert response.metadata.input_mode == "incremental"
        for loop in agents:
            answer = loop.run()
            assert answer.text.startswith(loop.expected_answer)
            assert all(r.metadata.input_mode == "incremental" for r in loop.responses[1:])
        answer = victim.run()  # from its history: the chain of its lane is gone
        assert answer.text.startswith(victim.expected_answer)
    assert server.stats.connections_opened == 1
    assert server.stats.context_violations == 0
    assert len({r.stream_id for r in server.stats.requests}) >= 4


def test_a_cancelled_task_leaves_the_other_lanes_right_and_incremental(
    server: ResponsesServer,
) -> None:
    """asyncio: three agents' turns stream on lanes of one socket while a fourth task is
    cancelled mid-stream; the three finish right and incremental, on the same socket."""
    server.token_delay = 0.01
    answers: list[llmkit.Response] = []

    async def turn(model: llmkit.AsyncLanguageModel, loop: Loop) -> llmkit.Response:
        response = await model.generate(loop.call)
        loop.record(response)
        return response

    async def main() -> None:
        async with async_provider(server, "websocket") as p:
            model = p.language_model("scripted")
            loops = [Loop(model, steps=2) for _ in range(4)]  # type: ignore[arg-type]
            for loop in loops:
                await turn(model, loop)
            *agents, victim = loops
            streaming = asyncio.Event()

            async def doomed() -> None:
                async with model.stream(victim.call) as stream:
                    async for part in stream:
                        if isinstance(part, llmkit.ToolInputDelta | llmkit.TextDelta):
                            streaming.set()

            others = [asyncio.create_task(turn(model, loop)) for loop in agents]
            cut = asyncio.create_task(doomed())
            await asyncio.wait_for(streaming.wait(), 5)
            cut.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cut
            answers.extend(await asyncio.wait_for(asyncio.gather(*others), 10))
            for loop in loops:
                while not loop.done:
                    await turn(model, loop)
                answers.append(loop.responses[-1])
                assert loop.responses[-1].text.startswith(loop.expected_answer)

    asyncio.run(asyncio.wait_for(main(), JOIN))
    assert all(r.metadata.input_mode == "incremental" for r in answers[:3])
    assert server.stats.connections_opened == 1
    assert server.stats.context_violations == 0


@pytest.mark.parametrize("transport", WEBSOCKET, ids=lambda t: t.id)
def test_a_connection_out_of_lanes_moves_the_request_to_another(
    server: ResponsesServer, transport: Transport
) -> None:
    """A server allowing 2 named lanes per connection: the third conversation's request
    meets ``websocket_stream_limit_reached`` before any output and goes out on a new
    connection; every answer right, nothing generated twice."""
    server.ws_max_lanes = 2
    with provider(server, transport) as p:
        model = p.language_model("scripted")
        loops = [Loop(model, steps=1) for _ in range(3)]
        for loop in loops:
            loop.turn()  # each a new conversation: a new lane
        for loop in loops:
            assert loop.run().text.startswith(loop.expected_answer)
    assert server.stats.connections_opened == 2
    turns = sum(len(loop.responses) for loop in loops)
    assert server.stats.generations == turns
    assert server.stats.context_violations == 0
    assert all(r.metadata.input_mode == "incremental" for loop in loops for r in loop.responses[1:])


@pytest.mark.parametrize("transport", WEBSOCKET, ids=lambda t: t.id)
def test_forks_whose_parent_left_the_cache_are_resent_in_full_once(
    server: ResponsesServer, transport: Transport
) -> None:
    """A server whose lane head leaves the cache as soon as the lane's next response
    starts (PROTOCOL.md §5.4 leaves it open): siblings forked from a parent that one of
    them advanced meet ``previous_response_not_found`` and are resent in full, once;
    every answer is right either way."""
    server.ws_head_eviction = "start"
    server.ttft = 0.05
    with provider(server, transport) as p:
        model = p.language_model("scripted")
        parent = Loop(model, steps=1)
        parent.run()
        subs = [
            Loop(
                model,
                steps=1,
                history=[*parent.history, llmkit.UserMessage(f"Sub-agent {i}: [steps=1]")],
            )
            for i in range(3)
        ]
        together(*(sub.run for sub in subs))
    for sub in subs:
        assert sub.responses[-1].text.startswith(sub.expected_answer)
    turns = len(parent.responses) + sum(len(s.responses) for s in subs)
    assert server.stats.generations == turns
    assert server.stats.context_violations == 0


@pytest.mark.parametrize("transport", WEBSOCKET, ids=lambda t: t.id)
def test_lanes_of_abandoned_streams_are_given_back(
    server: ResponsesServer, transport: Transport
) -> None:
    """More streams abandoned after their first delta, one after another, than the pool
    has room for (4 connections x 16 responses in flight): each abandoned lane drains
    and is given back, so no call waits for room and every answer is right."""
    with provider(server, transport, timeout=5.0) as p:
        model = p.language_model("scripted")
        for i in range(80):
            with model.stream(llmkit.Call(f"one two three four five six {i}")) as stream:
                for part in stream:
                    if isinstance(part, llmkit.TextDelta):
                        break
        answer = model.generate(llmkit.Call("after"))
    assert answer.text.startswith("Echo: after")
    assert server.stats.connections_opened <= 2
    assert server.stats.context_violations == 0
