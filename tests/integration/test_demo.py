"""The README's first command: ``lbctl demo`` from nothing to VIPs and NetScaler objects."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

from lbctl.devenv.controlplane import LocalControlPlane


async def run_demo(*args: str, stop_when: str | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lbctl", "demo", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    lines = []
    async with asyncio.timeout(240):
        while line := (await process.stdout.readline()).decode():
            lines.append(line)
            if stop_when is not None and stop_when in line:
                process.send_signal(signal.SIGTERM)
        code = await process.wait()
    return code, "".join(lines)


def assert_demo_output(output: str) -> None:
    for name, port in (("echo1", 80), ("echo2", 8443)):
        vip = re.search(rf"demo/{name}: VIP (10\.99\.98\.\d+)", output)
        assert vip is not None, output
        assert f"annotation com.citrix.vip={vip[1]}" in output
        adc = rf"demo/{name} on the NetScaler: lbvserver lbctl-demo_{name}_{port}-tcp_lbv TCP {re.escape(vip[1])}:{port} -> servicegroup \S+ members 172\.30\.0\.11:\d+, 172\.30\.0\.12:\d+"
        assert re.search(adc, output), output
    assert "lbctl released their VIPs and ADC objects" in output
    pid = re.search(r"started lbctl \(pid (\d+)\)", output)
    assert pid is not None
    assert not Path(f"/proc/{pid[1]}").exists(), "lbctl left running"


async def test_demo_shows_vips_and_adc_objects_and_cleans_up(
    control_plane: LocalControlPlane,
) -> None:
    code, output = await run_demo("--no-hold")
    assert code == 0, output
    assert_demo_output(output)


async def test_held_demo_stops_cleanly_on_sigterm(control_plane: LocalControlPlane) -> None:
    code, output = await run_demo("--hold", stop_when="press Ctrl-C")
    assert code == 0, output
    assert_demo_output(output)
