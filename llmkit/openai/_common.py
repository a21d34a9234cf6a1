"""What the Responses and the Chat Completions modules of the OpenAI provider share."""

from __future__ import annotations

import copy
import json
from collections.abc import Collection, Mapping, Sequence
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
    "merge_extra_body",
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


def merge_extra_body(
    body: JSON, extra: Mapping[str, Any] | None, delivery: Collection[str]
) -> None:
    """Merge ``extra`` (``extra_body``) into ``body`` as given, after llmkit's fields.

    A key llmkit already set for this request, or one of the ``delivery`` fields a
    transport adds later (``stream``, ...), is refused rather than overridden: two values
    for one field would leave it to chance which one the server sees. Keys llmkit did not
    set this time are the caller's, including fields an option could have set (a new
    sub-field of ``reasoning``, say, when no reasoning option is given).

    Raises:
        UsageError: ``extra`` names a field llmkit set or a delivery field.
    """
    if not extra:
        return
    taken = sorted(key for key in extra if key in body or key in delivery)
    if taken:
        raise UsageError(
            f"extra_body sets {', '.join(map(repr, taken))}, which llmkit sets for this "
            "request: use the Call argument or option for it, or leave it out of extra_body"
        )
    # A copy: the WebSocket chain keeps this body's settings to compare the next request
    # with, and the options (and so ``extra``) may be changed in place after this call.
    body.update(copy.deepcopy(dict(extra)))


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
