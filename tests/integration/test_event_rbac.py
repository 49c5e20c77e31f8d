"""Events aggregate across restarts under lbctl's own RBAC, not only as cluster-admin."""

from __future__ import annotations

from lbctl.devenv.cluster import apply_manifests
from lbctl.devenv.controlplane import LocalControlPlane
from lbctl.kube.client import EVENTS, SERVICES, KubeClient
from lbctl.kube.events import EventRecorder
from tests.integration.conftest import load_balancer
from tests.integration.test_manifests import as_service_account


async def test_a_restarted_lbctl_counts_its_earlier_event_again_under_its_service_account(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane
) -> None:
    """A second process (a restart, or the other replica) reporting the same thing finds the
    Event by its name and raises its count: it needs to read the Event, so the ServiceAccount
    must be allowed to get it."""
    await apply_manifests(kube)
    service = await kube.create(SERVICES, namespace, load_balancer("evt"))
    service.setdefault("apiVersion", "v1")
    service.setdefault("kind", "Service")
    client = await as_service_account(control_plane)
    try:
        for instance in ("lbctl-0", "lbctl-1"):  # one recorder per process
            recorder = EventRecorder(client, instance=instance)
            await recorder.record(service, "Warning", "AllocationFailed", "pool web is full")
    finally:
        await client.close()
    events, _ = await kube.list(EVENTS, namespace)
    mine = [e for e in events if e["involvedObject"]["name"] == "evt"]
    assert [(e["reason"], e.get("count")) for e in mine] == [("AllocationFailed", 2)]
    assert mine[0]["reportingInstance"] == "lbctl-0"
