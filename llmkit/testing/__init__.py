"""A local OpenAI Responses API server that behaves like the real one, for tests and demos.

`ResponsesServer` serves, on one 127.0.0.1 port, `POST /v1/responses` (SSE when
`stream` is true, JSON otherwise), `GET /v1/responses/{id}` for stored responses, the
WebSocket mode on `/v1/responses`, and `POST /v1/chat/completions` (see Chat Completions).
Any model id is accepted; the models are scripted and deterministic, and their answers
are computed from the **full conversation** the server reconstructs, so a client that
sends the wrong context gets a visibly different answer.

Conversation
    The previous response's conversation (its input and its output) followed by the new
    input items. A string `input` is one user message. A new item that repeats an item
    already in the conversation (same `function_call` / `function_call_output` `call_id`,
    an assistant message with the same text, the same reasoning item) is a **context
    violation**: it is counted in `stats.context_violations` and in the request's record,
    kept in the conversation, and shown in the answer as ``violations=V``.

Text model (no function tools, or ``tool_choice: "none"``)
    ``Echo: <last user text> [user=U assistant=A tool_outputs=T items=N]`` where the counts
    are over the whole conversation before this response (`` violations=V`` is appended
    inside the brackets when this request had violations). Streamed as word-sized
    `response.output_text.delta` events.

Tool model (function tools given)
    The last user message may contain ``[steps=N]`` (default 1). While fewer than N
    `function_call_output` items follow the last user message, the model calls one tool:
    the function tools in round-robin order (step s uses ``tools[(s - 1) % len(tools)]``;
    a ``tool_choice`` naming a function forces it, ``"required"`` always calls). The
    `call_id` is ``call_`` + a hash of the conversation and step (deterministic, unique).
    Arguments come from the tool's JSON schema: if both ``a`` and ``b`` are integer/number
    properties (an ``add`` tool), ``a`` = the last tool output as a number (0 if none or not
    numeric) and ``b`` = the step number; otherwise enum → first value, string → the last
    user text, integer/number → the step, boolean → true, array → [], object → {}.
    Arguments stream as `response.function_call_arguments.delta` events (8 characters
    each). After N outputs: ``The answer is <last tool output>. [user=... items=...]``.
    A 30-step ``add`` loop run correctly therefore ends with ``The answer is 465.``.

Structured answers (``text.format`` / Chat ``response_format`` of type ``json_schema``)
    The text answer (not a tool call) becomes a JSON value that fits the schema
    (``_values``), written with spaces so it streams as word-sized deltas: every property,
    strings = the last user text (cut or padded to ``maxLength`` / ``minLength``; common
    ``format`` values fixed), integers/numbers = the last tool output as a number, else
    the number of user messages (moved into its bounds), booleans true, enums and consts
    their first value, unions their first branch that is not null, arrays one item
    (``minItems`` if more), tuples their ``prefixItems``, ``$ref`` followed (null / empty
    once recursion runs deep). ``json_object`` → ``{"answer": <last user text>}``. A
    ``strict: true`` schema must follow strict mode's rules (root an object; every object
    ``additionalProperties: false`` and every property required), else the real service's
    400 ``invalid_json_schema`` ("Invalid schema for response_format '<name>': In
    context=(...), ..."; param ``text.format.schema`` / ``response_format``).

Bench model (model id ``bench-words-<N>``, 1 <= N < 10**8, no leading zero)
    Replaces the text answer (not a tool call) with N short words separated by single
    spaces (``the quick brown fox ...``, cycled), streamed as exactly N
    `response.output_text.delta` events (Chat: N ``content`` deltas); ``output_tokens`` =
    N. For benchmarks: ``bench-words-100000`` streams 100,000 events in about a second.
    Events that no pause (`ttft`, `token_delay`, a keepalive wait) separates are written in
    batches of about 64 KiB, for every model; the bytes and their order are unchanged.

Reasoning (request has `reasoning`, or the model id contains "reason")
    First a `reasoning` item with one summary part (``reasoning_summary_part.added``,
    ``reasoning_summary_text.delta``/``.done``, ``reasoning_summary_part.done``), then the
    answer above. Like the real service, the item carries `encrypted_content` only when
    ``include`` has ``"reasoning.encrypted_content"``. Replayed reasoning input must carry
    valid encrypted content (``invalid_encrypted_content`` otherwise), or, with
    ``store: true``, be the id of a stored reasoning item; else a 400 "Item with id ... not
    found" error. Usage reports ``reasoning_tokens``.

Compaction (``context_management``, PROTOCOL.md §3.3; `_compaction`)
    ``[{"type": "compaction", "compact_threshold": N}]`` (N >= 1000, else 400
    ``integer_below_min_value``; without N, 100,000): when the input's rendered tokens
    (below) reach N, the response begins with a ``compaction`` item at output index 0
    (``output_item.added`` ``{id, type}``, ``response.compaction.compacting`` ``{item_id,
    output_index}``, ``output_item.done`` ``{id: "cmp_…", type, encrypted_content}``),
    then the answer. Its ``encrypted_content`` is the conversation so far, signed: in later
    input (full or chained) the latest compaction item stands for everything before it
    (items before it may be left out), so the answer is the one without compaction, with
    `` compactions=C`` in its counts (how many compactions the context went through).
    Rendered tokens count from the latest compaction item on, the item itself a tenth of
    what it carries. Content the server did not sign is a 400
    ``invalid_encrypted_content``; the same item twice is a context violation.
    ``stats.compactions`` and `RequestRecord` ``compacted`` count them.

Replay
    ``server.replay_next(sse_bytes_or_path, n=1)`` makes the next responses replay a
    recorded SSE body verbatim (over WebSocket: one text frame per `data:` payload,
    ``[DONE]`` skipped). A replayed completed response becomes the cache head.

Usage
    Per item ``len(canonical JSON) // 4 + 1`` tokens (plus ``len(instructions) // 4``);
    ``cached_tokens`` = the tokens of the chained prefix (`previous_response_id`),
    ``cache_write_tokens`` = the rest; ``output_tokens`` = number of deltas. A
    ``max_output_tokens`` budget (>= 16) cuts the output and ends in `response.incomplete`.

Latency (`ResponsesServer` ``ttft``, ``cost_per_input_token``, ``token_delay``; all 0 by
default)
    A response's first output waits ``ttft + cost_per_input_token * uncached`` seconds,
    each later delta ``token_delay``. ``uncached`` = the input tokens (counted as above)
    the model must process: over a WebSocket, a `previous_response_id` naming a head the
    connection holds (any lane's) spares that head's conversation, so only the new items
    and the instructions count; a full resend, anything over HTTP, Chat Completions and a
    response hydrated from the store (§3.1: "works but loses the latency benefit") count
    in full. So chaining saves time as on the real service, not only bytes. Every
    `RequestRecord` that reached a model keeps ``input_tokens``, ``uncached_tokens`` and
    the ``first_token_delay`` computed; ``stats.input_tokens`` / ``stats.uncached_tokens``
    sum them.

Semantics (PROTOCOL.md §3-§7)
    WebSocket: `response.create` text frames on `stream_id` lanes (below); each lane
    caches its latest completed/incomplete response (its head); `previous_response_id`
    must be a lane's head (another lane's head is a **fork**) or a `store: true`
    response, else the nested ``previous_response_not_found`` error (status 400); a
    same-lane continuation that fails (a pre-flight 400, an `error` event or
    `response.failed`) evicts the head it referenced, a fork that fails keeps its parent;
    ``generate: false`` → `response.created` + `response.completed` (empty output, real
    id, 0 output tokens), becomes the lane's head, counted in ``stats.warmups``;
    ``background`` is refused; binary or non-JSON frames get ``invalid_json``.
    HTTP: `previous_response_id` resolves only from the `store: true` store; ``generate``
    gets 400 ``unsupported_parameter``. A `function_call_output` without its
    `function_call` in the conversation is a 400, as on the real service.

WebSocket lanes (PROTOCOL.md §5; settings of `ResponsesServer`, also settable as attributes,
read when a connection opens)
    ``stream_id`` (``^[A-Za-z0-9_.-]{1,256}$``, else ``invalid_stream_id``) names a lane;
    no ``stream_id`` is the default lane, whose events carry no ``stream_id``. One lane
    runs its responses in order (FIFO, a create waits for the lane's previous terminal
    event); lanes run concurrently, each response its own task, their events interleaved
    on the socket (``sequence_number`` counts per response). Every event of a named-lane
    response, terminal events and request errors included, carries its ``stream_id``.
    ``ws_max_in_flight`` (16): responses in flight per socket across lanes, further
    creates wait. ``ws_max_lanes`` (32): distinct named lanes per socket; one more is
    the request error ``websocket_stream_limit_reached`` (status 400, ``param:
    "stream_id"``, with the ``stream_id``; `STREAM_LIMIT_CODE`). §5.4's open point, when a
    lane's previous head leaves the cache: ``ws_head_eviction="end"`` (default) when the
    lane's next response ends (completed: replaced; failed: evicted only if it continued
    that head), so a fork may still start from it meanwhile; ``"start"``: as soon as the
    lane's next response starts (after its validation). §5.4's other open point, whether a
    same-lane continuation refused before `response.created` (a validation 400, an armed
    ``error_next``) evicts the head it named: ``ws_preflight_evicts=True`` (default, as a
    failed response does), ``False`` keeps it.
    ``ws_lanes`` — servers without lanes (one response at a time per socket, one cached
    head, the most recent): ``"refuse"`` (a ``stream_id`` gets ``unsupported_parameter``,
    ``param: "stream_id"``, before any output), ``"ignore"`` (accepted, never echoed),
    ``"serial"`` (accepted and echoed); ``"lanes"`` (default) as above. In those three
    modes a create while one is in flight waits (``ws_when_busy="queue"``, default, as
    xAI documents) or gets ``conversation_already_has_active_response``
    (``"error"``; `BUSY_CODE`).
    Server pings: ``ws_ping_interval`` seconds (None: off, the default) on every socket,
    idle or not; with ``ws_pong_timeout`` a socket whose pong is late is closed with
    1011 "keepalive ping timeout" (counted in ``stats.ping_timeouts``).
    Stats: ``stats.max_in_flight`` (most responses in flight at once on one socket),
    ``stats.lanes_used`` (distinct named lanes, summed over sockets), ``stats.forks``;
    per connection ``max_in_flight``, ``lanes`` (names in first-use order), ``forks``;
    per request `RequestRecord` ``stream_id`` (as sent), ``fork``, with
    ``previous_response_id`` and ``input_items``; with ``record_bodies=True`` (a setting,
    off by default) also ``body``, the decoded request or ``response.create`` frame.

Steering (PROTOCOL.md §2.3, §6.3; ``_steer``)
    A ``response.steer`` frame (``previous_response_id`` naming a running response of
    the connection, ``input`` a string or user messages of ``input_text`` /
    ``input_image`` / ``input_file`` parts; no other key, no ``stream_id``) is answered on
    the target's lane: ``response.steer.accepted`` (``steer: {id: "steer_…",
    previous_response_id}``), then the response stops at the next text delta (a tool call
    or reasoning item completes first) with its text part closed and
    ``response.incomplete`` (``incomplete_details.reason: "steered"``, the output so far,
    its usage), and the server starts the successor itself: ``response.created`` of a new
    response with the same settings, chained on the stopped one, the steer input as its
    new items (its `RequestRecord` has ``successor_of``, no bytes received; a billable
    generation). Steers accepted before that ``response.created`` go into it; later ones
    into the next. A response that completes with tool calls instead gets
    ``response.steer.pending`` after ``response.completed`` (``reason:
    "waiting_for_required_input"``, ``required_input`` stubs per call), and the input is
    put before the input of the next create on that lane chained on it (the record keeps
    what the client sent). ``response.steer.failed`` (``steer: {previous_response_id,
    input}`` echoed, ``error: {type: "invalid_request_error", code, message}``):
    ``invalid_input``, ``response_not_found``, ``response_already_completed``,
    ``too_many_pending_steers`` (more than 8 waiting), ``successor_creation_failed``, and
    ``steering_not_supported`` for every steer with ``ResponsesServer(steering=False)``
    (also an attribute: a model without steering). ``stats.steers`` /
    ``stats.steers_failed`` count them. ``faults.hold_for_steer(n=1, timeout=5.0)`` pauses
    each of the next n responses after its first delta until a steer is answered, so a
    test can stop a response mid-answer without timing.

Chat Completions (`POST /v1/chat/completions`, SSE when `stream` is true, JSON otherwise)
    The same models and faults. The conversation is the `messages` (no chaining, so
    context violations are duplicates within them): system/developer/user → message
    items; assistant → a message item if it has text, plus one `function_call` per
    tool call (`call_id` = its `id`); tool → `function_call_output` for `tool_call_id`.
    Tools ``{"type": "function", "function": {...}}`` (or ``custom``); `reasoning_effort`
    (or "reason" in the model id) → reasoning; `max_completion_tokens` (or `max_tokens`)
    is the output budget. 400s like the real endpoint: Responses-only parameters
    ("Unrecognized request argument supplied: input"), `stream_options` without
    `stream`, ``n != 1``, a tool message not answering the preceding assistant's
    `tool_calls`, unanswered `tool_call_ids`. Stream: data-only SSE (no ``event:``),
    every chunk ``{id: "chatcmpl-…", object: "chat.completion.chunk", created, model,
    service_tier, system_fingerprint: "fp_llmkit", choices: [{index: 0, delta, logprobs,
    finish_reason}]}`` (+ ``usage: null`` with ``stream_options.include_usage``): a role
    delta ``{"role": "assistant", "content": "", "refusal": null}``, ``reasoning_content``
    deltas (the DeepSeek/vLLM convention), word-sized ``content`` deltas, a tool call as
    ``{index, id, type, function: {name, arguments: ""}}`` then 8-character
    ``arguments`` pieces, ``delta: {}`` with `finish_reason` ``stop`` | ``tool_calls`` |
    ``length``, with `include_usage` a ``choices: []`` chunk with `usage`
    (``prompt_tokens``/``completion_tokens``, ``reasoning_tokens``), then
    ``data: [DONE]``. JSON: one `chat.completion` (``message.tool_calls`` /
    ``message.reasoning_content`` only when present, `usage` always). Faults:
    ``fail_next`` → role chunk then ``data: {"error": {...}}`` and the end, no
    ``[DONE]`` (JSON: a 500 error body); ``error_next`` → only ``{"error": {...}}``
    ("nested") or vLLM's ``{"object": "error", ..., "code": <status>}`` ("flat") (JSON:
    the status and error body); ``drop_after`` counts chunks; ``unknown_events`` adds
    ``choices: []`` chunks with an unknown field; keepalives are SSE comments. Records
    have ``endpoint="chat"`` and ``input_items`` = number of messages.

Faults (`server.faults`, each one-shot fault applies to the next N requests)
    ``reject_upgrades``, ``drop_after``, ``fail_next``, ``error_next``, ``close_idle``,
    ``max_frame_size`` (close 1009), ``unknown_events`` (``response.future_thing`` events
    interleaved), ``slow``, ``close_on_create``. Answer faults apply to the next N text
    answers (a response that calls a tool leaves them armed): ``refuse_next(refusal)``
    (a ``refusal`` content part with ``response.refusal.delta``/``.done`` events; Chat:
    ``refusal`` deltas and ``message.refusal``), ``invalid_json_next`` (the answer's
    last character cut). Response faults skip warm-ups unless
    ``include_warmups=True``.

Gateways (LiteLLM's relay, corporate proxies; ``_gateway``)
    ``ResponsesServer(ws_fake_warmups=True)`` (also an attribute): WebSocket warm-ups are
    answered by the "gateway" itself, ``response.created`` + ``response.completed`` with a
    synthetic ``resp_warmup_…`` id, 0 input tokens and nothing kept (counted in
    ``stats.warmups``, no lane touched); a later ``previous_response_id`` naming such an id
    is dropped before the request reaches the model, so a chained turn with 0 new items
    is answered from an empty conversation (``Echo:  [user=0 assistant=0 tool_outputs=0
    items=0]``). ``faults.error_next(shape=...)`` writes its `error` event ``"nested"``
    (default), ``"flat"`` (no status), ``"string"`` (``{"type": "error", "error":
    "<message>"}``) or ``"status_code"`` (nested, ``status_code`` for ``status``);
    ``status=None`` or ``code=None`` leave the field out (HTTP JSON answers then use 500).
    ``faults.close_on_create(n, code=1000, reason="")`` closes the WebSocket cleanly right
    after each of the next `n` ``response.create`` frames, before any event.

Proxy (`ProxyServer`, ``_proxy``)
    A small HTTP proxy on loopback for testing proxy support: ``CONNECT`` tunnels and
    plain-HTTP forwarding, optional Basic authentication (``auth=(user, password)``, 407
    otherwise), loopback targets only; ``proxy.tunnels`` lists each tunnel's
    ``host:port`` and ``proxy.forwarded`` each forwarded request. A context manager, as
    `ResponsesServer` is.
"""

from __future__ import annotations

from llmkit.testing._events import ApiError
from llmkit.testing._faults import Faults
from llmkit.testing._lanes import BUSY_CODE, STREAM_LIMIT_CODE
from llmkit.testing._proxy import ProxyServer
from llmkit.testing._server import ResponsesServer
from llmkit.testing._state import ConnectionStats, RequestRecord, ServerStats

__all__ = [
    "BUSY_CODE",
    "ApiError",
    "ConnectionStats",
    "Faults",
    "ProxyServer",
    "RequestRecord",
    "ResponsesServer",
    "STREAM_LIMIT_CODE",
    "ServerStats",
]
