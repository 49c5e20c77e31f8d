"""The list+watch informer against the real apiserver: events, 410 relist, apiserver restart."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator
from types import ModuleType

import orjson
import pytest
import structlog.testing

from lbctl.devenv.controlplane import LocalControlPlane
from lbctl.kube import informer as informer_module
from lbctl.kube import packing as packing_module
from lbctl.kube.client import JSON, SERVICES, KubeClient, Resource
from lbctl.kube.informer import Backoff, Handler, Informer
from tests.integration.conftest import load_balancer
from tests.waiting import cancel_and_wait, eventually

Seen = list[tuple[str, str]]


def cluster_ip(name: str) -> JSON:
    service = load_balancer(name)
    service["spec"]["type"] = "ClusterIP"
    return service


def recorder(seen: Seen) -> Handler:
    def record(kind: str, old: JSON | None, new: JSON | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        seen.append((kind, obj["metadata"]["name"]))

    return record


@pytest.fixture
async def watching(kube: KubeClient, namespace: str) -> AsyncIterator[tuple[Informer, Seen]]:
    informer = Informer(kube, SERVICES, namespace=namespace, backoff=Backoff(0.05, 0.5))
    seen: Seen = []
    informer.add_handler(recorder(seen))
    task = asyncio.create_task(informer.run())
    await eventually(informer.synced.is_set, what="informer synced")
    yield informer, seen
    await cancel_and_wait(task)


async def test_create_update_delete_arrive_in_order(
    kube: KubeClient, namespace: str, watching: tuple[Informer, Seen]
) -> None:
    """Each change to a watched object reaches the handler and the cache."""
    informer, seen = watching
    await kube.create(SERVICES, namespace, cluster_ip("a"))
    await kube.patch(SERVICES, namespace, "a", {"metadata": {"labels": {"x": "1"}}})
    await kube.delete(SERVICES, namespace, "a")

    await eventually(lambda: ("DELETED", "a") in seen, what="delete event")
    assert seen == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert informer.get(f"{namespace}/a") is None


async def test_expired_watch_relists_and_reports_what_vanished(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane
) -> None:
    """A resourceVersion too old to resume (410) relists, and the diff yields deletes."""
    informer = Informer(kube, SERVICES, namespace=namespace, backoff=Backoff(0.05, 0.5))
    seen: Seen = []
    informer.add_handler(recorder(seen))
    await kube.create(SERVICES, namespace, cluster_ip("keep"))
    await kube.create(SERVICES, namespace, cluster_ip("vanish"))
    task = asyncio.create_task(informer.run())
    await eventually(lambda: len(informer) == 2, what="initial list")
    await cancel_and_wait(task)

    # While nobody watches: one object goes, one comes; a restarted apiserver's watch cache
    # starts after these changes, so the informer's resourceVersion is now too old.
    await kube.delete(SERVICES, namespace, "vanish")
    await kube.create(SERVICES, namespace, cluster_ip("fresh"))
    control_plane.restart_apiserver()

    task = asyncio.create_task(informer.run())
    try:
        await eventually(lambda: ("DELETED", "vanish") in seen, within=30, what="relist diff")
        await eventually(lambda: ("ADDED", "fresh") in seen, what="new object")
    finally:
        await cancel_and_wait(task)
    assert informer.relists == 1
    assert sorted(key.split("/")[1] for key, _ in informer.items()) == ["fresh", "keep"]


async def test_watch_survives_an_apiserver_restart(
    kube: KubeClient,
    namespace: str,
    control_plane: LocalControlPlane,
    watching: tuple[Informer, Seen],
) -> None:
    """Stopping the apiserver mid-watch loses nothing: changes after it returns arrive."""
    informer, seen = watching
    await kube.create(SERVICES, namespace, cluster_ip("before"))
    await eventually(lambda: ("ADDED", "before") in seen, what="first event")

    control_plane.stop_apiserver()
    await eventually(lambda: informer.watch_restarts > 0, within=30, what="watch noticed outage")
    control_plane.restart_apiserver()

    await kube.create(SERVICES, namespace, cluster_ip("after"))
    await kube.delete(SERVICES, namespace, "before")
    await eventually(lambda: ("DELETED", "before") in seen, within=30, what="events resumed")
    assert ("ADDED", "after") in seen
    assert [key.split("/")[1] for key, _ in informer.items()] == ["after"]


async def test_a_missing_crd_is_logged_by_name(kube: KubeClient) -> None:
    """A custom resource whose CRD is not installed is reported as such, naming the CRD, not
    as the apiserver's bare '404 page not found'; the informer keeps retrying."""
    missing = Resource("example.lbctl.io", "v1", "widgets", "Widget", namespaced=False)
    informer = Informer(kube, missing, backoff=Backoff(0.05, 0.5))
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(informer.run())
        try:
            await eventually(lambda: informer.watch_restarts >= 2, what="two attempts")
        finally:
            await cancel_and_wait(task)
    reports = [e for e in logs if e.get("crd") == "widgets.example.lbctl.io"]
    assert len(reports) >= 2, logs
    assert reports[0]["log_level"] == "error"
    assert "CustomResourceDefinition" in reports[0]["event"]
    assert not informer.synced.is_set()


async def test_the_cache_holds_less_than_the_json_it_stores(
    kube: KubeClient, namespace: str
) -> None:
    """Listed and watched objects alike cost well under their JSON size in the cache, keys
    and index included: they are kept deflated (orjson's own result keeps a 4 KiB buffer per
    object: a cache of those held four times as much)."""

    def mine(*modules: ModuleType) -> list[tracemalloc.Filter]:
        return [tracemalloc.Filter(True, str(m.__file__)) for m in modules]

    await asyncio.gather(
        *(kube.create(SERVICES, namespace, cluster_ip(f"l{i}")) for i in range(80))
    )
    informer = Informer(kube, SERVICES, namespace=namespace, backoff=Backoff(0.05, 0.5))
    tracemalloc.start()
    try:
        task = asyncio.create_task(informer.run())
        await eventually(informer.synced.is_set, what="informer synced")
        await asyncio.gather(
            *(kube.create(SERVICES, namespace, cluster_ip(f"w{i}")) for i in range(40))
        )
        await eventually(lambda: len(informer) == 120, what="watched Services cached")
        held = tracemalloc.take_snapshot().filter_traces(mine(informer_module, packing_module))
    finally:
        tracemalloc.stop()
    await cancel_and_wait(task)
    content = sum(len(orjson.dumps(obj)) for _, obj in informer.items())
    packed = sum(s.size for s in held.filter_traces(mine(packing_module)).statistics("filename"))
    cached = sum(stat.size for stat in held.statistics("filename"))
    assert packed < content / 2, (packed, content)
    assert cached < content, (cached, content)  # keys and the index included
