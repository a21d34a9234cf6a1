"""`python -m llmkit demo`: one tool-calling agent over HTTP and over WebSocket mode.

Starts the local server with simulated model latency (unless ``--base-url`` points at a
real endpoint), runs the same multi-step ``add`` task with `ToolLoop` over the Responses
API on HTTP and in WebSocket mode, streams progress, and prints a side-by-side table.
The exit code is 0 only when both runs give the same, correct answer.
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
from typing import TextIO

from llmkit.exceptions import LLMKitError
from llmkit.openai.provider import Provider
from llmkit.stream import StreamPart, TextDelta
from llmkit.tool_loop import ToolLoop, ToolLoopResult, ToolLoopStep, tool

__all__ = ["DemoRun", "add_demo_command", "run_demo"]

LOCAL_MODEL = "scripted-demo"
# Simulated latency of the local server: time to first token, then per streamed delta.
DEMO_TTFT = 0.12
DEMO_TOKEN_DELAY = 0.004


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
            return ["failed"] + [""] * 6
        steps = result.steps
        ttfts = [s.metadata.time_to_first_token for s in steps]
        measured = [t for t in ttfts if t is not None]
        return [
            str(len(steps)),
            str(self.requests),
            f"{sum(s.metadata.bytes_sent for s in steps):,} B",
            f"{sum(s.metadata.input_mode == 'incremental' for s in steps)} of {len(steps)}",
            f"{statistics.median(measured) * 1000:.0f} ms" if measured else "-",
            f"{self.wall:.2f} s",
            str(sum(s.metadata.fallback_reason is not None for s in steps)),
        ]


ROWS = [
    "steps",
    "requests",
    "bytes sent",
    "incremental turns",
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
    parser.set_defaults(run=lambda args: run_demo(args.base_url, args.model, args.steps))


def run_demo(base_url: str | None, model: str | None, steps: int, out: TextIO | None = None) -> int:
    """Run the demo; returns the exit code (0: both runs gave the same correct answer)."""
    stream = out or sys.stdout
    if steps < 1:
        print("llmkit demo: --steps must be >= 1", file=stream)
        return 2
    if base_url is not None and model is None:
        print("llmkit demo: --model is required with --base-url", file=stream)
        return 2
    expected = f"The answer is {steps * (steps + 1) // 2}"
    with _endpoint(base_url, stream) as url:
        runs = [
            _run("HTTP", url, model or LOCAL_MODEL, steps, websocket=False, out=stream),
            _run("WebSocket", url, model or LOCAL_MODEL, steps, websocket=True, out=stream),
        ]
    _table(runs, stream)
    answers = [_answer(run, expected) for run in runs]
    if all(answers) and answers[0] == answers[1]:
        print(f"\nBoth runs answered: {answers[0]}. OK", file=stream)
        return 0
    print(f"\nThe runs did not both answer {expected!r}: {answers}", file=stream)
    return 1


@contextmanager
def _endpoint(base_url: str | None, out: TextIO) -> Iterator[str]:
    if base_url is not None:
        print(f"Endpoint: {base_url}", file=out)
        yield base_url
        return
    from llmkit.testing import ResponsesServer

    with ResponsesServer(ttft=DEMO_TTFT, token_delay=DEMO_TOKEN_DELAY) as server:
        print(
            f"Local server on {server.base_url} (scripted model; simulated latency: "
            f"{DEMO_TTFT * 1000:.0f} ms to first token, {DEMO_TOKEN_DELAY * 1000:.0f} ms "
            "per token)",
            file=out,
        )
        yield server.base_url


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


def _table(runs: list[DemoRun], out: TextIO) -> None:
    columns = [run.column() for run in runs]
    width = max(len(row) for row in ROWS)
    widths = [
        max(len(run.label), *(len(cell) for cell in col))
        for run, col in zip(runs, columns, strict=True)
    ]
    print(
        "\n"
        + " " * width
        + "  "
        + "  ".join(run.label.rjust(w) for run, w in zip(runs, widths, strict=True)),
        file=out,
    )
    for index, row in enumerate(ROWS):
        cells = "  ".join(col[index].rjust(w) for col, w in zip(columns, widths, strict=True))
        print(f"{row.ljust(width)}  {cells}", file=out)


def _answer(run: DemoRun, expected: str) -> str | None:
    if run.result is None or not run.result.finished:
        return None
    return expected if expected in run.result.text else None
