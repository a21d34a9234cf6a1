"""What gateways in front of WebSocket mode do (LiteLLM's relay, corporate proxies).

Three behaviours seen in the wild, so the client's suites can meet them on loopback:

* **Fake warm-ups** (``ws_fake_warmups``): the gateway answers ``generate: false`` itself
  with ``response.created`` + ``response.completed``, a synthetic ``resp_warmup_…`` id and
  0 input tokens, and keeps nothing. A later ``previous_response_id`` naming such an id is
  dropped before the request goes upstream, so a chained turn that sends 0 new items
  reaches the model as an empty conversation (the scripted answer shows it:
  ``Echo:  [user=0 … items=0]``).
* **Error frames in every shape** (``faults.error_next(shape=...)``): the nested
  envelope, the flat SSE event, a bare string (``{"type": "error", "error": "..."}``),
  ``status_code`` instead of ``status``, with the status or the code left out.
* **A close with no event** (``faults.close_on_create``): the socket is closed cleanly
  right after a ``response.create``, before any event.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from llmkit.testing._events import ApiError, Event, ResponseMeta, render_warmup
from llmkit.testing._faults import ErrorFault

FAKE_WARMUP_PREFIX = "resp_warmup_"


def fake_warmup(body: dict[str, Any]) -> tuple[str, list[Event]]:
    """The id and the events a gateway answers a ``generate: false`` create with itself."""
    request = {k: v for k, v in body.items() if k not in ("type", "generate", "stream")}
    meta = ResponseMeta(FAKE_WARMUP_PREFIX + secrets.token_hex(12), int(time.time()), request)
    events = render_warmup(meta, 0, 0).events
    return meta.id, [event for event in events if isinstance(event, dict)]


def without_fake_chain(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as the gateway forwards it: a fake warm-up's id is not sent upstream."""
    previous = body.get("previous_response_id")
    if isinstance(previous, str) and previous.startswith(FAKE_WARMUP_PREFIX):
        return {k: v for k, v in body.items() if k != "previous_response_id"}
    return body


def error_frame(fault: ErrorFault, sequence_number: int | None = None) -> Event:
    """An armed error in its shape (`llmkit.testing._faults.ErrorShape`).

    ``nested`` (PROTOCOL.md §6.2) and ``status_code`` (the same, Codex's alias) carry the
    status when there is one; ``flat`` is the documented SSE event (no status);
    ``string`` is ``{"type": "error", "error": "<message>"}`` plus the status if any. A
    code of None is left out of the frame altogether.
    """
    error = ApiError(fault.status or 500, fault.message, fault.code, fault.param, fault.type)
    if fault.shape == "flat":
        event = error.flat(sequence_number or 0)
        if fault.code is None:
            del event["code"]
        return event
    if fault.shape == "string":
        event = {"type": "error", "error": fault.message}
    else:
        event = error.nested(sequence_number)
        del event["status"]
        if fault.code is None:
            del event["error"]["code"]
    if fault.status is not None:
        event["status_code" if fault.shape == "status_code" else "status"] = fault.status
    return event
