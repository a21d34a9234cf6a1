"""Benchmark 6: concurrent agents on one provider, with lanes, without, and over HTTP.

`AGENTS` agents (32 in the full run) each run a `TURNS`-turn tool loop (the scripted
tool model with ``[steps=TURNS-1]``: 5 ``add`` calls and the answer) at the same time on
one provider against the local server (another process, ``ttft`` `TTFT` so responses
overlap as they do on a real service; each tool call takes `TOOL_SECONDS`). Three ways:

- **WS lanes**: ``Provider(websocket=True)`` with its defaults (``ws_lanes=True``: each
  conversation on its own ``stream_id`` lane, many responses in flight per socket);
- **WS no lanes**: ``ws_lanes=False`` (one response at a time per socket, the default
  4 sockets shared by all conversations, chains lost when they outnumber sockets);
- **HTTP**: ``websocket=False`` (every turn carries the whole history);

each with threads sharing one `Provider` (`ToolLoop`) and with asyncio tasks sharing one
`AsyncProvider` (`AsyncToolLoop`). Figures: the share of turns 2..TURNS sent incrementally,
the bytes sent, the sockets the server saw opened and the most responses it had in flight
on one socket (its `stats`, read through `bench/serve.py`'s stdin commands), and the
client CPU (``time.process_time()`` of the whole run, every thread) per turn. Every run
checks every answer (each agent's tool adds its own offset, so a wrong context shows),
that the server counted no context violation, and one generation per turn.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import llmkit
from bench.common import BenchError, ServerControl, median, rotated

TURNS = 6  # model calls per agent: TURNS - 1 tool calls, then the answer
TTFT = 0.05  # the server's time to first token: concurrent responses overlap
# Each tool call takes this long (a quick tool). Meanwhile the agent's socket is free: a
# one-at-a-time socket may go to another conversation, whose response replaces the chain.
TOOL_SECONDS = 0.02
MODEL = "bench-tools"
JOIN_SECONDS = 300.0
WAYS = ("WS lanes", "WS no lanes", "HTTP")
FLAVOURS = ("threads", "asyncio")


@dataclass(frozen=True, slots=True)
class Agent:
    """One conversation: its offset makes its answer unique."""

    number: int

    @property
    def offset(self) -> int:
        return 1000 * (self.number + 1)

    @property
    def prompt(self) -> str:
        return f"Agent {self.number}: add it all up, one call per step [steps={TURNS - 1}]"

    @property
    def expected(self) -> str:
        steps = TURNS - 1
        return f"The answer is {steps * (steps + 1) // 2 + steps * self.offset}."

    def tool(self) -> llmkit.CallableTool:
        offset = self.offset

        def add(a: int, b: int) -> int:
            """Add two integers."""
            time.sleep(TOOL_SECONDS)
            return a + b + offset

        return llmkit.tool(add)

    def async_tool(self) -> llmkit.CallableTool:
        offset = self.offset

        async def add(a: int, b: int) -> int:
            """Add two integers."""
            await asyncio.sleep(TOOL_SECONDS)
            return a + b + offset

        return llmkit.tool(add)


@dataclass(frozen=True, slots=True)
class Run:
    """One run of all agents one way: what the client and the server saw."""

    turns: int
    incremental: int  # of turns 2..TURNS
    later_turns: int  # turns 2..TURNS
    bytes_sent: int
    wall: float
    cpu: float
    sockets: int
    max_in_flight: int
    generations: int
    violations: int


@dataclass(slots=True)
class WayResult:
    """All runs of one way and flavour, and their medians."""

    way: str
    flavour: str
    agents: int
    runs: list[Run] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.way}, {self.flavour}"

    def _median(self, figure: Callable[[Run], float]) -> float:
        return median([figure(r) for r in self.runs])

    @property
    def incremental_share(self) -> float:
        return self._median(lambda r: r.incremental / r.later_turns if r.later_turns else 0.0)

    @property
    def bytes_sent(self) -> float:
        return self._median(lambda r: r.bytes_sent)

    @property
    def sockets(self) -> float:
        return self._median(lambda r: r.sockets)

    @property
    def max_in_flight(self) -> float:
        return self._median(lambda r: r.max_in_flight)

    @property
    def cpu_per_turn(self) -> float:
        return self._median(lambda r: r.cpu / r.turns)

    @property
    def wall(self) -> float:
        return self._median(lambda r: r.wall)

    def as_dict(self) -> dict[str, Any]:
        return {
            "way": self.way,
            "flavour": self.flavour,
            "agents": self.agents,
            "turns_per_agent": TURNS,
            "incremental_share": self.incremental_share,
            "bytes_sent": self.bytes_sent,
            "sockets": self.sockets,
            "max_in_flight": self.max_in_flight,
            "cpu_per_turn": self.cpu_per_turn,
            "wall": self.wall,
            "runs": [
                {
                    "incremental": r.incremental,
                    "later_turns": r.later_turns,
                    "bytes_sent": r.bytes_sent,
                    "wall": r.wall,
                    "cpu": r.cpu,
                    "sockets": r.sockets,
                    "max_in_flight": r.max_in_flight,
                }
                for r in self.runs
            ],
        }


def _settings(way: str) -> dict[str, Any]:
    return {
        "api_key": "bench",
        "use_responses_api": True,
        "websocket": way != "HTTP",
        "ws_lanes": way == "WS lanes",
        "max_retries": 0,
    }


def _check(agent: Agent, result: llmkit.ToolLoopResult | BaseException | None, way: str) -> None:
    if not isinstance(result, llmkit.ToolLoopResult):
        raise BenchError(f"{way}: agent {agent.number} failed: {result!r}")
    if not result.finished or not result.text.startswith(agent.expected):
        raise BenchError(f"{way}: agent {agent.number} answered {result.text!r}")
    if len(result.steps) != TURNS:
        raise BenchError(f"{way}: agent {agent.number} took {len(result.steps)} turns")
    if way != "HTTP" and any(s.metadata.transport != "websocket" for s in result.steps):
        raise BenchError(f"{way}: agent {agent.number} fell back to HTTP")


def _threads(base_url: str, way: str, crew: list[Agent]) -> list[llmkit.ToolLoopResult]:
    results: list[llmkit.ToolLoopResult | BaseException | None] = [None] * len(crew)
    with llmkit.Provider(base_url=base_url, **_settings(way)) as provider:
        model = provider.language_model(MODEL)
        start = threading.Barrier(len(crew))

        def run(agent: Agent) -> None:
            try:
                start.wait(JOIN_SECONDS)
                loop = llmkit.ToolLoop(model, [agent.tool()], max_steps=TURNS + 1)
                results[agent.number] = loop.run(agent.prompt)
            except BaseException as exc:  # reported below
                results[agent.number] = exc

        threads = [threading.Thread(target=run, args=(a,), daemon=True) for a in crew]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + JOIN_SECONDS
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
    for agent in crew:
        _check(agent, results[agent.number], way)
    return [r for r in results if isinstance(r, llmkit.ToolLoopResult)]


def _tasks(base_url: str, way: str, crew: list[Agent]) -> list[llmkit.ToolLoopResult]:
    async def main() -> list[llmkit.ToolLoopResult | BaseException]:
        async with llmkit.AsyncProvider(base_url=base_url, **_settings(way)) as provider:
            model = provider.language_model(MODEL)
            loops = [
                llmkit.AsyncToolLoop(model, [a.async_tool()], max_steps=TURNS + 1) for a in crew
            ]
            runs = [loop.run(a.prompt) for loop, a in zip(loops, crew, strict=True)]
            async with asyncio.timeout(JOIN_SECONDS):
                return await asyncio.gather(*runs, return_exceptions=True)

    try:
        results = asyncio.run(main())
    except TimeoutError:
        raise BenchError(f"{way}, asyncio: the agents did not finish in time") from None
    for agent in crew:
        _check(agent, results[agent.number], way)
    return [r for r in results if isinstance(r, llmkit.ToolLoopResult)]


def run_once(server: ServerControl, way: str, flavour: str, agents: int) -> Run:
    """All agents once, one way; the server's stats are reset before and read after."""
    crew = [Agent(n) for n in range(agents)]
    runner = _threads if flavour == "threads" else _tasks
    server.reset()
    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    results = runner(server.base_url, way, crew)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    stats = server.stats()
    steps = [s for r in results for s in r.steps]
    later = [s for r in results for s in r.steps[1:]]
    run = Run(
        turns=len(steps),
        incremental=sum(s.metadata.input_mode == "incremental" for s in later),
        later_turns=len(later),
        bytes_sent=sum(s.metadata.bytes_sent for s in steps),
        wall=wall,
        cpu=cpu,
        sockets=int(stats["connections_opened"]),
        max_in_flight=int(stats["max_in_flight"]),
        generations=int(stats["generations"]),
        violations=int(stats["context_violations"]),
    )
    if run.violations:
        raise BenchError(f"{way}, {flavour}: {run.violations} context violations")
    if run.generations != run.turns:
        raise BenchError(f"{way}, {flavour}: {run.generations} generations for {run.turns} turns")
    return run


def run(
    server: ServerControl, *, agents: int, repeat: int, log: Callable[[str], None]
) -> list[WayResult]:
    """`repeat` rounds of every way and flavour (rotated order); a warm-up run first."""
    combos = [(way, flavour) for flavour in FLAVOURS for way in WAYS]
    for way, flavour in combos:  # warm-up: imports, schemas, the server's first sockets
        run_once(server, way, flavour, min(agents, 4))
    results = {combo: WayResult(*combo, agents) for combo in combos}
    for round_ in range(repeat):
        for way, flavour in rotated(combos, round_):
            measured = run_once(server, way, flavour, agents)
            results[way, flavour].runs.append(measured)
            share = measured.incremental / measured.later_turns if measured.later_turns else 0
            log(
                f"  concurrency round {round_ + 1}/{repeat} {way:11} {flavour:7} "
                f"{share * 100:5.1f}% incremental, {measured.sockets} sockets, "
                f"{measured.max_in_flight} in flight, {measured.bytes_sent:>9,} B, "
                f"{measured.cpu / measured.turns * 1e6:6.0f} us CPU/turn, {measured.wall:.2f} s"
            )
    return list(results.values())
