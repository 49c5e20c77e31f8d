"""The fault proxy itself: a write whose reply is lost has happened; reads and watches pass."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lbctl.devenv.controlplane import LocalControlPlane
from lbctl.kube.client import SERVICES, KubeClient, api_client_from
from lbctl.kube.errors import KubeUnavailable
from tests.integration.conftest import load_balancer
from tests.integration.fault_proxy import FaultProxy, resource_of
from tests.waiting import cancel_and_wait, eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def proxy(
    control_plane: LocalControlPlane, tmp_path: Path
) -> AsyncIterator[tuple[FaultProxy, KubeClient]]:
    """A proxy passing every reply on (tests set the shares) and a client talking through it."""
    async with FaultProxy.in_front_of(control_plane.kubeconfig, tmp_path, seed=1) as running:
        client = KubeClient(await api_client_from(str(running.kubeconfig)))
        try:
            yield running, client
        finally:
            await client.close()


def test_resource_of_names_what_rbac_names() -> None:
    assert resource_of("/api/v1/namespaces/a/services/x/status") == "services/status"
    assert resource_of("/apis/ipam.citrix.com/v1/vipaddresses/10.0.0.1") == "vipaddresses"
    assert resource_of("/apis/ipam.citrix.com/v1/namespaces/a/vips?watch=1") == "vips"


async def test_a_write_whose_reply_is_dropped_is_applied(
    kube: KubeClient, namespace: str, proxy: tuple[FaultProxy, KubeClient]
) -> None:
    running, through = proxy
    running.drop = 1.0
    with pytest.raises(KubeUnavailable):
        await through.create(SERVICES, namespace, load_balancer("lost"))
    assert running.count("dropped") == {"services": 1}
    created = await kube.get(SERVICES, namespace, "lost")  # directly: it exists
    assert created["metadata"]["name"] == "lost"
    running.drop = 0.0
    assert (await through.get(SERVICES, namespace, "lost"))["metadata"]["uid"] == created[
        "metadata"
    ]["uid"]


async def test_a_hung_reply_times_the_client_out_and_is_applied(
    kube: KubeClient, namespace: str, proxy: tuple[FaultProxy, KubeClient]
) -> None:
    running, through = proxy
    running.drop, running.hang = 1.0, 1.0
    with pytest.raises(KubeUnavailable):
        await through.create(SERVICES, namespace, load_balancer("hung"), timeout=1.0)
    assert running.count("hung") == {"services": 1}
    assert (await kube.get(SERVICES, namespace, "hung"))["metadata"]["name"] == "hung"


async def test_a_delayed_reply_arrives_late(
    namespace: str, proxy: tuple[FaultProxy, KubeClient]
) -> None:
    running, through = proxy
    running.delay, running.delay_seconds = 1.0, (0.6, 0.6)
    started = time.monotonic()
    created = await through.create(SERVICES, namespace, load_balancer("late"))
    assert time.monotonic() - started >= 0.6
    assert created["metadata"]["name"] == "late"
    assert running.count("delayed") == {"services": 1}


async def test_a_watch_through_the_proxy_delivers_events(
    kube: KubeClient, namespace: str, proxy: tuple[FaultProxy, KubeClient]
) -> None:
    running, through = proxy
    _, version = await through.list(SERVICES, namespace)
    seen: list[tuple[str, str]] = []

    async def watch() -> None:
        async for event in through.watch(
            SERVICES, namespace=namespace, resource_version=version,
            timeout_seconds=60, read_timeout=90,
        ):  # fmt: skip
            obj: dict[str, Any] = event["object"]
            seen.append((event["type"], obj["metadata"]["name"]))

    task = asyncio.create_task(watch())
    try:
        for name in ("w1", "w2"):
            await kube.create(SERVICES, namespace, load_balancer(name))
        await kube.delete(SERVICES, namespace, "w1")
        await eventually(lambda: ("DELETED", "w1") in seen, what="events through the proxy")
    finally:
        with contextlib.suppress(Exception):
            await cancel_and_wait(task)
    assert seen[:2] == [("ADDED", "w1"), ("ADDED", "w2")]
    assert running.count("dropped") == {}
