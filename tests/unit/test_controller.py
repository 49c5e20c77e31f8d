"""The worker loop: one key never runs twice at once, failures back off, shutdown is graceful."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

from lbctl.kube.workqueue import RateLimiter, WorkQueue
from lbctl.reconcile.controller import Controller
from lbctl.reconcile.publish import Requeue
from tests.waiting import cancel_and_wait, eventually


class Recorder:
    def __init__(self, fail_first: int = 0) -> None:
        self.running: Counter[str] = Counter()
        self.most_at_once: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.release = asyncio.Event()
        self.fail_first = fail_first

    async def __call__(self, key: str) -> Requeue | None:
        self.calls[key] += 1
        self.running[key] += 1
        self.most_at_once[key] = max(self.most_at_once[key], self.running[key])
        try:
            await self.release.wait()
            if self.calls[key] <= self.fail_first:
                raise RuntimeError("transient")
        finally:
            self.running[key] -= 1
        return None


def queue() -> WorkQueue:
    q = WorkQueue()
    q.limiter = RateLimiter(q._clock, base=0.001, cap=0.01, qps=1000, burst=1000)
    return q


async def test_a_key_is_never_reconciled_by_two_workers_at_once() -> None:
    """Re-adding a key while it runs queues it once more, after the running one finishes."""
    work = queue()
    recorder = Recorder()
    controller = Controller(work, {"Service": recorder}, workers=4)
    task = asyncio.create_task(controller.run())
    try:
        controller.enqueue("Service", "ns/a")
        await eventually(lambda: recorder.running["ns/a"] == 1, what="first run")
        for _ in range(5):
            controller.enqueue("Service", "ns/a")
        recorder.release.set()
        await eventually(lambda: recorder.calls["ns/a"] == 2, what="second run")
        await eventually(lambda: recorder.running["ns/a"] == 0, what="idle")
        assert recorder.most_at_once["ns/a"] == 1
        assert recorder.calls["ns/a"] == 2
    finally:
        await cancel_and_wait(task)


async def test_failures_are_retried_until_they_succeed() -> None:
    """A reconcile that raises is requeued with backoff and counted."""
    work = queue()
    recorder = Recorder(fail_first=3)
    recorder.release.set()
    controller = Controller(work, {"Vip": recorder}, workers=2)
    task = asyncio.create_task(controller.run())
    try:
        controller.enqueue("Vip", "ns/x")
        await eventually(lambda: recorder.calls["ns/x"] == 4, what="fourth attempt")
        assert controller.failures == 3
        await eventually(lambda: work.limiter.failures("Vip:ns/x") == 0, what="forgotten")
    finally:
        await cancel_and_wait(task)


async def test_shutdown_lets_in_flight_work_finish() -> None:
    """Cancelling the controller waits for the running reconcile instead of killing it."""
    work = queue()
    recorder = Recorder()
    controller = Controller(work, {"Service": recorder}, workers=1)
    task = asyncio.create_task(controller.run(grace=5))
    controller.enqueue("Service", "ns/slow")
    await eventually(lambda: recorder.running["ns/slow"] == 1, what="running")
    task.cancel()
    await asyncio.sleep(0)
    assert not task.done()
    recorder.release.set()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert recorder.running["ns/slow"] == 0
    assert recorder.calls["ns/slow"] == 1


async def test_abort_cancels_in_flight_work_at_once() -> None:
    """Lost leadership: running reconciles are cancelled, not finished."""
    work = queue()
    recorder = Recorder()
    controller = Controller(work, {"Service": recorder}, workers=1)
    task = asyncio.create_task(controller.run(grace=30))
    controller.enqueue("Service", "ns/slow")
    await eventually(lambda: recorder.running["ns/slow"] == 1, what="running")
    controller.abort()
    await eventually(lambda: recorder.running["ns/slow"] == 0, what="cancelled")
    await cancel_and_wait(task)
    assert not recorder.release.is_set()


async def test_a_second_cancel_during_the_drain_still_stops_every_worker() -> None:
    """Shutdown repeated while work drains: run() ends only after the reconcile has stopped,
    so nothing writes after it returns (the lease is released right after)."""
    work = queue()
    recorder = Recorder()
    controller = Controller(work, {"Service": recorder}, workers=1)
    task = asyncio.create_task(controller.run(grace=30))
    controller.enqueue("Service", "ns/slow")
    await eventually(lambda: recorder.running["ns/slow"] == 1, what="running")
    task.cancel()
    await asyncio.sleep(0)
    assert not task.done(), "the first cancel lets in-flight work drain"
    await cancel_and_wait(task)
    assert recorder.running["ns/slow"] == 0
    assert not recorder.release.is_set()


async def test_a_new_term_after_abort_processes_keys_enqueued_before_run() -> None:
    """Lost, then leading again: keys enqueued at the start of the new term are not dropped."""
    work = queue()
    recorder = Recorder()
    recorder.release.set()
    controller = Controller(work, {"Service": recorder}, workers=1)
    first = asyncio.create_task(controller.run())
    controller.enqueue("Service", "ns/a")
    await eventually(lambda: recorder.calls["ns/a"] == 1, what="first term")
    controller.abort()
    await cancel_and_wait(first)

    controller.reopen()
    controller.enqueue("Service", "ns/a")
    controller.enqueue("Service", "ns/b")
    second = asyncio.create_task(controller.run())
    try:
        await eventually(lambda: recorder.calls["ns/b"] == 1, what="second term")
        await eventually(lambda: recorder.calls["ns/a"] == 2, what="re-enqueued key")
    finally:
        await cancel_and_wait(second)


async def test_a_key_that_requeues_itself_without_io_does_not_starve_the_loop() -> None:
    """A reconcile that finishes without suspending and re-adds its own key (e.g. it woke the
    Services waiting for an address, itself included) must still let other tasks run."""
    work = queue()
    other_ran = asyncio.Event()
    seen: list[bool] = []

    async def requeues_itself(key: str) -> Requeue | None:
        if len(seen) < 100:
            seen.append(other_ran.is_set())
            work.add(f"Service:{key}")
        return None

    async def other() -> None:
        await asyncio.sleep(0)
        other_ran.set()

    controller = Controller(work, {"Service": requeues_itself}, workers=1)
    task = asyncio.create_task(controller.run())
    try:
        controller.enqueue("Service", "ns/a")
        helper = asyncio.create_task(other())
        await eventually(lambda: len(seen) == 100, what="100 reconciles")
        await helper
    finally:
        await cancel_and_wait(task)
    assert seen[-1], "the other task never ran while the key kept requeueing itself"


async def test_a_controller_gives_way_to_a_busy_queue_for_a_bounded_time() -> None:
    """The NetScaler's workers take a key but hold it while the address queue is busy: until
    that queue is idle, or for ``most_deferred`` seconds at most (never starved)."""
    first, second = queue(), queue()
    seen: list[str] = []

    async def reconcile(key: str) -> None:
        seen.append(key)

    controller = Controller(
        second, {"Adc": reconcile}, workers=2, gives_way_to=first, most_deferred=0.3
    )
    task = asyncio.create_task(controller.run())
    try:
        first.add("Service:ns/busy")
        assert await first.get() == "Service:ns/busy"  # held: the first queue is busy
        controller.enqueue("Adc", "ns/a")
        await eventually(lambda: second.processing == 1, what="key taken")
        for _ in range(20):
            await asyncio.sleep(0)
        assert seen == [], "processed while the first queue was busy"
        first.done("Service:ns/busy")
        await eventually(lambda: seen == ["ns/a"], what="given way")
        first.add("Service:ns/stuck")
        assert await first.get() == "Service:ns/stuck"  # busy for good now
        controller.enqueue("Adc", "ns/b")
        await eventually(lambda: len(seen) == 2, within=5, what="not starved")
    finally:
        await cancel_and_wait(task)
