"""Run the benchmarks: llmkit vs the official `openai` package vs a no-SDK floor.

    .venv/bin/python bench/run.py [--repeat N] [--quick] [--only stream,toolloop,...]

Every benchmark starts its own local server (`bench/serve.py`) in another process on
127.0.0.1, so the client CPU time measured here never includes the server's. Results go
to `bench/results/` (`latest.md`, `latest.json`, PNG plots, profiles); `--quick` is a
smoke run with small sizes that writes to `bench/results/quick/` instead. The exit code
is 1 when a run gave a wrong answer, 0 otherwise (missed targets are reported, not fatal).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import concurrency, memory, report, stream, toolloop, ttft
from bench.common import BENCH_DIR, BenchError, machine_facts, server_control, server_process

BENCHMARKS = ("stream", "toolloop", "memory", "ttft", "concurrency")


@dataclass(frozen=True, slots=True)
class Plan:
    """Sizes of one mode."""

    events: int  # text deltas per streamed response (benchmark 1)
    sizes: tuple[int, ...]  # answer lengths in tokens (benchmark 3)
    memory_repeat: int  # at most this many runs per size: each 1M-token run takes seconds
    ttft_requests: int  # requests per client and round (benchmark 4)
    agents: int  # concurrent agents (benchmark 6)


FULL = Plan(100_000, (125_000, 250_000, 500_000, 1_000_000), 2, 100, 32)
QUICK = Plan(10_000, (12_500, 25_000, 50_000, 100_000), 1, 20, 8)


def _default_repeat() -> int:
    value = os.environ.get("BENCH_REPEAT", "")
    return int(value) if value.strip() else 5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs per figure (default: $BENCH_REPEAT, else 5; 1 with --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, fast")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {BENCHMARKS}"
    )
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    parser.add_argument("--no-profile", action="store_true", help="skip the pyinstrument run")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick and "BENCH_REPEAT" not in os.environ else _default_repeat()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks: {sorted(unknown)}")
    if args.out is None:
        args.out = BENCH_DIR / "results" / ("quick" if args.quick else "")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    results = report.Results(
        facts=machine_facts(), mode="quick" if args.quick else "full", repeat=args.repeat
    )
    try:
        if "stream" in args.only:
            log(f"1. stream throughput: {plan.events:,} deltas x {args.repeat} per client")
            with server_process() as base_url:
                results.stream = stream.run(
                    base_url,
                    events=plan.events,
                    repeat=args.repeat,
                    log=log,
                    profile_dir=None if args.no_profile else str(out_dir),
                )
        if "toolloop" in args.only:
            log(f"2. tool loop: {toolloop.STEPS} steps x {args.repeat} per loop")
            with server_process() as base_url:
                results.toolloop = toolloop.run(base_url, repeat=args.repeat, log=log)
        if "memory" in args.only:
            results.memory_repeat = min(args.repeat, plan.memory_repeat)
            log(f"3. memory: sizes {plan.sizes} x {results.memory_repeat}")
            with server_process() as base_url:
                results.memory = memory.run(
                    base_url, sizes=plan.sizes, repeat=results.memory_repeat, log=log
                )
        if "ttft" in args.only:
            results.ttft_rounds = args.repeat
            results.ttft_requests = plan.ttft_requests
            log(f"4. first token: {args.repeat} rounds of {results.ttft_requests} requests")
            with server_process() as base_url:
                results.ttft = ttft.run(
                    base_url, rounds=args.repeat, requests=results.ttft_requests, log=log
                )
        if "concurrency" in args.only:
            log(
                f"6. concurrency: {plan.agents} agents x {concurrency.TURNS} turns, "
                f"{len(concurrency.WAYS)} ways x {len(concurrency.FLAVOURS)} x {args.repeat}"
            )
            with server_control(ttft=concurrency.TTFT) as server:
                results.concurrency = concurrency.run(
                    server, agents=plan.agents, repeat=args.repeat, log=log
                )
    except BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    results.seconds = time.perf_counter() - started
    for path in report.write(results, out_dir):
        log(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    for target in report.targets(results):
        verdict = {True: "met", False: "MISSED", None: "n/a"}[target.met]
        print(f"{verdict:>6}  {target.name}: {target.figure} (goal {target.goal})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
