"""Benchmark 1: stream throughput, one answer of N text deltas per run.

Every consumer of `bench.clients`, sync and asyncio, reads ``bench-words-<N>`` from the
same server process, in rounds (each round runs every consumer once, in a rotated order).
Per run: the wall time and this process's CPU time; the figures are medians over the
rounds, per event.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.clients import AsyncLlmkitConsumer, Consumer, LlmkitConsumer, all_consumers
from bench.common import BenchError, Sample, measure, median, rotated

WARMUP_WORDS = 2_000


@dataclass(slots=True)
class ConsumerResult:
    name: str
    library: str
    transport: str
    flavour: str  # "sync" or "async"
    events: int
    samples: list[Sample] = field(default_factory=list)

    @property
    def cpu_us_per_event(self) -> float:
        return median([s.cpu for s in self.samples]) / self.events * 1e6

    @property
    def wall_us_per_event(self) -> float:
        return median([s.wall for s in self.samples]) / self.events * 1e6

    @property
    def events_per_second(self) -> float:
        return self.events / median([s.wall for s in self.samples])

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "library": self.library,
            "transport": self.transport,
            "flavour": self.flavour,
            "events": self.events,
            "cpu_us_per_event": self.cpu_us_per_event,
            "wall_us_per_event": self.wall_us_per_event,
            "events_per_second": self.events_per_second,
            "samples": [{"wall": s.wall, "cpu": s.cpu} for s in self.samples],
        }


@dataclass(slots=True)
class ProfileEntry:
    function: str
    location: str
    own_seconds: float
    share: float


@dataclass(slots=True)
class StreamResults:
    events: int
    repeat: int
    consumers: list[ConsumerResult]
    profiles: dict[str, list[ProfileEntry]] = field(default_factory=dict)
    profile_files: dict[str, str] = field(default_factory=dict)
    # Per profiled consumer: (wall seconds, CPU seconds) of the run under the profiler.
    profile_times: dict[str, tuple[float, float]] = field(default_factory=dict)

    def get(self, library: str, transport: str, flavour: str = "sync") -> ConsumerResult:
        for result in self.consumers:
            if (result.library, result.transport, result.flavour) == (library, transport, flavour):
                return result
        raise KeyError((library, transport, flavour))

    def by_name(self, name: str) -> ConsumerResult:
        for result in self.consumers:
            if result.name == name:
                return result
        raise KeyError(name)


def run(
    base_url: str,
    *,
    events: int,
    repeat: int,
    log: Callable[[str], None],
    profile_dir: str | None = None,
) -> StreamResults:
    consumers = all_consumers(base_url)
    model = f"bench-words-{events}"
    try:
        for consumer in consumers:
            if consumer.consume(f"bench-words-{WARMUP_WORDS}") != WARMUP_WORDS:
                raise BenchError(f"{consumer.name}: wrong number of deltas in the warm-up")
        results = [
            ConsumerResult(c.name, c.library, c.transport, c.flavour, events) for c in consumers
        ]
        by_name = {r.name: r for r in results}
        for round_ in range(repeat):
            for consumer in rotated(consumers, round_):
                seen, sample = measure(lambda c=consumer: c.consume(model))
                if seen != events:
                    raise BenchError(f"{consumer.name}: {seen} deltas, expected {events}")
                by_name[consumer.name].samples.append(sample)
                log(
                    f"  stream round {round_ + 1}/{repeat} {consumer.name:18} "
                    f"{sample.cpu / events * 1e6:7.2f} us/event CPU, {sample.wall:6.2f} s"
                )
        outcome = StreamResults(events, repeat, results)
        if profile_dir is not None:
            for consumer in consumers:
                if isinstance(consumer, LlmkitConsumer | AsyncLlmkitConsumer):
                    _profile(consumer, model, outcome, profile_dir)
        return outcome
    finally:
        for consumer in consumers:
            consumer.close()


def _profile(consumer: Consumer, model: str, outcome: StreamResults, out_dir: str) -> None:
    """One extra run under pyinstrument: own time per function, and the full tree as text."""
    try:
        from pyinstrument import Profiler
    except ImportError:  # the bench extra is not installed: no profile section
        return
    profiler = Profiler(interval=0.0002, async_mode="disabled")
    profiler.start()
    consumer.consume(model)
    profiler.stop()
    session = profiler.last_session
    root = session.root_frame() if session is not None else None
    if root is None:
        return
    own: dict[tuple[str, str], float] = {}
    stack = [root]
    while stack:
        frame = stack.pop()
        stack.extend(frame.children)
        if frame.is_synthetic:
            continue
        key = (frame.function or "?", f"{frame.file_path_short}:{frame.line_no}")
        own[key] = own.get(key, 0.0) + frame.total_self_time
    total = sum(own.values()) or 1.0
    ranked = sorted(own.items(), key=lambda kv: kv[1], reverse=True)
    outcome.profiles[consumer.name] = [
        ProfileEntry(function, location, seconds, seconds / total)
        for (function, location), seconds in ranked[:15]
    ]
    outcome.profile_times[consumer.name] = (session.duration, session.cpu_time)
    slug = consumer.name.lower().replace(" ", "_")
    path = f"{out_dir}/profile_{slug}.txt"
    with open(path, "w", encoding="utf-8") as handle:
        # Paths relative to the checkout: a results file names no machine's folders.
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
        handle.write(profiler.output_text(unicode=False, color=False).replace(root, ""))
    outcome.profile_files[consumer.name] = path
