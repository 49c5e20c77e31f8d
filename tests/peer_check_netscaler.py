"""Run check_netscaler (the Nagios/Icinga plugin from PyPI) as a subprocess against a NITRO URL.

A peer client written by someone else: if it reads the simulator's answers the way it reads an
appliance's, our simulator's wire format is not just something lbctl happens to accept.
"""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import urlsplit

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3


async def check_netscaler(url: str, password: str, *args: str) -> tuple[int, str]:
    """The plugin's exit code (the Nagios state) and its output."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "check_netscaler", "-H", parts.hostname, "-P", str(parts.port),
        "--no-ssl", "-u", "nsroot", "-p", password, "-t", "10", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode()
