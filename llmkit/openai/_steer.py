"""Steering one WebSocket call (``response.steer``, PROTOCOL.md §2.3, §6.3): the decisions.

`SteerControl` is one call's steering, shared by the caller (``Stream.steer``, from any
thread or task) and the call's `ResponsesProtocol` (the thread or task that reads the
lane). No socket here: a shell binds the connection's send (`bind`, `bind_async`), and
everything else is bookkeeping under one lock:

* a steer goes out only once the response it names has started (``response.created``);
  before that, and between a steered response's end and its successor's start, it is
  queued and sent by the protocol when the next ``response.created`` arrives;
* each sent steer waits for its answer: ``accepted`` (then it waits for the successor's
  ``response.created``, the commit point, or ``pending``), or ``failed``. While any is
  unanswered or uncommitted, the response's terminal event does not end the call
  (`ended`): the protocol follows the lane to the successor or to the last answer;
* what never reached the conversation (refused, never sent, lost with the socket) is
  kept (`unapplied`), so nothing the user typed is lost;
* an abandoned stream's lane drains with the same rules (`drain_end`): past a terminal
  event while a steer may still start a successor.

``response.steer`` frames carry no ``stream_id`` (the server uses the target's lane).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmkit.exceptions import SteerError, TransportError
from llmkit.messages import UserMessage
from llmkit.openai._encode import render_output
from llmkit.transports.base import json_text

__all__ = ["SteerControl"]

JSON = dict[str, Any]
NOT_SUPPORTED = "steering_not_supported"
ALREADY_COMPLETED = "response_already_completed"
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


@dataclass(slots=True)
class _Steer:
    """One ``steer()`` call: its messages, their items, and the server's id once known."""

    messages: tuple[UserMessage, ...]
    items: list[JSON]
    id: str | None = None


def _items(messages: Sequence[UserMessage]) -> list[JSON]:
    """The messages as input items, exactly as a later request's history renders them
    (so the chain recorded after steering compares equal)."""
    items: list[JSON] = []
    for message in messages:
        items += render_output(message, store=False)
    return items


class SteerControl:
    """One call's steering (see the module docstring); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: list[_Steer] = []
        self._sent: list[_Steer] = []
        self._accepted: list[_Steer] = []
        self._failed: list[UserMessage] = []
        self._lost: list[UserMessage] = []
        self._target: str | None = None
        self._between = False
        self._closed = False
        self._finished = False
        self._refused: SteerError | None = None
        self._drain: _Drain | None = None
        self._send: Callable[[str], Any] | None = None
        self._spawn: Callable[[Awaitable[Any]], None] | None = None
        self.parked = False
        """A steer waits on the server for this response's tool results (``pending``):
        only a create on the same lane gets it (`LanePool` does not fork from it)."""

    # -- the shells ----------------------------------------------------------------------

    def bind(self, send: Callable[[str], Any]) -> None:
        """Steers go out with ``send`` (a sync connection's ``send_text``)."""
        with self._lock:
            self._send, self._spawn = send, None

    def bind_async(
        self,
        send: Callable[[str], Awaitable[Any]],
        spawn: Callable[[Awaitable[Any]], None],
    ) -> None:
        """Steers go out with ``send`` (awaited); ``spawn`` runs the sends the protocol
        starts (queued steers, at ``response.created``) in the background."""
        with self._lock:
            self._send, self._spawn = send, spawn

    # -- the caller ----------------------------------------------------------------------

    def steer(self, messages: tuple[UserMessage, ...]) -> None:
        """``Stream.steer``: send now, or queue until the response has started.

        A send that fails leaves the steer unanswered: the stream reports the broken
        connection, and the input is `unapplied`.
        """
        frame, send = self._submit(messages)
        if frame is not None and send is not None:
            with contextlib.suppress(TransportError):
                send(frame)

    async def asteer(self, messages: tuple[UserMessage, ...]) -> None:
        """``AsyncStream.steer``: as `steer`, the send awaited."""
        frame, send = self._submit(messages)
        if frame is not None and send is not None:
            with contextlib.suppress(TransportError):
                await send(frame)

    def _submit(self, messages: tuple[UserMessage, ...]) -> tuple[str | None, Any]:
        with self._lock:
            if self._refused is not None:
                raise SteerError(self._refused.message, input=messages, code=self._refused.code)
            if self._closed:
                raise SteerError(
                    "the response already ended: steer() applies to a running response; "
                    "send the input with the next request",
                    input=messages,
                    code=ALREADY_COMPLETED,
                )
            steer = _Steer(messages, _items(messages))
            if self._target is None or self._send is None:
                self._queued.append(steer)
                return None, None
            self._sent.append(steer)
            return self._frame(steer), self._send

    def _frame(self, steer: _Steer) -> str:
        assert self._target is not None
        event = {"type": "response.steer", "previous_response_id": self._target}
        return json_text({**event, "input": steer.items})

    @property
    def unapplied(self) -> tuple[UserMessage, ...]:
        """Input that is not in the conversation: refused, or (once the call ended)
        never sent, never answered, or never committed."""
        with self._lock:
            return (*self._failed, *self._lost)

    # -- the protocol ----------------------------------------------------------------------

    def started(self, response_id: str | None) -> tuple[UserMessage, ...]:
        """``response.created``: steers now name ``response_id``, queued ones go out.
        After a steered response's end it is the successor: returns the input it
        committed (every accepted steer)."""
        with self._lock:
            committed: list[UserMessage] = []
            if self._between:
                for steer in self._accepted:
                    committed += steer.messages
                self._accepted.clear()
                self._between = False
            self._target = response_id
            frames: list[str] = []
            send, spawn = self._send, self._spawn
            if send is not None and response_id is not None and not self._closed:
                for steer in self._queued:
                    self._sent.append(steer)
                    frames.append(self._frame(steer))
                self._queued.clear()
        for frame in frames:
            assert send is not None
            if spawn is not None:
                spawn(send(frame))
            else:
                with contextlib.suppress(TransportError):
                    send(frame)
        return tuple(committed)

    def ended(self) -> bool:
        """The response reached ``completed``/``incomplete``: True when a steer may
        still start a successor or be answered (the call goes on), else the call ends
        here and later steers are refused."""
        with self._lock:
            if self._sent or self._accepted:
                self._between = True
                self._target = None
                return True
            self._closed = True
            return False

    @property
    def unanswered(self) -> bool:
        """Whether a sent steer has no answer yet."""
        with self._lock:
            return bool(self._sent)

    @property
    def outstanding(self) -> bool:
        """Whether a steer is unanswered, or accepted and not yet committed."""
        with self._lock:
            return bool(self._sent or self._accepted)

    def settle(self) -> bool:
        """After an answer between responses: True when nothing is left to wait for
        (the call ends; later steers are refused)."""
        with self._lock:
            if self._sent or self._accepted:
                return False
            self._closed = True
            return True

    def accepted(self, steer: Mapping[str, Any]) -> None:
        """``response.steer.accepted``: the oldest sent steer is now the server's."""
        with self._lock:
            if self._sent:
                taken = self._sent.pop(0)
                taken.id = _steer_id(steer)
                self._accepted.append(taken)

    def failed(
        self, steer: Mapping[str, Any], error: Mapping[str, Any], *, refuse: bool = False
    ) -> SteerError:
        """``response.steer.failed``: the steer it names (by id, else the oldest
        unanswered one) is dropped; its input comes back on the error. ``refuse``: the
        server does not know steering at all (later steers are refused at once)."""
        code = error.get("code") if isinstance(error.get("code"), str) else None
        message = error.get("message")
        text = message if isinstance(message, str) and message else "the steer was not applied"
        with self._lock:
            taken = self._take(_steer_id(steer))
            messages = taken.messages if taken is not None else ()
            self._failed += messages
            refusal = SteerError(text, input=messages, code=code)
            if code == NOT_SUPPORTED or refuse:
                self._refused = refusal
            return refusal

    def pending(self, steer: Mapping[str, Any]) -> tuple[UserMessage, ...]:
        """``response.steer.pending``: the steer waits on the server for the tool
        results, which it will precede; returns its input."""
        with self._lock:
            taken = self._take(_steer_id(steer))
            self.parked = True
            return taken.messages if taken is not None else ()

    def _take(self, steer_id: str | None) -> _Steer | None:
        for steers in (self._accepted, self._sent):
            for steer in steers:
                if steer_id is not None and steer.id == steer_id:
                    steers.remove(steer)
                    return steer
        if self._sent:
            return self._sent.pop(0)
        if self._accepted:
            return self._accepted.pop(0)
        return None

    def finish(self) -> None:
        """The call is over (also on an error or an abandoned stream): what is not in
        the conversation by now is `unapplied`; later steers are refused."""
        with self._lock:
            if self._finished:
                return
            self._finished = self._closed = True
            for steers in (self._queued, self._sent, self._accepted):
                for steer in steers:
                    self._lost += steer.messages
            self._queued.clear()

    # -- an abandoned lane -------------------------------------------------------------------

    def drain_end(self, text: str) -> bool:
        """Whether ``text`` is the last frame of an abandoned steered call's lane: a
        terminal event (or the last answer after one) with no steer left that could
        start a successor. Read only while draining, never per streamed event; it
        counts on its own, so what the call reports (`unapplied`) stays as it ended."""
        try:
            event = json.loads(text)
        except ValueError:
            return False
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "error":
            return True
        with self._lock:
            if self._drain is None:
                self._drain = _Drain(len(self._sent), len(self._accepted), self._between)
            return self._drain.ends(kind)


@dataclass(slots=True)
class _Drain:
    """The steers an abandoned lane may still answer or commit (counts only)."""

    sent: int
    accepted: int
    between: bool

    def ends(self, kind: Any) -> bool:
        if kind == "response.created":
            self.accepted, self.between = 0, False
        elif kind == "response.steer.accepted" and self.sent:
            self.sent -= 1
            self.accepted += 1
        elif kind in ("response.steer.failed", "response.steer.pending"):
            if self.accepted:
                self.accepted -= 1
            elif self.sent:
                self.sent -= 1
            return self.between and not (self.sent or self.accepted)
        elif kind in _TERMINAL:
            if kind == "response.failed" or not (self.sent or self.accepted):
                return True
            self.between = True
        return False


def _steer_id(steer: Mapping[str, Any]) -> str | None:
    value = steer.get("id")
    return value if isinstance(value, str) else None
