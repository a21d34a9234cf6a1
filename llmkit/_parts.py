"""The stream parts: what a protocol makes of provider events, one dataclass per kind.

Every part of an output item carries that item's ``id``. End parts carry the item's
final value as the server stated it (``TextEnd.text``, ``ReasoningEnd.summary``), which
the fold prefers over the joined deltas: a server's final word wins. Public through
`llmkit.stream` and `llmkit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from llmkit.exceptions import SteerError
from llmkit.messages import (
    FinishReason,
    ProviderItemPart,
    ResponseMetadata,
    SourcePart,
    ToolCall,
    Usage,
    UserMessage,
)


@dataclass(frozen=True, slots=True)
class Warnings:
    """Things the provider or llmkit wants the caller to know (dropped settings, ...)."""

    warnings: tuple[str, ...]
    type: Literal["warnings"] = field(default="warnings", init=False)


@dataclass(frozen=True, slots=True)
class TextStart:
    """A text (or refusal) content part of output item ``id`` begins."""

    id: str | None
    refusal: bool = False
    phase: str | None = None
    type: Literal["text_start"] = field(default="text_start", init=False)


@dataclass(frozen=True, slots=True)
class TextDelta:
    """More text for the open text part of item ``id``."""

    id: str | None
    delta: str
    type: Literal["text_delta"] = field(default="text_delta", init=False)


@dataclass(frozen=True, slots=True)
class TextEnd:
    """The text part of item ``id`` is complete; ``text`` is its final value."""

    id: str | None
    text: str
    type: Literal["text_end"] = field(default="text_end", init=False)


@dataclass(frozen=True, slots=True)
class ReasoningStart:
    """A reasoning item begins."""

    id: str | None
    type: Literal["reasoning_start"] = field(default="reasoning_start", init=False)


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """More reasoning text: of summary part ``index`` or of raw reasoning part ``index``."""

    id: str | None
    delta: str
    kind: Literal["summary", "text"] = "summary"
    index: int = 0
    type: Literal["reasoning_delta"] = field(default="reasoning_delta", init=False)


@dataclass(frozen=True, slots=True)
class ReasoningEnd:
    """The reasoning item is complete, with its final summary, text and encrypted state."""

    id: str | None
    summary: tuple[str, ...] = ()
    content: tuple[str, ...] = ()
    encrypted_content: str | None = None
    type: Literal["reasoning_end"] = field(default="reasoning_end", init=False)


@dataclass(frozen=True, slots=True)
class ToolInputStart:
    """The model starts writing the input of a tool call."""

    id: str | None
    call_id: str
    name: str
    kind: Literal["function", "custom"] = "function"
    type: Literal["tool_input_start"] = field(default="tool_input_start", init=False)


@dataclass(frozen=True, slots=True)
class ToolInputDelta:
    """More of a tool call's input (JSON text for a function tool)."""

    id: str | None
    delta: str
    type: Literal["tool_input_delta"] = field(default="tool_input_delta", init=False)


@dataclass(frozen=True, slots=True)
class ToolInputEnd:
    """The tool call's input is complete; a `ToolCall` part follows."""

    id: str | None
    type: Literal["tool_input_end"] = field(default="tool_input_end", init=False)


@dataclass(frozen=True, slots=True)
class CompactionStart:
    """The server started compacting the context into output item ``id`` (Responses
    ``context_management``). The item itself follows as a `ProviderItemPart` of
    ``item_type`` ``"compaction"`` with the same id, and is kept in `Response.message`:
    later input replays it, so the compacted context carries on."""

    id: str | None
    type: Literal["compaction_start"] = field(default="compaction_start", init=False)


@dataclass(frozen=True, slots=True)
class Steered:
    """Steering took effect (``Stream.steer``, WebSocket mode): the response
    ``previous_response_id`` stopped (or completed) and the server started
    ``response_id``, which sees ``input`` after everything before this part. The parts
    that follow belong to that successor; `Response.messages` puts ``input`` here.
    ``usage`` is what the stopped response used (the final `Finish` counts it too)."""

    input: tuple[UserMessage, ...]
    previous_response_id: str | None
    response_id: str | None
    usage: Usage = field(default_factory=Usage)
    type: Literal["steered"] = field(default="steered", init=False)


@dataclass(frozen=True, slots=True)
class SteerPending:
    """The response ended waiting for tool output, and the server keeps the steer
    ``input`` queued: it prepends it to the next request of this conversation on the
    same connection (the tool results). `Response.messages` ends with ``input``, so a
    history extended by them (and then the tool results) is what the server holds;
    never send ``input`` again. ``required`` names the tool calls (``call_id``) the
    server waits for."""

    input: tuple[UserMessage, ...]
    required: tuple[str, ...] = ()
    type: Literal["steer_pending"] = field(default="steer_pending", init=False)


@dataclass(frozen=True, slots=True)
class SteerFailed:
    """A steer the server did not apply; ``error.input`` carries the input back (and
    `Stream.unapplied_steers` keeps it) so it can go with the next request."""

    error: SteerError
    type: Literal["steer_failed"] = field(default="steer_failed", init=False)


@dataclass(frozen=True, slots=True)
class Finish:
    """The response reached a terminal event."""

    finish_reason: FinishReason
    usage: Usage
    metadata: ResponseMetadata
    type: Literal["finish"] = field(default="finish", init=False)


StreamPart: TypeAlias = (
    Warnings
    | TextStart
    | TextDelta
    | TextEnd
    | ReasoningStart
    | ReasoningDelta
    | ReasoningEnd
    | ToolInputStart
    | ToolInputDelta
    | ToolInputEnd
    | ToolCall
    | SourcePart
    | ProviderItemPart
    | CompactionStart
    | Steered
    | SteerPending
    | SteerFailed
    | Finish
)
