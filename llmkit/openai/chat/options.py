"""Provider options for the OpenAI Chat Completions API.

Agent code written for the Responses API runs unchanged on Chat Completions: a
`ResponsesOptions` (or dict) is accepted as long as it only sets options both APIs
have. An option only the Responses API has (``previous_response_id``, ``instructions``,
...) is a `UsageError` here rather than silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from llmkit._validation import describe_validation_error
from llmkit.exceptions import UsageError
from llmkit.openai.options import ResponsesOptions

__all__ = ["RESPONSES_ONLY", "ChatOptions", "chat_options"]

RESPONSES_ONLY = frozenset(
    {
        "previous_response_id",
        "instructions",
        "include",
        "reasoning_summary",
        "max_tool_calls",
        "truncation",
    }
)
"""`ResponsesOptions` fields the Chat Completions API has no equivalent for."""


class ChatOptions(BaseModel):
    """Chat Completions settings that `Call` has no neutral name for.

    Pass as ``Call(provider_options={"openai": ChatOptions(...)})`` or as a plain dict
    under ``"openai"``. Unknown keys are a `UsageError`, never silently dropped.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Shared with the Responses API (same names as `ResponsesOptions`).
    store: bool | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    parallel_tool_calls: bool | None = None
    prompt_cache_key: str | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    text_verbosity: Literal["low", "medium", "high"] | None = None
    """Sent as ``verbosity``."""
    user: str | None = None
    metadata: dict[str, str] | None = None
    safety_identifier: str | None = None

    # Chat Completions only.
    seed: int | None = None
    stop: str | tuple[str, ...] | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, int] | None = None
    response_format: dict[str, Any] | None = None
    """``{"type": "json_object"}`` or ``{"type": "json_schema", "json_schema": {...}}``."""
    include_usage: bool = True
    """Ask for usage in the last chunk (``stream_options``); some servers reject it."""
    max_tokens_field: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens"
    """Where `Call.max_output_tokens` goes. OpenAI's reasoning models need
    ``max_completion_tokens``; some older compatible servers know only ``max_tokens``."""


def chat_options(provider_options: Mapping[str, Any] | None) -> ChatOptions:
    """The ``"openai"`` entry of a call's provider options, validated for Chat Completions.

    Raises:
        UsageError: a Responses-only option, an unknown key, or a bad value.
    """
    raw = (provider_options or {}).get("openai")
    if raw is None:
        return ChatOptions()
    if isinstance(raw, ChatOptions):
        return raw
    if isinstance(raw, ResponsesOptions):
        raw = {key: getattr(raw, key) for key in raw.model_fields_set}
    if not isinstance(raw, Mapping):
        raise UsageError(
            "provider_options['openai'] must be a ChatOptions, a ResponsesOptions or a dict, "
            f"not {type(raw).__name__}"
        )
    responses_only = sorted(RESPONSES_ONLY.intersection(raw))
    if responses_only:
        raise UsageError(
            f"{', '.join(responses_only)}: Responses API only; the Chat Completions path "
            "(use_responses_api=False) has no equivalent"
        )
    try:
        return ChatOptions.model_validate(dict(raw))
    except ValidationError as exc:
        problems = describe_validation_error(exc, "options")
        raise UsageError(f"invalid OpenAI Chat Completions options: {problems}") from exc
