"""The report of `make mutate`: killed and surviving mutants per module, survivors listed.

mutmut keeps its verdicts in ``mutants/<module>.meta``; this reads them after a run and
prints, per mutated module, how many mutants were killed, and each survivor with its
line in the real source and the changed lines, so that it can be checked against the
list of equivalent mutants in CONTRIBUTING.md. Run from the repository root.

Exit status: 0 always; mutation testing informs, it does not gate (CONTRIBUTING.md).
"""

from __future__ import annotations

import ast
import json
import re
import sys
from collections import Counter
from pathlib import Path

from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
from mutmut.utils.format_utils import orig_function_and_class_names_from_key

MUTANTS = Path("mutants")
_HUNK = re.compile(r"^@@ -(\d+)")


def _function_lines(source: str) -> dict[tuple[str | None, str], int]:
    """The first line of each top-level function and method: (class, name) -> line."""
    lines: dict[tuple[str | None, str], int] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines[None, node.name] = _first_line(node)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines[node.name, item.name] = _first_line(item)
    return lines


def _first_line(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """The ``def`` line: mutmut's diff of a function starts there, without decorators."""
    return node.lineno


def _changes(diff: str, start: int) -> tuple[int, list[str]]:
    """The source line of the first change and the changed lines of a function diff."""
    line, first, changed = start, 0, []
    for text in diff.splitlines():
        hunk = _HUNK.match(text)
        if hunk:
            line = start + int(hunk.group(1)) - 1
        elif text.startswith(("---", "+++")):
            continue
        elif text.startswith(("-", "+")):
            first = first or line
            changed.append(text)
            if text.startswith("-"):
                line += 1
        else:
            line += 1
    return first, changed


def report(root: Path = MUTANTS) -> str:
    """The text of the report for the verdicts under ``root``."""
    out: list[str] = []
    totals: Counter[str] = Counter()
    for meta in sorted(root.rglob("*.py.meta")):
        path = meta.relative_to(root).with_suffix("")  # llmkit/x.py.meta -> llmkit/x.py
        verdicts = json.loads(meta.read_text("utf-8"))["exit_code_by_key"]
        statuses = Counter(status_by_exit_code[code] for code in verdicts.values())
        totals += statuses
        out.append(
            f"{path}: {len(verdicts)} mutants, {statuses['killed']} killed, "
            f"{statuses['survived']} survived"
            + "".join(
                f", {count} {status}"
                for status, count in sorted(statuses.items())
                if status not in ("killed", "survived")
            )
        )
        starts = _function_lines(path.read_text("utf-8"))
        for name, code in sorted(verdicts.items(), key=lambda item: _number(item[0])):
            status = status_by_exit_code[code]
            if status in ("killed", "not checked"):
                continue  # "not checked": the run was cut short; counted above
            function, cls = orig_function_and_class_names_from_key(name)
            where = f"{cls}.{function}" if cls else function
            line, changed = _changes(
                get_diff_for_mutant(name, path=str(path)), starts.get((cls, function), 1)
            )
            out.append(f"  {status}: {path}:{line} in {where} ({name.rpartition('.')[2]})")
            out.extend(f"      {text}" for text in changed)
    out.append(
        f"total: {sum(totals.values())} mutants, {totals['killed']} killed, "
        f"{totals['survived']} survived"
    )
    return "\n".join(out)


def _number(name: str) -> tuple[str, int]:
    base, _, number = name.rpartition("_")
    return base, int(number) if number.isdigit() else 0


def main() -> int:
    if not MUTANTS.is_dir():
        print("no mutants/ directory: run `make mutate` first", file=sys.stderr)
        return 1
    print(report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
