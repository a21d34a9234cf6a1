"""`ResponsesProtocol`: Responses API events in, llmkit stream parts out. No I/O.

Theory of operation. A response's events arrive in this order (PROTOCOL.md §8.3):

    response.created → [response.in_progress]
      → per output item: output_item.added → content/argument/summary deltas → output_item.done
    → response.completed | response.incomplete | response.failed   (terminal)

An ``error`` event, or ``response.done`` on some backends, is terminal too. The
protocol, not the I/O loop, decides when the response is over: a loop feeds payloads to
`receive` until `done`, then calls `finish` at EOF, which raises `IncompleteStream` when
no terminal event arrived (a cut connection is never a silent finish).

Real streams are not always tidy: deltas may come without their ``added`` event, a
resumed stream starts mid-way, edited fixtures drop ids. The rule is that the server's
final word wins: ``*.done`` events and ``output_item.done`` items close what is open and
supply whatever was never streamed, and the terminal Response's ``output`` fills in items
that never had events at all. So `generate()` sees the final state even when deltas were
missing, and a consumer of deltas sees every piece of text exactly once.

Items are keyed by ``output_index`` (some proxies rotate ``item_id``), and every part of
an item carries one id: the first one the stream gave it. An id that arrives only after
parts went out without one (deltas with no ``item_id``, the id in ``output_item.done``)
is not adopted, since the fold matches parts by id and would split the item in two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, NoReturn, assert_never

from pydantic import ValidationError

from llmkit._validation import describe_validation_error
from llmkit.exceptions import (
    APIError,
    IncompleteStream,
    ProtocolError,
    ResponseFailed,
    status_error,
)
from llmkit.messages import (
    FinishReason,
    ProviderItemPart,
    Response,
    ResponseMetadata,
    SourcePart,
    ToolCall,
    Usage,
)
from llmkit.openai import wire
from llmkit.stream import (
    Collector,
    Finish,
    ReasoningDelta,
    ReasoningEnd,
    ReasoningStart,
    StreamPart,
    TextDelta,
    TextEnd,
    TextStart,
    ToolInputDelta,
    ToolInputEnd,
    ToolInputStart,
)

__all__ = ["ResponsesProtocol", "State", "usage_from_wire"]

_RETRYABLE_FAILURE_CODES = frozenset(
    {"server_error", "rate_limit_exceeded", "server_is_overloaded", "vector_store_timeout"}
)
_INCOMPLETE_REASONS = {
    "max_output_tokens": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
}


class State(Enum):
    """Where the protocol is in a response's lifecycle."""

    WAITING = "waiting"  # nothing yet, or only events before response.created
    STREAMING = "streaming"  # response.created seen, no terminal event yet
    DONE = "done"  # a terminal event arrived (completed, incomplete, failed, error)
    BROKEN = "broken"  # a payload broke the protocol; nothing more is read


@dataclass(slots=True)
class _Item:
    """What the protocol has emitted for one output item."""

    id: str | None
    kind: str
    phase: str | None = None
    started: bool = False
    finished: bool = False
    open_text: int | None = None  # content index of the open text part
    streamed_text: set[int] = field(default_factory=set)  # content indexes already ended
    text_chunks: dict[int, list[str]] = field(default_factory=dict)
    streamed_sources: bool = False
    arguments: list[str] = field(default_factory=list)
    reasoning_streamed: bool = False


class ResponsesProtocol:
    """A sans-I/O state machine for one Responses API response.

    Feed each event payload (an SSE ``data`` string or a WebSocket text frame) to
    `receive`; it returns the stream parts that payload produced and raises the typed
    error a failure event stands for. Stop feeding when `done` is true. Call `finish` at
    end of input.
    """

    def __init__(self) -> None:
        self.state = State.WAITING
        self.response_id: str | None = None
        self.model: str | None = None
        self._items: dict[int | str | None, _Item] = {}
        self._tool_calls = 0
        self._collector = Collector()

    @property
    def done(self) -> bool:
        """Whether the response is over (terminal event seen, or the stream broke)."""
        return self.state in (State.DONE, State.BROKEN)

    def receive(self, payload: str | bytes) -> list[StreamPart]:
        """Take one event payload and return the parts it produced.

        Raises:
            ProtocolError: the payload is not a valid event.
            APIStatusError: an ``error`` event carrying an HTTP status.
            ResponseFailed: ``response.failed``, or an ``error`` event without a status.
        """
        if self.state is State.DONE or self.state is State.BROKEN:
            return []
        if payload in ("[DONE]", b"[DONE]"):
            return []  # an end-of-stream sentinel some servers add; EOF decides
        try:
            data = wire.load_json(payload)
            delta = self._text_delta(data)
            if delta is not None:
                self._collector.add_text_delta(delta)
                return [delta]
            parts = self._dispatch(wire.event_from_json(data))
        except ProtocolError as exc:
            self.state = State.BROKEN
            exc.partial = self.partial()
            raise
        for part in parts:
            self._collector.add(part)
        return parts

    def _text_delta(self, data: Any) -> TextDelta | None:
        """The fast path for the event that is most of every stream: more text for the
        open text part. Anything unusual (a field of another type, a part not yet open)
        returns None and takes the validated path, so both paths accept the same events.
        """
        if type(data) is not dict or data.get("type") != "response.output_text.delta":
            return None
        delta, item_id = data.get("delta"), data.get("item_id")
        output_index, content_index = data.get("output_index"), data.get("content_index")
        if (
            type(delta) is not str
            or type(data.get("sequence_number", 0)) is not int
            or (output_index is not None and type(output_index) is not int)
            or (content_index is not None and type(content_index) is not int)
            or (item_id is not None and type(item_id) is not str)
            or data.get("text") is not None
            or data.get("refusal") is not None
        ):
            return None
        item = self._items.get(output_index if output_index is not None else item_id)
        index = content_index or 0
        if item is None or item.open_text != index:
            return None
        item.text_chunks[index].append(delta)
        return _new_text_delta(item.id, delta)

    def finish(self) -> list[StreamPart]:
        """End of input. Raises `IncompleteStream` unless a terminal event arrived."""
        if self.state is State.DONE:
            return []
        self.state = State.BROKEN
        raise IncompleteStream(
            "the stream ended before a terminal event (response.completed, "
            "response.incomplete, response.failed or error)",
            partial=self.partial(),
        )

    def partial(self) -> Response:
        """Everything folded so far, as a `Response`."""
        return self._collector.build(metadata=self._metadata())

    # ----------------------------------------------------------------- dispatch

    def _dispatch(self, event: wire.ServerEvent) -> list[StreamPart]:
        match event:
            case wire.TextEvent():
                return self._on_text(event)
            case wire.ToolInputEvent():
                return self._on_tool_input(event)
            case wire.ReasoningSummaryTextEvent() | wire.ReasoningTextEvent():
                return self._on_reasoning_text(event)
            case wire.ItemEvent():
                return self._on_item(event)
            case wire.ContentPartEvent():
                return self._on_content_part(event)
            case wire.AnnotationAddedEvent():
                return self._on_annotation(event)
            case wire.LifecycleEvent():
                return self._on_lifecycle(event)
            case wire.ErrorEvent():
                self._fail(self._error_from_event(event))
            case (
                wire.ReasoningSummaryPartEvent()
                | wire.HostedToolEvent()
                | wire.WebSocketOnlyEvent()
                | wire.KeepaliveEvent()
                | wire.UnknownEvent()
            ):
                return []
            case _:
                assert_never(event)

    # ----------------------------------------------------------------- items

    def _item(self, item_id: str | None, output_index: int | None, kind: str) -> _Item:
        # output_index is the stable key: some proxies rotate item_id on every event.
        # The first event that names an item fixes its kind (all events of an item agree).
        key: int | str | None = output_index if output_index is not None else item_id
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = _Item(item_id, kind)
            return item
        if item.id is None and not _has_emitted(item):
            # Every part of an item carries one id: an id learned after parts went out
            # without one would split the item in two in the fold (its text twice).
            item.id = item_id
        return item

    def _on_item(self, event: wire.ItemEvent) -> list[StreamPart]:
        parsed = _parse_item(event.item)
        item = self._item(parsed.id, event.output_index, parsed.type)
        if event.type == "response.output_item.done":
            return self._complete(item, parsed, event.item)
        if isinstance(parsed, wire.MessageItem):
            item.phase = parsed.phase
            return []
        return self._start(item, parsed)

    def _start(self, item: _Item, parsed: wire.OutputItem) -> list[StreamPart]:
        if item.started:
            return []
        match parsed:
            case wire.FunctionCallItem() | wire.CustomToolCallItem():
                item.started = True
                kind: Literal["function", "custom"] = (
                    "function" if isinstance(parsed, wire.FunctionCallItem) else "custom"
                )
                return [ToolInputStart(item.id, parsed.call_id, parsed.name, kind)]
            case wire.ReasoningItem():
                item.started = True
                return [ReasoningStart(item.id)]
        return []

    def _complete(
        self, item: _Item, parsed: wire.OutputItem, raw: dict[str, Any]
    ) -> list[StreamPart]:
        if item.finished:
            return []
        item.finished = True
        match parsed:
            case wire.MessageItem():
                return self._complete_message(item, parsed)
            case wire.FunctionCallItem() | wire.CustomToolCallItem():
                return self._complete_tool_call(item, parsed)
            case wire.ReasoningItem():
                return self._complete_reasoning(item, parsed)
            case wire.OtherItem():
                return [ProviderItemPart(item.id, parsed.type, raw)]
            case _:
                assert_never(parsed)

    def _complete_message(self, item: _Item, message: wire.MessageItem) -> list[StreamPart]:
        parts: list[StreamPart] = []
        for index, raw in enumerate(message.content):
            try:
                content = wire.parse_content(raw)
            except ValidationError as exc:  # not chained: its text quotes the values
                problems = describe_validation_error(exc, "content")
                raise ProtocolError(f"malformed message content: {problems}") from None
            if content is None:
                continue
            final = content.text if isinstance(content, wire.OutputText) else content.refusal
            if index not in item.streamed_text:
                if item.open_text != index:
                    parts += self._close_text(item)
                    parts += self._open_text(item, index, isinstance(content, wire.Refusal))
                parts += self._close_text(item, final)
            if isinstance(content, wire.OutputText) and not item.streamed_sources:
                parts += [_source(item.id, a) for a in content.annotations]
        parts += self._close_text(item)
        return parts

    def _complete_tool_call(
        self, item: _Item, call: wire.FunctionCallItem | wire.CustomToolCallItem
    ) -> list[StreamPart]:
        kind: Literal["function", "custom"]
        if isinstance(call, wire.FunctionCallItem):
            kind, final = "function", call.arguments
        else:
            kind, final = "custom", call.input
        parts: list[StreamPart] = []
        if not item.started:
            parts += self._start(item, call)
            if final and not item.arguments:
                parts.append(ToolInputDelta(item.id, final))
        arguments = final or "".join(item.arguments)
        self._tool_calls += 1
        parts.append(ToolInputEnd(item.id))
        parts.append(
            ToolCall(
                call.call_id,
                call.name,
                arguments,
                id=item.id,
                kind=kind,
            )
        )
        return parts

    def _complete_reasoning(self, item: _Item, reasoning: wire.ReasoningItem) -> list[StreamPart]:
        parts: list[StreamPart] = []
        summary = tuple(s.text for s in reasoning.summary)
        content = tuple(c.text for c in reasoning.content or ())
        if not item.started:
            parts += self._start(item, reasoning)
        if not item.reasoning_streamed:
            parts += [ReasoningDelta(item.id, t, "summary", i) for i, t in enumerate(summary)]
            parts += [ReasoningDelta(item.id, t, "text", i) for i, t in enumerate(content)]
        parts.append(ReasoningEnd(item.id, summary, content, reasoning.encrypted_content))
        return parts

    # ----------------------------------------------------------------- text

    def _open_text(self, item: _Item, index: int, refusal: bool) -> list[StreamPart]:
        item.open_text = index
        item.text_chunks[index] = []
        return [TextStart(item.id, refusal=refusal, phase=item.phase)]

    def _close_text(self, item: _Item, final: str | None = None) -> list[StreamPart]:
        index = item.open_text
        if index is None:
            return []
        item.open_text = None
        item.streamed_text.add(index)
        chunks = item.text_chunks.pop(index)  # _open_text set it with open_text
        if final is None:
            return [TextEnd(item.id, "".join(chunks))]
        if not chunks and final:
            return [TextDelta(item.id, final), TextEnd(item.id, final)]
        return [TextEnd(item.id, final)]

    def _on_content_part(self, event: wire.ContentPartEvent) -> list[StreamPart]:
        kind = event.part.get("type")
        if kind not in ("output_text", "refusal"):
            return []
        item = self._item(event.item_id, event.output_index, "message")
        index = event.content_index or 0
        if event.type == "response.content_part.added":
            if item.open_text == index or index in item.streamed_text:
                return []
            return self._close_text(item) + self._open_text(item, index, kind == "refusal")
        if item.open_text != index:
            return []
        final = event.part.get("text" if kind == "output_text" else "refusal")
        return self._close_text(item, final if isinstance(final, str) else None)

    def _on_text(self, event: wire.TextEvent) -> list[StreamPart]:
        item = self._item(event.item_id, event.output_index, "message")
        index = event.content_index or 0
        refusal = event.type.startswith("response.refusal")
        if event.type.endswith(".done"):
            if item.open_text != index:
                return []
            return self._close_text(item, event.text if not refusal else event.refusal)
        parts: list[StreamPart] = []
        if item.open_text != index:
            parts += self._close_text(item) + self._open_text(item, index, refusal)
        delta = event.delta or ""
        item.text_chunks[index].append(delta)
        parts.append(TextDelta(item.id, delta))
        return parts

    def _on_annotation(self, event: wire.AnnotationAddedEvent) -> list[StreamPart]:
        item = self._item(event.item_id, event.output_index, "message")
        item.streamed_sources = True
        if event.annotation is None:
            return []
        return [_source(item.id, event.annotation)]

    # ----------------------------------------------------------------- tools, reasoning

    def _on_tool_input(self, event: wire.ToolInputEvent) -> list[StreamPart]:
        # The kind lets the terminal output match this item by position when no id came.
        function = event.type.startswith("response.function_call")
        kind = "function_call" if function else "custom_tool_call"
        item = self._item(event.item_id, event.output_index, kind)
        if event.delta is None:
            return []  # the .done event: output_item.done carries the final input
        item.arguments.append(event.delta)
        return [ToolInputDelta(item.id, event.delta)]

    def _on_reasoning_text(
        self, event: wire.ReasoningSummaryTextEvent | wire.ReasoningTextEvent
    ) -> list[StreamPart]:
        if event.delta is None:
            return []  # .done: output_item.done carries the final text
        item = self._item(event.item_id, event.output_index, "reasoning")
        parts: list[StreamPart] = []
        if not item.started:
            item.started = True
            parts.append(ReasoningStart(item.id))
        item.reasoning_streamed = True
        if isinstance(event, wire.ReasoningSummaryTextEvent):
            parts.append(ReasoningDelta(item.id, event.delta, "summary", event.summary_index))
        else:
            parts.append(ReasoningDelta(item.id, event.delta, "text", event.content_index))
        return parts

    # ----------------------------------------------------------------- lifecycle

    def _on_lifecycle(self, event: wire.LifecycleEvent) -> list[StreamPart]:
        response = event.response
        self.response_id = response.id or self.response_id
        self.model = response.model or self.model
        status = response.status
        if event.type in ("response.queued", "response.created", "response.in_progress"):
            self.state = State.STREAMING
            return []
        if event.type == "response.failed" or status in ("failed", "cancelled"):
            parts = self._reconcile(response)
            for part in parts:
                self._collector.add(part)
            self._fail(self._failure(response))
        parts = self._reconcile(response)
        parts.append(self._finish_part(response, event.type))
        self.state = State.DONE
        return parts

    def _reconcile(self, response: wire.ResponseObject) -> list[StreamPart]:
        """Complete items that never got ``output_item.done``, from the final output."""
        parts: list[StreamPart] = []
        by_id = {item.id: item for item in self._items.values() if item.id is not None}
        for index, raw in enumerate(response.output or ()):
            parsed = _parse_item(raw)
            parts += self._complete(self._final_item(by_id, parsed, index), parsed, raw)
        for item in self._items.values():
            if not item.finished:
                parts += self._close_open(item)
        return parts

    def _final_item(self, by_id: dict[str, _Item], parsed: wire.OutputItem, index: int) -> _Item:
        """The streamed item a terminal output item stands for, or a new one.

        The final output may omit streamed items, so positions shift: an id decides
        first. An id never seen before still matches the item at its position when that
        one has the same kind (some proxies rotate ids); otherwise it is a new item.
        """
        if parsed.id is not None:
            known = by_id.get(parsed.id)
            if known is not None:
                return known
            positional = self._items.get(index)
            if positional is None or positional.kind != parsed.type:
                return self._item(parsed.id, None, parsed.type)
        return self._item(parsed.id, index, parsed.type)

    def _close_open(self, item: _Item) -> list[StreamPart]:
        """Close an item the server never finished, with what arrived.

        Runs once per item, at the terminal event: nothing reads the item afterwards.
        """
        if item.kind == "reasoning" and item.started:
            return [ReasoningEnd(item.id)]
        return self._close_text(item)

    def _finish_part(self, response: wire.ResponseObject, event_type: str) -> Finish:
        status = response.status or event_type.removeprefix("response.")
        if status == "incomplete":
            reason = response.incomplete_details.reason if response.incomplete_details else None
            finish = _INCOMPLETE_REASONS.get(reason or "", FinishReason.OTHER)
        elif status == "completed":
            finish = FinishReason.TOOL_CALLS if self._tool_calls else FinishReason.STOP
        else:
            finish = FinishReason.UNKNOWN
        return Finish(finish, usage_from_wire(response.usage), self._metadata())

    def _metadata(self) -> ResponseMetadata:
        return ResponseMetadata(response_id=self.response_id, model=self.model)

    # ----------------------------------------------------------------- failures

    def _failure(self, response: wire.ResponseObject) -> ResponseFailed:
        error = response.error or wire.ResponseErrorInfo()
        code = error.code
        return ResponseFailed(
            error.message or f"the response failed (code: {code})",
            code=code,
            body=response.model_dump(exclude={"output"}),
            retryable=code in _RETRYABLE_FAILURE_CODES,
        )

    def _error_from_event(self, event: wire.ErrorEvent) -> APIError:
        status = event.http_status
        common: dict[str, Any] = {
            "code": event.error_code,
            "param": event.error_param,
            "error_type": event.error_type,
            "body": event.model_dump(exclude_none=True),
        }
        if status is not None:
            return status_error(status, event.error_message, headers=event.error_headers, **common)
        return ResponseFailed(
            event.error_message,
            retryable=event.error_code in _RETRYABLE_FAILURE_CODES,
            **common,
        )

    def _fail(self, error: APIError) -> NoReturn:
        self._collector.add(Finish(FinishReason.ERROR, Usage(), self._metadata()))
        self.state = State.DONE
        error.partial = self.partial()
        raise error


_text_delta_slots = (
    TextDelta.__dict__["id"].__set__,
    TextDelta.__dict__["delta"].__set__,
    TextDelta.__dict__["type"].__set__,
)


def _new_text_delta(item_id: str | None, delta: str) -> TextDelta:
    """``TextDelta(item_id, delta)`` at half the cost: a frozen dataclass's ``__init__``
    goes through ``object.__setattr__`` per field; the slots are set directly here."""
    set_id, set_delta, set_type = _text_delta_slots
    part = object.__new__(TextDelta)
    set_id(part, item_id)
    set_delta(part, delta)
    set_type(part, "text_delta")
    return part


def _has_emitted(item: _Item) -> bool:
    """Whether any part of ``item`` went out (its id is then fixed)."""
    return (
        item.started
        or item.finished
        or item.open_text is not None
        or bool(item.streamed_text)
        or bool(item.arguments)
        or item.streamed_sources
    )


def _parse_item(raw: dict[str, Any]) -> wire.OutputItem:
    try:
        return wire.parse_item(raw)
    except ValidationError as exc:  # not chained: its text quotes the values
        problems = describe_validation_error(exc, "item")
        raise ProtocolError(f"malformed output item: {problems}") from None


def _source(item_id: str | None, annotation: dict[str, Any]) -> SourcePart:
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
