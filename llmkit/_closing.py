"""``with`` and ``async with`` for every class whose `close`/`aclose` releases it, and the
errors of a provider used after its close or on another event loop."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

from llmkit.exceptions import UsageError

__all__ = ["AsyncClosing", "Closing", "bind_loop", "closed_error", "other_loop_error"]


def closed_error() -> UsageError:
    """What every call of a closed provider raises (nothing is sent or opened)."""
    return UsageError("the provider is closed: make calls before close(), or make a new provider")


def other_loop_error() -> UsageError:
    """What an `AsyncProvider` used or closed on another event loop raises."""
    return UsageError(
        "this AsyncProvider belongs to another event loop (the one it was first used on): "
        "use and close it there; its connections can only be closed by that loop"
    )


def bind_loop(bound: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
    """The running event loop, which must be ``bound`` once something is bound to one.

    Raises:
        UsageError: ``bound`` is another loop (`other_loop_error`).
    """
    loop = asyncio.get_running_loop()
    if bound is not None and bound is not loop:
        raise other_loop_error()
    return loop


class Closing:
    """``with obj:`` calls ``obj.close()`` on the way out."""

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClosing:
    """``async with obj:`` awaits ``obj.aclose()`` on the way out."""

    __slots__ = ()

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
