"""The benchmark server: `llmkit.testing.ResponsesServer` in its own process.

Prints the base URL on the first line of stdout, then serves until stdin closes, so the
clients' CPU time (`time.process_time()` in the benchmark process) never includes the
server's. Only 127.0.0.1.

While it serves, a line on stdin is a command, answered with one JSON line on stdout:
``stats`` (the server's counters, `stats_of`) and ``reset`` (forget stats and stored
responses, close open WebSockets). The concurrency benchmark reads sockets and responses
in flight this way.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from llmkit.testing import ResponsesServer


def stats_of(server: ResponsesServer) -> dict[str, Any]:
    """What the benchmarks read of the server's `stats` (plain JSON values)."""
    stats = server.stats
    connections = stats.connections
    return {
        "connections_opened": stats.connections_opened,
        "max_in_flight": stats.max_in_flight,
        "max_in_flight_per_connection": [c.max_in_flight for c in connections],
        "lanes_used": stats.lanes_used,
        "forks": stats.forks,
        "generations": stats.generations,
        "warmups": stats.warmups,
        "context_violations": stats.context_violations,
        "requests": len(stats.requests),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds to first token")
    args = parser.parse_args()
    with ResponsesServer(host="127.0.0.1", port=0, ttft=args.ttft) as server:
        print(server.base_url, flush=True)
        for line in sys.stdin:  # until the parent closes our stdin (or exits)
            command = line.strip()
            if command == "stats":
                print(json.dumps(stats_of(server)), flush=True)
            elif command == "reset":
                server.reset()
                print(json.dumps({"reset": True}), flush=True)
            else:
                print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
