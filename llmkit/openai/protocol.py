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

Each part is folded once, into the protocol's `Collector` (`ProtocolBase`), which also
gives a text part ending without a final text what arrived: the protocol keeps only
per-item state. Wire values map to llmkit values in ``_protocol``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, assert_never

from llmkit._core.protocol import ProtocolBase, State
from llmkit.exceptions import APIError, IncompleteStream, ProtocolError
from llmkit.messages import ProviderItemPart, ToolCall, Usage
from llmkit.openai import wire
from llmkit.openai._protocol import (
    NO_TERMINAL_EVENT,
    error_from_event,
    failure,
    finish_reason,
    new_text_delta,
    parse_content,
    parse_item,
    source,
    tool_kind,
    usage_from_wire,
)
from llmkit.stream import (
    Collector,
    CompactionStart,
    Finish,
    ReasoningDelta,
    ReasoningEnd,
    ReasoningStart,
    Steered,
    SteerFailed,
    SteerPending,
    StreamPart,
    TextDelta,
    TextEnd,
    TextStart,
    ToolInputDelta,
    ToolInputEnd,
    ToolInputStart,
)

if TYPE_CHECKING:
    from llmkit.openai._steer import SteerControl

__all__ = ["ResponsesProtocol", "State", "usage_from_wire"]


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
    streamed_sources: bool = False
    arguments: list[str] = field(default_factory=list)
    reasoning_streamed: bool = False


class ResponsesProtocol(ProtocolBase):
    """A sans-I/O state machine for one Responses API response.

    Feed each event payload (an SSE ``data`` string or a WebSocket text frame) to
    `receive`; it returns the stream parts that payload produced and raises the typed
    error a failure event stands for, with ``partial``. Stop feeding when `done` is
    true. Call `finish` at end of input. `partial` gives the response so far.

    Args:
        collector: The `Collector` to fold the parts into (a model passes its call's);
            a new one when None. The protocol folds every part but the `Finish`, which
            it keeps as `final` for whoever hands the parts on (`ProtocolBase`).
    """

    def __init__(self, collector: Collector | None = None) -> None:
        super().__init__(collector)
        self._items: dict[int | str | None, _Item] = {}
        self._tool_calls = 0
        self.steering: SteerControl | None = None
        """Set by a WebSocket turn: the call's steering. Read only at lifecycle and
        steer events, never per delta."""
        self._held: Finish | None = None
        """A steered response's end, kept while its successor or a steer's answer may
        follow on the lane (the call then goes on: PROTOCOL.md §2.3)."""
        self._spent = Usage()
        """What the steered responses before the current one used."""

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
                self.collector.add_text_delta(delta)
                return [delta]
            parts = self._dispatch(wire.event_from_json(data))
        except ProtocolError as exc:
            self._broke(exc)
        return self._fold(parts)

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
        return new_text_delta(item.id, delta)

    def finish(self) -> list[StreamPart]:
        """End of input. Raises `IncompleteStream` unless a terminal event arrived."""
        if self.state is State.DONE:
            return []
        self._broke(IncompleteStream(NO_TERMINAL_EVENT))

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
            case wire.CompactionEvent():
                return self._on_compaction(event)
            case wire.LifecycleEvent():
                return self._on_lifecycle(event)
            case wire.ErrorEvent():
                return self._on_error(error_from_event(event))
            case wire.WebSocketOnlyEvent():
                return self._on_steer(event) if self.steering is not None else []
            case (
                wire.ReasoningSummaryPartEvent()
                | wire.HostedToolEvent()
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
        parsed = parse_item(event.item)
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
                kind = tool_kind(parsed)
                return [ToolInputStart(item.id, parsed.call_id, parsed.name, kind)]
            case wire.ReasoningItem():
                item.started = True
                return [ReasoningStart(item.id)]
            case wire.OtherItem(type="compaction"):
                item.started = True
                return [CompactionStart(item.id)]
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
                # A compaction item always comes with its start, even when the server
                # sent neither its ``added`` nor a ``response.compaction.*`` event.
                start = self._start(item, parsed) if parsed.type == "compaction" else []
                return [*start, ProviderItemPart(item.id, parsed.type, raw)]
            case _:
                assert_never(parsed)

    def _complete_message(self, item: _Item, message: wire.MessageItem) -> list[StreamPart]:
        parts: list[StreamPart] = []
        for index, raw in enumerate(message.content):
            content = parse_content(raw)
            if content is None:
                continue
            final = content.text if isinstance(content, wire.OutputText) else content.refusal
            if index not in item.streamed_text:
                if item.open_text == index:
                    parts += self._close_text(item, final)
                else:
                    parts += self._close_text(item)
                    parts += self._whole_text(item, index, isinstance(content, wire.Refusal), final)
            if isinstance(content, wire.OutputText) and not item.streamed_sources:
                parts += [source(item.id, a) for a in content.annotations]
        parts += self._close_text(item)
        return parts

    def _complete_tool_call(
        self, item: _Item, call: wire.FunctionCallItem | wire.CustomToolCallItem
    ) -> list[StreamPart]:
        kind = tool_kind(call)
        final = call.arguments if isinstance(call, wire.FunctionCallItem) else call.input
        parts: list[StreamPart] = []
        if not item.started:
            parts += self._start(item, call)
            if final and not item.arguments:
                parts.append(ToolInputDelta(item.id, final))
        arguments = final or "".join(item.arguments)
        self._tool_calls += 1
        parts.append(ToolInputEnd(item.id))
        parts.append(ToolCall(call.call_id, call.name, arguments, id=item.id, kind=kind))
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
        return [TextStart(item.id, refusal=refusal, phase=item.phase)]

    def _close_text(self, item: _Item, final: str | None = None) -> list[StreamPart]:
        """End the open text part with ``final``, else the text that arrived: it was
        opened by an earlier payload, so the collector holds that text."""
        index = item.open_text
        if index is None:
            return []
        item.open_text = None
        item.streamed_text.add(index)
        streamed = self.collector.open_text(item.id)
        if final is None:
            return [TextEnd(item.id, streamed or "")]
        if streamed is None and final:
            return [TextDelta(item.id, final), TextEnd(item.id, final)]
        return [TextEnd(item.id, final)]

    def _whole_text(self, item: _Item, index: int, refusal: bool, final: str) -> list[StreamPart]:
        """A text part that never streamed: start, its final text, end."""
        item.streamed_text.add(index)
        parts: list[StreamPart] = [TextStart(item.id, refusal=refusal, phase=item.phase)]
        if final:
            parts.append(TextDelta(item.id, final))
        parts.append(TextEnd(item.id, final))
        return parts

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
        parts.append(TextDelta(item.id, event.delta or ""))
        return parts

    def _on_annotation(self, event: wire.AnnotationAddedEvent) -> list[StreamPart]:
        item = self._item(event.item_id, event.output_index, "message")
        item.streamed_sources = True
        if event.annotation is None:
            return []
        return [source(item.id, event.annotation)]

    def _on_compaction(self, event: wire.CompactionEvent) -> list[StreamPart]:
        """Any ``response.compaction.*`` event names the compaction item being made: its
        start, once (``output_item.done`` brings the item itself). Items are keyed by
        ``output_index``; an event without one cannot be placed, and is left to the
        item's own events, which start it just the same."""
        if event.output_index is None:
            return []
        item = self._item(event.item_id, event.output_index, "compaction")
        return self._start(item, wire.OtherItem(type="compaction"))

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
        if event.type == "response.created" and self.steering is not None:
            return self._started(response)
        self.response_id = response.id or self.response_id
        self.model = response.model or self.model
        status = response.status
        if event.type in ("response.queued", "response.created", "response.in_progress"):
            self.state = State.STREAMING
            return []
        if event.type == "response.failed" or status in ("failed", "cancelled"):
            self._fold(self._reconcile(response))  # the partial has them, the stream not
            self._fail(failure(response), self._spent)
        parts = self._reconcile(response)
        reason = finish_reason(response, event.type, self._tool_calls)
        usage = usage_from_wire(response.usage)
        if self.steering is not None:
            usage = _plus(self._spent, usage)
            if self.steering.ended():  # a steer may start a successor: the call goes on
                self._held = Finish(reason, usage, self.metadata())
                return parts
        return parts + self._end(Finish(reason, usage, self.metadata()))

    # ----------------------------------------------------------------- steering

    def _started(self, response: wire.ResponseObject) -> list[StreamPart]:
        """``response.created`` of a steered call: the first response, or the successor
        the server started after a steered one (its parts start afresh)."""
        assert self.steering is not None
        held, self._held = self._held, None
        previous = self.response_id
        self.response_id = response.id or self.response_id
        self.model = response.model or self.model
        self.state = State.STREAMING
        committed = self.steering.started(response.id)
        if held is None:
            return []
        self._spent = held.usage
        self._items = {}
        self._tool_calls = 0
        return [Steered(committed, previous, response.id, held.usage)]

    def _on_error(self, error: APIError) -> list[StreamPart]:
        """An ``error`` event ends the response, unless it refuses a steer frame itself:
        a server without steering names the frame's ``type`` (the response goes on)."""
        steering = self.steering
        if steering is None or error.param != "type" or not steering.unanswered:
            self._fail(error, self._spent)
        code = error.code or "steering_not_supported"
        refusal = steering.failed({}, {"code": code, "message": error.message}, refuse=True)
        parts: list[StreamPart] = [SteerFailed(refusal)]
        if self._held is not None and steering.settle():
            held, self._held = self._held, None
            return parts + self._end(held)
        return parts

    def _on_steer(self, event: wire.WebSocketOnlyEvent) -> list[StreamPart]:
        """``response.steer.*``: an answer to a steer of this call."""
        steering, extra = self.steering, event.model_extra or {}
        assert steering is not None
        steer = extra.get("steer")
        steer = steer if isinstance(steer, dict) else {}
        parts: list[StreamPart] = []
        if event.type == "response.steer.accepted":
            steering.accepted(steer)
            return []
        if event.type == "response.steer.failed":
            error = extra.get("error")
            parts.append(
                SteerFailed(steering.failed(steer, error if isinstance(error, dict) else {}))
            )
        elif event.type == "response.steer.pending":
            stubs = extra.get("required_input")
            required = tuple(
                str(stub.get("call_id") or stub.get("approval_request_id") or "")
                for stub in (stubs if isinstance(stubs, list) else [])
                if isinstance(stub, dict)
            )
            parts.append(SteerPending(steering.pending(steer), required))
        else:
            return []  # response.inject.*: not this client's
        if self._held is not None and steering.settle():
            held, self._held = self._held, None
            return parts + self._end(held)
        return parts

    def _reconcile(self, response: wire.ResponseObject) -> list[StreamPart]:
        """Complete items that never got ``output_item.done``, from the final output."""
        parts: list[StreamPart] = []
        by_id = {item.id: item for item in self._items.values() if item.id is not None}
        for index, raw in enumerate(response.output or ()):
            parsed = parse_item(raw)
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


def _plus(a: Usage, b: Usage) -> Usage:
    """Two responses' usage together (a steered call bills each response it made)."""
    return Usage(**{f.name: getattr(a, f.name) + getattr(b, f.name) for f in fields(Usage)})


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
