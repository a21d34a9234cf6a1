"""Tier 1: the public surface of `llmkit` and `llmkit.openai` (API.md)."""

from __future__ import annotations

import re

import pytest

import llmkit
import llmkit.messages
import llmkit.openai

# Every name API.md promises at the top level (a subset of __all__).
PROMISED = [
    "Provider",
    "LanguageModel",
    "Call",
    "SystemMessage",
    "UserMessage",
    "AssistantMessage",
    "ToolMessage",
    "ToolResult",
    "FunctionTool",
    "Response",
    "ParsedResponse",
    "ToolCall",
    "TextPart",
    "ReasoningPart",
    "SourcePart",
    "FinishReason",
    "Usage",
    "ResponseMetadata",
    "Stream",
    "StreamPart",
    "WarmupResult",
    "LLMKitError",
    "UsageError",
    "TransportError",
    "ConnectError",
    "Timeout",
    "ConnectionClosed",
    "APIError",
    "APIStatusError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "BadRequestError",
    "RateLimitError",
    "InternalServerError",
    "ResponseFailed",
    "ProtocolError",
    "IncompleteStream",
]


def test_all_is_unique() -> None:
    assert len(set(llmkit.__all__)) == len(llmkit.__all__)


def test_all_is_sorted() -> None:
    assert llmkit.__all__ == sorted(llmkit.__all__)


@pytest.mark.parametrize("name", llmkit.__all__)
def test_every_name_resolves(name: str) -> None:
    assert getattr(llmkit, name) is not None


@pytest.mark.parametrize("name", PROMISED)
def test_api_md_names_are_exported(name: str) -> None:
    assert name in llmkit.__all__


@pytest.mark.parametrize(
    "name", [n for n in llmkit.__all__ if isinstance(getattr(llmkit, n), type)]
)
def test_public_classes_say_llmkit(name: str) -> None:
    cls = getattr(llmkit, name)
    assert cls.__module__ == "llmkit"
    assert getattr(llmkit, cls.__qualname__) is cls  # an alias names its class


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from llmkit import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(llmkit.__all__)


def test_version() -> None:
    assert isinstance(llmkit.__version__, str)
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", llmkit.__version__)


def test_aliases() -> None:
    assert llmkit.FinishReason("tool_calls") is llmkit.FinishReason.TOOL_CALLS


def test_tool_call_part_is_a_deprecated_name_of_tool_call() -> None:
    with pytest.warns(DeprecationWarning, match="ToolCallPart is deprecated.*use ToolCall"):
        from llmkit import ToolCallPart
    assert ToolCallPart is llmkit.ToolCall
    with pytest.warns(DeprecationWarning, match="ToolCallPart is deprecated") as caught:
        assert llmkit.messages.ToolCallPart is llmkit.ToolCall
    assert caught[0].filename == __file__  # the warning points at the caller
    with pytest.warns(DeprecationWarning, match="ToolCallPart is deprecated"):
        assert llmkit.ToolCallPart is llmkit.ToolCall
    assert "ToolCallPart" not in llmkit.__all__
    assert "ToolCallPart" not in llmkit.messages.__all__


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'llmkit' has no attribute 'ToolCallParts'"):
        llmkit.ToolCallParts  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(AttributeError, match=r"module 'llmkit\.messages' has no attribute 'X'"):
        llmkit.messages.X  # type: ignore[attr-defined]  # noqa: B018


def test_openai_all_resolves() -> None:
    assert llmkit.openai.__all__ == sorted(llmkit.openai.__all__)
    assert set(llmkit.openai.__all__) >= {"ResponsesOptions", "ResponsesProtocol"}
    for name in llmkit.openai.__all__:
        assert getattr(llmkit.openai, name) is not None
    assert llmkit.openai.ResponsesOptions().store is False
    assert llmkit.openai.ResponsesProtocol().done is False
