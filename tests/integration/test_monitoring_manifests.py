"""monitoring applies to a real apiserver serving prometheus-operator's own CRDs,
and the apiserver keeps every field (a field the schema does not know would be pruned)."""

from __future__ import annotations

import asyncio
import copy

import pytest

from lbctl.devenv.cluster import KINDS, kustomization_documents
from lbctl.kube.client import CRDS, KubeClient, Resource
from lbctl.kube.errors import Invalid
from tests.integration.operator_crds import operator_crds
from tests.monitoring.rules import MONITORING, rule_groups
from tests.waiting import eventually

MONITORING_KINDS = {
    "ServiceMonitor": Resource("monitoring.coreos.com", "v1", "servicemonitors", "ServiceMonitor"),
    "PrometheusRule": Resource("monitoring.coreos.com", "v1", "prometheusrules", "PrometheusRule"),
}


async def install_operator_crds(kube: KubeClient) -> None:
    for crd in await asyncio.to_thread(operator_crds):
        await kube.apply(CRDS, crd)
        name = crd["metadata"]["name"]

        async def established(name: str = name) -> bool:
            conditions = ((await kube.get(CRDS, None, name)).get("status") or {}).get(
                "conditions"
            ) or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        await eventually(established, what=f"CRD {name} established")


async def test_monitoring_manifests_apply_to_prometheus_operator_crds_unchanged(
    kube: KubeClient,
) -> None:
    await install_operator_crds(kube)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lbctl-system"}}
    await kube.apply(KINDS["Namespace"], namespace)
    documents = kustomization_documents(MONITORING)
    for doc in documents:
        applied = await kube.apply(MONITORING_KINDS[doc["kind"]], doc)
        assert applied["spec"] == doc["spec"], doc["kind"]
    rule = next(doc for doc in documents if doc["kind"] == "PrometheusRule")
    assert rule["spec"]["groups"] == rule_groups()

    broken = copy.deepcopy(next(doc for doc in documents if doc["kind"] == "ServiceMonitor"))
    broken["metadata"]["name"] = "lbctl-broken"
    broken["spec"]["endpoints"][0]["interval"] = "every 30 seconds"
    with pytest.raises(Invalid, match="interval"):
        await kube.apply(MONITORING_KINDS["ServiceMonitor"], broken)
