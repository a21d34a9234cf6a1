"""Chat Completions (`POST /v1/chat/completions`) on the same scripted models (pure, no I/O).

A chat request is validated like the real endpoint does, its messages are converted to
the Responses-style conversation items `_models` reads, and the model's plan is rendered
as `chat.completion.chunk` payloads (data-only SSE, ending with ``[DONE]``) and as one
`chat.completion` object for the non-streaming answer.
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
from llmkit.testing._sse import SseBlock
from llmkit.testing._state import ErrorShape
from llmkit.testing._stream import Framing

Item = dict[str, Any]
Chunk = dict[str, Any]

FINGERPRINT = "fp_llmkit"
ROLES = ("system", "developer", "user", "assistant", "tool")
TOOL_TYPES = ("function", "custom")
# Responses API parameters the chat endpoint does not know.
RESPONSES_ONLY = (
    "input",
    "instructions",
    "previous_response_id",
    "include",
    "text",
    "reasoning",
    "max_output_tokens",
    "truncation",
    "conversation",
    "background",
    "max_tool_calls",
    "generate",
)
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
_NOT_A_RESPONSE = (
    "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
    "message with 'tool_calls'."
)
_UNANSWERED = (
    "An assistant message with 'tool_calls' must be followed by tool messages responding "
    "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
)


# -- validation -------------------------------------------------------------------------------
def _bad(message: str, param: str | None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, code=code, param=param)


def _missing(param: str) -> ApiError:
    return _bad(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _wrong_type(param: str, expected: str) -> ApiError:
    return _bad(f"Invalid type for '{param}': expected {expected}.", param, "invalid_type")


def _empty(param: str) -> ApiError:
    msg = f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got an empty array instead."  # noqa: E501
    return _bad(msg, param, "empty_array")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_options(body: Item) -> ApiError | None:
    for name in RESPONSES_ONLY:
        if name in body:
            return ApiError(400, f"Unrecognized request argument supplied: {name}")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return ApiError(400, "you must provide a model parameter")
    options = body.get("stream_options")
    if options is not None:
        if body.get("stream") is not True:
            msg = "The 'stream_options' parameter is only allowed when 'stream' is enabled."
            return _bad(msg, "stream_options", None)
        if not isinstance(options, dict):
            return _wrong_type("stream_options", "an object")
    n = body.get("n")
    if n is not None and not _is_int(n):
        return _wrong_type("n", "an integer")
    if n is not None and n != 1:
        msg = f"Invalid 'n': this server generates one choice (n=1), but got {n} instead."
        return _bad(msg, "n", "unsupported_value")
    for name in ("max_completion_tokens", "max_tokens"):
        limit = body.get(name)
        if limit is not None and not _is_int(limit):
            return _wrong_type(name, "an integer")
        if limit is not None and limit < 1:
            msg = f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {limit} instead."  # noqa: E501
            return _bad(msg, name, "integer_below_min_value")
    return None


def _check_content(content: Any, where: str) -> ApiError | None:
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return _wrong_type(where, "one of a string or array of objects")
    for index, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            return _missing(f"{where}[{index}].type")
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            return _missing(f"{where}[{index}].text")
    return None


def _check_tool_call(call: Any, where: str) -> ApiError | None:
    if not isinstance(call, dict):
        return _wrong_type(where, "an object")
    if not isinstance(call.get("id"), str):
        return _missing(f"{where}.id")
    kind = call.get("type")
    if kind not in TOOL_TYPES:
        msg = f"Invalid value: '{kind}'. Supported values are: 'function' and 'custom'."
        return _bad(msg, f"{where}.type")
    spec = call.get(kind)
    if not isinstance(spec, dict):
        return _missing(f"{where}.{kind}")
    field = "arguments" if kind == "function" else "input"
    for key in ("name", field):
        if not isinstance(spec.get(key), str):
            return _missing(f"{where}.{kind}.{key}")
    return None


def _check_message(message: Any, where: str) -> ApiError | None:
    if not isinstance(message, dict):
        return _wrong_type(where, "an object")
    role = message.get("role")
    if role is None:
        return _missing(f"{where}.role")
    if role not in ROLES:
        supported = "'system', 'developer', 'user', 'assistant' and 'tool'"
        return _bad(f"Invalid value: '{role}'. Supported values are: {supported}.", f"{where}.role")
    calls = message.get("tool_calls") if role == "assistant" else None
    if calls is not None:
        if not isinstance(calls, list):
            return _wrong_type(f"{where}.tool_calls", "an array of objects")
        if not calls:
            return _empty(f"{where}.tool_calls")
        for index, call in enumerate(calls):
            error = _check_tool_call(call, f"{where}.tool_calls[{index}]")
            if error is not None:
                return error
    content = message.get("content")
    if content is None:
        return None if calls else _missing(f"{where}.content")
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        return _missing(f"{where}.tool_call_id")
    return _check_content(content, f"{where}.content")


def _check_pairing(messages: Sequence[Item]) -> ApiError | None:
    """Tool messages answer the calls of the assistant message right before them."""
    callable_ids: set[str] = set()
    unanswered: dict[str, None] = {}
    for index, message in enumerate(messages):
        if message["role"] == "tool":
            call_id = message["tool_call_id"]
            if not callable_ids:
                return _bad(_NOT_A_RESPONSE, f"messages.[{index}].role", None)
            if call_id not in callable_ids:
                msg = f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of previous message."  # noqa: E501
                return _bad(msg, f"messages.[{index}].tool_call_id", None)
            unanswered.pop(call_id, None)
            continue
        if unanswered:
            return _bad(_UNANSWERED + ", ".join(unanswered), f"messages.[{index}].role", None)
        calls = message.get("tool_calls") if message["role"] == "assistant" else None
        unanswered = {str(call["id"]): None for call in calls or []}
        callable_ids = set(unanswered)
    if unanswered:
        return _bad(_UNANSWERED + ", ".join(unanswered), "messages", None)
    return None


def _check_messages(messages: Any) -> ApiError | None:
    if messages is None:
        return _missing("messages")
    if not isinstance(messages, list):
        return _wrong_type("messages", "an array of objects")
    if not messages:
        return _empty("messages")
    for index, message in enumerate(messages):
        error = _check_message(message, f"messages[{index}]")
        if error is not None:
            return error
    return _check_pairing(messages)


def _check_tools(tools: Any) -> ApiError | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        return _wrong_type("tools", "an array of objects")
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            return _missing(f"{where}.type")
        kind = tool["type"]
        if kind not in TOOL_TYPES:
            msg = f"Invalid value: '{kind}'. Supported values are: 'function' and 'custom'."
            return _bad(msg, f"{where}.type")
        spec = tool.get(kind)
        if not isinstance(spec, dict):
            return _missing(f"{where}.{kind}")
        if not isinstance(spec.get("name"), str) or not spec["name"]:
            return _missing(f"{where}.{kind}.name")
    return None


def validate_chat(body: Any) -> ApiError | None:
    """The 400 the real endpoint gives for a malformed chat request, or None."""
    if not isinstance(body, dict):
        return _bad("Invalid body: expected a JSON object.", None, "invalid_type")
    return (
        _check_options(body)
        or _check_messages(body.get("messages"))
        or _check_tools(body.get("tools"))
    )


def message_count(body: Any) -> int:
    messages = body.get("messages") if isinstance(body, dict) else None
    return len(messages) if isinstance(messages, list) else 0


# -- conversion ---------------------------------------------------------------------------------
def _call_item(call: Item) -> Item:
    if call.get("type") == "custom":
        custom = call.get("custom") or {}
        return {
            "type": "custom_tool_call",
            "call_id": call.get("id"),
            "name": custom.get("name"),
            "input": custom.get("input"),
        }
    function = call.get("function") or {}
    return {
        "type": "function_call",
        "call_id": call.get("id"),
        "name": function.get("name"),
        "arguments": function.get("arguments"),
    }


def to_items(messages: Sequence[Item]) -> list[Item]:
    """Chat messages as the Responses-style conversation items the scripted models read.

    system/developer/user → a message item; assistant → a message item when it has text,
    then one `function_call` (or `custom_tool_call`) per tool call; tool → the matching
    `function_call_output` (or `custom_tool_call_output`) with the content's text.
    """
    items: list[Item] = []
    custom_ids: set[Any] = set()
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if role == "tool":
            call_id = message.get("tool_call_id")
            kind = "custom_tool_call_output" if call_id in custom_ids else "function_call_output"
            items.append({"type": kind, "call_id": call_id, "output": m.content_text(content)})
            continue
        if role != "assistant" or m.content_text(content):
            items.append({"type": "message", "role": role, "content": content})
        calls = message.get("tool_calls") if role == "assistant" else None
        for call in calls or []:
            item = _call_item(call)
            if item["type"] == "custom_tool_call":
                custom_ids.add(item["call_id"])
            items.append(item)
    return items


def _tool(tool: Item) -> Item:
    kind = tool.get("type")
    spec = tool.get(kind) if isinstance(kind, str) else None
    if not isinstance(spec, dict):
        return dict(tool)
    if kind == "function":
        converted = {
            "type": "function",
            "name": spec.get("name"),
            "description": spec.get("description"),
            "parameters": spec.get("parameters"),
        }
        if "strict" in spec:
            converted["strict"] = spec["strict"]
        return converted
    return {**spec, "type": kind}


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") in TOOL_TYPES:
        spec = choice.get(choice["type"])
        if isinstance(spec, dict) and "name" in spec:
            return {"type": choice["type"], "name": spec["name"]}
    return choice


def to_request(body: Item) -> Item:
    """The Responses-style request `_models.plan` reads (model, tools, choice, reasoning)."""
    request: Item = {
        "model": body.get("model"),
        "tools": [_tool(t) for t in body.get("tools") or [] if isinstance(t, dict)],
        "tool_choice": _tool_choice(body.get("tool_choice") or "auto"),
    }
    if body.get("reasoning_effort") is not None:
        request["reasoning"] = {"effort": body["reasoning_effort"]}
    return request


def budget(body: Item) -> int | None:
    """`max_completion_tokens`, else the legacy `max_tokens`, else no budget."""
    for name in ("max_completion_tokens", "max_tokens"):
        if _is_int(body.get(name)):
            return int(body[name])
    return None


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


def error_block(error: ApiError, shape: ErrorShape) -> SseBlock:
    """An error sent instead of a completion: OpenAI's nested shape or vLLM's flat one."""
    if shape == "nested":
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
            reasoning.append(delta.get("reasoning_content") or "")
            for call in delta.get("tool_calls") or []:
                _merge_call(calls, call)
            finish = choice.get("finish_reason") or finish
    message: Item = {"role": "assistant", "content": "".join(text) or None, "refusal": None}
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
