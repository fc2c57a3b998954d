"""Running a coroutine from a sync fixture."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def in_own_loop(start: Callable[[], Coroutine[Any, Any, object]]) -> None:
    """``start()`` run to its end in a thread with its own event loop: a sync fixture
    may run while the test's loop is set but not running, and must not touch it."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(start())).result(timeout=120)
