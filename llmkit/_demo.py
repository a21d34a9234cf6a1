"""`python -m llmkit demo`: one tool-calling agent over HTTP and over WebSocket mode.

Starts the local server with simulated model latency (unless ``--base-url`` points at a
real endpoint), runs the same multi-step ``add`` task with `ToolLoop` over the Responses
API on HTTP and in WebSocket mode, streams progress, and prints a side-by-side table.
Then, on the local server, concurrent agents with forked sub-agents over HTTP, WebSocket
without lanes and WebSocket with lanes (`_demo_crew`), in a second table.
The exit code is 0 only when every run gives the correct answers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from llmkit._demo_crew import (
    AGENTS,
    CREW_ROWS,
    PARENT_STEPS,
    SUB_STEPS,
    SUBAGENTS,
    CrewRun,
    run_crew,
)
from llmkit.exceptions import LLMKitError
from llmkit.openai.provider import Provider
from llmkit.stream import StreamPart, TextDelta
from llmkit.tool_loop import ToolLoop, ToolLoopResult, ToolLoopStep, tool

if TYPE_CHECKING:
    from llmkit.testing import ResponsesServer

__all__ = ["DEMO_LATENCY", "DemoRun", "Latency", "add_demo_command", "run_demo"]

LOCAL_MODEL = "scripted-demo"


@dataclass(frozen=True, slots=True)
class Latency:
    """The local server's simulated latency (`ResponsesServer` settings of the same name)."""

    ttft: float = 0.0
    """Seconds to first token of every response."""
    cost_per_input_token: float = 0.0
    """Seconds more per input token the model must process (not chained on a head)."""
    token_delay: float = 0.0
    """Seconds per streamed delta."""

    def describe(self) -> str:
        return (
            f"{self.ttft * 1000:.0f} ms to first token + {self.cost_per_input_token * 1000:g} ms "
            f"per uncached input token, {self.token_delay * 1000:g} ms per token"
        )


# 4,000 input tokens a second of prefill: a resent history costs time, as on the service.
DEMO_LATENCY = Latency(ttft=0.12, cost_per_input_token=0.00025, token_delay=0.004)


@tool
def add(a: int, b: int) -> int:
    """Add two integers and return the sum."""
    return a + b


def task(steps: int) -> str:
    """The prompt: a sum the model must build one ``add`` call at a time."""
    return (
        f"Compute 1 + 2 + ... + {steps} with the add tool, one call per step: start with "
        "add(a=0, b=1), then add the previous result and the next number. When done, "
        f"reply exactly 'The answer is <sum>.' [steps={steps}]"
    )


@dataclass(frozen=True, slots=True)
class DemoRun:
    """The figures of one run, for the table."""

    label: str
    result: ToolLoopResult | None
    wall: float

    @property
    def requests(self) -> int:
        if self.result is None:
            return 0
        return len(self.result.steps)

    def column(self) -> list[str]:
        result = self.result
        if result is None:
            return ["failed"] + [""] * (len(ROWS) - 1)
        steps = result.steps
        ttfts = [s.metadata.time_to_first_token for s in steps]
        measured = [t for t in ttfts if t is not None]
        processed = sum(
            s.response.usage.input_tokens - s.response.usage.cache_read_tokens for s in steps
        )
        return [
            str(len(steps)),
            str(self.requests),
            f"{sum(s.metadata.bytes_sent for s in steps):,} B",
            f"{sum(s.metadata.input_mode == 'incremental' for s in steps)} of {len(steps)}",
            f"{processed:,}",
            f"{statistics.median(measured) * 1000:.0f} ms" if measured else "-",
            f"{self.wall:.2f} s",
            str(sum(s.metadata.fallback_reason is not None for s in steps)),
        ]


ROWS = [
    "steps",
    "requests",
    "bytes sent",
    "incremental turns",
    "input tokens processed",
    "time to first token (median)",
    "wall time",
    "fallbacks to HTTP",
]


def add_demo_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="run one tool-calling agent over HTTP and WebSocket mode, side by side",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help="a real OpenAI-compatible endpoint (key from OPENAI_API_KEY); "
        "default: the built-in local server",
    )
    parser.add_argument("--model", default=None, help=f"model id (local default {LOCAL_MODEL})")
    parser.add_argument("--steps", type=int, default=8, help="tool calls in the task (default 8)")
    parser.add_argument(
        "--agents",
        type=int,
        default=AGENTS,
        help=f"concurrent agents of the second table, local server only (default {AGENTS}; "
        "0: no second table)",
    )
    parser.set_defaults(
        run=lambda args: run_demo(args.base_url, args.model, args.steps, agents=args.agents)
    )


def run_demo(
    base_url: str | None,
    model: str | None,
    steps: int,
    out: TextIO | None = None,
    *,
    agents: int = 0,
    latency: Latency = DEMO_LATENCY,
) -> int:
    """Run the demo; returns the exit code (0: every run gave its correct answers).

    ``agents`` > 0 adds the concurrent table (`_demo_crew`), on the local server only;
    ``latency`` is the local server's.
    """
    stream = out or sys.stdout
    if steps < 1 or agents < 0:
        print("llmkit demo: --steps must be >= 1 and --agents >= 0", file=stream)
        return 2
    if base_url is not None and model is None:
        print("llmkit demo: --model is required with --base-url", file=stream)
        return 2
    expected = f"The answer is {steps * (steps + 1) // 2}"
    crews: list[CrewRun] = []
    with _endpoint(base_url, stream, latency) as (url, server):
        runs = [
            _run("HTTP", url, model or LOCAL_MODEL, steps, websocket=False, out=stream),
            _run("WebSocket", url, model or LOCAL_MODEL, steps, websocket=True, out=stream),
        ]
        _table([r.label for r in runs], [r.column() for r in runs], ROWS, stream)
        answers = [_answer(run, expected) for run in runs]
        single_ok = all(answers) and answers[0] == answers[1]
        if single_ok:
            print(f"\nBoth runs answered: {answers[0]}. OK", file=stream)
        else:
            print(f"\nThe runs did not both answer {expected!r}: {answers}", file=stream)
        if server is not None and agents > 0:
            crews = _crews(server, model or LOCAL_MODEL, agents, stream)
        elif agents > 0:
            print("\n(The concurrent agents table runs on the local server only.)", file=stream)
    return 0 if single_ok and all(c.ok for c in crews) else 1


def _crews(server: ResponsesServer, model_id: str, agents: int, out: TextIO) -> list[CrewRun]:
    """The second table: the crew over HTTP, WebSocket without lanes and with lanes."""
    print(
        f"\n== {agents} concurrent agents (threads, one Provider): each a {PARENT_STEPS}-step "
        f"tool loop on a shared context,\n   then {SUBAGENTS} sub-agents continuing from its "
        f"answer in parallel, each a {SUB_STEPS}-step tool loop ==",
        file=out,
        flush=True,
    )

    def stats() -> tuple[int, int]:
        return server.stats.connections_opened, server.stats.max_in_flight

    crews = []
    for label, websocket, lanes in WAYS:
        server.reset()
        crew = run_crew(
            label,
            server.base_url,
            model_id,
            websocket=websocket,
            lanes=lanes,
            agents=agents,
            stats=stats,
        )
        print(
            f"  {label}: {crew.wall:.2f} s, {crew.correct} of {crew.conversations} correct",
            file=out,
            flush=True,
        )
        for error in crew.errors[:3]:
            print(f"    {error}", file=out)
        crews.append(crew)
    _table([c.label for c in crews], [c.column() for c in crews], CREW_ROWS, out)
    if all(c.ok for c in crews):
        print(
            f"\nAll {len(crews)} ways: every agent and sub-agent answered correctly. OK", file=out
        )
    return crews


WAYS = [("HTTP", False, False), ("WS, no lanes", True, False), ("WS, lanes", True, True)]


@contextmanager
def _endpoint(
    base_url: str | None, out: TextIO, latency: Latency
) -> Iterator[tuple[str, ResponsesServer | None]]:
    if base_url is not None:
        print(f"Endpoint: {base_url}", file=out)
        yield base_url, None
        return
    from llmkit.testing import ResponsesServer

    with ResponsesServer(
        ttft=latency.ttft,
        cost_per_input_token=latency.cost_per_input_token,
        token_delay=latency.token_delay,
    ) as server:
        print(
            f"Local server on {server.base_url} (scripted model; simulated latency: "
            f"{latency.describe()})",
            file=out,
        )
        yield server.base_url, server


def _run(
    label: str, base_url: str, model_id: str, steps: int, *, websocket: bool, out: TextIO
) -> DemoRun:
    print(f"\n== {label} ==", file=out, flush=True)
    api_key = os.environ.get("OPENAI_API_KEY")
    provider = Provider(
        api_key=api_key, base_url=base_url, use_responses_api=True, websocket=websocket
    )
    started = time.perf_counter()
    try:
        with provider:
            loop = ToolLoop(provider.language_model(model_id), [add], max_steps=steps + 3)
            result = loop.run(task(steps), on_part=_printer(out), on_step=_progress(out))
    except LLMKitError as exc:
        print(f"  failed: {type(exc).__name__}: {exc}", file=out)
        return DemoRun(label, None, time.perf_counter() - started)
    return DemoRun(label, result, time.perf_counter() - started)


def _printer(out: TextIO) -> Callable[[StreamPart], None]:
    def show(part: StreamPart) -> None:
        if isinstance(part, TextDelta):
            out.write(part.delta)
            out.flush()

    return show


def _progress(out: TextIO) -> Callable[[ToolLoopStep], None]:
    def show(step: ToolLoopStep) -> None:
        meta = step.metadata
        ttft = "-" if meta.time_to_first_token is None else f"{meta.time_to_first_token * 1000:.0f}"
        calls = ", ".join(
            f"{c.name}({c.arguments}) -> {r.output}"
            for c, r in zip(step.response.tool_calls, step.results, strict=True)
        )
        if not calls:
            out.write("\n")
        print(
            f"  step {step.number:>2}  {calls or 'final answer':<34} "
            f"{meta.bytes_sent:>6} B sent ({meta.input_mode}), first token {ttft} ms",
            file=out,
            flush=True,
        )

    return show


def _table(labels: list[str], columns: list[list[str]], rows: list[str], out: TextIO) -> None:
    width = max(len(row) for row in rows)
    widths = [
        max(len(label), *(len(cell) for cell in col))
        for label, col in zip(labels, columns, strict=True)
    ]
    print(
        "\n"
        + " " * width
        + "  "
        + "  ".join(label.rjust(w) for label, w in zip(labels, widths, strict=True)),
        file=out,
    )
    for index, row in enumerate(rows):
        cells = "  ".join(col[index].rjust(w) for col, w in zip(columns, widths, strict=True))
        print(f"{row.ljust(width)}  {cells}", file=out)


def _answer(run: DemoRun, expected: str) -> str | None:
    if run.result is None or not run.result.finished:
        return None
    return expected if expected in run.result.text else None
