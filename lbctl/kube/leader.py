"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

* A lease is expired when its record has not changed for ``lease_duration`` as seen on *this*
  process's monotonic clock, so clock skew between nodes does not matter.
* Acquire and renew are writes guarded by the Lease's resourceVersion: a conflict means "not
  acquired".
* A leader that has not renewed for ``renew_deadline`` (< ``lease_duration``) stops leading,
  which happens before any other candidate may consider the lease expired.
* On shutdown the holder releases the lease (empty holder, 1 s duration) for a fast handover.
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
        expired = self._clock() > self._observed_at + cfg.lease_duration
        if holder and not mine and not expired:
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
        while not await self._attempt():  # noqa: ASYNC110 - polling the apiserver is the protocol
            await asyncio.sleep(self.config.retry_period * random.uniform(1.0, JITTER))
        self._last_renew = self._clock()

    async def _keep(self) -> None:
        """Renew every retry period; return once renewal has failed for the renew deadline."""
        while True:
            await asyncio.sleep(self.config.retry_period)
            if await self._attempt():
                self._last_renew = self._clock()
            elif self._clock() - self._last_renew >= self.config.renew_deadline:
                return
            remaining = self.config.renew_deadline - (self._clock() - self._last_renew)
            if remaining <= 0:
                return

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

    async def run(
        self,
        lead: Callable[[], Coroutine[Any, Any, None]],
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        """Forever: acquire, run ``lead()`` while holding the lease, cancel it when lost.

        ``on_lost`` runs first when the lease is lost (not on shutdown), so the caller can
        abandon in-flight work at once instead of finishing it.
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
                    if keeper.done() and on_lost is not None:
                        on_lost()
                finally:
                    self.is_leader = False
                    for task in (leading, keeper):
                        task.cancel()
                    await asyncio.gather(leading, keeper, return_exceptions=True)
                if leading.done() and not leading.cancelled() and leading.exception():
                    raise leading.exception()  # type: ignore[misc]
                log.warning("lost leadership", lease=self.config.name)
        finally:
            if self._last_renew:
                await asyncio.shield(self.release())
