"""A closed provider refuses every call, on every path, and reopens nothing.

Models obtained before the close refuse too, a stream that was open when the provider
closed ends with a typed error, and a connect that completes after the close is closed
again rather than kept.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest
from loop import API_KEY, TRANSPORTS, Transport, async_provider, provider
from portal import PortalProvider
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request

import llmkit
from llmkit.testing import ResponsesServer

CLOSED = "the provider is closed"


def _traffic(server: ResponsesServer) -> tuple[int, int]:
    """WebSocket connections opened and requests received (over either transport)."""
    return server.stats.connections_opened, len(server.stats.requests)


def _close(p: llmkit.Provider | PortalProvider) -> None:
    """Close the provider only: a `PortalProvider` keeps its loop for further calls."""
    if isinstance(p, PortalProvider):
        p._portal.call(p.provider.aclose())
    else:
        p.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_closed_provider_refuses_every_call_and_reopens_nothing(
    server: ResponsesServer, transport: Transport
) -> None:
    p = provider(server, transport)
    try:
        model = p.language_model("scripted")
        model.generate(llmkit.Call("before"))  # a connection to reuse, over WebSocket
        _close(p)
        _close(p)  # closing twice is safe
        before = _traffic(server)
        with pytest.raises(llmkit.UsageError, match=CLOSED):
            model.generate(llmkit.Call("after"))
        with pytest.raises(llmkit.UsageError, match=CLOSED):
            model.generate("after")
        with pytest.raises(llmkit.UsageError, match=CLOSED):
            model.stream(llmkit.Call("after"))
        with pytest.raises(llmkit.UsageError, match=CLOSED):
            model.warmup(llmkit.Call("after"))
        with pytest.raises(llmkit.UsageError, match=CLOSED):
            p.language_model("scripted")
        assert _traffic(server) == before
    finally:
        p.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_stream_made_before_the_close_refuses_when_iterated(
    server: ResponsesServer, transport: Transport
) -> None:
    p = provider(server, transport)
    try:
        stream = p.language_model("scripted").stream(llmkit.Call("made before"))
        before = _traffic(server)
        _close(p)
        with pytest.raises(llmkit.UsageError, match=CLOSED), stream:
            stream.until_done()
        assert _traffic(server) == before
    finally:
        p.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_stream_open_when_the_provider_closes_ends_with_a_typed_error(
    server: ResponsesServer, transport: Transport
) -> None:
    server.token_delay = 0.05
    words = " ".join(f"w{i}" for i in range(60))  # about 3 s of deltas
    p = provider(server, transport)
    try:
        with p.language_model("scripted").stream(llmkit.Call(words)) as stream:
            parts = iter(stream)
            next(parts)  # the response is under way
            opened = server.stats.connections_opened
            _close(p)
            with pytest.raises(llmkit.LLMKitError):
                for _ in parts:
                    pass
        assert server.stats.connections_opened == opened  # no reconnect, no resend
    finally:
        p.close()


def test_a_caller_http_client_left_open_does_not_keep_a_closed_provider_working(
    server: ResponsesServer,
) -> None:
    with httpx.Client() as client:
        for transport in ("chat", "http"):
            p = provider(server, transport, http_client=client)
            model = p.language_model("scripted")
            p.close()
            with pytest.raises(llmkit.UsageError, match=CLOSED):
                model.generate(llmkit.Call("after"))
        assert not client.is_closed
    assert server.stats.requests == []


def test_an_async_caller_http_client_left_open_does_not_keep_a_closed_provider_working(
    server: ResponsesServer,
) -> None:
    async def main() -> None:
        async with httpx.AsyncClient() as client:
            for path in ("chat", "http"):
                p = async_provider(server, path, http_client=client)
                model = p.language_model("scripted")
                await p.aclose()
                with pytest.raises(llmkit.UsageError, match=CLOSED):
                    await model.generate(llmkit.Call("after"))
                with pytest.raises(llmkit.UsageError, match=CLOSED):
                    await model.warmup(llmkit.Call("after"))

    asyncio.run(main())
    assert server.stats.requests == []


# -- a connect that completes after the close ---------------------------------------------


class SlowHandshakeServer:
    """A WebSocket server whose handshakes wait until `release` is set.

    It runs on its own thread and loop; `connected` is set when a client's upgrade
    request arrived, `closed` counts the connections that ended.
    """

    def __init__(self) -> None:
        self.connected = threading.Event()
        self.release = threading.Event()
        self.accepted = 0
        self.closed = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(),))
        self._thread.start()
        assert self._ready.wait(10)

    async def _run(self) -> None:
        self._stop = asyncio.Event()

        async def process_request(connection: ServerConnection, request: Request) -> None:
            self.connected.set()
            for _ in range(1000):  # at most 10 s
                if self.release.is_set():
                    return
                await asyncio.sleep(0.01)

        async def handler(connection: ServerConnection) -> None:
            self.accepted += 1
            try:
                await connection.wait_closed()
            finally:
                self.closed += 1

        async with serve(handler, "127.0.0.1", 0, process_request=process_request) as ws:
            self.port = ws.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def settled(self, timeout: float = 5.0) -> bool:
        """Whether every accepted connection has ended, waiting up to ``timeout``."""
        done = threading.Event()
        for _ in range(int(timeout / 0.02)):
            if self.accepted and self.closed == self.accepted:
                return True
            done.wait(0.02)
        return False

    def stop(self) -> None:
        self.release.set()
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def slow_handshake() -> Iterator[SlowHandshakeServer]:
    server = SlowHandshakeServer()
    yield server
    server.stop()


def test_a_connect_that_completes_after_close_is_closed_again(
    slow_handshake: SlowHandshakeServer,
) -> None:
    p = llmkit.Provider(
        api_key=API_KEY,
        base_url=slow_handshake.base_url,
        use_responses_api=True,
        websocket=True,
        max_retries=0,
        timeout=10,
    )
    model = p.language_model("scripted")
    errors: list[BaseException] = []

    def call() -> None:
        try:
            model.generate(llmkit.Call("hi"))
        except BaseException as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert slow_handshake.connected.wait(10)
    p.close()
    slow_handshake.release.set()
    caller.join(10)
    assert not caller.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], llmkit.UsageError), errors
    assert CLOSED in str(errors[0])
    assert slow_handshake.accepted == 1
    assert slow_handshake.settled()


def test_an_async_connect_that_completes_after_aclose_is_closed_again(
    slow_handshake: SlowHandshakeServer,
) -> None:
    async def main() -> BaseException | None:
        p = llmkit.AsyncProvider(
            api_key=API_KEY,
            base_url=slow_handshake.base_url,
            use_responses_api=True,
            websocket=True,
            max_retries=0,
            timeout=10,
        )
        call = asyncio.create_task(p.language_model("scripted").generate(llmkit.Call("hi")))
        while not slow_handshake.connected.is_set():
            await asyncio.sleep(0.01)
        await p.aclose()
        slow_handshake.release.set()
        results = await asyncio.gather(call, return_exceptions=True)
        return results[0] if isinstance(results[0], BaseException) else None

    error = asyncio.run(main())
    assert isinstance(error, llmkit.UsageError), error
    assert CLOSED in str(error)
    assert slow_handshake.settled()


@pytest.mark.parametrize("transport", [t for t in TRANSPORTS if not t.is_async])
def test_a_stream_read_by_another_thread_ends_with_a_typed_error_on_close(
    server: ResponsesServer, transport: Transport
) -> None:
    server.token_delay = 0.05
    words = " ".join(f"w{i}" for i in range(100))  # about 5 s of deltas
    p = provider(server, transport)
    started = threading.Event()
    outcome: list[BaseException | str] = []

    def read() -> None:
        try:
            with p.language_model("scripted").stream(llmkit.Call(words)) as stream:
                for _ in stream:
                    started.set()
            outcome.append("completed")
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert started.wait(10)
        opened = server.stats.connections_opened
        p.close()
        reader.join(10)
        assert not reader.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], llmkit.LLMKitError), outcome
        assert server.stats.connections_opened == opened
    finally:
        p.close()
        reader.join(10)


def _request_seen(server: ResponsesServer) -> bool:
    for _ in range(500):  # at most 10 s
        if server.stats.requests:
            return True
        threading.Event().wait(0.02)
    return False


def test_a_close_before_the_first_event_reconnects_nothing(server: ResponsesServer) -> None:
    # The close frame answering llmkit's own close would read as the server going away
    # before any event, which is resent on a new connection, unless the session refuses.
    server.ttft = 1.0
    p = provider(server, "websocket")
    outcome: list[BaseException | str] = []

    def call() -> None:
        try:
            p.language_model("scripted").generate(llmkit.Call("slow to start"))
            outcome.append("completed")
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    try:
        assert _request_seen(server)
        p.close()
        caller.join(10)
        assert not caller.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], llmkit.LLMKitError), outcome
        assert server.stats.connections_opened == 1
        assert len(server.stats.requests) == 1
    finally:
        p.close()
        caller.join(10)


def test_an_aclose_before_the_first_event_reconnects_nothing(server: ResponsesServer) -> None:
    server.ttft = 1.0

    async def main() -> BaseException | None:
        p = async_provider(server, "websocket")
        call = asyncio.create_task(p.language_model("scripted").generate("slow to start"))
        for _ in range(500):  # at most 10 s
            if server.stats.requests:
                break
            await asyncio.sleep(0.02)
        await p.aclose()
        results = await asyncio.gather(call, return_exceptions=True)
        return results[0] if isinstance(results[0], BaseException) else None

    error = asyncio.run(main())
    assert isinstance(error, llmkit.LLMKitError), error
    assert server.stats.connections_opened == 1
    assert len(server.stats.requests) == 1


def test_a_caller_http_client_closed_by_its_owner_is_said_so(server: ResponsesServer) -> None:
    client = httpx.Client()
    with provider(server, "http", http_client=client) as p:
        client.close()
        with pytest.raises(llmkit.UsageError, match="the httpx client given as http_client"):
            p.language_model("scripted").generate("hi")


def test_a_call_waiting_for_a_connection_is_refused_by_the_close(server: ResponsesServer) -> None:
    server.token_delay = 0.05
    words = " ".join(f"w{i}" for i in range(100))  # about 5 s of deltas
    p = provider(server, "websocket", ws_max_connections=1, ws_lanes=False)
    model = p.language_model("scripted")
    started = threading.Event()
    outcomes: dict[str, BaseException | str] = {}

    def first() -> None:
        try:
            with model.stream(llmkit.Call(words)) as stream:
                for _ in stream:
                    started.set()
            outcomes["first"] = "completed"
        except BaseException as exc:
            outcomes["first"] = exc

    def second() -> None:
        try:
            model.generate("waits for the only connection")
            outcomes["second"] = "completed"
        except BaseException as exc:
            outcomes["second"] = exc

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    try:
        assert started.wait(10)
        threads[1].start()
        threading.Event().wait(0.3)  # let the second call queue for the connection
        p.close()
        for thread in threads:
            thread.join(10)
            assert not thread.is_alive()
        assert isinstance(outcomes["first"], llmkit.LLMKitError), outcomes
        assert isinstance(outcomes["second"], llmkit.UsageError), outcomes
        assert CLOSED in str(outcomes["second"])
        assert server.stats.connections_opened == 1
    finally:
        p.close()
        for thread in threads:
            if thread.ident is not None:
                thread.join(10)


def test_a_task_waiting_for_a_connection_is_refused_by_aclose(server: ResponsesServer) -> None:
    server.token_delay = 0.05
    words = " ".join(f"w{i}" for i in range(100))

    async def main() -> list[BaseException | llmkit.Response]:
        p = async_provider(server, "websocket", ws_max_connections=1, ws_lanes=False)
        model = p.language_model("scripted")
        started = asyncio.Event()

        async def first() -> llmkit.Response:
            async with model.stream(llmkit.Call(words)) as stream:
                async for _ in stream:
                    started.set()
                return stream.response

        tasks = [asyncio.create_task(first())]
        await asyncio.wait_for(started.wait(), 10)
        tasks.append(asyncio.create_task(model.generate("waits for the only connection")))
        await asyncio.sleep(0.3)  # let the second call queue for the connection
        await p.aclose()
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)

    first, second = asyncio.run(main())
    assert isinstance(first, llmkit.LLMKitError), first
    assert isinstance(second, llmkit.UsageError), second
    assert CLOSED in str(second)
    assert server.stats.connections_opened == 1
