"""An invariant checked at every instant: no address shown by two Services at once.

``ShownAddresses`` watches Services (list, then watch from that resourceVersion) and at every
event at which a Service starts showing an address (``com.citrix.vip`` or
``status.loadBalancer.ingress``) compares it with every other Service.  Showing an address
another Service shows is a violation unless both carry the same ``lbctl.io/allow-shared-ip``
key in one namespace with disjoint ports.  (A user's edit of a sharer's key or ports can make
an existing pair invalid; that is not lbctl's doing, and the end-state checks require lbctl to
resolve it.)  End states hide short-lived duplicates; this sees each one, with the
resourceVersion it arose at.

lbctl writes a Service's status guarded by the resourceVersion it decided on, right after
reading the other showers from the apiserver.  A user's edit of a sharer's key or ports that
lands between that read and the write (no controller can order writes to two objects) is no
violation: a gain whose every conflict is with a sharer edited after the version written on
and less than ``RACE_WINDOW`` seconds before the gain is counted in ``raced``, and the
end-state checks require lbctl to resolve it.  Anything else lbctl could have seen: a
Service created or showing the address earlier, an edit older than the window.
(ResourceVersions are compared as numbers: etcd revisions, which this local apiserver uses.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType
from typing import Any

from lbctl.kube.client import SERVICES, VIP_ADDRESSES, KubeClient
from lbctl.kube.errors import KubeError
from lbctl.model import ServiceView, parse_shown
from tests.waiting import problems_left

RACE_WINDOW = 2.0
"""Seconds within which a sharer's edit may have raced lbctl's read-then-write of a join
(read and write are a few milliseconds apart; the rest is slack for a loaded machine)."""


def _shown(service: ServiceView) -> set[str]:
    """The addresses the Service shows, canonical (``10.0.0.01`` is ``10.0.0.1``)."""
    texts = {service.annotations.get("com.citrix.vip"), *service.ingress_ips}
    return {str(parse_shown(t) or t) for t in texts if t}


class ShownAddresses:
    def __init__(self, kube: KubeClient, namespace: str | None) -> None:
        self._kube = kube
        self._namespace = namespace
        self._views: dict[str, ServiceView] = {}
        self.violations: list[str] = []
        self.raced: list[str] = []
        """Gains that conflicted only with a sharer edited after the version written on."""
        self._edited: dict[str, tuple[int, float]] = {}
        """Service key → (resourceVersion, monotonic time seen) of the last edit of its
        sharing key or ports."""
        self.events = 0
        self._task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()

    async def __aenter__(self) -> ShownAddresses:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._synced.wait(), 20)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            items, version = await self._kube.list(SERVICES, self._namespace)
            self._views = {f"{i['metadata']['namespace']}/{i['metadata']['name']}":
                           ServiceView.from_raw(i) for i in items}  # fmt: skip
            self._check(version)
            self._synced.set()
            try:
                async for event in self._kube.watch(
                    SERVICES, namespace=self._namespace, resource_version=version,
                    timeout_seconds=300, read_timeout=330,
                ):  # fmt: skip
                    obj: dict[str, Any] = event["object"]
                    if event["type"] == "BOOKMARK":
                        continue
                    if event["type"] == "ERROR":
                        break  # e.g. 410 Gone: list again
                    key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
                    before = self._views.pop(key, None)
                    self.events += 1
                    if event["type"] == "DELETED":
                        continue
                    view = self._views[key] = ServiceView.from_raw(obj)
                    if before is not None and _sharing(before) != _sharing(view):
                        self._edited[key] = (int(view.resource_version), time.monotonic())
                    gained = _shown(view) - (_shown(before) if before is not None else set())
                    written_on = int(before.resource_version) if before is not None else 0
                    self._check(view.resource_version, gained, key, written_on)
            except KubeError:
                await asyncio.sleep(0.2)  # the apiserver restarting: list again

    def _check(
        self, version: str, gained: set[str] | None = None, gainer: str = "", written_on: int = 0
    ) -> None:
        """Check the addresses just ``gained`` by Service ``gainer``, whose previous version
        was ``written_on`` (None: every address)."""
        by_address: dict[str, list[ServiceView]] = {}
        for view in self._views.values():
            for text in _shown(view):
                by_address.setdefault(text, []).append(view)
        for address, holders in by_address.items():
            if len(holders) < 2 or (gained is not None and address not in gained):
                continue
            pairs = [(a, b) for i, a in enumerate(holders) for b in holders[i + 1 :]]
            conflicts = [(a, b) for a, b in pairs if not _may_share(a, b)]
            if not conflicts:
                continue
            names = sorted(h.key for h in holders)
            message = f"{address} shown by {names} at resourceVersion {version}"
            if gained is not None and all(
                any(self._raced(h.key, written_on) for h in pair if h.key != gainer)
                for pair in conflicts
            ):
                self.raced.append(message)
            else:
                self.violations.append(message)

    def _raced(self, key: str, written_on: int) -> bool:
        """Whether Service ``key`` was edited after ``written_on``, a moment ago."""
        version, seen = self._edited.get(key, (0, 0.0))
        return version > written_on and time.monotonic() - seen < RACE_WINDOW


def _sharing(view: ServiceView) -> tuple[str | None, frozenset[tuple[str, int]]]:
    return view.share_key, view.ports


def _may_share(one: ServiceView, two: ServiceView) -> bool:
    return (
        one.share_key is not None and one.share_key == two.share_key and not one.ports & two.ports
    )


async def leaked_records(kube: KubeClient, namespace: str) -> list[str]:
    """VipAddress records naming a Service of ``namespace`` that does not show the address."""
    services = {
        s["metadata"]["name"]: ServiceView.from_raw(s)
        for s in (await kube.list(SERVICES, namespace))[0]
    }
    problems = []
    for record in (await kube.list(VIP_ADDRESSES))[0]:
        spec = record["spec"]
        for holder in spec.get("holders") or []:
            if holder["namespace"] != namespace or holder["kind"] != "Service":
                continue
            service = services.get(holder["name"])
            if service is None or service.uid != holder["uid"]:
                problems.append(f"record {spec['address']} names gone Service {holder['name']}")
            elif spec["address"] not in _shown(service):
                claimed = holder.get("loadBalancerClass") or "-"
                now = service.load_balancer_class or "-" if service.is_load_balancer else "not LB"
                problems.append(
                    f"record {spec['address']} names {holder['name']}, not showing it (claimed "
                    f"by class {claimed}; the Service: {now}, shows {sorted(_shown(service))})"
                )
    return problems


async def leaks_after(kube: KubeClient, namespace: str, within: float) -> list[str]:
    """``leaked_records`` once they are gone, or what is left after ``within`` seconds (lbctl
    releases a record a Service does not show only once the record is 10 s old)."""
    return await problems_left(lambda: leaked_records(kube, namespace), within=within)
