"""lbctl next to MetalLB's controller: the time to give N new Services their address.

One local control plane; lbctl (IPAM only, no NetScaler), lbctl with the NITRO simulator as
its NetScaler (served by this process) and MetalLB's controller v0.15.3 run one after the
other, each as its own process on its own loadBalancerClass with a pool of the same size, for
the given number of rounds.  Each run starts a fresh controller, waits until it
is ready, creates N Services of its class at once (32 requests in flight) in a namespace of its
own, and measures:

- the time from the first create until every Service shows an address in its status (and
  for lbctl+ADC until every lb vserver is bound to its service group on the simulator);
- the controller's CPU seconds over that time and until its writes settle (from /proc);
- the time the bench's own creates took, and the CPU seconds kube-apiserver and etcd spent
  until every Service had its address (from /proc: the work the controller's writes cost the
  control plane, on top of the creates every run has);
- apiserver writes per new Service, objects and Events apart, from the deltas of the
  apiserver's ``apiserver_request_total`` (the runs are sequential, so every write in the
  window is the controller's, except the bench's own Service creates and the apiserver's
  own ClusterIP and Lease writes, which are taken out);
- the controller's peak RSS.

Three Ready Nodes exist, so the NetScaler's service groups have members (lbctl reports an lb
vserver without members as DOWN in the Service's condition, a status write of its own).

Then it deletes the Services, waits until they are gone, and stops the controller.  Prints a
table and writes bench/results/peers.json.  Run: ``python -m bench.peers -n 1000 --rounds 2``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench.peer_controllers import (
    ControllerProcess,
    LbctlController,
    MetalLBController,
    cpu_seconds,
    install_metallb,
    metallb_binary,
)
from bench.report import report
from bench.scale import NODE_IPS, ready_nodes, until
from lbctl.devenv.build import ensure_binaries
from lbctl.devenv.cluster import install_crds, load_balancer_service
from lbctl.devenv.controlplane import LocalControlPlane
from lbctl.kube.client import NAMESPACES, SERVICES, VIP_ADDRESSES, VIPS, KubeClient, api_client_from
from lbctl.kube.errors import NotFound
from lbctl.kube.informer import Informer
from lbctl.nitro.simulator import Simulator

RESULTS = Path(__file__).parent / "results" / "peers.json"
ADC_PASSWORD = "bench-password"
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})
APISERVER_OWN = frozenset({"ipaddresses", "leases"})
"""Written by the apiserver itself: a ClusterIP per new Service, its identity Lease."""
IN_FLIGHT = 32
SETTLE_S = 2.0
TIMEOUT_S = 900.0

WriteKey = tuple[str, str, str, bool]
"""(verb, resource, subresource, refused: HTTP status 4xx/5xx) of apiserver_request_total."""


def pool_cidr(base: str, n: int) -> str:
    """The smallest IPv4 CIDR at ``base`` holding ``n`` addresses besides network and
    broadcast, e.g. ``pool_cidr("10.64.0.0", 1000) == "10.64.0.0/22"``."""
    return f"{base}/{32 - (n + 1).bit_length()}"


class Apiserver:
    """The apiserver's own /metrics, read with the admin token of the local control plane."""

    def __init__(self, plane: LocalControlPlane) -> None:
        self.plane = plane
        self.url = f"{plane.url}/metrics"
        self.headers = {"Authorization": f"Bearer {plane.token}"}
        self.ssl = ssl.create_default_context(cafile=str(plane.workdir / "certs" / "apiserver.crt"))
        self.ssl.check_hostname = False

    def cpu_seconds(self) -> float:
        """CPU seconds of kube-apiserver and etcd so far."""
        return sum(cpu_seconds(pid) for pid in self.plane.pids().values())

    async def writes(self) -> Counter[WriteKey]:
        """Write requests so far, by (verb, resource, subresource, refused)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.url, headers=self.headers, ssl=self.ssl) as response,
        ):
            response.raise_for_status()
            text = await response.text()
        found: Counter[WriteKey] = Counter()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name != "apiserver_request_total":
                    continue
                labels = sample.labels
                if labels["verb"] in WRITE_VERBS:
                    refused = not labels["code"].startswith("2")
                    key = (labels["verb"], labels["resource"], labels["subresource"], refused)
                    found[key] += int(sample.value)
        return found


async def settled(apiserver: Apiserver) -> Counter[WriteKey]:
    """Writes so far, once none came for SETTLE_S (trailing status updates and Events)."""
    last = await apiserver.writes()
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < SETTLE_S:
        await asyncio.sleep(0.25)
        now = await apiserver.writes()
        if now != last:
            last, quiet_since = now, time.monotonic()
    return last


async def create_services(kube: KubeClient, namespace: str, n: int, klass: str) -> None:
    limit = asyncio.Semaphore(IN_FLIGHT)

    async def create(i: int) -> None:
        async with limit:
            body = load_balancer_service(f"svc-{i:05d}", loadBalancerClass=klass)
            await kube.create(SERVICES, namespace, body)

    await asyncio.gather(*(create(i) for i in range(n)))


async def delete_all(kube: KubeClient, namespace: str, n: int) -> None:
    """Delete the run's Services and wait until they are gone (lbctl's finalizer released)."""
    limit = asyncio.Semaphore(IN_FLIGHT)

    async def delete(i: int) -> None:
        async with limit:
            with contextlib.suppress(NotFound):
                await kube.delete(SERVICES, namespace, f"svc-{i:05d}")

    await asyncio.gather(*(delete(i) for i in range(n)))

    async def gone() -> bool:
        left, _ = await kube.list(SERVICES, namespace)
        vips, _ = await kube.list(VIPS, namespace)
        return not left and not vips

    await until(gone, f"Services of {namespace} deleted", timeout=TIMEOUT_S, poll=0.5)


def split_writes(delta: Counter[WriteKey], n: int) -> dict[str, Any]:
    """The controller's writes in a run's window, per new Service: objects and Events (a
    refused write, e.g. a conflict, counts: the apiserver did the work)."""
    mine = Counter(delta)
    mine[("POST", "services", "", False)] -= n  # the bench's own creates
    by_resource: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    for (verb, resource, sub, failed), count in mine.items():
        if resource not in APISERVER_OWN and count:
            request = f"{verb} {resource}{'/' + sub if sub else ''}"
            by_resource[request] += count
            if failed:
                refused[request] += count
    events = sum(c for key, c in by_resource.items() if key.split()[1] == "events")
    return {
        "object_writes_per_service": (sum(by_resource.values()) - events) / n,
        "event_writes_per_service": events / n,
        "writes_by_request": dict(sorted(by_resource.items())),
        "refused_writes_by_request": dict(sorted(refused.items())),
        "apiserver_own_writes": sum(c for k, c in delta.items() if k[1] in APISERVER_OWN),
    }


async def one_run(
    kube: KubeClient,
    apiserver: Apiserver,
    controller: ControllerProcess,
    namespace: str,
    n: int,
    sim: Simulator | None = None,
) -> dict[str, Any]:
    """N Services of the controller's class at once; the measures of the run (with ``sim``,
    the lbctl+ADC run, also the time until every Service's lb vserver is bound to its
    service group on the simulator)."""
    await controller.wait_ready()
    bound_before = len(sim.objects("lbvserver_servicegroup_binding")) if sim else 0
    shown: dict[str, float] = {}

    def on_service(kind: str, old: Any, new: Any) -> None:
        if new is not None and ((new.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
            shown.setdefault(new["metadata"]["name"], time.monotonic())

    watcher = Informer(kube, SERVICES, namespace=namespace)
    watcher.add_handler(on_service)
    watching = asyncio.create_task(watcher.run())
    await watcher.synced.wait()
    before = await settled(apiserver)
    cpu_before = controller.cpu_seconds()
    plane_cpu_before = apiserver.cpu_seconds()
    started = time.monotonic()

    async def create() -> float:
        """The time the last create was answered."""
        await create_services(kube, namespace, n, controller.load_balancer_class)
        return time.monotonic()

    creating = asyncio.create_task(create())

    async def all_shown() -> bool:
        if creating.done() and creating.exception() is not None:
            raise RuntimeError(f"creating Services failed: {creating.exception()}")
        return len(shown) >= n

    await until(
        all_shown, f"every {controller.name} Service has an address", timeout=TIMEOUT_S, poll=0.05
    )
    created_at = await creating
    all_addressed = max(shown.values()) - started
    cpu_addressed = controller.cpu_seconds() - cpu_before
    plane_cpu_addressed = apiserver.cpu_seconds() - plane_cpu_before
    configured: dict[str, float] = {}
    if sim is not None:

        async def all_configured() -> bool:
            return len(sim.objects("lbvserver_servicegroup_binding")) - bound_before >= n

        what = "every lbctl+ADC Service configured on the simulator"
        await until(all_configured, what, timeout=TIMEOUT_S, poll=0.05)
        configured["all_configured_s"] = time.monotonic() - started
    watching.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watching
    after = await settled(apiserver)
    result = {
        "controller": controller.name,
        "all_addressed_s": all_addressed,
        "cpu_s_until_addressed": cpu_addressed,
        "created_s": created_at - started,
        "control_plane_cpu_s_until_addressed": plane_cpu_addressed,
        "cpu_s": controller.cpu_seconds() - cpu_before,
        "rss_peak_mb": controller.rss_peak_mb(),
        **configured,
        **split_writes(after - before, n),
    }
    await delete_all(kube, namespace, n)
    return result


CONTENDERS = ("lbctl", "lbctl+ADC", "MetalLB")


async def run(n: int, rounds: int) -> dict[str, Any]:
    binaries = ensure_binaries()
    metallb = metallb_binary()
    pools = {
        "lbctl": pool_cidr("10.64.0.0", n),
        "lbctl+ADC": pool_cidr("10.72.0.0", n),
        "MetalLB": pool_cidr("10.80.0.0", n),
    }
    result: dict[str, Any] = {"services": n, "rounds": rounds, "pools": pools, "runs": []}
    sim = Simulator(username="nsroot", password=ADC_PASSWORD)
    with LocalControlPlane(binaries) as plane:
        kube = KubeClient(await api_client_from(str(plane.kubeconfig)))
        try:
            async with sim.serve() as adc_url:
                await install_crds(kube)
                await ready_nodes(kube, NODE_IPS)
                await install_metallb(kube, pools["MetalLB"])
                apiserver = Apiserver(plane)
                for r in range(1, rounds + 1):
                    for index, name in enumerate(CONTENDERS):
                        namespace = f"peers-{index}-{r}"
                        await kube.create(NAMESPACES, None, {"metadata": {"name": namespace}})
                        controller: ControllerProcess = (
                            MetalLBController(plane, kube, metallb)
                            if name == "MetalLB"
                            else LbctlController(
                                plane, pools[name], adc_url if name == "lbctl+ADC" else None,
                                ADC_PASSWORD,
                            )
                        )  # fmt: skip
                        adc = sim if name == "lbctl+ADC" else None
                        try:
                            measured = await one_run(kube, apiserver, controller, namespace, n, adc)
                        finally:
                            controller.stop()
                        measured["round"] = r
                        result["runs"].append(measured)
                        print(f"round {r}: {controller.name} {measured['all_addressed_s']:.1f} s",
                              file=sys.stderr, flush=True)  # fmt: skip
            result["lbctl_address_records_left"] = len((await kube.list(VIP_ADDRESSES))[0])
        finally:
            await kube.close()
    return result


def table(result: dict[str, Any]) -> str:
    runs = result["runs"]
    header = (
        f"{'N':>6} {'round':>5} | {'all addressed: lbctl':>20} {'MetalLB':>8} {'ratio':>6} | "
        f"{'lbctl+ADC':>9} {'vs lbctl':>8} {'configured':>10} | "
        f"{'CPU: lbctl':>10} {'+ADC':>6} {'MetalLB':>8} | "
        f"{'writes/Service: lbctl':>21} {'+ADC':>9} {'MetalLB':>9} | "
        f"{'peak RSS: lbctl':>15} {'+ADC':>6} {'MetalLB':>8}"
    )
    lines = [
        f"lbctl vs MetalLB controller v0.15.3: {result['services']} new LoadBalancer Services "
        "at once, one local apiserver; lbctl IPAM only, then with the NITRO simulator as its "
        "NetScaler (writes: objects+Events)",
        "",
        header,
        "-" * len(header),
    ]

    def run_of(r: int, controller: str) -> dict[str, Any]:
        return next(x for x in runs if x["round"] == r and x["controller"] == controller)

    for r in range(1, result["rounds"] + 1):
        lb, adc, ml = (run_of(r, c) for c in CONTENDERS)

        def writes(x: dict[str, Any]) -> str:
            return f"{x['object_writes_per_service']:.2f}+{x['event_writes_per_service']:.2f}"

        lines.append(
            f"{result['services']:>6} {r:>5} | {lb['all_addressed_s']:>18.1f} s "
            f"{ml['all_addressed_s']:>6.1f} s {lb['all_addressed_s'] / ml['all_addressed_s']:>6.2f}"
            f" | {adc['all_addressed_s']:>7.1f} s "
            f"{adc['all_addressed_s'] / lb['all_addressed_s']:>8.2f} "
            f"{adc['all_configured_s']:>8.1f} s | {lb['cpu_s']:>8.1f} s {adc['cpu_s']:>4.1f} s "
            f"{ml['cpu_s']:>6.1f} s | {writes(lb):>21} {writes(adc):>9} {writes(ml):>9} | "
            f"{lb['rss_peak_mb']:>12.0f} MB {adc['rss_peak_mb']:>3.0f} MB "
            f"{ml['rss_peak_mb']:>5.0f} MB"
        )
    ratios = [
        run_of(r, "lbctl")["all_addressed_s"] / run_of(r, "MetalLB")["all_addressed_s"]
        for r in range(1, result["rounds"] + 1)
    ]
    median = statistics.median(ratios)
    lines += [
        "",
        f"median ratio lbctl / MetalLB over {len(ratios)} rounds: {median:.2f}",
        "",
        f"{'run':>16} | {'creates done':>12} | {'control plane CPU until addressed':>34}",
    ]
    for x in runs:
        lines.append(
            f"{x['controller'] + ' ' + str(x['round']):>16} | {x['created_s']:>10.1f} s | "
            f"{x['control_plane_cpu_s_until_addressed']:>32.1f} s"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    parser.add_argument("-n", "--services", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = asyncio.run(run(args.services, args.rounds))
    return report(table(result), result, args.output)


if __name__ == "__main__":
    sys.exit(main())
