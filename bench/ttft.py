"""Benchmark 4: time to first token, many small requests on warm connections.

The server's `ttft` is 0, so what is left is each client's own cost to build and send a
request and parse the events up to the first text delta, plus the same server work for
everyone. The overhead of a client is its median minus the floor's on the same transport.
Each round runs a block of requests per client (in a rotated client order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.clients import sync_consumers
from bench.common import median, rotated

MODEL = "bench-words-16"
WARMUP = 20
# Requests run back to back in blocks, one client at a time: on a virtual machine an idle
# pause between requests (as interleaving clients gives each one) costs a CPU wake-up of
# a millisecond or more, which would drown differences of tens of microseconds.
BLOCK_WARMUP = 5


@dataclass(slots=True)
class FirstTokenResult:
    name: str
    library: str
    transport: str
    seconds: list[float] = field(default_factory=list)

    @property
    def median_us(self) -> float:
        return median(self.seconds) * 1e6

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "library": self.library,
            "transport": self.transport,
            "median_us": self.median_us,
            "requests": len(self.seconds),
        }


def run(
    base_url: str, *, rounds: int, requests: int, log: Callable[[str], None]
) -> list[FirstTokenResult]:
    """`rounds` blocks of `requests` back-to-back requests per client (medians over all)."""
    consumers = sync_consumers(base_url)
    try:
        for consumer in consumers:
            for _ in range(WARMUP):
                consumer.first_delta(MODEL)
        results = [FirstTokenResult(c.name, c.library, c.transport) for c in consumers]
        by_name = {r.name: r for r in results}
        for round_ in range(rounds):
            for consumer in rotated(consumers, round_):
                for _ in range(BLOCK_WARMUP):
                    consumer.first_delta(MODEL)
                seconds = [consumer.first_delta(MODEL) for _ in range(requests)]
                by_name[consumer.name].seconds.extend(seconds)
        for result in results:
            log(f"  first token {result.name:12} {result.median_us:8.0f} us (median)")
        return results
    finally:
        for consumer in consumers:
            consumer.close()
