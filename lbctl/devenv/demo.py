"""``lbctl demo``: the whole flow on this machine, from nothing to a Service with its VIP
and its NetScaler configuration.

Builds (once) and starts a local kube-apiserver + etcd, installs the Vip CRD, starts the NITRO
simulator (a stand-in NetScaler), registers two demo Nodes, starts the real ``python -m lbctl``
process, creates demo LoadBalancer Services and prints what each received: its VIP and the lb
vserver, service group and members on the ADC.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lbctl.devenv.build import ControlPlaneBuildError, ensure_binaries
from lbctl.devenv.cluster import install_crds, load_balancer_service
from lbctl.devenv.controlplane import ControlPlaneStartError, LocalControlPlane
from lbctl.kube.client import (
    JSON,
    NAMESPACES,
    NODES,
    SERVICES,
    VIPS,
    KubeClient,
    api_client_from,
)
from lbctl.kube.errors import AlreadyExists, NotFound
from lbctl.nitro.simulator import Simulator

DEMO_RANGE = '["10.99.98.0/24"]'
DEMO_SERVICES = [("echo1", 80), ("echo2", 8443)]
DEMO_NODES = [("demo-node-1", "172.30.0.11"), ("demo-node-2", "172.30.0.12")]
SIM_USER = "nsroot"
SIM_PASSWORD = "demo-only-password"


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


async def wait_for_vip(client: KubeClient, namespace: str, name: str, timeout: float) -> JSON:
    deadline = time.monotonic() + timeout
    while True:
        service = await client.get(SERVICES, namespace, name)
        ingress = (service.get("status", {}).get("loadBalancer") or {}).get("ingress")
        if ingress:
            return service
        if time.monotonic() > deadline:
            raise TimeoutError(f"Service {namespace}/{name} got no VIP within {timeout:.0f} s")
        await asyncio.sleep(0.2)


async def register_nodes(client: KubeClient) -> None:
    """Nodes as kubelets would register them (this control plane has no kubelet)."""
    for name, ip in DEMO_NODES:
        with contextlib.suppress(AlreadyExists):
            await client.create(NODES, None, {"metadata": {"name": name}})
        status = {
            "addresses": [{"type": "InternalIP", "address": ip}],
            "conditions": [{"type": "Ready", "status": "True"}],
        }
        await client.patch(NODES, None, name, {"status": status}, subresource="status")
        say(f"registered Node {name} (InternalIP {ip}, Ready)")


async def wait_for_adc(sim: Simulator, namespace: str, name: str, timeout: float) -> str:
    """One line describing the Service's lb vservers and members on the simulated ADC."""
    prefix = f"lbctl-{namespace}_{name}_"
    deadline = time.monotonic() + timeout
    while True:
        vservers = [v for v in sim.objects("lbvserver") if v["name"].startswith(prefix)]
        bound = [
            b for b in sim.objects("lbvserver_servicegroup_binding")
            if b["name"].startswith(prefix)
        ]  # fmt: skip
        if vservers and len(bound) == len(vservers):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"Service {namespace}/{name} not on the ADC within {timeout:.0f} s")
        await asyncio.sleep(0.2)
    lines = []
    for vserver in vservers:
        group = next(b["servicegroupname"] for b in bound if b["name"] == vserver["name"])
        members = sorted(
            f"{m['ip']}:{m['port']}"
            for m in sim.objects("servicegroup_servicegroupmember_binding")
            if m["servicegroupname"] == group
        )
        lines.append(
            f"lbvserver {vserver['name']} {vserver['servicetype']} "
            f"{vserver['ipv46']}:{vserver['port']} -> servicegroup {group} "
            f"members {', '.join(members)}"
        )
    return "; ".join(lines)


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    workdir: Path
    local: bool
    """A local control plane (no kubelets: the demo registers Nodes itself)."""


async def exercise(cluster: Cluster, vip_range: str, namespace: str, hold: bool) -> None:
    main = asyncio.current_task()
    if main is not None:  # SIGTERM stops the demo like Ctrl-C: cleaned up, nothing left running
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    sim = Simulator(username=SIM_USER, password=SIM_PASSWORD)
    async with sim.serve() as url:
        say(f"NetScaler NITRO simulator at {url}/nitro/v1 (user {SIM_USER})")
        await exercise_with(cluster, vip_range, namespace, hold, sim, url)


async def remove_demo_services(client: KubeClient, namespace: str, timeout: float = 60) -> None:
    """Delete what the demo created; lbctl releases the VIPs and ADC objects first."""
    for name, _ in DEMO_SERVICES:
        with contextlib.suppress(NotFound):
            await client.delete(SERVICES, namespace, name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items, _ = await client.list(SERVICES, namespace)
        if not any(i["metadata"]["name"] in dict(DEMO_SERVICES) for i in items):
            say("deleted the demo Services; lbctl released their VIPs and ADC objects")
            return
        await asyncio.sleep(0.2)
    say("demo Services still terminating; check 'kubectl get events' in " + namespace)


async def exercise_with(
    cluster: Cluster, vip_range: str, namespace: str, hold: bool, sim: Simulator, url: str
) -> None:
    client = KubeClient(await api_client_from(str(cluster.kubeconfig)))
    controller: subprocess.Popen[bytes] | None = None
    created = False
    try:
        say(f"installed CRDs {', '.join(await install_crds(client))}")
        if cluster.local:
            await register_nodes(client)
        with contextlib.suppress(AlreadyExists):
            await client.create(NAMESPACES, None, {"metadata": {"name": namespace}})
        log_path = cluster.workdir / "lbctl.log"
        env = dict(
            os.environ,
            VIP_RANGE=vip_range,
            LBCTL_LOG_FORMAT="console",
            NS_URL=url,
            NS_USER=SIM_USER,
            NS_PASSWORD=SIM_PASSWORD,
        )
        with open(log_path, "wb") as log_file:
            controller = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lbctl",
                    "--kubeconfig",
                    str(cluster.kubeconfig),
                    "--metrics-bind-address",
                    "127.0.0.1:0",
                ],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        say(f"started lbctl (pid {controller.pid}) with VIP_RANGE={vip_range}; log: {log_path}")
        for name, port in DEMO_SERVICES:
            created = True
            await client.create(SERVICES, namespace, load_balancer_service(name, port))
            say(f"created Service {namespace}/{name} (type LoadBalancer, port {port}/TCP)")
        for name, _ in DEMO_SERVICES:
            service = await wait_for_vip(client, namespace, name, timeout=60)
            ip = service["status"]["loadBalancer"]["ingress"][0]["ip"]
            annotation = service["metadata"].get("annotations", {}).get("com.citrix.vip")
            vip = await client.get(VIPS, namespace, name)
            say(
                f"{namespace}/{name}: VIP {ip}  (status.loadBalancer.ingress[0].ip={ip}, "
                f"annotation com.citrix.vip={annotation}, Vip {namespace}/{name} "
                f"spec.ipaddress={vip['spec']['ipaddress']})"
            )
            adc = await wait_for_adc(sim, namespace, name, timeout=60)
            say(f"{namespace}/{name} on the NetScaler: {adc}")
        if hold:
            say(f"running; KUBECONFIG={cluster.kubeconfig}; press Ctrl-C to stop and clean up")
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
    finally:
        if created and controller is not None and controller.poll() is None:
            await remove_demo_services(client, namespace)
        if controller is not None:
            controller.send_signal(signal.SIGTERM)
            controller.wait(timeout=30)
        await client.close()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="lbctl demo", description=__doc__)
    parser.add_argument("--vip-range", default=os.environ.get("VIP_RANGE") or DEMO_RANGE)
    parser.add_argument("--namespace", default="demo")
    parser.add_argument(
        "--hold",
        action=argparse.BooleanOptionalAction,
        default=sys.stdin.isatty(),
        help="keep running until Ctrl-C, then clean up (default: on in a terminal)",
    )
    parser.add_argument(
        "--kubeconfig",
        help="use this cluster instead of a local control plane (its Nodes are used as they are)",
    )
    args = parser.parse_args(argv)
    try:
        if args.kubeconfig:
            with tempfile.TemporaryDirectory(prefix="lbctl-demo-") as workdir:
                cluster = Cluster(Path(args.kubeconfig), Path(workdir), local=False)
                run_demo(cluster, args)
            say("done; lbctl and the simulator stopped")
            return 0
        started = time.monotonic()
        binaries = ensure_binaries(progress=say)
        say(f"control plane binaries ready ({time.monotonic() - started:.1f} s)")
        with LocalControlPlane(binaries) as plane:
            say(
                f"kube-apiserver {binaries.kube_version} at {plane.url}, etcd "
                f"{binaries.etcd_version}"
            )
            run_demo(Cluster(plane.kubeconfig, plane.workdir, local=True), args)
    except (ControlPlaneBuildError, ControlPlaneStartError, TimeoutError) as err:
        print(f"lbctl demo: {err}", file=sys.stderr)
        return 1
    say("done; control plane, simulator and lbctl stopped")
    return 0


def run_demo(cluster: Cluster, args: argparse.Namespace) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(exercise(cluster, args.vip_range, args.namespace, args.hold))
