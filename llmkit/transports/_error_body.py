"""An error answer's body, from either transport, as a typed and redacted `APIStatusError`.

A refused HTTP request and a refused WebSocket upgrade carry the same kinds of body
(OpenAI's nested ``error`` object, a gateway's flat fields or ``{"error": "..."}``, or
plain text), so both transports build their error here from the bytes they read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from llmkit.exceptions import APIStatusError, redact, redact_tree, status_error

__all__ = ["error_from_body"]

_MESSAGE_CHARS = 1000


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _error_fields(body: Any) -> dict[str, Any]:
    """Pick message, code, param and type out of an error body of any known shape.

    OpenAI nests them under ``error``; some gateways send them flat, or send
    ``{"error": "..."}``. The nested form wins, as in PROTOCOL.md §8.6. Anything else
    yields no fields and the caller falls back to the raw text.
    """
    fields: Any = body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            fields = error
        elif isinstance(error, str):
            fields = {"message": error}
    if not isinstance(fields, dict):
        return {}
    return {
        "message": _str_or_none(fields.get("message")),
        "code": _str_or_none(fields.get("code")),
        "param": _str_or_none(fields.get("param")),
        "error_type": _str_or_none(fields.get("type")),
    }


def error_from_body(
    status: int,
    headers: Mapping[str, str],
    raw: bytes | bytearray | None,
    secrets: Sequence[str],
    *,
    fallback: str,
) -> APIStatusError:
    """The `APIStatusError` for ``status`` and the first bytes of its body.

    The message is the body's own, else its text, else ``fallback``. The decoded body is
    redacted rather than the raw text alone, because a JSON escape (``\\/``) can hide a
    secret from a plain substring search.
    """
    text_raw = bytes(raw or b"").decode("utf-8", "replace")
    text = redact(text_raw, secrets)
    body: Any
    try:
        body = redact_tree(json.loads(text_raw), secrets)
    except (ValueError, RecursionError):  # not JSON, or nested too deeply to keep
        body = text or None
    fields = _error_fields(body)
    message = fields.pop("message", None) or text.strip()[:_MESSAGE_CHARS] or fallback
    lowered = {str(name).lower(): str(value) for name, value in headers.items()}
    return status_error(
        status,
        message,
        request_id=lowered.get("x-request-id"),
        headers={name: redact(value, secrets) for name, value in lowered.items()},
        body=body,
        **fields,
    )
