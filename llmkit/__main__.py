"""The `llmkit` command line (`python -m llmkit ...`).

Each subcommand registers its parser (with a ``run`` default) in `_COMMANDS`, so adding
one does not touch the others.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

Runner = Callable[[argparse.Namespace], int]


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "serve",
        help="run the local Responses API server in the foreground",
        description="Serve the scripted Responses API (HTTP SSE, JSON and WebSocket).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port, 0 for any (default 8000)")
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds to first token")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds per delta")
    parser.add_argument(
        "--cost-per-input-token",
        type=float,
        default=0.0,
        help="seconds of prefill per uncached input token (added to --ttft)",
    )
    parser.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    try:
        from llmkit.testing import ResponsesServer
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        print(f"llmkit serve needs the server extra: pip install 'llmkit[server]' ({exc})")
        return 2
    server = ResponsesServer(
        host=args.host,
        port=args.port,
        ttft=args.ttft,
        token_delay=args.token_delay,
        cost_per_input_token=args.cost_per_input_token,
    )

    def ready(running: ResponsesServer) -> None:
        print(f"llmkit Responses server on {running.base_url} (WebSocket {running.ws_url})")
        print("Press Ctrl-C to stop.", flush=True)

    try:
        server.serve_forever(ready)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        pass
    except OSError as exc:
        print(f"llmkit serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from llmkit._demo import add_demo_command

    add_demo_command(sub)


_COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_demo,
    _add_serve,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmkit", description="llmkit command line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m llmkit` and the `llmkit` script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Runner | None = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
