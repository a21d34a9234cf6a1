"""The benchmark server: `llmkit.testing.ResponsesServer` in its own process.

Prints the base URL on the first line of stdout, then serves until stdin closes, so the
clients' CPU time (`time.process_time()` in the benchmark process) never includes the
server's. Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import sys

from llmkit.testing import ResponsesServer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds to first token")
    args = parser.parse_args()
    with ResponsesServer(host="127.0.0.1", port=0, ttft=args.ttft) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or exits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
