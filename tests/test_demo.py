"""`python -m llmkit demo`: the side-by-side run, its table and its exit code."""

from __future__ import annotations

import io

import pytest

from llmkit.__main__ import main
from llmkit._demo import ROWS, run_demo
from llmkit.testing import ResponsesServer


def test_the_demo_prints_the_table_and_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "== HTTP ==" in out and "== WebSocket ==" in out
    for row in ROWS:
        assert row in out
    (incremental,) = [line.split() for line in out.splitlines() if line.startswith("incr")]
    assert incremental[-6:] == ["0", "of", "4", "3", "of", "4"]  # WebSocket: all but the first
    assert "Both runs answered: The answer is 6. OK" in out


def test_a_failed_run_makes_the_demo_fail(server: ResponsesServer) -> None:
    server.faults.fail_next(code="server_error", message="boom")
    out = io.StringIO()
    assert run_demo(server.base_url, "scripted", 2, out) == 1
    text = out.getvalue()
    assert "failed: ResponseFailed: boom" in text
    assert "did not both answer" in text


@pytest.mark.parametrize(
    ("base_url", "model", "steps", "message"),
    [
        (None, None, 0, "--steps must be >= 1"),
        ("http://127.0.0.1:9/v1", None, 3, "--model is required"),
    ],
)
def test_bad_arguments_exit_2(
    base_url: str | None, model: str | None, steps: int, message: str
) -> None:
    out = io.StringIO()
    assert run_demo(base_url, model, steps, out) == 2
    assert message in out.getvalue()
