"""Pure encoding of a `Call` into a Responses API request body.

The body is plain JSON-ready data, identical for HTTP and WebSocket (which adds
``"type": "response.create"``). Encoding is deterministic: the same history always
renders to the same items, which is what lets the WebSocket chain compare a new request
with the previous one item by item.

Assistant output replays as the server's own items: a message with ``output_text``
parts (and its ``phase``), a ``function_call`` / ``custom_tool_call`` with its
``call_id``, a ``reasoning`` item with its id and ``encrypted_content``. Item ids of
messages and calls are left out: with ``store=false`` the server has not kept them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, assert_never

from llmkit._schema import OutputSchema
from llmkit.messages import (
    AssistantMessage,
    AssistantPart,
    Call,
    FilePart,
    FunctionTool,
    ImagePart,
    Message,
    ProviderItemPart,
    ProviderTool,
    ReasoningPart,
    SourcePart,
    SystemMessage,
    TextPart,
    Tool,
    ToolCall,
    ToolMessage,
    UserMessage,
    UserPart,
    as_call,
)
from llmkit.openai._common import (
    EncodedRequest,
    json_schema_format,
    merge_extra_body,
    output_warnings,
    tool_choice_name,
)
from llmkit.openai.options import ResponsesOptions, responses_options

__all__ = [
    "DELIVERY_FIELDS",
    "EncodedRequest",
    "encode_input",
    "encode_request",
    "render_output",
    "tool_choice_name",
]

JSON = dict[str, Any]

DELIVERY_FIELDS = frozenset({"type", "stream", "stream_id", "generate"})
"""Fields the transports add to a body (``stream`` over HTTP, the ``response.create``
frame's ``type``, lanes' ``stream_id``, a warm-up's ``generate``): not for ``extra_body``."""


def encode_request(
    model: str, call: Call | str, output: OutputSchema[Any] | None = None
) -> EncodedRequest:
    """Encode ``call`` for ``model`` as a ``POST /responses`` body (without ``stream``).

    A plain string is ``Call(call)``. A structured call's ``output`` goes as
    ``text.format`` (``json_schema``), beside ``text.verbosity``.

    Raises:
        UsageError: ``call`` is neither a `Call` nor a str, invalid options, or a
            ``tool_choice`` that names no given tool.
    """
    call = as_call(call)
    options = responses_options(call.provider_options)
    warnings: list[str] = []
    body: JSON = {"model": model, "input": encode_input(call.prompt, options, warnings)}
    if call.tools:
        body["tools"] = [_tool(tool) for tool in call.tools]
    if call.tool_choice is not None:
        body["tool_choice"] = _tool_choice(call.tool_choice, call.tools)
    for key in ("max_output_tokens", "temperature", "top_p"):
        value = getattr(call, key)
        if value is not None:
            body[key] = value
    body.update(_options(options))
    if output is not None:
        text = body.setdefault("text", {})
        text["format"] = {"type": "json_schema", **json_schema_format(output)}
        output_warnings(output, warnings)
    merge_extra_body(body, options.extra_body, DELIVERY_FIELDS)
    return EncodedRequest(body, tuple(warnings))


def encode_input(
    messages: Sequence[Message], options: ResponsesOptions, warnings: list[str]
) -> list[JSON]:
    """Render a history as Responses input items."""
    items: list[JSON] = []
    custom_calls: set[str] = set()
    for message in messages:
        match message:
            case SystemMessage():
                items.append(_message("system", [_input_text(message.text)]))
            case UserMessage():
                items.append(_message("user", [_user_part(p) for p in message.parts]))
            case AssistantMessage():
                items += _assistant(message, options, warnings, custom_calls)
            case ToolMessage():
                for result in message.results:
                    kind = (
                        "custom_tool_call_output"
                        if result.call_id in custom_calls
                        else "function_call_output"
                    )
                    items.append({"type": kind, "call_id": result.call_id, "output": result.output})
            case _:
                assert_never(message)
    return items


def render_output(message: AssistantMessage | UserMessage, *, store: bool) -> list[JSON]:
    """A response's message (or steer input) as the input items a later full request
    would carry."""
    return encode_input([message], ResponsesOptions(store=store), [])


def _message(role: str, content: list[JSON]) -> JSON:
    return {"type": "message", "role": role, "content": content}


def _input_text(text: str) -> JSON:
    return {"type": "input_text", "text": text}


def _user_part(part: UserPart) -> JSON:
    match part:
        case TextPart():
            return _input_text(part.text)
        case ImagePart():
            image: JSON = {"type": "input_image", "detail": part.detail}
            if part.file_id is not None:
                image["file_id"] = part.file_id
            if part.url is not None:
                image["image_url"] = part.url
            return image
        case FilePart():
            file: JSON = {"type": "input_file"}
            for key in ("file_id", "filename"):
                if getattr(part, key) is not None:
                    file[key] = getattr(part, key)
            if part.url is not None:
                file["file_url"] = part.url
            if part.data is not None:
                file["file_data"] = part.data
            return file
        case _:
            assert_never(part)


def _assistant(
    message: AssistantMessage,
    options: ResponsesOptions,
    warnings: list[str],
    custom_calls: set[str],
) -> list[JSON]:
    """Assistant parts → output items; consecutive text of one item → one message."""
    items: list[JSON] = []
    open_message: JSON | None = None
    open_id: str | None = None
    for part in message.parts:
        if isinstance(part, TextPart):
            if open_message is None or part.id is None or part.id != open_id:
                open_message = _message("assistant", [])
                if part.phase is not None:
                    open_message["phase"] = part.phase
                open_id = part.id
                items.append(open_message)
            open_message["content"].append(_output_text(part))
            continue
        if isinstance(part, SourcePart):
            continue  # citations travel inside the text they annotate
        open_message = None
        item = _assistant_item(part, options, warnings, custom_calls)
        if item is not None:
            items.append(item)
    return items


def _output_text(part: TextPart) -> JSON:
    if part.refusal:
        return {"type": "refusal", "refusal": part.text}
    return {"type": "output_text", "text": part.text, "annotations": []}


def _assistant_item(
    part: AssistantPart,
    options: ResponsesOptions,
    warnings: list[str],
    custom_calls: set[str],
) -> JSON | None:
    match part:
        case ToolCall(kind="custom"):
            custom_calls.add(part.call_id)
            return {
                "type": "custom_tool_call",
                "call_id": part.call_id,
                "name": part.name,
                "input": part.arguments,
            }
        case ToolCall():
            return {
                "type": "function_call",
                "call_id": part.call_id,
                "name": part.name,
                "arguments": part.arguments,
            }
        case ReasoningPart():
            return _reasoning(part, options, warnings)
        case ProviderItemPart():
            return dict(part.item)
        case SourcePart() | TextPart():  # pragma: no cover, no mutate block (the caller's)
            raise AssertionError("text and sources are grouped into messages by the caller")
        case _:
            assert_never(part)


def _reasoning(part: ReasoningPart, options: ResponsesOptions, warnings: list[str]) -> JSON | None:
    if part.encrypted_content is None and not options.store:
        # With store=false the server can only see reasoning it can decrypt.
        warnings.append(
            "a reasoning item without encrypted_content was left out of the input: "
            "with store=false the server cannot resolve it "
            "(request include=['reasoning.encrypted_content'] to keep reasoning)"
        )
        return None
    if part.id is None:
        warnings.append("a reasoning item without an id was left out of the input")
        return None
    item: JSON = {
        "type": "reasoning",
        "id": part.id,
        "summary": [{"type": "summary_text", "text": text} for text in part.summary],
    }
    if part.content:
        item["content"] = [{"type": "reasoning_text", "text": text} for text in part.content]
    if part.encrypted_content is not None:
        item["encrypted_content"] = part.encrypted_content
    return item


def _tool(tool: Tool) -> JSON:
    match tool:
        case FunctionTool():
            spec: JSON = {
                "type": "function",
                "name": tool.name,
                "parameters": dict(tool.parameters),
            }
            if tool.description is not None:
                spec["description"] = tool.description
            if tool.strict is not None:
                spec["strict"] = tool.strict
            return spec
        case ProviderTool():
            return dict(tool.spec)
        case _:
            assert_never(tool)


def _tool_choice(choice: str, tools: Sequence[Tool]) -> str | JSON:
    name = tool_choice_name(choice, tools)
    return choice if name is None else {"type": "function", "name": name}


def _options(options: ResponsesOptions) -> JSON:
    body: JSON = {"store": options.store}
    simple = (
        "previous_response_id",
        "instructions",
        "parallel_tool_calls",
        "prompt_cache_key",
        "service_tier",
        "user",
        "metadata",
        "max_tool_calls",
        "safety_identifier",
        "truncation",
    )
    for key in simple:
        value = getattr(options, key)
        if value is not None:
            body[key] = value
    include = list(options.include or ())
    reasoning: JSON = {}
    if options.reasoning_effort is not None:
        reasoning["effort"] = options.reasoning_effort
    if options.reasoning_summary is not None:
        reasoning["summary"] = options.reasoning_summary
    if reasoning:
        body["reasoning"] = reasoning
        if not options.store and "reasoning.encrypted_content" not in include:
            # Without the encrypted state a store=false history cannot replay reasoning.
            include.append("reasoning.encrypted_content")
    if include:
        body["include"] = include
    if options.text_verbosity is not None:
        body["text"] = {"verbosity": options.text_verbosity}
    if options.context_management is not None:
        body["context_management"] = [
            entry.model_dump(exclude_none=True) for entry in options.context_management
        ]
    return body
