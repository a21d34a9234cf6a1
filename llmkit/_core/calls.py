"""What every model does first on a call, whatever its provider."""

from __future__ import annotations

from typing import Protocol

from llmkit._closing import closed_error
from llmkit._deadline import call_limit

__all__ = ["start_call"]


class _Closable(Protocol):
    @property
    def closed(self) -> bool: ...


def start_call(http: _Closable, max_duration: float | None, default: float | None) -> float | None:
    """Refuse the call once the provider closed (its HTTP transport says so), then
    settle its ``max_duration`` (its own, else ``default``).

    Raises:
        UsageError: the provider is closed, or ``max_duration`` is not seconds > 0.
    """
    if http.closed:
        raise closed_error()
    return call_limit(max_duration, default)
