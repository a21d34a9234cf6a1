"""Shared pieces: the server process, timing samples, statistics and machine facts."""

from __future__ import annotations

import gc
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
SERVER_START_TIMEOUT = 30.0
T = TypeVar("T")

# openai 3.54.0 opens its `websockets` connection outside a context manager, which
# websockets 17 flags on first send. The warning is the library's, not a measurement's.
warnings.filterwarnings(
    "ignore", message=r"connect\(\) must be used as a context manager", category=DeprecationWarning
)


class BenchError(RuntimeError):
    """A benchmark run gave a wrong answer or the server misbehaved."""


class ServerControl:
    """The benchmark server process: its base URL and its stdin commands (`bench/serve.py`)."""

    def __init__(self, proc: subprocess.Popen[str], lines: queue.Queue[str], base_url: str):
        self._proc = proc
        self._lines = lines
        self.base_url = base_url

    def command(self, name: str) -> dict[str, Any]:
        """Send one command line; its JSON answer (bounded wait)."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(name + "\n")
        self._proc.stdin.flush()
        try:
            answer = self._lines.get(timeout=SERVER_START_TIMEOUT)
        except queue.Empty:
            raise BenchError(f"the benchmark server did not answer {name!r}") from None
        data = json.loads(answer)
        if not isinstance(data, dict) or "error" in data:
            raise BenchError(f"the benchmark server answered {name!r} with {answer!r}")
        return data

    def stats(self) -> dict[str, Any]:
        return self.command("stats")

    def reset(self) -> None:
        self.command("reset")


@contextmanager
def server_control(*, ttft: float = 0.0) -> Iterator[ServerControl]:
    """Run `bench/serve.py` in another process (127.0.0.1 only); yield its control."""
    command = [sys.executable, str(BENCH_DIR / "serve.py"), "--ttft", str(ttft)]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        out = proc.stdout

        def read() -> None:
            for line in out:
                lines.put(line)

        threading.Thread(target=read, daemon=True).start()
        try:
            base_url = lines.get(timeout=SERVER_START_TIMEOUT).strip()
        except queue.Empty:
            raise BenchError("the benchmark server did not start") from None
        if not base_url.startswith("http://127.0.0.1:"):
            raise BenchError(f"unexpected server output: {base_url!r}")
        yield ServerControl(proc, lines, base_url)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def server_process(*, ttft: float = 0.0) -> Iterator[str]:
    """Run `bench/serve.py` in another process; yield its base URL (127.0.0.1 only)."""
    with server_control(ttft=ttft) as server:
        yield server.base_url


def ws_url(base_url: str) -> str:
    """The WebSocket URL of the Responses endpoint for an ``http://.../v1`` base URL."""
    return "ws" + base_url.removeprefix("http") + "/responses"


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured run: wall-clock and client CPU seconds."""

    wall: float
    cpu: float


def measure(run: Callable[[], T]) -> tuple[T, Sample]:
    """Run once after a full collection; CPU is this process's (`time.process_time`)."""
    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    value = run()
    sample = Sample(time.perf_counter() - wall0, time.process_time() - cpu0)
    return value, sample


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rotated(items: Sequence[T], shift: int) -> list[T]:
    """`items` rotated by `shift`, so no client always runs first (or last) in a round."""
    shift %= max(1, len(items))
    return [*items[shift:], *items[:shift]]


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least squares ``y = a + b·x``: (a, b, R²)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    b = sxy / sxx if sxx else 0.0
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    return a, b, 1.0 - ss_res / ss_tot if ss_tot else 1.0


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts() -> dict[str, Any]:
    """What the figures depend on: recorded at the top of every results file."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "llmkit": _version("llmkit"),
        "openai": _version("openai"),
        "httpx": _version("httpx"),
        "httpx2": _version("httpx2"),
        "websocket-client": _version("websocket-client"),
        "websockets": _version("websockets"),
        "uvicorn": _version("uvicorn"),
        "pydantic": _version("pydantic"),
        "load_average_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
