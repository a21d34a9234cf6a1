"""Provider options for the OpenAI Chat Completions API.

Agent code written for the Responses API runs unchanged on Chat Completions: a
`ResponsesOptions` (or dict) is accepted as long as it only sets options both APIs
have. An option only the Responses API has (``previous_response_id``, ``instructions``,
...) is a `UsageError` here rather than silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import ValidationError

from llmkit._validation import describe_validation_error
from llmkit.exceptions import UsageError
from llmkit.openai.options import ResponsesOptions, SharedOptions

__all__ = ["RESPONSES_ONLY", "ChatOptions", "chat_options"]


class ChatOptions(SharedOptions):
    """Chat Completions settings that `Call` has no neutral name for.

    Pass as ``Call(provider_options={"openai": ChatOptions(...)})`` or as a plain dict
    under ``"openai"``. Unknown keys are a `UsageError`, never silently dropped. The
    options shared with `ResponsesOptions` have the same names; ``text_verbosity`` is
    sent as ``verbosity``.
    """

    store: bool | None = None
    """Whether OpenAI keeps the completion (for evals and distillation); not sent when None."""

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


RESPONSES_ONLY = frozenset(ResponsesOptions.model_fields) - frozenset(ChatOptions.model_fields)
"""`ResponsesOptions` fields the Chat Completions API has no equivalent for."""


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
