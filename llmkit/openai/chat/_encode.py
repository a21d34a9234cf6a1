"""Pure encoding of a `Call` into a Chat Completions request body.

The whole history goes in every request (Chat Completions has no server-side chain).
Assistant output replays as one assistant message: its text as ``content``, a refusal
as ``refusal``, tool calls as ``tool_calls``. Reasoning is not sent back: Chat
Completions has no input for it (DeepSeek rejects ``reasoning_content`` in requests), so
it is left out, silently, as every chat client does. Output items only the Responses
API knows (`ProviderItemPart`) are left out with a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, assert_never

from llmkit._schema import OutputSchema
from llmkit.exceptions import UsageError
from llmkit.messages import (
    AssistantMessage,
    Call,
    FilePart,
    FunctionTool,
    ImagePart,
    Message,
    ProviderItemPart,
    ProviderTool,
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
from llmkit.openai.options import ChatOptions, chat_options

__all__ = ["encode_chat_request", "encode_messages"]

JSON = dict[str, Any]


def encode_chat_request(
    model: str, call: Call | str, output: OutputSchema[Any] | None = None
) -> EncodedRequest:
    """Encode ``call`` for ``model`` as a streaming ``POST /chat/completions`` body.

    A plain string is ``Call(call)``. A structured call's ``output`` goes as
    ``response_format`` (``json_schema``).

    Raises:
        UsageError: ``call`` is neither a `Call` nor a str, invalid or Responses-only
            options, a ``tool_choice`` that names no given tool, content Chat
            Completions cannot carry, or both ``output_type`` and a ``response_format``
            option.
    """
    call = as_call(call)
    options = chat_options(call.provider_options)
    warnings: list[str] = []
    body: JSON = {"model": model, "messages": encode_messages(call.prompt, warnings)}
    if call.tools:
        body["tools"] = [_tool(tool) for tool in call.tools]
    if call.tool_choice is not None:
        body["tool_choice"] = _tool_choice(call.tool_choice, call.tools)
    if call.max_output_tokens is not None:
        body[options.max_tokens_field] = call.max_output_tokens
    for key in ("temperature", "top_p"):
        value = getattr(call, key)
        if value is not None:
            body[key] = value
    body.update(_options(options))
    if output is not None:
        if options.response_format is not None:
            raise UsageError("give output_type or ChatOptions(response_format=...), not both")
        body["response_format"] = {"type": "json_schema", "json_schema": json_schema_format(output)}
        output_warnings(output, warnings)
    body["stream"] = True
    if options.include_usage:
        body["stream_options"] = {"include_usage": True}
    merge_extra_body(body, options.extra_body, ())  # `stream` is in the body already
    return EncodedRequest(body, tuple(warnings))


def encode_messages(messages: Sequence[Message], warnings: list[str]) -> list[JSON]:
    """Render a history as Chat Completions messages."""
    rendered: list[JSON] = []
    for message in messages:
        match message:
            case SystemMessage():
                rendered.append({"role": "system", "content": message.text})
            case UserMessage():
                rendered.append({"role": "user", "content": _user_content(message.parts)})
            case AssistantMessage():
                assistant = _assistant(message, warnings)
                if assistant is not None:
                    rendered.append(assistant)
            case ToolMessage():
                rendered += [
                    {"role": "tool", "tool_call_id": result.call_id, "content": result.output}
                    for result in message.results
                ]
            case _:
                assert_never(message)
    return rendered


def _user_content(parts: Sequence[UserPart]) -> str | list[JSON]:
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        return parts[0].text
    return [_user_part(part) for part in parts]


def _user_part(part: UserPart) -> JSON:
    match part:
        case TextPart():
            return {"type": "text", "text": part.text}
        case ImagePart():
            if part.url is None:
                raise UsageError(
                    "Chat Completions takes images by URL (https: or data:), not by file_id"
                )
            return {"type": "image_url", "image_url": {"url": part.url, "detail": part.detail}}
        case FilePart():
            if part.url is not None:
                raise UsageError(
                    "Chat Completions takes files as data or file_id, not by URL "
                    "(the Responses API accepts file URLs)"
                )
            file = {
                key: value
                for key, value in (
                    ("file_data", part.data),
                    ("file_id", part.file_id),
                    ("filename", part.filename),
                )
                if value is not None
            }
            return {"type": "file", "file": file}
        case _:
            assert_never(part)


def _assistant(message: AssistantMessage, warnings: list[str]) -> JSON | None:
    """One assistant message; None when nothing in it can be sent (reasoning only)."""
    texts = [p.text for p in message.parts if isinstance(p, TextPart) and not p.refusal]
    refusals = [p.text for p in message.parts if isinstance(p, TextPart) and p.refusal]
    calls = [_tool_call(p) for p in message.parts if isinstance(p, ToolCall)]
    for part in message.parts:
        if isinstance(part, ProviderItemPart):
            warnings.append(
                f"a {part.item_type!r} output item was left out of the messages: "
                "Chat Completions has no input for it"
            )
    if not (texts or refusals or calls):
        return None
    rendered: JSON = {"role": "assistant", "content": None}
    if len(texts) == 1:
        rendered["content"] = texts[0]
    elif texts:
        rendered["content"] = [{"type": "text", "text": text} for text in texts]
    if refusals:
        rendered["refusal"] = "".join(refusals)
    if calls:
        rendered["tool_calls"] = calls
    return rendered


def _tool_call(call: ToolCall) -> JSON:
    if call.kind == "custom":
        custom = {"name": call.name, "input": call.arguments}
        return {"id": call.call_id, "type": "custom", "custom": custom}
    function = {"name": call.name, "arguments": call.arguments}
    return {"id": call.call_id, "type": "function", "function": function}


def _tool(tool: Tool) -> JSON:
    match tool:
        case FunctionTool():
            function: JSON = {"name": tool.name, "parameters": dict(tool.parameters)}
            if tool.description is not None:
                function["description"] = tool.description
            if tool.strict is not None:
                function["strict"] = tool.strict
            return {"type": "function", "function": function}
        case ProviderTool():
            return dict(tool.spec)
        case _:
            assert_never(tool)


def _tool_choice(choice: str, tools: Sequence[Tool]) -> str | JSON:
    name = tool_choice_name(choice, tools)
    if name is None:
        return choice
    return {"type": "function", "function": {"name": name}}


def _options(options: ChatOptions) -> JSON:
    body: JSON = {}
    simple = (
        "store",
        "reasoning_effort",
        "parallel_tool_calls",
        "prompt_cache_key",
        "service_tier",
        "user",
        "metadata",
        "safety_identifier",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "response_format",
    )
    for key in simple:
        value = getattr(options, key)
        if value is not None:
            body[key] = value
    if options.stop is not None:
        body["stop"] = options.stop if isinstance(options.stop, str) else list(options.stop)
    if options.text_verbosity is not None:
        body["verbosity"] = options.text_verbosity
    return body
