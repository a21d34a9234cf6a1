"""The results: targets, `latest.md`, `latest.json` and the PNG plots (matplotlib, Agg)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.concurrency import TOOL_SECONDS, TTFT, TURNS, WayResult
from bench.memory import TRANSPORTS, SizeResult, linearity
from bench.stream import StreamResults
from bench.toolloop import EXPECTED, LOOPS, STEPS, LoopResult
from bench.ttft import FirstTokenResult

# The reference figures on the 2-core machine (client CPU µs per event).
REFERENCE_US = {
    ("openai", "http"): 71.0,
    ("openai", "websocket"): 78.0,
    ("floor", "http"): 3.0,
    ("floor", "websocket"): 11.0,
}
SPEEDUP_TARGET = 2.0  # llmkit at least 2x less CPU per event than openai
FLOOR_TARGET = 1.5  # llmkit at most 1.5x the floor's CPU per event
BYTES_TARGET = 10.0  # llmkit WS at least 10x fewer bytes than full-history HTTP
FLAT_TARGET = 1.2  # llmkit WS bytes per turn: max / min over turns 2.. at most this
# Linear: the per-token figure at the largest size is at most this times the one at the
# smallest (8x more tokens; quadratic growth would give 8, a fixed overhead less than 1).
GROWTH_TARGET = 1.25
# Concurrent agents with lanes (issue 15's acceptance): turns 2.. sent incrementally, at
# most this many sockets, at least this many responses in flight on one socket.
INCREMENTAL_TARGET = 0.99
SOCKETS_TARGET = 2
IN_FLIGHT_TARGET = 8
TRANSPORT_NAMES = {"http": "HTTP", "websocket": "WS"}
# Benchmark 1 runs every client twice: sync and asyncio. Prefixes of the figures' names.
FLAVOURS = {"sync": "", "async": "async "}


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


@dataclass(slots=True)
class Results:
    facts: dict[str, Any]
    mode: str
    repeat: int
    stream: StreamResults | None = None
    toolloop: dict[str, LoopResult] | None = None
    memory: dict[str, list[SizeResult]] | None = None
    memory_repeat: int = 0
    ttft: list[FirstTokenResult] | None = None
    ttft_rounds: int = 0
    ttft_requests: int = 0
    concurrency: list[WayResult] | None = None
    seconds: float = 0.0
    plots: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    goal: str
    figure: str
    met: bool | None  # None: nothing to judge (informational)


# -- targets --------------------------------------------------------------------------------
def targets(results: Results) -> list[Target]:
    found: list[Target] = []
    if results.stream is not None:
        found += _stream_targets(results.stream)
    if results.toolloop is not None:
        found += _toolloop_targets(results.toolloop)
    if results.memory is not None:
        found += _memory_targets(results.memory)
    if results.concurrency is not None:
        found += _concurrency_targets(results.concurrency)
    return found


@dataclass(frozen=True, slots=True)
class StreamRatios:
    """CPU per event of llmkit, openai and the floor on one transport and flavour."""

    llmkit: float
    openai: float
    floor: float

    @property
    def openai_over_llmkit(self) -> float:
        return self.openai / self.llmkit

    @property
    def llmkit_over_floor(self) -> float:
        return self.llmkit / self.floor

    @property
    def openai_over_floor(self) -> float:
        return self.openai / self.floor

    def as_dict(self) -> dict[str, float]:
        return {
            "openai_over_llmkit": self.openai_over_llmkit,
            "llmkit_over_floor": self.llmkit_over_floor,
            "openai_over_floor": self.openai_over_floor,
        }


def stream_ratios(stream: StreamResults, transport: str, flavour: str) -> StreamRatios:
    cpu = {
        library: stream.get(library, transport, flavour).cpu_us_per_event
        for library in ("llmkit", "openai", "floor")
    }
    return StreamRatios(**cpu)


def _stream_targets(stream: StreamResults) -> list[Target]:
    """Against openai: ≥ 2x, sync and asyncio alike. Against the floor: the sync figures
    (the issue's target); the asyncio ratio is reported next to it in section 1."""
    found = []
    for flavour, prefix in FLAVOURS.items():
        for transport, label in TRANSPORT_NAMES.items():
            r = stream_ratios(stream, transport, flavour)
            found.append(
                Target(
                    f"stream {prefix}{label}: llmkit vs openai",
                    f"≥ {SPEEDUP_TARGET:g}x less CPU per event",
                    f"{r.openai_over_llmkit:.2f}x ({r.llmkit:.2f} vs {r.openai:.2f} µs/event)",
                    r.openai_over_llmkit >= SPEEDUP_TARGET,
                )
            )
            if flavour == "sync":
                found.append(
                    Target(
                        f"stream {label}: llmkit vs floor",
                        f"≤ {FLOOR_TARGET:g}x the floor's CPU per event",
                        f"{r.llmkit_over_floor:.2f}x ({r.llmkit:.2f} vs {r.floor:.2f} µs/event)",
                        r.llmkit_over_floor <= FLOOR_TARGET,
                    )
                )
    return found


def flatness(loop: LoopResult) -> float:
    """max / min of the bytes sent per turn, from turn 2 on (1.0 is perfectly flat)."""
    later = loop.per_turn("bytes_sent")[1:]
    return max(later) / min(later) if later and min(later) > 0 else float("inf")


def _toolloop_targets(loops: dict[str, LoopResult]) -> list[Target]:
    ws, http = loops["llmkit WS"], loops["llmkit HTTP"]
    openai_ws = loops["openai WS"]
    ratio = http.total_bytes / ws.total_bytes
    flat = flatness(ws)
    answers_ok = all(a == EXPECTED for loop in loops.values() for a in loop.answers)
    runs = sum(len(loop.answers) for loop in loops.values())
    return [
        Target(
            f"tool loop: llmkit WS bytes vs full-history HTTP ({STEPS} steps)",
            f"≥ {BYTES_TARGET:g}x fewer bytes sent",
            f"{ratio:.1f}x ({ws.total_bytes:,} B vs {http.total_bytes:,} B)",
            ratio >= BYTES_TARGET,
        ),
        Target(
            "tool loop: llmkit WS bytes per turn are flat",
            f"max / min over turns 2..{ws.turns} ≤ {FLAT_TARGET:g}",
            f"{flat:.2f}",
            flat <= FLAT_TARGET,
        ),
        Target(
            "tool loop: llmkit WS CPU per turn vs hand-chained openai WS",
            "≤ the openai loop's",
            f"{ws.cpu_per_turn * 1e6:.0f} µs vs {openai_ws.cpu_per_turn * 1e6:.0f} µs "
            f"({openai_ws.cpu_per_turn / ws.cpu_per_turn:.1f}x less)",
            ws.cpu_per_turn <= openai_ws.cpu_per_turn,
        ),
        Target(
            "tool loop: every run's final answer",
            f"`{EXPECTED}`",
            f"{runs} of {runs} runs correct" if answers_ok else "WRONG ANSWERS",
            answers_ok,
        ),
    ]


def _memory_targets(memory: dict[str, list[SizeResult]]) -> list[Target]:
    found = []
    for transport, sizes in memory.items():
        label = TRANSPORT_NAMES[transport]
        span = f"{sizes[-1].words:,} vs {sizes[0].words:,} tokens"
        for figure, what in (("peak_bytes", "peak memory growth"), ("cpu", "CPU time")):
            fit = linearity(sizes, figure)
            found.append(
                Target(
                    f"memory {label}: {what} linear in tokens",
                    f"per-token figure at the largest size ≤ {GROWTH_TARGET:g}x the smallest's",
                    f"{fit.growth:.2f}x ({span}; R² {fit.r2:.4f})",
                    fit.growth <= GROWTH_TARGET,
                )
            )
    return found


def _concurrency_targets(ways: list[WayResult]) -> list[Target]:
    found = []
    for way in ways:
        if way.way != "WS lanes":
            continue
        found += [
            Target(
                f"concurrency ({way.flavour}): turns 2..{TURNS} incremental with lanes",
                f"≥ {INCREMENTAL_TARGET * 100:g}% of {way.agents} agents' turns",
                f"{way.incremental_share * 100:.1f}%",
                way.incremental_share >= INCREMENTAL_TARGET,
            ),
            Target(
                f"concurrency ({way.flavour}): sockets with lanes",
                f"≤ {SOCKETS_TARGET}",
                f"{way.sockets:g}",
                way.sockets <= SOCKETS_TARGET,
            ),
            Target(
                f"concurrency ({way.flavour}): responses in flight on one socket with lanes",
                f"≥ {IN_FLIGHT_TARGET}",
                f"{way.max_in_flight:g}",
                way.max_in_flight >= IN_FLIGHT_TARGET,
            ),
        ]
    return found


# -- markdown -----------------------------------------------------------------------------------
def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _mark(met: bool | None) -> str:
    return "n/a" if met is None else ("**met**" if met else "**MISSED**")


def markdown(results: Results) -> str:
    facts = results.facts
    lines = [
        "# llmkit benchmarks: results",
        "",
        f"Generated by `bench/run.py` ({results.mode} mode, repeat {results.repeat}, "
        f"{results.seconds:.0f} s) on {facts['date']}. Every figure is a median over the "
        "repetitions unless said otherwise; CPU is the client process's "
        "`time.process_time()` (the server runs in another process). "
        "See `bench/README.md` for what each figure means.",
        "",
        "## Machine",
        "",
    ]
    lines += _table(["fact", "value"], [[k, f"`{v}`"] for k, v in facts.items()])
    lines += ["## Targets", ""]
    lines += _table(
        ["target", "goal", "figure", "result"],
        [[t.name, t.goal, t.figure, _mark(t.met)] for t in targets(results)],
    )
    sections: list[Callable[[Results], list[str]]] = [
        _stream_section,
        _toolloop_section,
        _memory_section,
        _ttft_section,
        _profile_section,
        _concurrency_section,
    ]
    for section in sections:
        lines += section(results)
    history = Path(__file__).parent / "OPTIMIZATIONS.md"
    if history.exists():
        lines += ["", history.read_text(encoding="utf-8").rstrip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def _stream_section(results: Results) -> list[str]:
    stream = results.stream
    if stream is None:
        return []
    lines = [
        f"## 1. Stream throughput ({stream.events:,} text deltas per response)",
        "",
        f"One response of {stream.events:,} `response.output_text.delta` events "
        f"(`bench-words-{stream.events}`), {_runs(stream.repeat)} per client, clients "
        "interleaved. Every client runs sync and with asyncio (llmkit `AsyncProvider`, "
        "`openai.AsyncOpenAI`, an asyncio floor of `httpx.AsyncClient` and `websockets`). "
        "CPU µs/event: client CPU time per delta; events/s: deltas per second of wall "
        "time (bounded by the server on the fast clients).",
        "",
    ]
    rows = []
    for r in stream.consumers:
        if r.flavour != "sync":
            continue
        a = stream.get(r.library, r.transport, "async")
        reference = REFERENCE_US.get((r.library, r.transport))
        rows.append(
            [
                r.name,
                f"{r.cpu_us_per_event:.2f}",
                f"{a.cpu_us_per_event:.2f}",
                f"{a.cpu_us_per_event / r.cpu_us_per_event:.2f}x",
                f"{r.events_per_second:,.0f}",
                f"{a.events_per_second:,.0f}",
                f"{r.wall_us_per_event:.2f}",
                f"{a.wall_us_per_event:.2f}",
                f"~{reference:g}" if reference else "",
            ]
        )
    lines += _table(
        [
            "client",
            "CPU µs/event sync",
            "CPU µs/event async",
            "async ÷ sync (CPU)",
            "events/s sync",
            "events/s async",
            "wall µs/event sync",
            "wall µs/event async",
            "issue's reference µs (sync)",
        ],
        rows,
    )
    ratio_rows = []
    for flavour in FLAVOURS:
        for transport, label in TRANSPORT_NAMES.items():
            ratios = stream_ratios(stream, transport, flavour)
            floor_goal = f"target ≤ {FLOOR_TARGET:g}x" if flavour == "sync" else "no target"
            ratio_rows.append(
                [
                    label,
                    flavour,
                    f"{ratios.openai_over_llmkit:.2f}x (target ≥ {SPEEDUP_TARGET:g}x)",
                    f"{ratios.llmkit_over_floor:.2f}x ({floor_goal})",
                    f"{ratios.openai_over_floor:.1f}x",
                ]
            )
    lines += _table(
        [
            "transport",
            "flavour",
            "openai ÷ llmkit (CPU)",
            "llmkit ÷ floor (CPU)",
            "openai ÷ floor (CPU)",
        ],
        ratio_rows,
    )
    lines += ["![stream throughput](stream_throughput.png)", ""]
    return lines


def _toolloop_section(results: Results) -> list[str]:
    loops = results.toolloop
    if loops is None:
        return []
    any_loop = next(iter(loops.values()))
    lines = [
        f"## 2. Tool loop ({STEPS} tool steps + the answer = {any_loop.turns} model calls)",
        "",
        f"{_runs(len(any_loop.runs))} per loop; bytes are the request bodies (HTTP) or "
        "`response.create` frames (WS) the client sent. CPU and wall are per turn (a "
        "model call plus running its tool), turn 1 includes connecting.",
        "",
    ]
    rows = []
    for name in LOOPS:
        loop = loops[name]
        per_turn = loop.per_turn("bytes_sent")
        rows.append(
            [
                name,
                f"{loop.total_bytes:,}",
                f"{per_turn[0]:,.0f}",
                f"{per_turn[1]:,.0f}",
                f"{per_turn[-1]:,.0f}",
                f"{loop.cpu_per_turn * 1e6:,.0f}",
                f"{loop.wall_per_turn * 1e6:,.0f}",
                f"{loop.total_cpu * 1e3:,.1f}",
                f"{loop.total_wall * 1e3:,.1f}",
                f"`{loop.answers[0]}`" if loop.answers else "",
            ]
        )
    lines += _table(
        [
            "loop",
            "total bytes",
            "turn 1 B",
            "turn 2 B",
            f"turn {any_loop.turns} B",
            "CPU µs/turn",
            "wall µs/turn",
            "total CPU ms",
            "total wall ms",
            "answer",
        ],
        rows,
    )
    ws, http, o_http = loops["llmkit WS"], loops["llmkit HTTP"], loops["openai HTTP"]
    lines += [
        f"Bytes: llmkit HTTP sends {http.total_bytes / ws.total_bytes:.1f}x and openai HTTP "
        f"{o_http.total_bytes / ws.total_bytes:.1f}x what llmkit WS sends; llmkit WS per "
        f"turn from turn 2 on: max / min = {flatness(ws):.2f}.",
        "",
        "![bytes per turn](toolloop_bytes.png)",
        "",
        "![CPU per turn](toolloop_cpu.png)",
        "",
    ]
    return lines


def _memory_section(results: Results) -> list[str]:
    memory = results.memory
    if memory is None:
        return []
    lines = [
        "## 3. Memory and time of `generate()` for long answers",
        "",
        f"Each figure is the median of {_runs(results.memory_repeat)}, each in a fresh "
        "child process: peak RSS growth during the call over the RSS before it, the "
        "child's CPU time (llmkit's own cost; the linearity target is judged on it and on "
        "the memory) and the call's wall time (it also includes the server process "
        "producing the events and any other load on the machine, so it is noisier).",
        "",
    ]
    rows = []
    for transport in TRANSPORTS:
        for r in memory[transport]:
            rows.append(
                [
                    TRANSPORT_NAMES[transport],
                    f"{r.words:,}",
                    f"{r.peak_bytes / 1e6:,.1f}",
                    f"{r.peak_bytes / r.words:,.1f}",
                    f"{r.wall:,.2f}",
                    f"{r.wall / r.words * 1e6:,.2f}",
                    f"{r.cpu / r.words * 1e6:,.2f}",
                ]
            )
    lines += _table(
        [
            "transport",
            "tokens",
            "peak growth MB",
            "bytes/token",
            "wall s",
            "wall µs/token",
            "CPU µs/token",
        ],
        rows,
    )
    fit_rows = []
    figures = (
        ("peak_bytes", "peak growth", "bytes/token", 1.0),
        ("cpu", "client CPU", "µs/token", 1e6),
        ("wall", "wall time", "µs/token", 1e6),
    )
    for transport in TRANSPORTS:
        for figure, label, unit, scale in figures:
            fit = linearity(memory[transport], figure)
            fit_rows.append(
                [
                    TRANSPORT_NAMES[transport],
                    label,
                    f"{fit.slope * scale:,.2f} {unit}",
                    f"{fit.intercept / 1e6:,.1f} MB"
                    if figure == "peak_bytes"
                    else f"{fit.intercept:,.2f} s",
                    f"{fit.r2:.4f}",
                    ", ".join(f"{d:.2f}" for d in fit.doublings),
                    f"{fit.growth:.2f}x",
                ]
            )
    lines += _table(
        [
            "transport",
            "figure",
            "fitted slope",
            "intercept",
            "R²",
            "ratio per doubling (linear: 2)",
            "per-token, largest ÷ smallest",
        ],
        fit_rows,
    )
    lines += ["![memory and time per size](memory.png)", ""]
    return lines


def _ttft_section(results: Results) -> list[str]:
    ttft = results.ttft
    if ttft is None:
        return []
    floors = {r.transport: r.median_us for r in ttft if r.library == "floor"}
    lines = [
        "## 4. Time to first token over the floor",
        "",
        f"Server `ttft` 0; `bench-words-16`; {results.ttft_rounds} round(s) of "
        f"{results.ttft_requests} back-to-back requests per client on a warm connection. "
        "Time from just before sending to the first text delta; overhead = the "
        "client's median minus the floor's on the same transport.",
        "",
    ]
    rows = [
        [
            r.name,
            f"{r.median_us:,.0f}",
            f"{r.median_us - floors[r.transport]:+,.0f}" if r.library != "floor" else "0",
        ]
        for r in ttft
    ]
    lines += _table(["client", "median µs to first delta", "overhead over floor µs"], rows)
    lines += ["![time to first token](ttft.png)", ""]
    return lines


def _profile_section(results: Results) -> list[str]:
    stream = results.stream
    if stream is None or not stream.profiles:
        return []
    lines = [
        "## 5. Where llmkit's time goes per event",
        "",
        f"One extra {stream.events:,}-delta run of each llmkit stream consumer under "
        "pyinstrument, sampling the stack every 0.2 ms of **wall** time: the shares "
        "include waiting (in `socket.recv*`, and in `HTTPTransport.open` / the connect "
        "until the server's first bytes) and the profiler's own overhead slows the run, "
        "so read them as proportions, not as absolute costs. Own time per function "
        "(summed over call sites), top 15; µs/event = own time ÷ deltas, under the "
        "profiler. Full trees: "
        + ", ".join(f"`{Path(p).name}`" for p in stream.profile_files.values())
        + ".",
        "",
    ]
    for name, entries in stream.profiles.items():
        per_event = stream.by_name(name).cpu_us_per_event
        wall, cpu = stream.profile_times.get(name, (float("nan"), float("nan")))
        lines += [
            f"### {name}",
            "",
            f"Measured without the profiler: {per_event:.2f} µs/event CPU. The profiled "
            f"run: {wall:.2f} s wall, {cpu:.2f} s CPU.",
            "",
        ]
        lines += _table(
            ["function", "where", "own share", "µs/event (profiled)"],
            [
                [
                    f"`{e.function}`",
                    f"`{e.location}`",
                    f"{e.share * 100:.1f} %",
                    f"{e.own_seconds / stream.events * 1e6:.2f}",
                ]
                for e in entries
            ],
        )
    return lines


def _concurrency_section(results: Results) -> list[str]:
    ways = results.concurrency
    if not ways:
        return []
    agents = ways[0].agents
    lines = [
        f"## 6. Concurrent agents ({agents} agents x {TURNS}-turn tool loops, one provider)",
        "",
        f"All agents at once on one `Provider` (threads) or one `AsyncProvider` (asyncio "
        f"tasks), server `ttft` {TTFT * 1000:g} ms, {TOOL_SECONDS * 1000:g} ms per tool "
        f"call, {_runs(len(ways[0].runs))} per row "
        "(medians). Incremental: turns 2.. sent as only the new items on a chained "
        "socket; sockets and responses in flight are the server's WebSocket counts; CPU is the "
        "client process's per turn (all its threads). Every run checked every answer, 0 "
        "context violations and one generation per turn.",
        "",
    ]
    rows = [
        [
            way.way,
            way.flavour,
            f"{way.incremental_share * 100:.1f}%",
            f"{way.bytes_sent:,.0f}",
            "-" if way.way == "HTTP" else f"{way.sockets:g}",
            "-" if way.way == "HTTP" else f"{way.max_in_flight:g}",
            f"{way.cpu_per_turn * 1e6:,.0f}",
            f"{way.wall:.2f}",
        ]
        for way in ways
    ]
    lines += _table(
        [
            "way",
            "flavour",
            f"incremental (turns 2..{TURNS})",
            "bytes sent",
            "sockets",
            "most in flight on a socket",
            "client CPU µs/turn",
            "wall s",
        ],
        rows,
    )
    return lines


# -- JSON -----------------------------------------------------------------------------------------
def as_json(results: Results) -> dict[str, Any]:
    data: dict[str, Any] = {
        "facts": results.facts,
        "mode": results.mode,
        "repeat": results.repeat,
        "seconds": results.seconds,
        "targets": [
            {"name": t.name, "goal": t.goal, "figure": t.figure, "met": t.met}
            for t in targets(results)
        ],
    }
    if results.stream is not None:
        data["stream"] = {
            "events": results.stream.events,
            "consumers": [c.as_dict() for c in results.stream.consumers],
            "ratios": {
                flavour: {
                    transport: stream_ratios(results.stream, transport, flavour).as_dict()
                    for transport in TRANSPORT_NAMES
                }
                for flavour in FLAVOURS
            },
            "profiles": {
                name: [
                    {"function": e.function, "location": e.location, "share": e.share}
                    for e in entries
                ]
                for name, entries in results.stream.profiles.items()
            },
        }
    if results.toolloop is not None:
        data["toolloop"] = {name: loop.as_dict() for name, loop in results.toolloop.items()}
    if results.memory is not None:
        data["memory"] = {t: [r.as_dict() for r in rs] for t, rs in results.memory.items()}
    if results.ttft is not None:
        data["ttft"] = [r.as_dict() for r in results.ttft]
    if results.concurrency is not None:
        data["concurrency"] = [w.as_dict() for w in results.concurrency]
    return data


def write(results: Results, out_dir: Path) -> list[Path]:
    """Plots, `latest.md` and `latest.json` into `out_dir`; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    from bench.plots import plot_all

    written = plot_all(results, out_dir)
    md, js = out_dir / "latest.md", out_dir / "latest.json"
    md.write_text(markdown(results), encoding="utf-8")
    js.write_text(json.dumps(as_json(results), indent=1, ensure_ascii=False) + "\n")
    return [*written, md, js]
