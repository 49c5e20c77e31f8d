"""The chart and the kustomize manifests on a real apiserver: kubectl's client-side then
server-side apply, and a Helm release installed, run under its own ServiceAccount, upgraded
and uninstalled."""

from __future__ import annotations

import asyncio
import re
import secrets
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

from lbctl import app, status
from lbctl.config import Settings
from lbctl.devenv.cluster import KINDS
from lbctl.devenv.controlplane import LocalControlPlane
from lbctl.ipam.ranges import parse_vip_range
from lbctl.kube.client import CRDS, SERVICES, VIP_POOLS, KubeClient, Resource, api_client_from
from lbctl.kube.errors import NotFound
from lbctl.kube.leader import LeaderElectionConfig
from tests.chart import CHART, MANIFESTS, ROOT, documents, helm, kubectl, one, render
from tests.integration.conftest import load_balancer, wait_for_ip
from tests.waiting import cancel_and_wait, eventually

DEPLOYMENTS = KINDS["Deployment"]


async def test_manifests_and_chart_apply_client_side_then_server_side(
    control_plane: LocalControlPlane, namespace: str
) -> None:
    """No field conflicts when moving from ``kubectl apply`` to ``--server-side``; the manifests
    folder applies with -f (the Kustomization file is skipped) and with -k."""
    config = control_plane.kubeconfig

    def apply(*args: str, stdin: str | None = None) -> str:
        return kubectl("apply", *args, stdin=stdin, kubeconfig=config)

    await asyncio.to_thread(apply, "-R", "-f", str(MANIFESTS))
    await asyncio.to_thread(apply, "--server-side", "-R", "-f", str(MANIFESTS))
    plain = await asyncio.to_thread(apply, "-f", str(MANIFESTS))
    assert "deployment.apps/lbctl" in plain
    assert "Kustomization" not in plain
    await asyncio.to_thread(apply, "-k", str(MANIFESTS))
    await asyncio.to_thread(apply, "--server-side", "-k", str(MANIFESTS))

    release = f"lbctl-{secrets.token_hex(3)}"
    rendered = await asyncio.to_thread(helm, "template", release, str(CHART), "-n", namespace)
    await asyncio.to_thread(apply, "-n", namespace, "-f", "-", stdin=rendered)
    server_side = await asyncio.to_thread(
        apply, "--server-side", "-n", namespace, "-f", "-", stdin=rendered
    )
    assert f"deployment.apps/{release} serverside-applied" in server_side
    for kind in ("ClusterRole", "ClusterRoleBinding"):
        await asyncio.to_thread(kubectl, "delete", kind.lower(), release, kubeconfig=config)


def in_network(address: str, network: str) -> bool:
    return ip_address(address) in ip_network(network)


async def test_helm_install_run_upgrade_uninstall(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane
) -> None:
    """lbctl run under the release's ServiceAccount gives a Service a VIP from the release's
    VipPool; an upgrade that moves the pool takes effect; uninstall removes what the release
    made and leaves the CRDs."""
    config = control_plane.kubeconfig
    release = f"lbctl-{secrets.token_hex(3)}"
    pool = f"{release}-web"
    first, moved = "10.124.1.0/30", "10.124.2.0/30"

    def values(addresses: str) -> dict[str, Any]:
        return {
            "vipRange": [],
            "vipPools": [{"name": pool, "spec": {"addresses": [addresses]}}],
            "watchNamespace": namespace,
            "netscaler": {"username": "nsroot", "password": "not-used-here"},
        }

    def release_helm(action: str, addresses: str) -> str:
        return helm(
            action,
            release,
            str(CHART),
            "-n",
            namespace,
            values=values(addresses),
            kubeconfig=config,
        )

    notes = await asyncio.to_thread(release_helm, "install", first)
    assert "kubectl get vips -A" in notes
    # The NOTES' `lbctl status` in the pod runs under the release's ServiceAccount: scoped to
    # the namespace the release may read.
    assert f"-- lbctl status --namespace {namespace}\n" in notes
    made = render(values(first), release=release, namespace=namespace)
    for obj in made:
        resource = KINDS.get(obj["kind"], VIP_POOLS if obj["kind"] == "VipPool" else None)
        assert resource is not None, obj["kind"]
        await kube.get(resource, obj["metadata"].get("namespace"), obj["metadata"]["name"])

    deployment = await kube.get(DEPLOYMENTS, namespace, release)
    args = one([deployment], "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    config_map = await kube.get(KINDS["ConfigMap"], namespace, f"{release}-config")
    settings = Settings(
        pools=parse_vip_range(config_map["data"]["VIP_RANGE"]),
        namespace=args[args.index("--namespace") + 1],
        metrics_bind_address="0",
        leader_election=LeaderElectionConfig(
            namespace=namespace,
            name=args[args.index("--leader-elect-lease-name") + 1],
            identity="t",
        ),
    )
    api = await api_client_from(str(config))
    api.set_default_header("Impersonate-User", f"system:serviceaccount:{namespace}:{release}")
    api.set_default_header("Impersonate-Group", "system:serviceaccounts")
    client = KubeClient(api)
    runtime = app.build(settings, client)
    task = asyncio.create_task(app.run_with(settings, client, runtime))
    try:
        await eventually(runtime.leading.is_set, what="lbctl leads under the release's RBAC")
        await kube.create(SERVICES, namespace, load_balancer("web"))
        assert in_network(await wait_for_ip(kube, namespace, "web"), first)
        shown = await status.report(client, settings.pools, namespace)
        assert [a["holder"] for a in shown["allocations"]] == [f"{namespace}/web"]

        await asyncio.to_thread(release_helm, "upgrade", moved)
        assert (await kube.get(VIP_POOLS, None, pool))["spec"]["addresses"] == [moved]
        await kube.create(SERVICES, namespace, load_balancer("api"))
        assert in_network(await wait_for_ip(kube, namespace, "api"), moved)

        for name in ("web", "api"):
            await kube.delete(SERVICES, namespace, name)
        await eventually(
            lambda: (
                not {runtime.allocator.get(f"{namespace}/{n}") for n in ("web", "api")} - {None}
            ),
            what="both Services' addresses freed",
        )
        assert runtime.controller.failures == 0
    finally:
        await cancel_and_wait(task)
        await client.close()

    await asyncio.to_thread(helm, "uninstall", release, "-n", namespace, kubeconfig=config)

    async def gone(resource: Resource, space: str | None, name: str) -> bool:
        try:
            await kube.get(resource, space, name)
        except NotFound:
            return True
        return False

    for obj in made:
        resource = KINDS.get(obj["kind"], VIP_POOLS)
        meta = obj["metadata"]
        assert await gone(resource, meta.get("namespace"), meta["name"]), (obj["kind"], meta)
    for crd in documents(kubectl("kustomize", str(MANIFESTS))):
        if crd["kind"] == "CustomResourceDefinition":
            await kube.get(CRDS, None, crd["metadata"]["name"])
    listed = await asyncio.to_thread(helm, "list", "-n", namespace, "-q", kubeconfig=config)
    assert listed.strip() == ""


async def test_the_documented_crd_upgrade_applies_over_crds_helm_installed(
    control_plane: LocalControlPlane, namespace: str, tmp_path: Path
) -> None:
    """`helm install` creates crds/ (field manager helm) and never upgrades them; the command
    the NOTES and the README give for an upgrade must then apply a changed CRD, not stop at a
    conflict with helm's fields. (A throwaway copy of the VipPool CRD under another group.)"""
    config = control_plane.kubeconfig
    group = f"h{secrets.token_hex(3)}.example.com"
    source = (CHART / "crds" / "vippool.yaml").read_text().replace("ipam.citrix.com", group)
    crds = tmp_path / "crds"
    crds.mkdir()
    (crds / "vippool.yaml").write_text(source)
    await asyncio.to_thread(
        kubectl, "create", "--field-manager=helm", "-f", str(crds), kubeconfig=config
    )
    try:
        changed = source.replace(
            "lbctl gives to LoadBalancer", "lbctl (next) gives to LoadBalancer"
        )
        assert changed != source
        (crds / "vippool.yaml").write_text(changed)
        notes = await asyncio.to_thread(
            helm, "install", "notes", str(CHART), "-n", namespace, "--dry-run", kubeconfig=config
        )
        documented = re.findall(r"kubectl apply --server-side[^\n`]*charts/lbctl/crds/", notes)
        documented += re.findall(
            r"kubectl apply --server-side[^\n`]*charts/lbctl/crds/",
            (ROOT / "README.md").read_text(),
        )
        assert documented, "no CRD upgrade command in the NOTES and README"
        for command in set(documented):
            args = command.split()[1:-1]  # kubectl ... <the chart's crds/>
            await asyncio.to_thread(kubectl, *args, str(crds), kubeconfig=config)
    finally:
        await asyncio.to_thread(kubectl, "delete", "-f", str(crds), kubeconfig=config)
