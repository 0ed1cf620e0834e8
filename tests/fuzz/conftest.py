"""Fixtures of the fuzzing tests: the whole server on its own event loop in a thread.

Hypothesis and Schemathesis drive their examples synchronously (Schemathesis over ``requests``),
so the server cannot share the test's event loop: it runs in a thread, and the test hands it
coroutines (Socket.IO clients, seeding over HTTP) with :meth:`ThreadedServer.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from config.settings import Settings
from tests.integration.live import NO_RATE_LIMITS, LiveServer, serving

T = TypeVar("T")


@dataclass
class ThreadedServer:
    """A live server whose event loop runs in a thread of its own."""

    live: LiveServer
    loop: asyncio.AbstractEventLoop

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run `coroutine` on the server's event loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


@pytest.fixture
def threaded_server(
    postgres_url: str, settings_factory: Callable[..., Settings]
) -> Iterator[ThreadedServer]:
    """The whole server on a fresh PostgreSQL database, serving from a thread."""
    # Fuzzing is about validation: with the limits on, most events would stop at the limiter.
    settings = settings_factory(database_url=postgres_url, **NO_RATE_LIMITS)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzzed-server", daemon=True)
    thread.start()
    stack = contextlib.AsyncExitStack()

    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(120)

    try:
        live = run(stack.enter_async_context(serving(settings)))
        yield ThreadedServer(live, loop)
    finally:
        run(stack.aclose())
        run(_cancel_leftovers())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


async def _cancel_leftovers() -> None:
    """Cancel what the closed clients left running (Engine.IO's pings) before the loop closes."""
    leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)


# The integration tests' live server, for the fuzzers' findings kept as plain tests.
from tests.integration.live import live_server  # noqa: E402, F401
