"""Pydantic models of the Responses API streaming events and the Response object.

The same JSON arrives as an SSE ``data:`` payload over HTTP and as a text frame over
WebSocket, so one set of models serves both. Known event types validate strictly (a
malformed known event is a `ProtocolError`); unknown types become `UnknownEvent`, so a
new server event never breaks an old client. Every model allows extra fields: servers
add fields (``obfuscation``, ``logprobs``, ``stream_id``, ...) faster than clients learn
them.

The vocabulary is PROTOCOL.md §8 (openai-python's ``ResponseStreamEvent`` union plus the
newer and provider-specific events). Families whose payloads llmkit does not interpret
(hosted-tool progress, audio, ...) share one model with a ``Literal`` of their types.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from llmkit._validation import describe_validation_error
from llmkit.exceptions import ProtocolError
from llmkit.openai._common import load_json

__all__ = [
    "AnnotationAddedEvent",
    "COMPACTION_PREFIX",
    "CompactionEvent",
    "ContentPartEvent",
    "CustomToolCallItem",
    "ErrorDetail",
    "ErrorEvent",
    "FunctionCallItem",
    "HostedToolEvent",
    "IncompleteDetails",
    "InputTokensDetails",
    "ItemEvent",
    "KeepaliveEvent",
    "LifecycleEvent",
    "MessageItem",
    "OtherItem",
    "OutputItem",
    "OutputText",
    "OutputTokensDetails",
    "ReasoningItem",
    "ReasoningSummaryPartEvent",
    "ReasoningSummaryTextEvent",
    "ReasoningTextEvent",
    "Refusal",
    "ResponseErrorInfo",
    "ResponseObject",
    "ResponseUsage",
    "ServerEvent",
    "TextEvent",
    "ToolInputEvent",
    "UnknownEvent",
    "WebSocketOnlyEvent",
    "event_from_json",
    "load_json",
    "parse_event",
    "parse_item",
]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


# --------------------------------------------------------------------------- items


class OutputText(_Wire):
    """An ``output_text`` content part of an assistant message."""

    type: Literal["output_text"]
    text: str = ""
    annotations: list[dict[str, Any]] = Field(default_factory=list)
    """Citations (``url_citation``, ``file_citation``, ...), kept as sent."""


class Refusal(_Wire):
    """A ``refusal`` content part."""

    type: Literal["refusal"]
    refusal: str = ""


class MessageItem(_Wire):
    """An assistant ``message`` output item."""

    type: Literal["message"]
    id: str | None = None
    role: str = "assistant"
    status: str | None = None
    content: list[dict[str, Any]] = Field(default_factory=list)
    """Content parts; `parse_content` types the known ones."""
    phase: str | None = None
    """``commentary`` / ``final_answer`` on newer models; must be replayed."""


class FunctionCallItem(_Wire):
    """A ``function_call`` output item. ``call_id`` matches the later tool output."""

    type: Literal["function_call"]
    id: str | None = None
    call_id: str
    name: str
    arguments: str = ""
    status: str | None = None


class CustomToolCallItem(_Wire):
    """A ``custom_tool_call`` output item: free-form ``input`` instead of JSON arguments."""

    type: Literal["custom_tool_call"]
    id: str | None = None
    call_id: str
    name: str
    input: str = ""
    status: str | None = None


class SummaryText(_Wire):
    """One reasoning summary part."""

    type: str = "summary_text"
    text: str = ""


class ReasoningItem(_Wire):
    """A ``reasoning`` output item; ``encrypted_content`` makes it replayable with store=false."""

    type: Literal["reasoning"]
    id: str | None = None
    summary: list[SummaryText] = Field(default_factory=list)
    content: list[SummaryText] | None = None
    """Raw ``reasoning_text`` parts (open-weight and compatible servers)."""
    encrypted_content: str | None = None
    status: str | None = None


class OtherItem(_Wire):
    """Any other output item (hosted tools, compaction, ...), kept verbatim."""

    type: str
    id: str | None = None


OutputItem: TypeAlias = (
    MessageItem | FunctionCallItem | CustomToolCallItem | ReasoningItem | OtherItem
)

_ITEM_MODELS: dict[str, type[_Wire]] = {
    "message": MessageItem,
    "function_call": FunctionCallItem,
    "custom_tool_call": CustomToolCallItem,
    "reasoning": ReasoningItem,
}


def parse_item(data: dict[str, Any]) -> OutputItem:
    """Validate one output item by its ``type``; unknown types become `OtherItem`."""
    kind = data.get("type")
    model = _ITEM_MODELS.get(kind, OtherItem) if isinstance(kind, str) else OtherItem
    return model.model_validate(data)  # type: ignore[return-value]


def parse_content(data: dict[str, Any]) -> OutputText | Refusal | None:
    """Type one message content part; None for kinds llmkit does not know."""
    kind = data.get("type")
    if kind == "output_text":
        return OutputText.model_validate(data)
    if kind == "refusal":
        return Refusal.model_validate(data)
    return None


# --------------------------------------------------------------------------- response


class InputTokensDetails(_Wire):
    """Input token breakdown. ``cache_write_tokens`` is new (2026) and often absent."""

    cached_tokens: int | None = 0
    cache_write_tokens: int | None = 0


class OutputTokensDetails(_Wire):
    """Output token breakdown."""

    reasoning_tokens: int | None = 0


class ResponseUsage(_Wire):
    """Token usage of a response (null until the terminal event)."""

    input_tokens: int | None = 0
    output_tokens: int | None = 0
    total_tokens: int | None = None
    input_tokens_details: InputTokensDetails | None = None
    output_tokens_details: OutputTokensDetails | None = None


class IncompleteDetails(_Wire):
    """Why a response is ``incomplete``: ``max_output_tokens``, ``content_filter``, ..."""

    reason: str | None = None


class ResponseErrorInfo(_Wire):
    """The error of a ``failed`` response."""

    code: str | None = None
    message: str | None = None


class ResponseObject(_Wire):
    """The Response object carried by lifecycle events. Most fields are optional because
    compatible servers and edited fixtures omit them."""

    id: str | None = None
    object: str | None = None
    model: str | None = None
    status: str | None = None
    output: list[dict[str, Any]] | None = None
    """Output items as sent; `parse_item` types them."""
    usage: ResponseUsage | None = None
    incomplete_details: IncompleteDetails | None = None
    error: ResponseErrorInfo | None = None


# --------------------------------------------------------------------------- events


class _Event(_Wire):
    sequence_number: int | None = None


class LifecycleEvent(_Event):
    """``response.created`` ... ``response.completed``: the whole Response object."""

    type: Literal[
        "response.queued",
        "response.created",
        "response.in_progress",
        "response.completed",
        "response.incomplete",
        "response.failed",
        "response.done",
    ]
    response: ResponseObject = Field(default_factory=ResponseObject)


class ItemEvent(_Event):
    """``response.output_item.added`` / ``.done``."""

    type: Literal["response.output_item.added", "response.output_item.done"]
    item: dict[str, Any]
    output_index: int | None = None


class ContentPartEvent(_Event):
    """``response.content_part.added`` / ``.done``."""

    type: Literal["response.content_part.added", "response.content_part.done"]
    item_id: str | None = None
    output_index: int | None = None
    content_index: int | None = None
    part: dict[str, Any] = Field(default_factory=dict)


class TextEvent(_Event):
    """Text and refusal deltas and their ``.done`` events."""

    type: Literal[
        "response.output_text.delta",
        "response.output_text.done",
        "response.refusal.delta",
        "response.refusal.done",
    ]
    item_id: str | None = None
    output_index: int | None = None
    content_index: int | None = None
    delta: str | None = None
    text: str | None = None
    refusal: str | None = None


class AnnotationAddedEvent(_Event):
    """A citation added to an output text part."""

    type: Literal["response.output_text.annotation.added"]
    item_id: str | None = None
    output_index: int | None = None
    content_index: int | None = None
    annotation_index: int | None = None
    annotation: dict[str, Any] | None = None


class ToolInputEvent(_Event):
    """Streamed function-call arguments and custom-tool input."""

    type: Literal[
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
    ]
    item_id: str | None = None
    output_index: int | None = None
    delta: str | None = None
    arguments: str | None = None
    input: str | None = None
    name: str | None = None


class ReasoningSummaryPartEvent(_Event):
    """A reasoning summary part opens or closes."""

    type: Literal[
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done",
    ]
    item_id: str | None = None
    output_index: int | None = None
    summary_index: int = 0
    part: dict[str, Any] | None = None


class ReasoningSummaryTextEvent(_Event):
    """Reasoning summary text."""

    type: Literal[
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
    ]
    item_id: str | None = None
    output_index: int | None = None
    summary_index: int = 0
    delta: str | None = None
    text: str | None = None


class ReasoningTextEvent(_Event):
    """Raw reasoning text (open-weight and compatible servers)."""

    type: Literal["response.reasoning_text.delta", "response.reasoning_text.done"]
    item_id: str | None = None
    output_index: int | None = None
    content_index: int = 0
    delta: str | None = None
    text: str | None = None


class HostedToolEvent(_Event):
    """Progress of hosted tools and other item-scoped events llmkit does not interpret;
    the finished item arrives in ``response.output_item.done``."""

    type: Literal[
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.web_search_call.completed",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
        "response.image_generation_call.in_progress",
        "response.image_generation_call.generating",
        "response.image_generation_call.completed",
        "response.image_generation_call.partial_image",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.mcp_list_tools.failed",
        "response.shell_call_command.added",
        "response.shell_call_command.delta",
        "response.shell_call_command.done",
        "response.shell_call_output_content.delta",
        "response.shell_call_output_content.done",
        "response.apply_patch_call_operation_diff.delta",
        "response.apply_patch_call_operation_diff.done",
        "response.audio.delta",
        "response.audio.done",
        "response.audio.transcript.delta",
        "response.audio.transcript.done",
    ]
    item_id: str | None = None
    output_index: int | None = None


COMPACTION_PREFIX = "response.compaction."


class CompactionEvent(_Event):
    """``response.compaction.compacting`` (PROTOCOL.md §3.3, §8.2): the server started
    compacting the context into output item ``item_id``, which ``output_item.done``
    completes. Every ``response.compaction.*`` type lands here (servers name other
    phases too), so none is mistaken for an unknown event."""

    type: str
    item_id: str | None = None
    output_index: int | None = None


class WebSocketOnlyEvent(_Event):
    """Steering and multi-agent acknowledgements (WebSocket only); informational here."""

    type: Literal[
        "response.steer.accepted",
        "response.steer.pending",
        "response.steer.failed",
        "response.inject.created",
        "response.inject.failed",
    ]


class KeepaliveEvent(_Event):
    """An application-level heartbeat on long streams: liveness only."""

    type: Literal["keepalive"]


def _text(value: Any) -> Any:
    """A gateway's scalar (a numeric ``code``, say) as text; JSON for anything else."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _status(value: Any) -> Any:
    """An HTTP status given as text (``"429"``) as a number; anything else as it is (a
    status that is no number is a malformed event)."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _headers(value: Any) -> Any:
    """Headers as text; anything but an object is no headers."""
    if not isinstance(value, dict):
        return None
    return {str(k): str(_text(v)) for k, v in value.items()}


def _error_field(value: Any) -> Any:
    """The nested ``error``: an object, a gateway's bare string, or anything else as text."""
    if value is None or isinstance(value, dict | str):
        return value
    return _text(value)


_Text = Annotated[str | None, BeforeValidator(_text)]
_Status = Annotated[int | None, BeforeValidator(_status)]
_Headers = Annotated[dict[str, str] | None, BeforeValidator(_headers)]


class ErrorDetail(_Wire):
    """The ``error`` object of a nested error event (every field made text if it is not)."""

    type: _Text = None
    code: _Text = None
    message: _Text = None
    param: _Text = None
    headers: _Headers = None


class ErrorEvent(_Event):
    """An ``error`` event in every shape servers and gateways send.

    Flat (documented for SSE): ``code``/``message``/``param`` at the top. Nested (real
    SSE from OpenAI and Azure, and every WebSocket error frame): an ``error`` object,
    with ``status`` (alias ``status_code``) and ``headers`` on WebSocket. Gateways also
    send ``error`` as a bare string (its message), numbers where text belongs, or no
    code at all. The nested fields win; the flat ones are the fallback. No field's type
    makes an error frame a `ProtocolError`: the error it reports is what the caller
    needs to see.
    """

    type: Literal["error"]
    code: _Text = None
    message: _Text = None
    param: _Text = None
    error: Annotated[ErrorDetail | str | None, BeforeValidator(_error_field)] = None
    status: _Status = None
    status_code: _Status = None
    headers: _Headers = None
    _frame: Any = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_frame(cls, data: Any, handler: ModelWrapValidatorHandler[ErrorEvent]) -> ErrorEvent:
        event = handler(data)
        event._frame = data
        return event

    @property
    def frame(self) -> Any:
        """The event as it arrived (decoded JSON): what the exception keeps as ``body``."""
        return self._frame if self._frame is not None else self.model_dump(exclude_none=True)

    @property
    def _nested(self) -> ErrorDetail | None:
        return self.error if isinstance(self.error, ErrorDetail) else None

    @property
    def error_code(self) -> str | None:
        """The machine-readable code from whichever shape carried it."""
        return (self._nested.code if self._nested else None) or self.code

    @property
    def error_message(self) -> str:
        """The message from whichever shape carried it; never blank."""
        detail = self.error if isinstance(self.error, str) else None
        message = (self._nested.message if self._nested else detail) or self.message
        return message or f"error event without a message (code: {self.error_code})"

    @property
    def error_param(self) -> str | None:
        """The offending parameter, if named."""
        return (self._nested.param if self._nested else None) or self.param

    @property
    def error_type(self) -> str | None:
        """The error's type (``invalid_request_error``, ...), nested shape only."""
        return self._nested.type if self._nested else None

    @property
    def http_status(self) -> int | None:
        """The HTTP status the error stands for, when the server said."""
        return self.status if self.status is not None else self.status_code

    @property
    def error_headers(self) -> dict[str, str]:
        """HTTP-style headers that went with the error (rate-limit hints)."""
        nested = self._nested.headers if self._nested else None
        return {**(self.headers or {}), **(nested or {})}


class UnknownEvent(_Event):
    """Any event type llmkit does not know: passed through, never an error."""

    type: str


ServerEvent: TypeAlias = (
    LifecycleEvent
    | ItemEvent
    | ContentPartEvent
    | TextEvent
    | AnnotationAddedEvent
    | ToolInputEvent
    | ReasoningSummaryPartEvent
    | ReasoningSummaryTextEvent
    | ReasoningTextEvent
    | HostedToolEvent
    | CompactionEvent
    | WebSocketOnlyEvent
    | KeepaliveEvent
    | ErrorEvent
    | UnknownEvent
)


def _by_type() -> dict[str, type[_Event]]:
    models: tuple[type[_Event], ...] = (
        LifecycleEvent,
        ItemEvent,
        ContentPartEvent,
        TextEvent,
        AnnotationAddedEvent,
        ToolInputEvent,
        ReasoningSummaryPartEvent,
        ReasoningSummaryTextEvent,
        ReasoningTextEvent,
        HostedToolEvent,
        WebSocketOnlyEvent,
        KeepaliveEvent,
        ErrorEvent,
    )
    table: dict[str, type[_Event]] = {"response.compaction.compacting": CompactionEvent}
    for model in models:
        for name in model.model_fields["type"].annotation.__args__:  # type: ignore[union-attr]
            table[name] = model
    return table


EVENT_MODELS: dict[str, type[_Event]] = _by_type()
"""Event type → model, for every known type (other ``response.compaction.*`` types go to
`CompactionEvent` by their prefix)."""


def parse_event(payload: str | bytes) -> ServerEvent:
    """Parse one event payload (SSE ``data`` or a WebSocket text frame).

    Raises:
        ProtocolError: the payload is not JSON, not an object, has no string ``type``,
            or is a known event whose fields are malformed.
    """
    return event_from_json(load_json(payload))


def event_from_json(data: Any) -> ServerEvent:
    """Validate one decoded payload as the event its ``type`` names.

    Raises:
        ProtocolError: not an object, no string ``type``, or malformed fields.
    """
    if not isinstance(data, dict):
        raise ProtocolError(f"event payload is not a JSON object: {type(data).__name__}")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("event payload has no string 'type'")
    model = EVENT_MODELS.get(kind) or (
        CompactionEvent if kind.startswith(COMPACTION_PREFIX) else UnknownEvent
    )
    try:
        return model.model_validate(data)  # type: ignore[return-value]
    except ValidationError as exc:  # not chained: its text quotes the payload's values
        problems = describe_validation_error(exc, "event")
        raise ProtocolError(f"malformed {kind!r} event: {problems}") from None
    except RecursionError as exc:
        raise ProtocolError(f"{kind!r} event is nested too deeply") from exc
