"""Chaos harness: lbctl as real processes, random Service churn, and the invariants to check.

Every run is seeded (``LBCTL_CHAOS_SEED``); the same seed replays the same operations.
"""

from __future__ import annotations

import ipaddress
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lbctl.adc.plan import Node, plan_service
from lbctl.adc.state import BINDING_RESOURCE, KEY_FIELD, OBJECT_KINDS
from lbctl.devenv.controlplane import LocalControlPlane, free_port
from lbctl.ipam.allocator import Allocator
from lbctl.ipam.ranges import parse_vip_range
from lbctl.kube.client import NODES, SERVICES, VIPS, KubeClient
from lbctl.kube.errors import KubeError
from lbctl.model import ServiceView, VipView
from lbctl.nitro.simulator import Simulator
from tests.waiting import problems_left

OPS = int(os.environ.get("LBCTL_CHAOS_OPS", "150"))
"""Operations per churn run: short in CI, ``LBCTL_CHAOS_OPS=1000`` for the long form."""
SEED = int(os.environ.get("LBCTL_CHAOS_SEED", "20261125"))
VIP_RANGE = '["10.120.0.0/26"]'
PREFIX = "chaos"
PASSWORD = "chaos-password"
NAMES = [f"svc-{i:02d}" for i in range(40)]


class Lbctl:
    """One ``python -m lbctl`` process; ``kubeconfig`` other than the plane's, e.g. a proxy's.

    It logs to ``<log's stem>-<identity>.log`` beside ``log`` (one file per identity, so
    each line's writer is known; the lines' timestamps merge them)."""

    def __init__(
        self, plane: LocalControlPlane, url: str, log: Path, identity: str, leader: bool,
        kubeconfig: Path | None = None, scope: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        """``scope``: more flags, e.g. ``("--load-balancer-class", "x")``."""
        self.identity = identity
        self.port = free_port()
        env = dict(
            os.environ, VIP_RANGE=VIP_RANGE, NS_URL=url, NS_USER="nsroot", NS_PASSWORD=PASSWORD,
            NS_APPS_NAME_PREFIX=PREFIX, LBCTL_ADC_RESYNC_PERIOD="3", LBCTL_LOG_FORMAT="json",
            POD_NAME=identity, NS_TIMEOUT="3",
        )  # fmt: skip
        args = [sys.executable, "-m", "lbctl", "--kubeconfig", str(kubeconfig or plane.kubeconfig),
                "--metrics-bind-address", f"127.0.0.1:{self.port}", *scope]  # fmt: skip
        if leader:
            args += ["--leader-elect", "--leader-elect-namespace", "default",
                     "--leader-elect-lease-name", "lbctl-chaos",
                     "--leader-elect-lease-duration", "4", "--leader-elect-renew-deadline", "3",
                     "--leader-elect-retry-period", "0.5"]  # fmt: skip
        self.log = log.with_name(f"{log.stem}-{identity}{log.suffix}")
        self._log = open(self.log, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@dataclass
class Churn:
    """Random Service operations, replayable from the seed."""

    kube: KubeClient
    namespace: str
    rng: random.Random
    counts: Counter[str] = field(default_factory=Counter)
    hand_deletions: bool = False
    """Also delete Vips by hand, as a user (or garbage collection) might."""
    classes: tuple[str | None, ...] = ()
    """``spec.loadBalancerClass`` values (None: no class) to pick from for new LoadBalancer
    Services (empty: never set); a type flip back to LoadBalancer may pick another one."""

    def load_balancer_class(self) -> dict[str, str]:
        chosen = self.rng.choice(self.classes) if self.classes else None
        return {"loadBalancerClass": chosen} if chosen else {}

    def ports(self) -> list[dict[str, Any]]:
        chosen = self.rng.sample([80, 443, 53, 8080, 9000], self.rng.randint(1, 3))
        return [{"name": f"p{p}", "protocol": "UDP" if p == 53 else "TCP", "port": p,
                 "targetPort": p} for p in chosen]  # fmt: skip

    def service(self, name: str) -> dict[str, Any]:
        annotations: dict[str, str] = {}
        roll = self.rng.random()
        if roll < 0.15:
            annotations["service.citrix.com/frontend-ip"] = f"10.120.0.{self.rng.randint(40, 50)}"
        elif roll < 0.3:
            annotations["lbctl.io/allow-shared-ip"] = self.rng.choice(["blue", "green"])
        return {"metadata": {"name": name, "annotations": annotations},
                "spec": {"type": "LoadBalancer", "selector": {"app": name},
                         "ports": self.ports(), **self.load_balancer_class()}}  # fmt: skip

    async def step(self) -> None:
        name = self.rng.choice(NAMES)
        action = self.rng.choices(
            ["create", "delete", "ports", "type", "request", "share", "vipdel"],
            [5, 3, 2, 1, 1, 1, 2 if self.hand_deletions else 0],
        )[0]
        try:
            await self._apply(action, name)
            self.counts[action] += 1
        except KubeError as err:  # e.g. creating what exists, deleting what does not
            self.counts[f"{action} refused ({type(err).__name__})"] += 1

    async def _apply(self, action: str, name: str) -> None:
        ns = self.namespace
        if action == "create":
            await self.kube.create(SERVICES, ns, self.service(name))
        elif action == "delete":
            await self.kube.delete(SERVICES, ns, name)
        elif action == "ports":
            await self.kube.patch(SERVICES, ns, name, {"spec": {"ports": self.ports()}})
        elif action == "type":
            current = await self.kube.get(SERVICES, ns, name)
            if current["spec"]["type"] == "LoadBalancer":
                spec = {"type": "ClusterIP", "externalTrafficPolicy": None,
                        "allocateLoadBalancerNodePorts": None,
                        "ports": [{**p, "nodePort": None} for p in current["spec"]["ports"]]}  # fmt: skip
                if self.classes:
                    spec["loadBalancerClass"] = None
            else:
                spec = {"type": "LoadBalancer", **self.load_balancer_class()}
            await self.kube.patch(SERVICES, ns, name, {"spec": spec})
        elif action == "vipdel":
            await self.kube.delete(VIPS, ns, name)
        elif action == "request":
            address = f"10.120.0.{self.rng.randint(40, 50)}"
            patch = {"metadata": {"annotations": {"service.citrix.com/frontend-ip": address}}}
            await self.kube.patch(SERVICES, ns, name, patch)
        else:
            key = self.rng.choice(["blue", "green"])
            patch = {"metadata": {"annotations": {"lbctl.io/allow-shared-ip": key}}}
            await self.kube.patch(SERVICES, ns, name, patch)


async def check_invariants(
    kube: KubeClient, namespace: str | tuple[str, ...], sim: Simulator, nodes: list[Node]
) -> list[str]:
    """Every broken invariant in ``namespace`` (or in all of several, which then hold every
    ADC object of the run), described; an empty list when all hold."""
    problems: list[str] = []
    pool = parse_vip_range(VIP_RANGE)[0]
    services: list[dict[str, Any]] = []
    vips: dict[str, VipView] = {}
    for each in (namespace,) if isinstance(namespace, str) else namespace:
        services += (await kube.list(SERVICES, each))[0]
        vips |= {view.key: view for view in map(VipView.from_raw, (await kube.list(VIPS, each))[0])}
    by_address: dict[str, list[ServiceView]] = {}
    exhausted: list[str] = []
    """Services pending because the pool is exhausted: wrong while an address is free."""
    desired: dict[str, set[str]] = {kind: set() for kind in (*OBJECT_KINDS, "member")}
    lb_names = set()
    for raw in services:
        service = ServiceView.from_raw(raw)
        if not service.is_load_balancer:
            if service.ingress_ips or service.has_finalizer:
                problems.append(f"{service.key}: not LoadBalancer but still has status/finalizer")
            continue
        lb_names.add(service.key)
        annotation = service.annotations.get("com.citrix.vip")
        vip = vips.get(service.key)
        if not service.ingress_ips:
            if vip is None or vip.status.get("state") != "Pending":
                problems.append(f"{service.key}: no address and no Pending Vip saying why")
            elif (vip.status.get("conditions") or [{}])[0].get("reason") == "PoolExhausted":
                exhausted.append(service.key)
            continue
        ip = service.ingress_ips[0]
        if annotation != ip or vip is None or vip.address_text != ip:
            problems.append(f"{service.key}: status {ip}, annotation {annotation}, Vip "
                            f"{vip.address_text if vip else None} disagree")  # fmt: skip
        if not any(r.contains(ipaddress.ip_address(ip)) for r in pool.ranges):
            problems.append(f"{service.key}: {ip} outside the pool")
        by_address.setdefault(ip, []).append(service)
        plan = plan_service(PREFIX, raw, [ip], nodes)
        for key in plan.objects:
            if key.kind in desired:
                desired[key.kind].add(key.name if key.kind != "member" else f"{key.name} {key.sub}")
    total = sum(stats.total for stats in Allocator(parse_vip_range(VIP_RANGE)).stats())
    if exhausted and len(by_address) < total:
        problems.append(f"{exhausted[:3]} wait for a free address, but only {len(by_address)} "
                        f"of {total} are shown")  # fmt: skip
    for ip, holders in by_address.items():
        keys = {s.share_key for s in holders}
        ports = [p for s in holders for p in s.ports]
        if len(holders) > 1 and (None in keys or len(keys) > 1 or len(ports) != len(set(ports))):
            problems.append(f"{ip} on {[s.key for s in holders]} without a valid sharing")
    for name, vip in vips.items():
        if vip.managed and name not in lb_names:
            problems.append(f"Vip {name} without a LoadBalancer Service")
    actual: dict[str, set[str]] = {}
    for kind in OBJECT_KINDS:
        actual[kind] = {str(o[KEY_FIELD[kind]]) for o in sim.objects(kind)
                        if str(o[KEY_FIELD[kind]]).startswith(f"{PREFIX}-")}  # fmt: skip
    actual["member"] = {
        f"{m['servicegroupname']} {(str(m['ip']), str(m['port']))}"
        for m in sim.objects(BINDING_RESOURCE["member"])
        if str(m["servicegroupname"]).startswith(f"{PREFIX}-")
    }
    for kind, names in desired.items():
        missing, extra = names - actual[kind], actual[kind] - names
        if missing:
            problems.append(f"ADC {kind}: missing {sorted(missing)[:3]} ({len(missing)})")
        if extra:
            problems.append(f"ADC {kind}: orphaned {sorted(extra)[:3]} ({len(extra)})")
    return problems


async def converge(
    kube: KubeClient, namespace: str | tuple[str, ...], sim: Simulator, nodes: list[Node],
    within: float,
) -> list[str]:  # fmt: skip
    """Wait until the invariants hold (or the deadline passes); the last problems seen."""
    return await problems_left(lambda: check_invariants(kube, namespace, sim, nodes), within=within)


async def make_nodes(kube: KubeClient, tag: str) -> list[Node]:
    made = []
    for i in range(3):
        name, ip = f"{tag}-{i}", f"10.121.0.{i + 1}"
        await kube.create(NODES, None, {"metadata": {"name": name}})
        status = {"addresses": [{"type": "InternalIP", "address": ip}],
                  "conditions": [{"type": "Ready", "status": "True"}]}  # fmt: skip
        await kube.patch(NODES, None, name, {"status": status}, subresource="status")
        made.append(Node(name, ip, ready=True, excluded=False))
    return made
