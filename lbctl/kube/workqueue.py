"""A keyed work queue with client-go's guarantees, for asyncio.

* Keys, not objects; a key added twice before it is taken is processed once.
* A key added while a worker holds it is processed again after ``done``, never by two workers
  at once.
* ``add_rate_limited`` delays by the larger of per-key exponential backoff and a shared token
  bucket; ``forget`` resets the key's backoff.
* ``shutdown`` refuses new keys and drops queued ones; ``get`` then returns None.
* A key added wakes one waiting worker, not all of them (many workers wait on one queue).
* ``idle`` is set while no key is queued or being processed (keys delayed for later aside).

Time comes from an injected clock so tests run without real waiting.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class RateLimiter:
    """Per-key ``base * 2**failures`` capped at ``cap``, and a shared ``qps``/``burst`` bucket."""

    def __init__(
        self,
        clock: Clock,
        base: float = 0.005,
        cap: float = 300.0,
        qps: float = 10.0,
        burst: int = 100,
    ) -> None:
        self._clock = clock
        self._base, self._cap = base, cap
        self._qps, self._burst = qps, burst
        self._tokens = float(burst)
        self._last = clock.now()
        self._failures: dict[str, int] = {}

    def when(self, key: str) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        per_key = min(self._cap, self._base * 2.0**failures)
        now = self._clock.now()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._qps)
        self._last = now
        self._tokens -= 1
        bucket = 0.0 if self._tokens >= 0 else -self._tokens / self._qps
        return max(per_key, bucket)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)


class QueueObserver(Protocol):
    """Receives client-go-style queue timings (see lbctl.metrics)."""

    def queued_for(self, seconds: float) -> None: ...

    def worked_for(self, seconds: float) -> None: ...


class WorkQueue:
    def __init__(
        self,
        clock: Clock | None = None,
        limiter: RateLimiter | None = None,
        observer: QueueObserver | None = None,
    ) -> None:
        self._clock = clock or MonotonicClock()
        self.observer = observer
        self._added_at: dict[str, float] = {}
        self._started_at: dict[str, float] = {}
        self.retries = 0
        self.limiter = limiter or RateLimiter(self._clock)
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._delayed: list[tuple[float, int, str]] = []
        self._delayed_at: dict[str, float] = {}
        self._seq = itertools.count()
        self._getters: deque[asyncio.Future[None]] = deque()
        """Workers waiting in ``get``; each new key wakes one."""
        self._shutting_down = False
        self.adds = 0
        self.idle = asyncio.Event()
        """Set while no key is queued or being processed (e.g. for another queue's workers to
        give way to this one's)."""
        self.idle.set()

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def processing(self) -> int:
        return len(self._processing)

    @property
    def idle_workers(self) -> int:
        """Workers waiting in ``get`` that no key has woken yet."""
        return sum(not getter.done() for getter in self._getters)

    def running_for(self) -> list[float]:
        """Seconds each key taken by ``get`` and not yet ``done`` has been worked on (the work
        the observer's ``worked_for`` has not seen yet; client-go's unfinished work)."""
        now = self._clock.now()
        return [now - started for started in self._started_at.values()]

    def add(self, key: str) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self.adds += 1
        self._dirty.add(key)
        self._added_at.setdefault(key, self._clock.now())
        if key not in self._processing:
            self._queue.append(key)
            self.idle.clear()
            self._wake_one()

    def add_after(self, key: str, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        ready_at = self._clock.now() + delay
        if self._delayed_at.get(key, float("inf")) <= ready_at:
            return
        self._delayed_at[key] = ready_at
        heapq.heappush(self._delayed, (ready_at, next(self._seq), key))
        # Every waiting worker times its wait by the soonest delayed key: all wait again with
        # this one counted (one woken worker might take a queued key instead and leave the
        # others' waits untimed, so the key would wait for the next add).
        while self._getters:
            self._wake_one()

    def add_rate_limited(self, key: str) -> None:
        self.retries += 1
        self.add_after(key, self.limiter.when(key))

    def forget(self, key: str) -> None:
        self.limiter.forget(key)

    def done(self, key: str) -> None:
        self._processing.discard(key)
        started = self._started_at.pop(key, None)
        if started is not None and self.observer is not None:
            self.observer.worked_for(self._clock.now() - started)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()
        if not self._queue and not self._processing:
            self.idle.set()

    def _wake_one(self) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return

    def shutdown(self) -> None:
        """Refuse new keys and drop queued ones; keys being processed may finish."""
        self._shutting_down = True
        self._queue.clear()
        self._dirty.clear()
        self._added_at.clear()
        self._delayed.clear()
        self._delayed_at.clear()
        while self._getters:
            self._wake_one()
        if not self._processing:
            self.idle.set()

    def reopen(self) -> None:
        """Accept keys again after ``shutdown`` (a new leadership term)."""
        self._shutting_down = False

    def _promote_due(self) -> float | None:
        """Move due delayed keys into the queue; return seconds until the next one, if any."""
        now = self._clock.now()
        while self._delayed:
            ready_at, _, key = self._delayed[0]
            if self._delayed_at.get(key) != ready_at:
                heapq.heappop(self._delayed)
                continue
            if ready_at > now:
                return ready_at - now
            heapq.heappop(self._delayed)
            del self._delayed_at[key]
            self.add(key)
        return None

    async def get(self) -> str | None:
        """The next key to process (mark it done with ``done``); None after shutdown."""
        while True:
            next_due = self._promote_due()
            if self._queue:
                key = self._queue.popleft()
                self._dirty.discard(key)
                self._processing.add(key)
                now = self._clock.now()
                self._started_at[key] = now
                added = self._added_at.pop(key, now)
                if self.observer is not None:
                    self.observer.queued_for(now - added)
                return key
            if self._shutting_down:
                return None
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            timer = asyncio.ensure_future(self._clock.sleep(next_due)) if next_due else None
            try:
                if timer is None:
                    await getter
                else:
                    await asyncio.wait([getter, timer], return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                if getter.done() and not getter.cancelled():
                    self._wake_one()  # woken for a key it will not take: pass it on
                raise
            finally:
                getter.cancel()  # a getter left in the queue is skipped when waking
                if timer is not None:
                    timer.cancel()

    async def drained(self) -> None:
        """Wait until no key is being processed (used after ``shutdown``)."""
        if self._processing:
            await self.idle.wait()  # set by the last ``done``: a shut-down queue queues nothing
