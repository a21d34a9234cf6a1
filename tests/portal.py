"""Drive an `AsyncProvider` from synchronous tests, so one behaviour suite runs on both.

A `Portal` is an event loop on its own thread; `PortalProvider` and `PortalModel` hand
each call to it and wait for the answer (the pattern of anyio's blocking portal). The
async code under test runs unchanged: real tasks on a real loop over real sockets. Only
the waiting is done by the test's thread. Exceptions come back as the very objects the
async code raised, ``partial`` included.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, Self, TypeVar, overload

import llmkit
from llmkit._schema import OutputSchema

T = TypeVar("T")

WAIT = 60.0
"""Longest wait for one call; pytest-timeout ends a stuck test before this anyway."""


class Portal:
    """An event loop running on a daemon thread until `close`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="portal", daemon=True)
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(WAIT)

    def close(self) -> None:
        """Finish pending async generators, stop the loop and join its thread."""
        self.call(self.loop.shutdown_asyncgens())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT)
        self.loop.close()


class PortalModel(llmkit.LanguageModel):
    """An `AsyncLanguageModel` behind the `LanguageModel` interface."""

    def __init__(self, model: llmkit.AsyncLanguageModel, portal: Portal) -> None:
        self.model = model
        self.provider = model.provider
        self.model_id = model.model_id
        self._portal = portal

    def _stream(
        self, call: llmkit.Call | str, max_duration: float | None, output: OutputSchema[Any] | None
    ) -> llmkit.Stream:
        stream = self.model._stream(call, max_duration, output)
        pulled = llmkit.Stream(self._pull(stream))
        if stream._steering is not None:
            pulled._steering = PortalSteer(stream, self._portal)
        return pulled

    @overload
    def stream(
        self,
        call: llmkit.Call | str,
        *,
        output_type: None = None,
        max_duration: float | None = None,
    ) -> llmkit.Stream: ...
    @overload
    def stream(
        self, call: llmkit.Call | str, *, output_type: type[T], max_duration: float | None = None
    ) -> llmkit.ParsedStream[T]: ...
    @overload
    def stream(
        self, call: llmkit.Call | str, *, output_type: Any, max_duration: float | None = None
    ) -> llmkit.ParsedStream[Any]: ...
    def stream(
        self, call: llmkit.Call | str, *, output_type: Any = None, max_duration: float | None = None
    ) -> llmkit.Stream:
        """The async model's own stream (a parsed one for ``output_type``), pulled here."""
        stream: llmkit.AsyncStream = self.model.stream(
            call, output_type=output_type, max_duration=max_duration
        )
        if isinstance(stream, llmkit.AsyncParsedStream):
            pulled: llmkit.Stream = PortalParsedStream(self._pull(stream), stream)
        else:
            pulled = llmkit.Stream(self._pull(stream))
        if stream._steering is not None:
            pulled._steering = PortalSteer(stream, self._portal)
        return pulled

    def _pull(self, stream: llmkit.AsyncStream) -> Iterator[llmkit.StreamPart]:
        try:
            while True:
                try:
                    part = self._portal.call(stream.__anext__())
                except StopAsyncIteration:
                    return
                yield part
        finally:
            self._portal.call(stream.aclose())

    @overload
    def generate(
        self,
        call: llmkit.Call | str,
        *,
        output_type: None = None,
        max_duration: float | None = None,
    ) -> llmkit.Response: ...
    @overload
    def generate(
        self, call: llmkit.Call | str, *, output_type: type[T], max_duration: float | None = None
    ) -> llmkit.ParsedResponse[T]: ...
    @overload
    def generate(
        self, call: llmkit.Call | str, *, output_type: Any, max_duration: float | None = None
    ) -> llmkit.ParsedResponse[Any]: ...
    def generate(
        self, call: llmkit.Call | str, *, output_type: Any = None, max_duration: float | None = None
    ) -> llmkit.Response:
        response: llmkit.Response = self._portal.call(
            self.model.generate(call, output_type=output_type, max_duration=max_duration)
        )
        return response

    def warmup(
        self, call: llmkit.Call | str, *, output_type: Any = None, max_duration: float | None = None
    ) -> llmkit.WarmupResult:
        return self._portal.call(
            self.model.warmup(call, output_type=output_type, max_duration=max_duration)
        )

    def __repr__(self) -> str:
        return repr(self.model)


class PortalSteer:
    """``steer()`` of a pulled stream: the async stream's own, awaited on the portal."""

    def __init__(self, stream: llmkit.AsyncStream, portal: Portal) -> None:
        self._stream = stream
        self._portal = portal

    def steer(self, messages: tuple[llmkit.UserMessage, ...]) -> None:
        self._portal.call(self._stream.steer(messages))

    async def asteer(self, messages: tuple[llmkit.UserMessage, ...]) -> None:
        raise AssertionError("a pulled stream is steered with steer()")

    @property
    def unapplied(self) -> tuple[llmkit.UserMessage, ...]:
        return self._stream.unapplied_steers


class PortalParsedStream(llmkit.ParsedStream[Any]):
    """A sync view of an `AsyncParsedStream`: its parts pulled through the portal, its
    ``partial_output`` and ``response`` (and so its one parse) the async stream's own."""

    def __init__(self, parts: Iterator[llmkit.StreamPart], stream: llmkit.AsyncParsedStream[Any]):
        super().__init__(parts, stream._answer.output)
        self._stream = stream

    def _complete(self) -> None:
        """The async stream raised its own error from the iteration already."""

    @property
    def partial_output(self) -> Any:
        return self._stream.partial_output

    @property
    def response(self) -> llmkit.ParsedResponse[Any]:
        return self._stream.response


class PortalProvider:
    """An `AsyncProvider` made, used and closed on its own `Portal`."""

    def __init__(self, **options: Any) -> None:
        self._portal = Portal()
        self.provider = self._portal.call(_make(options))

    def language_model(self, model_id: str) -> llmkit.LanguageModel:
        return PortalModel(self.provider.language_model(model_id), self._portal)

    def close(self) -> None:
        try:
            self._portal.call(self.provider.aclose())
        finally:
            self._portal.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.provider, name)

    def __repr__(self) -> str:
        return repr(self.provider)


async def _make(options: dict[str, Any]) -> llmkit.AsyncProvider:
    return llmkit.AsyncProvider(**options)
