"""What each kind of write costs the control plane: kube-apiserver and etcd CPU per write.

When lbctl and MetalLB run on one small machine, the time for N Services to get their address
is bounded by the CPU of the whole machine, and most of it is the control plane's.  This
bench prices each write one controller makes per new Service, so the ratio between them can be
reasoned about rather than only measured:

- lbctl (IPAM only): a VipAddress create (the per-address record), a Vip create, a merge
  PATCH of the Service's status (status, annotation and finalizer at once) and an Event;
- MetalLB's controller: two PUTs of the Service's status, a PUT of its IPAddressPool's status
  (about one per new Service in bench.peers: 1,056 for 1,000) and an Event;
- the Service create every run has, for scale.

It runs lbctl, and then MetalLB's controller, once for one Service and uses what each wrote as
the model of its writes, so the objects are the size each controller makes them.  Then, on the
same local control plane, it makes N writes of each kind, 32 in flight, and reads the CPU
seconds of kube-apiserver and etcd from /proc before and after.
Run: ``python -m bench.writecost -n 1000``; JSON in bench/results/writecost.json.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.peer_controllers import (
    IP_ADDRESS_POOLS,
    METALLB_NAMESPACE,
    LbctlController,
    MetalLBController,
    cpu_seconds,
    install_metallb,
    metallb_binary,
)
from bench.report import report
from bench.scale import until
from lbctl.devenv.build import ensure_binaries
from lbctl.devenv.cluster import install_crds, load_balancer_service
from lbctl.devenv.controlplane import LocalControlPlane
from lbctl.kube.client import (
    EVENTS,
    JSON,
    NAMESPACES,
    SERVICES,
    VIP_ADDRESSES,
    VIPS,
    KubeClient,
    api_client_from,
)

RESULTS = Path(__file__).parent / "results" / "writecost.json"
IN_FLIGHT = 32
MODEL_TIMEOUT_S = 60.0
"""How long each controller may take to handle the one Service whose writes are the models."""
NAMESPACE = "writecost"
SERVER_SET = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation")
PER_SERVICE = {
    "lbctl": ("VipAddress create", "Vip create", "Service status PATCH", "Event create"),
    "MetalLB": (
        "Service status PUT",
        "Service status PUT",
        "IPAddressPool status PUT",
        "Event create",
    ),
}


async def priced(
    plane: LocalControlPlane, n: int, write: Callable[[int], Awaitable[Any]]
) -> dict[str, float]:
    """``write(0)`` … ``write(n - 1)``, IN_FLIGHT at a time: wall seconds, and the control
    plane's CPU milliseconds per write."""
    limit = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int) -> None:
        async with limit:
            await write(i)

    def cpu() -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in plane.pids().items()}

    before, started = cpu(), time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    wall, after = time.monotonic() - started, cpu()
    spent = {name: (after[name] - before[name]) * 1000 / n for name in before}
    return {"wall_s": wall, "apiserver_ms": spent["kube-apiserver"], "etcd_ms": spent["etcd"]}


def model(obj: JSON) -> JSON:
    """``obj`` without what the apiserver sets, as a body to create again."""
    body = copy.deepcopy(obj)
    for field in SERVER_SET:
        body["metadata"].pop(field, None)
    return body


async def lbctl_writes(plane: LocalControlPlane, kube: KubeClient) -> dict[str, JSON]:
    """What lbctl writes for one new Service: its Vip, its VipAddress, the Service as its
    status PATCH leaves it, and its Event."""
    controller = LbctlController(plane, "10.64.0.0/24")
    try:
        await controller.wait_ready()
        klass = controller.load_balancer_class
        await kube.create(
            SERVICES, NAMESPACE, load_balancer_service("model", loadBalancerClass=klass)
        )
        seen: dict[str, Any] = {}

        async def addressed_and_told() -> bool:
            seen["events"] = (await kube.list(EVENTS, NAMESPACE))[0]
            seen["service"] = await kube.get(SERVICES, NAMESPACE, "model")
            ingress = seen["service"].get("status", {}).get("loadBalancer", {}).get("ingress")
            return bool(seen["events"] and ingress)

        what = "lbctl gave the model Service an address and an Event"
        await until(addressed_and_told, what, timeout=MODEL_TIMEOUT_S, poll=0.1)
    finally:
        controller.stop()
    return {
        "vip": await kube.get(VIPS, NAMESPACE, "model"),
        "address": (await kube.list(VIP_ADDRESSES))[0][0],
        "service": seen["service"],
        "event": seen["events"][0],
    }


async def metallb_pool(plane: LocalControlPlane, kube: KubeClient) -> JSON:
    """MetalLB's IPAddressPool as its controller leaves it after giving one Service an
    address (its status counts assigned and available addresses)."""
    await install_metallb(kube, "10.80.0.0/24")
    controller = MetalLBController(plane, kube, metallb_binary())
    try:
        await controller.wait_ready()
        klass = controller.load_balancer_class
        body = load_balancer_service("metallb-model", loadBalancerClass=klass)
        await kube.create(SERVICES, NAMESPACE, body)
        seen: dict[str, JSON] = {}

        async def assigned() -> bool:
            seen["pool"] = await kube.get(IP_ADDRESS_POOLS, METALLB_NAMESPACE, "bench")
            return bool((seen["pool"].get("status") or {}).get("assignedIPv4"))

        what = "MetalLB wrote an assignment in its pool's status"
        await until(assigned, what, timeout=MODEL_TIMEOUT_S, poll=0.1)
        return seen["pool"]
    finally:
        controller.stop()


def address(i: int) -> str:
    return f"10.65.{i // 256}.{i % 256}"


async def run(n: int) -> dict[str, Any]:
    with LocalControlPlane(ensure_binaries()) as plane:
        kube = KubeClient(await api_client_from(str(plane.kubeconfig)))
        try:
            await install_crds(kube)
            await kube.create(NAMESPACES, None, {"metadata": {"name": NAMESPACE}})
            written = await lbctl_writes(plane, kube)
            pool = model(await metallb_pool(plane, kube))
            vip, record, event = (model(written[k]) for k in ("vip", "address", "event"))
            vip["metadata"].pop("ownerReferences", None)
            service = written["service"]
            meta = service["metadata"]

            async def create_service(i: int) -> None:
                body = load_balancer_service(f"s-{i}", loadBalancerClass="bench.io/nobody")
                await kube.create(SERVICES, NAMESPACE, body)

            async def create_vip(i: int) -> None:
                body = copy.deepcopy(vip)
                body["metadata"]["name"] = f"s-{i}"
                await kube.create(VIPS, NAMESPACE, body)

            async def create_record(i: int) -> None:
                body = copy.deepcopy(record)
                body["metadata"]["name"] = body["spec"]["address"] = address(i)
                await kube.create(VIP_ADDRESSES, None, body)

            async def patch_status(i: int) -> None:
                ingress = [{"ip": address(i), "ipMode": "VIP"}]
                patch = {
                    "metadata": {"annotations": meta.get("annotations"),
                                 "finalizers": meta.get("finalizers")},
                    "status": {"loadBalancer": {"ingress": ingress},
                               "conditions": service["status"].get("conditions")},
                }  # fmt: skip
                await kube.patch(SERVICES, NAMESPACE, f"s-{i}", patch, subresource="status")

            cached: dict[str, JSON] = {}

            async def make_pool(i: int) -> None:
                body = {key: value for key, value in pool.items() if key != "status"}
                body["metadata"] = {"name": f"p-{i}", "namespace": METALLB_NAMESPACE}
                body["spec"] = {**pool["spec"], "addresses": [f"10.{90 + i // 256}.{i % 256}.0/24"]}
                await kube.create(IP_ADDRESS_POOLS, METALLB_NAMESPACE, body)

            async def put_status(i: int) -> None:
                # As client-go's UpdateStatus: the whole object, as MetalLB's cache has it.
                current = cached[f"s-{i}"]
                current["status"]["loadBalancer"] = {"ingress": [{"ip": address(i + n)}]}
                path = SERVICES.path(NAMESPACE, f"s-{i}", "status")
                await kube._json("update", "PUT", path, body=current)

            async def put_pool_status(i: int) -> None:
                # A pool of its own per write: MetalLB writes its one pool in turn.
                current = cached[f"p-{i}"]
                current["status"] = {**pool["status"], "assignedIPv4": i % 250 + 1}
                path = IP_ADDRESS_POOLS.path(METALLB_NAMESPACE, f"p-{i}", "status")
                await kube._json("update", "PUT", path, body=current)

            async def create_event(i: int) -> None:
                body = copy.deepcopy(event)
                body["metadata"]["name"] = f"s-{i}.{i:016x}"
                body["involvedObject"]["name"] = f"s-{i}"
                await kube.create(EVENTS, NAMESPACE, body)

            kinds = {
                "Service create": create_service,
                "VipAddress create": create_record,
                "Vip create": create_vip,
                "Service status PATCH": patch_status,
                "Service status PUT": put_status,
                "IPAddressPool status PUT": put_pool_status,
                "Event create": create_event,
            }
            result: dict[str, Any] = {"writes": n, "in_flight": IN_FLIGHT, "kinds": {}}
            for kind, write in kinds.items():
                if write is put_status:
                    listed = (await kube.list(SERVICES, NAMESPACE))[0]
                    cached.update((x["metadata"]["name"], x) for x in listed)
                if write is put_pool_status:
                    await asyncio.gather(*(make_pool(i) for i in range(n)))
                    listed = (await kube.list(IP_ADDRESS_POOLS, METALLB_NAMESPACE))[0]
                    cached.update((x["metadata"]["name"], x) for x in listed)
                result["kinds"][kind] = await priced(plane, n, write)
                print(f"{kind}: done", file=sys.stderr, flush=True)
        finally:
            await kube.close()
    return result


def per_service(result: dict[str, Any], controller: str) -> float:
    """Control-plane CPU milliseconds of one controller's writes for one new Service."""
    kinds = result["kinds"]
    return sum(
        float(kinds[k]["apiserver_ms"] + kinds[k]["etcd_ms"]) for k in PER_SERVICE[controller]
    )


def table(result: dict[str, Any]) -> str:
    lines = [
        f"Control-plane CPU per write: {result['writes']} writes of each kind, "
        f"{result['in_flight']} in flight, one local kube-apiserver + etcd",
        "",
        f"{'write':<26} {'apiserver':>10} {'etcd':>8} {'together':>9} {'wall':>7}",
    ]
    for kind, x in result["kinds"].items():
        both = x["apiserver_ms"] + x["etcd_ms"]
        lines.append(
            f"{kind:<26} {x['apiserver_ms']:>7.2f} ms {x['etcd_ms']:>5.2f} ms "
            f"{both:>6.2f} ms {x['wall_s']:>5.1f} s"
        )
    lines.append("")
    for controller, kinds in PER_SERVICE.items():
        lines.append(
            f"per new Service, {controller}'s writes ({', '.join(kinds)}): "
            f"{per_service(result, controller):.2f} ms"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.writecost", description=__doc__)
    parser.add_argument("-n", "--writes", type=int, default=1000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = asyncio.run(run(args.writes))
    return report(table(result), result, args.output)


if __name__ == "__main__":
    sys.exit(main())
