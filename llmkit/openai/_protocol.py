"""How Responses wire values map to llmkit values, for `ResponsesProtocol`. No state.

Usage, finish reasons, failures and error events, annotations (`SourcePart`), and the
validation of output items and content parts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ValidationError

from llmkit._validation import describe_validation_error
from llmkit.exceptions import APIError, ProtocolError, ResponseFailed, status_error
from llmkit.messages import FinishReason, SourcePart, Usage
from llmkit.openai import wire
from llmkit.stream import TextDelta

__all__ = [
    "NO_TERMINAL_EVENT",
    "error_from_event",
    "failure",
    "finish_reason",
    "new_text_delta",
    "parse_content",
    "parse_item",
    "source",
    "tool_kind",
    "usage_from_wire",
]

NO_TERMINAL_EVENT = (
    "the stream ended before a terminal event (response.completed, "
    "response.incomplete, response.failed or error)"
)
_RETRYABLE_FAILURE_CODES = frozenset(
    {"server_error", "rate_limit_exceeded", "server_is_overloaded", "vector_store_timeout"}
)
_INCOMPLETE_REASONS = {
    "max_output_tokens": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
}


def finish_reason(response: wire.ResponseObject, event_type: str, tool_calls: int) -> FinishReason:
    """The `FinishReason` of a terminal ``response``; ``tool_calls``: how many it made."""
    status = response.status or event_type.removeprefix("response.")
    if status == "incomplete":
        reason = response.incomplete_details.reason if response.incomplete_details else None
        return _INCOMPLETE_REASONS.get(reason or "", FinishReason.OTHER)
    if status == "completed":
        return FinishReason.TOOL_CALLS if tool_calls else FinishReason.STOP
    return FinishReason.UNKNOWN


def failure(response: wire.ResponseObject) -> ResponseFailed:
    """The error a ``response.failed`` (or a failed or cancelled status) stands for."""
    error = response.error or wire.ResponseErrorInfo()
    code = error.code
    return ResponseFailed(
        error.message or f"the response failed (code: {code})",
        code=code,
        body=response.model_dump(exclude={"output"}),
        retryable=code in _RETRYABLE_FAILURE_CODES,
    )


def error_from_event(event: wire.ErrorEvent) -> APIError:
    """The error an ``error`` event stands for: by its HTTP status when it has one.

    The same status makes the same class as an HTTP answer would (`status_error`: 429 is
    a `RateLimitError`, 401 an `AuthenticationError`, ...), whatever the event's shape
    (nested, flat, a bare string, ``status_code`` for ``status``, no code); without a
    status it is a `ResponseFailed`. ``body`` is the event as it arrived, as an HTTP
    error's ``body`` is its decoded answer (redacted where the call ends, `redact_error`).
    """
    status = event.http_status
    common: dict[str, Any] = {
        "code": event.error_code,
        "param": event.error_param,
        "error_type": event.error_type,
        "body": event.frame,
    }
    if status is not None:
        return status_error(status, event.error_message, headers=event.error_headers, **common)
    return ResponseFailed(
        event.error_message,
        retryable=event.error_code in _RETRYABLE_FAILURE_CODES,
        **common,
    )


_text_delta_slots = (
    TextDelta.__dict__["id"].__set__,
    TextDelta.__dict__["delta"].__set__,
    TextDelta.__dict__["type"].__set__,
)


def new_text_delta(item_id: str | None, delta: str) -> TextDelta:
    """``TextDelta(item_id, delta)`` at half the cost: a frozen dataclass's ``__init__``
    goes through ``object.__setattr__`` per field; the slots are set directly here."""
    set_id, set_delta, set_type = _text_delta_slots
    part = object.__new__(TextDelta)
    set_id(part, item_id)
    set_delta(part, delta)
    set_type(part, "text_delta")
    return part


def parse_item(raw: dict[str, Any]) -> wire.OutputItem:
    """An output item, validated.

    Raises:
        ProtocolError: it is not a valid item.
    """
    try:
        return wire.parse_item(raw)
    except ValidationError as exc:  # not chained: its text quotes the values
        problems = describe_validation_error(exc, "item")
        raise ProtocolError(f"malformed output item: {problems}") from None


def parse_content(raw: dict[str, Any]) -> wire.OutputText | wire.Refusal | None:
    """A message content part, validated; None for a kind llmkit does not read.

    Raises:
        ProtocolError: it is not a valid content part.
    """
    try:
        return wire.parse_content(raw)
    except ValidationError as exc:  # not chained: its text quotes the values
        problems = describe_validation_error(exc, "content")
        raise ProtocolError(f"malformed message content: {problems}") from None


def source(item_id: str | None, annotation: dict[str, Any]) -> SourcePart:
    """The `SourcePart` of a text annotation (a citation); odd field types are dropped."""

    def text(key: str) -> str | None:
        value = annotation.get(key)
        return value if isinstance(value, str) else None

    def number(key: str) -> int | None:
        value = annotation.get(key)
        return value if isinstance(value, int) else None

    return SourcePart(
        item_id,
        source_type=str(annotation.get("type", "unknown")),
        url=text("url"),
        title=text("title"),
        file_id=text("file_id"),
        filename=text("filename"),
        start_index=number("start_index"),
        end_index=number("end_index"),
    )


def tool_kind(
    call: wire.FunctionCallItem | wire.CustomToolCallItem,
) -> Literal["function", "custom"]:
    """The `ToolCall.kind` of a tool call item."""
    return "function" if isinstance(call, wire.FunctionCallItem) else "custom"


def usage_from_wire(usage: wire.ResponseUsage | None) -> Usage:
    """Map the wire usage to `Usage`; absent counts are 0."""
    if usage is None:
        return Usage()
    input_tokens = usage.input_tokens or 0
    output_tokens = usage.output_tokens or 0
    details_in = usage.input_tokens_details or wire.InputTokensDetails()
    details_out = usage.output_tokens_details or wire.OutputTokensDetails()
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=usage.total_tokens
        if usage.total_tokens is not None
        else input_tokens + output_tokens,
        reasoning_tokens=details_out.reasoning_tokens or 0,
        cache_read_tokens=details_in.cached_tokens or 0,
        cache_write_tokens=details_in.cache_write_tokens or 0,
    )
