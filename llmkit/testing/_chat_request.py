"""Chat Completions requests on the local server (pure, no I/O): check, then convert.

A chat request is validated like the real endpoint does (the 400 it gives for a
malformed one), and its messages are converted to the Responses-style conversation
items and request `_models` reads. Rendering the answer is `_chat`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmkit.testing import _models as m, _values as values
from llmkit.testing._events import ApiError

Item = dict[str, Any]

ROLES = ("system", "developer", "user", "assistant", "tool")
TOOL_TYPES = ("function", "custom")
# Responses API parameters the chat endpoint does not know.
RESPONSES_ONLY = (
    "input",
    "instructions",
    "previous_response_id",
    "include",
    "text",
    "reasoning",
    "max_output_tokens",
    "truncation",
    "conversation",
    "background",
    "max_tool_calls",
    "generate",
)
_NOT_A_RESPONSE = (
    "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
    "message with 'tool_calls'."
)
_UNANSWERED = (
    "An assistant message with 'tool_calls' must be followed by tool messages responding "
    "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
)


# -- validation -------------------------------------------------------------------------------
def _bad(message: str, param: str | None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, code=code, param=param)


def _missing(param: str) -> ApiError:
    return _bad(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _wrong_type(param: str, expected: str) -> ApiError:
    return _bad(f"Invalid type for '{param}': expected {expected}.", param, "invalid_type")


def _empty(param: str) -> ApiError:
    msg = f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got an empty array instead."  # noqa: E501
    return _bad(msg, param, "empty_array")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_options(body: Item) -> ApiError | None:
    for name in RESPONSES_ONLY:
        if name in body:
            return ApiError(400, f"Unrecognized request argument supplied: {name}")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return ApiError(400, "you must provide a model parameter")
    options = body.get("stream_options")
    if options is not None:
        if body.get("stream") is not True:
            msg = "The 'stream_options' parameter is only allowed when 'stream' is enabled."
            return _bad(msg, "stream_options", None)
        if not isinstance(options, dict):
            return _wrong_type("stream_options", "an object")
    n = body.get("n")
    if n is not None and not _is_int(n):
        return _wrong_type("n", "an integer")
    if n is not None and n != 1:
        msg = f"Invalid 'n': this server generates one choice (n=1), but got {n} instead."
        return _bad(msg, "n", "unsupported_value")
    for name in ("max_completion_tokens", "max_tokens"):
        limit = body.get(name)
        if limit is not None and not _is_int(limit):
            return _wrong_type(name, "an integer")
        if limit is not None and limit < 1:
            msg = f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {limit} instead."  # noqa: E501
            return _bad(msg, name, "integer_below_min_value")
    return None


def _check_content(content: Any, where: str) -> ApiError | None:
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return _wrong_type(where, "one of a string or array of objects")
    for index, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            return _missing(f"{where}[{index}].type")
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            return _missing(f"{where}[{index}].text")
    return None


def _check_tool_call(call: Any, where: str) -> ApiError | None:
    if not isinstance(call, dict):
        return _wrong_type(where, "an object")
    if not isinstance(call.get("id"), str):
        return _missing(f"{where}.id")
    kind = call.get("type")
    if kind not in TOOL_TYPES:
        msg = f"Invalid value: '{kind}'. Supported values are: 'function' and 'custom'."
        return _bad(msg, f"{where}.type")
    spec = call.get(kind)
    if not isinstance(spec, dict):
        return _missing(f"{where}.{kind}")
    field = "arguments" if kind == "function" else "input"
    for key in ("name", field):
        if not isinstance(spec.get(key), str):
            return _missing(f"{where}.{kind}.{key}")
    return None


def _check_message(message: Any, where: str) -> ApiError | None:
    if not isinstance(message, dict):
        return _wrong_type(where, "an object")
    role = message.get("role")
    if role is None:
        return _missing(f"{where}.role")
    if role not in ROLES:
        supported = "'system', 'developer', 'user', 'assistant' and 'tool'"
        return _bad(f"Invalid value: '{role}'. Supported values are: {supported}.", f"{where}.role")
    calls = message.get("tool_calls") if role == "assistant" else None
    if calls is not None:
        if not isinstance(calls, list):
            return _wrong_type(f"{where}.tool_calls", "an array of objects")
        if not calls:
            return _empty(f"{where}.tool_calls")
        for index, call in enumerate(calls):
            error = _check_tool_call(call, f"{where}.tool_calls[{index}]")
            if error is not None:
                return error
    content = message.get("content")
    refused = role == "assistant" and isinstance(message.get("refusal"), str)
    if content is None:  # an assistant's tool calls or refusal stand for it
        return None if calls or refused else _missing(f"{where}.content")
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        return _missing(f"{where}.tool_call_id")
    return _check_content(content, f"{where}.content")


def _check_pairing(messages: Sequence[Item]) -> ApiError | None:
    """Tool messages answer the calls of the assistant message right before them."""
    callable_ids: set[str] = set()
    unanswered: dict[str, None] = {}
    for index, message in enumerate(messages):
        if message["role"] == "tool":
            call_id = message["tool_call_id"]
            if not callable_ids:
                return _bad(_NOT_A_RESPONSE, f"messages.[{index}].role", None)
            if call_id not in callable_ids:
                msg = f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of previous message."  # noqa: E501
                return _bad(msg, f"messages.[{index}].tool_call_id", None)
            unanswered.pop(call_id, None)
            continue
        if unanswered:
            return _bad(_UNANSWERED + ", ".join(unanswered), f"messages.[{index}].role", None)
        calls = message.get("tool_calls") if message["role"] == "assistant" else None
        unanswered = {str(call["id"]): None for call in calls or []}
        callable_ids = set(unanswered)
    if unanswered:
        return _bad(_UNANSWERED + ", ".join(unanswered), "messages", None)
    return None


def _check_messages(messages: Any) -> ApiError | None:
    if messages is None:
        return _missing("messages")
    if not isinstance(messages, list):
        return _wrong_type("messages", "an array of objects")
    if not messages:
        return _empty("messages")
    for index, message in enumerate(messages):
        error = _check_message(message, f"messages[{index}]")
        if error is not None:
            return error
    return _check_pairing(messages)


def _check_tools(tools: Any) -> ApiError | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        return _wrong_type("tools", "an array of objects")
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            return _missing(f"{where}.type")
        kind = tool["type"]
        if kind not in TOOL_TYPES:
            msg = f"Invalid value: '{kind}'. Supported values are: 'function' and 'custom'."
            return _bad(msg, f"{where}.type")
        spec = tool.get(kind)
        if not isinstance(spec, dict):
            return _missing(f"{where}.{kind}")
        if not isinstance(spec.get("name"), str) or not spec["name"]:
            return _missing(f"{where}.{kind}.name")
    return None


def validate_chat(body: Any) -> ApiError | None:
    """The 400 the real endpoint gives for a malformed chat request, or None."""
    if not isinstance(body, dict):
        return _bad("Invalid body: expected a JSON object.", None, "invalid_type")
    return (
        _check_options(body)
        or _check_messages(body.get("messages"))
        or _check_tools(body.get("tools"))
        or _check_format(body.get("response_format"))
    )


def _check_format(fmt: Any) -> ApiError | None:
    schema = fmt.get("json_schema") if isinstance(fmt, dict) else None
    if not isinstance(schema, dict):
        return None
    problem = values.format_problem({**schema, "type": fmt["type"]})
    return None if problem is None else _bad(problem, "response_format", "invalid_json_schema")


def message_count(body: Any) -> int:
    messages = body.get("messages") if isinstance(body, dict) else None
    return len(messages) if isinstance(messages, list) else 0


# -- conversion ---------------------------------------------------------------------------------
def _call_item(call: Item) -> Item:
    if call.get("type") == "custom":
        custom = call.get("custom") or {}
        return {
            "type": "custom_tool_call",
            "call_id": call.get("id"),
            "name": custom.get("name"),
            "input": custom.get("input"),
        }
    function = call.get("function") or {}
    return {
        "type": "function_call",
        "call_id": call.get("id"),
        "name": function.get("name"),
        "arguments": function.get("arguments"),
    }


def to_items(messages: Sequence[Item]) -> list[Item]:
    """Chat messages as the Responses-style conversation items the scripted models read.

    system/developer/user → a message item; assistant → a message item when it has text
    or a ``refusal`` (a `refusal` content part, as the Responses API has it), then one
    `function_call` (or `custom_tool_call`) per tool call; tool → the matching
    `function_call_output` (or `custom_tool_call_output`) with the content's text.
    """
    items: list[Item] = []
    custom_ids: set[Any] = set()
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if role == "tool":
            call_id = message.get("tool_call_id")
            kind = "custom_tool_call_output" if call_id in custom_ids else "function_call_output"
            items.append({"type": kind, "call_id": call_id, "output": m.content_text(content)})
            continue
        refusal = message.get("refusal") if role == "assistant" else None
        if isinstance(refusal, str) and refusal:  # as the Responses API replays one
            texts = [{"type": "output_text", "text": content}] if content else []
            parts = content if isinstance(content, list) else texts
            items.append(
                {"type": "message", "role": role, "content": [*parts, _refusal_part(refusal)]}
            )
        elif role != "assistant" or m.content_text(content):
            items.append({"type": "message", "role": role, "content": content})
        calls = message.get("tool_calls") if role == "assistant" else None
        for call in calls or []:
            item = _call_item(call)
            if item["type"] == "custom_tool_call":
                custom_ids.add(item["call_id"])
            items.append(item)
    return items


def _refusal_part(text: str) -> Item:
    return {"type": "refusal", "refusal": text}


def _tool(tool: Item) -> Item:
    kind = tool.get("type")
    spec = tool.get(kind) if isinstance(kind, str) else None
    if not isinstance(spec, dict):
        return dict(tool)
    if kind == "function":
        converted = {
            "type": "function",
            "name": spec.get("name"),
            "description": spec.get("description"),
            "parameters": spec.get("parameters"),
        }
        if "strict" in spec:
            converted["strict"] = spec["strict"]
        return converted
    return {**spec, "type": kind}


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") in TOOL_TYPES:
        spec = choice.get(choice["type"])
        if isinstance(spec, dict) and "name" in spec:
            return {"type": choice["type"], "name": spec["name"]}
    return choice


def to_request(body: Item) -> Item:
    """The Responses-style request `_models.plan` reads (model, tools, choice, reasoning)."""
    request: Item = {
        "model": body.get("model"),
        "tools": [_tool(t) for t in body.get("tools") or [] if isinstance(t, dict)],
        "tool_choice": _tool_choice(body.get("tool_choice") or "auto"),
    }
    if body.get("reasoning_effort") is not None:
        request["reasoning"] = {"effort": body["reasoning_effort"]}
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object"):
        spec = fmt.get("json_schema") if fmt["type"] == "json_schema" else {}
        request["text"] = {
            "format": {**(spec if isinstance(spec, dict) else {}), "type": fmt["type"]}
        }
    return request


def budget(body: Item) -> int | None:
    """`max_completion_tokens`, else the legacy `max_tokens`, else no budget."""
    for name in ("max_completion_tokens", "max_tokens"):
        if _is_int(body.get(name)):
            return int(body[name])
    return None
