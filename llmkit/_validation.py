"""Readable errors for wrong input: pydantic errors as one line quoting no input value,
wrong types named.

A value of the wrong type would otherwise travel until it is encoded and fail there,
far from its cause (``AssertionError: Expected code to be unreachable``). These checks
run where the value is given, once, and say what was found and what was expected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from llmkit.exceptions import UsageError

__all__ = [
    "PROVIDERS",
    "checked_prompt",
    "checked_provider_options",
    "checked_sequence",
    "checked_tools",
    "describe_validation_error",
    "is_sequence",
]

PROVIDERS = frozenset({"openai"})
"""The provider names `Call.provider_options` may use (`LanguageModel.provider`)."""


def describe_validation_error(exc: ValidationError, root: str = "value") -> str:
    """One ``field: message`` per problem, joined; ``root`` names a top-level problem.

    Built from ``loc`` and ``msg`` only: ``str(exc)`` quotes each input value (cut at
    a width), and a value from a server can hold a credential. Raise the result
    ``from None`` for the same reason: the chained `ValidationError` would quote it.
    """
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or root}: {err['msg']}" for err in exc.errors()
    )


def is_sequence(value: Any) -> bool:
    """Whether ``value`` can be a sequence of items (a str, bytes or dict cannot)."""
    return isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping)


def _names(types: tuple[type, ...]) -> str:
    *first, last = (t.__name__ for t in types)
    return f"{', '.join(first)} or {last}" if first else last


def checked_sequence(
    owner: str, values: Any, types: tuple[type, ...], single: str = ""
) -> tuple[Any, ...]:
    """``values`` as a tuple whose items are each one of ``types``.

    Raises:
        UsageError: naming ``owner``, the item (or value) of the wrong type and the
            types expected; ``single`` names what may stand in for the sequence.
    """
    if not is_sequence(values):
        raise UsageError(
            f"{owner} takes {single}a sequence of {_names(types)}, not a {type(values).__name__}"
        )
    value = tuple(values)
    for index, item in enumerate(value):
        if not isinstance(item, types):
            raise UsageError(
                f"{owner}[{index}] is a {type(item).__name__}; expected {_names(types)}"
            )
    return value


_DICT_HELP = (
    "only {'role': 'system' | 'developer' | 'user' | 'assistant', 'content': str} is "
    "converted; build other messages with SystemMessage, UserMessage (TextPart, "
    "ImagePart, FilePart), AssistantMessage or ToolMessage (ToolResult)"
)


def checked_prompt(
    prompt: Any, kinds: tuple[type, ...], from_dict: Mapping[str, Callable[[str], Any]]
) -> tuple[Any, ...]:
    """The messages of ``Call(prompt)``: a str is one user message (``from_dict["user"]``),
    a sequence holds messages (``kinds``) or OpenAI text dicts (made by ``from_dict``).

    Messages already (each turn of a tool loop) cost one ``isinstance`` each.

    Raises:
        UsageError: anything else, naming the item and what was expected.
    """
    if isinstance(prompt, str):
        return (from_dict["user"](prompt),)
    if not is_sequence(prompt):
        hint = " (wrap one message in a list)" if isinstance(prompt, kinds) else ""
        raise UsageError(
            f"Call.prompt is a {type(prompt).__name__}; expected a str (one user message) "
            f"or a sequence of messages ({_names(kinds)}){hint}"
        )
    messages = tuple(prompt)
    if all(isinstance(message, kinds) for message in messages):
        return messages
    return tuple(_message(index, item, kinds, from_dict) for index, item in enumerate(messages))


def _message(
    index: int, value: Any, kinds: tuple[type, ...], from_dict: Mapping[str, Callable[[str], Any]]
) -> Any:
    """One prompt item: a message as it is, a plain OpenAI-style text dict converted."""
    if isinstance(value, kinds):
        return value
    if isinstance(value, Mapping):
        role, content = value.get("role"), value.get("content")
        if set(value) == {"role", "content"} and isinstance(content, str):
            make = from_dict.get(role) if isinstance(role, str) else None
            if make is not None:
                return make(content)
        raise UsageError(f"Call.prompt[{index}] is a dict llmkit cannot convert: {_DICT_HELP}")
    hint = ""
    if isinstance(value, str):
        hint = ": a prompt is one str, or messages (UserMessage(text) for each user text)"
    raise UsageError(
        f"Call.prompt[{index}] is a {type(value).__name__}; expected a message "
        f"({_names(kinds)}){hint}"
    )


def checked_tools(tools: Any, kinds: tuple[type, ...]) -> tuple[Any, ...]:
    """``Call(tools=...)``: declarations of ``kinds`` only (`checked_sequence`); a Python
    function is refused with the two ways to use it (a call cannot run it).

    Raises:
        UsageError: not a sequence, or an item that is not one of ``kinds``.
    """
    value = tuple(tools) if is_sequence(tools) else tools
    for index, item in enumerate(value if isinstance(value, tuple) else ()):
        help_text = None if isinstance(item, kinds) else _function_tool_help(item)
        if help_text is not None:
            raise UsageError(f"Call.tools[{index}] {help_text}")
    return checked_sequence("Call.tools", value, kinds)


def _function_tool_help(item: Any) -> str | None:
    """What to do with a Python function (or `CallableTool`) given as a `Call` tool;
    None when ``item`` is neither."""
    spec = getattr(item, "spec", None)
    if spec is not None and isinstance(getattr(spec, "name", None), str):  # a CallableTool
        name = spec.name
    elif callable(item):
        name = getattr(item, "__name__", type(item).__name__)
    else:
        return None
    return (
        f"is the Python function {name!r}; a Call only declares tools (FunctionTool, "
        f"ProviderTool): to have llmkit run it, pass it to ToolLoop(model, [{name}]); "
        f"to declare it, use llmkit.tool({name}).spec"
    )


def checked_provider_options(options: Any) -> Mapping[str, Any] | None:
    """``Call.provider_options``: None, or a mapping keyed by names of `PROVIDERS`.

    One rule for every API and transport: a misspelt provider name would otherwise be
    ignored, and its options with it.

    Raises:
        UsageError: not a mapping, or a key that names no provider llmkit knows.
    """
    if options is None:
        return None
    if not isinstance(options, Mapping):
        raise UsageError(
            f"Call.provider_options is a {type(options).__name__}; expected a dict of "
            "provider name to options, e.g. {'openai': {...}}"
        )
    unknown = sorted(repr(name) for name in options if name not in PROVIDERS)
    if unknown:
        known = ", ".join(repr(name) for name in sorted(PROVIDERS))
        raise UsageError(
            f"Call.provider_options names no provider llmkit knows: {', '.join(unknown)} "
            f"(known providers: {known})"
        )
    return options
