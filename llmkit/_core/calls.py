"""What every model keeps and does first on a call, whatever its provider."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from llmkit._closing import closed_error
from llmkit._deadline import call_limit
from llmkit._otel import CallTrace, Site, call_trace
from llmkit._schema import OutputSchema
from llmkit.messages import Call, WarmupResult
from llmkit.stream import Collector, StreamPart

__all__ = ["Encode", "Encoded", "ModelBase", "Started", "start_call"]


class _Closable(Protocol):
    @property
    def closed(self) -> bool: ...


class Encoded(Protocol):
    """A call encoded for a provider: the request body and the warnings encoding gave."""

    @property
    def body(self) -> dict[str, Any]: ...

    @property
    def warnings(self) -> tuple[str, ...]: ...


Encode = Callable[[str, Call | str, OutputSchema[Any] | None], Encoded]
"""A provider's encoder: model id, call and the structured output asked for (or None)."""

OpenerT = TypeVar("OpenerT", bound=_Closable)


def start_call(http: _Closable, max_duration: float | None, default: float | None) -> float | None:
    """Refuse the call once the provider closed (its HTTP transport says so), then
    settle its ``max_duration`` (its own, else ``default``).

    Raises:
        UsageError: the provider is closed, or ``max_duration`` is not seconds > 0.
    """
    if http.closed:
        raise closed_error()
    return call_limit(max_duration, default)


@dataclass(frozen=True, slots=True)
class Started:
    """A call that may go out: its body, warnings, ``max_duration``, its one fold, and
    its trace (None: not traced, the usual case; ``llmkit._otel``)."""

    body: dict[str, Any]
    warnings: tuple[str, ...]
    limit: float | None
    collector: Collector
    trace: CallTrace | None = None

    def parts(self, parts: Iterator[StreamPart]) -> Iterator[StreamPart]:
        """The call's parts, inside its span when it is traced (else ``parts`` itself)."""
        return parts if self.trace is None else self.trace.parts(parts, self.collector)

    def aparts(self, parts: AsyncGenerator[StreamPart, None]) -> AsyncGenerator[StreamPart, None]:
        """`parts` for an async stream."""
        return parts if self.trace is None else self.trace.aparts(parts, self.collector)

    def warmup(self, run: Callable[[], WarmupResult]) -> WarmupResult:
        """Run the warm-up, inside its span when it is traced."""
        return run() if self.trace is None else self.trace.warmup(run)

    async def awarmup(self, run: Awaitable[WarmupResult]) -> WarmupResult:
        """`warmup` for an awaited warm-up."""
        return await (run if self.trace is None else self.trace.awarmup(run))


class ModelBase(Generic[OpenerT]):
    """What every model keeps (its id, its provider's HTTP transport, the provider's
    ``max_duration``) and does first on a call (`start`), sync or async."""

    provider: str
    _site: Site | None = None
    """Where the provider's calls go, for their traces (set by the provider)."""

    def __init__(self, model_id: str, *, http: OpenerT, max_duration: float | None = None) -> None:
        self.model_id = model_id
        self._http = http
        self._max_duration = max_duration

    def _start(
        self,
        call: Call | str,
        max_duration: float | None,
        encode: Encode,
        output: OutputSchema[Any] | None = None,
        operation: str = "chat",
    ) -> Started:
        """Refuse the call on a closed provider, settle its ``max_duration``, encode it
        (with ``output``'s schema when given), and give it the `Collector` every protocol
        of the call folds into and its stream reads, and its trace when one is
        configured (decided here, once per call; ``operation`` names its span).

        Raises:
            UsageError: the provider is closed, ``max_duration`` is not seconds > 0, or
                ``call`` cannot be encoded.
        """
        limit = start_call(self._http, max_duration, self._max_duration)
        encoded = encode(self.model_id, call, output)
        trace = call_trace(self._site, self.provider, self.model_id, call, operation)
        return Started(encoded.body, encoded.warnings, limit, Collector(), trace)
