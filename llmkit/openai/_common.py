"""What the Responses and the Chat Completions modules of the OpenAI provider share."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmkit.exceptions import ProtocolError, UsageError
from llmkit.messages import FunctionTool, Tool

__all__ = ["JSON", "EncodedRequest", "load_json", "tool_choice_name"]

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class EncodedRequest:
    """A request body plus the warnings encoding produced."""

    body: JSON
    warnings: tuple[str, ...] = ()


def tool_choice_name(choice: str, tools: Sequence[Tool]) -> str | None:
    """The function a ``tool_choice`` forces, or None for ``auto``/``none``/``required``.

    Raises:
        UsageError: ``choice`` is none of those and names no given function tool.
    """
    if choice in ("auto", "none", "required"):
        return None
    names = {tool.name for tool in tools if isinstance(tool, FunctionTool)}
    if choice not in names:
        raise UsageError(
            f"tool_choice {choice!r} is neither 'auto', 'none', 'required' nor a tool name"
        )
    return choice


def load_json(payload: str | bytes) -> Any:
    """Decode one payload.

    Raises:
        ProtocolError: not JSON, not UTF-8, or nested too deeply to decode.
    """
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"event payload is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ProtocolError("event payload is nested too deeply") from exc
