"""The worker loop: keys from the queue to reconcilers, results back to the queue.

A key is ``Kind:namespace/name``.  A reconciler that raises is retried with per-key backoff;
one that returns ``Requeue`` is looked at again later; success forgets the key's failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import structlog

from lbctl.kube.errors import Conflict
from lbctl.kube.supervise import stopped
from lbctl.kube.workqueue import WorkQueue
from lbctl.reconcile.publish import Requeue

log = structlog.get_logger(__name__)

Reconcile = Callable[[str], Awaitable[Requeue | None]]


class Controller:
    def __init__(
        self,
        queue: WorkQueue,
        reconcilers: dict[str, Reconcile],
        workers: int,
        gives_way_to: WorkQueue | None = None,
        most_deferred: float = 1.0,
    ) -> None:
        """``gives_way_to``: a queue whose work comes first.  While it is busy, each key
        taken here waits until it is idle, at most ``most_deferred`` seconds: all workers
        share one event loop, so the NetScaler's work would otherwise slow address allocation
        (1,000 new Services took 1.2-1.9 times as long to show their address with it)."""
        self._queue = queue
        self._reconcilers = reconcilers
        self._workers = workers
        self._gives_way_to = gives_way_to
        self._most_deferred = most_deferred
        self.reconciles = 0
        self.failures = 0
        self.outcomes: Counter[tuple[str, str]] = Counter()
        """(kind, success | requeue | conflict | error) → count, for /metrics."""
        self.observe_duration: Callable[[str, float], None] | None = None
        self._active: list[asyncio.Task[None]] = []

    def enqueue(self, kind: str, key: str) -> None:
        self._queue.add(f"{kind}:{key}")

    def reopen(self) -> None:
        """Accept keys again: a new leadership term, after ``abort`` or a finished ``run``.

        Call it before enqueuing the term's keys; a shut-down queue drops what it is given.
        """
        self._queue.reopen()

    async def run(self, grace: float = 30.0) -> None:
        """Run the workers until cancelled; then let in-flight reconciles finish (``grace``).

        Returns (or raises) only once every worker has stopped, even if cancelled again while
        they drain: the caller may hand over the lease right after.
        """
        self._queue.reopen()
        self._active = [asyncio.create_task(self._work()) for _ in range(self._workers)]
        workers = list(self._active)
        try:
            await asyncio.wait(workers)
        finally:
            self._queue.shutdown()
            try:
                await asyncio.wait(workers, timeout=grace)
            finally:
                for task in workers:
                    task.cancel()
                await stopped(workers)
                self._active = []

    def abort(self) -> None:
        """Cancel in-flight reconciles now (leadership lost: nothing may be written any more)."""
        self._queue.shutdown()
        for task in self._active:
            task.cancel()

    async def _work(self) -> None:
        while (item := await self._queue.get()) is not None:
            try:
                await self._give_way()
                await self._process(item)
            finally:
                self._queue.done(item)
            # A reconcile that needed no I/O never suspended: yield, or a key that requeues
            # itself at once would starve every other task (replies, watches) of the loop.
            await asyncio.sleep(0)

    async def _give_way(self) -> None:
        first = self._gives_way_to
        if first is not None and not first.idle.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(first.idle.wait(), self._most_deferred)

    async def _process(self, item: str) -> None:
        kind, _, key = item.partition(":")
        structlog.contextvars.bind_contextvars(kind=kind, key=key)
        started = time.monotonic()
        outcome = "error"
        try:
            result = await self._reconcilers[kind](key)
            outcome = "requeue" if result is not None else "success"
        except Conflict as err:
            # Optimistic concurrency at work (another writer, or a stale cache): read again
            # and retry, with the key's backoff; no failure.
            outcome = "conflict"
            log.info("write conflict, will retry", error=str(err))
            self._queue.add_rate_limited(item)
            return
        except Exception as err:
            self.failures += 1
            log.warning(
                "reconcile failed, will retry",
                error=str(err),
                error_type=type(err).__name__,
                retries=self._queue.limiter.failures(item),
            )
            self._queue.add_rate_limited(item)
            return
        finally:
            self.reconciles += 1
            self.outcomes[(kind, outcome)] += 1
            if self.observe_duration is not None:
                self.observe_duration(kind, time.monotonic() - started)
            structlog.contextvars.unbind_contextvars("kind", "key")
        self._queue.forget(item)
        if result is not None:
            self._queue.add_after(item, result.seconds)
