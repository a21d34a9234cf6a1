"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loop import Transport

from llmkit.testing import ResponsesServer


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """Test ids say which provider runs: ``websocket`` or ``async-websocket``."""
    return val.id if isinstance(val, Transport) else None


@pytest.fixture(scope="session")
def server_session() -> Iterator[ResponsesServer]:
    """One local Responses server (127.0.0.1, free port) for the whole test session."""
    with ResponsesServer() as server:
        yield server


@pytest.fixture
def server(server_session: ResponsesServer) -> Iterator[ResponsesServer]:
    """The session server, reset (stats, faults, store, sockets) and with default settings.

    Settings a test changes (`ttft`, `token_delay`, `cost_per_input_token`,
    `keepalive_interval`, `max_connection_age`, `api_key`, the `ws_*` lane, ping and
    gateway settings, `record_bodies`, `steering`) are restored afterwards.
    """
    server_session.reset()
    yield server_session
    server_session.ttft = 0.0
    server_session.token_delay = 0.0
    server_session.cost_per_input_token = 0.0
    server_session.keepalive_interval = None
    server_session.max_connection_age = None
    server_session.api_key = None
    server_session.ws_lanes = "lanes"
    server_session.ws_max_in_flight = 16
    server_session.ws_max_lanes = 32
    server_session.ws_head_eviction = "end"
    server_session.ws_when_busy = "queue"
    server_session.ws_preflight_evicts = True
    server_session.ws_ping_interval = None
    server_session.ws_pong_timeout = None
    server_session.ws_fake_warmups = False
    server_session.record_bodies = False
    server_session.steering = True
    server_session.reset()
