"""Where the examples send their requests: the built-in local server unless told otherwise.

Run an example as is to use the local scripted server (no API key needed), or point it
at a real endpoint:

    export OPENAI_API_KEY=sk-...
    python examples/generate.py --base-url https://api.openai.com/v1 --model gpt-5-mini
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    model: str


@contextmanager
def endpoint(description: str) -> Iterator[Endpoint]:
    """Parse ``--base-url``/``--model``; start the local server when no URL is given."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint (default: local)")
    parser.add_argument("--model", default="scripted", help="model id (default: scripted)")
    args = parser.parse_args()
    if args.base_url:
        yield Endpoint(args.base_url, args.model)
        return
    from llmkit.testing import ResponsesServer

    with ResponsesServer(ttft=0.05, token_delay=0.002) as server:
        yield Endpoint(server.base_url, args.model)
