"""32 agents on one provider: no cross-talk, no leaks, on every path, sync and async.

The agents are 32 threads sharing one `llmkit.Provider`, and again 32 asyncio tasks
sharing one `llmkit.AsyncProvider` (`llmkit.AsyncToolLoop`, ``async def`` tools), with
the same conversations and the same checks.

Each thread runs its own tool loop (`llmkit.ToolLoop`) with its own ``add`` tool, which
adds a per-conversation offset, and its own step count. The scripted tool model feeds
the last tool output back as ``a``, so a conversation's answer,
``steps * (steps + 1) / 2 + steps * offset``, is unique to it: a call that saw another
conversation's context (a wrong chain, a mixed-up connection) changes the answer, and
the server counts the duplicated items as context violations.

Over WebSocket the pool has fewer connections than there are threads (8, and the
default 4), so threads wait for a lease and conversations take turns on connections,
evicting one another's chains. Chat Completions and Responses over HTTP share one
provider (one httpx pool) the same way. Afterwards no thread, file descriptor or server
WebSocket may be left over.

Last, the same 32 agents run over WebSocket while another thread arms a fault every
5 ms (idle closes, drops, failures, error events): whichever agent's request comes
next meets it, handles the typed exception by going on from its loop's history, and
still ends with its own answer.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
from loop import async_provider, provider

import llmkit
from llmkit.testing import ResponsesServer

pytestmark = pytest.mark.timeout(60)

THREADS = 32
JOIN_SECONDS = 45.0
FAULTS = 40
MAX_ATTEMPTS = FAULTS + 10
"""An agent may be unlucky and meet every fault in turn (each failure uses one up)."""
HANDLED = (llmkit.ConnectionClosed, llmkit.ResponseFailed, llmkit.InternalServerError)
"""What the faults injected while agents run may raise (each is retried from history)."""
FD_DIR = Path("/proc/self/fd")


class Runner(Protocol):
    """Runs a crew of agents on ``path``: `run_threads` or `run_tasks`."""

    def __call__(
        self, server: ResponsesServer, path: str, crew: list[Agent], **overrides: Any
    ) -> None: ...


def open_fds() -> int | None:
    """Open file descriptors of this process (None where /proc is not available)."""
    return len(os.listdir(FD_DIR)) if FD_DIR.is_dir() else None


def wait_until_quiet(server: ResponsesServer, fds: int | None, threads: int) -> None:
    """Wait (bounded) until the server has no open WebSocket and no fd or thread leaked.

    Closing is asynchronous on the server's side, so this polls; it fails only if the
    counts do not come back within five seconds.
    """
    deadline = time.monotonic() + 5.0
    while True:
        still_open = [c.connection_id for c in server.stats.connections if c.open]
        now_fds = open_fds()
        quiet = not still_open and threading.active_count() <= threads
        if quiet and (fds is None or now_fds is None or now_fds <= fds):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"leak: open server connections {still_open}, fds {fds} -> {now_fds}, "
                f"threads {threads} -> {threading.active_count()}"
            )
        time.sleep(0.02)


def add_tool(offset: int, seconds: float) -> llmkit.CallableTool:
    """An ``add`` tool that also adds this conversation's offset and takes ``seconds``."""

    def add(a: int, b: int) -> int:
        """Add two integers."""
        if seconds:
            time.sleep(seconds)  # tool work: meanwhile another agent may take the connection
        return a + b + offset

    return llmkit.tool(add)


def async_add_tool(offset: int, seconds: float) -> llmkit.CallableTool:
    """`add_tool` as an ``async def`` tool: its work lets other tasks run."""

    async def add(a: int, b: int) -> int:
        """Add two integers."""
        if seconds:
            await asyncio.sleep(seconds)  # meanwhile another task may take the connection
        return a + b + offset

    return llmkit.tool(add)


@dataclass
class Agent:
    """One thread's conversation and what it got."""

    number: int
    steps: int
    offset: int
    tool_seconds: float
    result: llmkit.ToolLoopResult | None = None
    error: BaseException | None = None

    @property
    def prompt(self) -> str:
        return f"Conversation {self.number}: add it all up [steps={self.steps}]"

    @property
    def total(self) -> int:
        return self.steps * (self.steps + 1) // 2 + self.steps * self.offset

    @property
    def expected_text(self) -> str:
        items = 2 * self.steps + 1
        return (
            f"The answer is {self.total}. "
            f"[user=1 assistant=0 tool_outputs={self.steps} items={items}]"
        )

    retries: int = 0
    errors: list[str] = field(default_factory=list)

    def run(self, model: llmkit.LanguageModel, start: threading.Barrier) -> None:
        """Run the tool loop; after a handled error, go on from the loop's history."""
        try:
            start.wait()
            loop = llmkit.ToolLoop(
                model, [add_tool(self.offset, self.tool_seconds)], max_steps=self.steps + 1
            )
            call: llmkit.Call | str = self.prompt
            for _ in range(MAX_ATTEMPTS):
                try:
                    self.result = loop.run(call)
                    return
                except HANDLED as exc:
                    call = self.handled(exc, loop.history)
            raise self.gave_up()
        except BaseException as exc:  # reported by the test thread
            self.error = exc

    async def arun(self, model: llmkit.AsyncLanguageModel) -> None:
        """`run` as an asyncio task, with an `AsyncToolLoop` and an ``async def`` tool."""
        try:
            tools = [async_add_tool(self.offset, self.tool_seconds)]
            loop = llmkit.AsyncToolLoop(model, tools, max_steps=self.steps + 1)
            call: llmkit.Call | str = self.prompt
            for _ in range(MAX_ATTEMPTS):
                try:
                    self.result = await loop.run(call)
                    return
                except HANDLED as exc:
                    call = self.handled(exc, loop.history)
            raise self.gave_up()
        except Exception as exc:  # reported by the test; cancellation is not caught
            self.error = exc

    def handled(self, exc: Exception, history: list[llmkit.Message]) -> llmkit.Call:
        """Note a handled error; the call that goes on from the loop's history."""
        self.retries += 1
        self.errors.append(repr(exc))
        return llmkit.Call(list(history))

    def gave_up(self) -> AssertionError:
        return AssertionError(f"conversation {self.number} failed: {self.errors}")


def agents(tool_seconds: float) -> list[Agent]:
    made = [Agent(i, 2 + i % 6, 1000 * (i + 1), tool_seconds) for i in range(THREADS)]
    assert len({a.total for a in made}) == THREADS  # every answer tells its conversation
    return made


def check_agent(agent: Agent) -> int:
    """Assert one conversation's steps and answer; returns its number of model calls."""
    assert agent.error is None, f"conversation {agent.number}: {agent.error!r}"
    result = agent.result
    assert result is not None and result.finished
    assert result.text == agent.expected_text
    assert len(result.steps) == agent.steps + 1
    previous = 0
    for number, step in enumerate(result.steps[:-1], start=1):
        (call,) = step.response.tool_calls
        assert call.arguments.replace(" ", "") == f'{{"a":{previous},"b":{number}}}'
        (output,) = step.results
        previous = previous + number + agent.offset
        assert output.output == str(previous) and not output.is_error
    for step in result.steps:
        assert step.metadata.fallback_reason is None
    return len(result.steps)


def run_agents(model: llmkit.LanguageModel, crew: list[Agent]) -> None:
    start = threading.Barrier(len(crew), timeout=10)
    threads = [
        threading.Thread(target=a.run, args=(model, start), name=f"agent-{a.number}") for a in crew
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + JOIN_SECONDS
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not [t.name for t in threads if t.is_alive()], "agents still running: a hang"


@pytest.mark.parametrize(
    ("path", "max_connections", "tool_seconds"),
    [
        # Tools that return at once: an agent's next turn usually finds its own
        # connection idle, so chains survive and most turns are incremental.
        pytest.param("websocket", 8, 0.0, id="websocket-8-connections-instant-tools"),
        pytest.param("websocket", None, 0.0, id="websocket-default-4-instant-tools"),
        # Tools that take 2 ms: other agents take the connection meanwhile, evicting
        # chains, so turns go out in full on whichever connection is free.
        pytest.param("websocket", 8, 0.002, id="websocket-8-connections-slow-tools"),
        pytest.param("websocket", None, 0.002, id="websocket-default-4-slow-tools"),
        pytest.param("chat", None, 0.002, id="chat"),
        pytest.param("http", None, 0.002, id="http"),
    ],
)
def run_tasks(server: ResponsesServer, path: str, crew: list[Agent], **overrides: Any) -> None:
    """The agents as asyncio tasks on one `AsyncProvider`, on a loop of their own."""

    async def main() -> None:
        async with async_provider(server, path, timeout=30.0, **overrides) as p:
            model = p.language_model("scripted-concurrency")
            async with asyncio.timeout(JOIN_SECONDS):
                await asyncio.gather(*(agent.arun(model) for agent in crew))

    asyncio.run(main())


def run_threads(server: ResponsesServer, path: str, crew: list[Agent], **overrides: Any) -> None:
    with provider(server, path, timeout=30.0, **overrides) as p:
        run_agents(p.language_model("scripted-concurrency"), crew)


RUNNERS = [pytest.param(run_threads, id="threads"), pytest.param(run_tasks, id="asyncio")]


SHARED = [
    # Tools that return at once: an agent's next turn usually finds its own lane (or,
    # without lanes, its own connection) idle, so chains survive.
    ("websocket", 8, 0.0, "websocket-8-connections-instant-tools"),
    ("websocket", None, 0.0, "websocket-default-4-instant-tools"),
    # Tools that take 2 ms: without lanes other agents take the connection meanwhile,
    # evicting chains, so turns go out in full on whichever connection is free (with
    # lanes each conversation keeps its own lane).
    ("websocket", 8, 0.002, "websocket-8-connections-slow-tools"),
    ("websocket", None, 0.002, "websocket-default-4-slow-tools"),
    ("chat", None, 0.002, "chat"),
    ("http", None, 0.002, "http"),
]


@pytest.mark.parametrize("run", RUNNERS)
@pytest.mark.parametrize(
    ("path", "max_connections", "tool_seconds", "lanes"),
    [
        pytest.param(path, limit, seconds, lanes, id=f"{name}{suffix}")
        for path, limit, seconds, name in SHARED
        for lanes, suffix in (
            ((True, "-lanes"), (False, "-no-lanes")) if path == "websocket" else ((None, ""),)
        )
    ],
)
def test_32_agents_share_one_provider(
    server: ResponsesServer,
    path: str,
    max_connections: int | None,
    tool_seconds: float,
    run: Runner,
    lanes: bool | None,
) -> None:
    fds, thread_count = open_fds(), threading.active_count()
    overrides: dict[str, Any] = (
        {} if max_connections is None else {"ws_max_connections": max_connections}
    )
    if lanes is not None:
        overrides["ws_lanes"] = lanes
    crew = agents(tool_seconds)
    run(server, path, crew, **overrides)
    wait_until_quiet(server, fds, thread_count)

    turns = sum(check_agent(agent) for agent in crew)
    assert server.stats.context_violations == 0
    assert server.stats.generations == turns
    records = server.stats.requests
    assert len(records) == turns  # nothing resent, nothing fell back
    assert all(r.status == "completed" for r in records)
    if path == "websocket":
        limit = max_connections or 4
        assert {r.transport for r in records} == {"websocket"}
        assert server.stats.connections_opened <= limit  # 32 agents took turns
        assert all(c.context_violations == 0 for c in server.stats.connections)
        incremental = sum(
            s.metadata.input_mode == "incremental"
            for a in crew
            if a.result is not None
            for s in a.result.steps
        )
        print(
            f"\n{path} ({limit} connections, tools {tool_seconds * 1000:g} ms): "
            f"{THREADS} agents, {turns} turns, "
            f"{incremental} incremental, {server.stats.connections_opened} connections"
        )
    else:
        assert {r.transport for r in records} == {"http"}
        assert {r.endpoint for r in records} == {"chat" if path == "chat" else "responses"}


def inject_faults(server: ResponsesServer, stop: threading.Event) -> int:
    """Arm a fault every 5 ms while the agents run (at most `FAULTS`); returns how many."""
    arms: list[Callable[[], object]] = [
        server.faults.close_idle,
        lambda: server.faults.drop_after(3),
        lambda: server.faults.fail_next(),
        lambda: server.faults.error_next(status=500),
        lambda: server.faults.drop_after(0),
    ]
    armed = 0
    for arm in itertools.islice(itertools.cycle(arms), FAULTS):
        if stop.wait(0.005):
            break
        arm()
        armed += 1
    return armed


@pytest.mark.parametrize("lanes", [True, False], ids=["lanes", "no-lanes"])
@pytest.mark.parametrize("run", RUNNERS)
def test_32_agents_with_faults_injected_meanwhile(
    server: ResponsesServer, run: Runner, lanes: bool
) -> None:
    """Faults hit whichever agent's request comes next; every agent still ends right."""
    fds, thread_count = open_fds(), threading.active_count()
    crew = agents(0.002)
    stop = threading.Event()
    injected: list[int] = []
    chaos = threading.Thread(target=lambda: injected.append(inject_faults(server, stop)))
    chaos.start()
    try:
        run(server, "websocket", crew, ws_lanes=lanes)
    finally:
        stop.set()
        chaos.join(10)
    wait_until_quiet(server, fds, thread_count)

    for agent in crew:
        assert agent.error is None, f"conversation {agent.number}: {agent.error!r}"
        assert agent.result is not None and agent.result.text == agent.expected_text
    assert server.stats.context_violations == 0
    retries = sum(a.retries for a in crew)
    print(f"\nwebsocket with faults: {injected} faults injected, {retries} agent retries")


# --------------------------------------------------------------------------- lanes


def six_turn_agents() -> list[Agent]:
    """32 conversations of 6 turns each (5 tool calls, then the answer)."""
    return [Agent(i, 5, 1000 * (i + 1), 0.002) for i in range(THREADS)]


def incremental_share(crew: list[Agent]) -> float:
    """The share of turns 2..6 that went out incremental."""
    later = [
        step.metadata.input_mode == "incremental"
        for agent in crew
        if agent.result is not None
        for step in agent.result.steps[1:]
    ]
    return sum(later) / len(later)


@pytest.mark.parametrize("run", RUNNERS)
def test_32_agents_on_default_settings_keep_their_chains_on_lanes(
    server: ResponsesServer, run: Runner
) -> None:
    """Issue acceptance: default settings, 32 agents x 6 turns: >= 99 % of turns 2..6
    incremental, at most 2 sockets, >= 8 responses in flight on one socket."""
    server.ttft = 0.02  # responses overlap, as a real model's do
    fds, thread_count = open_fds(), threading.active_count()
    crew = six_turn_agents()
    run(server, "websocket", crew)
    wait_until_quiet(server, fds, thread_count)

    turns = sum(check_agent(agent) for agent in crew)
    assert turns == 32 * 6
    assert server.stats.context_violations == 0
    assert server.stats.generations == turns
    assert incremental_share(crew) >= 0.99
    assert server.stats.connections_opened <= 2
    assert server.stats.max_in_flight >= 8
    print(
        f"\nlanes: {turns} turns, {incremental_share(crew):.1%} of turns 2..6 incremental, "
        f"{server.stats.connections_opened} sockets, {server.stats.max_in_flight} in flight, "
        f"{server.stats.lanes_used} lanes"
    )


@pytest.mark.parametrize("mode", ["refuse", "ignore", "serial"])
@pytest.mark.parametrize("run", RUNNERS)
def test_32_agents_against_servers_without_lanes(
    server: ResponsesServer, run: Runner, mode: str
) -> None:
    """A server that refuses ``stream_id``, one that ignores it, and one without lanes:
    every answer right, nothing generated twice, one response at a time per socket."""
    server.ws_lanes = mode  # type: ignore[assignment]
    fds, thread_count = open_fds(), threading.active_count()
    crew = six_turn_agents()
    run(server, "websocket", crew)
    wait_until_quiet(server, fds, thread_count)

    turns = sum(check_agent(agent) for agent in crew)
    assert server.stats.context_violations == 0
    assert server.stats.generations == turns
    assert server.stats.max_in_flight == 1
    assert {r.transport for r in server.stats.requests} == {"websocket"}
    print(
        f"\n{mode}: {turns} turns, {incremental_share(crew):.1%} of turns 2..6 incremental, "
        f"{server.stats.connections_opened} sockets"
    )
