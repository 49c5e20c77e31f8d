"""Supervision: a dying task is restarted with backoff, a failing start-up read is retried."""

from __future__ import annotations

import asyncio

import pytest

from lbctl.kube.errors import Forbidden, KubeUnavailable
from lbctl.kube.informer import Backoff
from lbctl.kube.supervise import retrying, stopped, supervised
from tests.waiting import cancel_and_wait, eventually


def fast() -> Backoff:
    return Backoff(initial=0.01, cap=0.02)


async def test_a_task_that_dies_is_restarted_until_cancelled() -> None:
    """An unexpected exception (or a plain return) restarts the task; only cancel stops it."""
    runs: list[int] = []
    forever = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise KeyError("metadata")
        if len(runs) == 2:
            return
        await forever.wait()

    task = asyncio.create_task(supervised("flaky", flaky, backoff=fast()))
    try:
        await eventually(lambda: len(runs) == 3, what="third run")
        assert not task.done()
    finally:
        await cancel_and_wait(task)
    assert task.cancelled()


async def test_backoff_starts_over_after_a_healthy_run() -> None:
    """A task that ran for ``healthy`` seconds before dying is restarted after the short delay."""
    backoff = fast()
    runs = 0

    async def dies() -> None:
        nonlocal runs
        runs += 1
        raise RuntimeError("boom")

    task = asyncio.create_task(supervised("dies", dies, backoff=backoff, healthy=0.0))
    try:
        await eventually(lambda: runs >= 4, what="four runs")
        assert backoff.failures == 1
    finally:
        await cancel_and_wait(task)


async def test_apiserver_errors_are_retried_until_the_call_succeeds() -> None:
    """503s and timeouts, even a 403 (RBAC being fixed): retried, and the result returned."""
    failures: list[Exception] = [
        KubeUnavailable("timeout"),
        Forbidden(403, "Forbidden", "no list"),
    ]

    async def call() -> str:
        if failures:
            raise failures.pop(0)
        return "items"

    assert await retrying("list", call, backoff=fast()) == "items"
    assert not failures


async def test_other_errors_are_not_retried() -> None:
    """A bug is not an apiserver fault: it surfaces instead of looping."""
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        await retrying("list", call, backoff=fast())
    assert calls == 1


async def test_stopped_waits_for_cancelled_tasks_even_when_cancelled_itself() -> None:
    """The end of a term: the waiter is cancelled again, yet returns only after the task has
    finished its cleanup, and then re-raises the cancellation."""
    cleanup = asyncio.Event()
    finished = False

    async def slow_to_stop() -> None:
        nonlocal finished
        try:
            await asyncio.Event().wait()
        finally:
            await cleanup.wait()
            finished = True

    work = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    work.cancel()
    waiter = asyncio.create_task(stopped([work]))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.sleep(0)
    assert not waiter.done()
    cleanup.set()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert finished
