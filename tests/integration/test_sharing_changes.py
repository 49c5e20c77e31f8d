"""Sharers that change together, free a port, or whose address record is edited by hand:
who shows the address, what the records say, and how soon waiting Services are served.

Each test watches every instant (``ShownAddresses``), not only the end state.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from lbctl.kube.client import SERVICES, VIP_ADDRESSES, VIPS, KubeClient
from lbctl.kube.errors import NotFound
from tests.integration.conftest import StartLbctl, shared, shown_ip, wait_for_ip
from tests.integration.invariants import ShownAddresses
from tests.waiting import eventually

pytestmark = pytest.mark.integration

KEY = "lbctl.io/allow-shared-ip"


async def reason_of(kube: KubeClient, namespace: str, name: str) -> str | None:
    with contextlib.suppress(NotFound):
        status = (await kube.get(VIPS, namespace, name)).get("status") or {}
        return str((status.get("conditions") or [{}])[0].get("reason") or "") or None
    return None


async def test_a_waiter_is_woken_when_a_sharer_frees_the_port_it_needs(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """One address: web (blue, TCP 80) shows it; api (blue, TCP 80) waits on the port clash.
    web moves to TCP 8080: api fits now and gets the address at once, not on its 60 s retry."""
    await start_lbctl('["10.77.30.1"]')
    await kube.create(SERVICES, namespace, shared("web", "blue", ("TCP", 80)))
    first = await wait_for_ip(kube, namespace, "web")
    await kube.create(SERVICES, namespace, shared("api", "blue", ("TCP", 80)))
    assert await eventually(lambda: reason_of(kube, namespace, "api")) == "PortConflict"
    async with ShownAddresses(kube, namespace) as watch:
        ports = [{"name": "web", "protocol": "TCP", "port": 8080, "targetPort": 80}]
        await kube.patch(SERVICES, namespace, "web", {"spec": {"ports": ports}})
        assert await wait_for_ip(kube, namespace, "api", within=10) == first
    assert not watch.violations, watch.violations


async def test_sharers_re_keyed_together_keep_their_address_under_the_new_key(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """One address: web (TCP 80) and dns (UDP 53) share it under blue, and both are re-keyed
    to green at once (no other address to move to).  They end up on it, and the Vips, the
    record and the index say green: a green sharer joins them, a blue one does not.  (Two
    edits are never atomic: the first one re-keyed may be seen beside the other still blue,
    and then rightly waits a moment, as the every-instant watch allows.)"""
    await start_lbctl('["10.77.30.2"]')
    await kube.create(SERVICES, namespace, shared("web", "blue", ("TCP", 80)))
    first = await wait_for_ip(kube, namespace, "web")
    await kube.create(SERVICES, namespace, shared("dns", "blue", ("UDP", 53)))
    assert await wait_for_ip(kube, namespace, "dns") == first
    async with ShownAddresses(kube, namespace) as watch:
        patch = {"metadata": {"annotations": {KEY: "green"}}}
        await asyncio.gather(
            kube.patch(SERVICES, namespace, "web", patch),
            kube.patch(SERVICES, namespace, "dns", patch),
        )

        async def re_keyed() -> bool:
            vips = [(await kube.get(VIPS, namespace, n))["spec"] for n in ("web", "dns")]
            record = (await kube.get(VIP_ADDRESSES, None, first))["spec"]
            return (
                all(v.get("sharingKey") == "green" for v in vips)
                and record.get("sharingKey") == f"{namespace}/green"
            )

        await eventually(re_keyed, what="Vips and record re-keyed to green")
        await kube.create(SERVICES, namespace, shared("api", "green", ("TCP", 443)))
        assert await wait_for_ip(kube, namespace, "api", within=10) == first
        await kube.create(SERVICES, namespace, shared("old", "blue", ("TCP", 8443)))
        assert await eventually(lambda: reason_of(kube, namespace, "old")) == "PoolExhausted"
        for name in ("web", "dns"):
            assert shown_ip(await kube.get(SERVICES, namespace, name)) == first
    assert not watch.violations, watch.violations


async def test_a_new_sharer_of_a_record_whose_key_was_edited_gets_its_own_address(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """web and dns share X under blue; X's record says red after a hand edit.  The apiserver
    admits no blue holder beside them, so the index does not offer X: a new blue sharer gets
    an address of its own at once (it used to be offered X, refused, and retried twice a
    second for ever without a Vip); web and dns keep X."""
    running = await start_lbctl('["10.77.30.8/29"]')
    await kube.create(SERVICES, namespace, shared("web", "blue", ("TCP", 80)))
    first = await wait_for_ip(kube, namespace, "web")
    await kube.create(SERVICES, namespace, shared("dns", "blue", ("UDP", 53)))
    assert await wait_for_ip(kube, namespace, "dns") == first
    await kube.patch(VIP_ADDRESSES, None, first, {"spec": {"sharingKey": f"{namespace}/red"}})
    allocator = running.runtime.allocator

    async def record_read() -> bool:
        record = running.runtime.address_records.get(first)
        return record is not None and record["spec"]["sharingKey"] == f"{namespace}/red"

    await eventually(record_read, what="the edited record in lbctl's cache")
    async with ShownAddresses(kube, namespace) as watch:
        before = running.runtime.controller.reconciles
        await kube.create(SERVICES, namespace, shared("api", "blue", ("TCP", 443)))
        own = await wait_for_ip(kube, namespace, "api")
        assert own != first
        assert running.runtime.controller.reconciles - before < 10
        for name in ("web", "dns"):
            assert shown_ip(await kube.get(SERVICES, namespace, name)) == first
        held = allocator.get(f"{namespace}/api")
        assert held is not None
        assert str(held.address) == own
    assert not watch.violations, watch.violations
