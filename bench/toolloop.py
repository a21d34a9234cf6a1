"""Benchmark 2: a 50-step tool loop (51 model calls), per-turn bytes, CPU and wall time.

The scripted tool model calls ``add(a, b)`` with ``a`` = the last result and ``b`` = the
step while fewer than ``[steps=50]`` results follow the user message, then answers
``The answer is 1275.`` (1 + 2 + ... + 50). Four loops run it:

- llmkit HTTP: `ToolLoop` on `Provider(use_responses_api=True)`, the full history each turn;
- llmkit WS: the same with ``websocket=True`` (only new items, chained);
- openai HTTP: `client.responses.create(..., stream=True)` with the full history each turn
  (the documented ``input += response.output`` loop); bytes from an httpx request hook;
- openai WS: `client.responses.connect()`, chained by hand: only the new tool outputs with
  ``previous_response_id`` and ``store: false``; bytes are the sent frames' sizes.

A turn is one model call plus running its tool; each run makes fresh clients, so turn 1
includes connecting. Every run's final answer is checked.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai

import llmkit
from bench.common import BenchError, median, rotated

STEPS = 50
PROMPT = f"Add 1 + 2 + ... + {STEPS}, one number per call of the add tool. [steps={STEPS}]"
EXPECTED = f"The answer is {STEPS * (STEPS + 1) // 2}."
MODEL = "bench-tools"
LOOPS = ("llmkit HTTP", "llmkit WS", "openai HTTP", "openai WS")


@llmkit.tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def _openai_tool() -> dict[str, Any]:
    """The same function tool llmkit declares, in the openai SDK's request shape."""
    spec = add.spec
    tool: dict[str, Any] = {"type": "function", "name": spec.name}
    if spec.description is not None:
        tool["description"] = spec.description
    tool["parameters"] = dict(spec.parameters)
    if spec.strict is not None:
        tool["strict"] = spec.strict
    return tool


@dataclass(slots=True)
class Turn:
    bytes_sent: int
    cpu: float
    wall: float


@dataclass(slots=True)
class LoopResult:
    name: str
    runs: list[list[Turn]] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)

    @property
    def turns(self) -> int:
        return len(self.runs[0]) if self.runs else 0

    def per_turn(self, attribute: str) -> list[float]:
        """The median over runs of each turn's figure."""
        return [
            median([getattr(run[i], attribute) for run in self.runs]) for i in range(self.turns)
        ]

    @property
    def total_bytes(self) -> int:
        return int(median([sum(t.bytes_sent for t in run) for run in self.runs]))

    @property
    def total_cpu(self) -> float:
        return median([sum(t.cpu for t in run) for run in self.runs])

    @property
    def total_wall(self) -> float:
        return median([sum(t.wall for t in run) for run in self.runs])

    @property
    def cpu_per_turn(self) -> float:
        return self.total_cpu / self.turns

    @property
    def wall_per_turn(self) -> float:
        return self.total_wall / self.turns

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "turns": self.turns,
            "total_bytes": self.total_bytes,
            "total_cpu": self.total_cpu,
            "total_wall": self.total_wall,
            "bytes_per_turn": self.per_turn("bytes_sent"),
            "cpu_per_turn": self.per_turn("cpu"),
            "wall_per_turn": self.per_turn("wall"),
            "answers": sorted(set(self.answers)),
        }


class _Clock:
    """Per-turn marks: each `mark` closes the turn that began at the previous one."""

    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def mark(self, bytes_sent: int) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.turns.append(Turn(bytes_sent, cpu - self._cpu, wall - self._wall))
        self._wall, self._cpu = wall, cpu


# -- the four loops ----------------------------------------------------------------------------
def _llmkit_loop(base_url: str, *, websocket: bool) -> tuple[str, list[Turn]]:
    with llmkit.Provider(
        api_key="bench",
        base_url=base_url,
        use_responses_api=True,
        websocket=websocket,
        max_retries=0,
    ) as provider:
        loop = llmkit.ToolLoop(provider.language_model(MODEL), [add], max_steps=STEPS + 1)
        gc.collect()
        clock = _Clock()
        result = loop.run(PROMPT, on_step=lambda step: clock.mark(step.metadata.bytes_sent))
        if websocket and any(s.metadata.transport != "websocket" for s in result.steps):
            raise BenchError("llmkit WS: a step went over HTTP")
        return result.text, clock.turns


def _add_results(output: list[Any]) -> list[dict[str, Any]]:
    results = []
    for item in output:
        if item.type == "function_call":
            args = json.loads(item.arguments)
            value = args["a"] + args["b"]
            results.append(
                {"type": "function_call_output", "call_id": item.call_id, "output": str(value)}
            )
    return results


def _openai_http_loop(base_url: str) -> tuple[str, list[Turn]]:
    sent = [0]

    def count(request: Any) -> None:
        sent[0] += len(request.content)

    http_client = openai.DefaultHttpxClient(event_hooks={"request": [count]})
    with openai.OpenAI(
        api_key="bench", base_url=base_url, max_retries=0, http_client=http_client
    ) as client:
        tools: Any = [_openai_tool()]
        history: list[Any] = [{"role": "user", "content": PROMPT}]
        gc.collect()
        clock = _Clock()
        for _ in range(STEPS + 1):
            before = sent[0]
            response = None
            with client.responses.create(
                model=MODEL, input=history, tools=tools, store=False, stream=True
            ) as events:
                for event in events:
                    if event.type == "response.completed":
                        response = event.response
            if response is None:
                raise BenchError("openai HTTP: no response.completed")
            history += response.output
            results = _add_results(response.output)
            history += results
            clock.mark(sent[0] - before)
            if not results:
                return response.output_text, clock.turns
    raise BenchError("openai HTTP: the loop did not finish")


def _openai_ws_loop(base_url: str) -> tuple[str, list[Turn]]:
    sent = [0]
    with openai.OpenAI(api_key="bench", base_url=base_url, max_retries=0) as client:
        tools: Any = [_openai_tool()]
        gc.collect()
        clock = _Clock()
        with client.responses.connect() as connection:
            # Count what goes on the wire: the SDK sends each event through `_send`.
            raw_send = connection._send

            def counting_send(data: bytes | str) -> None:
                sent[0] += len(data.encode() if isinstance(data, str) else data)
                raw_send(data)

            connection._send = counting_send  # type: ignore[method-assign]
            new_items: list[Any] = [{"role": "user", "content": PROMPT}]
            previous: dict[str, Any] = {}
            for _ in range(STEPS + 1):
                before = sent[0]
                connection.response.create(
                    model=MODEL, input=new_items, tools=tools, store=False, **previous
                )
                response = None
                for event in connection:
                    if event.type == "response.completed":
                        response = event.response
                        break
                    if event.type in ("error", "response.failed", "response.incomplete"):
                        raise BenchError(f"openai WS: {event}")
                if response is None:
                    raise BenchError("openai WS: the connection ended")
                new_items = _add_results(response.output)
                previous = {"previous_response_id": response.id}
                clock.mark(sent[0] - before)
                if not new_items:
                    return response.output_text, clock.turns
    raise BenchError("openai WS: the loop did not finish")


def _loops(base_url: str) -> dict[str, Callable[[], tuple[str, list[Turn]]]]:
    return {
        "llmkit HTTP": lambda: _llmkit_loop(base_url, websocket=False),
        "llmkit WS": lambda: _llmkit_loop(base_url, websocket=True),
        "openai HTTP": lambda: _openai_http_loop(base_url),
        "openai WS": lambda: _openai_ws_loop(base_url),
    }


def run(base_url: str, *, repeat: int, log: Callable[[str], None]) -> dict[str, LoopResult]:
    loops = _loops(base_url)
    for name, loop in loops.items():  # warm-up: imports, pydantic schemas, caches
        text, _ = loop()
        if not text.startswith(EXPECTED):
            raise BenchError(f"{name}: wrong answer {text!r}")
    results = {name: LoopResult(name) for name in loops}
    for round_ in range(repeat):
        for name in rotated(list(loops), round_):
            text, turns = loops[name]()
            if not text.startswith(EXPECTED):
                raise BenchError(f"{name}: wrong answer {text!r}, expected {EXPECTED!r}")
            if len(turns) != STEPS + 1:
                raise BenchError(f"{name}: {len(turns)} turns, expected {STEPS + 1}")
            results[name].runs.append(turns)
            results[name].answers.append(text.split(" [", 1)[0])
            total_cpu = sum(t.cpu for t in turns)
            log(
                f"  tool loop round {round_ + 1}/{repeat} {name:12} "
                f"{sum(t.bytes_sent for t in turns):>9,} B, {total_cpu * 1e3:7.1f} ms CPU"
            )
    return results
