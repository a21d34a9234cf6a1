"""Pydantic models of Chat Completions stream chunks (``chat.completion.chunk``).

OpenAI-compatible servers agree on the shape of a chunk and disagree on the details, so
every model allows extra fields and every field llmkit reads is optional: vLLM, Ollama,
llama.cpp, DeepSeek, Groq, OpenRouter, Azure and the rest add fields (``timings``,
``x_groq``, ``content_filter_results``, ``prompt_filter_results``), leave out ``object``
or ``usage``, and send chunks with an empty ``choices`` list.

A payload is either a chunk or an error. Errors come in two shapes: an ``error`` object
(OpenAI, OpenRouter, LiteLLM; OpenRouter keeps ``choices`` beside it), and a flat object
with ``"object": "error"`` (vLLM, with the HTTP status as ``code``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmkit._validation import describe_validation_error
from llmkit.exceptions import ProtocolError
from llmkit.openai._common import load_json

__all__ = [
    "ChatChoice",
    "ChatChunk",
    "ChatDelta",
    "ChatError",
    "ChatFunctionDelta",
    "ChatToolCallDelta",
    "ChatUsage",
    "CompletionTokensDetails",
    "PromptTokensDetails",
    "parse_chunk",
]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatFunctionDelta(_Wire):
    """The function of a tool-call delta: ``name`` once, then ``arguments`` pieces."""

    name: str | None = None
    arguments: str | None = None


class ChatCustomDelta(_Wire):
    """The custom-tool part of a tool-call delta: ``name`` once, then ``input`` pieces."""

    name: str | None = None
    input: str | None = None


class ChatToolCallDelta(_Wire):
    """One piece of one tool call. ``index`` says which call; ``id`` comes with the first."""

    index: int | None = None
    id: str | None = None
    type: str | None = None
    function: ChatFunctionDelta | None = None
    custom: ChatCustomDelta | None = None


class ChatDelta(_Wire):
    """What one chunk adds to the assistant message.

    ``reasoning_content`` is the DeepSeek/vLLM name for streamed reasoning, ``reasoning``
    the OpenRouter/Ollama one; OpenAI's own Chat API streams none.
    """

    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ChatToolCallDelta] | None = None


class ChatChoice(_Wire):
    """One choice of a chunk (llmkit asks for one, ``index`` 0)."""

    index: int = 0
    delta: ChatDelta = Field(default_factory=ChatDelta)
    finish_reason: str | None = None


class PromptTokensDetails(_Wire):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


class CompletionTokensDetails(_Wire):
    reasoning_tokens: int | None = None


class ChatUsage(_Wire):
    """Token counts, in the final chunk when ``stream_options.include_usage`` is set.

    DeepSeek reports cache hits as ``prompt_cache_hit_tokens`` instead of
    ``prompt_tokens_details.cached_tokens``; both are read.
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None
    prompt_cache_hit_tokens: int | None = None


class _GroqExtension(_Wire):
    usage: ChatUsage | None = None


class ChatErrorDetail(_Wire):
    message: str | None = None
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class ChatChunk(_Wire):
    """One ``chat.completion.chunk``."""

    id: str | None = None
    model: str | None = None
    choices: list[ChatChoice] = Field(default_factory=list)
    usage: ChatUsage | None = None
    x_groq: _GroqExtension | None = None
    """Groq's extension; older Groq servers put the usage only here."""
    error: ChatErrorDetail | None = None
    """OpenRouter reports a mid-stream failure inside an otherwise normal chunk."""

    @property
    def any_usage(self) -> ChatUsage | None:
        """The usage from wherever this server put it."""
        if self.usage is not None:
            return self.usage
        return self.x_groq.usage if self.x_groq is not None else None


class ChatError(_Wire):
    """An error payload, in either shape; the ``error`` object wins over flat fields."""

    error: ChatErrorDetail | None = None
    message: str | None = None
    type: str | None = None
    param: str | None = None
    code: str | int | None = None

    @property
    def detail(self) -> ChatErrorDetail:
        """The error's fields from whichever shape carried them."""
        nested = self.error or ChatErrorDetail()
        return ChatErrorDetail(
            message=nested.message or self.message,
            type=nested.type or self.type,
            param=nested.param or self.param,
            code=nested.code if nested.code is not None else self.code,
        )


def parse_chunk(payload: str | bytes) -> ChatChunk | ChatError:
    """Parse one SSE ``data`` payload of a Chat Completions stream.

    Raises:
        ProtocolError: the payload is not a JSON object, or its fields are malformed.
    """
    data = load_json(payload)
    if not isinstance(data, dict):
        raise ProtocolError(f"chunk payload is not a JSON object: {type(data).__name__}")
    try:
        if data.get("object") == "error" or (
            isinstance(data.get("error"), dict) and not data.get("choices")
        ):
            return ChatError.model_validate(data)
        return ChatChunk.model_validate(data)
    except ValidationError as exc:  # not chained: its text quotes the payload's values
        problems = describe_validation_error(exc, "chunk")
        raise ProtocolError(f"malformed chat completion chunk: {problems}") from None
    except RecursionError as exc:
        raise ProtocolError("chat completion chunk is nested too deeply") from exc
