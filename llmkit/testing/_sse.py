"""Recorded SSE bodies: split into events, keeping each event's exact bytes for replay."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmkit.testing._events import TERMINAL_TYPES


@dataclass(frozen=True, slots=True)
class SseBlock:
    """One event of a recorded SSE body: its raw bytes and its `data:` payload."""

    raw: bytes
    data: str | None
    type: str | None


def parse_sse(body: bytes) -> list[SseBlock]:
    """Split an SSE body into events, keeping each event's exact bytes for verbatim replay."""
    text = body.replace(b"\r\n", b"\n")
    blocks: list[SseBlock] = []
    for raw in text.split(b"\n\n"):
        if not raw.strip():
            continue
        lines = raw.decode("utf-8").split("\n")
        data_lines = [line[5:].removeprefix(" ") for line in lines if line.startswith("data:")]
        data = "\n".join(data_lines) if data_lines else None
        kind: str | None = None
        if data is not None and data != "[DONE]":
            try:
                parsed = json.loads(data)
            except (ValueError, RecursionError):  # replayed as is; the client decides
                parsed = None
            kind = parsed.get("type") if isinstance(parsed, dict) else None
        blocks.append(SseBlock(raw + b"\n\n", data, kind))
    return blocks


def final_response(blocks: Sequence[SseBlock]) -> dict[str, Any] | None:
    """The Response object of the last terminal event of a recorded stream, if any."""
    for block in reversed(blocks):
        if block.type in TERMINAL_TYPES and block.data is not None:
            response = json.loads(block.data).get("response")
            return response if isinstance(response, dict) else None
    return None
