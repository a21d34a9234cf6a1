"""The reader of a websocket-client connection: leader/follower over one socket.

A socket is read by one party at a time, the leader: whichever receiver waits for a
frame takes the read role if nobody holds it, reads, keeps its own frames, queues the
others' frames for them (`_ws_routing.Router` says whose), and hands the role over when
its wait ends. A receiver alone on its socket therefore reads its frames itself, with
no thread or queue hop per frame: the hot path is two non-blocking lock operations
around the read. Between turns the keepalive thread (`_ws_keepalive`) takes the role
briefly to answer pings and notice a close. Sending is serialized by websocket-client's
own lock (``enable_multithread``), which also covers the pongs a reader sends.

A socket-level failure (a close, a drop, an oversized frame) fails every receiver, each
with its own copy of the error; a wait that runs out (`Timeout`) is the waiter's alone,
and so is a refused frame (binary, not UTF-8) on a socket with one receiver: the
socket is left open, as before there were lanes.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

from llmkit._deadline import Deadline
from llmkit.exceptions import LLMKitError, Timeout
from llmkit.transports import _ws_common as common
from llmkit.transports._ws_routing import BROADCAST, STASH, Heartbeat, Lane, Router
from llmkit.transports.base import LaneEnd

__all__ = ["FrameSocket", "Reader", "Receiver", "ReceiverPayloads"]


class FrameSocket(Protocol):
    """What the reader needs of the connection: bounded reads of whole messages."""

    @property
    def secrets(self) -> tuple[str, ...]: ...

    def bound(self, timeout: float | None) -> None:
        """Start a wait of at most ``timeout`` seconds for the reads that follow."""
        ...

    def read_text(self) -> str:
        """The next text message (pings answered meanwhile). Raises `Timeout` when the
        wait ran out, else an `LLMKitError` after closing the socket."""
        ...

    def read_any(self) -> str | None:
        """The next frame: a text message, or None for a ping or pong."""
        ...

    def readable(self) -> bool:
        """Whether a read would find bytes now (never blocks)."""
        ...

    @property
    def open(self) -> bool:
        """Whether the socket is still open (a frame that was refused may leave it so)."""
        ...

    def shut(self) -> None:
        """Close the socket at once."""
        ...


def fresh(error: LLMKitError) -> LLMKitError:
    """A copy of ``error`` for one more receiver: each attaches its own ``partial``."""
    twin = copy.copy(error)
    twin.__cause__ = error.__cause__
    return twin


class Reader:
    """Who reads a socket, and the receivers its frames go to."""

    def __init__(self, sock: FrameSocket, *, ping_interval: float | None = None) -> None:
        self._sock = sock
        self._role = threading.Lock()  # the read role; never held while waiting on _cond
        self._cond = threading.Condition()
        self._waiting = 0  # followers waiting on _cond
        self.router: Router[Receiver] = Router()
        self.failure: LLMKitError | None = None
        self.heartbeat = Heartbeat(ping_interval)
        self.heartbeat.alive(time.monotonic())
        self.on_idle: Callable[[], None] | None = None
        """Called when the last receiver leaves (the keepalive watches idle sockets)."""

    # ----------------------------------------------------------------- receivers

    def receiver(self, lane: Lane = None, *, replace: bool = False) -> Receiver:
        """Register a receiver for ``lane`` (before sending its request); ``replace``
        drops one still registered there (one response at a time: it is over).

        Raises:
            ValueError: the lane already has a receiver or is being drained.
        """
        receiver = Receiver(self, lane)
        with self._cond:
            stale = self.router.receivers.get(lane)
            if replace and stale is not None:
                self.router.remove(lane, stale)
            receiver.queue.extend(self.router.add(lane, receiver))
        return receiver

    def _leave(
        self,
        receiver: Receiver,
        is_end: Callable[[str], bool] | None,
        drained: Callable[[], None] | None = None,
    ) -> None:
        now = None  # called here: the response's last frame is queued already
        with self._cond:
            if is_end is not None and any(is_end(text) for text in receiver.queue):
                is_end, now = None, drained
            if is_end is None:
                self.router.remove(receiver.lane, receiver)
            else:
                self.router.abandon(receiver.lane, receiver, is_end, drained)
            idle = not self.router.receivers
        if now is not None:
            now()
        if idle:
            self.heartbeat.alive(time.monotonic())
            if self.on_idle is not None:
                self.on_idle()

    @property
    def idle(self) -> bool:
        """No receiver, nothing unclaimed, not failed: nobody reads it (an abandoned
        lane may still be draining; whoever tends the socket reads its frames away)."""
        router = self.router
        return not router.receivers and not router.backlog and self.failure is None

    # ----------------------------------------------------------------- reading

    def next(self, receiver: Receiver, timeout: float | None) -> str:
        """The next frame of ``receiver``'s lane, within ``timeout`` seconds."""
        if receiver.queue:
            return receiver.queue.popleft()
        if self._role.acquire(False):
            return self._lead(receiver, timeout)
        return self._follow(receiver, timeout)

    def _lead(self, receiver: Receiver, timeout: float | None) -> str:
        """Read as the leader (the role is held) until ``receiver``'s next frame."""
        sock = self._sock
        try:
            if receiver.queue:  # queued between the check and taking the role
                return receiver.queue.popleft()
            if self.failure is not None:
                raise fresh(self.failure)
            sock.bound(timeout)
            route = self.router.route
            while True:
                text = sock.read_text()
                target = route(text)
                if target is receiver:
                    return text
                self._dispatch(target, text)
                if receiver.queue:  # a frame for everyone (then the socket failed)
                    return receiver.queue.popleft()
        except Timeout:
            raise
        except LLMKitError as exc:
            if not (sock.open and self.router.only is receiver):
                self._fail(exc)  # else a frame refused (not text) on its own socket
            raise
        finally:
            self._role.release()
            if self._waiting:
                with self._cond:
                    self._cond.notify_all()

    def _follow(self, receiver: Receiver, timeout: float | None) -> str:
        """Wait for a frame queued by the leader, or for the role."""
        until = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._waiting += 1
            try:
                while True:
                    if receiver.queue:
                        return receiver.queue.popleft()
                    if self.failure is not None:
                        raise fresh(self.failure)
                    if self._role.acquire(False):
                        break
                    left = None if until is None else until - time.monotonic()
                    if left is not None and left <= 0:
                        raise Timeout(f"no WebSocket event for {timeout} seconds")
                    self._cond.wait(left)
            finally:
                self._waiting -= 1
        return self._lead(receiver, None if until is None else until - time.monotonic())

    def _dispatch(self, target: Receiver | str, text: str) -> None:
        """Put a frame the leader read where it belongs (not the leader's own)."""
        with self._cond:
            if isinstance(target, Receiver):
                target.queue.append(text)
            elif target == BROADCAST:
                for other in self.router:
                    other.queue.append(text)
                error = common.broken()  # after the frame: a connection-level error
                self.failure = error
                self._sock.shut()
            elif target == STASH and not self.router.stash(text):
                self.failure = common.broken()
                self._sock.shut()
            self._cond.notify_all()

    def _fail(self, error: LLMKitError) -> None:
        """The socket failed: every receiver, present and future, gets ``error``."""
        with self._cond:
            if self.failure is None:
                self.failure = error
            self._cond.notify_all()
        self._sock.shut()

    def fail(self, error: LLMKitError) -> None:
        """Fail the socket from outside (the keepalive found the peer gone)."""
        self._fail(error)

    # ----------------------------------------------------------------- idle

    def service(self, *, wait: float = 0.0) -> bool:
        """Read what arrived while no receiver reads: pings are answered, a close or a
        broken socket fails it, a data frame goes to its lane (or is kept for a
        receiver to come). Waits up to ``wait`` seconds for the read role; returns
        whether it got it. Reads only while bytes are there and nobody waits."""
        got = self._role.acquire(timeout=wait) if wait else self._role.acquire(False)
        if not got:
            return False
        sock = self._sock
        try:
            while self.failure is None and not self._waiting and sock.readable():
                sock.bound(_SERVICE_READ)
                text = sock.read_any()
                self.heartbeat.alive(time.monotonic())
                if text is not None:
                    with self._cond:
                        target = self.router.route(text)
                    self._dispatch(target, text)
        except Timeout:
            pass  # a frame only partly there: the next read goes on with it
        except LLMKitError as exc:
            self._fail(exc)
        finally:
            self._role.release()
            if self._waiting:
                with self._cond:
                    self._cond.notify_all()
        return True


_SERVICE_READ = 0.5
"""Longest wait for the rest of a frame that began to arrive while idle."""


class Receiver:
    """One response's frames on a connection: `next` waits for the next one."""

    __slots__ = ("lane", "queue", "reader")

    def __init__(self, reader: Reader, lane: Lane) -> None:
        self.reader = reader
        self.lane = lane
        self.queue: deque[str] = deque()

    def next(self, timeout: float | None) -> str:
        """The lane's next frame within ``timeout`` seconds (None: no limit).

        Raises:
            Timeout: none in time (the socket stays open for the other receivers).
            LLMKitError: the socket failed (`ConnectionClosed`, `ProtocolError`).
        """
        return self.reader.next(self, timeout)

    def close(self) -> None:
        """The response is over (or failed with the socket): the lane is free."""
        self.reader._leave(self, None)

    def abandon(
        self, is_end: Callable[[str], bool], drained: Callable[[], None] | None = None
    ) -> None:
        """Give up on the response: its frames are discarded until ``is_end`` says
        one is its last; the lane is free after that one, and ``drained`` is called."""
        self.reader._leave(self, is_end, drained)

    def payloads(
        self,
        bytes_sent: int,
        deadline: Deadline | None,
        idle: float | None,
        end: LaneEnd | None = None,
    ) -> ReceiverPayloads:
        """The frames as a `FramePayloads` stream, each waited for at most ``idle``
        seconds, all within ``deadline``; ``end``: closing it early drains the lane."""
        return ReceiverPayloads(
            self, bytes_sent=bytes_sent, idle_timeout=idle, deadline=deadline, end=end
        )


class ReceiverPayloads(common.FrameStream):
    """A receiver's frames as a payload stream; closing it frees the lane."""

    __slots__ = ("_end", "_receiver")

    def __init__(
        self,
        receiver: Receiver,
        *,
        bytes_sent: int,
        idle_timeout: float | None,
        deadline: Deadline | None,
        end: LaneEnd | None = None,
    ) -> None:
        super().__init__(
            receiver.reader._sock,
            bytes_sent=bytes_sent,
            idle_timeout=idle_timeout,
            deadline=deadline,
        )
        self._receiver = receiver
        self._end = end

    def __iter__(self) -> Iterator[str]:
        receiver, idle, deadline = self._receiver, self._idle_timeout, self._deadline
        reader = receiver.reader
        answered = None if self._end is None else self._end.answered
        if answered is not None:  # the first frame is looked at once, off the hot loop
            payload = self._wait(idle if deadline is None else deadline.cap(idle))
            self.received += 1
            answered(payload)
            yield payload
        if deadline is None:
            while True:
                payload = reader.next(receiver, idle)
                self.received += 1
                yield payload
        while True:
            try:
                payload = reader.next(receiver, deadline.cap(idle))
            except Timeout as exc:
                if deadline.expired():
                    raise deadline.error() from exc
                raise
            self.received += 1
            yield payload

    def _wait(self, timeout: float | None) -> str:
        try:
            return self._receiver.next(timeout)
        except Timeout as exc:
            if self._deadline is not None and self._deadline.expired():
                raise self._deadline.error() from exc
            raise

    def close(self) -> None:
        """Free the lane (the connection stays; its lease decides about it): at once
        after the response's end, else once its last frame arrived (`LaneEnd`)."""
        end = self._end
        if end is None or end.ended():
            self._receiver.close()
        else:
            self._receiver.abandon(end.is_end, end.drained)
