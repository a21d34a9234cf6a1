"""Server-side compaction (``context_management``), as the local server does it. Pure.

The real service (PROTOCOL.md §3.3; OpenAI's compaction guide): a request with
``context_management: [{"type": "compaction", "compact_threshold": N}]`` (N >= 1000)
whose rendered context passes N tokens gets a compaction pass first. The response streams
a ``compaction`` output item, opaque and encrypted, that carries everything before it; the
model then answers from that compacted context. Later input carries the item like any
output item: the latest compaction item stands for every item before it (those may be
sent too, and are then superseded, or pruned by the caller), and a chained request
continues from the compacted context.

Here the item's ``encrypted_content`` is the conversation it replaces, signed (like the
scripted reasoning's), so the model sees exactly what it would have without compaction
and answers the same, plus ``compactions=C`` in its counts: a client that loses the item
gets a visibly different answer. A compaction item renders as a tenth of the tokens of
what it carries, so the rendered context shrinks and grows again. The check is made once,
on the input, before the answer (the real service may also compact mid-answer).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmkit.testing._events import ApiError, new_id
from llmkit.testing._models import item_tokens, item_type, seal, unseal

Item = dict[str, Any]

MIN_THRESHOLD = 1000
DEFAULT_THRESHOLD = 100_000
"""Without ``compact_threshold`` (the real default is the service's own)."""
_KEY = b"llmkit.testing compaction key v1"
_PREFIX = "gAAAAAC"


@dataclass(frozen=True, slots=True)
class View:
    """The conversation as the model sees it: the latest compaction item expanded."""

    items: list[Item]
    """Every item the context carries, compaction items replaced by what they carry."""
    compactions: int
    """How many compactions the context went through."""


def _bad(message: str, param: str, code: str) -> ApiError:
    return ApiError(400, message, code=code, param=param)


def check_settings(value: Any) -> ApiError | None:
    """The 400 the real endpoint gives for a malformed ``context_management``."""
    if value is None:
        return None
    if not isinstance(value, list):
        msg = "Invalid type for 'context_management': expected an array."
        return _bad(msg, "context_management", "invalid_type")
    for index, entry in enumerate(value):
        where = f"context_management[{index}]"
        if not isinstance(entry, dict) or entry.get("type") != "compaction":
            kind = entry.get("type") if isinstance(entry, dict) else None
            return _bad(f"Invalid value: '{kind}'.", f"{where}.type", "invalid_value")
        threshold = entry.get("compact_threshold")
        if threshold is None:
            continue
        if not isinstance(threshold, int) or isinstance(threshold, bool):
            msg = f"Invalid type for '{where}.compact_threshold': expected an integer."
            return _bad(msg, f"{where}.compact_threshold", "invalid_type")
        if threshold < MIN_THRESHOLD:
            msg = (
                f"Invalid '{where}.compact_threshold': integer below minimum value. "
                f"Expected a value >= {MIN_THRESHOLD}, but got {threshold} instead."
            )
            return _bad(msg, f"{where}.compact_threshold", "integer_below_min_value")
    return None


def threshold(request: Item) -> int | None:
    """The token count that triggers compaction for ``request`` (validated); None: off."""
    entries = request.get("context_management") or []
    found = [e.get("compact_threshold") or DEFAULT_THRESHOLD for e in entries]
    return min(found) if found else None


# -- the item ---------------------------------------------------------------------------
def _seal(payload: Item) -> str:
    return seal(_KEY, _PREFIX, json.dumps(payload, separators=(",", ":")).encode())


def _open(token: Any) -> Item | None:
    """The payload of a compaction item's ``encrypted_content``; None if not ours."""
    data = unseal(_KEY, _PREFIX, token)
    payload = json.loads(data) if data is not None else None
    return payload if isinstance(payload, dict) else None


def verify(item: Item) -> ApiError | None:
    """The 400 for a compaction input item whose content this server did not make."""
    if _open(item.get("encrypted_content")) is not None:
        return None
    msg = f"The encrypted content for item {item.get('id')} could not be verified."
    return ApiError(400, msg, code="invalid_encrypted_content", param=None)


def new_item(view: View) -> Item:
    """A compaction item carrying ``view`` (one more compaction than it went through)."""
    payload = {"compactions": view.compactions + 1, "items": view.items}
    return {"id": new_id("cmp"), "type": "compaction", "encrypted_content": _seal(payload)}


def _latest(conversation: Sequence[Item]) -> tuple[int, Item] | None:
    """The index and payload of the latest compaction item this server made."""
    for index in range(len(conversation) - 1, -1, -1):
        item = conversation[index]
        if item_type(item) == "compaction":
            payload = _open(item.get("encrypted_content"))
            if payload is not None:
                return index, payload
    return None


def expand(conversation: Sequence[Item]) -> View:
    """What the model sees: the latest compaction item's items, then the items after it
    (the items before it are superseded, sent or not)."""
    latest = _latest(conversation)
    if latest is None:
        return View(list(conversation), 0)
    index, payload = latest
    rest = [i for i in conversation[index + 1 :] if item_type(i) != "compaction"]
    return View([*payload["items"], *rest], int(payload["compactions"]))


def apply(request: Item, conversation: Sequence[Item], tokens: int) -> tuple[View, Item | None]:
    """What the model sees of ``conversation`` (rendered as ``tokens``) and the compaction
    item the response begins with, if ``request`` asks for compaction past its threshold."""
    view = expand(conversation)
    limit = threshold(request)
    if limit is None or tokens < limit:
        return view, None
    return View(view.items, view.compactions + 1), new_item(view)


def rendered_tokens(conversation: Sequence[Item], instructions: Any) -> int:
    """Input tokens of the context as rendered: from the latest compaction item on, which
    counts a tenth of what it carries (``_models.input_tokens`` otherwise)."""
    extra = len(instructions) // 4 if isinstance(instructions, str) else 0
    latest = _latest(conversation)
    if latest is None:
        return sum(item_tokens(i) for i in conversation) + extra
    index, payload = latest
    carried = sum(item_tokens(i) for i in payload["items"]) // 10 + 1
    return carried + sum(item_tokens(i) for i in conversation[index + 1 :]) + extra
