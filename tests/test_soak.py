"""Soak: thousands of WebSocket turns on one provider, a fault every ~100 turns.

Tool loops run back to back on one `llmkit.Provider(use_responses_api=True,
websocket=True)`, each with its own prompt and step count, so every final answer can be
checked. Before a turn every ``fault_every`` turns, the next fault of `ROTATION` is
armed: one of everything that can happen to a WebSocket turn. A fault that llmkit
recovers from by itself (a reconnect, a full resend, an HTTP fallback) must give a
normal answer; a fault that llmkit must not replay raises the documented exception,
which the agent handles like real agent code would: it retries the turn from its
history. Anything else (an exception on an unfaulted turn, another exception type, a
wrong answer) is a failure.

Checked over the whole run: zero wrong answers and zero context violations; billing
(``server.stats.generations`` = the turns answered + the failed generations of the
faults that ran the model: nothing replayed, nothing billed twice); no growth of open
sockets (file descriptors, the server's open WebSockets) or threads; and memory
(``tracemalloc``, sampled every ``sample_every`` turns) flat after the first window.

Every window the local server is reset (as a server restart would): its records of
every request would otherwise grow the process's memory, which is measured here for
llmkit's sake. The reset closes the idle connections, which llmkit must also survive.

``LLMKIT_SOAK_TURNS`` sets the number of turns (500 by default, as in ``make test``;
``make soak`` runs 10,000) and ``LLMKIT_SOAK_SECONDS`` a wall-clock budget after which
the run stops early and says so. Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import gc
import itertools
import os
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from loop import ADD, Transport, provider, run_tool

import llmkit
from llmkit.testing import ResponsesServer

TURNS = int(os.environ.get("LLMKIT_SOAK_TURNS", "500"))
LONG = TURNS >= 5000
SECONDS = float(os.environ.get("LLMKIT_SOAK_SECONDS", "900" if LONG else "60"))
SAMPLE_EVERY = 1000 if LONG else max(50, TURNS // 5)
MEMORY_TOLERANCE = 256 * 1024
"""Bytes the traced memory may differ from the post-warm-up sample (allocator noise,
caches that fill once); a leak of a few dozen bytes per turn exceeds it at 10,000 turns."""
CONNECTIONS = 4
FD_DIR = Path("/proc/self/fd")

pytestmark = pytest.mark.timeout(SECONDS + 120)


def open_fds() -> int | None:
    """Open file descriptors of this process (None where /proc is not available)."""
    return len(os.listdir(FD_DIR)) if FD_DIR.is_dir() else None


def open_connections(server: ResponsesServer) -> int:
    return sum(1 for c in server.stats.connections if c.open)


# --------------------------------------------------------------------------- faults


Hook = Callable[[ResponsesServer], None]


def _nothing(server: ResponsesServer) -> None:
    pass


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault for one turn: armed before it, disarmed after its first attempt."""

    name: str
    arm: Hook
    raises: type[llmkit.LLMKitError] | None = None
    """The exception the turn must raise (the agent then retries); None: an answer."""
    billed: int = 0
    """Generations the failed attempt costs (the model ran, the answer is lost)."""
    disarm: Hook = _nothing
    abandon: bool = False
    """The agent itself abandons the turn's stream after its first part, then retries."""


def _close_idle(server: ResponsesServer) -> None:
    assert server.faults.close_idle() >= 1


def _reject_upgrade(status: int | None) -> Hook:
    def arm(server: ResponsesServer) -> None:
        _close_idle(server)  # the turn has to connect again
        server.faults.reject_upgrades(status=status)

    return arm


def _age_limit(server: ResponsesServer) -> None:
    time.sleep(0.06)  # the connection in use is now older than the limit
    server.max_connection_age = 0.05


def _no_age_limit(server: ResponsesServer) -> None:
    server.max_connection_age = None


def _frame_limit(server: ResponsesServer) -> None:
    server.faults.max_frame_size = 40


def _no_frame_limit(server: ResponsesServer) -> None:
    server.faults.max_frame_size = None


def _unknown_events(server: ResponsesServer) -> None:
    server.faults.unknown_events = True


def _no_unknown_events(server: ResponsesServer) -> None:
    server.faults.unknown_events = False


def _keepalives(server: ResponsesServer) -> None:
    server.keepalive_interval = 0.001
    server.faults.slow(0.004)


def _no_keepalives(server: ResponsesServer) -> None:
    server.keepalive_interval = None


ROTATION: tuple[Fault, ...] = (
    Fault("drop_after(4)", lambda s: s.faults.drop_after(4), llmkit.ConnectionClosed, 1),
    Fault("fail_next", lambda s: s.faults.fail_next(), llmkit.ResponseFailed, 1),
    Fault(
        "error_next(500)",
        lambda s: s.faults.error_next(status=500),
        llmkit.InternalServerError,
    ),
    Fault(
        "error_next(previous_response_not_found)",
        lambda s: s.faults.error_next(code="previous_response_not_found", message="gone"),
    ),
    Fault("close_idle", _close_idle),
    Fault("max_connection_age", _age_limit, disarm=_no_age_limit),
    Fault("reject_upgrades(503)", _reject_upgrade(503)),
    Fault(
        "error_next(flat)",
        lambda s: s.faults.error_next(code="engine_down", status=503, shape="flat"),
        llmkit.ResponseFailed,
    ),
    Fault("max_frame_size", _frame_limit, disarm=_no_frame_limit),
    Fault("drop_after(0)", lambda s: s.faults.drop_after(0), llmkit.ConnectionClosed, 1),
    Fault("abandoned stream", _nothing, billed=1, abandon=True),
    Fault("reject_upgrades(TCP drop)", _reject_upgrade(None)),
    Fault("unknown_events", _unknown_events, disarm=_no_unknown_events),
    Fault("slow with keepalives", _keepalives, disarm=_no_keepalives),
    Fault(
        "error_next(websocket_connection_limit_reached)",
        lambda s: s.faults.error_next(code="websocket_connection_limit_reached"),
    ),
)
ROUNDS = len(ROTATION) + 1
FAULT_EVERY = 100 if TURNS >= 100 * ROUNDS else max(10, TURNS // ROUNDS)
"""~100 turns; shorter runs inject more often, so that every fault comes up."""
MODES = ("generate", "stream", "warm-up, stream")
"""How the agent consumes its loops, in turn: the soak covers all three."""


# --------------------------------------------------------------------------- the agent


@dataclass
class Figures:
    """What the soak did; printed at the end, asserted on after."""

    turns: int = 0
    loops: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    raised: Counter[str] = field(default_factory=Counter)
    recovered: int = 0
    wrong_answers: int = 0
    unexpected: list[str] = field(default_factory=list)
    billed_failures: int = 0
    warmups: int = 0
    generations: int = 0
    server_warmups: int = 0
    context_violations: int = 0
    requests: int = 0
    http_requests: int = 0
    incremental: int = 0
    memory: list[tuple[int, int]] = field(default_factory=list)
    fds: list[int | None] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    connections_open: list[int] = field(default_factory=list)
    stopped_early: bool = False
    seconds: float = 0.0

    def report(self) -> str:
        memory = ", ".join(f"{t}: {b / 1024:.0f} KiB" for t, b in self.memory)
        return "\n".join(
            [
                "",
                f"soak: {self.turns} turns in {self.loops} tool loops, {self.seconds:.1f} s"
                + (" (stopped early: time budget)" if self.stopped_early else ""),
                f"  faults injected: {sum(self.faults.values())} (one every {FAULT_EVERY} "
                f"turns) {dict(self.faults)}",
                f"  raised and retried by the agent: {dict(self.raised)}",
                f"  recoveries: {self.recovered}",
                f"  wrong answers: {self.wrong_answers}, unexpected errors: "
                f"{len(self.unexpected)} {self.unexpected[:3]}",
                f"  context violations: {self.context_violations}",
                f"  generations: {self.generations} (turns {self.turns} + lost to faults "
                f"{self.billed_failures}), warm-ups: {self.server_warmups} "
                f"(agent saw {self.warmups})",
                f"  requests: {self.requests}, over HTTP {self.http_requests}, "
                f"incremental turns {self.incremental}",
                f"  fds (start, per window, end): {self.fds}",
                f"  threads (start, per window, end): {self.threads}",
                f"  server WebSockets open per window: {self.connections_open}",
                f"  traced memory per window (turns: size): {memory}",
            ]
        )


class Soak:
    """The agent: tool loops back to back, a fault now and then, retries from history."""

    def __init__(self, server: ResponsesServer, model: llmkit.LanguageModel) -> None:
        self.server = server
        self.model = model
        self.figures = Figures()
        self.rotation = itertools.cycle(ROTATION)
        self.next_fault = FAULT_EVERY // 2

    def run(self, turns: int, deadline: float) -> None:
        window_end = SAMPLE_EVERY
        while self.figures.turns < turns:
            if time.monotonic() > deadline:
                self.figures.stopped_early = True
                break
            self.tool_loop()
            if self.figures.turns >= window_end:
                self.end_window()
                window_end += SAMPLE_EVERY
        if not self.figures.memory or self.figures.memory[-1][0] != self.figures.turns:
            self.end_window()  # the last, shorter window

    def tool_loop(self) -> None:
        number = self.figures.loops
        mode = MODES[number % len(MODES)]
        steps = 5 + number % 7
        history: list[llmkit.Message] = [
            llmkit.UserMessage(f"Soak loop {number}: sum 1..{steps} with add [steps={steps}]")
        ]
        self.figures.loops += 1
        if mode.startswith("warm-up"):
            warmed = self.model.warmup(llmkit.Call(history, tools=[ADD]))
            self.figures.warmups += warmed.transport == "websocket"
        answer: llmkit.Response | None = None
        for _ in range(steps + 1):
            response = self.turn(history, streaming=mode != "generate")
            if response is None:  # the turn failed for good
                break
            history.append(response.message)
            if not response.tool_calls:
                answer = response
                break
            history.append(llmkit.ToolMessage([run_tool(c) for c in response.tool_calls]))
        expected = steps * (steps + 1) // 2
        items = 2 * steps + 1
        wanted = (
            f"The answer is {expected}. [user=1 assistant=0 tool_outputs={steps} items={items}]"
        )
        if answer is None or answer.text != wanted:
            self.figures.wrong_answers += 1

    def call(self, call: llmkit.Call, *, streaming: bool) -> llmkit.Response:
        if not streaming:
            return self.model.generate(call)
        text: list[str] = []
        with self.model.stream(call) as stream:
            for part in stream:
                if isinstance(part, llmkit.TextDelta):
                    text.append(part.delta)
            response = stream.response
        if "".join(text) != response.text:
            self.figures.wrong_answers += 1
        return response

    def abandon(self, call: llmkit.Call) -> None:
        """Leave a stream after its first part, as a cancelled agent would."""
        with self.model.stream(call) as stream:
            next(iter(stream))

    def turn(self, history: list[llmkit.Message], *, streaming: bool) -> llmkit.Response | None:
        """One model call, with the fault due (if any) and the agent's retries."""
        fault: Fault | None = None
        if self.figures.turns >= self.next_fault:
            fault = next(self.rotation)
            self.next_fault += FAULT_EVERY
            self.figures.faults[fault.name] += 1
            fault.arm(self.server)
        call = llmkit.Call(history, tools=[ADD])
        if fault is not None and fault.abandon:
            self.abandon(call)
            self.figures.billed_failures += fault.billed
        for attempt in range(3):
            try:
                response = self.call(call, streaming=streaming)
            except llmkit.LLMKitError as exc:
                self.failed(fault if attempt == 0 else None, exc)
                continue
            finally:
                if fault is not None and attempt == 0:
                    fault.disarm(self.server)
            if fault is not None and attempt == 0 and fault.raises is not None:
                self.figures.unexpected.append(f"{fault.name}: answered, expected a raise")
            self.figures.turns += 1
            self.figures.incremental += response.metadata.input_mode == "incremental"
            if fault is not None:
                self.figures.recovered += 1
            return response
        return None

    def failed(self, fault: Fault | None, exc: llmkit.LLMKitError) -> None:
        """Account for an exception: expected for the fault, or a failure."""
        assert exc.partial is not None  # every raise carries what arrived
        if fault is None or fault.raises is None or type(exc) is not fault.raises:
            where = fault.name if fault is not None else "no fault"
            self.figures.unexpected.append(f"{where}: {exc!r}")
            return
        self.figures.raised[type(exc).__name__] += 1
        self.figures.billed_failures += fault.billed

    def end_window(self) -> None:
        """Collect the server's figures, reset it, sample memory, sockets and threads."""
        stats = self.server.stats
        records = stats.requests
        self.figures.generations += stats.generations
        self.figures.server_warmups += stats.warmups
        self.figures.context_violations += stats.context_violations
        self.figures.requests += len(records)
        self.figures.http_requests += sum(1 for r in records if r.transport == "http")
        self.figures.connections_open.append(open_connections(self.server))
        self.server.reset()
        wait_until_closed(self.server, None, self.figures.threads[0])
        gc.collect()
        self.figures.memory.append((self.figures.turns, tracemalloc.get_traced_memory()[0]))
        self.figures.fds.append(open_fds())
        self.figures.threads.append(threading.active_count())


def wait_until_closed(server: ResponsesServer, fds: int | None, threads: int | None = None) -> None:
    """The server closes its side asynchronously; wait (bounded) for it, and for the
    client to notice (its keepalive thread ends with the last open socket)."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        now = open_fds()
        if (
            not open_connections(server)
            and (fds is None or now is None or now <= fds)
            and (threads is None or threading.active_count() <= threads)
        ):
            return
        time.sleep(0.02)


@pytest.mark.parametrize("lanes", [True, False], ids=["lanes", "no-lanes"])
def test_soak(server: ResponsesServer, lanes: bool) -> None:
    fds, threads = open_fds(), threading.active_count()
    started = time.monotonic()
    tracemalloc.start()
    try:
        with provider(
            server,
            "websocket",
            timeout=10.0,
            ws_max_connections=CONNECTIONS,
            ws_cooldown=0.01,
            ws_cooldown_max=0.02,
            ws_lanes=lanes,
        ) as p:
            soak = Soak(server, p.language_model("scripted-soak"))
            soak.figures.fds.append(fds)
            soak.figures.threads.append(threads)
            soak.run(TURNS, started + SECONDS)
    finally:
        tracemalloc.stop()
    wait_until_closed(server, fds)
    figures = soak.figures
    figures.fds.append(open_fds())
    figures.threads.append(threading.active_count())
    figures.seconds = time.monotonic() - started
    print(figures.report())

    assert figures.unexpected == []
    assert figures.wrong_answers == 0
    assert figures.context_violations == 0
    assert figures.recovered == sum(figures.faults.values())
    assert figures.generations == figures.turns + figures.billed_failures
    assert figures.server_warmups == figures.warmups
    assert figures.turns >= TURNS or figures.stopped_early
    # Sockets and threads: nothing grows, and everything is released at the end.
    assert max(figures.connections_open) <= CONNECTIONS
    assert set(figures.threads) == {threads}
    if fds is not None:
        window_fds = [n for n in figures.fds[1:-1] if n is not None]
        assert max(window_fds) - min(window_fds) <= CONNECTIONS
        assert figures.fds[-1] is not None and figures.fds[-1] <= fds
    assert open_connections(server) == 0
    # Memory: flat after the first window.
    assert len(figures.memory) >= 2 or figures.stopped_early
    warm = figures.memory[0][1]
    for turns, size in figures.memory[1:]:
        assert abs(size - warm) <= MEMORY_TOLERANCE, f"memory at {turns} turns: {size} vs {warm}"


IDLE = float(os.environ.get("LLMKIT_SOAK_IDLE", "60" if LONG else "2"))
"""Seconds a socket sits idle between two turns in `test_a_long_idle_keeps_the_chain`
(a slow tool): 60 under ``make soak``, 2 in ``make test``."""


@pytest.mark.parametrize("lanes", [True, False], ids=["lanes", "no-lanes"])
@pytest.mark.parametrize(
    "transport", [Transport("websocket"), Transport("websocket", is_async=True)]
)
def test_a_long_idle_keeps_the_chain(
    server: ResponsesServer, transport: Transport, lanes: bool
) -> None:
    """A server that pings every 0.5 s (pong due within 1 s) and an agent whose tool runs
    `IDLE` seconds: the next turn is incremental on the same socket, both providers,
    with client pings going out meanwhile too."""
    server.ws_ping_interval = 0.5
    server.ws_pong_timeout = 1.0
    with provider(server, transport, ws_keepalive=min(5.0, IDLE / 4), ws_lanes=lanes) as p:
        model = p.language_model("m")
        first = model.generate(llmkit.Call("one"))
        time.sleep(IDLE)
        history: list[llmkit.Message] = [
            llmkit.UserMessage("one"),
            first.message,
            llmkit.UserMessage("two"),
        ]
        second = model.generate(llmkit.Call(history))
    assert second.text.startswith("Echo: two [user=2 assistant=1")
    assert second.metadata.input_mode == "incremental"
    assert second.metadata.connection_reused
    assert (server.stats.connections_opened, server.stats.ping_timeouts) == (1, 0)
