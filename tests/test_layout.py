"""The import directions of CONTRIBUTING.md's module map, enforced.

Each module of ``llmkit/`` belongs to one layer; a layer may import only the layers the
map allows, so the arrows point one way: providers import the core and the seam, never
the reverse; transports know no protocol, part or provider; the protocol core imports
no I/O library; the local server imports nothing from the client.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "llmkit"

IO_LIBRARIES = frozenset(
    {"httpx", "httpx_sse", "websocket", "websockets", "uvicorn", "socket", "ssl", "select"}
)
DOMAIN = (
    "llmkit.exceptions",
    "llmkit.messages",
    "llmkit.stream",
    "llmkit._parts",
    "llmkit.model",
    "llmkit.tool_loop",
    "llmkit._closing",
    "llmkit._deadline",
    "llmkit._deprecated",
    "llmkit._headers",
    "llmkit._logs",
    "llmkit._otel",
    "llmkit._schema",
    "llmkit._schema_parse",
    "llmkit._validation",
    "llmkit._version",
)
SEAM = ("llmkit.transports.base",)
SHARED_OPENAI = ("llmkit.openai._common", "llmkit.openai.options")
PURE_RESPONSES = (
    *SHARED_OPENAI,
    "llmkit.openai.wire",
    "llmkit.openai.protocol",
    "llmkit.openai._protocol",
    "llmkit.openai._encode",
    "llmkit.openai._chain",
    "llmkit.openai._recovery",
    "llmkit.openai._session",
    "llmkit.openai._lanes",
    "llmkit.openai._steer",
    "llmkit.openai.options",
)
PURE_CHAT = (
    "llmkit.openai.chat.wire",
    "llmkit.openai.chat.protocol",
    "llmkit.openai.chat._encode",
)


@dataclass(frozen=True)
class Layer:
    name: str
    members: tuple[str, ...]
    """Module names, or package prefixes ending in ``.``."""
    may_import: tuple[str, ...]
    """llmkit modules or package prefixes (ending in ``.``) this layer may import."""
    no_io: bool = False


# Order matters: a module belongs to the first layer that names it.
LAYERS = (
    Layer(
        "application",
        ("llmkit", "llmkit.__main__", "llmkit._demo", "llmkit._demo_crew"),
        ("llmkit.",),
    ),
    Layer("domain", DOMAIN, DOMAIN, no_io=True),
    Layer("core", ("llmkit._core.",), (*DOMAIN, *SEAM, "llmkit._core."), no_io=True),
    Layer(
        "transports pure",
        ("llmkit.transports._proxy",),
        ("llmkit.exceptions",),
        no_io=True,
    ),
    Layer(
        "transports",
        ("llmkit.transports.",),
        (
            "llmkit.exceptions",
            "llmkit._closing",
            "llmkit._deadline",
            "llmkit._headers",
            "llmkit._version",
            "llmkit.transports.",
        ),
    ),
    Layer(
        "chat pure",
        PURE_CHAT,
        (*DOMAIN, *SEAM, *SHARED_OPENAI, "llmkit._core.", "llmkit.openai.chat."),
        no_io=True,
    ),
    Layer(
        "responses pure", PURE_RESPONSES, (*DOMAIN, *SEAM, "llmkit._core.", "llmkit.openai."), True
    ),
    Layer(
        "chat",
        ("llmkit.openai.chat.",),
        (*DOMAIN, *SHARED_OPENAI, "llmkit._core.", "llmkit.transports.", "llmkit.openai.chat."),
    ),
    Layer(
        "openai",
        ("llmkit.openai.",),
        (*DOMAIN, "llmkit._core.", "llmkit.transports.", "llmkit.openai."),
    ),
    Layer("testing", ("llmkit.testing.",), ("llmkit.testing.",)),
)


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(
        name == p or (p.endswith(".") and (name.startswith(p) or name == p[:-1])) for p in patterns
    )


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer(module: str) -> Layer:
    for layer in LAYERS:
        if _matches(module, layer.members):
            return layer
    raise AssertionError(f"{module} is in no layer: add it to CONTRIBUTING.md's map and here")


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # ``from llmkit.transports import base`` imports the module llmkit.transports.base
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _modules() -> list[tuple[str, Path]]:
    return sorted((_module_name(p), p) for p in ROOT.rglob("*.py"))


def _is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (ROOT.parent / relative).with_suffix(".py").exists() or (
        ROOT.parent / relative / "__init__.py"
    ).exists()


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_every_module_imports_only_what_its_layer_allows(module: str, path: Path) -> None:
    layer = _layer(module)
    wrong = []
    for name in sorted(_imports(path, module)):
        top = name.partition(".")[0]
        if layer.no_io and top in IO_LIBRARIES:
            wrong.append(f"{name} (an I/O library)")
        allowed = _matches(name, layer.may_import)
        if top == "llmkit" and name != module and _is_module(name) and not allowed:
            wrong.append(f"{name} ({_layer(name).name})")
    assert not wrong, f"{module} ({layer.name}) imports {', '.join(wrong)}"


def test_the_checker_sees_a_wrong_import() -> None:
    """The rule above can fail: a core module importing a provider is caught."""
    bad = ROOT / "_core" / "run.py"
    tree_imports = _imports(bad, "llmkit._core.run")
    assert "llmkit.transports.base" in tree_imports
    core = _layer("llmkit._core.run")
    assert not _matches("llmkit.openai.protocol", core.may_import)
    assert not _matches("llmkit.transports.http", core.may_import)
    assert _matches("llmkit.transports.base", core.may_import)
    assert not _matches("llmkit.openai.protocol", _layer("llmkit.testing._app").may_import)
    assert not _matches("llmkit._core.run", _layer("llmkit.transports.http").may_import)
    assert _layer("llmkit.openai.chat.protocol").name == "chat pure"
    assert _layer("llmkit.transports._proxy").no_io  # the proxy decision reads no socket
    assert not _matches("llmkit.openai.protocol", _layer("llmkit.openai.chat.model").may_import)


def test_the_module_map_names_every_package() -> None:
    """CONTRIBUTING.md's map lists each folder of llmkit/."""
    text = (ROOT.parent / "CONTRIBUTING.md").read_text(encoding="utf-8")
    folders = {p.parent.relative_to(ROOT.parent) for p in ROOT.rglob("__init__.py")}
    missing = [str(f) for f in sorted(folders) if f"`{f}/`" not in text]
    assert not missing, f"CONTRIBUTING.md's module map misses {missing}"
