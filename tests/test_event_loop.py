"""An `AsyncProvider` belongs to the event loop it was first used on.

Closing (or using) it on another loop is a `UsageError` that says so, raised before
anything is touched, so it can still be closed on its own loop; and each provider
refuses the other's kind of httpx client at construction.
"""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections.abc import Iterator

import httpx
import pytest
from loop import PATHS, async_provider

import llmkit
from llmkit.testing import ResponsesServer

OTHER_LOOP = "belongs to another event loop"


@pytest.fixture
def own_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _all_closed(server: ResponsesServer) -> bool:
    for _ in range(250):  # at most 5 s
        if not any(c.open for c in server.stats.connections):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("path", PATHS)
def test_aclose_on_another_loop_says_so_and_closes_nothing(
    server: ResponsesServer, path: str, own_loop: asyncio.AbstractEventLoop
) -> None:
    p = async_provider(server, path)
    model = p.language_model("scripted")
    own_loop.run_until_complete(model.generate(llmkit.Call("on my loop")))
    with pytest.raises(llmkit.UsageError, match=OTHER_LOOP):
        asyncio.run(p.aclose())
    # Nothing was closed: the provider still works, and closes, on its own loop.
    response = own_loop.run_until_complete(model.generate(llmkit.Call("still mine")))
    assert response.text.startswith("Echo: still mine")
    own_loop.run_until_complete(p.aclose())
    assert _all_closed(server)


@pytest.mark.parametrize("path", PATHS)
def test_a_call_on_another_loop_says_so(
    server: ResponsesServer, path: str, own_loop: asyncio.AbstractEventLoop
) -> None:
    p = async_provider(server, path)
    model = p.language_model("scripted")
    own_loop.run_until_complete(model.generate(llmkit.Call("on my loop")))
    requests = len(server.stats.requests)
    with pytest.raises(llmkit.UsageError, match=OTHER_LOOP):
        asyncio.run(model.generate(llmkit.Call("elsewhere")))
    assert len(server.stats.requests) == requests
    own_loop.run_until_complete(p.aclose())


@pytest.mark.parametrize("path", PATHS)
def test_aclose_after_its_loop_closed_says_so(server: ResponsesServer, path: str) -> None:
    p = async_provider(server, path)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(p.language_model("scripted").generate(llmkit.Call("hi")))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()  # without aclose: the sockets are left to the garbage collector
    with pytest.raises(llmkit.UsageError, match=OTHER_LOOP):  # was "Event loop is closed"
        asyncio.run(p.aclose())
    with warnings.catch_warnings():  # asyncio's "unclosed transport", if any, is expected
        warnings.simplefilter("ignore", ResourceWarning)
        del p, loop
        gc.collect()


def test_a_provider_that_was_never_used_closes_on_any_loop(server: ResponsesServer) -> None:
    p = async_provider(server, "websocket")
    asyncio.run(p.aclose())
    asyncio.run(p.aclose())


def test_provider_refuses_an_async_client() -> None:
    async def main() -> None:
        async with httpx.AsyncClient() as client:
            with pytest.raises(llmkit.UsageError, match=r"must be an httpx\.Client, not httpx"):
                llmkit.Provider(api_key="k", http_client=client)  # type: ignore[arg-type]

    asyncio.run(main())


def test_async_provider_refuses_a_sync_client() -> None:
    expected = r"must be an httpx\.AsyncClient, not httpx"
    with httpx.Client() as client, pytest.raises(llmkit.UsageError, match=expected):
        llmkit.AsyncProvider(api_key="k", http_client=client)  # type: ignore[arg-type]
