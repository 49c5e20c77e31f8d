"""The controllers ``bench.peers`` compares, each as its own process on the local apiserver.

lbctl runs IPAM only (no NetScaler) as ``python -m lbctl``; MetalLB's controller is built from
the pinned wrapper module in ``bench/metallb/`` (``go.universe.tf/metallb``, main package
``controller/``) into ``~/.cache/lbctl/metallb/``, with its CRDs applied from that module's
``config/crd/bases`` in the Go module cache.  Each handles only its own loadBalancerClass and
gets a pool of the same size, so the two never touch each other's Services.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import aiohttp
import yaml

from lbctl.devenv.build import GoBinary, GoBuildError, GoTool
from lbctl.devenv.controlplane import LocalControlPlane, free_port
from lbctl.kube.client import CRDS, NAMESPACES, KubeClient, Resource
from lbctl.kube.errors import NotFound

METALLB_WRAPPER = Path(__file__).resolve().parent / "metallb"
METALLB_MODULE = "go.universe.tf/metallb"
METALLB_NAMESPACE = "metallb-bench"
IP_ADDRESS_POOLS = Resource("metallb.io", "v1beta1", "ipaddresspools", "IPAddressPool")
CONFIGURATION_STATES = Resource(
    "metallb.io", "v1beta1", "configurationstates", "ConfigurationState"
)
READY_TIMEOUT = 120.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ControllerProcess:
    """A controller process with its CPU and peak RSS read from /proc."""

    name = ""
    load_balancer_class = ""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log: IO[bytes] = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT
        )

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the process so far (all its threads)."""
        return cpu_seconds(self.process.pid)

    def rss_peak_mb(self) -> float:
        """Peak resident set size (VmHWM) in MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    async def ready(self) -> bool:
        raise NotImplementedError

    async def wait_ready(self) -> None:
        """Until the controller says it is ready; RuntimeError if it exits or takes too long."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not await self.ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready within {READY_TIMEOUT:.0f} s")
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class LbctlController(ControllerProcess):
    """lbctl, IPAM only: Vips and Service status, no NetScaler; or, given ``adc_url``, with
    the NITRO simulator there as its NetScaler (own class, name and log)."""

    name = "lbctl"
    load_balancer_class = "bench.lbctl.io/lbctl"

    def __init__(
        self, plane: LocalControlPlane, cidr: str, adc_url: str | None = None, password: str = ""
    ) -> None:
        self.port = free_port()
        env = dict(os.environ, LBCTL_LOG_LEVEL="warning", LBCTL_LOG_FORMAT="json")
        if adc_url is not None:
            self.name, self.load_balancer_class = "lbctl+ADC", "bench.lbctl.io/lbctl-adc"
            env.update(NS_URL=adc_url, NS_USER="nsroot", NS_PASSWORD=password)
        argv = [
            sys.executable, "-m", "lbctl", "--kubeconfig", str(plane.kubeconfig),
            "--metrics-bind-address", f"127.0.0.1:{self.port}",
            "--load-balancer-class", self.load_balancer_class,
            "--vip-range", json.dumps([cidr]),
        ]  # fmt: skip
        log = "lbctl-adc-peers.log" if adc_url is not None else "lbctl-peers.log"
        super().__init__(argv, env, plane.workdir / log)

    async def ready(self) -> bool:
        url = f"http://127.0.0.1:{self.port}/readyz"
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False


def metallb_tool(wrapper_dir: Path = METALLB_WRAPPER) -> GoTool:
    """MetalLB's controller as a Go tool: built like the control plane, from a pinned wrapper
    module, into ``<cache>/metallb/metallb-<version>_<hash>/``."""
    return GoTool(
        name="metallb",
        wrapper_dir=wrapper_dir,
        binaries=(
            GoBinary(
                name="metallb",
                module_dir=".",
                package=f"{METALLB_MODULE}/controller",
                version_module=METALLB_MODULE,
                ldflags=lambda _version, _go_mod: "-s -w",
            ),
        ),
        label=lambda versions: f"metallb-{versions['metallb']}",
    )


def metallb_binary() -> Path:
    """MetalLB's controller, built once into the cache (several minutes the first time)."""
    progress = lambda message: print(f"[metallb] {message}", file=sys.stderr, flush=True)  # noqa: E731
    return metallb_tool().ensure(progress)["metallb"]


def metallb_source() -> Path:
    """The MetalLB module's source in the Go module cache (downloaded by the build)."""
    go_mod = (METALLB_WRAPPER / "go.mod").read_text()
    version = next(
        line.split()[1] for line in go_mod.splitlines() if line.strip().startswith(METALLB_MODULE)
    )
    found = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True
    ).stdout.strip()
    source = Path(found) / f"{METALLB_MODULE}@{version}"
    if not source.is_dir():
        subprocess.run(
            ["go", "mod", "download", METALLB_MODULE],
            cwd=METALLB_WRAPPER,
            check=True,
            env=dict(os.environ, GOFLAGS="-mod=readonly"),
        )
    if not source.is_dir():
        raise GoBuildError(f"{source} is missing after 'go mod download'")
    return source


async def install_metallb(kube: KubeClient, cidr: str, timeout: float = 30.0) -> None:
    """MetalLB's CRDs, its namespace and one auto-assigned IPAddressPool ``bench`` of ``cidr``.

    The CRDs are the module's ``config/crd/bases`` as they are: the BGPPeer conversion webhook
    that a full install patches in is left out (the bench has no webhook and no BGPPeers).
    """
    for path in sorted((metallb_source() / "config" / "crd" / "bases").glob("*.yaml")):
        for crd in (doc for doc in yaml.safe_load_all(path.read_text()) if doc):
            await kube.apply(CRDS, crd)
            await _established(kube, crd["metadata"]["name"], timeout)
    await kube.create(NAMESPACES, None, {"metadata": {"name": METALLB_NAMESPACE}})
    pool = {
        "apiVersion": IP_ADDRESS_POOLS.api_version,
        "kind": IP_ADDRESS_POOLS.kind,
        "metadata": {"name": "bench", "namespace": METALLB_NAMESPACE},
        "spec": {"addresses": [cidr], "autoAssign": True},
    }
    await kube.create(IP_ADDRESS_POOLS, METALLB_NAMESPACE, pool)


async def _established(kube: KubeClient, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        conditions = ((await kube.get(CRDS, None, name)).get("status") or {}).get("conditions")
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions or []):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"CRD {name} not established within {timeout:.0f} s")
        await asyncio.sleep(0.1)


class MetalLBController(ControllerProcess):
    """MetalLB's controller: webhooks off, its own class, config read from METALLB_NAMESPACE."""

    name = "MetalLB"
    load_balancer_class = "bench.lbctl.io/metallb"

    def __init__(self, plane: LocalControlPlane, kube: KubeClient, binary: Path) -> None:
        self.kube = kube
        env = dict(os.environ, KUBECONFIG=str(plane.kubeconfig))
        argv = [
            str(binary), f"--namespace={METALLB_NAMESPACE}", "--webhook-mode=disabled",
            f"--lb-class={self.load_balancer_class}", f"--port={free_port()}",
            "--log-level=warn",
        ]  # fmt: skip
        super().__init__(argv, env, plane.workdir / "metallb-peers.log")

    async def ready(self) -> bool:
        """Its configuration is loaded: the ConfigurationState it keeps says ``Valid``."""
        try:
            state = await self.kube.get(CONFIGURATION_STATES, METALLB_NAMESPACE, "controller")
        except NotFound:
            return False
        return (state.get("status") or {}).get("result") == "Valid"
