"""Helpers to prepare a cluster for lbctl: apply its CRD and wait until it is served."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import yaml

from lbctl.kube.client import CONFIG_MAPS, CRDS, JSON, KubeClient, Resource

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
CRD_FILES = tuple(MANIFESTS / "crds" / f for f in ("vip.yaml", "vipaddress.yaml", "vippool.yaml"))


def load_balancer_service(name: str, port: int = 80, **spec: object) -> JSON:
    """A minimal ``type: LoadBalancer`` Service (one TCP port), for demos and tests."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": "web", "protocol": "TCP", "port": port, "targetPort": 8080}],
            **spec,
        },
    }


def load_documents(path: Path) -> list[JSON]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


async def install_crds(client: KubeClient, timeout: float = 30.0) -> list[str]:
    """Apply lbctl's CRDs (Vip, VipAddress, VipPool) and wait for their Established condition; their
    names."""
    names = []
    for crd in (doc for path in CRD_FILES for doc in load_documents(path)):
        names.append(str(crd["metadata"]["name"]))
        await client.apply(CRDS, crd)
        deadline = time.monotonic() + timeout
        while True:
            current = await client.get(CRDS, None, crd["metadata"]["name"])
            conditions = (current.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {crd['metadata']['name']} not established in {timeout} s")
            await asyncio.sleep(0.1)
    return names


KINDS = {
    "CustomResourceDefinition": CRDS,
    "Namespace": Resource("", "v1", "namespaces", "Namespace", namespaced=False),
    "ServiceAccount": Resource("", "v1", "serviceaccounts", "ServiceAccount"),
    "ConfigMap": CONFIG_MAPS,
    "Secret": Resource("", "v1", "secrets", "Secret"),
    "Deployment": Resource("apps", "v1", "deployments", "Deployment"),
    "Service": Resource("", "v1", "services", "Service"),
    "PodDisruptionBudget": Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    "ClusterRole": Resource(
        "rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False
    ),
    "ClusterRoleBinding": Resource(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        namespaced=False,
    ),
    "Role": Resource("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    "RoleBinding": Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
}


def kustomization_documents(directory: Path = MANIFESTS) -> list[JSON]:
    """Every object the kustomization in ``directory`` lists, in order (no patches used).

    The file is named ``Kustomization`` (which kustomize accepts) so that ``kubectl apply -f``
    of the folder, which reads only ``*.yaml``, ``*.yml`` and ``*.json``, skips it."""
    kustomization = yaml.safe_load((directory / "Kustomization").read_text())
    documents: list[JSON] = []
    for resource in kustomization["resources"]:
        documents.extend(load_documents(directory / resource))
    return documents


async def apply_manifests(client: KubeClient, directory: Path = MANIFESTS) -> list[JSON]:
    """Server-side apply every object of the kustomization; namespaces and CRDs first."""
    documents = kustomization_documents(directory)
    first = ("Namespace", "CustomResourceDefinition")
    ordered = sorted(documents, key=lambda doc: doc["kind"] not in first)
    applied = []
    for document in ordered:
        applied.append(await client.apply(KINDS[document["kind"]], document))
    return applied
