"""Provider-neutral values: messages, content parts, calls, usage and responses.

Everything here is a frozen, slotted dataclass with no I/O and no provider specifics.
The one exception is `ProviderItemPart`, which carries a provider's raw output item
(a hosted tool call, say) so that a history can be replayed without losing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeAlias, TypedDict, TypeVar

from llmkit._deprecated import renamed
from llmkit._validation import (
    PROVIDERS,
    checked_prompt,
    checked_provider_options,
    checked_sequence,
    checked_tools,
)
from llmkit.exceptions import UsageError

__all__ = [
    "AssistantMessage",
    "AssistantPart",
    "Call",
    "FilePart",
    "FinishReason",
    "FunctionTool",
    "ImagePart",
    "Message",
    "PROVIDERS",
    "ParsedResponse",
    "ProviderItemPart",
    "ProviderTool",
    "ReasoningPart",
    "Response",
    "ResponseMetadata",
    "SourcePart",
    "SystemMessage",
    "TextMessageDict",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "ToolMessage",
    "ToolResult",
    "Usage",
    "UserMessage",
    "UserPart",
    "WarmupResult",
    "as_call",
]


class FinishReason(StrEnum):
    """Why a response ended."""

    STOP = "stop"
    LENGTH = "length"
    CONTENT_FILTER = "content_filter"
    TOOL_CALLS = "tool_calls"
    ERROR = "error"
    OTHER = "other"
    UNKNOWN = "unknown"


# --------------------------------------------------------------------------- parts


@dataclass(frozen=True, slots=True)
class TextPart:
    """Text. In an assistant message ``id`` is the output item it came from.

    ``refusal`` marks a model refusal (kept apart from ``Response.text``); ``phase`` is
    the message phase some models set (``commentary`` / ``final_answer``), replayed as is.
    """

    text: str
    id: str | None = None
    refusal: bool = False
    phase: str | None = None
    type: Literal["text"] = field(default="text", init=False)


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image for the model: a URL (``https:`` or ``data:``) or an uploaded ``file_id``."""

    url: str | None = None
    file_id: str | None = None
    detail: Literal["auto", "low", "high"] = "auto"
    type: Literal["image"] = field(default="image", init=False)


@dataclass(frozen=True, slots=True)
class FilePart:
    """A file for the model: base64 ``data`` with a ``filename``, a ``url``, or a ``file_id``."""

    data: str | None = None
    filename: str | None = None
    url: str | None = None
    file_id: str | None = None
    type: Literal["file"] = field(default="file", init=False)


@dataclass(frozen=True, slots=True)
class ReasoningPart:
    """A reasoning item: summary texts, raw reasoning texts and the opaque encrypted state.

    Keep it in the history unchanged: with ``store=false`` the ``encrypted_content`` is
    the only way the server can see its own earlier reasoning.
    """

    id: str | None
    summary: tuple[str, ...] = ()
    content: tuple[str, ...] = ()
    encrypted_content: str | None = None
    type: Literal["reasoning"] = field(default="reasoning", init=False)

    @property
    def text(self) -> str:
        """The summary, or the raw reasoning text when there is no summary."""
        return "\n\n".join(self.summary or self.content)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the model made. ``arguments`` is the JSON text the model wrote.

    ``kind`` is ``"function"`` for a function tool and ``"custom"`` for a free-form
    custom tool, whose ``arguments`` is its raw input text.
    """

    call_id: str
    name: str
    arguments: str
    id: str | None = None
    kind: Literal["function", "custom"] = "function"
    type: Literal["tool_call"] = field(default="tool_call", init=False)


OLD_NAMES = {"ToolCallPart": ToolCall}
"""Names kept for one more release (a `DeprecationWarning` on use): ``ToolCallPart`` was
a second name of `ToolCall`."""

if TYPE_CHECKING:
    ToolCallPart: TypeAlias = ToolCall
    """Deprecated second name of `ToolCall`."""
else:

    def __getattr__(name: str) -> Any:
        return renamed(__name__, name, OLD_NAMES)


@dataclass(frozen=True, slots=True)
class SourcePart:
    """A citation attached to the text of output item ``id``."""

    id: str | None
    source_type: str
    url: str | None = None
    title: str | None = None
    file_id: str | None = None
    filename: str | None = None
    start_index: int | None = None
    end_index: int | None = None
    type: Literal["source"] = field(default="source", init=False)


@dataclass(frozen=True, slots=True)
class ProviderItemPart:
    """An output item llmkit does not model (a hosted tool call, ...), kept verbatim."""

    id: str | None
    item_type: str
    item: Mapping[str, Any]
    type: Literal["provider_item"] = field(default="provider_item", init=False)


UserPart: TypeAlias = TextPart | ImagePart | FilePart
AssistantPart: TypeAlias = TextPart | ReasoningPart | ToolCall | SourcePart | ProviderItemPart


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class SystemMessage:
    """Instructions from the developer."""

    text: str
    role: Literal["system"] = field(default="system", init=False)


@dataclass(frozen=True, slots=True, init=False)
class UserMessage:
    """What the user said: a string, or text, image and file parts."""

    parts: tuple[UserPart, ...]
    role: Literal["user"] = field(default="user", init=False)

    def __init__(self, content: str | Sequence[UserPart]) -> None:
        if isinstance(content, str):
            parts: tuple[UserPart, ...] = (TextPart(content),)
        else:
            parts = checked_sequence("UserMessage", content, _USER_PARTS, "a str or ")
        object.__setattr__(self, "parts", parts)
        object.__setattr__(self, "role", "user")


@dataclass(frozen=True, slots=True, init=False)
class AssistantMessage:
    """What the model said. Normally `Response.message`, appended to the history as is."""

    parts: tuple[AssistantPart, ...]
    role: Literal["assistant"] = field(default="assistant", init=False)

    def __init__(self, parts: str | Sequence[AssistantPart]) -> None:
        if isinstance(parts, str):
            value: tuple[AssistantPart, ...] = (TextPart(parts),)
        else:
            value = checked_sequence("AssistantMessage", parts, _ASSISTANT_PARTS, "a str or ")
        object.__setattr__(self, "parts", value)
        object.__setattr__(self, "role", "assistant")


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The result of one tool call, matched to it by ``call_id``."""

    call_id: str
    output: str
    is_error: bool = False


@dataclass(frozen=True, slots=True, init=False)
class ToolMessage:
    """Results of the tool calls of the previous assistant message."""

    results: tuple[ToolResult, ...]
    role: Literal["tool"] = field(default="tool", init=False)

    def __init__(self, results: ToolResult | Sequence[ToolResult]) -> None:
        if isinstance(results, ToolResult):
            value: tuple[ToolResult, ...] = (results,)
        else:
            value = checked_sequence("ToolMessage", results, (ToolResult,), "one ToolResult or ")
        object.__setattr__(self, "results", value)
        object.__setattr__(self, "role", "tool")


Message: TypeAlias = SystemMessage | UserMessage | AssistantMessage | ToolMessage

_USER_PARTS = (TextPart, ImagePart, FilePart)
_ASSISTANT_PARTS = (TextPart, ReasoningPart, ToolCall, SourcePart, ProviderItemPart)
_MESSAGES = (SystemMessage, UserMessage, AssistantMessage, ToolMessage)


# --------------------------------------------------------------------------- calls


@dataclass(frozen=True, slots=True)
class FunctionTool:
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    strict: bool | None = None
    type: Literal["function"] = field(default="function", init=False)


@dataclass(frozen=True, slots=True)
class ProviderTool:
    """A provider-defined tool (``{"type": "web_search"}``, ...), sent verbatim."""

    spec: Mapping[str, Any]
    type: Literal["provider"] = field(default="provider", init=False)


Tool: TypeAlias = FunctionTool | ProviderTool
ToolChoice: TypeAlias = str | None
"""``None`` (provider default), ``"auto"``, ``"none"``, ``"required"`` or a tool name."""


class TextMessageDict(TypedDict):
    """An OpenAI-style text message that `Call` converts to a message: ``"system"`` and
    ``"developer"`` to a `SystemMessage`, ``"user"`` to a `UserMessage`, ``"assistant"``
    to an `AssistantMessage`. No other key is allowed."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str


_DICT_MESSAGES: Mapping[str, type[SystemMessage | UserMessage | AssistantMessage]] = {
    "system": SystemMessage,
    "developer": SystemMessage,
    "user": UserMessage,
    "assistant": AssistantMessage,
}


@dataclass(frozen=True, slots=True, init=False)
class Call:
    """One request to a model: the conversation so far, tools and settings.

    ``prompt`` is a plain string (one user message) or a sequence of messages
    (`SystemMessage`, `UserMessage`, `AssistantMessage`, `ToolMessage`). OpenAI-style
    text dicts are converted: ``{"role": "system" | "developer", "content": str}`` to a
    `SystemMessage`, ``"user"`` to a `UserMessage`, ``"assistant"`` to an
    `AssistantMessage`; a dict with any other key, role or content (tool calls, content
    parts, ``name``) is a `UsageError`, as it has no one meaning in llmkit's messages.

    ``tools`` are `FunctionTool` and `ProviderTool` declarations; a Python function
    is refused here (a call cannot run it): give it to `ToolLoop`, or declare it with
    ``llmkit.tool(function).spec``. ``provider_options`` maps a provider name (see
    `PROVIDERS`) to its options, e.g. ``{"openai": ResponsesOptions(store=True)}`` or
    ``{"openai": {"store": True}}``; an unknown name is a `UsageError`, not ignored.

    Raises:
        UsageError: any argument of the wrong type, said with what was expected.
    """

    prompt: tuple[Message, ...]
    tools: tuple[Tool, ...]
    tool_choice: ToolChoice
    max_output_tokens: int | None
    temperature: float | None
    top_p: float | None
    provider_options: Mapping[str, Any] | None

    def __init__(
        self,
        prompt: str | Sequence[Message | TextMessageDict],
        *,
        tools: Sequence[Tool] = (),
        tool_choice: ToolChoice = None,
        max_output_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        provider_options: Mapping[str, Any] | None = None,
    ) -> None:
        if tool_choice is not None and not isinstance(tool_choice, str):
            raise UsageError(
                f"Call.tool_choice is a {type(tool_choice).__name__}; expected None, "
                "'auto', 'none', 'required' or a tool name"
            )
        object.__setattr__(self, "prompt", checked_prompt(prompt, _MESSAGES, _DICT_MESSAGES))
        object.__setattr__(self, "tools", checked_tools(tools, (FunctionTool, ProviderTool)))
        object.__setattr__(self, "tool_choice", tool_choice)
        object.__setattr__(self, "max_output_tokens", max_output_tokens)
        object.__setattr__(self, "temperature", temperature)
        object.__setattr__(self, "top_p", top_p)
        object.__setattr__(self, "provider_options", checked_provider_options(provider_options))


def as_call(call: Call | str) -> Call:
    """What every model method takes: a `Call`, or a plain string as ``Call(call)``.

    Raises:
        UsageError: ``call`` is neither.
    """
    if isinstance(call, Call):
        return call
    if isinstance(call, str):
        return Call(call)
    raise UsageError(
        f"expected a Call or a str, not a {type(call).__name__}: "
        "wrap messages as llmkit.Call([...])"
    )


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts. ``cache_read_tokens`` are input tokens served from the prompt cache."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ResponseMetadata:
    """How a response was obtained: ids, transport and cost of the request.

    ``input_mode`` is ``"incremental"`` when only new input items were sent on a chained
    WebSocket connection; ``fallback_reason`` says why a WebSocket call went over HTTP.
    ``stream_id`` is the WebSocket lane the response ran on (None: the default lane, or
    HTTP); ``previous_response_id`` the response its request chained on (None: none).
    """

    response_id: str | None = None
    model: str | None = None
    transport: Literal["http", "websocket"] = "http"
    input_mode: Literal["full", "incremental"] = "full"
    input_items_sent: int = 0
    bytes_sent: int = 0
    connection_reused: bool = False
    fallback_reason: str | None = None
    time_to_first_token: float | None = None
    duration: float = 0.0
    stream_id: str | None = None
    previous_response_id: str | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """A complete model answer: the fold of a stream's parts."""

    content: tuple[AssistantPart, ...] = ()
    finish_reason: FinishReason = FinishReason.UNKNOWN
    usage: Usage = field(default_factory=Usage)
    metadata: ResponseMetadata = field(default_factory=ResponseMetadata)
    warnings: tuple[str, ...] = ()
    steered: tuple[tuple[int, UserMessage], ...] = ()
    """User input that steering put into this answer (WebSocket mode): each message
    with the number of ``content`` parts before it. `messages` places them."""

    @property
    def id(self) -> str | None:
        """The provider's response id (``resp_...``), when it sent one."""
        return self.metadata.response_id

    @property
    def text(self) -> str:
        """All text parts joined (refusals excluded: see `refusal`)."""
        return "".join(p.text for p in self.content if isinstance(p, TextPart) and not p.refusal)

    @property
    def refusal(self) -> str | None:
        """The model's refusal text, if it refused."""
        parts = [p.text for p in self.content if isinstance(p, TextPart) and p.refusal]
        return "".join(parts) if parts else None

    @property
    def reasoning(self) -> list[ReasoningPart]:
        """The reasoning items, in order."""
        return [p for p in self.content if isinstance(p, ReasoningPart)]

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls, in order."""
        return [p for p in self.content if isinstance(p, ToolCall)]

    @property
    def message(self) -> AssistantMessage:
        """Everything the model said, as one assistant message. For a steered answer
        append `messages` to the history instead."""
        return AssistantMessage(self.content)

    @property
    def messages(self) -> tuple[AssistantMessage | UserMessage, ...]:
        """This answer as the messages to append to the history: ``(message,)``, or,
        when it was steered, the assistant's parts split around the steer input, in the
        order the server holds them (so the next request extends its chain)."""
        if not self.steered:
            return (self.message,)
        messages: list[AssistantMessage | UserMessage] = []
        start = 0
        for position, user in self.steered:
            if position > start:
                messages.append(AssistantMessage(self.content[start:position]))
            messages.append(user)
            start = max(start, position)
        if start < len(self.content):
            messages.append(AssistantMessage(self.content[start:]))
        return tuple(messages)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ParsedResponse(Response, Generic[T]):
    """A `Response` to a structured call (``output_type=``), with its answer parsed.

    ``output`` is the answer as the output type: a validated pydantic model, a value of
    the `TypeAdapter` type, or the parsed JSON value for a JSON schema dict.
    """

    output: T = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class WarmupResult:
    """What a warm-up cost, and whether it prepared anything.

    ``response_id`` is None when the transport cannot warm up. ``prepared`` is True only
    when the server kept the warm-up as a chain head for the next call: it reported
    input tokens for a non-empty input (or the input was empty). A warm-up answered by a
    gateway that keeps nothing (0 input tokens, such as LiteLLM's ``resp_warmup_…``) is
    ``prepared=False``: llmkit keeps no chain for it (the next call sends its full
    input) and logs a warning once per provider; its ``response_id`` names nothing to
    chain on. A skipped warm-up (HTTP, WebSocket unavailable) is not prepared.
    """

    response_id: str | None
    usage: Usage
    transport: Literal["http", "websocket"]
    prepared: bool = False

    @classmethod
    def skipped(cls) -> WarmupResult:
        """Nothing was sent: HTTP, or WebSocket unavailable. Costs nothing."""
        return cls(response_id=None, usage=Usage(), transport="http")
