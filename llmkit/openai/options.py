"""Provider options for the OpenAI Responses API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from llmkit._validation import describe_validation_error
from llmkit.exceptions import UsageError

__all__ = ["ResponsesOptions", "SharedOptions", "responses_options"]


class SharedOptions(BaseModel):
    """The options the Responses and Chat Completions APIs both have, under one name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    parallel_tool_calls: bool | None = None
    prompt_cache_key: str | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    text_verbosity: Literal["low", "medium", "high"] | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    safety_identifier: str | None = None


class ResponsesOptions(SharedOptions):
    """Responses API settings that `Call` has no neutral name for.

    Pass as ``Call(provider_options={"openai": ResponsesOptions(...)})`` or as a plain
    dict under ``"openai"``. Unknown keys are a `UsageError`, never silently dropped.
    """

    previous_response_id: str | None = None
    """Continue from this response. On WebSocket it replaces llmkit's automatic chain."""
    store: bool = False
    """Whether the server keeps the response. llmkit defaults to False (ZDR-friendly);
    WebSocket chaining works either way, but only store=True survives a reconnect."""
    instructions: str | None = None
    include: tuple[str, ...] | None = None
    reasoning_summary: Literal["auto", "concise", "detailed"] | None = None
    max_tool_calls: int | None = None
    truncation: Literal["auto", "disabled"] | None = None


def responses_options(provider_options: Mapping[str, Any] | None) -> ResponsesOptions:
    """The ``"openai"`` entry of a call's provider options, validated.

    Raises:
        UsageError: the entry is neither a `ResponsesOptions` nor a mapping of its fields.
    """
    raw = (provider_options or {}).get("openai")
    if raw is None:
        return ResponsesOptions()
    if isinstance(raw, ResponsesOptions):
        return raw
    if not isinstance(raw, Mapping):
        raise UsageError(
            "provider_options['openai'] must be a ResponsesOptions or a dict, "
            f"not {type(raw).__name__}"
        )
    try:
        return ResponsesOptions.model_validate(dict(raw))
    except ValidationError as exc:
        problems = describe_validation_error(exc, "options")
        raise UsageError(f"invalid OpenAI Responses options: {problems}") from exc
