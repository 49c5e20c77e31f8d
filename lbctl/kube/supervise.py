"""Keep long-running tasks alive and retry start-up reads: transient faults never end lbctl.

An informer that dies of an unexpected exception would otherwise leave its cache frozen while
the process looks healthy; a new leader whose first read meets a 503 would otherwise exit and
leave the cluster without a leader until it is restarted.  Both back off with the informers'
capped, jittered ``Backoff``.  ``stopped`` is the other end of a task's life: a leadership term
ends only once its cancelled tasks have really finished, so none keeps writing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from lbctl.kube.errors import KubeError
from lbctl.kube.informer import Backoff

log = structlog.get_logger(__name__)

T = TypeVar("T")

HEALTHY = 60.0
"""A task that ran this long before dying starts its backoff over."""


async def supervised(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    backoff: Backoff | None = None,
    healthy: float = HEALTHY,
) -> None:
    """Run ``run()`` until cancelled, restarting it with backoff whenever it ends or raises.

    Only cancellation stops it; each restart is logged with its cause, so a crash loop shows.
    """
    backoff = backoff or Backoff()
    while True:
        started = time.monotonic()
        try:
            await run()
            error = "returned"
        except Exception as err:
            error = f"{type(err).__name__}: {err}"
            log.exception("task died, restarting", task=name)
        if time.monotonic() - started >= healthy:
            backoff.reset()
        delay = backoff.next_delay()
        log.warning("task ended, restarting", task=name, error=error, retry_in=round(delay, 2))
        await asyncio.sleep(delay)


async def retrying(
    what: str,
    call: Callable[[], Awaitable[T]],
    *,
    backoff: Backoff | None = None,
) -> T:
    """``await call()``, retried with capped backoff for as long as the apiserver fails.

    Any ``KubeError`` is retried: a 403 may be fixed by an RBAC change, and a replica that
    exits instead only comes back after a restart delay.  Cancellation ends the retries.
    """
    backoff = backoff or Backoff()
    while True:
        try:
            return await call()
        except KubeError as err:
            delay = backoff.next_delay()
            log.warning(
                "apiserver request failed, retrying",
                what=what,
                error=str(err),
                retries=backoff.failures,
                retry_in=round(delay, 2),
            )
            await asyncio.sleep(delay)


async def stopped(tasks: list[asyncio.Task[None]]) -> None:
    """Wait until ``tasks`` (already cancelled) have finished, even through a new cancellation
    (raised afterwards): a caller that hands over the lease next must not leave them writing."""
    interrupted = False
    while not all(task.done() for task in tasks):
        try:
            await asyncio.wait(tasks)
        except asyncio.CancelledError:
            interrupted = True
    for task in tasks:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("task crashed", error=str(error), error_type=type(error).__name__)
    if interrupted:
        raise asyncio.CancelledError
