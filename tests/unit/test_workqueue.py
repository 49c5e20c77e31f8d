"""Work queue semantics with an injected clock: nothing here waits in real time."""

from __future__ import annotations

import asyncio

import pytest

from lbctl.kube.workqueue import RateLimiter, WorkQueue


class FakeClock:
    def __init__(self) -> None:
        self.time = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.time + seconds, future))
        await future

    def advance(self, seconds: float) -> None:
        self.time += seconds
        for deadline, future in list(self._sleepers):
            if deadline <= self.time and not future.done():
                future.set_result(None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(clock: FakeClock) -> WorkQueue:
    return WorkQueue(
        clock=clock, limiter=RateLimiter(clock, base=1.0, cap=8.0, qps=1000, burst=1000)
    )


async def settle() -> None:
    """Let every ready task run until it blocks (no time passes on the fake clock)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def next_key(queue: WorkQueue) -> str | None:
    return await asyncio.wait_for(queue.get(), timeout=1)


async def test_duplicate_adds_are_processed_once(queue: WorkQueue) -> None:
    """Two adds of a waiting key yield one get."""
    queue.add("a")
    queue.add("a")
    queue.add("b")
    assert [await next_key(queue), await next_key(queue)] == ["a", "b"]
    assert len(queue) == 0


async def test_a_key_added_while_processing_waits_for_done(queue: WorkQueue) -> None:
    """No two workers hold one key; the re-add is delivered after done()."""
    queue.add("a")
    assert await next_key(queue) == "a"
    queue.add("a")
    assert len(queue) == 0, "not handed out while held"
    queue.done("a")
    assert await next_key(queue) == "a"


async def test_add_after_waits_for_the_clock(queue: WorkQueue, clock: FakeClock) -> None:
    """A delayed key appears only once the clock has passed its time."""
    queue.add_after("late", 5.0)
    getter = asyncio.create_task(queue.get())
    await settle()
    clock.advance(4.9)
    await settle()
    assert not getter.done()
    clock.advance(0.2)
    assert await asyncio.wait_for(getter, timeout=1) == "late"


async def test_an_earlier_add_after_wins(queue: WorkQueue, clock: FakeClock) -> None:
    """A second add_after with a shorter delay moves the key earlier, never later."""
    queue.add_after("k", 10.0)
    queue.add_after("k", 2.0)
    queue.add_after("k", 30.0)
    clock.advance(2.0)
    assert await next_key(queue) == "k"


def test_per_key_backoff_grows_and_forget_resets(clock: FakeClock) -> None:
    """Failures double the delay up to the cap; forget() starts over."""
    limiter = RateLimiter(clock, base=1.0, cap=8.0, qps=1000, burst=1000)
    assert [limiter.when("k") for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert limiter.when("other") == 1.0
    limiter.forget("k")
    assert limiter.when("k") == 1.0


def test_the_shared_bucket_limits_overall_rate(clock: FakeClock) -> None:
    """Past the burst, keys wait for tokens even with no failures of their own."""
    limiter = RateLimiter(clock, base=0.0, cap=1.0, qps=10, burst=2)
    delays = [limiter.when(f"k{i}") for i in range(4)]
    assert delays[:2] == [0.0, 0.0]
    assert delays[2] == pytest.approx(0.1)
    assert delays[3] == pytest.approx(0.2)


async def test_shutdown_drops_queued_keys_and_releases_waiters(queue: WorkQueue) -> None:
    """After shutdown get() returns None and adds are ignored."""
    waiter = asyncio.create_task(queue.get())
    await settle()
    queue.add("x")
    assert await asyncio.wait_for(waiter, timeout=1) == "x"
    queue.add("y")
    queue.shutdown()
    queue.add("z")
    assert await next_key(queue) is None


async def test_a_new_key_wakes_one_waiting_worker_and_a_cancelled_one_passes_it_on(
    queue: WorkQueue,
) -> None:
    """Eight workers wait; one key wakes one of them (not all eight), and a worker cancelled
    after it was woken hands the key to another; shutdown releases the rest."""
    workers = [asyncio.create_task(queue.get()) for _ in range(8)]
    await asyncio.sleep(0)  # one loop turn: every worker reaches its wait
    assert queue.idle_workers == 8
    queue.add("a")
    assert queue.idle_workers == 7
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert [w.result() for w in workers if w.done()] == ["a"]
    waiting = [w for w in workers if not w.done()]
    queue.add("b")
    woken = waiting[0]  # the longest waiting is woken first
    woken.cancel()
    for _ in range(3):
        await asyncio.sleep(0)
    assert [w.result() for w in waiting[1:] if w.done()] == ["b"]
    queue.shutdown()
    rest = [w for w in waiting[1:] if not w.done()]
    assert await asyncio.gather(*rest) == [None] * len(rest)


async def test_a_delayed_key_is_taken_on_time_though_the_woken_worker_took_another_key(
    queue: WorkQueue, clock: FakeClock
) -> None:
    """Two workers wait; a delayed key and a ready key arrive at once.  Whichever worker takes
    the ready key, the other one wakes for the delayed key when its time comes (a delayed key
    that woke no waiting worker would wait for the next add)."""
    first, second = asyncio.create_task(queue.get()), asyncio.create_task(queue.get())
    await asyncio.sleep(0)  # one loop turn: both wait, untimed
    queue.add_after("later", 5)
    queue.add("now")
    for _ in range(3):
        await asyncio.sleep(0)
    taken = [t for t in (first, second) if t.done()]
    assert [t.result() for t in taken] == ["now"]
    (waiting,) = [t for t in (first, second) if not t.done()]
    clock.advance(5)
    assert await asyncio.wait_for(waiting, timeout=5) == "later"


async def test_idle_while_nothing_is_queued_or_processed(
    queue: WorkQueue, clock: FakeClock
) -> None:
    """A key queued or held clears ``idle``; the last ``done`` sets it; a delayed key does
    not count until it is due."""
    assert queue.idle.is_set()
    queue.add("a")
    assert not queue.idle.is_set()
    assert await next_key(queue) == "a"
    queue.add("a")
    queue.add("b")
    assert await next_key(queue) == "b"
    queue.done("a")
    assert not queue.idle.is_set(), "a is queued again, b is held"
    assert await next_key(queue) == "a"
    queue.done("b")
    queue.done("a")
    assert queue.idle.is_set()
    queue.add_after("c", 5)
    assert queue.idle.is_set()
    clock.advance(5)
    assert await next_key(queue) == "c"
    assert not queue.idle.is_set()
