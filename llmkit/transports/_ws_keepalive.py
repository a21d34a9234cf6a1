"""One thread that keeps a transport's idle websocket-client sockets alive.

websocket-client answers pings only inside a read, and nobody reads a socket while it
sits idle between turns (a tool running), so a server or proxy that pings closes it and
the next turn loses its chain (the measured problem of issue 15). This thread watches
every idle socket of one transport at once (`select`, not a thread per socket): when
one is readable it takes the read role briefly (`Reader.service`: pings answered, a
close or a late error frame noticed at once); every ``interval`` seconds of idleness it
sends a client ping, and closes a socket whose peer shows no sign of life within the
pong timeout, so a dead peer is found before a turn is sent into it. When and what to
do is `_ws_routing.Heartbeat`'s decision.

The thread starts with the first socket to watch and ends when none is left or the
transport closes (`close` joins it).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from typing import Protocol

__all__ = ["Keepalive", "Watched"]

logger = logging.getLogger("llmkit")


class Watched(Protocol):
    """A connection as the keepalive sees it."""

    @property
    def idle(self) -> bool:
        """No receiver, nothing pending, still open."""
        ...

    def selectable(self) -> socket.socket | None:
        """The socket to wait on (None: closed)."""
        ...

    def wait(self, now: float) -> float | None:
        """Seconds until the connection needs tending anyway (None: only when readable)."""
        ...

    def tend(self, now: float, readable: bool) -> None:
        """Service it: read what arrived, ping, or close a dead one."""
        ...


class Keepalive:
    """The idle sockets of one transport and the thread that tends them."""

    def __init__(self, name: str = "llmkit-ws-keepalive") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._watched: set[Watched] = set()
        self._thread: threading.Thread | None = None
        self._wake_pair: tuple[socket.socket, socket.socket] | None = None
        self._closed = False

    @property
    def running(self) -> bool:
        """Whether the thread is alive (for tests)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def watch(self, connection: Watched) -> None:
        """Tend ``connection`` from now on (until `forget` or `close`)."""
        with self._lock:
            if self._closed:
                return
            self._watched.add(connection)
            if self._wake_pair is None:
                self._wake_pair = socket.socketpair()
                for end in self._wake_pair:
                    end.setblocking(False)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        self.wake()

    def forget(self, connection: Watched) -> None:
        """Stop tending ``connection`` (it closed)."""
        with self._lock:
            self._watched.discard(connection)
        self.wake()

    def wake(self) -> None:
        """Make the thread look again (a socket went idle, or one was added)."""
        pair = self._wake_pair
        if pair is not None:
            with contextlib.suppress(OSError):
                pair[1].send(b"\0")

    def close(self) -> None:
        """Stop the thread and wait for it; nothing is tended afterwards."""
        with self._lock:
            self._closed = True
            self._watched.clear()
            thread = self._thread
        self.wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._lock:
            pair, self._wake_pair = self._wake_pair, None
        if pair is not None:
            for end in pair:
                end.close()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed or not self._watched:
                    self._thread = None
                    pair, self._wake_pair = self._wake_pair, None
                    if pair is not None:
                        for end in pair:
                            end.close()
                    return
                watched = list(self._watched)
                pair = self._wake_pair
            assert pair is not None
            try:
                self._round(watched, pair[0])
            except Exception:  # pragma: no cover - never let the thread die silently
                logger.exception("WebSocket keepalive round failed")
                time.sleep(0.1)

    def _round(self, watched: list[Watched], wake: socket.socket) -> None:
        now = time.monotonic()
        sockets: dict[socket.socket, Watched] = {}
        waits: list[float] = []
        for connection in watched:
            if not connection.idle:
                continue
            sock = connection.selectable()
            if sock is None:
                self.forget(connection)
                continue
            sockets[sock] = connection
            wait = connection.wait(now)
            if wait is not None:
                waits.append(wait)
        timeout = min(waits) if waits else None
        try:
            readable, _, _ = select.select([wake, *sockets], [], [], timeout)
        except (OSError, ValueError):  # a socket closed meanwhile: look again
            readable = []
        if wake in readable:
            with contextlib.suppress(OSError):
                while wake.recv(4096):
                    pass
        now = time.monotonic()
        for sock, connection in sockets.items():
            connection.tend(now, sock in readable)
