"""Every ```python block of README.md runs as written, against the local server.

Each block runs on its own (a fresh namespace, as if pasted into a file), with
``OPENAI_BASE_URL`` pointing at the local server and ``OPENAI_API_KEY`` set, as a
reader's environment would have them. A block that cannot run offline says so in its
fence (```python no-run); it must still compile. Any other block that raises fails.
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
from loop import API_KEY

from llmkit.testing import ResponsesServer

README = Path(__file__).resolve().parent.parent / "README.md"
_FENCE = re.compile(r"^```python(?P<info>[^\n]*)\n(?P<code>.*?)^```[ \t]*$", re.M | re.S)
NO_RUN = "no-run"


@dataclass(frozen=True)
class Snippet:
    """One ```python block: where it starts, its code, and whether it is run."""

    line: int
    """The line of the code's first line in the file (1-based)."""
    code: str
    run: bool

    def compiled(self, filename: str) -> types.CodeType:
        """The code, compiled so that tracebacks name the file and its real lines."""
        return compile("\n" * (self.line - 1) + self.code, filename, "exec")


def snippets(text: str) -> list[Snippet]:
    """The ```python blocks of ``text``; a ``no-run`` word in the fence marks one not run."""
    return [
        Snippet(
            line=text.count("\n", 0, match.start("code")) + 1,
            code=match.group("code"),
            run=NO_RUN not in match.group("info").split(),
        )
        for match in _FENCE.finditer(text)
    ]


SNIPPETS = snippets(README.read_text(encoding="utf-8"))


def test_the_readme_has_runnable_snippets() -> None:
    assert sum(s.run for s in SNIPPETS) >= 3


def test_snippets_are_found_with_their_marks_and_lines() -> None:
    text = "intro\n```python\na = 1\n```\n\n```python no-run\nb = 2\n```\n```sh\nc\n```\n"
    assert snippets(text) == [Snippet(3, "a = 1\n", True), Snippet(7, "b = 2\n", False)]


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"line-{s.line}" for s in SNIPPETS])
def test_a_readme_snippet_runs_as_written(
    snippet: Snippet,
    server: ResponsesServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = snippet.compiled(README.name)
    if not snippet.run:
        return  # marked: it compiled, which is all that can be checked offline
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    exec(code, {"__name__": "__main__"})  # the README's own code, as a reader runs it
    assert capsys.readouterr().out, "every README snippet shows its result"
    assert server.stats.generations >= 1  # it reached the local server, not elsewhere
