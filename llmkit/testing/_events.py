"""Building the Responses event sequence for one response (pure, no I/O).

Field sets, key order and orderings copy the recorded real streams in
`tests/data/recorded/`: a client that parses these events parses the real service's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from llmkit.testing._models import (
    FunctionCallOut,
    Item,
    OutputSpec,
    ReasoningOut,
    encrypt_reasoning,
    spend,
    split_chunks,
)

Event = dict[str, Any]
TERMINAL_TYPES = frozenset({"response.completed", "response.incomplete", "response.failed"})


def new_id(prefix: str) -> str:
    """An id shaped like the real service's (`resp_` + 50 hex digits)."""
    return f"{prefix}_{secrets.token_hex(25)}"


def dumps(value: Any) -> str:
    """Compact JSON, as the real service sends it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class ApiError:
    """An API error, renderable as an HTTP body or as either `error` event shape."""

    status: int
    message: str
    code: str | None = None
    param: str | None = None
    type: str = "invalid_request_error"

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def nested(self, sequence_number: int | None = None) -> Event:
        """The WebSocket `error` envelope (`ResponseWsError`), also seen on real SSE."""
        event: Event = {
            "type": "error",
            "status": self.status,
            "error": {
                "type": self.type,
                "code": self.code,
                "message": self.message,
                "param": self.param,
            },
        }
        if sequence_number is not None:
            event["sequence_number"] = sequence_number
        return event

    def flat(self, sequence_number: int = 0) -> Event:
        """The documented flat SSE `error` event (`ResponseErrorEvent`)."""
        return {
            "type": "error",
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "sequence_number": sequence_number,
        }


# -- the Response object ----------------------------------------------------------------------
def _echo_tools(tools: Any) -> list[Any]:
    echoed: list[Any] = []
    for tool in tools or []:
        if isinstance(tool, dict) and tool.get("type") == "function":
            echoed.append(
                {
                    "type": "function",
                    "description": tool.get("description"),
                    "name": tool.get("name"),
                    "parameters": tool.get("parameters"),
                    "strict": tool.get("strict", True),
                }
            )
        else:
            echoed.append(tool)
    return echoed


def _echo_reasoning(request: Item) -> dict[str, Any]:
    given = request.get("reasoning")
    given = given if isinstance(given, dict) else {}
    effort = given.get("effort")
    if effort is None and "reason" in str(request.get("model", "")):
        effort = "medium"
    return {"context": given.get("context"), "effort": effort, "summary": given.get("summary")}


@dataclass(frozen=True, slots=True)
class ResponseMeta:
    """Everything about a response that is not its output."""

    id: str
    created_at: int
    request: Item


def response_object(
    meta: ResponseMeta,
    status: str,
    *,
    output: Sequence[Item] = (),
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    incomplete_reason: str | None = None,
    completed_at: int | None = None,
) -> dict[str, Any]:
    """The Response object with the request settings echoed like the real service."""
    req = meta.request
    tier = req.get("service_tier") or "auto"
    if status not in ("in_progress", "queued") and tier == "auto":
        tier = "default"
    return {
        "id": meta.id,
        "object": "response",
        "created_at": meta.created_at,
        "status": status,
        "background": bool(req.get("background", False)),
        "completed_at": completed_at,
        "error": error,
        "frequency_penalty": req.get("frequency_penalty", 0.0),
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "max_tool_calls": req.get("max_tool_calls"),
        "model": req.get("model"),
        "moderation": None,
        "output": list(output),
        "parallel_tool_calls": req.get("parallel_tool_calls", True),
        "presence_penalty": req.get("presence_penalty", 0.0),
        "previous_response_id": req.get("previous_response_id"),
        "prompt_cache_key": req.get("prompt_cache_key"),
        "prompt_cache_retention": req.get("prompt_cache_retention") or "in_memory",
        "reasoning": _echo_reasoning(req),
        "safety_identifier": req.get("safety_identifier"),
        "service_tier": tier,
        "store": req.get("store", True) is not False,
        "temperature": req.get("temperature", 1.0),
        "text": req.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": req.get("tool_choice", "auto"),
        "tools": _echo_tools(req.get("tools")),
        "top_logprobs": req.get("top_logprobs", 0),
        "top_p": req.get("top_p", 1.0),
        "truncation": req.get("truncation") or "disabled",
        "usage": usage,
        "user": req.get("user"),
        "metadata": req.get("metadata") or {},
    }


def usage_object(
    input_tokens: int, cached_tokens: int, output_tokens: int, reasoning_tokens: int
) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {
            "cached_tokens": cached_tokens,
            "cache_write_tokens": input_tokens - cached_tokens,
        },
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": input_tokens + output_tokens,
    }


# -- event sequences ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Deltas:
    """Consecutive `*.delta` events of one part, one per token, built when iterated."""

    kind: str
    tokens: Sequence[str]
    fields: dict[str, Any]
    start: int  # the first event's index (its sequence number and obfuscation salt)
    obfuscate: bool

    def __iter__(self) -> Iterator[Event]:
        kind, fields, obfuscate = self.kind, self.fields, self.obfuscate
        for index, token in enumerate(self.tokens, self.start):
            event = {"type": kind, "delta": token, **fields}
            if obfuscate:
                event["obfuscation"] = _obfuscation(token, index)
            event["sequence_number"] = index
            yield event


class Events(Sequence[Event]):
    """A response's events, in order; runs of deltas are built only while iterating.

    A long answer's million delta events then never sit in memory together, and the
    first one is sent before the last one is built.
    """

    __slots__ = ("_parts", "_size")

    def __init__(self) -> None:
        self._parts: list[Event | _Deltas] = []
        self._size = 0

    def append(self, event: Event) -> None:
        self._parts.append(event)
        self._size += 1

    def append_deltas(self, deltas: _Deltas) -> None:
        self._parts.append(deltas)
        self._size += len(deltas.tokens)

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Event]:
        for part in self._parts:
            if isinstance(part, _Deltas):
                yield from part
            else:
                yield part

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        return list(self)[index]


@dataclass(slots=True)
class _Builder:
    meta: ResponseMeta
    obfuscate: bool
    events: Events = field(default_factory=Events)
    output: list[Item] = field(default_factory=list)

    def add(self, kind: str, **fields: Any) -> None:
        self.events.append({"type": kind, **fields, "sequence_number": len(self.events)})

    def deltas(self, kind: str, tokens: Sequence[str], **fields: Any) -> None:
        start = len(self.events)
        self.events.append_deltas(_Deltas(kind, tokens, fields, start, self.obfuscate))

    def lifecycle(self, kind: str, response: dict[str, Any]) -> None:
        self.add(kind, response=response)


def _obfuscation(delta: str, salt: int) -> str:
    digest = hashlib.sha256(f"{salt}:{delta}".encode()).digest()
    # The alphanumeric characters of the base64 text (deleting "+/=" keeps exactly those).
    letters = base64.b64encode(digest).translate(None, b"+/=")
    return letters[: max(1, 16 - len(delta))].decode()


def _reasoning(b: _Builder, tokens: list[str], encrypted: bool) -> Item:
    index, item_id = len(b.output), new_id("rs")
    text = "".join(tokens)
    extra = {"encrypted_content": encrypt_reasoning(item_id, text)} if encrypted else {}
    b.add(
        "response.output_item.added",
        item={"id": item_id, "type": "reasoning", "content": [], **extra, "summary": []},
        output_index=index,
    )
    where = {"item_id": item_id, "output_index": index, "summary_index": 0}
    b.add(
        "response.reasoning_summary_part.added", **where, part={"type": "summary_text", "text": ""}
    )
    b.deltas("response.reasoning_summary_text.delta", tokens, **where)
    b.add("response.reasoning_summary_text.done", **where, text=text)
    b.add(
        "response.reasoning_summary_part.done", **where, part={"type": "summary_text", "text": text}
    )
    summary = [{"type": "summary_text", "text": text}]
    item = {"id": item_id, "type": "reasoning", "content": [], **extra, "summary": summary}
    b.add("response.output_item.done", item=item, output_index=index)
    return item


def _message(b: _Builder, tokens: list[str], complete: bool, refusal: bool = False) -> Item:
    index, item_id = len(b.output), new_id("msg")
    text = "".join(tokens)
    b.add(
        "response.output_item.added",
        item={
            "id": item_id,
            "type": "message",
            "status": "in_progress",
            "content": [],
            "role": "assistant",
        },
        output_index=index,
    )
    where = {"content_index": 0, "item_id": item_id, "output_index": index}
    if refusal:  # a refusal part: `response.refusal.delta` / `.done`, no logprobs
        empty: Item = {"type": "refusal", "refusal": ""}
        b.add("response.content_part.added", **where, part=empty)
        b.deltas("response.refusal.delta", tokens, **where)
        b.add("response.refusal.done", **where, refusal=text)
        part = {**empty, "refusal": text}
    else:
        empty = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        b.add("response.content_part.added", **where, part=empty)
        b.deltas("response.output_text.delta", tokens, **where, logprobs=[])
        b.add("response.output_text.done", **where, logprobs=[], text=text)
        part = {**empty, "text": text}
    b.add("response.content_part.done", **where, part=part)
    status = "completed" if complete else "incomplete"
    item = {
        "id": item_id,
        "type": "message",
        "status": status,
        "content": [part],
        "role": "assistant",
    }
    b.add("response.output_item.done", item=item, output_index=index)
    return item


def _function_call(b: _Builder, spec: FunctionCallOut) -> Item:
    index, item_id = len(b.output), new_id("fc")
    base = {"id": item_id, "type": "function_call"}
    call = {"call_id": spec.call_id, "name": spec.name}
    b.add(
        "response.output_item.added",
        item={**base, "status": "in_progress", "arguments": "", **call},
        output_index=index,
    )
    b.deltas(
        "response.function_call_arguments.delta",
        split_chunks(spec.arguments),
        item_id=item_id,
        output_index=index,
    )
    b.add(
        "response.function_call_arguments.done",
        arguments=spec.arguments,
        item_id=item_id,
        output_index=index,
    )
    item = {**base, "status": "completed", "arguments": spec.arguments, **call}
    b.add("response.output_item.done", item=item, output_index=index)
    return item


def _compaction(b: _Builder, item: Item) -> Item:
    """A compaction item (`_compaction`): added, ``response.compaction.compacting``, done.
    The ``added`` item has no content yet (PROTOCOL.md §3.3 names only the events)."""
    index, item_id = len(b.output), item["id"]
    b.add(
        "response.output_item.added",
        item={"id": item_id, "type": "compaction"},
        output_index=index,
    )
    b.add("response.compaction.compacting", item_id=item_id, output_index=index)
    b.add("response.output_item.done", item=item, output_index=index)
    return item


@dataclass(frozen=True, slots=True)
class Rendered:
    """A response's full event list, its final output items and its terminal status."""

    events: Events
    output: list[Item]
    status: str
    response: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Accounting:
    input_tokens: int
    cached_tokens: int
    include_encrypted: bool
    obfuscate: bool
    max_output_tokens: int | None


def render_generation(
    meta: ResponseMeta,
    specs: Sequence[OutputSpec],
    acct: Accounting,
    compaction: Item | None = None,
) -> Rendered:
    """created → in_progress → [the compaction item] → one item per spec → completed (or
    incomplete at the budget)."""
    b = _Builder(meta, acct.obfuscate)
    b.lifecycle("response.created", response_object(meta, "in_progress"))
    b.lifecycle("response.in_progress", response_object(meta, "in_progress"))
    if compaction is not None:
        b.output.append(_compaction(b, compaction))
    pieces, complete = spend(specs, acct.max_output_tokens)
    for piece in pieces:
        spec = piece.spec
        if isinstance(spec, FunctionCallOut):
            b.output.append(_function_call(b, spec))
        elif isinstance(spec, ReasoningOut):
            b.output.append(_reasoning(b, list(piece.deltas), acct.include_encrypted))
        else:
            message = _message(b, list(piece.deltas), piece.complete, spec.refusal)
            b.output.append(message)
    used = sum(len(p.deltas) for p in pieces)
    reasoning = sum(len(p.deltas) for p in pieces if isinstance(p.spec, ReasoningOut))
    usage = usage_object(acct.input_tokens, acct.cached_tokens, used, reasoning)
    status = "completed" if complete else "incomplete"
    final = response_object(
        meta,
        status,
        output=b.output,
        usage=usage,
        completed_at=meta.created_at + 1,
        incomplete_reason=None if complete else "max_output_tokens",
    )
    b.lifecycle(f"response.{status}", final)
    return Rendered(b.events, b.output, status, final)


def render_warmup(meta: ResponseMeta, input_tokens: int, cached_tokens: int) -> Rendered:
    """`generate: false`: created → completed, empty output, 0 output tokens."""
    b = _Builder(meta, obfuscate=False)
    b.lifecycle("response.created", response_object(meta, "in_progress"))
    usage = usage_object(input_tokens, cached_tokens, 0, 0)
    final = response_object(meta, "completed", usage=usage, completed_at=meta.created_at)
    b.lifecycle("response.completed", final)
    return Rendered(b.events, [], "completed", final)


def render_failure(meta: ResponseMeta, code: str, message: str) -> Rendered:
    """created → in_progress → failed with `response.error` (the model ran and failed)."""
    b = _Builder(meta, obfuscate=False)
    b.lifecycle("response.created", response_object(meta, "in_progress"))
    b.lifecycle("response.in_progress", response_object(meta, "in_progress"))
    final = response_object(meta, "failed", error={"code": code, "message": message})
    b.lifecycle("response.failed", final)
    return Rendered(b.events, [], "failed", final)
