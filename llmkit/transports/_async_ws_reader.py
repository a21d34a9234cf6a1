"""The reader of a websockets connection: leader/follower on one event loop.

The asyncio twin of `_ws_reader`. websockets reads the socket in its own background
task (pings answered, a close noticed) and allows one ``recv`` at a time; this reader
decides who calls it. The receiver that waits takes the read role if nobody holds it,
keeps its own frames, queues the others' frames (`_ws_routing.Router` says whose) and
wakes them, and gives the role back when its wait ends. A receiver alone on its socket
reads its frames itself: one flag set and cleared per frame, no queue hop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from llmkit._deadline import Deadline
from llmkit.exceptions import LLMKitError, Timeout
from llmkit.transports import _ws_common as common
from llmkit.transports._ws_reader import fresh
from llmkit.transports._ws_routing import BROADCAST, STASH, Lane, Router
from llmkit.transports.base import LaneEnd

__all__ = ["AsyncFrameSocket", "AsyncReader", "AsyncReceiver", "AsyncReceiverPayloads"]


class AsyncFrameSocket(Protocol):
    """What the reader needs of the connection."""

    @property
    def secrets(self) -> tuple[str, ...]: ...

    def recv_text(self, timeout: float | None) -> Awaitable[str]:
        """The next text frame within ``timeout``; `Timeout`, or an `LLMKitError`."""
        ...

    @property
    def open(self) -> bool: ...

    def shut(self) -> None: ...


class AsyncReader:
    """Who reads a socket, and the receivers its frames go to."""

    def __init__(self, sock: AsyncFrameSocket) -> None:
        self._sock = sock
        self.reading = False  # the read role
        self._waiters: set[AsyncReceiver] = set()
        self.router: Router[AsyncReceiver] = Router()
        self.failure: LLMKitError | None = None
        self._drainer: asyncio.Task[None] | None = None

    def receiver(self, lane: Lane = None, *, replace: bool = False) -> AsyncReceiver:
        """As `Reader.receiver`."""
        receiver = AsyncReceiver(self, lane)
        stale = self.router.receivers.get(lane)
        if replace and stale is not None:
            self.router.remove(lane, stale)
        receiver.queue.extend(self.router.add(lane, receiver))
        return receiver

    @property
    def idle(self) -> bool:
        """No receiver, nothing unclaimed, not failed (as `Reader.idle`)."""
        router = self.router
        return not router.receivers and not router.backlog and self.failure is None

    async def next(self, receiver: AsyncReceiver, timeout: float | None) -> str:
        """The next frame of ``receiver``'s lane, within ``timeout`` seconds."""
        if receiver.queue:
            return receiver.queue.popleft()
        if not self.reading:
            return await self._lead(receiver, timeout)
        return await self._follow(receiver, timeout)

    async def _lead(self, receiver: AsyncReceiver, timeout: float | None) -> str:
        if self.failure is not None:
            raise fresh(self.failure)
        self.reading = True
        sock, route = self._sock, self.router.route
        until = None
        try:
            while True:
                text = await sock.recv_text(timeout)
                target = route(text)
                if target is receiver:
                    return text
                self._dispatch(target, text)
                if receiver.queue:  # a frame for everyone (then the socket failed)
                    return receiver.queue.popleft()
                if timeout is not None:  # the next read gets what is left of the wait
                    until = until or time.monotonic() + timeout
                    timeout = max(0.0, until - time.monotonic())
        except Timeout:
            raise
        except LLMKitError as exc:
            if not (sock.open and self.router.only is receiver):
                self.fail(exc)  # else a frame refused (not text) on its own socket
            raise
        finally:
            self.reading = False
            self._wake_all()

    async def _follow(self, receiver: AsyncReceiver, timeout: float | None) -> str:
        until = None if timeout is None else time.monotonic() + timeout
        event = receiver.event
        while True:
            if receiver.queue:
                return receiver.queue.popleft()
            if self.failure is not None:
                raise fresh(self.failure)
            left = None if until is None else max(0.0, until - time.monotonic())
            if not self.reading:
                return await self._lead(receiver, left)
            event.clear()
            self._waiters.add(receiver)
            try:
                async with asyncio.timeout(left):
                    await event.wait()
            except TimeoutError:
                raise Timeout(f"no WebSocket event for {timeout} seconds") from None
            finally:
                self._waiters.discard(receiver)

    def _dispatch(self, target: AsyncReceiver | str, text: str) -> None:
        if isinstance(target, AsyncReceiver):
            target.queue.append(text)
            target.event.set()
        elif target == BROADCAST:
            for other in self.router:
                other.queue.append(text)
            self.fail(common.broken())
        elif target == STASH and not self.router.stash(text):
            self.fail(common.broken())

    def release(self) -> None:
        """Give the read role back (taken by setting `reading`) and wake the waiters."""
        self.reading = False
        self._wake_all()

    def _wake_all(self) -> None:
        for waiter in self._waiters:
            waiter.event.set()

    def fail(self, error: LLMKitError) -> None:
        """The socket failed: every receiver, present and future, gets ``error``."""
        if self.failure is None:
            self.failure = error
        self._wake_all()
        self._sock.shut()

    def leave(
        self,
        receiver: AsyncReceiver,
        is_end: Callable[[str], bool] | None,
        drained: Callable[[], None] | None = None,
    ) -> None:
        if is_end is not None and any(is_end(text) for text in receiver.queue):
            self.router.remove(receiver.lane, receiver)  # its last frame is here already
            if drained is not None:
                drained()
        elif is_end is None:
            self.router.remove(receiver.lane, receiver)
        else:
            self.router.abandon(receiver.lane, receiver, is_end, drained)
            if not self.router.receivers and not self.reading:
                self.reading = True  # the drain's from now: a receiver that comes follows
                self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        """Read an abandoned lane's frames away while no receiver reads the socket
        (websockets buffers only a few frames before it stops reading the socket,
        pings included); a receiver that comes meanwhile gets its frames routed.
        The read role was taken for it when it was made."""
        try:
            while self.router.abandoned and self.failure is None:
                text = await self._sock.recv_text(_DRAIN_WAIT)
                self._dispatch(self.router.route(text), text)
        except Timeout:
            pass  # the server never ended it: the lane stays unusable, the socket open
        except LLMKitError as exc:
            self.fail(exc)
        finally:
            self.reading = False
            self._drainer = None
            self._wake_all()


_DRAIN_WAIT = 60.0
"""Longest wait for the next frame of an abandoned lane while nobody else reads."""


class AsyncReceiver:
    """One response's frames on a connection: `next` awaits the next one."""

    __slots__ = ("_event", "lane", "queue", "reader")

    def __init__(self, reader: AsyncReader, lane: Lane) -> None:
        self.reader = reader
        self.lane = lane
        self.queue: deque[str] = deque()
        self._event: asyncio.Event | None = None

    @property
    def event(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    async def next(self, timeout: float | None) -> str:
        """The lane's next frame within ``timeout`` seconds; as `Receiver.next`."""
        return await self.reader.next(self, timeout)

    def close(self) -> None:
        """The response is over (or failed with the socket): the lane is free."""
        self.reader.leave(self, None)

    def abandon(
        self, is_end: Callable[[str], bool], drained: Callable[[], None] | None = None
    ) -> None:
        """As `Receiver.abandon`."""
        self.reader.leave(self, is_end, drained)

    def payloads(
        self,
        bytes_sent: int,
        deadline: Deadline | None,
        idle: float | None,
        end: LaneEnd | None = None,
    ) -> AsyncReceiverPayloads:
        """The frames as an `AsyncFramePayloads` stream (as `Receiver.payloads`)."""
        return AsyncReceiverPayloads(
            self, bytes_sent=bytes_sent, idle_timeout=idle, deadline=deadline, end=end
        )


class AsyncReceiverPayloads(common.FrameStream):
    """A receiver's frames as an async payload stream; closing it frees the lane."""

    __slots__ = ("_end", "_receiver")

    def __init__(
        self,
        receiver: AsyncReceiver,
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

    def __aiter__(self) -> AsyncReceiverPayloads:
        return self

    async def __anext__(self) -> str:
        deadline, receiver = self._deadline, self._receiver
        if deadline is None:
            payload = await receiver.reader.next(receiver, self._idle_timeout)
        else:
            try:
                payload = await receiver.reader.next(receiver, deadline.cap(self._idle_timeout))
            except Timeout as exc:
                if deadline.expired():
                    raise deadline.error() from exc
                raise
        self.received += 1
        if self.received == 1 and self._end is not None and self._end.answered is not None:
            self._end.answered(payload)
        return payload

    async def aclose(self) -> None:
        """Free the lane, at once or once drained (as `ReceiverPayloads.close`)."""
        end = self._end
        if end is None or end.ended():
            self._receiver.close()
        else:
            self._receiver.abandon(end.is_end, end.drained)
