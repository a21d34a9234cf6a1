"""Starting, stopping and resetting the local server; connection bookkeeping."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from llmkit.testing import ResponsesServer


def wait_for(predicate: object, timeout: float = 5.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_settings_can_change_at_runtime() -> None:
    server = ResponsesServer(
        ttft=0.1, token_delay=0.2, keepalive_interval=1.0, max_connection_age=5.0, api_key="k"
    )
    assert (server.ttft, server.token_delay, server.keepalive_interval) == (0.1, 0.2, 1.0)
    assert (server.max_connection_age, server.api_key) == (5.0, "k")
    server.ttft = 0.0
    assert server.ttft == 0.0
    assert server.app.core.ttft == 0.0


def test_start_twice_is_an_error_and_stop_is_idempotent() -> None:
    with ResponsesServer() as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        assert server.ws_url == f"ws://127.0.0.1:{server.port}/v1/responses"
        with pytest.raises(RuntimeError, match="already started"):
            server.start()
    server.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.base_url}/responses/x", timeout=1)


def test_serve_forever_runs_until_stopped() -> None:
    server = ResponsesServer()
    ready = threading.Event()
    thread = threading.Thread(target=server.serve_forever, args=(lambda s: ready.set(),))
    thread.start()
    try:
        assert ready.wait(5)
        wait_for(lambda: server.app.started.is_set())
        r = httpx.post(f"{server.base_url}/responses", json={"model": "m", "input": "x"}, timeout=5)
        assert r.status_code == 200
    finally:
        server.stop()
        thread.join(10)
    assert not thread.is_alive()


def test_websocket_on_another_path_is_404(server: ResponsesServer) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(server.ws_url.replace("/responses", "/chat"), open_timeout=5).close()
    assert info.value.response.status_code == 404


def test_reset_closes_open_websockets(server: ResponsesServer) -> None:
    with connect(server.ws_url, open_timeout=5) as ws:
        wait_for(lambda: server.stats.connections_opened == 1)
        server.reset()
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    assert server.stats.connections_opened == 0


def test_client_leaving_mid_stream_is_recorded(server: ResponsesServer) -> None:
    server.token_delay = 0.05
    with connect(server.ws_url, open_timeout=5) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "m", "input": "a b c d e f g"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "response.created"
    wait_for(lambda: server.stats.requests[0].status in ("disconnected", "completed"))
    conn = server.stats.requests[0].connection_id
    assert conn is not None
    wait_for(lambda: not server.stats.connection(conn).open)
    assert server.stats.requests[0].status == "disconnected"


def test_connection_age_message_uses_minutes(server: ResponsesServer) -> None:
    server.max_connection_age = 120.0
    with connect(server.ws_url, open_timeout=5) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "m", "input": "x"}))
        while json.loads(ws.recv(timeout=5))["type"] != "response.completed":
            pass
    from llmkit.testing._ws import _limit_text

    assert _limit_text(3600) == "60 minutes"
    assert _limit_text(0.5) == "0.5 seconds"
