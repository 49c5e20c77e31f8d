"""Wait for a condition with a deadline, instead of sleeping and hoping."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

POLL = 0.05


@overload
async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float = ..., what: str = ...
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T | None], *, within: float = ..., what: str = ...
) -> T: ...


async def eventually(
    probe: Callable[[], Any], *, within: float = 20.0, what: str = "condition"
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    last: object = None
    while True:
        result = probe()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        last = result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within} s (last: {last!r})")
        await asyncio.sleep(POLL)


async def cancel_and_wait(*tasks: asyncio.Task[object] | asyncio.Task[None]) -> None:
    """Cancel tasks and wait until they have finished their cleanup."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


PROBLEM_POLL = 0.5
"""Seconds between checks whose every call lists whole namespaces (a heavier probe)."""


async def problems_left(probe: Callable[[], Awaitable[list[str]]], *, within: float) -> list[str]:
    """Poll ``probe`` until it reports no problem; after ``within`` seconds, the problems it
    still reports (returned, not raised, so a failing run can print every one of them)."""
    deadline = time.monotonic() + within
    while True:
        problems = await probe()
        if not problems or time.monotonic() > deadline:
            return problems
        await asyncio.sleep(PROBLEM_POLL)
