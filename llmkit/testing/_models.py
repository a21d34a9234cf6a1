"""Deterministic scripted models: the full conversation in, a plan of output items out.

Everything here is a pure function of its arguments, so the answers are reproducible and
a client that sends the wrong context (a dropped, reordered or duplicated item) gets a
visibly different answer instead of a plausible one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llmkit.testing._values import Seed, json_answer, requested_schema

Item = dict[str, Any]

_STEPS = re.compile(r"\[steps=(\d+)\]")
_BENCH_WORDS = re.compile(r"bench-words-([1-9][0-9]{0,7})")
# The words of a `bench-words-<N>` answer (short, like real tokens), cycled.
_BENCH_VOCABULARY = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "again")
_TOKEN = re.compile(r"\s*\S+|\s+$")
# A fixed key keeps encrypted reasoning valid across server restarts (like one org's key).
_REASONING_KEY = b"llmkit.testing reasoning key v1"
_ENCRYPTED_PREFIX = "gAAAAAB"


@dataclass(frozen=True, slots=True)
class MessageOut:
    """An assistant message with one `output_text` part (a `refusal` part if ``refusal``)."""

    text: str
    refusal: bool = False


@dataclass(frozen=True, slots=True)
class FunctionCallOut:
    """A `function_call` item; `arguments` is the JSON string the model streams."""

    name: str
    call_id: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ReasoningOut:
    """A reasoning item with one summary part."""

    summary: str


OutputSpec = MessageOut | FunctionCallOut | ReasoningOut


@dataclass(frozen=True, slots=True)
class Counts:
    """What the model can see of the conversation; quoted in every text answer."""

    user: int
    assistant: int
    tool_outputs: int
    items: int

    def render(self, violations: int, compactions: int = 0) -> str:
        extra = f" violations={violations}" if violations else ""
        extra += f" compactions={compactions}" if compactions else ""
        return (
            f"[user={self.user} assistant={self.assistant} "
            f"tool_outputs={self.tool_outputs} items={self.items}{extra}]"
        )


# -- input normalisation and comparison -------------------------------------------------
def normalize_input(value: str | list[Item]) -> list[Item]:
    """Turn the `input` field into a list of items (a string is one user message)."""
    if isinstance(value, str):
        return [user_message(value)]
    return [dict(item) for item in value]


def user_message(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def item_type(item: Item) -> str:
    """The item's type; the easy message form (`{"role", "content"}`) has none."""
    kind = item.get("type")
    if kind is None and "role" in item:
        return "message"
    return str(kind)


def content_text(content: Any) -> str:
    """The text of a message's or tool output's content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") or p.get("refusal") or "" for p in content if isinstance(p, dict)]
        return "".join(str(t) for t in texts)
    return ""


def item_key(item: Item) -> str | None:
    """Identity of an item for duplicate detection, or None if duplicates are legitimate.

    Tool calls and outputs are identified by `call_id`; assistant messages by their text;
    reasoning by its encrypted content (or its summary), compaction items by theirs. User,
    system and developer messages may repeat, so they have no key.
    """
    kind = item_type(item)
    if kind == "compaction":
        return "compaction:" + str(item.get("encrypted_content"))
    if kind in ("function_call", "function_call_output", "custom_tool_call"):
        return f"{kind}:{item.get('call_id')}"
    if kind == "message" and item.get("role") == "assistant":
        return "assistant:" + content_text(item.get("content"))
    if kind == "reasoning":
        if item.get("encrypted_content"):
            return "reasoning:" + str(item["encrypted_content"])
        rest = {k: v for k, v in item.items() if k not in ("id", "status")}
        return "reasoning:" + json.dumps(rest, sort_keys=True)
    return None


def count_violations(prefix: Sequence[Item], new_items: Sequence[Item]) -> int:
    """How many new items repeat an item already in the conversation (or earlier in input)."""
    seen = {k for k in map(item_key, prefix) if k is not None}
    violations = 0
    for item in new_items:
        key = item_key(item)
        if key is None:
            continue
        if key in seen:
            violations += 1
        seen.add(key)
    return violations


def count(conversation: Sequence[Item]) -> Counts:
    roles = [item.get("role") for item in conversation if item_type(item) == "message"]
    outputs = [i for i in conversation if item_type(i) == "function_call_output"]
    return Counts(
        user=roles.count("user"),
        assistant=roles.count("assistant"),
        tool_outputs=len(outputs),
        items=len(conversation),
    )


# -- tokens -------------------------------------------------------------------------------
def item_tokens(item: Item) -> int:
    """A deterministic token count for one input item (characters // 4 + 1)."""
    rest = {k: v for k, v in item.items() if k not in ("id", "status")}
    return len(json.dumps(rest, sort_keys=True, ensure_ascii=False)) // 4 + 1


def input_tokens(conversation: Sequence[Item], instructions: Any) -> int:
    extra = len(instructions) // 4 if isinstance(instructions, str) else 0
    return sum(item_tokens(i) for i in conversation) + extra


def split_tokens(text: str) -> list[str]:
    """Split text into word-sized deltas whose concatenation is exactly `text`."""
    tokens = _TOKEN.findall(text)
    return tokens if "".join(tokens) == text and tokens else [text]


def split_chunks(text: str, size: int = 8) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


# -- encrypted reasoning --------------------------------------------------------------------
def seal(key: bytes, prefix: str, data: bytes) -> str:
    """``data`` signed with ``key``: an opaque token like the real service's encrypted
    content (readable, but only this server makes valid ones)."""
    mac = hmac.new(key, data, hashlib.sha256).digest()[:16]
    return prefix + base64.urlsafe_b64encode(mac + data).decode()


def unseal(key: bytes, prefix: str, token: Any) -> bytes | None:
    """The data of a token `seal` made with ``key`` and ``prefix``; None for any other."""
    if not isinstance(token, str) or not token.startswith(prefix):
        return None
    try:
        raw = base64.urlsafe_b64decode(token[len(prefix) :].encode())
    except ValueError:
        return None
    mac, data = raw[:16], raw[16:]
    expected = hmac.new(key, data, hashlib.sha256).digest()[:16]
    return data if hmac.compare_digest(mac, expected) else None


def encrypt_reasoning(item_id: str, summary: str) -> str:
    """An opaque, verifiable stand-in for the real service's encrypted reasoning."""
    payload = json.dumps({"id": item_id, "summary": summary}, separators=(",", ":")).encode()
    return seal(_REASONING_KEY, _ENCRYPTED_PREFIX, payload)


def verify_reasoning(token: Any) -> bool:
    return unseal(_REASONING_KEY, _ENCRYPTED_PREFIX, token) is not None


# -- the scripted model -----------------------------------------------------------------------
def bench_words(model: Any) -> int | None:
    """N for a `bench-words-<N>` model id (1 <= N < 10**8), else None."""
    match = _BENCH_WORDS.fullmatch(model) if isinstance(model, str) else None
    return int(match.group(1)) if match else None


def bench_text(n: int) -> str:
    """N short words separated by single spaces: `split_tokens` makes exactly N deltas."""
    vocabulary = _BENCH_VOCABULARY
    whole, rest = divmod(n, len(vocabulary))
    return " ".join(vocabulary * whole + vocabulary[:rest])


def wants_reasoning(request: Item) -> bool:
    return request.get("reasoning") is not None or "reason" in str(request.get("model", ""))


def last_user_index(conversation: Sequence[Item]) -> int:
    for index in range(len(conversation) - 1, -1, -1):
        item = conversation[index]
        if item_type(item) == "message" and item.get("role") == "user":
            return index
    return -1


def _number(text: str) -> int | float:
    try:
        value = float(text.strip())
    except ValueError:
        return 0
    if value != value or value in (float("inf"), float("-inf")):
        return 0
    return int(value) if value.is_integer() else value


def _schema_type(schema: Any) -> str | None:
    kind = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else None


def build_arguments(tool: Item, step: int, last_output: str, last_user: str) -> dict[str, Any]:
    """Arguments from the tool's JSON schema (see the `llmkit.testing` docstring)."""
    params = tool.get("parameters")
    props = params.get("properties") if isinstance(params, dict) else None
    if not isinstance(props, dict):
        return {}
    numeric = ("integer", "number")
    add_style = _schema_type(props.get("a")) in numeric and _schema_type(props.get("b")) in numeric
    args: dict[str, Any] = {}
    for name, schema in props.items():
        kind = _schema_type(schema)
        if add_style and name in ("a", "b"):
            args[name] = _number(last_output) if name == "a" else step
        elif isinstance(schema, dict) and isinstance(schema.get("enum"), list) and schema["enum"]:
            args[name] = schema["enum"][0]
        elif kind in numeric:
            args[name] = step
        elif kind == "boolean":
            args[name] = True
        elif kind == "array":
            args[name] = []
        elif kind == "object":
            args[name] = {}
        else:
            args[name] = last_user
    return args


def _call_id(conversation: Sequence[Item], step: int, name: str) -> str:
    digest = hashlib.sha256()
    for item in conversation:
        digest.update(json.dumps(item, sort_keys=True).encode())
    digest.update(f"|{step}|{name}".encode())
    return "call_" + digest.hexdigest()[:24]


def _choose_tool(request: Item, conversation: Sequence[Item]) -> tuple[Item, int] | None:
    """The tool to call and the 1-based step number, or None to answer in text."""
    tools = [t for t in request.get("tools") or [] if isinstance(t, dict)]
    functions = [t for t in tools if t.get("type") == "function"]
    choice = request.get("tool_choice", "auto")
    if not functions or choice == "none":
        return None
    start = last_user_index(conversation)
    last_user = content_text(conversation[start].get("content")) if start >= 0 else ""
    match = _STEPS.search(last_user)
    steps = int(match.group(1)) if match else 1
    done = sum(1 for i in conversation[start + 1 :] if item_type(i) == "function_call_output")
    if done >= steps and choice != "required":
        return None
    step = done + 1
    if isinstance(choice, dict) and choice.get("name"):
        forced = [t for t in functions if t.get("name") == choice["name"]]
        if forced:
            return forced[0], step
    return functions[(step - 1) % len(functions)], step


def last_tool_output(conversation: Sequence[Item]) -> str | None:
    start = last_user_index(conversation)
    outputs = [i for i in conversation[start + 1 :] if item_type(i) == "function_call_output"]
    return content_text(outputs[-1].get("output")).strip() if outputs else None


@dataclass(frozen=True, slots=True)
class Piece:
    """One planned output item and the deltas it streams within the token budget."""

    spec: OutputSpec
    deltas: tuple[str, ...]
    complete: bool


def spend(specs: Sequence[OutputSpec], max_tokens: int | None) -> tuple[list[Piece], bool]:
    """Cut a plan at an output-token budget (one token per delta); False if it was cut.

    Text and reasoning are cut at the budget; a function call is never cut, but no item
    starts once the budget is used up. The same rule serves Responses and Chat.
    """
    budget = max_tokens if max_tokens is not None else 1 << 62
    pieces: list[Piece] = []
    used = 0
    for spec in specs:
        if used >= budget:
            return pieces, False
        if isinstance(spec, FunctionCallOut):
            chunks = tuple(split_chunks(spec.arguments))
            pieces.append(Piece(spec, chunks, True))
            used += len(chunks)
            continue
        tokens = split_tokens(spec.summary if isinstance(spec, ReasoningOut) else spec.text)
        kept = tuple(tokens[: budget - used])
        pieces.append(Piece(spec, kept, len(kept) == len(tokens)))
        used += len(kept)
        if len(kept) < len(tokens):
            return pieces, False
    return pieces, True


def plan(
    request: Item, conversation: Sequence[Item], violations: int, compactions: int = 0
) -> list[OutputSpec]:
    """The scripted model: what to output for this conversation (``compactions``: how many
    compactions it went through, `_compaction`)."""
    counts = count(conversation)
    start = last_user_index(conversation)
    last_user = content_text(conversation[start].get("content")) if start >= 0 else ""
    output = last_tool_output(conversation)
    chosen = _choose_tool(request, conversation)
    final: OutputSpec
    if chosen is not None:
        tool, step = chosen
        name = str(tool.get("name"))
        arguments = build_arguments(tool, step, output or "", last_user)
        action = f"call `{name}` (step {step})"
        final = FunctionCallOut(
            name, _call_id(conversation, step, name), json.dumps(arguments, separators=(",", ":"))
        )
    elif (words := bench_words(request.get("model"))) is not None:
        action = "answer directly"
        final = MessageOut(bench_text(words))
    elif (schema := requested_schema(request)) is not None:
        action = "answer in the requested format"
        number = _number(output) if output is not None else counts.user
        final = MessageOut(json_answer(schema, Seed(last_user, number)))
    elif output is not None:
        action = "answer directly"
        final = MessageOut(f"The answer is {output}. {counts.render(violations, compactions)}")
    else:
        action = "answer directly"
        final = MessageOut(f"Echo: {last_user} {counts.render(violations, compactions)}")
    if not wants_reasoning(request):
        return [final]
    summary = (
        f"**Planning**\n\nThe conversation has {counts.items} items and "
        f"{counts.tool_outputs} tool outputs. I will {action}."
    )
    return [ReasoningOut(summary), final]


def answer_faults(
    specs: Sequence[OutputSpec], take: Callable[[], tuple[str | None, bool]]
) -> list[OutputSpec]:
    """The plan with an armed answer fault (``take``, called only for a plan that ends in
    a text answer) applied to that answer: a refusal in its place, or its last character
    cut (a JSON answer is then no JSON). A plan that ends in a tool call is left as is."""
    final = specs[-1] if specs else None
    if not isinstance(final, MessageOut):
        return list(specs)
    refusal, invalid_json = take()
    if refusal is not None:
        final = MessageOut(refusal, refusal=True)
    elif invalid_json:
        final = MessageOut(final.text[:-1])
    return [*specs[:-1], final]
