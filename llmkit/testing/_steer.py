"""Steering a running response (`response.steer`, PROTOCOL.md §2.3, §6.3): the decisions.

Pure: what a steer frame may hold, the acknowledgement events, and where a running
response stops. `_ws` does the I/O: it keeps one `SteerState` per running lane, answers
each `response.steer` with `response.steer.accepted` or `response.steer.failed`, runs
the response's events through `steerable`, and after the terminal event starts the
successor itself (`response.created` of a new response chained on the steered one, the
queued input as its only new items), or parks the input for the client's explicit create
(`response.steer.pending`, when the response waits for client tool output).

Where a steered response stops (§5.4 leaves it open; this server picks the earlier
answer): at the next delta boundary of a text part, or between output items; never
inside a reasoning item or a tool call's arguments, which end first. A steer that arrives
after the last stop point lets the response complete, and the successor still starts.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from llmkit.testing._events import Event, new_id, usage_object
from llmkit.testing._models import item_type

Item = dict[str, Any]

MAX_PENDING_STEERS = 8
"""Accepted steers a response holds before the next is ``too_many_pending_steers``."""
_STEER_KEYS = frozenset({"type", "previous_response_id", "input"})
_MESSAGE_KEYS = frozenset({"type", "role", "content"})
_PART_TYPES = frozenset({"input_text", "input_image", "input_file"})
_TEXT_DELTAS = frozenset({"response.output_text.delta", "response.refusal.delta"})
_STARTS = frozenset({"response.created", "response.in_progress", "response.queued"})
_TOOL_CALLS = frozenset({"function_call", "custom_tool_call"})


class SteerRefused(Exception):
    """A steer frame the server does not accept: its ``code`` and ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def steer_items(frame: dict[str, Any]) -> list[Item]:
    """The input items of a ``response.steer`` frame (a string is one user message).

    Raises:
        SteerRefused: ``invalid_input`` for any key, role, item or part the protocol
            does not allow (§2.3: only user messages of text, images and files).
    """
    extra = sorted(set(frame) - _STEER_KEYS)
    if extra:
        raise SteerRefused("invalid_input", f"Unsupported parameter: '{extra[0]}'.")
    value = frame.get("input")
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise SteerRefused("invalid_input", "'input' must be a string or a non-empty array.")
    for index, item in enumerate(value):
        problem = _message_problem(item)
        if problem is not None:
            raise SteerRefused("invalid_input", f"Invalid 'input[{index}]': {problem}.")
    return [dict(item) for item in value]


def _message_problem(item: Any) -> str | None:
    if not isinstance(item, dict) or set(item) - _MESSAGE_KEYS:
        return "only messages with 'type', 'role' and 'content' are supported for steering"
    if item.get("type", "message") != "message" or item.get("role") != "user":
        return "only messages with the 'user' role are supported for steering"
    content = item.get("content")
    if isinstance(content, str):
        return None
    if not isinstance(content, list) or not content:
        return "'content' must be a string or a non-empty array"
    for part in content:
        if not isinstance(part, dict) or part.get("type") not in _PART_TYPES:
            return "content parts must be input_text, input_image or input_file"
    return None


def accepted_event(steer_id: str, response_id: str) -> Event:
    return {
        "type": "response.steer.accepted",
        "sequence_number": 0,
        "steer": {"id": steer_id, "previous_response_id": response_id},
    }


def failed_event(
    response_id: Any, frame_input: Any, code: str, message: str, steer_id: str | None = None
) -> Event:
    """``response.steer.failed``: the input comes back; ``steer.id`` only once allocated."""
    steer: dict[str, Any] = {"previous_response_id": response_id, "input": frame_input}
    if steer_id is not None:
        steer = {"id": steer_id, **steer}
    return {
        "type": "response.steer.failed",
        "sequence_number": 0,
        "steer": steer,
        "error": {"type": "invalid_request_error", "code": code, "message": message},
    }


def pending_event(steer_id: str, response_id: str, required: list[Item]) -> Event:
    return {
        "type": "response.steer.pending",
        "sequence_number": 0,
        "steer": {"id": steer_id, "previous_response_id": response_id},
        "reason": "waiting_for_required_input",
        "required_input": required,
    }


def required_input(output: Iterable[Item]) -> list[Item]:
    """The stubs a completed response waits for: one per client-owned tool call."""
    stubs: list[Item] = []
    for item in output:
        kind = item_type(item)
        if kind == "function_call":
            stubs.append({"type": "function_call_output", "call_id": item.get("call_id")})
        elif kind == "custom_tool_call":
            stubs.append({"type": "custom_tool_call_output", "call_id": item.get("call_id")})
    return stubs


def waits_for_tools(output: Iterable[Item]) -> bool:
    return any(item_type(item) in _TOOL_CALLS for item in output)


@dataclass(slots=True)
class Steer:
    """One accepted submission: its id and input items, until it is applied."""

    id: str
    items: list[Item]


@dataclass(eq=False, slots=True)
class SteerState:
    """The steers of one running lane (a response and its successors)."""

    echo: str | None = None
    """The lane's ``stream_id`` as its events carry it."""
    hold: float | None = None
    """`Faults.hold_for_steer`: after the first delta, wait this long for a steer."""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a steer is accepted (ends a hold)."""
    response_id: str | None = None
    """The response now running (steers name it); None between responses."""
    queued: list[Steer] = field(default_factory=list)
    acks: deque[Event] = field(default_factory=deque)
    """Acknowledgements to send on the lane before its next event."""
    cut: bool = False
    """The current response stopped for steering (``incomplete``, reason ``steered``)."""
    outcome: tuple[str, dict[str, Any]] | None = None
    """The (status, Response object) of a stopped response, for committing it."""

    def accept(self, items: list[Item]) -> Steer:
        if len(self.queued) >= MAX_PENDING_STEERS:
            raise SteerRefused(
                "too_many_pending_steers", "This response already has too many pending steers."
            )
        steer = Steer(new_id("steer"), items)
        self.queued.append(steer)
        return steer

    def take(self) -> list[Steer]:
        steers, self.queued = self.queued, []
        return steers


@dataclass(slots=True)
class _Open:
    item: Item
    index: int
    text: list[str] = field(default_factory=list)
    text_open: bool = False


@dataclass(slots=True)
class _Tracker:
    """What of a response went out so far: finished items, the open one, tokens."""

    output: list[Item] = field(default_factory=list)
    open: _Open | None = None
    tokens: int = 0
    reasoning_tokens: int = 0

    def see(self, event: Event) -> None:
        kind = event.get("type", "")
        if kind == "response.output_item.added":
            self.open = _Open(dict(event["item"]), int(event.get("output_index", 0)))
        elif kind == "response.output_item.done":
            self.output.append(event["item"])
            self.open = None
        elif kind == "response.content_part.added" and self.open is not None:
            self.open.text_open = True
        elif kind in ("response.output_text.done", "response.refusal.done") and self.open:
            self.open.text_open = False
        elif kind.endswith(".delta"):
            self.tokens += 1
            if kind.startswith("response.reasoning"):
                self.reasoning_tokens += 1
            if kind in _TEXT_DELTAS and self.open is not None:
                self.open.text.append(str(event.get("delta", "")))

    def can_stop(self) -> bool:
        """A safe output boundary: between items, or between deltas of a text part."""
        return self.open is None or (item_type(self.open.item) == "message" and self.open.text_open)

    def stop(self, final: dict[str, Any]) -> tuple[list[Event], dict[str, Any]]:
        """The events that close the open text part and end the response ``incomplete``
        (reason ``steered``), and that Response object; ``final`` is the response the
        model would have ended with (its settings and input usage are kept)."""
        events: list[Event] = []
        if self.open is not None:
            opened, text = self.open, "".join(self.open.text)
            where = {
                "content_index": 0,
                "item_id": opened.item.get("id"),
                "output_index": opened.index,
            }
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
            events.append(
                {"type": "response.output_text.done", **where, "logprobs": [], "text": text}
            )
            events.append({"type": "response.content_part.done", **where, "part": part})
            item = {**opened.item, "status": "incomplete", "content": [part]}
            events.append(
                {"type": "response.output_item.done", "item": item, "output_index": opened.index}
            )
            self.output.append(item)
            self.open = None
        usage = final.get("usage") or {}
        details = usage.get("input_tokens_details") or {}
        response = {
            **final,
            "status": "incomplete",
            "incomplete_details": {"reason": "steered"},
            "output": list(self.output),
            "usage": usage_object(
                int(usage.get("input_tokens", 0)),
                int(details.get("cached_tokens", 0)),
                self.tokens,
                self.reasoning_tokens,
            ),
        }
        events.append({"type": "response.incomplete", "response": response})
        return events, response


def steerable(events: Iterable[Event], state: SteerState) -> Iterator[Event]:
    """A response's events, with the lane's acknowledgements slipped in before each one,
    stopped at the first safe boundary once a steer is queued (`SteerState.cut`)."""
    tracker = _Tracker()
    final: dict[str, Any] | None = None
    for event in events:
        kind = event.get("type", "")
        if kind == "response.created":
            # The commit point of the steers taken for this response: the answers to
            # later ones come after it, so a client commits each steer where it applies.
            state.response_id = event["response"]["id"]
            yield event
            continue
        while state.acks:
            yield state.acks.popleft()
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            final = event["response"]
        elif state.queued and kind not in _STARTS and tracker.can_stop():
            template = _final_of(events) if final is None else final
            closing, response = tracker.stop(template)
            state.cut = True
            state.outcome = ("incomplete", response)
            yield from closing
            return
        tracker.see(event)
        yield event


def _final_of(events: Iterable[Event]) -> dict[str, Any]:
    """The terminal Response object of a rendered event list (its last event)."""
    last: Event = {}
    for last in events:  # noqa: B007 - the last one is wanted
        pass
    response = last.get("response")
    return dict(response) if isinstance(response, dict) else {}
