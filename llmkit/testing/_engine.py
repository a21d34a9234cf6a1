"""Transport-independent request handling: validation, chaining and what to send.

The HTTP and WebSocket handlers only do I/O; every decision about a `response.create`
(is it valid, which conversation does it continue, what does the model answer, what is
stored) is made here, the same way for both transports. Chat Completions requests take
the same route through `begin_chat` / `produce_chat` (conversion and chunks: `_chat`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmkit.testing import (
    _chat as chat,
    _chat_request as chat_request,
    _compaction as compaction,
    _models as m,
    _values as values,
)
from llmkit.testing._events import (
    Accounting,
    ApiError,
    Rendered,
    ResponseMeta,
    new_id,
    render_failure,
    render_generation,
    render_warmup,
)
from llmkit.testing._faults import ErrorFault, Faults, ResponseFaults
from llmkit.testing._sse import SseBlock, final_response, parse_sse
from llmkit.testing._state import (
    Endpoint,
    RequestRecord,
    ResponseStore,
    ServerStats,
    StoredResponse,
    Transport,
)
from llmkit.testing._stream import Framing

Item = dict[str, Any]
_ROLES = ("user", "assistant", "system", "developer")
_REQUIRED = {
    "function_call": ("call_id", "name", "arguments"),
    "function_call_output": ("call_id",),
    "compaction": ("encrypted_content",),
}


def _bad(message: str, param: str | None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, code=code, param=param)


def _missing(param: str) -> ApiError:
    return _bad(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _unsupported(param: str) -> ApiError:
    return _bad(f"Unsupported parameter: {param}", param, "unsupported_parameter")


def _check_item(item: Any, where: str) -> ApiError | None:
    if not isinstance(item, dict):
        return _bad(f"Invalid type for '{where}': expected an object.", where, "invalid_type")
    kind = m.item_type(item)
    if kind == "message":
        if item.get("role") not in _ROLES:
            return _bad(f"Invalid value: '{item.get('role')}'.", f"{where}.role")
        if "content" not in item:
            return _missing(f"{where}.content")
        return None
    if not isinstance(item.get("type"), str):
        return _missing(f"{where}.type")
    for key in _REQUIRED.get(kind, ()):
        if key not in item:
            return _missing(f"{where}.{key}")
    return None


def _check_tools(tools: Any) -> ApiError | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        return _bad("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            return _missing(f"tools[{index}].type")
        if tool["type"] == "function" and not tool.get("name"):
            return _missing(f"tools[{index}].name")
    return None


def _check_transport_fields(body: Item, transport: Transport) -> ApiError | None:
    if transport == "http":
        for param in ("generate", "stream_id"):
            if param in body:
                return _unsupported(param)
    else:  # `stream_id` is the connection's business (`_lanes`)
        if "generate" in body and not isinstance(body["generate"], bool):
            return _bad("Invalid type for 'generate': expected a boolean.", "generate")
    if body.get("background"):
        return _bad("Background mode is not supported by this server.", "background")
    return None


def validate(body: Any, transport: Transport) -> ApiError | None:
    """The 400s the real endpoint gives for a malformed create request."""
    if not isinstance(body, dict):
        return _bad("Invalid body: expected a JSON object.", None, "invalid_type")
    error = _check_transport_fields(body, transport)
    if error is not None:
        return error
    if not isinstance(body.get("model"), str) or not body["model"]:
        return _missing("model")
    value = body.get("input", [])
    if not isinstance(value, str | list):
        msg = "Invalid type for 'input': expected one of a string or array of input items."
        return _bad(msg, "input", "invalid_type")
    for index, item in enumerate(value if isinstance(value, list) else []):
        error = _check_item(item, f"input[{index}]")
        if error is not None:
            return error
    limit = body.get("max_output_tokens")
    if isinstance(limit, int) and limit < 16:
        msg = f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got {limit} instead."  # noqa: E501
        return _bad(msg, "max_output_tokens", "integer_below_min_value")
    error = compaction.check_settings(body.get("context_management"))
    if error is not None:
        return error
    problem = values.format_problem(values.requested_format(body))
    if problem is not None:
        return _bad(problem, "text.format.schema", "invalid_json_schema")
    return _check_tools(body.get("tools"))


def input_count(body: Any) -> int:
    value = body.get("input") if isinstance(body, dict) else None
    if isinstance(value, list):
        return len(value)
    return 1 if isinstance(value, str) else 0


def not_found(response_id: str) -> ApiError:
    return ApiError(
        400,
        f"Previous response with id '{response_id}' not found.",
        code="previous_response_not_found",
        param="previous_response_id",
    )


@dataclass(slots=True)
class Exchange:
    """One accepted `response.create`: the conversation it continues and its new items."""

    request: Item
    previous: StoredResponse | None
    new_items: list[Item]
    violations: int
    generate: bool
    record: int
    connection_id: int | None
    conversation: list[Item] = field(default_factory=list)
    held: bool = False
    """`previous` is a head the connection holds in memory (not hydrated from the store)."""


@dataclass(frozen=True, slots=True)
class Production:
    """What to send for a turn: rendered events, a recorded body, or an error event."""

    faults: ResponseFaults
    rendered: Rendered | None = None
    blocks: list[SseBlock] | None = None
    error: ErrorFault | None = None
    first_token_delay: float = 0.0


@dataclass(frozen=True, slots=True)
class ChatExchange:
    """One accepted chat request: its conversation items and the request the model reads."""

    body: Item
    request: Item
    items: list[Item]
    violations: int
    record: int


@dataclass(frozen=True, slots=True)
class ChatProduction:
    """What to send for a chat turn: rendered chunks, a recorded body, or an error."""

    faults: ResponseFaults
    framing: Framing | None = None
    rendered: chat.ChatRendered | None = None
    blocks: list[SseBlock] | None = None
    error: ErrorFault | None = None
    first_token_delay: float = 0.0


def _check_conversation(turn: Exchange, store: ResponseStore) -> ApiError | None:
    """Errors the real service gives for an inconsistent conversation."""
    # Calls a compaction item carries count too (the items before it may be pruned).
    carried = compaction.expand(turn.conversation).items
    calls = {i.get("call_id") for i in carried if m.item_type(i) == "function_call"}
    prefix_len = len(turn.conversation) - len(turn.new_items)
    stored = turn.request.get("store", True) is not False
    for index, item in enumerate(turn.conversation):
        kind = m.item_type(item)
        if kind == "function_call":
            calls.add(item.get("call_id"))
        elif kind == "function_call_output" and item.get("call_id") not in calls:
            msg = f"No tool call found for function call output with call_id {item.get('call_id')}."
            return _bad(msg, "input", None)
        elif kind == "reasoning" and index >= prefix_len:
            error = _check_reasoning(item, stored, store)
            if error is not None:
                return error
        elif kind == "compaction" and index >= prefix_len:
            error = compaction.verify(item)
            if error is not None:
                return error
    return None


def _check_reasoning(item: Item, stored: bool, store: ResponseStore) -> ApiError | None:
    item_id = item.get("id")
    if "encrypted_content" in item and item["encrypted_content"] is not None:
        if m.verify_reasoning(item["encrypted_content"]):
            return None
        msg = f"The encrypted content for item {item_id} could not be verified."
        return _bad(msg, None, "invalid_encrypted_content")
    if stored and isinstance(item_id, str) and store.knows_reasoning(item_id):
        return None
    msg = f"Item with id '{item_id}' not found."
    if not stored:
        msg += (
            " Items are not persisted when `store` is set to false. Try again with `store`"
            " set to true, or remove this item from your input."
        )
    return _bad(msg, "input", None)


def uncached_tokens(turn: Exchange, tokens: int) -> int:
    """The input tokens the model must process for `turn` (the cost model's input).

    A head the connection holds in memory (a lane's, §3.1) spares its whole conversation;
    a response hydrated from the store does not ("works but loses the latency benefit"),
    nor does anything over HTTP. The new items and the instructions are always processed.
    """
    if turn.previous is None or not turn.held:
        return tokens
    return max(0, tokens - compaction.rendered_tokens(turn.previous.conversation, None))


class Engine:
    """Validation, chaining, fault selection, rendering and committing of responses.

    `first_token_delay` maps the input tokens a response's model must process to its
    time to first token (the server's cost model, `ServerCore.first_token_delay`).
    """

    def __init__(
        self,
        store: ResponseStore,
        stats: ServerStats,
        faults: Faults,
        first_token_delay: Callable[[int], float] = lambda tokens: 0.0,
    ) -> None:
        self.store = store
        self.stats = stats
        self.faults = faults
        self.record_bodies = False  # keep each request's body in its record (tests)
        self.first_token_delay = first_token_delay

    def _timing(self, record: int, tokens: int, uncached: int) -> float:
        """The response's time to first token, recorded with what it was computed from."""
        delay = self.first_token_delay(uncached)
        self.stats.update(
            record, input_tokens=tokens, uncached_tokens=uncached, first_token_delay=delay
        )
        return delay

    def record(
        self,
        transport: Transport,
        conn: int | None,
        body: Any,
        size: int,
        endpoint: Endpoint = "responses",
    ) -> int:
        is_chat = endpoint == "chat"
        known = isinstance(body, dict) and not is_chat
        previous = body.get("previous_response_id") if known else None
        generate = body.get("generate", True) if known else True
        stream_id = body.get("stream_id") if known and transport == "websocket" else None
        return self.stats.add_request(
            RequestRecord(
                transport=transport,
                connection_id=conn,
                bytes_received=size,
                input_items=chat_request.message_count(body) if is_chat else input_count(body),
                previous_response_id=previous if isinstance(previous, str) else None,
                generate=generate is not False,
                endpoint=endpoint,
                stream_id=stream_id if isinstance(stream_id, str) else None,
                body=body if self.record_bodies and isinstance(body, dict) else None,
            )
        )

    def begin(
        self, body: Item, record: int, conn: int | None, head: StoredResponse | None
    ) -> Exchange | ApiError:
        """Resolve `previous_response_id` (connection head first, then the store)."""
        previous: StoredResponse | None = None
        held = False
        wanted = body.get("previous_response_id")
        if wanted is not None:
            if head is not None and head.id == wanted:
                previous, held = head, True
            else:
                previous = self.store.get(str(wanted))
            if previous is None:
                return not_found(str(wanted))
        new_items = m.normalize_input(body.get("input", []))
        prefix = list(previous.conversation) if previous is not None else []
        violations = m.count_violations(prefix, new_items)
        turn = Exchange(
            request={
                k: v
                for k, v in body.items()
                if k not in ("type", "generate", "stream", "stream_id")
            },
            previous=previous,
            new_items=new_items,
            violations=violations,
            generate=body.get("generate", True) is not False,
            record=record,
            connection_id=conn,
            conversation=prefix + new_items,
            held=held,
        )
        error = _check_conversation(turn, self.store)
        if error is not None:
            return error
        self.stats.update(record, violations=violations)
        self.stats.count(conn, violations=violations)
        return turn

    def produce(self, turn: Exchange) -> Production:
        """Take the armed faults and build what the client will receive."""
        faults = self.faults.take_response_faults(warmup=not turn.generate)
        if faults.error is not None:
            return Production(faults, error=faults.error)
        self.stats.count(turn.connection_id, generation=turn.generate, warmup=not turn.generate)
        instructions = turn.request.get("instructions")
        tokens = compaction.rendered_tokens(turn.conversation, instructions)
        delay = self._timing(turn.record, tokens, uncached_tokens(turn, tokens))
        if faults.replay is not None:
            return Production(faults, blocks=parse_sse(faults.replay), first_token_delay=delay)
        meta = ResponseMeta(new_id("resp"), int(time.time()), turn.request)
        self.stats.update(turn.record, response_id=meta.id)
        if faults.fail is not None:
            failure = render_failure(meta, *faults.fail)
            return Production(faults, rendered=failure, first_token_delay=delay)
        cached = 0
        if turn.previous is not None:
            cached = min(tokens, compaction.rendered_tokens(turn.previous.conversation, None))
        if not turn.generate:
            warmup = render_warmup(meta, tokens, cached)
            return Production(faults, rendered=warmup, first_token_delay=delay)
        include = turn.request.get("include") or []
        stream_options = turn.request.get("stream_options") or {}
        acct = Accounting(
            input_tokens=tokens,
            cached_tokens=cached,
            include_encrypted="reasoning.encrypted_content" in include,
            obfuscate=stream_options.get("include_obfuscation", True) is not False,
            max_output_tokens=turn.request.get("max_output_tokens"),
        )
        view, compacted = compaction.apply(turn.request, turn.conversation, tokens)
        if compacted is not None:
            self.stats.count(turn.connection_id, compaction=True)
            self.stats.update(turn.record, compacted=True)
        specs = m.plan(turn.request, view.items, turn.violations, view.compactions)
        specs = m.answer_faults(specs, self.faults.take_answer_faults)
        rendered = render_generation(meta, specs, acct, compacted)
        return Production(faults, rendered=rendered, first_token_delay=delay)

    def begin_chat(self, body: Item, record: int) -> ChatExchange:
        """A validated chat request: the whole history is in `messages` (no chaining)."""
        items = chat_request.to_items(body["messages"])
        violations = m.count_violations([], items)
        self.stats.update(record, violations=violations)
        self.stats.count(None, violations=violations)
        return ChatExchange(body, chat_request.to_request(body), items, violations, record)

    def produce_chat(self, turn: ChatExchange) -> ChatProduction:
        """Take the armed faults and build the chunks (or the error) the client receives."""
        faults = self.faults.take_response_faults(warmup=False)
        if faults.error is not None:
            return ChatProduction(faults, error=faults.error)
        self.stats.count(None, generation=True)
        meta = chat.ChatMeta.for_request(turn.body)
        framing = chat.framing(meta)
        tokens = m.input_tokens(turn.items, None)
        delay = self._timing(turn.record, tokens, tokens)  # no chaining: all of it, always
        if faults.replay is not None:
            blocks = parse_sse(faults.replay)
            return ChatProduction(faults, framing, blocks=blocks, first_token_delay=delay)
        self.stats.update(turn.record, response_id=meta.id)
        if faults.fail is not None:
            failure = chat.render_chat_failure(meta, *faults.fail)
            return ChatProduction(faults, framing, rendered=failure, first_token_delay=delay)
        specs = m.plan(turn.request, turn.items, turn.violations)
        specs = m.answer_faults(specs, self.faults.take_answer_faults)
        rendered = chat.render_chat(meta, specs, tokens, chat_request.budget(turn.body))
        return ChatProduction(faults, framing, rendered=rendered, first_token_delay=delay)

    def finish_chat(self, turn: ChatExchange, status: str, completion: Item | None) -> None:
        """Record a chat outcome (a replayed completion also gives the id)."""
        changes: dict[str, Any] = {"status": status}
        if completion is not None and isinstance(completion.get("id"), str):
            changes["response_id"] = completion["id"]
        self.stats.update(turn.record, **changes)

    def finish(
        self, turn: Exchange, status: str, response: dict[str, Any] | None
    ) -> StoredResponse | None:
        """Record the outcome; store a completed or incomplete response and return it."""
        response_id = response.get("id") if response is not None else None
        self.stats.update(turn.record, status=status, response_id=response_id)
        if response is None or status not in ("completed", "incomplete"):
            return None
        output: Sequence[Item] = response.get("output") or []
        entry = StoredResponse(
            id=str(response_id),
            conversation=tuple(turn.conversation) + tuple(output),
            response=response,
            reasoning_ids=frozenset(
                str(i.get("id")) for i in output if m.item_type(i) == "reasoning"
            ),
        )
        if turn.request.get("store", True) is not False:
            self.store.put(entry)
        return entry

    def fail(self, record: int, code: str | None) -> None:
        """Record an error outcome, unless the request already has one."""
        self.stats.update(record, only_pending=True, status=code or "error")


def replay_outcome(blocks: Sequence[SseBlock]) -> tuple[str, dict[str, Any] | None]:
    """The terminal status and Response object of a replayed recorded stream."""
    response = final_response(blocks)
    if response is None:
        return "error", None
    return str(response.get("status", "error")), response
