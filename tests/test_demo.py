"""`python -m llmkit demo`: the side-by-side run, its tables and its exit code."""

from __future__ import annotations

import io

import pytest

from llmkit.__main__ import main
from llmkit._demo import DEMO_LATENCY, ROWS, Latency, run_demo
from llmkit._demo_crew import CREW_ROWS, SUBAGENTS, Outcome, Task, parent_task, run_crew, sub_task
from llmkit.messages import Response, TextPart
from llmkit.testing import ResponsesServer
from llmkit.tool_loop import ToolLoopResult


def row(out: str, name: str) -> list[str]:
    """The cells of the last table's row `name` (split on runs of two or more spaces)."""
    line = [line for line in out.splitlines() if line.startswith(name + "  ")][-1]
    return [cell.strip() for cell in line[len(name) :].split("  ") if cell.strip()]


def test_the_demo_prints_the_table_and_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--steps", "3", "--agents", "0"]) == 0
    out = capsys.readouterr().out
    assert "== HTTP ==" in out and "== WebSocket ==" in out
    assert DEMO_LATENCY.describe() in out
    for name in ROWS:
        assert name in out
    assert row(out, "incremental turns") == ["0 of 4", "3 of 4"]  # WebSocket: all but the first
    http, ws = (int(cell.replace(",", "")) for cell in row(out, "input tokens processed"))
    assert ws < http / 2  # chained turns spare the model the history (the cost model's input)
    assert "Both runs answered: The answer is 6. OK" in out
    assert "concurrent agents" not in out


def test_the_concurrent_table_runs_every_way_with_correct_answers() -> None:
    out = io.StringIO()
    assert run_demo(None, None, 1, out, agents=2, latency=Latency()) == 0
    text = out.getvalue()
    for name in CREW_ROWS:
        assert name in text
    requests = 2 * (parent_task(0).steps + 1 + SUBAGENTS * (sub_task(0, 0).steps + 1))
    assert row(text, "requests") == [str(requests)] * 3
    assert row(text, "correct answers") == [f"{2 + 2 * SUBAGENTS} of {2 + 2 * SUBAGENTS}"] * 3
    assert row(text, "incremental turns")[0] == f"0 of {requests}"  # HTTP: the full history
    http_sockets, *ws_sockets = row(text, "sockets used")
    assert http_sockets == "-" and all(1 <= int(n) <= 4 for n in ws_sockets)
    assert row(text, "most in flight on a socket")[:2] == ["-", "1"]  # no lanes: one at a time
    assert "every agent and sub-agent answered correctly. OK" in text


def test_every_conversation_of_the_crew_has_its_own_answer() -> None:
    tasks = [parent_task(a) for a in range(16)]
    tasks += [sub_task(a, s) for a in range(16) for s in range(SUBAGENTS)]
    assert len({t.expected for t in tasks}) == len(tasks)
    assert len({t.offset for t in tasks}) == len(tasks)


def test_a_failed_run_makes_the_demo_fail(server: ResponsesServer) -> None:
    server.faults.fail_next(code="server_error", message="boom")
    out = io.StringIO()
    assert run_demo(server.base_url, "scripted", 2, out, agents=1) == 1
    text = out.getvalue()
    assert "failed: ResponseFailed: boom" in text
    assert "did not both answer" in text
    assert "local server only" in text


@pytest.mark.parametrize("websocket", [False, True], ids=["http", "websocket"])
def test_a_failed_conversation_fails_the_crew(server: ResponsesServer, websocket: bool) -> None:
    server.faults.fail_next(code="server_error", message="boom")
    crew = run_crew(
        "x", server.base_url, "scripted", websocket=websocket, lanes=False, agents=1, subagents=2
    )
    assert not crew.ok
    assert crew.correct == 0  # the parent failed: its sub-agents never started
    assert crew.errors == ("ResponseFailed: boom (code: server_error)",)
    assert crew.column()[-1] == "0 of 3"


@pytest.mark.parametrize(
    ("base_url", "model", "steps", "agents", "message"),
    [
        (None, None, 0, 0, "--steps must be >= 1"),
        (None, None, 1, -1, "--agents >= 0"),
        ("http://127.0.0.1:9/v1", None, 3, 0, "--model is required"),
    ],
)
def test_bad_arguments_exit_2(
    base_url: str | None, model: str | None, steps: int, agents: int, message: str
) -> None:
    out = io.StringIO()
    assert run_demo(base_url, model, steps, out, agents=agents) == 2
    assert message in out.getvalue()


def test_a_wrong_answer_counts_as_an_error() -> None:
    outcome = Outcome()
    task = Task("Sub-agent 0.0: check", 1, 10, "The answer is 11. [user=2]")
    wrong = Response(content=(TextPart("The answer is 12. [user=1]"),))
    outcome.add(task, ToolLoopResult(wrong, (), (), None, True), None)
    right = Response(content=(TextPart(task.expected),))
    outcome.add(task, ToolLoopResult(right, (), (), None, True), None)
    assert outcome.correct == 1
    assert outcome.errors == ["'Sub-agent 0.0: check': 'The answer is 12. [user=1]'"]
