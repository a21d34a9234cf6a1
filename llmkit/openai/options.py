"""Provider options of the OpenAI provider, for both of its APIs.

Agent code written for the Responses API runs unchanged on Chat Completions: a
`ResponsesOptions` (or dict) is accepted there as long as it only sets options both APIs
have. An option only the Responses API has (``previous_response_id``, ``instructions``,
...) is a `UsageError` on Chat Completions rather than silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llmkit._validation import describe_validation_error
from llmkit.exceptions import UsageError

__all__ = [
    "RESPONSES_ONLY",
    "ChatOptions",
    "ContextManagement",
    "ResponsesOptions",
    "SharedOptions",
    "chat_options",
    "responses_options",
]


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
    extra_body: dict[str, Any] | None = None
    """Request fields llmkit does not know, merged into the body as given, after its own
    fields; a key llmkit set in that request (or a delivery field: ``stream``, ...) is a
    `UsageError` naming it. Part of the settings a WebSocket chain compares."""

    @field_validator("extra_body")
    @classmethod
    def _json_data(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """JSON data only, kept as a copy: a value changed in place after the call was
        made must not change what an earlier request is remembered to have sent (the
        WebSocket chain compares the two)."""
        if value is None:
            return None
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError(f"must be JSON data ({exc})") from None
        copied: dict[str, Any] = json.loads(text)
        return copied


class ContextManagement(BaseModel):
    """One ``context_management`` entry of a Responses request: server-side compaction.

    When the context the server renders passes ``compact_threshold`` tokens, it compacts
    it: the stream carries a ``compaction`` output item (an opaque, encrypted summary of
    everything before it) that replays in later input like any output item.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["compaction"] = "compaction"
    compact_threshold: int | None = Field(default=None, ge=1000)
    """Tokens of rendered context that trigger compaction (the API's minimum is 1000);
    None: the server's default."""


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
    context_management: tuple[ContextManagement, ...] | None = None
    """Server-side compaction, e.g. ``[{"type": "compaction", "compact_threshold": 200000}]``."""


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
