"""Sockets survive slow tools: idle WebSocket connections are kept alive between turns
(server pings answered, client pings sent, a close or a dead peer noticed at once),
through `Provider` (one keepalive thread) and `AsyncProvider` (websockets' pings)."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any, Self

import pytest
from loop import TRANSPORTS, Transport, provider, wait_until

import llmkit
from llmkit.testing import ResponsesServer

WEBSOCKET = [t for t in TRANSPORTS if t == "websocket"]
KEEPALIVE_THREAD = "llmkit-ws-keepalive"
Pair = tuple[socket.socket, socket.socket]


def connections(p: Any) -> list[Any]:
    """The open connections of a provider's WebSocket pool."""
    connections: list[Any] = p._websocket.connections()
    return connections


def keepalive_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == KEEPALIVE_THREAD]


def follow_up(first: llmkit.Response) -> llmkit.Call:
    """The conversation's second turn."""
    history: list[llmkit.Message] = [
        llmkit.UserMessage("one"),
        first.message,
        llmkit.UserMessage("two"),
    ]
    return llmkit.Call(history)


def two_turns(model: llmkit.LanguageModel, idle: float) -> llmkit.Response:
    first = model.generate(llmkit.Call("one"))
    time.sleep(idle)  # a slow tool
    return model.generate(follow_up(first))


@pytest.mark.parametrize("lanes", [True, False], ids=["lanes", "no-lanes"])
@pytest.mark.parametrize("transport", WEBSOCKET)
def test_a_slow_tool_keeps_the_socket_and_its_chain(
    server: ResponsesServer, transport: Transport, lanes: bool
) -> None:
    """The server pings every 0.5 s and closes a socket whose pong is 1 s late; the
    agent idles 3 s between turns: turn 2 is still incremental on the same socket."""
    server.ws_ping_interval = 0.5
    server.ws_pong_timeout = 1.0
    with provider(server, transport, ws_lanes=lanes) as p:
        second = two_turns(p.language_model("m"), 3.0)
    assert second.text.startswith("Echo: two [user=2 assistant=1")
    assert second.metadata.input_mode == "incremental"
    assert second.metadata.connection_reused
    assert server.stats.connections_opened == 1
    assert server.stats.ping_timeouts == 0


class Relay:
    """A TCP relay on 127.0.0.1 in front of the server; `freeze` turns the connections
    open now into a black hole (bytes read and dropped both ways, nothing closed), as a
    peer that died without a FIN looks. Connections made later are relayed again."""

    def __init__(self, port: int) -> None:
        self._target = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._frozen: set[int] = set()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._threads = [threading.Thread(target=self._accept)]
        self._threads[0].start()

    def freeze(self) -> None:
        self._frozen.update(id(pair) for pair in self._pairs)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(("127.0.0.1", self._target))
            pair = (client, upstream)
            self._pairs.append(pair)
            for a, b in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(pair, a, b))
                self._threads.append(thread)
                thread.start()

    def _pump(
        self, pair: tuple[socket.socket, socket.socket], a: socket.socket, b: socket.socket
    ) -> None:
        a.settimeout(0.1)
        while not self._stop.is_set():
            try:
                data = a.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    b.shutdown(socket.SHUT_WR)
                return
            if id(pair) not in self._frozen:
                with contextlib.suppress(OSError):
                    b.sendall(data)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()
        for pair in self._pairs:
            for end in pair:
                end.close()


@pytest.mark.parametrize("transport", WEBSOCKET)
def test_a_dead_peer_is_found_by_client_pings_and_the_next_turn_reconnects(
    server: ResponsesServer, transport: Transport
) -> None:
    port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
    with Relay(port) as relay:
        base_url = f"http://127.0.0.1:{relay.port}/v1"
        with provider(server, transport, base_url=base_url, ws_keepalive=0.3) as p:
            model = p.language_model("m")
            first = model.generate(llmkit.Call("one"))
            (connection,) = connections(p)
            relay.freeze()  # the peer is gone, the socket is not closed
            wait_until(lambda: not connection.connected, 5.0)  # a ping and no pong
            second = model.generate(follow_up(first))
    assert second.text.startswith("Echo: two [user=2 assistant=1")
    assert second.metadata.input_mode == "full"
    assert not second.metadata.connection_reused
    assert server.stats.connections_opened == 2


@pytest.mark.parametrize("transport", WEBSOCKET)
def test_an_idle_close_is_noticed_when_it_happens_not_by_a_failed_send(
    server: ResponsesServer, transport: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    with provider(server, transport) as p:
        model = p.language_model("m")
        first = model.generate(llmkit.Call("one"))
        (connection,) = connections(p)
        assert server.faults.close_idle() == 1
        wait_until(lambda: not connection.connected, 3.0)  # no call was made meanwhile
        with caplog.at_level(logging.DEBUG, logger="llmkit"):
            second = model.generate(follow_up(first))
    assert second.text.startswith("Echo: two [user=2 assistant=1")
    assert not second.metadata.connection_reused
    assert "resending" not in caplog.text  # nothing was sent into the closed socket
    assert server.stats.connections_opened == 2


def test_the_keepalive_thread_is_one_per_provider_and_stops_on_close(
    server: ResponsesServer,
) -> None:
    before = len(keepalive_threads())
    with llmkit.Provider(
        base_url=server.base_url,
        use_responses_api=True,
        websocket=True,
        ws_max_connections=3,
        ws_lanes=False,
    ) as p:
        model = p.language_model("m")
        threads = [threading.Thread(target=model.generate, args=(f"hi {i}",)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(connections(p)) == 3
        assert len(keepalive_threads()) == before + 1  # one for three sockets
    assert len(keepalive_threads()) == before


def test_the_keepalive_thread_ends_when_its_sockets_are_gone(server: ResponsesServer) -> None:
    before = len(keepalive_threads())
    p = llmkit.Provider(base_url=server.base_url, use_responses_api=True, websocket=True)
    try:
        p.language_model("m").generate("hi")
        assert len(keepalive_threads()) == before + 1
        assert server.faults.close_idle() == 1
        wait_until(lambda: len(keepalive_threads()) == before, 3.0)
    finally:
        p.close()


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf")])
def test_ws_keepalive_is_validated(value: float) -> None:
    with pytest.raises(llmkit.UsageError, match="ws_keepalive"):
        llmkit.Provider(use_responses_api=True, websocket=True, ws_keepalive=value)
    with pytest.raises(llmkit.UsageError, match="ws_keepalive"):
        llmkit.AsyncProvider(use_responses_api=True, websocket=True, ws_keepalive=value)
