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
import time
from collections.abc import Sequence

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
from lbctl.kube.errors import AlreadyExists
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


async def exercise(plane: LocalControlPlane, vip_range: str, namespace: str, hold: bool) -> None:
    sim = Simulator(username=SIM_USER, password=SIM_PASSWORD)
    async with sim.serve() as url:
        say(f"NetScaler NITRO simulator at {url}/nitro/v1 (user {SIM_USER})")
        await exercise_with(plane, vip_range, namespace, hold, sim, url)


async def exercise_with(
    plane: LocalControlPlane, vip_range: str, namespace: str, hold: bool, sim: Simulator, url: str
) -> None:
    client = KubeClient(await api_client_from(str(plane.kubeconfig)))
    controller: subprocess.Popen[bytes] | None = None
    try:
        await install_crds(client)
        say("installed CRD vips.ipam.citrix.com")
        await register_nodes(client)
        with contextlib.suppress(AlreadyExists):
            await client.create(NAMESPACES, None, {"metadata": {"name": namespace}})
        log_path = plane.workdir / "lbctl.log"
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
                    str(plane.kubeconfig),
                    "--metrics-bind-address",
                    "127.0.0.1:0",
                ],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        say(f"started lbctl (pid {controller.pid}) with VIP_RANGE={vip_range}; log: {log_path}")
        for name, port in DEMO_SERVICES:
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
            say(f"running; KUBECONFIG={plane.kubeconfig}; press Ctrl-C to stop")
            await asyncio.Event().wait()
    finally:
        if controller is not None:
            controller.send_signal(signal.SIGTERM)
            controller.wait(timeout=30)
        await client.close()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="lbctl demo", description=__doc__)
    parser.add_argument("--vip-range", default=os.environ.get("VIP_RANGE") or DEMO_RANGE)
    parser.add_argument("--namespace", default="demo")
    parser.add_argument("--hold", action="store_true", help="keep everything running until Ctrl-C")
    args = parser.parse_args(argv)
    try:
        started = time.monotonic()
        binaries = ensure_binaries(progress=say)
        say(f"control plane binaries ready ({time.monotonic() - started:.1f} s)")
        with LocalControlPlane(binaries) as plane:
            say(
                f"kube-apiserver {binaries.kube_version} at {plane.url}, etcd "
                f"{binaries.etcd_version}"
            )
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(exercise(plane, args.vip_range, args.namespace, args.hold))
    except (ControlPlaneBuildError, ControlPlaneStartError, TimeoutError) as err:
        print(f"lbctl demo: {err}", file=sys.stderr)
        return 1
    say("done; control plane and lbctl stopped")
    return 0
