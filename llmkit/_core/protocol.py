"""What every sans-I/O event protocol shares: its lifecycle, its fold, its errors.

A protocol folds each part it makes into a `Collector` (its own, or the call's when a
model gives one) and keeps only per-item state; the text that arrived so far is read
back from the collector. It does not fold its `Finish`: it keeps it as `final`, and
whoever hands the parts on folds it (the protocol loop, once stamped), so a collector
is finished only once its consumer has the `Finish`. Every error a protocol raises
carries ``partial``, from `give_partial`, also when it is used on its own.
"""

from __future__ import annotations

from enum import Enum
from typing import NoReturn

from llmkit.exceptions import APIError, LLMKitError
from llmkit.messages import FinishReason, Response, ResponseMetadata, Usage
from llmkit.stream import Collector, Finish, StreamPart, give_partial

__all__ = ["ProtocolBase", "State"]


class State(Enum):
    """Where the protocol is in a response's lifecycle."""

    WAITING = "waiting"  # nothing yet, or only events before the response started
    STREAMING = "streaming"  # the response started, no terminal event yet
    DONE = "done"  # a terminal event arrived (completed, incomplete, failed, error)
    BROKEN = "broken"  # a payload broke the protocol; nothing more is read


class ProtocolBase:
    """The state, ids, fold and failures common to `ResponsesProtocol` and `ChatProtocol`.

    Args:
        collector: Where the parts are folded; a new one when None (the protocol used
            on its own).
    """

    def __init__(self, collector: Collector | None = None) -> None:
        self.state = State.WAITING
        self.response_id: str | None = None
        self.model: str | None = None
        self.collector = Collector() if collector is None else collector
        self.final: Finish | None = None
        """The terminal `Finish` (reason ``ERROR`` when the response failed), not folded."""

    @property
    def done(self) -> bool:
        """Whether the response is over (terminal event seen, or the stream broke)."""
        return self.state in (State.DONE, State.BROKEN)

    def metadata(self) -> ResponseMetadata:
        """The ids the response stated so far."""
        return ResponseMetadata(response_id=self.response_id, model=self.model)

    def partial(self) -> Response:
        """Everything folded so far, as a `Response` (with `final` when there is one)."""
        return self.collector.build(metadata=self.metadata(), finish=self.final)

    def _fold(self, parts: list[StreamPart]) -> list[StreamPart]:
        """Fold ``parts`` (all but a `Finish`: see `final`) and return them."""
        add = self.collector.add
        for part in parts:
            if type(part) is not Finish:
                add(part)
        return parts

    def _end(self, finish: Finish) -> list[StreamPart]:
        """The response is over with ``finish``: the last part, kept, not folded."""
        self.state = State.DONE
        self.final = finish
        return [finish]

    def _fail(self, error: APIError, usage: Usage) -> NoReturn:
        """The response failed: raise ``error`` with a partial that says so."""
        self.state = State.DONE
        self.final = Finish(FinishReason.ERROR, usage, self.metadata())
        self._raise(error)

    def _broke(self, error: LLMKitError) -> NoReturn:
        """A payload (or the end of input) broke the protocol: raise ``error``."""
        self.state = State.BROKEN
        self._raise(error)

    def _raise(self, error: LLMKitError) -> NoReturn:
        give_partial(error, self.collector, self.metadata(), self.final)
        raise error
