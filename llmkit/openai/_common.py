"""What the Responses and the Chat Completions modules of the OpenAI provider share."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmkit._schema import OutputSchema
from llmkit.exceptions import ProtocolError, UsageError
from llmkit.messages import FunctionTool, Tool

__all__ = [
    "JSON",
    "EncodedRequest",
    "json_schema_format",
    "load_json",
    "output_warnings",
    "tool_choice_name",
]

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


def json_schema_format(output: OutputSchema[Any]) -> JSON:
    """The ``json_schema`` format both APIs take for a structured call: Responses as
    ``text.format`` (with ``"type"`` beside these keys), Chat as
    ``response_format.json_schema``."""
    return {"name": output.name, "schema": output.schema, "strict": output.strict}


def output_warnings(output: OutputSchema[Any] | None, warnings: list[str]) -> None:
    """Say why a structured call's schema goes with ``strict: false``, one cause each."""
    if output is not None:
        warnings += [f"output_type sent with strict=false: {why}" for why in output.warnings]


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
