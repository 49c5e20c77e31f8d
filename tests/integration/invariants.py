"""An invariant checked at every instant: no address shown by two Services at once.

``ShownAddresses`` watches Services (list, then watch from that resourceVersion) and at every
event at which a Service starts showing an address (``com.citrix.vip`` or
``status.loadBalancer.ingress``) compares it with every other Service.  Showing an address
another Service shows is a violation unless both carry the same ``lbctl.io/allow-shared-ip``
key in one namespace with disjoint ports.  (A user's edit of a sharer's key or ports can make
an existing pair invalid; that is not lbctl's doing, and the end-state checks require lbctl to
resolve it.)  End states hide short-lived duplicates; this sees each one, with the
resourceVersion it arose at.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

from lbctl.kube.client import SERVICES, VIP_ADDRESSES, KubeClient
from lbctl.kube.errors import KubeError
from lbctl.model import ServiceView, parse_shown
from tests.waiting import problems_left


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
                    gained = _shown(view) - (_shown(before) if before is not None else set())
                    self._check(str(obj["metadata"].get("resourceVersion")), gained)
            except KubeError:
                await asyncio.sleep(0.2)  # the apiserver restarting: list again

    def _check(self, version: str, gained: set[str] | None = None) -> None:
        """Check the addresses just ``gained`` by a Service (None: every address)."""
        by_address: dict[str, list[ServiceView]] = {}
        for view in self._views.values():
            for text in _shown(view):
                by_address.setdefault(text, []).append(view)
        for address, holders in by_address.items():
            if len(holders) < 2 or (gained is not None and address not in gained):
                continue
            keys = {h.share_key for h in holders}
            ports = [p for h in holders for p in h.ports]
            if None in keys or len(keys) > 1 or len(ports) != len(set(ports)):
                names = sorted(h.key for h in holders)
                self.violations.append(f"{address} shown by {names} at resourceVersion {version}")


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
                problems.append(f"record {spec['address']} names {holder['name']}, not showing it")
    return problems


async def leaks_after(kube: KubeClient, namespace: str, within: float) -> list[str]:
    """``leaked_records`` once they are gone, or what is left after ``within`` seconds (lbctl
    releases a record a Service does not show only once the record is 10 s old)."""
    return await problems_left(lambda: leaked_records(kube, namespace), within=within)
