"""Benchmark 3: memory and time of `model.generate()` for very long answers.

Each measurement runs in a fresh child process (``python -m bench.memory --child``), so
one run's heap never hides another's: the child warms its connection up with a short
answer, collects garbage, resets the kernel's peak-RSS mark (Linux ``clear_refs``), then
generates ``bench-words-<N>`` once and reports the peak RSS growth over the RSS before
the call, the wall time and its own CPU time. Linear means the per-token figures stay
flat as N doubles.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import ROOT, BenchError, linear_fit, median

TRANSPORTS = ("http", "websocket")


# -- the child ------------------------------------------------------------------------------
def _status_kb(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Make VmHWM (peak RSS) restart from the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kb("VmHWM") is not None


def _max_rss_kb() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS


def child(base_url: str, transport: str, words: int) -> dict[str, Any]:
    import llmkit

    with llmkit.Provider(
        api_key="bench",
        base_url=base_url,
        use_responses_api=True,
        websocket=transport == "websocket",
        max_retries=0,
        timeout=300.0,
    ) as provider:
        warm = provider.language_model("bench-words-200").generate(llmkit.Call("x"))
        assert warm.text.count(" ") == 199
        model = provider.language_model(f"bench-words-{words}")
        call = llmkit.Call("x")
        gc.collect()
        exact = _reset_peak()
        before = (_status_kb("VmRSS") if exact else None) or _max_rss_kb()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        response = model.generate(call)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        peak = (_status_kb("VmHWM") if exact else None) or _max_rss_kb()
        seen = response.text.count(" ") + 1
        used = response.metadata.transport
    if seen != words or used != transport:
        raise BenchError(f"{transport}: {seen} words over {used}, expected {words}")
    return {
        "transport": transport,
        "words": words,
        "wall": wall,
        "cpu": cpu,
        "peak_growth_bytes": max(0, peak - before) * 1024,
        "peak_method": "VmHWM after clear_refs" if exact else "ru_maxrss",
    }


# -- the parent -----------------------------------------------------------------------------
@dataclass(slots=True)
class SizeResult:
    transport: str
    words: int
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def peak_bytes(self) -> float:
        return median([r["peak_growth_bytes"] for r in self.runs])

    @property
    def wall(self) -> float:
        return median([r["wall"] for r in self.runs])

    @property
    def cpu(self) -> float:
        return median([r["cpu"] for r in self.runs])

    def as_dict(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "words": self.words,
            "peak_growth_bytes": self.peak_bytes,
            "bytes_per_token": self.peak_bytes / self.words,
            "wall": self.wall,
            "cpu": self.cpu,
            "wall_us_per_token": self.wall / self.words * 1e6,
            "cpu_us_per_token": self.cpu / self.words * 1e6,
            "runs": self.runs,
        }


@dataclass(frozen=True, slots=True)
class Linearity:
    """How a figure grows with N: least-squares fit, the ratio per doubling of N (2.0 when
    linear, 4.0 when quadratic) and `growth`, the per-token figure at the largest N over
    the one at the smallest (1.0 when linear; a fixed overhead makes it less)."""

    slope: float
    intercept: float
    r2: float
    doublings: tuple[float, ...]
    growth: float


def linearity(results: Sequence[SizeResult], figure: str) -> Linearity:
    xs = [float(r.words) for r in results]
    ys = [float(getattr(r, figure)) for r in results]
    intercept, slope, r2 = linear_fit(xs, ys)
    doublings = tuple(
        ys[i + 1] / ys[i] * (xs[i] * 2 / xs[i + 1])
        for i in range(len(xs) - 1)
        if ys[i] > 0 and xs[i + 1] > xs[i]
    )
    growth = (ys[-1] / xs[-1]) / (ys[0] / xs[0]) if ys[0] > 0 else float("inf")
    return Linearity(slope, intercept, r2, doublings, growth)


def _run_child(base_url: str, transport: str, words: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.memory", "--child", base_url, transport, str(words)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise BenchError(f"memory child {transport} {words} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(
    base_url: str, *, sizes: Sequence[int], repeat: int, log: Callable[[str], None]
) -> dict[str, list[SizeResult]]:
    results = {t: [SizeResult(t, n) for n in sizes] for t in TRANSPORTS}
    for round_ in range(repeat):
        for words in sizes:
            for transport in TRANSPORTS:
                run_ = _run_child(base_url, transport, words)
                slot = next(r for r in results[transport] if r.words == words)
                slot.runs.append(run_)
                log(
                    f"  memory round {round_ + 1}/{repeat} {transport:9} {words:>9,} tokens: "
                    f"{run_['peak_growth_bytes'] / 1e6:7.1f} MB peak growth, "
                    f"{run_['wall']:6.2f} s"
                )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one memory measurement (internal)")
    parser.add_argument("--child", nargs=3, metavar=("BASE_URL", "TRANSPORT", "WORDS"))
    args = parser.parse_args(argv)
    if not args.child:
        parser.error("run bench/run.py; this module only measures in child processes")
    base_url, transport, words = args.child
    print(json.dumps(child(base_url, transport, int(words))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
