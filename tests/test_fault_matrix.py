"""Every fault the local server can inject, on every path, by `generate` and `stream`.

Each cell runs one conversation on one model: a first call that completes (over
WebSocket it leaves a chain head, so the faulted call is an incremental turn), the
faulted call, then the agent's next calls (a retry of the failed turn from its history,
and a follow-up turn). For every cell:

* no hang: a client ``timeout`` on every provider, pytest-timeout on every test;
* no silent truncation: the faulted call gives either the full, correct answer, or
  exactly the documented `llmkit.LLMKitError` subclass with ``.partial`` set: the text
  that arrived (when streaming, exactly the text the stream yielded), the response id
  once it arrived ("id" below), and metadata naming the transport that carried the
  failed request (and the fallback reason, on the HTTP fallback);
* billing: ``server.stats.generations`` grows by exactly the documented count (a
  fallback or resend before the model ran costs nothing extra; a failure after the
  model ran is never replayed), and the server saw exactly the documented requests;
* the next calls on the same model are correct, with no context violation.

`MATRIX` below is the specification, one row per fault; the table that follows is
rendered from it (``test_the_docstring_table_is_the_matrix`` keeps the two equal). A
path marked "n/a" does not run the row: WebSocket-only faults (upgrades, idle closes,
frame size, connection age, WebSocket error codes) cannot happen on the HTTP paths.
Every row runs through `llmkit.Provider` and through `llmkit.AsyncProvider` (ids
``async-…``), with the same expectations: the async shell must not change an outcome.
"gen" is the billable generations the faulted call costs, "req" the requests (HTTP
POSTs and ``response.create`` frames) the server saw for it.

Fault matrix (rendered from MATRIX)::

    unknown_events: `response.future_thing` events (Chat: unknown chunks) interleaved
      chat       answer                                                      gen 1  req 1
      http       answer                                                      gen 1  req 1
      websocket  answer, incremental                                         gen 1  req 1
    keepalive_interval: keepalives every 0.05 s while the first token takes 0.8 s
      chat       Timeout; .partial: set                                      gen 1  req 1
      http       answer                                                      gen 1  req 1
      websocket  answer, incremental                                         gen 1  req 1
    slow: 1 s before every delta, client timeout 0.4 s
      chat       Timeout; .partial: set, id                                  gen 1  req 1
      http       Timeout; .partial: set, id                                  gen 1  req 1
      websocket  Timeout; .partial: set, id                                  gen 1  req 1
    replay: a recorded stream cut before its terminal event
      chat       IncompleteStream; .partial: the recorded text so far, id    gen 1  req 1
      http       IncompleteStream; .partial: the recorded text so far, id    gen 1  req 1
      websocket  Timeout; .partial: the recorded text so far, id             gen 1  req 1
    drop_after(6): the connection drops after 6 events, mid-answer
      chat       ConnectionClosed; .partial: the text so far, id             gen 1  req 1
      http       ConnectionClosed; .partial: the text so far, id             gen 1  req 1
      websocket  ConnectionClosed; .partial: the text so far, id             gen 1  req 1
    drop_after(0): the connection drops before any event (the model ran)
      chat       ConnectionClosed; .partial: empty                           gen 1  req 1
      http       ConnectionClosed; .partial: empty                           gen 1  req 1
      websocket  ConnectionClosed; .partial: empty                           gen 1  req 1
    fail_next: the response ends in response.failed (Chat: an error chunk)
      chat       ResponseFailed; .partial: finish_reason=error, id           gen 1  req 1
      http       ResponseFailed; .partial: finish_reason=error, id           gen 1  req 1
      websocket  ResponseFailed; .partial: finish_reason=error, id           gen 1  req 1
    error_next(429, nested): an error event instead of the response
      chat       ResponseFailed; .partial: empty                             gen 0  req 1
      http       RateLimitError; .partial: empty                             gen 0  req 1
      websocket  RateLimitError; .partial: empty                             gen 0  req 1
    error_next(500, flat): vLLM's flat error payload instead of the response
      chat       InternalServerError; .partial: empty                        gen 0  req 1
      http       ResponseFailed; .partial: empty                             gen 0  req 1
      websocket  ResponseFailed; .partial: empty                             gen 0  req 1
    error_next(string): a gateway's bare-string error event, no status, no code
      chat       ResponseFailed; .partial: empty                             gen 0  req 1
      http       ResponseFailed; .partial: empty                             gen 0  req 1
      websocket  ResponseFailed; .partial: empty                             gen 0  req 1
    error_next(429, status_code): `status_code` for `status`, a renamed code (Chat: no status)
      chat       ResponseFailed; .partial: empty                             gen 0  req 1
      http       RateLimitError; .partial: empty                             gen 0  req 1
      websocket  RateLimitError; .partial: empty                             gen 0  req 1
    error_next(previous_response_not_found): the chain head is gone
      chat       ResponseFailed; .partial: empty                             gen 0  req 1
      http       BadRequestError; .partial: empty                            gen 0  req 1
      websocket  answer, input in full                                       gen 1  req 2
    error_next(previous_response_not_found) twice: resent once, not twice
      chat       n/a (WebSocket-only)
      http       n/a (WebSocket-only)
      websocket  BadRequestError; .partial: empty                            gen 0  req 2
    error_next(websocket_connection_limit_reached): the server's 60-minute limit
      chat       n/a (WebSocket-only)
      http       n/a (WebSocket-only)
      websocket  answer, input in full                                       gen 1  req 2
    max_connection_age: the server's connection age limit has passed
      chat       n/a (WebSocket-only)
      http       n/a (WebSocket-only)
      websocket  answer, input in full                                       gen 1  req 2
    close_idle: the server closed the idle connection before the call
      chat       n/a (WebSocket-only)
      http       n/a (WebSocket-only)
      websocket  answer, input in full                                       gen 1  req 1
    close_on_create: a clean close right after response.create, no event (a gateway)
      chat       n/a (WebSocket-only)
      http       n/a (WebSocket-only)
      websocket  answer, input in full                                       gen 1  req 2
    close_on_create twice: the resend is closed the same way: not served
      chat       n/a (WebSocket-only)
      http       n/a (WebSocket-only)
      websocket  WebSocketNotServed; .partial: empty                         gen 0  req 2
    max_frame_size: the request frame is too big (close 1009)
      chat       n/a (WebSocket-only)
      http       n/a (WebSocket-only)
      websocket  answer over HTTP (fallback_reason set)                      gen 1  req 2
    reject_upgrades(503): the reconnect's upgrade is refused
      chat       n/a (WebSocket-only)
      http       n/a (WebSocket-only)
      websocket  answer over HTTP (fallback_reason set)                      gen 1  req 1
    reject_upgrades(TCP drop): the reconnect's TCP connection is dropped
      chat       n/a (WebSocket-only)
      http       n/a (WebSocket-only)
      websocket  answer over HTTP (fallback_reason set)                      gen 1  req 1
    reject_upgrades(429): an upgrade refusal that HTTP would get too
      chat       n/a (WebSocket-only)
      http       n/a (WebSocket-only)
      websocket  RateLimitError; .partial: empty                             gen 0  req 0
    reject_requests(503): an HTTP 503 (WebSocket: on the HTTP fallback), no retries
      chat       InternalServerError; .partial: empty                        gen 0  req 1
      http       InternalServerError; .partial: empty                        gen 0  req 1
      websocket  InternalServerError on the HTTP fallback; .partial: empty   gen 0  req 1
    reject_requests(503) then retried: max_retries=1, retry-after 0
      chat       answer                                                      gen 1  req 2
      http       answer                                                      gen 1  req 2
      websocket  answer over HTTP (fallback_reason set)                      gen 1  req 2

Notes on the outcomes that differ by path:

* A Chat Completions error payload carries no HTTP status unless it is vLLM's flat one,
  so a nested error is a `ResponseFailed` there and a flat one a status error; on the
  Responses API it is the other way round (see ``test_error_events_are_typed_like_http_errors``).
* A WebSocket has no end of stream except a close: a stream cut before its terminal
  event, on a connection that stays open, ends in the idle `Timeout`, never in a finish.
* ``previous_response_not_found`` and ``websocket_connection_limit_reached`` mean the
  server did not run the request: WebSocket mode resends in full, once (on the same
  connection after ``previous_response_not_found``, a healthy socket; on a new one
  after the limit).
* A clean close right after ``response.create`` with no event (a gateway that does not
  serve WebSocket mode for the request) is resent once on a new connection, as any clean
  close; a second one raises `llmkit.WebSocketNotServed` (a `ConnectionClosed`, not
  retryable; its message says to pass ``websocket=False``), never a third send or HTTP:
  a close does not prove the model never ran.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from loop import PATHS, TRANSPORTS, idle_connections_closed, provider

import llmkit
from llmkit.testing import ResponsesServer

pytestmark = pytest.mark.timeout(30)

DATA = Path(__file__).parent / "data"
RECORDED_RESPONSES = (
    DATA
    / "recorded"
    / "charmbracelet-fantasy"
    / "TestOpenAIResponsesCommon__openai-gpt-5__simple_streaming.i0.sse"
)
RECORDED_CHAT = DATA / "chat" / "truncated-no-finish.sse"

Path_ = Literal["chat", "http", "websocket"]
PartialKind = Literal["set", "empty", "prefix", "recorded", "error"]
TIMEOUT = 10.0
"""Client timeout of every cell whose row does not need a short one: no cell can hang."""


@dataclass(frozen=True, slots=True)
class Expect:
    """What one fault does to the faulted call on one path."""

    error: type[llmkit.LLMKitError] | None = None
    """The exact exception class; None means the full, correct answer."""
    generations: int = 1
    """Billable generations the call costs (``server.stats.generations``)."""
    requests: int = 1
    """Requests the server saw for the call (a resend or a fallback after a refused
    frame makes two; a refused upgrade is not a request)."""
    partial: PartialKind = "set"
    """What ``.partial`` holds when the call raises."""
    input_mode: Literal["full", "incremental"] | None = None
    """``metadata.input_mode`` of the answer, where it tells the recovery apart."""
    fallback: bool = False
    """The call went over HTTP with ``metadata.fallback_reason`` set (also on
    ``.partial.metadata`` when it raises)."""
    started: bool = False
    """The response had begun (its id arrived) before the failure: ``.partial.id`` is set."""
    wire: Literal["http", "websocket", "nothing sent"] | None = None
    """What ``.partial.metadata.transport`` must say: the transport that carried the failed
    request (None: the path's own)."""

    def label(self) -> str:
        if self.error is not None:
            partial = {
                "set": "set",
                "empty": "empty",
                "prefix": "the text so far",
                "recorded": "the recorded text so far",
                "error": "finish_reason=error",
            }[self.partial]
            where = " on the HTTP fallback" if self.fallback else ""
            ids = ", id" if self.started else ""
            return f"{self.error.__name__}{where}; .partial: {partial}{ids}"
        if self.fallback:
            return "answer over HTTP (fallback_reason set)"
        if self.input_mode == "full":
            return "answer, input in full"
        if self.input_mode == "incremental":
            return "answer, incremental"
        return "answer"


Arm = Callable[[ResponsesServer, str], None]


@dataclass(frozen=True, slots=True)
class Row:
    """One fault: how to inject it, and what each path must do (None: not applicable)."""

    description: str
    arm: Arm
    chat: Expect | None
    http: Expect | None
    websocket: Expect | None
    timeout: float = TIMEOUT
    max_retries: int = 0

    def expect(self, path: str) -> Expect | None:
        match path:
            case "chat":
                return self.chat
            case "http":
                return self.http
            case "websocket":
                return self.websocket
        raise AssertionError(path)


# --------------------------------------------------------------------------- arming


def _idle_closed(server: ResponsesServer) -> None:
    """Close the idle WebSocket so that the faulted call has to connect again."""
    idle_connections_closed(server)


def _truncated_responses_body() -> bytes:
    body = RECORDED_RESPONSES.read_bytes()
    return body[: body.index(b"event: response.output_text.done")]


def _recorded_text(body: bytes) -> str:
    """The text deltas of an SSE body (Responses events or Chat chunks)."""
    text = []
    for line in body.decode().splitlines():
        if not line.startswith("data: "):
            continue
        payload = json.loads(line.removeprefix("data: "))
        if payload.get("type") == "response.output_text.delta":
            text.append(payload["delta"])
        for choice in payload.get("choices", []):
            text.append(choice.get("delta", {}).get("content") or "")
    return "".join(text)


def _replay_body(path: str) -> bytes:
    return RECORDED_CHAT.read_bytes() if path == "chat" else _truncated_responses_body()


def arm_unknown_events(server: ResponsesServer, path: str) -> None:
    server.faults.unknown_events = True  # left on: the follow-up calls see them too


def arm_keepalive(server: ResponsesServer, path: str) -> None:
    server.keepalive_interval = 0.05
    server.ttft = 0.8


def arm_slow(server: ResponsesServer, path: str) -> None:
    server.faults.slow(1.0)


def arm_replay(server: ResponsesServer, path: str) -> None:
    server.replay_next(_replay_body(path))


def arm_drop_mid_answer(server: ResponsesServer, path: str) -> None:
    server.faults.drop_after(6)


def arm_drop_before_events(server: ResponsesServer, path: str) -> None:
    server.faults.drop_after(0)


def arm_fail(server: ResponsesServer, path: str) -> None:
    server.faults.fail_next(code="server_error", message="the model failed")


def arm_error_nested(server: ResponsesServer, path: str) -> None:
    server.faults.error_next(code="rate_limit_exceeded", message="slow down", status=429)


def arm_error_flat(server: ResponsesServer, path: str) -> None:
    server.faults.error_next(code="boom", message="engine down", status=500, shape="flat")


def arm_error_string(server: ResponsesServer, path: str) -> None:
    server.faults.error_next(code=None, message="upstream failed", status=None, shape="string")


def arm_error_status_code(server: ResponsesServer, path: str) -> None:
    server.faults.error_next(code="throttled", message="slow down", status=429, shape="status_code")


def arm_close_on_create(n: int) -> Arm:
    def arm(server: ResponsesServer, path: str) -> None:
        server.faults.close_on_create(n, reason="not enabled")

    return arm


def arm_not_found(server: ResponsesServer, path: str) -> None:
    server.faults.error_next(code="previous_response_not_found", message="gone", status=400)


def arm_not_found_twice(server: ResponsesServer, path: str) -> None:
    server.faults.error_next(code="previous_response_not_found", message="gone", n=2)


def arm_connection_limit_error(server: ResponsesServer, path: str) -> None:
    server.faults.error_next(code="websocket_connection_limit_reached", message="60 minutes")


def arm_connection_age(server: ResponsesServer, path: str) -> None:
    server.max_connection_age = 0.05
    time.sleep(0.1)


def arm_close_idle(server: ResponsesServer, path: str) -> None:
    _idle_closed(server)


def arm_max_frame_size(server: ResponsesServer, path: str) -> None:
    server.faults.max_frame_size = 40  # smaller than any response.create frame


def arm_reject_upgrade(status: int | None) -> Arm:
    def arm(server: ResponsesServer, path: str) -> None:
        _idle_closed(server)
        server.faults.reject_upgrades(status=status)

    return arm


def arm_reject_requests(server: ResponsesServer, path: str) -> None:
    if path == "websocket":  # an HTTP status can only reach the HTTP fallback
        arm_reject_upgrade(503)(server, path)
    server.faults.reject_requests(status=503, headers={"retry-after": "0"})


def disarm(server: ResponsesServer) -> None:
    """Undo the row's settings before the follow-up calls (unknown events stay on)."""
    server.ttft = 0.0
    server.keepalive_interval = None
    server.max_connection_age = None
    server.faults.max_frame_size = None


# --------------------------------------------------------------------------- the matrix

_WS_ONLY = None  # the fault cannot happen on this path

MATRIX: dict[str, Row] = {
    "unknown_events": Row(
        "`response.future_thing` events (Chat: unknown chunks) interleaved",
        arm_unknown_events,
        chat=Expect(),
        http=Expect(),
        websocket=Expect(input_mode="incremental"),
    ),
    "keepalive_interval": Row(
        "keepalives every 0.05 s while the first token takes 0.8 s",
        arm_keepalive,
        # Chat's keepalives are SSE comments: not events, so they do not end a silence.
        chat=Expect(llmkit.Timeout),
        http=Expect(),
        websocket=Expect(input_mode="incremental"),
        timeout=0.4,  # shorter than the first token: only the keepalives keep it alive
    ),
    "slow": Row(
        "1 s before every delta, client timeout 0.4 s",
        arm_slow,
        chat=Expect(llmkit.Timeout, started=True),
        http=Expect(llmkit.Timeout, started=True),
        websocket=Expect(llmkit.Timeout, started=True),
        timeout=0.4,
    ),
    "replay": Row(
        "a recorded stream cut before its terminal event",
        arm_replay,
        chat=Expect(llmkit.IncompleteStream, partial="recorded", started=True),
        http=Expect(llmkit.IncompleteStream, partial="recorded", started=True),
        websocket=Expect(llmkit.Timeout, partial="recorded", started=True),
        timeout=0.4,
    ),
    "drop_after(6)": Row(
        "the connection drops after 6 events, mid-answer",
        arm_drop_mid_answer,
        chat=Expect(llmkit.ConnectionClosed, partial="prefix", started=True),
        http=Expect(llmkit.ConnectionClosed, partial="prefix", started=True),
        websocket=Expect(llmkit.ConnectionClosed, partial="prefix", started=True),
    ),
    "drop_after(0)": Row(
        "the connection drops before any event (the model ran)",
        arm_drop_before_events,
        chat=Expect(llmkit.ConnectionClosed, partial="empty"),
        http=Expect(llmkit.ConnectionClosed, partial="empty"),
        websocket=Expect(llmkit.ConnectionClosed, partial="empty"),
    ),
    "fail_next": Row(
        "the response ends in response.failed (Chat: an error chunk)",
        arm_fail,
        chat=Expect(llmkit.ResponseFailed, partial="error", started=True),
        http=Expect(llmkit.ResponseFailed, partial="error", started=True),
        websocket=Expect(llmkit.ResponseFailed, partial="error", started=True),
    ),
    "error_next(429, nested)": Row(
        "an error event instead of the response",
        arm_error_nested,
        chat=Expect(llmkit.ResponseFailed, generations=0, partial="empty"),
        http=Expect(llmkit.RateLimitError, generations=0, partial="empty"),
        websocket=Expect(llmkit.RateLimitError, generations=0, partial="empty"),
    ),
    "error_next(500, flat)": Row(
        "vLLM's flat error payload instead of the response",
        arm_error_flat,
        chat=Expect(llmkit.InternalServerError, generations=0, partial="empty"),
        http=Expect(llmkit.ResponseFailed, generations=0, partial="empty"),
        websocket=Expect(llmkit.ResponseFailed, generations=0, partial="empty"),
    ),
    "error_next(string)": Row(
        "a gateway's bare-string error event, no status, no code",
        arm_error_string,
        chat=Expect(llmkit.ResponseFailed, generations=0, partial="empty"),
        http=Expect(llmkit.ResponseFailed, generations=0, partial="empty"),
        websocket=Expect(llmkit.ResponseFailed, generations=0, partial="empty"),
    ),
    "error_next(429, status_code)": Row(
        "`status_code` for `status`, a renamed code (Chat: no status)",
        arm_error_status_code,
        chat=Expect(llmkit.ResponseFailed, generations=0, partial="empty"),
        http=Expect(llmkit.RateLimitError, generations=0, partial="empty"),
        websocket=Expect(llmkit.RateLimitError, generations=0, partial="empty"),
    ),
    "error_next(previous_response_not_found)": Row(
        "the chain head is gone",
        arm_not_found,
        chat=Expect(llmkit.ResponseFailed, generations=0, partial="empty"),
        http=Expect(llmkit.BadRequestError, generations=0, partial="empty"),
        websocket=Expect(requests=2, input_mode="full"),
    ),
    "error_next(previous_response_not_found) twice": Row(
        "resent once, not twice",
        arm_not_found_twice,
        chat=_WS_ONLY,
        http=_WS_ONLY,
        websocket=Expect(llmkit.BadRequestError, generations=0, requests=2, partial="empty"),
    ),
    "error_next(websocket_connection_limit_reached)": Row(
        "the server's 60-minute limit",
        arm_connection_limit_error,
        chat=_WS_ONLY,
        http=_WS_ONLY,
        websocket=Expect(requests=2, input_mode="full"),
    ),
    "max_connection_age": Row(
        "the server's connection age limit has passed",
        arm_connection_age,
        chat=_WS_ONLY,
        http=_WS_ONLY,
        websocket=Expect(requests=2, input_mode="full"),
    ),
    "close_idle": Row(
        "the server closed the idle connection before the call",
        arm_close_idle,
        chat=_WS_ONLY,
        http=_WS_ONLY,
        websocket=Expect(input_mode="full"),
    ),
    "close_on_create": Row(
        "a clean close right after response.create, no event (a gateway)",
        arm_close_on_create(1),
        chat=_WS_ONLY,
        http=_WS_ONLY,
        websocket=Expect(requests=2, input_mode="full"),
    ),
    "close_on_create twice": Row(
        "the resend is closed the same way: not served",
        arm_close_on_create(2),
        chat=_WS_ONLY,
        http=_WS_ONLY,
        websocket=Expect(llmkit.WebSocketNotServed, generations=0, requests=2, partial="empty"),
    ),
    "max_frame_size": Row(
        "the request frame is too big (close 1009)",
        arm_max_frame_size,
        chat=_WS_ONLY,
        http=_WS_ONLY,
        websocket=Expect(requests=2, fallback=True),
    ),
    "reject_upgrades(503)": Row(
        "the reconnect's upgrade is refused",
        arm_reject_upgrade(503),
        chat=_WS_ONLY,
        http=_WS_ONLY,
        websocket=Expect(fallback=True),
    ),
    "reject_upgrades(TCP drop)": Row(
        "the reconnect's TCP connection is dropped",
        arm_reject_upgrade(None),
        chat=_WS_ONLY,
        http=_WS_ONLY,
        websocket=Expect(fallback=True),
    ),
    "reject_upgrades(429)": Row(
        "an upgrade refusal that HTTP would get too",
        arm_reject_upgrade(429),
        chat=_WS_ONLY,
        http=_WS_ONLY,
        websocket=Expect(
            llmkit.RateLimitError, generations=0, requests=0, partial="empty", wire="nothing sent"
        ),
    ),
    "reject_requests(503)": Row(
        "an HTTP 503 (WebSocket: on the HTTP fallback), no retries",
        arm_reject_requests,
        chat=Expect(llmkit.InternalServerError, generations=0, partial="empty"),
        http=Expect(llmkit.InternalServerError, generations=0, partial="empty"),
        websocket=Expect(
            llmkit.InternalServerError, generations=0, partial="empty", fallback=True, wire="http"
        ),
    ),
    "reject_requests(503) then retried": Row(
        "max_retries=1, retry-after 0",
        arm_reject_requests,
        chat=Expect(requests=2),
        http=Expect(requests=2),
        websocket=Expect(requests=2, fallback=True),
        max_retries=1,
    ),
}


def render_table() -> str:
    """The fault → outcome table of the module docstring, from `MATRIX`."""
    lines = []
    for fault, row in MATRIX.items():
        lines.append(f"{fault}: {row.description}")
        for path in PATHS:
            expect = row.expect(path)
            if expect is None:
                lines.append(f"  {path:<9}  n/a (WebSocket-only)")
            else:
                cost = f"gen {expect.generations}  req {expect.requests}"
                lines.append(f"  {path:<9}  {expect.label():<58}  {cost}")
    return "\n".join(lines)


LANES_IDS = {None: "", True: "-lanes", False: "-no-lanes"}
CELLS = [
    pytest.param(fault, path, mode, lanes, id=f"{fault}-{path.id}-{mode}{LANES_IDS[lanes]}")
    for fault, row in MATRIX.items()
    for path in TRANSPORTS
    if row.expect(path) is not None  # WebSocket-only rows run on websocket only
    for mode in ("generate", "stream")
    for lanes in ((True, False) if path == "websocket" else (None,))
]
"""Every row on every path, generated and streamed; over WebSocket with lanes and without
(``ws_lanes``: the same expectations hold either way)."""


def test_the_docstring_table_is_the_matrix() -> None:
    rendered = "\n".join("    " + line for line in render_table().splitlines())
    assert __doc__ is not None
    assert rendered in __doc__


def test_every_fault_of_the_server_has_a_row(server: ResponsesServer) -> None:
    """A fault added to `llmkit.testing.Faults` must get a row here."""
    public = {name for name in dir(server.faults) if not name.startswith(("_", "take"))}
    covered = {
        "unknown_events",
        "slow",
        "replay",
        "drop_after",
        "fail_next",
        "error_next",
        "close_idle",
        "close_on_create",
        "max_frame_size",
        "reject_upgrades",
        "reject_requests",
        "reset",  # not a fault
        # Answer faults: what they do is only a fault for a structured call (a refusal
        # or no JSON is a fine plain answer); tests/test_structured_output.py runs them
        # on every path, by generate and by stream.
        "refuse_next",
        "invalid_json_next",
        # A pause until a steer arrives, not a failure: tests/test_steer.py and
        # tests/test_server_steer.py run it on every steering path.
        "hold_for_steer",
    }
    assert public == covered
    assert {"keepalive_interval", "max_connection_age"} <= set(MATRIX)


# --------------------------------------------------------------------------- one cell


def echo(text: str, *, user: int, assistant: int, items: int) -> str:
    """The scripted text model's answer to a conversation (see `llmkit.testing`)."""
    return f"Echo: {text} [user={user} assistant={assistant} tool_outputs=0 items={items}]"


FIRST = "alpha bravo charlie"
FAULTED = "delta echo foxtrot golf"
FOLLOW_UP = "hotel india"


@dataclass(slots=True)
class Outcome:
    """What the faulted call gave: a response, or an exception, and the streamed text."""

    response: llmkit.Response | None
    error: llmkit.LLMKitError | None
    streamed: str | None


def consume(model: llmkit.LanguageModel, call: llmkit.Call, mode: str) -> Outcome:
    """Run ``call`` by `generate` or by iterating `stream`, catching llmkit's errors."""
    if mode == "generate":
        try:
            return Outcome(model.generate(call), None, None)
        except llmkit.LLMKitError as exc:
            return Outcome(None, exc, None)
    seen: list[str] = []
    with model.stream(call) as stream:
        try:
            for part in stream:
                if isinstance(part, llmkit.TextDelta):
                    seen.append(part.delta)
        except llmkit.LLMKitError as exc:
            return Outcome(None, exc, "".join(seen))
        assert stream.finished  # a stream that stops without a finish is a truncation
        return Outcome(stream.response, None, "".join(seen))


def check_error(expect: Expect, outcome: Outcome, expected_text: str, path: str) -> None:
    error = outcome.error
    assert error is not None, f"expected {expect.label()}, got an answer"
    assert type(error) is expect.error, repr(error)
    partial = error.partial
    assert partial is not None, "every exception carries what arrived before it"
    if outcome.streamed is not None:
        assert partial.text == outcome.streamed  # nothing yielded is missing, nothing added
    metadata = partial.metadata
    wire = expect.wire or ("websocket" if path == "websocket" else "http")
    if wire != "nothing sent":
        assert metadata.transport == wire, "the partial tells how the failed request went"
    if expect.started:
        assert partial.id is not None, "the response's id had arrived before the failure"
    if expect.fallback:
        assert metadata.fallback_reason, "the partial tells that the call fell back to HTTP"
    match expect.partial:
        case "empty":
            assert partial.text == ""
        case "prefix":
            assert partial.text and expected_text.startswith(partial.text)
            assert partial.text != expected_text
        case "recorded":
            assert partial.text and partial.text == _recorded_text(_replay_body(path))
        case "error":
            assert partial.finish_reason is llmkit.FinishReason.ERROR
        case "set":
            pass


def check_answer(expect: Expect, outcome: Outcome, expected_text: str) -> llmkit.Response:
    assert outcome.error is None, f"expected {expect.label()}, got {outcome.error!r}"
    response = outcome.response
    assert response is not None
    assert response.text == expected_text
    assert response.finish_reason is llmkit.FinishReason.STOP
    if outcome.streamed is not None:
        assert outcome.streamed == expected_text
    metadata = response.metadata
    if expect.fallback:
        assert metadata.transport == "http"
        assert metadata.fallback_reason
    else:
        assert metadata.fallback_reason is None
    if expect.input_mode is not None:
        assert metadata.input_mode == expect.input_mode
    return response


@pytest.mark.parametrize(("fault", "path", "mode", "lanes"), CELLS)
def test_fault(
    server: ResponsesServer, fault: str, path: str, mode: str, lanes: bool | None
) -> None:
    row = MATRIX[fault]
    expect = row.expect(path)
    assert expect is not None
    settings = {} if lanes is None else {"ws_lanes": lanes}
    timeout, retries = row.timeout, row.max_retries
    with provider(server, path, timeout=timeout, max_retries=retries, **settings) as p:
        model = p.language_model("scripted-matrix")
        history: list[llmkit.Message] = [llmkit.UserMessage(FIRST)]
        first = model.generate(llmkit.Call(history))
        assert first.text == echo(FIRST, user=1, assistant=0, items=1)
        history += [first.message, llmkit.UserMessage(FAULTED)]
        expected = echo(FAULTED, user=2, assistant=1, items=3)
        generations, requests = server.stats.generations, len(server.stats.requests)

        row.arm(server, path)
        try:
            outcome = consume(model, llmkit.Call(history), mode)
        finally:
            disarm(server)

        assert server.stats.generations - generations == expect.generations
        assert len(server.stats.requests) - requests == expect.requests
        if expect.error is not None:
            check_error(expect, outcome, expected, path)
            retried = model.generate(llmkit.Call(history))  # the agent retries the turn
            assert retried.text == expected
            answer = retried
        else:
            answer = check_answer(expect, outcome, expected)

        history += [answer.message, llmkit.UserMessage(FOLLOW_UP)]
        follow_up = model.generate(llmkit.Call(history))
    assert follow_up.text == echo(FOLLOW_UP, user=3, assistant=2, items=5)
    assert server.stats.context_violations == 0
