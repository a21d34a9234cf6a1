"""`ChatProtocol`: Chat Completions stream chunks in, llmkit stream parts out. No I/O.

Theory of operation. A Chat Completions stream is a run of ``chat.completion.chunk``
payloads, each adding a ``delta`` to the one assistant message:

    role → [reasoning deltas] → content / refusal / tool-call deltas
    → a chunk with ``finish_reason`` → [a usage chunk, ``choices: []``] → ``[DONE]``

The response is over at ``[DONE]``, or at end of input once a ``finish_reason`` arrived
(servers that never send ``[DONE]``). Usage comes *after* the finish reason, so the
`Finish` part waits for one of those two. A stream that ends without a finish reason
raises `IncompleteStream`, like a Responses stream without a terminal event.

Tool calls are assembled by ``index``: the first delta of a call carries its ``id`` and
name, later ones only argument pieces. Servers bend this: some send a whole call in one
delta, some leave ``index`` out, some reuse index 0 for every call with a new ``id``;
each of those still gives one call per ``id``. A call's input streams under its call id
(``ToolInputStart.id``), as chat output items have no ids of their own; the final
`ToolCall` has ``id=None``.

Chat output has no item ids, so text, refusal and reasoning parts have ``id=None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from llmkit._core.protocol import ProtocolBase, State
from llmkit.exceptions import (
    APIError,
    IncompleteStream,
    ProtocolError,
    ResponseFailed,
    status_error,
)
from llmkit.messages import FinishReason, ToolCall, Usage
from llmkit.openai.chat import wire
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

__all__ = ["ChatProtocol", "usage_from_chat"]

_FINISH_REASONS = {
    "stop": FinishReason.STOP,
    "eos": FinishReason.STOP,
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "max_tokens": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "tool_use": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
}
_RETRYABLE_CODES = frozenset(
    {"server_error", "rate_limit_exceeded", "server_is_overloaded", "overloaded_error"}
)


@dataclass(slots=True)
class _Call:
    """A tool call being assembled from its deltas."""

    call_id: str
    kind: Literal["function", "custom"] = "function"
    name: str | None = None
    started: bool = False
    arguments: list[str] = field(default_factory=list)


class ChatProtocol(ProtocolBase):
    """A sans-I/O state machine for one Chat Completions stream (choice 0).

    Feed each SSE ``data`` payload to `receive`; it returns the parts that payload
    produced and raises the typed error an error payload stands for, with ``partial``.
    Stop feeding when `done` is true. Call `finish` at end of input.

    Args:
        collector: As for `ResponsesProtocol`. Each part is folded as it is made, so
            the text of the open part is read back from the collector when it ends.
    """

    def __init__(self, collector: Collector | None = None) -> None:
        super().__init__(collector)
        self._open: Literal["text", "refusal", "reasoning"] | None = None
        self._calls: list[_Call] = []
        self._by_index: dict[int, _Call] = {}
        self._finish_reason: str | None = None
        self._called_tools = False
        self._usage = Usage()

    def receive(self, payload: str | bytes) -> list[StreamPart]:
        """Take one payload and return the parts it produced.

        Raises:
            ProtocolError: the payload is not a valid chunk.
            IncompleteStream: ``[DONE]`` before any finish reason.
            APIStatusError: an error payload carrying an HTTP status as its code.
            ResponseFailed: any other error payload.
        """
        if self.done:
            return []
        try:
            if payload in ("[DONE]", b"[DONE]"):
                return self._last("[DONE]")
            parsed = wire.parse_chunk(payload)
            if isinstance(parsed, wire.ChatError):
                self._fail(_error(parsed.detail), self._usage)
            assert isinstance(parsed, wire.ChatChunk)
            return self._on_chunk(parsed)
        except ProtocolError as exc:
            self._broke(exc)

    def finish(self) -> list[StreamPart]:
        """End of input: the `Finish` part if a finish reason arrived, else `IncompleteStream`."""
        if self.done:
            return []
        try:
            return self._last("the end of the stream")
        except ProtocolError as exc:
            self._broke(exc)

    # ----------------------------------------------------------------- chunks

    def _out(self, *parts: StreamPart) -> list[StreamPart]:
        """``parts``, folded as they are made (the next part may read them back)."""
        return self._fold(list(parts))

    def _on_chunk(self, chunk: wire.ChatChunk) -> list[StreamPart]:
        self.state = State.STREAMING
        self.response_id = self.response_id or chunk.id or None
        self.model = self.model or chunk.model or None
        usage = chunk.any_usage
        if usage is not None:
            self._usage = usage_from_chat(usage)
        if chunk.error is not None:
            self._fail(_error(chunk.error), self._usage)
        parts: list[StreamPart] = []
        for choice in chunk.choices:
            if choice.index != 0:
                continue  # llmkit asks for one choice; others are not this response
            parts += self._on_delta(choice.delta)
            if choice.finish_reason is not None and self._finish_reason is None:
                if choice.finish_reason == "error":
                    failed = ResponseFailed("the server ended the response with an error")
                    self._fail(failed, self._usage)
                self._finish_reason = choice.finish_reason
                parts += self._close_all()
        return parts

    def _on_delta(self, delta: wire.ChatDelta) -> list[StreamPart]:
        parts: list[StreamPart] = []
        reasoning = delta.reasoning_content or delta.reasoning
        if reasoning:
            parts += self._switch("reasoning")
            parts += self._out(ReasoningDelta(None, reasoning, "text", 0))
        texts: tuple[tuple[Literal["text", "refusal"], str | None], ...] = (
            ("text", delta.content),
            ("refusal", delta.refusal),
        )
        for kind, text in texts:
            if text:
                parts += self._switch(kind)
                parts += self._out(TextDelta(None, text))
        for tool_delta in delta.tool_calls or ():
            parts += self._on_tool_delta(tool_delta)
        return parts

    def _switch(self, kind: Literal["text", "refusal", "reasoning"]) -> list[StreamPart]:
        """Make ``kind`` the open part, closing another one first."""
        if self._open == kind:
            return []
        parts = self._close_open()
        self._open = kind
        if kind == "reasoning":
            return parts + self._out(ReasoningStart(None))
        return parts + self._out(TextStart(None, refusal=kind == "refusal"))

    def _close_open(self) -> list[StreamPart]:
        """End the open part with the text that arrived (folded, so in the collector)."""
        kind, self._open = self._open, None
        if kind is None:
            return []
        if kind == "reasoning":
            reasoning = self.collector.open_reasoning(None)
            return self._out(ReasoningEnd(None, content=reasoning.content if reasoning else ()))
        return self._out(TextEnd(None, self.collector.open_text(None) or ""))

    # ----------------------------------------------------------------- tool calls

    def _on_tool_delta(self, delta: wire.ChatToolCallDelta) -> list[StreamPart]:
        call = self._call_for(delta)
        name, piece = None, None
        if delta.custom is not None:
            call.kind = "custom"
            name, piece = delta.custom.name, delta.custom.input
        elif delta.function is not None:
            name, piece = delta.function.name, delta.function.arguments
        parts: list[StreamPart] = []
        if name and call.name is None:
            call.name = name
        if piece:
            call.arguments.append(piece)
            if call.started:
                parts.append(ToolInputDelta(call.call_id, piece))
        if not call.started and call.name is not None:
            call.started = True
            parts.append(ToolInputStart(call.call_id, call.call_id, call.name, call.kind))
            if call.arguments:
                parts.append(ToolInputDelta(call.call_id, "".join(call.arguments)))
        return self._fold(parts)

    def _call_for(self, delta: wire.ChatToolCallDelta) -> _Call:
        """The call this delta continues, or a new one.

        ``index`` decides; a new ``id`` at a known index is a new call (servers that put
        every call at index 0). Without ``index``, a known ``id`` decides, a new ``id``
        starts a call, and no ``id`` continues the latest call.
        """
        known = self._by_index.get(delta.index) if delta.index is not None else None
        if known is None and delta.index is None:
            if delta.id is not None:
                known = next((c for c in self._calls if c.call_id == delta.id), None)
            elif self._calls:
                known = self._calls[-1]
        if known is not None and (delta.id is None or delta.id == known.call_id):
            return known
        call = _Call(delta.id or f"call_{len(self._calls)}")
        self._calls.append(call)
        if delta.index is not None:
            self._by_index[delta.index] = call
        return call

    def _complete_calls(self) -> list[StreamPart]:
        parts: list[StreamPart] = []
        for call in self._calls:
            if call.name is None:
                raise ProtocolError(f"tool call {call.call_id!r} ended without a name")
            self._called_tools = True
            parts.append(ToolInputEnd(call.call_id))
            parts.append(ToolCall(call.call_id, call.name, "".join(call.arguments), kind=call.kind))
        self._calls.clear()
        self._by_index.clear()
        return self._fold(parts)

    # ----------------------------------------------------------------- the end

    def _close_all(self) -> list[StreamPart]:
        return self._close_open() + self._complete_calls()

    def _fail(self, error: APIError, usage: Usage) -> NoReturn:
        self._close_open()  # folded: the partial has the part, the stream does not
        super()._fail(error, usage)

    def _last(self, where: str) -> list[StreamPart]:
        if self._finish_reason is None:
            raise IncompleteStream(f"the stream reached {where} before a finish_reason")
        return self._end(Finish(self._finish(), self._usage, self.metadata()))

    def _finish(self) -> FinishReason:
        reason = self._finish_reason or ""
        finish = _FINISH_REASONS.get(reason, FinishReason.OTHER)
        if finish is FinishReason.STOP and self._called_tools:
            return FinishReason.TOOL_CALLS  # servers that say "stop" after tool calls
        return finish


def _error(detail: wire.ChatErrorDetail) -> APIError:
    """The typed error for an error payload, as on the Responses path.

    A numeric ``code`` that is an HTTP status maps to its `APIStatusError`; anything
    else is a `ResponseFailed` (the model may have run and been billed).
    """
    code = detail.code
    message = detail.message or f"the stream reported an error (code: {code})"
    common: dict[str, Any] = {
        "param": detail.param,
        "error_type": detail.type,
        "body": detail.model_dump(),
    }
    if isinstance(code, int) and 400 <= code <= 599:
        return status_error(code, message, code=str(code), **common)
    text_code = None if code is None else str(code)
    retryable = text_code in _RETRYABLE_CODES or detail.type == "server_error"
    return ResponseFailed(message, code=text_code, retryable=retryable, **common)


def usage_from_chat(usage: wire.ChatUsage) -> Usage:
    """Map Chat Completions usage to `Usage`; absent counts are 0."""
    input_tokens = usage.prompt_tokens or 0
    output_tokens = usage.completion_tokens or 0
    prompt = usage.prompt_tokens_details or wire.PromptTokensDetails()
    completion = usage.completion_tokens_details or wire.CompletionTokensDetails()
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=usage.total_tokens
        if usage.total_tokens is not None
        else input_tokens + output_tokens,
        reasoning_tokens=completion.reasoning_tokens or 0,
        cache_read_tokens=prompt.cached_tokens or usage.prompt_cache_hit_tokens or 0,
        cache_write_tokens=prompt.cache_write_tokens or 0,
    )
