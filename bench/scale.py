"""Scale benchmark: N LoadBalancer Services on the real local apiserver and the NITRO simulator.

lbctl runs as its own process (``python -m lbctl``), as in production, so its RSS and CPU are
its own.  Measures: time until every Service shows its VIP and until every one is configured on
the ADC, per-Service create→VIP latency, apiserver and NITRO requests per Service (counted by
lbctl's /metrics and by the simulator), peak RSS and CPU; then a restart with everything in
place (time to ready, writes) and an idle period (writes, CPU, requests per drift pass).
Prints a table and writes bench/results/scale.json.  Run: ``python -m bench.scale [-n N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench.report import report
from lbctl.adc.state import OBJECT_KINDS
from lbctl.devenv.build import ensure_binaries
from lbctl.devenv.cluster import install_crds, load_balancer_service
from lbctl.devenv.controlplane import LocalControlPlane, free_port
from lbctl.kube.client import NAMESPACES, NODES, SERVICES, KubeClient, api_client_from
from lbctl.kube.informer import Informer
from lbctl.nitro.client import PAGE_SIZE
from lbctl.nitro.simulator import RequestRecord, Simulator
from lbctl.reconcile.adc_health import ATTRS
from lbctl.reconcile.conditions import ADC_CONDITION

RESULTS = Path(__file__).parent / "results" / "scale.json"
NAMESPACE = "bench"
PASSWORD = "bench-password"
WRITE_VERBS = ("create", "patch", "update", "delete")
NODE_IPS = ("10.200.0.1", "10.200.0.2", "10.200.0.3")
DRIFT_PERIOD = 20.0
HEALTH_PERIOD = 5.0


class Lbctl:
    """The lbctl process, with /metrics and /proc readings."""

    def __init__(self, plane: LocalControlPlane, url: str) -> None:
        self.port = free_port()
        env = dict(
            os.environ, VIP_RANGE='["10.64.0.0/16"]', NS_URL=url, NS_USER="nsroot",
            NS_PASSWORD=PASSWORD, LBCTL_LOG_LEVEL="warning", LBCTL_LOG_FORMAT="json",
            LBCTL_ADC_RESYNC_PERIOD=str(DRIFT_PERIOD), LBCTL_ADC_HEALTH_PERIOD=str(HEALTH_PERIOD),
        )  # fmt: skip
        self.log = open(plane.workdir / "lbctl-bench.log", "ab")  # noqa: SIM115
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lbctl", "--kubeconfig", str(plane.kubeconfig),
             "--metrics-bind-address", f"127.0.0.1:{self.port}"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        url = f"http://127.0.0.1:{self.port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            text = await response.text()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    async def ready(self) -> bool:
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{self.port}/readyz") as response,
            ):
                return response.status == 200
        except aiohttp.ClientError:
            return False

    def rss_peak_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


def writes(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    """apiserver writes by resource, from lbctl_apiserver_calls_total."""
    found: dict[str, float] = {}
    for (name, labels), value in metrics.items():
        if name == "lbctl_apiserver_calls_total":
            label = dict(labels)
            if label["verb"] in WRITE_VERBS:
                found[label["resource"]] = found.get(label["resource"], 0) + value
    return found


async def ready_nodes(kube: KubeClient, addresses: tuple[str, ...]) -> None:
    """Ready Nodes ``bench-<i>`` with these InternalIPs: the NetScaler's members (a service
    group without members leaves its lb vserver DOWN, which lbctl reports)."""
    for i, ip in enumerate(addresses):
        await kube.create(NODES, None, {"metadata": {"name": f"bench-{i}"}})
        status = {"addresses": [{"type": "InternalIP", "address": ip}],
                  "conditions": [{"type": "Ready", "status": "True"}]}  # fmt: skip
        await kube.patch(NODES, None, f"bench-{i}", {"status": status}, subresource="status")


def requests_total(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    return sum(v for (n, _), v in metrics.items() if n == "lbctl_apiserver_calls_total")


async def until(probe: Any, what: str, timeout: float = 900.0, poll: float = 0.25) -> float:
    started = time.monotonic()
    while not await probe():
        if time.monotonic() - started > timeout:
            raise TimeoutError(what)
        await asyncio.sleep(poll)
    return time.monotonic() - started


def configured(sim: Simulator, n: int) -> bool:
    bound = sim.objects("lbvserver_servicegroup_binding")
    members = sim.objects("servicegroup_servicegroupmember_binding")
    return len(bound) >= n and len(members) >= n * len(NODE_IPS)


async def all_say_configured(kube: KubeClient, n: int) -> bool:
    """Every Service's status carries the ADC worker's last write (``NetScalerConfigured``
    True), so the restart starts with everything in place, not with conditions in flight."""
    services, _ = await kube.list(SERVICES, NAMESPACE)
    return n <= sum(
        any(c.get("type") == ADC_CONDITION and c.get("status") == "True"
            for c in (s.get("status") or {}).get("conditions") or [])
        for s in services
    )  # fmt: skip


def nitro_counts(sim: Simulator) -> tuple[int, int]:
    """(requests, writes) to the NITRO config API, drift-pass listings and logins apart."""
    records = [
        r for r in sim.requests
        if r.resource not in ("login", "logout") and not (r.method == "GET" and r.name is None)
    ]  # fmt: skip
    return len(records), sum(r.method != "GET" for r in records)


def complete_passes(sim: Simulator) -> list[int]:
    """GETs of each drift pass seen whole, from its first (the count of monitors) to its last
    (``nsfeature``); one still running when counting stops is left out.  Health passes send
    the same count of lb vservers as drift passes: every such count is left out, and a drift
    pass's own added back."""
    passes: list[int] = []
    running: int | None = None
    for record in sim.requests:
        if record.method != "GET" or record.name is not None or health_read(record):
            continue
        counting = record.query.get("count") == "yes"
        if counting and record.resource == OBJECT_KINDS[0]:
            running = 0
        if running is None or (counting and record.resource == "lbvserver"):
            continue
        running += 1
        if record.resource == "nsfeature":
            passes.append(running + 1)
            running = None
    return passes


def listings(sim: Simulator) -> int:
    return sum(
        1
        for r in sim.requests
        if r.method == "GET" and r.name is None and r.kind == "config" and not health_read(r)
    )


def health_read(record: RequestRecord) -> bool:
    """A health pass's read: a page of lb vservers' ``curstate`` and member counts."""
    return record.resource == "lbvserver" and record.query.get("attrs") == ",".join(ATTRS)


def health_reads(sim: Simulator) -> int:
    """Health passes' reads (one page of up to 1,000 lb vservers per request)."""
    return sum(1 for r in sim.requests if health_read(r))


async def run(n: int, idle: float) -> dict[str, Any]:
    binaries = ensure_binaries()
    sim = Simulator(username="nsroot", password=PASSWORD)
    with LocalControlPlane(binaries) as plane:
        async with sim.serve() as url:
            kube = KubeClient(await api_client_from(str(plane.kubeconfig)))
            try:
                return await scenario(plane, kube, sim, url, n, idle)
            finally:
                await kube.close()


async def scenario(
    plane: LocalControlPlane, kube: KubeClient, sim: Simulator, url: str, n: int, idle: float
) -> dict[str, Any]:
    await install_crds(kube)
    await kube.create(NAMESPACES, None, {"metadata": {"name": NAMESPACE}})
    await ready_nodes(kube, NODE_IPS)
    lbctl = Lbctl(plane, url)
    result: dict[str, Any] = {"services": n, "nodes": len(NODE_IPS)}
    try:
        await until(lbctl.ready, "lbctl ready", timeout=60)
        await asyncio.sleep(1.0)  # let the first ADC listing finish before counting
        sim.reset_counts()
        before = await lbctl.metrics()
        cpu_before = lbctl.cpu_seconds()
        created: dict[str, float] = {}
        shown: dict[str, float] = {}
        limit = asyncio.Semaphore(32)

        async def create(i: int) -> None:
            async with limit:
                name = f"svc-{i:05d}"
                created[name] = time.monotonic()
                await kube.create(SERVICES, NAMESPACE, load_balancer_service(name))

        def on_service(kind: str, old: Any, new: Any) -> None:
            if new is None:
                return
            name = new["metadata"]["name"]
            ingress = ((new.get("status") or {}).get("loadBalancer") or {}).get("ingress")
            if ingress and name not in shown:
                shown[name] = time.monotonic()

        async def all_shown() -> bool:
            if creating.done() and creating.exception() is not None:
                raise RuntimeError(f"creating Services failed: {creating.exception()}")
            return len(shown) == n

        watcher = Informer(kube, SERVICES, namespace=NAMESPACE)
        watcher.add_handler(on_service)
        watching = asyncio.create_task(watcher.run())
        await watcher.synced.wait()
        started = time.monotonic()
        creating = asyncio.gather(*(create(i) for i in range(n)))

        await until(all_shown, "every Service has its VIP", poll=0.05)
        await creating
        result["all_vips_s"] = max(shown.values()) - started
        watching.cancel()
        await until(lambda: asyncio.sleep(0, configured(sim, n)), "ADC configured")
        result["all_adc_s"] = time.monotonic() - started
        latencies = sorted(shown[k] - created[k] for k in shown)
        result["vip_latency_p50_ms"] = 1000 * statistics.median(latencies)
        result["vip_latency_p99_ms"] = 1000 * latencies[int(0.99 * (len(latencies) - 1))]
        await until(
            lambda: all_say_configured(kube, n), "every Service says NetScalerConfigured", poll=2.0
        )
        await asyncio.sleep(2.0)  # let trailing status events settle
        after = await lbctl.metrics()
        w_before, w_after = writes(before), writes(after)
        per_resource = {r: (w_after[r] - w_before.get(r, 0)) / n for r in w_after}
        result["apiserver_writes_by_resource_per_service"] = per_resource
        result["apiserver_writes_per_service"] = sum(
            v for r, v in per_resource.items() if r != "events"
        )
        result["event_writes_per_service"] = per_resource.get("events", 0.0)
        result["apiserver_requests_per_service"] = (
            requests_total(after) - requests_total(before)
        ) / n
        nitro, nitro_writes = nitro_counts(sim)
        result["nitro_requests_per_service"] = nitro / n
        result["nitro_writes_per_service"] = nitro_writes / n
        result["cpu_s_create"] = lbctl.cpu_seconds() - cpu_before
        result["rss_peak_mb"] = lbctl.rss_peak_mb()
        lbctl.stop()

        # Restart with everything in place.
        sim.reset_counts()
        lbctl = Lbctl(plane, url)
        result["restart_ready_s"] = await until(
            lbctl.ready, "restart ready", timeout=120, poll=0.05
        )

        async def settled() -> bool:
            m = await lbctl.metrics()
            done = sum(v for (name, _), v in m.items() if name == "lbctl_reconciles_total")
            depth = m.get(("workqueue_depth", (("name", "lbctl"),)), 1)
            return done >= 2 * n and depth == 0  # every Service and every Vip

        await until(settled, "restart reconciled everything")
        result["restart_reconciled_s"] = time.monotonic() - lbctl.started
        m = await lbctl.metrics()
        result["restart_apiserver_writes"] = sum(writes(m).values())
        result["restart_nitro_writes"] = nitro_counts(sim)[1]
        result["restart_nitro_requests"] = nitro_counts(sim)[0] + listings(sim)

        # Idle: nothing changes; a drift pass runs every DRIFT_PERIOD seconds.
        sim.reset_counts()
        cpu_before, written_before = lbctl.cpu_seconds(), writes(m)
        await asyncio.sleep(idle)
        m = await lbctl.metrics()
        result["idle_s"] = idle
        idle_writes_by_resource = {
            resource: count - written_before.get(resource, 0)
            for resource, count in writes(m).items()
            if count != written_before.get(resource, 0)
        }
        result["idle_writes_by_resource"] = idle_writes_by_resource
        result["idle_apiserver_writes"] = sum(idle_writes_by_resource.values())
        result["idle_cpu_s"] = lbctl.cpu_seconds() - cpu_before
        requests, idle_writes = nitro_counts(sim)
        result["idle_nitro_writes"] = idle_writes
        per_pass = complete_passes(sim)
        result["health_reads"] = health_reads(sim)
        result["nitro_requests_per_health_pass"] = 1 + health_reads(sim) / max(
            1, round(idle / HEALTH_PERIOD)
        )  # its count of lb vservers, then its pages
        result["drift_passes"] = len(per_pass)
        result["nitro_requests_per_drift_pass"] = (
            statistics.median(per_pass) + requests / len(per_pass) if per_pass else float("nan")
        )
        result["rss_peak_mb_after_restart"] = lbctl.rss_peak_mb()
    finally:
        lbctl.stop()
    return result


ROWS = [
    ("all_vips_s", "time until all have their VIP in status", "s", None),
    ("all_adc_s", "time until all are configured on the ADC", "s", None),
    ("vip_latency_p50_ms", "create → VIP latency p50", "ms", None),
    ("vip_latency_p99_ms", "create → VIP latency p99", "ms", None),
    ("apiserver_writes_per_service", "apiserver writes per Service (Events apart)", "", 4),
    ("event_writes_per_service", "Event writes per Service", "", None),
    ("apiserver_requests_per_service", "apiserver requests per Service", "", None),
    ("nitro_requests_per_service", "NITRO requests per Service (listings apart)", "", 4),
    ("nitro_writes_per_service", "NITRO writes per Service", "", None),
    ("rss_peak_mb", "lbctl peak RSS", "MB", 150),
    ("cpu_s_create", "lbctl CPU during creation", "s", None),
    ("restart_ready_s", "restart: time to ready", "s", 5),
    ("restart_reconciled_s", "restart: time until everything reconciled", "s", None),
    ("restart_apiserver_writes", "restart: apiserver writes", "", 0),
    ("restart_nitro_writes", "restart: NITRO writes", "", 0),
    ("restart_nitro_requests", "restart: NITRO requests", "", None),
    ("idle_apiserver_writes", "idle: apiserver writes", "", 0),
    ("idle_nitro_writes", "idle: NITRO writes", "", 0),
    ("idle_cpu_s", "idle: lbctl CPU", "s", None),
    # Each kind of object: a count, then pages of PAGE_SIZE; bindings of each kind in one GET;
    # servers (a count and a page here), then features.
    ("nitro_requests_per_drift_pass", "NITRO requests per drift pass", "", lambda n: 3 * n + 9),
    (
        "nitro_requests_per_health_pass",
        "NITRO requests per health pass (about)",
        "",
        lambda n: n + 1,
    ),
]


def table(result: dict[str, Any]) -> str:
    lines = [f"Scale: {result['services']} one-port Services, {result['nodes']} nodes, "
             f"idle {result['idle_s']:.0f} s", "",
             f"{'measure':<48} {'value':>12}  {'target':>8}  met"]  # fmt: skip
    pages = math.ceil(result["services"] / PAGE_SIZE)
    for key, label, unit, goal_of in ROWS:
        target = goal_of(pages) if callable(goal_of) else goal_of
        value = result[key]
        shown = f"{value:,.3f} {unit}".strip() if unit == "" else f"{value:,.2f} {unit}"
        met = "" if target is None else ("yes" if value <= target else "NO")
        goal = "" if target is None else f"≤ {target}"
        lines.append(f"{label:<48} {shown:>12}  {goal:>8}  {met}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("-n", "--services", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=60.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.services, args.idle))
    return report(table(result), result, RESULTS)


if __name__ == "__main__":
    sys.exit(main())
