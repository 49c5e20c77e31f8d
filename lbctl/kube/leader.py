"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

* A lease is expired when its record has not changed for the record's own
  ``leaseDurationSeconds`` as seen on *this* process's monotonic clock, so clock skew between
  nodes does not matter and candidates configured differently still agree with the holder.
* Acquire and renew are writes guarded by the Lease's resourceVersion: a conflict means "not
  acquired".
* A leader that has not renewed for ``renew_deadline`` (< ``lease_duration``) stops leading,
  which happens before any other candidate may consider the lease expired.  A renew attempt
  (GET + PATCH) that would outlive the deadline is cancelled, and a renewal counts from when
  its attempt *started* (the earliest moment another candidate can have seen it).
* On shutdown ``lead()`` is stopped while the lease is still held and renewed (its work may
  drain; losing the lease meanwhile aborts it), and only then is the lease released (empty
  holder, 1 s duration) for a fast handover.
"""

from __future__ import annotations

import asyncio
import datetime
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

from lbctl.kube.client import JSON, KubeClient, Resource
from lbctl.kube.errors import AlreadyExists, Conflict, KubeError, NotFound

log = structlog.get_logger(__name__)

LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
JITTER = 1.2


@dataclass(frozen=True)
class LeaderElectionConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def validate(self) -> None:
        if not self.lease_duration > self.renew_deadline > JITTER * self.retry_period > 0:
            raise ValueError(
                "leader election needs lease duration > renew deadline > 1.2 * retry period "
                f"(got {self.lease_duration} / {self.renew_deadline} / {self.retry_period})"
            )


def _now_micro() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        client: KubeClient,
        config: LeaderElectionConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        config.validate()
        self._client = client
        self.config = config
        self._clock = clock
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._last_renew = 0.0
        self.is_leader = False
        self.transitions = 0
        self.attempts = 0

    def _record_of(self, lease: JSON) -> tuple[Any, ...]:
        spec = lease.get("spec") or {}
        return (
            spec.get("holderIdentity"),
            spec.get("renewTime"),
            spec.get("acquireTime"),
            spec.get("leaseDurationSeconds"),
            spec.get("leaseTransitions"),
        )

    def _observe(self, lease: JSON) -> None:
        record = self._record_of(lease)
        if record != self._observed:
            self._observed = record
            self._observed_at = self._clock()

    def expired(self) -> bool:
        """Whether the last record seen has not changed for its own ``leaseDurationSeconds``.

        The holder's duration, not ours, says how long it may keep writing; a record without
        one is expired at once, as in client-go."""
        if self._observed is None:
            return True
        try:
            duration = float(self._observed[3] or 0)
        except (TypeError, ValueError):
            duration = 0.0
        return self._clock() > self._observed_at + duration

    def _spec(self, lease: JSON | None, acquiring: bool) -> JSON:
        old = (lease or {}).get("spec") or {}
        now = _now_micro()
        transitions = int(old.get("leaseTransitions") or 0)
        if acquiring and lease is not None and old.get("holderIdentity") != self.config.identity:
            transitions += 1
        return {
            "holderIdentity": self.config.identity,
            "leaseDurationSeconds": max(1, round(self.config.lease_duration)),
            "acquireTime": now if acquiring else old.get("acquireTime", now),
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this process holds the lease afterwards."""
        cfg = self.config
        timeout = cfg.renew_deadline / 2
        try:
            lease = await self._client.get(LEASES, cfg.namespace, cfg.name, timeout=timeout)
        except NotFound:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                "spec": self._spec(None, acquiring=True),
            }
            try:
                created = await self._client.create(LEASES, cfg.namespace, body, timeout=timeout)
            except AlreadyExists:
                return False
            self._observe(created)
            return True
        self._observe(lease)
        holder = (lease.get("spec") or {}).get("holderIdentity")
        mine = holder == cfg.identity
        if holder and not mine and not self.expired():
            return False
        patch = {
            "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
            "spec": self._spec(lease, acquiring=not mine),
        }
        try:
            updated = await self._client.patch(
                LEASES, cfg.namespace, cfg.name, patch, timeout=timeout
            )
        except Conflict:
            return False
        self._observe(updated)
        return True

    async def _attempt(self) -> bool:
        self.attempts += 1
        try:
            return await self.try_acquire_or_renew()
        except KubeError as err:
            log.warning("lease request failed", lease=self.config.name, error=str(err))
            return False

    async def _acquire(self) -> None:
        while True:
            started = self._clock()
            if await self._attempt():
                self._last_renew = started
                return
            await asyncio.sleep(self.config.retry_period * random.uniform(1.0, JITTER))

    async def _keep(self) -> None:
        """Renew every retry period; return once renewal has failed for the renew deadline.

        The deadline counts from the start of the last successful attempt, and an attempt is
        cancelled when it reaches the deadline: a slow GET or PATCH cannot stretch leadership.
        """
        while True:
            deadline = self._last_renew + self.config.renew_deadline
            pause = min(self.config.retry_period, deadline - self._clock())
            await asyncio.sleep(max(0.0, pause))
            started = self._clock()
            if started >= deadline:
                return
            try:
                renewed = await asyncio.wait_for(self._attempt(), timeout=deadline - started)
            except TimeoutError:
                log.warning("lease renewal overran the renew deadline", lease=self.config.name)
                return
            if renewed:
                self._last_renew = started

    async def release(self) -> None:
        """Hand the lease back if this process holds it; best effort."""
        cfg = self.config
        try:
            lease = await self._client.get(LEASES, cfg.namespace, cfg.name, timeout=2.0)
            if (lease.get("spec") or {}).get("holderIdentity") != cfg.identity:
                return
            patch = {
                "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
                "spec": {
                    "holderIdentity": "",
                    "leaseDurationSeconds": 1,
                    "renewTime": _now_micro(),
                },
            }
            await self._client.patch(LEASES, cfg.namespace, cfg.name, patch, timeout=2.0)
            log.info("lease released", lease=cfg.name)
        except KubeError as err:
            log.warning("could not release lease", lease=cfg.name, error=str(err))

    async def _stop_leading(
        self,
        leading: asyncio.Task[None],
        keeper: asyncio.Task[None],
        on_lost: Callable[[], None] | None,
    ) -> None:
        """Stop ``lead()`` before anyone else can lead, then stop renewing.

        While ``lead()`` winds down (a shutdown lets in-flight work drain) the lease is still
        renewed; once it is lost, or this wait is cancelled again, ``on_lost`` aborts the work
        at once.  Never returns while ``lead()`` still runs: it is the write fence.
        """
        if not keeper.done():
            leading.cancel()
        aborted = interrupted = False
        while True:
            if (keeper.done() or interrupted) and not aborted:
                aborted = True
                self.is_leader = False
                if on_lost is not None:
                    on_lost()
                leading.cancel()
            if leading.done():
                break
            waiting = {leading} if keeper.done() else {leading, keeper}
            try:
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                interrupted = True
        self.is_leader = False
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        if interrupted:
            raise asyncio.CancelledError

    async def run(
        self,
        lead: Callable[[], Coroutine[Any, Any, None]],
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        """Forever: acquire, run ``lead()`` while holding the lease, cancel it when lost.

        ``on_lost`` runs first when the lease is lost (also when it is lost, or shutdown is
        repeated, while ``lead()`` winds down), so the caller can abandon in-flight work at
        once instead of finishing it.  The lease is released only after ``lead()`` has ended.
        """
        try:
            while True:
                await self._acquire()
                self.is_leader = True
                self.transitions += 1
                log.info("became leader", lease=self.config.name, identity=self.config.identity)
                leading = asyncio.create_task(lead())
                keeper = asyncio.create_task(self._keep())
                try:
                    await asyncio.wait({leading, keeper}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    await self._stop_leading(leading, keeper, on_lost)
                if not leading.cancelled() and leading.exception():
                    raise leading.exception()  # type: ignore[misc]
                log.warning("lost leadership", lease=self.config.name)
        finally:
            if self._last_renew:
                await asyncio.shield(self.release())
