"""``python -m lbctl --kubeconfig PATH`` as a real process, the way users run it locally."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from ipaddress import ip_address
from pathlib import Path

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from lbctl.devenv.controlplane import LocalControlPlane, free_port
from lbctl.kube.client import SERVICES, VIP_ADDRESSES, VIPS, KubeClient
from lbctl.vipaddress import Holder, address_record
from tests.chart import kubectl_binary
from tests.integration.conftest import (
    SIM_PASSWORD,
    CreatePool,
    RunningSimulator,
    StartLbctl,
    load_balancer,
    wait_for_ip,
)
from tests.waiting import eventually


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics and parse it with prometheus_client's own parser."""
    url = f"http://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_the_cli_process_assigns_vips_and_stops_cleanly_on_sigterm(
    kube: KubeClient,
    namespace: str,
    control_plane: LocalControlPlane,
    simulator: RunningSimulator,
    nodes: Callable[..., Awaitable[None]],
    tmp_path: Path,
) -> None:
    """The real process serves probes and metrics, assigns a VIP, programs the NetScaler,
    never prints a secret (at debug level), and exits 0 on SIGTERM."""
    await nodes(f"{namespace}-node", "10.10.0.7")
    port = free_port()
    password_file = tmp_path / "password"
    password_file.write_text(SIM_PASSWORD + "\n")
    env = dict(
        os.environ,
        VIP_RANGE='["10.78.0.0/24"]',
        LBCTL_LOG_FORMAT="json",
        LBCTL_LOG_LEVEL="debug",
        NS_URL=simulator.url,
        NS_USER="nsroot",
        NS_PASSWORD_FILE=str(password_file),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lbctl",
        "--kubeconfig",
        str(control_plane.kubeconfig),
        "--metrics-bind-address",
        f"127.0.0.1:{port}",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await kube.create(SERVICES, namespace, load_balancer("cli"))
        assert await wait_for_ip(kube, namespace, "cli", within=30) == "10.78.0.1"
        lbv = f"lbctl-{namespace}_cli_80-tcp_lbv"
        await eventually(lambda: lbv in simulator.names("lbvserver"), what="ADC configured")

        async def ready() -> bool:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return False
            writer.write(b"GET /readyz HTTP/1.0\r\n\r\n")
            answer = await reader.read()
            writer.close()
            return answer.split(b"\r\n", 1)[0].endswith(b" 200 OK")

        await eventually(ready, what="/readyz answers 200")
        scraped = await scrape(port)
        assert (
            scraped[("lbctl_ipam_addresses_total", (("family", "ipv4"), ("pool", "default")))]
            == 254
        )
        assert (
            scraped[
                ("lbctl_ipam_addresses_in_use_total", (("family", "ipv4"), ("pool", "default")))
            ]
            == 1
        )
        assert scraped[("lbctl_leader", ())] == 1
        assert scraped[("workqueue_adds_total", (("name", "lbctl"),))] >= 1
        assert (
            scraped[("lbctl_reconciles_total", (("controller", "Service"), ("result", "success")))]
            >= 1
        )
        assert (
            scraped[("lbctl_apiserver_requests_total", (("code", "201"), ("verb", "create")))] >= 1
        )
        assert ("workqueue_work_duration_seconds_count", (("name", "lbctl"),)) in scraped
        assert ("lbctl_watch_restarts_total", (("resource", "services"),)) in scraped
        nitro = ("method", "POST"), ("outcome", "ok"), ("resource", "lbvserver")
        assert scraped[("lbctl_nitro_request_duration_seconds_count", nitro)] == 1
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()[-2000:]
    logs = stderr.decode()
    assert '"level": "debug"' in logs
    assert control_plane.token not in logs
    assert SIM_PASSWORD not in logs
    (started,) = [json.loads(line) for line in logs.splitlines() if '"starting lbctl"' in line]
    assert started["version"] == version("lbctl")
    assert started["pools"] == {"default": ["10.78.0.0/24"]}
    assert started["load_balancer_class"] == "(Services without a class)"
    assert started["namespace"] == "(all)"
    assert started["leader_election"] == "off"  # a --kubeconfig run does not elect
    assert started["metrics_bind_address"] == f"127.0.0.1:{port}"
    assert started["netscaler"] == simulator.url


async def test_status_prints_pools_and_allocations(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane, start_lbctl: StartLbctl
) -> None:
    """`lbctl status` shows counts per pool and one row per Vip with its state."""
    await start_lbctl(vip_range='["10.81.0.0/29"]')
    await kube.create(SERVICES, namespace, load_balancer("web"))
    await kube.create(
        VIPS, namespace,
        {"apiVersion": "ipam.citrix.com/v1", "kind": "Vip", "metadata": {"name": "kept"},
         "spec": {"ipaddress": "10.81.0.6"}},
    )  # fmt: skip
    # An address another instance (class gold) recorded for its Service, with no Vip here.
    gold = load_balancer("gold-web")
    gold["spec"]["loadBalancerClass"] = "example.com/gold"
    uid = (await kube.create(SERVICES, namespace, gold))["metadata"]["uid"]
    holder = Holder("Service", namespace, "gold-web", uid, load_balancer_class="example.com/gold")
    record = address_record(ip_address("10.81.0.3"), holder, "default", None)
    await kube.create(VIP_ADDRESSES, None, record)
    await wait_for_ip(kube, namespace, "web")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lbctl", "status",
        "--kubeconfig", str(control_plane.kubeconfig), "--namespace", namespace,
        env=dict(os.environ, VIP_RANGE='["10.81.0.0/29"]'),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    lines = [line.split() for line in stdout.decode().splitlines() if line.strip()]
    assert ["default", "VIP_RANGE", "IPv4", "6", "3", "3", "Ready"] in lines
    assert ["10.81.0.1", f"{namespace}/web", "default", "Allocated"] in lines
    assert ["10.81.0.6", "-", "default", "Reserved"] in lines
    assert ["10.81.0.3", f"{namespace}/gold-web", "default", "Recorded", "(no", "Vip)"] in lines


async def test_status_reads_vippools_from_the_cluster_and_prints_json_or_yaml(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane,
    start_lbctl: StartLbctl, vip_pools: CreatePool,
) -> None:  # fmt: skip
    """Without VIP_RANGE or lbctl's ConfigMap, the pools are the VipPool objects; a pool left
    out says why; -o json and -o yaml give the same report; --help is the command's own."""
    await start_lbctl(vip_range="[]")
    pool, shadowed = f"status-{namespace[-6:]}", f"z-status-{namespace[-6:]}"
    await vip_pools(pool, ["10.81.1.0/30"])
    await vip_pools(shadowed, ["10.81.1.1"])
    drained = f"drained-{namespace[-6:]}"
    await vip_pools(drained, ["10.81.2.1"], disabled=True)
    await kube.create(SERVICES, namespace, load_balancer("web"))
    assert await wait_for_ip(kube, namespace, "web") == "10.81.1.1"

    async def status(*flags: str) -> str:
        env = {k: v for k, v in os.environ.items() if k != "VIP_RANGE"}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lbctl", "status", "--kubeconfig",
            str(control_plane.kubeconfig), "--namespace", namespace,
            "--config", f"{namespace}/none", *flags,
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, stderr.decode()
        return stdout.decode()

    found = json.loads(await status("-o", "json"))
    ours = [p for p in found["pools"] if p["name"] == pool]
    assert ours == [{"name": pool, "origin": "VipPool", "family": "IPv4", "total": 2,
                     "inUse": 1, "free": 1, "state": "Ready"}]  # fmt: skip
    (draining,) = [p for p in found["pools"] if p["name"] == drained]
    assert draining["state"] == "Disabled"
    (left_out,) = [p for p in found["pools"] if p["name"] == shadowed]
    assert left_out["state"] == "Overlap"
    assert found["allocations"] == [
        {"address": "10.81.1.1", "holder": f"{namespace}/web", "pool": pool, "state": "Allocated"}
    ]
    assert yaml.safe_load(await status("-o", "yaml")) == found
    usage = await status("--help")
    assert usage.startswith("usage: lbctl status")
    assert "-o {table,json,yaml}" in usage


async def test_kubectl_runs_lbctl_status_as_a_plugin(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane, start_lbctl: StartLbctl
) -> None:
    """``kubectl lbctl status`` (the built kubectl) finds the installed ``kubectl-lbctl`` on PATH
    and reports the allocations; ``kubectl lbctl`` alone is status too, and the controller cannot
    be started through kubectl."""
    kubectl_path = str(await asyncio.to_thread(kubectl_binary))
    await start_lbctl(vip_range='["10.81.3.0/29"]')
    await kube.create(SERVICES, namespace, load_balancer("web"))
    address = await wait_for_ip(kube, namespace, "web")
    scripts = Path(sys.executable).parent
    assert (scripts / "kubectl-lbctl").is_file(), "the package's entry point is installed"
    env = dict(os.environ, PATH=f"{scripts}{os.pathsep}{os.environ['PATH']}")
    env.pop("VIP_RANGE", None)

    async def kubectl(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            kubectl_path, "lbctl", *args, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode is not None
        return process.returncode, stdout.decode(), stderr.decode()

    flags = ("--kubeconfig", str(control_plane.kubeconfig), "--namespace", namespace,
             "--vip-range", '["10.81.3.0/29"]', "-o", "json")  # fmt: skip
    for words in (("status", *flags), flags):
        code, stdout, stderr = await kubectl(*words)
        assert code == 0, stderr
        allocations = json.loads(stdout)["allocations"]
        assert [a["holder"] for a in allocations if a["address"] == address] == [f"{namespace}/web"]
    assert await kubectl("--version") == (0, f"kubectl-lbctl {version('lbctl')}\n", "")
    code, _, stderr = await kubectl("run")
    assert code == 2
    assert "unknown command 'run'" in stderr
