"""The container image as it runs in a cluster: non-root, read-only root filesystem, given a
kubeconfig and VIP_RANGE, it assigns a Service its VIP on the real kube-apiserver."""

from __future__ import annotations

import json
import shutil
from ipaddress import ip_address, ip_network
from pathlib import Path

import aiohttp
import pytest

from lbctl.devenv.controlplane import LocalControlPlane, free_port
from lbctl.devenv.image import CONTAINER_ULIMITS
from lbctl.kube.client import SERVICES, KubeClient
from tests.image_build import BuiltImage
from tests.integration.conftest import load_balancer, wait_for_ip
from tests.waiting import eventually

pytestmark = pytest.mark.integration

POOL = "10.86.0.0/24"  # no other test uses it: VipAddress records are cluster-wide


def readable_kubeconfig(control_plane: LocalControlPlane, directory: Path) -> tuple[Path, Path]:
    """Copies of the control plane's kubeconfig and CA that uid 65532 may read; the kubeconfig
    names the CA where the container mounts it."""
    config = json.loads(control_plane.kubeconfig.read_text())
    (cluster,) = config["clusters"]
    ca = directory / "ca.crt"
    shutil.copyfile(cluster["cluster"]["certificate-authority"], ca)
    cluster["cluster"]["certificate-authority"] = "/etc/lbctl/ca.crt"
    kubeconfig = directory / "kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    for path in (ca, kubeconfig):
        path.chmod(0o644)
    return kubeconfig, ca


async def test_the_image_assigns_a_vip_with_a_read_only_root(
    lbctl_image: BuiltImage,
    control_plane: LocalControlPlane,
    kube: KubeClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    kubeconfig, ca = readable_kubeconfig(control_plane, tmp_path)
    port = free_port()
    name = f"lbctl-test-{namespace}"
    started = lbctl_image.podman.run(
        "run",
        "--detach",
        f"--name={name}",
        "--read-only",
        "--network=host",
        *(f"--ulimit={limit}" for limit in CONTAINER_ULIMITS),
        f"--volume={kubeconfig}:/etc/lbctl/kubeconfig:ro",
        f"--volume={ca}:/etc/lbctl/ca.crt:ro",
        lbctl_image.image_id,
        "--kubeconfig=/etc/lbctl/kubeconfig",
        f"--namespace={namespace}",
        f'--vip-range=["{POOL}"]',
        f"--metrics-bind-address=127.0.0.1:{port}",
        "--log-format=json",
    )
    assert started.returncode == 0, started.stderr
    try:

        async def ready() -> bool:
            running = lbctl_image.podman.check(
                "container", "inspect", "--format={{.State.Running}}", name
            )
            assert running.strip() == "true", "lbctl's container exited"
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"http://127.0.0.1:{port}/readyz") as response,
                ):
                    return response.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await eventually(ready, within=60, what="lbctl in the image ready")
        await kube.create(SERVICES, namespace, load_balancer("web"))
        ip = await wait_for_ip(kube, namespace, "web", within=30)
        assert ip_address(ip) in ip_network(POOL)
        inspected = json.loads(lbctl_image.podman.check("container", "inspect", name))
        assert inspected[0]["State"]["Running"], inspected[0]["State"]
        assert inspected[0]["Config"]["User"] == "65532:65532"
        assert inspected[0]["HostConfig"]["ReadonlyRootfs"]
    except Exception as failure:
        logs = lbctl_image.podman.run("logs", name)
        log = f"{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
        raise AssertionError(f"{failure!r}\nlbctl's log:\n{log}") from failure
    finally:
        lbctl_image.podman.run("rm", "--force", "--time=5", name)
