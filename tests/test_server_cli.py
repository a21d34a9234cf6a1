"""`python -m llmkit serve`: a real subprocess answering SSE and WebSocket clients."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from llmkit.__main__ import main


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmkit", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                httpx.get(f"{base}/responses/none", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - only if shutdown hangs
            proc.kill()
            proc.wait(timeout=10)


def test_serve_answers_sse_and_websocket(served: tuple[str, subprocess.Popen[str]]) -> None:
    base, proc = served
    body = {"model": "any", "input": "ping", "stream": True}
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", f"{base}/responses", json=body) as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1]["type"] == "response.completed"
    ws_url = base.replace("http://", "ws://") + "/responses"
    with connect(ws_url, open_timeout=5) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "any", "input": "pong"}))
        while (event := json.loads(ws.recv(timeout=5)))["type"] != "response.completed":
            pass
    assert event["response"]["output"][0]["content"][0]["text"].startswith("Echo: pong")
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    assert base in out


def test_main_without_a_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "serve" in capsys.readouterr().out


def test_serve_reports_a_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    assert "cannot listen" in capsys.readouterr().err
