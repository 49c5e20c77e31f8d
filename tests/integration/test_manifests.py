"""manifests/ applies to a real apiserver, and its RBAC is exactly what lbctl needs."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from ipaddress import ip_address
from typing import Any

import pytest

from lbctl import app
from lbctl.config import Settings
from lbctl.devenv.cluster import KINDS, apply_manifests, kustomization_documents
from lbctl.devenv.controlplane import LocalControlPlane
from lbctl.ipam.ranges import parse_vip_range
from lbctl.kube.client import SERVICES, VIP_POOLS, VIPS, KubeClient, api_client_from
from lbctl.kube.errors import Forbidden
from lbctl.kube.leader import LeaderElectionConfig
from tests.integration.conftest import CreatePool, RunningSimulator, load_balancer, wait_for_ip
from tests.waiting import cancel_and_wait, eventually

SERVICE_ACCOUNT = "system:serviceaccount:lbctl-system:lbctl"
UNEXERCISED = {
    ("events", "patch"), ("events", "get"), ("vipaddresses", "get"), ("services", "get"),
}  # fmt: skip
"""Granted but not always used by a short run: Event counts are bumped only after a minute (or
by a restarted lbctl that reads the Event it posted before, see test_event_rbac.py), an
address record is read back only after a lost reply or a refused claim, and a Service is read
only to confirm that one which vanished without lbctl's cleanup is really gone."""


def granted_rules() -> set[tuple[str, str]]:
    grants: set[tuple[str, str]] = set()
    for doc in kustomization_documents():
        if doc["kind"] in ("ClusterRole", "Role"):
            for rule in doc["rules"]:
                assert "*" not in rule["verbs"], rule
                assert "*" not in rule["resources"], rule
                grants |= {(res, verb) for res in rule["resources"] for verb in rule["verbs"]}
    return grants


async def as_service_account(control_plane: LocalControlPlane) -> KubeClient:
    api = await api_client_from(str(control_plane.kubeconfig))
    api.set_default_header("Impersonate-User", SERVICE_ACCOUNT)
    api.set_default_header("Impersonate-Group", "system:serviceaccounts")
    return KubeClient(api)


async def test_manifests_apply_and_their_rbac_is_sufficient_and_no_wider(
    kube: KubeClient,
    namespace: str,
    control_plane: LocalControlPlane,
    simulator: RunningSimulator,
    nodes: Callable[..., Awaitable[None]],
    vip_pools: CreatePool,
) -> None:
    """lbctl runs its whole flow (NetScaler included) under the ServiceAccount; every granted
    verb but the documented one is used, and anything else is forbidden."""
    await nodes(f"{namespace}-node", "10.10.0.9")
    applied = await apply_manifests(kube)
    assert {doc["kind"] for doc in applied} >= {"CustomResourceDefinition", "Deployment"}
    config_map: dict[str, Any] = next(d for d in applied if d["kind"] == "ConfigMap")
    pools = parse_vip_range(config_map["data"]["VIP_RANGE"])

    client = await as_service_account(control_plane)
    election = LeaderElectionConfig(
        namespace="lbctl-system", name=f"lbctl-{secrets.token_hex(3)}", identity="test"
    )
    settings = Settings(
        pools=pools,
        metrics_bind_address="0",
        leader_election=election,
        adc=simulator.settings(),
    )
    runtime = app.build(settings, client)
    task = asyncio.create_task(app.run_with(settings, client, runtime))
    try:
        await eventually(runtime.leading.is_set, what="lbctl leads under its own RBAC")
        await kube.create(SERVICES, namespace, load_balancer("rbac"))
        await wait_for_ip(kube, namespace, "rbac")
        group = f"lbctl-{namespace}_rbac_80-tcp_sgp"
        await eventually(
            lambda: any(
                m["servicegroupname"] == group
                for m in simulator.sim.objects("servicegroup_servicegroupmember_binding")
            ),
            what="configured on the ADC",
        )
        await kube.create(
            VIPS, namespace,
            {"apiVersion": "ipam.citrix.com/v1", "kind": "Vip", "metadata": {"name": "seed"},
             "spec": {"description": "filled by lbctl"}},
        )  # fmt: skip

        async def filled() -> bool:
            vip = await kube.get(VIPS, namespace, "seed")
            return bool(vip["spec"].get("ipaddress"))

        await eventually(filled, what="address-less Vip filled")
        seed = str((await kube.get(VIPS, namespace, "seed"))["spec"]["ipaddress"])
        await kube.delete(VIPS, namespace, "seed")
        await eventually(
            lambda: runtime.allocator.recorded_for(ip_address(seed)) is None,
            what="the hand-made Vip's address record released",
        )
        pool = f"rbac-{secrets.token_hex(3)}"
        await vip_pools(pool, ["10.123.0.0/30"], autoAssign=False)

        async def pool_status_written() -> bool:
            status = (await kube.get(VIP_POOLS, None, pool)).get("status") or {}
            return (status.get("ipv4") or {}).get("free") == 2

        await eventually(pool_status_written, what="the VipPool's status written")
        await kube.delete(SERVICES, namespace, "rbac")
        await eventually(lambda: runtime.allocator.get(f"{namespace}/rbac") is None, what="freed")
        assert runtime.controller.failures == 0
        with pytest.raises(Forbidden):
            await client.list(KINDS["Secret"], namespace)
    finally:
        await cancel_and_wait(task)
        await client.close()

    used = {pair for pair in client.calls if pair[0] != "secrets"}
    granted = granted_rules()
    assert used <= granted, f"used but not granted: {used - granted}"
    assert granted - used <= UNEXERCISED, f"granted, never used: {granted - used - UNEXERCISED}"
