"""Stream parts, the one fold that turns them into a `Response`, `Stream` and `AsyncStream`.

A protocol turns provider events into the parts below; `Collector` folds parts into a
`Response`. `generate()` is that fold over `stream()`, so the two never disagree.

Who folds: each part of a response is folded once, into one `Collector` per call. A
model creates it and gives it to every protocol of the call (a WebSocket attempt, its
HTTP fallback): the protocol folds its parts as it makes them, the loop that drives it
(``llmkit._core.run``) folds the call's `Warnings` first and each `Finish` once stamped,
as it hands it on. `Stream` and `AsyncStream` only read that collector (``finished``,
``response``); one made from bare parts folds them itself. `give_partial` is the one
place an exception's ``partial`` is set, always from a collector.

The parts themselves are declared in ``llmkit._parts`` and exported from here.

A structured call (``output_type=``) gets a `ParsedStream` (`AsyncParsedStream`): the
same stream, whose end parses the answer once (``llmkit._schema_parse``) and whose
``partial_output`` parses the text so far only when it is read.
"""

from __future__ import annotations

from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeAlias, TypeVar, assert_never

from llmkit._closing import AsyncClosing, Closing
from llmkit._parts import (
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
    Warnings,
)
from llmkit._schema import OutputSchema
from llmkit._schema_parse import parse_response, partial_output
from llmkit.exceptions import LLMKitError, OutputError, UsageError
from llmkit.messages import (
    AssistantPart,
    FinishReason,
    ParsedResponse,
    ProviderItemPart,
    ReasoningPart,
    Response,
    ResponseMetadata,
    SourcePart,
    TextPart,
    ToolCall,
    UserMessage,
)

__all__ = [
    "AsyncParsedStream",
    "AsyncStream",
    "Collector",
    "CompactionStart",
    "Finish",
    "ParsedStream",
    "ReasoningDelta",
    "ReasoningEnd",
    "ReasoningStart",
    "SteerFailed",
    "SteerHandle",
    "SteerPending",
    "Steered",
    "Stream",
    "StreamPart",
    "TextDelta",
    "TextEnd",
    "TextStart",
    "ToolInputDelta",
    "ToolInputEnd",
    "ToolInputStart",
    "Warnings",
    "aparsed",
    "collect",
    "parsed",
    "steer_input",
]

T = TypeVar("T")

Observer: TypeAlias = Callable[[str, Mapping[str, str | int | bool]], None]
"""What is told of a call's transport decision: its event name and facts."""


@dataclass(slots=True)
class _OpenText:
    id: str | None
    refusal: bool
    phase: str | None
    chunks: list[str] = field(default_factory=list)

    def part(self, text: str | None = None) -> TextPart:
        final = "".join(self.chunks) if text is None else text
        return TextPart(final, id=self.id, refusal=self.refusal, phase=self.phase)


@dataclass(slots=True)
class _OpenReasoning:
    id: str | None
    summary: dict[int, list[str]] = field(default_factory=dict)
    content: dict[int, list[str]] = field(default_factory=dict)

    def part(self, end: ReasoningEnd | None = None) -> ReasoningPart:
        summary = tuple("".join(v) for _, v in sorted(self.summary.items()))
        content = tuple("".join(v) for _, v in sorted(self.content.items()))
        if end is None:
            return ReasoningPart(self.id, summary, content)
        return ReasoningPart(
            self.id,
            end.summary or summary,
            end.content or content,
            end.encrypted_content,
        )


_Slot: TypeAlias = AssistantPart | _OpenText | _OpenReasoning


class Collector:
    """The fold from stream parts to a `Response`; `build()` works at any point.

    Mid-stream, `build()` gives the partial response that exceptions carry: open text
    and reasoning parts appear with what arrived so far.
    """

    __slots__ = (
        "_finish",
        "_open_reasoning",
        "_open_text",
        "_slots",
        "_steered",
        "_warnings",
        "observer",
    )

    def __init__(self) -> None:
        self.observer: Observer | None = None
        """Who watches the call (its OpenTelemetry span, ``llmkit._otel``), told of the
        transport's decisions (reconnects, resends, fallbacks); None: nobody, nothing
        is noted."""
        self._slots: list[_Slot] = []
        self._steered: list[tuple[int, UserMessage]] = []
        self._open_text: dict[str | None, int] = {}
        self._open_reasoning: dict[str | None, int] = {}
        self._warnings: list[str] = []
        self._finish: Finish | None = None

    @property
    def finished(self) -> bool:
        """Whether a `Finish` part was folded in."""
        return self._finish is not None

    def add(self, part: StreamPart) -> None:
        """Fold one part in."""
        match part:
            case TextStart():
                self._open_text[part.id] = len(self._slots)
                self._slots.append(_OpenText(part.id, part.refusal, part.phase))
            case TextDelta():
                self._text_slot(part.id).chunks.append(part.delta)
            case TextEnd():
                index = self._open_text.pop(part.id, None)
                if index is None:
                    self._slots.append(TextPart(part.text, id=part.id))
                else:
                    slot = self._slots[index]
                    assert isinstance(slot, _OpenText)
                    self._slots[index] = slot.part(part.text)
            case ReasoningStart():
                self._open_reasoning[part.id] = len(self._slots)
                self._slots.append(_OpenReasoning(part.id))
            case ReasoningDelta():
                slot_r = self._reasoning_slot(part.id)
                bucket = slot_r.summary if part.kind == "summary" else slot_r.content
                bucket.setdefault(part.index, []).append(part.delta)
            case ReasoningEnd():
                slot_r = self._reasoning_slot(part.id)
                index = self._open_reasoning.pop(part.id)
                self._slots[index] = slot_r.part(part)
            case ToolInputStart() | ToolInputDelta() | ToolInputEnd() | CompactionStart():
                pass  # the ToolCall (ProviderItemPart) that follows carries the whole item

            case ToolCall() | SourcePart() | ProviderItemPart():
                self._slots.append(part)
            case Warnings() | Steered() | SteerPending() | SteerFailed():
                self._note(part)
            case Finish():
                self._finish = part
            case _:
                assert_never(part)

    def _note(self, part: Warnings | Steered | SteerPending | SteerFailed) -> None:
        """Parts that are no content: warnings, and steer input that is now in the
        conversation, where the server put it (a failed steer's is not in it:
        `Stream.unapplied_steers`)."""
        if isinstance(part, Warnings):
            self._warnings.extend(part.warnings)
        elif not isinstance(part, SteerFailed):
            self._steered += [(len(self._slots), message) for message in part.input]

    def add_text_delta(self, part: TextDelta) -> None:
        """`add` for a `TextDelta`, without the dispatch (the hot path of every stream)."""
        self._text_slot(part.id).chunks.append(part.delta)

    def open_text(self, item_id: str | None) -> str | None:
        """The text so far of item ``item_id``'s open text part; None when no delta of
        it arrived (or none is open). A protocol that must end the part with the text
        that arrived reads it here rather than keeping the chunks a second time."""
        index = self._open_text.get(item_id)
        if index is None:
            return None
        slot = self._slots[index]
        assert isinstance(slot, _OpenText)
        return "".join(slot.chunks) if slot.chunks else None

    def text(self) -> str:
        """The text so far, refusals left out: what ``build().text`` would say, without
        building the response (`ParsedStream.partial_output` reads it)."""
        chunks: list[str] = []
        for slot in self._slots:
            if isinstance(slot, _OpenText):
                if not slot.refusal:
                    chunks += slot.chunks
            elif isinstance(slot, TextPart) and not slot.refusal:
                chunks.append(slot.text)
        return "".join(chunks)

    def open_reasoning(self, item_id: str | None) -> ReasoningPart | None:
        """Item ``item_id``'s open reasoning so far; None when none is open."""
        index = self._open_reasoning.get(item_id)
        if index is None:
            return None
        slot = self._slots[index]
        assert isinstance(slot, _OpenReasoning)
        return slot.part()

    def _text_slot(self, item_id: str | None) -> _OpenText:
        index = self._open_text.get(item_id)
        if index is None:  # a delta without a start: open one rather than lose text
            self.add(TextStart(item_id))
            index = self._open_text[item_id]
        slot = self._slots[index]
        assert isinstance(slot, _OpenText)
        return slot

    def _reasoning_slot(self, item_id: str | None) -> _OpenReasoning:
        index = self._open_reasoning.get(item_id)
        if index is None:
            self.add(ReasoningStart(item_id))
            index = self._open_reasoning[item_id]
        slot = self._slots[index]
        assert isinstance(slot, _OpenReasoning)
        return slot

    def build(
        self, *, metadata: ResponseMetadata | None = None, finish: Finish | None = None
    ) -> Response:
        """The response as folded so far; ``metadata`` replaces the `Finish`'s, and
        ``finish`` stands for a `Finish` not folded (the one of a failed response)."""
        content: list[AssistantPart] = []
        for slot in self._slots:
            if isinstance(slot, _OpenText | _OpenReasoning):
                content.append(slot.part())
            else:
                content.append(slot)
        if finish is None:
            finish = self._finish
        if finish is None:
            return Response(
                content=tuple(content),
                finish_reason=FinishReason.UNKNOWN,
                metadata=metadata or ResponseMetadata(),
                warnings=tuple(self._warnings),
                steered=tuple(self._steered),
            )
        return Response(
            content=tuple(content),
            finish_reason=finish.finish_reason,
            usage=finish.usage,
            metadata=metadata or finish.metadata,
            warnings=tuple(self._warnings),
            steered=tuple(self._steered),
        )


def give_partial(
    exc: LLMKitError,
    collector: Collector,
    metadata: ResponseMetadata | None = None,
    finish: Finish | None = None,
) -> None:
    """Give ``exc`` the response ``collector`` folded so far: the one place an
    exception's ``partial`` is set (protocols, the protocol loop, the streams).

    ``metadata`` and ``finish`` are as for `Collector.build`: the protocol's ids (stamped
    by the loop), and the `Finish` of a response that failed.
    """
    exc.partial = collector.build(metadata=metadata, finish=finish)


def collect(parts: Iterable[StreamPart]) -> Response:
    """Fold stream parts into a `Response`."""
    collector = Collector()
    for part in parts:
        collector.add(part)
    return collector.build()


SteerInput: TypeAlias = "str | UserMessage | Sequence[UserMessage]"
_NOT_STEERABLE = (
    "steer() needs a running response over WebSocket mode (Provider(use_responses_api=True, "
    "websocket=True)); this stream is over HTTP or Chat Completions"
)


def steer_input(value: Any) -> tuple[UserMessage, ...]:
    """The input of ``steer()`` as user messages: a string is one, a `UserMessage` one,
    a sequence of them as given (text, images, files; never tool results).

    Raises:
        UsageError: anything else, or an empty sequence.
    """
    if isinstance(value, str):
        return (UserMessage(value),)
    if isinstance(value, UserMessage):
        return (value,)
    if isinstance(value, Sequence) and value and all(isinstance(m, UserMessage) for m in value):
        return tuple(value)
    raise UsageError(
        f"steer() takes a str, a UserMessage or a non-empty sequence of UserMessage, not "
        f"{type(value).__name__}{' (empty)' if isinstance(value, Sequence) else ''}: steering "
        "adds user input only (no tool results)"
    )


class SteerHandle(Protocol):
    """What a stream's producer gives it for ``steer()`` (WebSocket mode only)."""

    def steer(self, messages: tuple[UserMessage, ...]) -> None: ...

    async def asteer(self, messages: tuple[UserMessage, ...]) -> None: ...

    @property
    def unapplied(self) -> tuple[UserMessage, ...]: ...


class _Folded:
    """What `Stream` and `AsyncStream` share: the collector, and what an ending does.

    Given the ``collector`` its producer folds into (a model's stream), the stream only
    reads it; without one it folds the parts it hands out itself.
    """

    __slots__ = ("_collector", "_done", "_folds", "_steering")

    def __init__(self, collector: Collector | None) -> None:
        self._folds = collector is None
        self._collector = Collector() if collector is None else collector
        self._done = False
        self._steering: SteerHandle | None = None
        """Set by a WebSocket model: where ``steer()`` goes."""

    def _steer_handle(self, value: Any) -> tuple[SteerHandle, tuple[UserMessage, ...]]:
        messages = steer_input(value)
        if self._steering is None:
            raise UsageError(_NOT_STEERABLE)
        return self._steering, messages

    @property
    def unapplied_steers(self) -> tuple[UserMessage, ...]:
        """Input given to ``steer()`` that is not in the conversation: refused
        (`SteerFailed`), never sent, or lost with the connection. Send it with the next
        request (`ToolLoop` does); it is never in `Response.messages`."""
        return () if self._steering is None else self._steering.unapplied

    def _ended(self, exc: BaseException) -> None:
        """The producer stopped with ``exc``; an `LLMKitError` gets the partial response."""
        self._done = True
        if isinstance(exc, LLMKitError) and exc.partial is None:
            give_partial(exc, self._collector)

    def _complete(self) -> None:
        """The producer ended without an error (a structured stream parses here)."""

    @property
    def finished(self) -> bool:
        """Whether the response reached its terminal event."""
        return self._collector.finished

    @property
    def response(self) -> Response:
        """The collected response. Raises `UsageError` until the stream has finished."""
        if not self._collector.finished:
            raise UsageError("the stream has not finished: iterate it to the end first")
        return self._collector.build()


class Stream(_Folded, Closing):
    """The parts of one streamed response: an iterator, a context manager, ``close()``.

    Leaving early (``break``, an exception, ``close()``) is always safe: the producer is
    closed, which releases its connection. An exception raised from the iteration
    carries ``partial``, the response folded from the parts that arrived before it.

    ``collector``: the one its producer folds every part into (then the stream folds
    nothing itself); without it the stream folds the parts it hands out.
    """

    __slots__ = ("_parts",)

    def __init__(self, parts: Iterator[StreamPart], collector: Collector | None = None) -> None:
        super().__init__(collector)
        self._parts = parts

    def __iter__(self) -> Iterator[StreamPart]:
        return self

    def __next__(self) -> StreamPart:
        if self._done:
            raise StopIteration
        try:
            part = next(self._parts)
        except BaseException as exc:  # StopIteration included: the producer is done
            self._ended(exc)
            self.close()
            if isinstance(exc, StopIteration):
                self._complete()
            raise
        if self._folds:
            self._collector.add(part)
        return part

    def steer(self, input: SteerInput) -> None:
        """Add user input to the running response (WebSocket mode, models that steer).

        Queued until the response has started, then sent as ``response.steer``; the
        stream goes on through the steered response and the successor the server starts
        with the input (`Steered`), or ends waiting for tool output (`SteerPending`).
        `Response.messages` then hold the history as the server holds it. Safe from
        another thread. A refused steer arrives as a `SteerFailed` part.

        Raises:
            UsageError: not a WebSocket stream (HTTP, Chat Completions), or ``input`` is
                not user messages.
            SteerError: the response already ended, or the model does not steer
                (``steering_not_supported`` learned earlier); ``.input`` carries it back.
        """
        handle, messages = self._steer_handle(input)
        handle.steer(messages)

    def close(self) -> None:
        """Stop the stream and release what it holds. Safe to call more than once."""
        close = getattr(self._parts, "close", None)
        if close is not None:
            close()

    def until_done(self) -> Response:
        """Consume the rest of the stream and return the collected response."""
        for _ in self:
            pass
        return self.response


class AsyncStream(_Folded, AsyncClosing):
    """`Stream` for asyncio: ``async for``, ``async with`` and ``await aclose()``.

    Leaving early (``break``, an exception, cancellation, ``aclose()``) is safe: the
    producer is closed, which releases its connection. Close it (``async with``) when
    you leave early: an async generator is not closed by leaving its loop.
    ``collector``: as for `Stream`.
    """

    __slots__ = ("_parts",)

    def __init__(
        self, parts: AsyncGenerator[StreamPart, None], collector: Collector | None = None
    ) -> None:
        super().__init__(collector)
        self._parts = parts

    def __aiter__(self) -> AsyncIterator[StreamPart]:
        return self

    async def __anext__(self) -> StreamPart:
        if self._done:
            raise StopAsyncIteration
        try:
            part = await anext(self._parts)
        except BaseException as exc:  # StopAsyncIteration and cancellation included
            self._ended(exc)
            await self.aclose()
            if isinstance(exc, StopAsyncIteration):
                self._complete()
            raise
        if self._folds:
            self._collector.add(part)
        return part

    async def steer(self, input: SteerInput) -> None:
        """As `Stream.steer`, awaited (safe from another task of the same event loop)."""
        handle, messages = self._steer_handle(input)
        await handle.asteer(messages)

    async def aclose(self) -> None:
        """Stop the stream and release what it holds. Safe to call more than once."""
        await self._parts.aclose()

    async def until_done(self) -> Response:
        """Consume the rest of the stream and return the collected response."""
        async for _ in self:
            pass
        return self.response


class _Answer(Generic[T]):
    """What a structured stream adds: the answer parsed, once.

    The parse runs when the stream ends (so `generate` and a ``for`` loop raise an
    `OutputError` from the iteration, after every part) or when ``response`` is first
    read; its result, or its error, is kept. ``partial_output`` parses the text so far
    only when it is read, and again only when the text grew.
    """

    __slots__ = ("collector", "output", "parsed", "partial")

    def __init__(self, collector: Collector, output: OutputSchema[T]) -> None:
        self.collector = collector
        self.output = output
        self.parsed: ParsedResponse[T] | OutputError | None = None
        self.partial: tuple[str, Any] = ("", None)

    def response(self) -> ParsedResponse[T]:
        if self.parsed is None:
            if not self.collector.finished:
                raise UsageError("the stream has not finished: iterate it to the end first")
            try:
                self.parsed = parse_response(self.output, self.collector.build())
            except OutputError as exc:
                self.parsed = exc
        if isinstance(self.parsed, OutputError):
            raise self.parsed
        return self.parsed

    def complete(self) -> None:
        if self.collector.finished:
            try:
                self.response()
            except OutputError as exc:
                raise exc from None  # not "during handling of StopIteration"

    def partial_output(self) -> Any:
        text = self.collector.text()
        if text != self.partial[0]:
            self.partial = (text, partial_output(self.output, text))
        return self.partial[1]


class ParsedStream(Stream, Generic[T]):
    """The `Stream` of a structured call (``model.stream(call, output_type=T)``).

    ``response`` is a `ParsedResponse` whose ``output`` is the answer as ``T``; the end
    of the iteration raises `RefusalError` or `OutputValidationError` when the answer is
    no ``T`` (after every part; ``partial`` is the whole response). ``partial_output``
    is the answer so far.
    """

    __slots__ = ("_answer",)

    def __init__(
        self,
        parts: Iterator[StreamPart],
        output: OutputSchema[T],
        collector: Collector | None = None,
    ) -> None:
        super().__init__(parts, collector)
        self._answer = _Answer(self._collector, output)

    def _complete(self) -> None:
        self._answer.complete()

    @property
    def partial_output(self) -> Any:
        """The answer parsed from the text so far (pydantic-core's partial JSON), or
        None until there is something to parse: the output type once what arrived
        validates as it, else the JSON value so far (a dict of the fields so far)."""
        return self._answer.partial_output()

    @property
    def response(self) -> ParsedResponse[T]:
        """The collected response with its parsed ``output``.

        Raises:
            UsageError: the stream has not finished.
            OutputError: the answer is a refusal or no ``T`` (the same error each time).
        """
        return self._answer.response()

    def until_done(self) -> ParsedResponse[T]:
        """Consume the rest of the stream and return the parsed response."""
        for _ in self:
            pass
        return self.response


class AsyncParsedStream(AsyncStream, Generic[T]):
    """`ParsedStream` for asyncio (``async with model.stream(call, output_type=T)``)."""

    __slots__ = ("_answer",)

    def __init__(
        self,
        parts: AsyncGenerator[StreamPart, None],
        output: OutputSchema[T],
        collector: Collector | None = None,
    ) -> None:
        super().__init__(parts, collector)
        self._answer = _Answer(self._collector, output)

    def _complete(self) -> None:
        self._answer.complete()

    @property
    def partial_output(self) -> Any:
        """As `ParsedStream.partial_output`."""
        return self._answer.partial_output()

    @property
    def response(self) -> ParsedResponse[T]:
        """As `ParsedStream.response`."""
        return self._answer.response()

    async def until_done(self) -> ParsedResponse[T]:
        """Consume the rest of the stream and return the parsed response."""
        async for _ in self:
            pass
        return self.response


def parsed(stream: Stream, output: OutputSchema[T]) -> ParsedStream[T]:
    """``stream`` as the `ParsedStream` of ``output``: its producer and collector taken
    over (``stream`` itself is never iterated), so no part pays for a second hop."""
    result = ParsedStream(stream._parts, output, None if stream._folds else stream._collector)
    result._steering = stream._steering
    return result


def aparsed(stream: AsyncStream, output: OutputSchema[T]) -> AsyncParsedStream[T]:
    """`parsed` for an `AsyncStream`."""
    result = AsyncParsedStream(stream._parts, output, None if stream._folds else stream._collector)
    result._steering = stream._steering
    return result
