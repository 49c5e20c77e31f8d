"""lbctl status rebuilds the allocator as the controller does."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from lbctl import status
from lbctl.ipam.allocator import Allocator
from lbctl.ipam.ranges import parse_vip_range
from lbctl.kube.client import KubeClient, Resource
from lbctl.kube.errors import KubeError, NotFound
from lbctl.reconcile.shown import ShownIndex
from lbctl.status import rows_and_allocator


def foreign_service() -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "other", "uid": "u1", "resourceVersion": "1"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/other"},
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}},
    }


def test_status_counts_an_address_another_controller_shows_as_the_controller_does() -> None:
    pools = parse_vip_range('["10.0.0.1/32"]')
    controller = Allocator(pools)
    index = ShownIndex(controller, lambda s: s.is_load_balancer and s.load_balancer_class is None)
    index("ADDED", None, foreign_service())
    [held] = controller.stats()
    assert (held.in_use, held.free) == (1, 0)
    _, allocator = rows_and_allocator(pools, [], [foreign_service()], [])
    [shown] = allocator.stats()
    assert (shown.in_use, shown.free) == (1, 0)
    _, as_its_class = rows_and_allocator(
        pools, [], [foreign_service()], [], None, "example.com/other"
    )
    assert [s.free for s in as_its_class.stats()] == [1]  # that instance's own Service


class NoConfigMaps:
    """A client under lbctl's own ServiceAccount, which may not read ConfigMaps."""

    async def get(self, resource: object, namespace: str | None, name: str) -> Any:
        raise AssertionError(f"read {namespace}/{name}: forbidden to lbctl's ServiceAccount")


async def test_status_in_lbctl_pod_reads_the_mounted_vip_range_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kubectl exec deploy/lbctl -- lbctl status` (the chart's NOTES) runs under lbctl's
    ServiceAccount, which may not read ConfigMaps: the pod's VIP_RANGE_FILE (the mounted
    ConfigMap key) is where its pools are; --vip-range still wins."""
    mounted = tmp_path / "VIP_RANGE"
    mounted.write_text('["10.9.0.0/30"]')
    monkeypatch.delenv("VIP_RANGE", raising=False)
    monkeypatch.setenv("VIP_RANGE_FILE", str(mounted))
    client = cast(KubeClient, NoConfigMaps())
    args = status.parser().parse_args([])
    assert await status.vip_range_of(client, args) == '["10.9.0.0/30"]'
    args = status.parser().parse_args(["--vip-range", '["10.8.0.0/30"]'])
    assert await status.vip_range_of(client, args) == '["10.8.0.0/30"]'


class NoCrds:
    """An apiserver without lbctl's CRDs: every list of an ipam.citrix.com resource is 404."""

    async def list(self, resource: Resource, namespace: str | None) -> Any:
        if resource.group:
            raise NotFound(404, "", "b'404 page not found\\n'")
        return [], "1"


async def test_status_without_the_crds_names_the_missing_crd() -> None:
    """`kubectl lbctl` on a cluster without lbctl's CRDs says which CRD is missing, as the
    controller's log does, rather than `404 : b'404 page not found'`."""
    with pytest.raises(KubeError) as raised:
        await status.report(cast(KubeClient, NoCrds()), (), None)
    assert "vippools.ipam.citrix.com" in str(raised.value)
    assert "CustomResourceDefinition" in str(raised.value)
    assert "404 page not found" not in str(raised.value)


def test_status_takes_kubectls_short_namespace_flag() -> None:
    """`kubectl lbctl status -n shop`, as every kubectl command and plugin takes it."""
    assert status.parser().parse_args(["-n", "shop"]).namespace == "shop"
