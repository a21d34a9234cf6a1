"""The demo's second table: concurrent agents whose sub-agents fork from a shared context.

`AGENTS` agents run at once, threads sharing one `Provider`. Each is a parent tool loop
over a shared context (a page of notes, as a real agent's instructions and files), then
`SUBAGENTS` sub-agents that continue from the parent's last response in parallel, each a
short tool loop of its own. It runs three ways: over HTTP (every request carries the
whole history), over WebSocket one response at a time per connection
(``ws_lanes=False``: the default 4 connections are shared by up to 64 conversations),
and over WebSocket with ``stream_id`` lanes (``ws_lanes=True``: many responses in flight
per connection, sub-agents fork from the parent's response).

Each conversation's ``add`` tool adds its own offset, so every answer is unique to its
conversation, and the scripted model's answer counts the items it saw: a sub-agent that
did not see its parent's context, or saw another's, answers wrong.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llmkit.exceptions import LLMKitError
from llmkit.messages import Call, UserMessage
from llmkit.model import LanguageModel
from llmkit.openai.provider import Provider
from llmkit.tool_loop import CallableTool, ToolLoop, ToolLoopResult, ToolLoopStep, tool

__all__ = ["AGENTS", "CREW_ROWS", "CrewRun", "SUBAGENTS", "run_crew"]

AGENTS = 8
SUBAGENTS = 4
PARENT_STEPS = 2  # tool calls of a parent (then its answer)
SUB_STEPS = 1  # tool calls of a sub-agent (then its answer)
JOIN_SECONDS = 120.0  # a thread still running then counts as failed
# The shared context: ~1,500 tokens that every request carries over HTTP, and that a
# chained (or forked) WebSocket request does not send, nor the model process again.
NOTES = " ".join(
    f"Note {n}: the ledger for region {n % 7} was reconciled on day {n % 28 + 1}, "
    f"with {n * 37 % 1000} entries checked and {n % 5} corrections."
    for n in range(1, 61)
)
CREW_ROWS = [
    "agents + sub-agents",
    "requests",
    "bytes sent",
    "incremental turns",
    "input tokens processed",
    "sockets used",
    "most in flight on a socket",
    "wall time",
    "correct answers",
]


def add_with(offset: int) -> CallableTool:
    """An ``add`` tool that also adds its conversation's offset (answers tell them apart)."""

    def add(a: int, b: int) -> int:
        """Add two integers and return the sum."""
        return a + b + offset

    return tool(add)


@dataclass(frozen=True, slots=True)
class Task:
    """One conversation of the crew: its prompt, tool offset and expected answer."""

    prompt: str
    steps: int
    offset: int
    expected: str


def parent_task(agent: int) -> Task:
    steps, offset = PARENT_STEPS, 1000 * (agent + 1)
    total = steps * (steps + 1) // 2 + steps * offset
    items = 2 * steps + 1
    return Task(
        f"Agent {agent}: read these notes, then add up the steps with the add tool "
        f"[steps={steps}]\n\n{NOTES}",
        steps,
        offset,
        f"The answer is {total}. [user=1 assistant=0 tool_outputs={steps} items={items}]",
    )


def sub_task(agent: int, sub: int) -> Task:
    """A sub-agent's task: it continues the parent's conversation (counts include it)."""
    steps, offset = SUB_STEPS, 1000 * (agent + 1) + 10 * (sub + 1)
    total = steps * (steps + 1) // 2 + steps * offset
    outputs = PARENT_STEPS + steps
    items = (2 * PARENT_STEPS + 2) + 1 + 2 * steps
    return Task(
        f"Sub-agent {agent}.{sub}: check part {sub} of the notes [steps={steps}]",
        steps,
        offset,
        f"The answer is {total}. [user=2 assistant=1 tool_outputs={outputs} items={items}]",
    )


@dataclass(slots=True)
class Outcome:
    """What the conversations of one agent produced."""

    steps: list[ToolLoopStep] = field(default_factory=list)
    correct: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, task: Task, result: ToolLoopResult | None, error: str | None) -> None:
        with self.lock:
            if result is not None:
                self.steps.extend(result.steps)
                if result.finished and result.text == task.expected:
                    self.correct += 1
                else:
                    self.errors.append(f"{task.prompt[:20]!r}: {result.text!r}")
            if error is not None:
                self.errors.append(error)


def _loop(model: LanguageModel, task: Task, call: Call, outcome: Outcome) -> ToolLoopResult | None:
    loop = ToolLoop(model, [add_with(task.offset)], max_steps=task.steps + 2)
    try:
        result = loop.run(call)
    except LLMKitError as exc:
        outcome.add(task, None, f"{type(exc).__name__}: {exc}")
        return None
    outcome.add(task, result, None)
    return result


def _join(threads: list[threading.Thread], outcome: Outcome) -> None:
    deadline = time.monotonic() + JOIN_SECONDS
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            outcome.add(Task(thread.name, 0, 0, ""), None, f"{thread.name} did not finish")


def run_agent(model: LanguageModel, agent: int, subagents: int, outcome: Outcome) -> None:
    """The parent's loop, then its sub-agents in parallel, each from the parent's answer."""
    parent = parent_task(agent)
    result = _loop(model, parent, Call(parent.prompt), outcome)
    if result is None:
        return
    subs = []
    for sub in range(subagents):
        task = sub_task(agent, sub)
        call = Call([*result.history, UserMessage(task.prompt)])
        subs.append(
            threading.Thread(
                target=_loop, args=(model, task, call, outcome), name=f"sub-agent {agent}.{sub}"
            )
        )
    for thread in subs:
        thread.start()
    _join(subs, outcome)


@dataclass(frozen=True, slots=True)
class CrewRun:
    """The figures of one way of running the crew, for the table."""

    label: str
    agents: int
    subagents: int
    steps: tuple[ToolLoopStep, ...]
    correct: int
    errors: tuple[str, ...]
    wall: float
    sockets: int | None = None
    max_in_flight: int | None = None

    @property
    def conversations(self) -> int:
        return self.agents * (1 + self.subagents)

    @property
    def ok(self) -> bool:
        return self.correct == self.conversations and not self.errors

    def column(self) -> list[str]:
        steps = self.steps
        processed = sum(
            s.response.usage.input_tokens - s.response.usage.cache_read_tokens for s in steps
        )
        return [
            f"{self.agents} + {self.agents * self.subagents}",
            str(len(steps)),
            f"{sum(s.metadata.bytes_sent for s in steps):,} B",
            f"{sum(s.metadata.input_mode == 'incremental' for s in steps)} of {len(steps)}",
            f"{processed:,}",
            "-" if self.sockets is None else str(self.sockets),
            "-" if self.max_in_flight is None else str(self.max_in_flight),
            f"{self.wall:.2f} s",
            f"{self.correct} of {self.conversations}",
        ]


def run_crew(
    label: str,
    base_url: str,
    model_id: str,
    *,
    websocket: bool,
    lanes: bool,
    agents: int = AGENTS,
    subagents: int = SUBAGENTS,
    stats: Callable[[], tuple[int, int]] | None = None,
) -> CrewRun:
    """Run the crew one way; `stats` reads (sockets opened, most in flight) afterwards."""
    provider = Provider(
        api_key=os.environ.get("OPENAI_API_KEY"),
        base_url=base_url,
        use_responses_api=True,
        websocket=websocket,
        ws_lanes=lanes,
    )
    outcomes = [Outcome() for _ in range(agents)]
    started = time.perf_counter()
    with provider:
        model = provider.language_model(model_id)
        threads = [
            threading.Thread(
                target=run_agent, args=(model, n, subagents, outcomes[n]), name=f"agent {n}"
            )
            for n in range(agents)
        ]
        for thread in threads:
            thread.start()
        everyone = Outcome()
        _join(threads, everyone)
    wall = time.perf_counter() - started
    sockets, in_flight = stats() if stats is not None and websocket else (None, None)
    return CrewRun(
        label,
        agents,
        subagents,
        tuple(s for o in outcomes for s in o.steps),
        sum(o.correct for o in outcomes),
        tuple(e for o in [*outcomes, everyone] for e in o.errors),
        wall,
        sockets,
        in_flight,
    )
