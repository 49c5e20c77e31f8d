"""``python -m lbctl --kubeconfig PATH`` as a real process, the way users run it locally."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from lbctl.devenv.controlplane import LocalControlPlane, free_port
from lbctl.kube.client import SERVICES, KubeClient
from tests.integration.conftest import load_balancer, wait_for_ip
from tests.waiting import eventually


async def test_the_cli_process_assigns_vips_and_stops_cleanly_on_sigterm(
    kube: KubeClient, namespace: str, control_plane: LocalControlPlane
) -> None:
    """The real process serves probes, assigns a VIP, and exits 0 on SIGTERM."""
    port = free_port()
    env = dict(os.environ, VIP_RANGE='["10.78.0.0/24"]', LBCTL_LOG_FORMAT="json")
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
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert control_plane.token not in stderr.decode()
