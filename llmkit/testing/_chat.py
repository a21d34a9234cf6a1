"""Chat Completions (`POST /v1/chat/completions`) answers of the scripted models (pure, no I/O).

The model's plan is rendered as `chat.completion.chunk` payloads (data-only SSE, ending
with ``[DONE]``) and as one `chat.completion` object for the non-streaming answer; a
recorded stream is read back (`replay_outcome`). Checking and converting the request is
`_chat_request`.
"""

from __future__ import annotations

import json
import secrets
import string
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from llmkit.testing import _models as m
from llmkit.testing._events import ApiError, dumps
from llmkit.testing._faults import ErrorFault, ErrorShape
from llmkit.testing._sse import SseBlock
from llmkit.testing._stream import Framing

Item = dict[str, Any]
Chunk = dict[str, Any]

FINGERPRINT = "fp_llmkit"
# Pump kinds of the chunks (a kind ending in ".delta" waits `token_delay` first).
CHUNK = "chat.chunk"
DELTA = "chat.delta"
FINISH = "chat.finish"
USAGE = "chat.usage"
ERROR = "chat.error"
DONE = "chat.done"
KEEPALIVE = "chat.keepalive"
UNKNOWN = "chat.unknown"
TERMINAL = frozenset({FINISH, USAGE, ERROR, DONE})

_ROLE_DELTA: Item = {"role": "assistant", "content": "", "refusal": None}
_ID_ALPHABET = string.ascii_letters + string.digits


# -- rendering -----------------------------------------------------------------------------------
def new_chat_id() -> str:
    """An id shaped like the real service's (`chatcmpl-` + 29 letters and digits)."""
    return "chatcmpl-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(29))


@dataclass(frozen=True, slots=True)
class ChatMeta:
    """Everything about a completion that is not its output."""

    id: str
    created: int
    model: str
    service_tier: str = "default"
    include_usage: bool = False

    @classmethod
    def for_request(cls, body: Item) -> ChatMeta:
        options = body.get("stream_options")
        include = isinstance(options, dict) and options.get("include_usage") is True
        tier = body.get("service_tier") or "auto"
        return cls(
            id=new_chat_id(),
            created=int(time.time()),
            model=str(body.get("model")),
            service_tier="default" if tier == "auto" else str(tier),
            include_usage=include and body.get("stream") is True,
        )

    def base(self, kind: str = "chat.completion.chunk") -> Chunk:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "service_tier": self.service_tier,
            "system_fingerprint": FINGERPRINT,
        }

    def chunk(self, delta: Item, finish_reason: str | None = None) -> Chunk:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        chunk = {**self.base(), "choices": [choice]}
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def unknown(self) -> Chunk:
        """A chunk with no choices and a field no client knows (as compatible servers send)."""
        chunk: Chunk = {**self.base(), "choices": []}
        if self.include_usage:
            chunk["usage"] = None
        chunk["llmkit_future_field"] = {"note": "a chunk field this client does not know"}
        return chunk


def frame(payload: Any, kind: str | None) -> SseBlock:
    """One data-only SSE event (`data: <json>` and a blank line), as the real service sends."""
    data = payload if isinstance(payload, str) else dumps(payload)
    return SseBlock(f"data: {data}\n\n".encode(), data, kind)


DONE_BLOCK = frame("[DONE]", DONE)
KEEPALIVE_BLOCK = SseBlock(b": keepalive\n\n", None, KEEPALIVE)


def framing(meta: ChatMeta) -> Framing:
    """Pump settings: SSE comment keepalives, `choices: []` unknown chunks."""
    return Framing(
        terminal=TERMINAL,
        unknown=lambda: frame(meta.unknown(), UNKNOWN),
        keepalive=lambda: KEEPALIVE_BLOCK,
    )


def usage_object(prompt_tokens: int, completion_tokens: int, reasoning_tokens: int) -> Item:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


@dataclass(frozen=True, slots=True)
class ChatRendered:
    """What to send for one completion.

    `payloads` are the framed chunks (ending with ``[DONE]``, or with the error chunk of
    a failure); `completion` is the non-streaming answer (None for a failure, whose
    non-streaming answer is `error`); `status` is ``completed``, ``incomplete`` or
    ``failed``.
    """

    payloads: list[SseBlock]
    completion: Item | None
    status: str
    error: ApiError | None = None


def _call_chunks(meta: ChatMeta, index: int, piece: m.Piece) -> list[SseBlock]:
    spec = piece.spec
    assert isinstance(spec, m.FunctionCallOut)
    function = {"name": spec.name, "arguments": ""}
    head = {"index": index, "id": spec.call_id, "type": "function", "function": function}
    blocks = [frame(meta.chunk({"tool_calls": [head]}), CHUNK)]
    for piece_text in piece.deltas:
        delta = {"tool_calls": [{"index": index, "function": {"arguments": piece_text}}]}
        blocks.append(frame(meta.chunk(delta), DELTA))
    return blocks


def render_chat(
    meta: ChatMeta, specs: Sequence[m.OutputSpec], prompt_tokens: int, max_tokens: int | None
) -> ChatRendered:
    """role chunk → reasoning/content/tool-call deltas → finish chunk → usage chunk → [DONE]."""
    pieces, complete = m.spend(specs, max_tokens)
    blocks = [frame(meta.chunk(dict(_ROLE_DELTA)), CHUNK)]
    calls = 0
    for piece in pieces:
        if isinstance(piece.spec, m.FunctionCallOut):
            blocks += _call_chunks(meta, calls, piece)
            calls += 1
            continue
        key = "reasoning_content" if isinstance(piece.spec, m.ReasoningOut) else "content"
        if isinstance(piece.spec, m.MessageOut) and piece.spec.refusal:
            key = "refusal"
        blocks += [frame(meta.chunk({key: token}), DELTA) for token in piece.deltas]
    finish = "length" if not complete else "tool_calls" if calls else "stop"
    blocks.append(frame(meta.chunk({}, finish), FINISH))
    reasoning = sum(len(p.deltas) for p in pieces if isinstance(p.spec, m.ReasoningOut))
    used = sum(len(p.deltas) for p in pieces)
    usage = usage_object(prompt_tokens, used, reasoning)
    if meta.include_usage:
        blocks.append(frame({**meta.base(), "choices": [], "usage": usage}, USAGE))
    completion = accumulate(_chunks(blocks))
    completion["usage"] = usage
    return ChatRendered(
        [*blocks, DONE_BLOCK], completion, "completed" if complete else "incomplete"
    )


def render_chat_failure(meta: ChatMeta, code: str, message: str) -> ChatRendered:
    """The model started and failed: the role chunk, then an error chunk (no [DONE])."""
    error = ApiError(500, message, code=code, type="server_error")
    blocks = [frame(meta.chunk(dict(_ROLE_DELTA)), CHUNK), frame(error.body(), ERROR)]
    return ChatRendered(blocks, None, "failed", error)


def fault_block(fault: ErrorFault) -> SseBlock:
    """An armed `error_next` as a chat payload: vLLM's flat shape for ``flat``, OpenAI's
    nested one for every other shape."""
    error = ApiError(fault.status or 500, fault.message, fault.code, fault.param, fault.type)
    return error_block(error, "flat" if fault.shape == "flat" else "nested")


def error_block(error: ApiError, shape: ErrorShape) -> SseBlock:
    """An error sent instead of a completion: OpenAI's nested shape or vLLM's flat one."""
    if shape != "flat":
        return frame(error.body(), ERROR)
    flat = {
        "object": "error",
        "message": error.message,
        "type": error.type,
        "param": error.param,
        "code": error.status,
    }
    return frame(flat, ERROR)


# -- reading chunks back (non-streaming answers, replays) ----------------------------------------
def _chunks(blocks: Iterable[SseBlock]) -> list[Chunk]:
    chunks: list[Chunk] = []
    for block in blocks:
        if block.data is None or block.data == "[DONE]":
            continue
        try:
            chunk = json.loads(block.data)
        except ValueError:
            continue
        if isinstance(chunk, dict):
            chunks.append(chunk)
    return chunks


def _merge_call(calls: dict[int, Item], delta: Item) -> None:
    index = delta.get("index", 0)
    call = calls.setdefault(
        index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
    )
    if delta.get("id"):
        call["id"] = delta["id"]
    function = delta.get("function") or {}
    call["function"]["name"] += function.get("name") or ""
    call["function"]["arguments"] += function.get("arguments") or ""


def accumulate(chunks: Iterable[Chunk]) -> Item:
    """The `chat.completion` object a stream of chunks adds up to (choice 0 only)."""
    first: Chunk | None = None
    text: list[str] = []
    refusal: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, Item] = {}
    finish: Any = None
    usage: Any = None
    for chunk in chunks:
        if chunk.get("object") != "chat.completion.chunk":
            continue
        first = first or chunk
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text.append(delta.get("content") or "")
            refusal.append(delta.get("refusal") or "")
            reasoning.append(delta.get("reasoning_content") or "")
            for call in delta.get("tool_calls") or []:
                _merge_call(calls, call)
            finish = choice.get("finish_reason") or finish
    message: Item = {
        "role": "assistant",
        "content": "".join(text) or None,
        "refusal": "".join(refusal) or None,
    }
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    if any(reasoning):
        message["reasoning_content"] = "".join(reasoning)
    head = first or {}
    return {
        "id": head.get("id"),
        "object": "chat.completion",
        "created": head.get("created"),
        "model": head.get("model"),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
        "service_tier": head.get("service_tier"),
        "system_fingerprint": head.get("system_fingerprint"),
    }


def replay_outcome(blocks: Sequence[SseBlock]) -> tuple[str, Item | None]:
    """The status and `chat.completion` object of a replayed recorded chat stream."""
    chunks = _chunks(blocks)
    if not any(c.get("object") == "chat.completion.chunk" for c in chunks):
        return "error", None
    completion = accumulate(chunks)
    if any("error" in c or c.get("object") == "error" for c in chunks):
        return "error", completion
    if not any(b.data == "[DONE]" for b in blocks):
        return "error", completion
    finish = completion["choices"][0]["finish_reason"]
    return ("incomplete" if finish == "length" else "completed"), completion
