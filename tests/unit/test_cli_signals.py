"""The daemon's runner (uvloop): SIGTERM or SIGINT cancels main, whose cleanup runs; once the
loop is closed both signals act as they did before it ran."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from lbctl.cli import run_until_signalled


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_cancels_main_its_cleanup_runs_and_the_defaults_come_back(signum: int) -> None:
    done: list[str] = []

    async def cleanup() -> None:
        await asyncio.sleep(0.02)
        done.append("released")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done.append(type(loop).__module__)
        loop.call_later(0.05, os.kill, os.getpid(), signum)
        try:
            await asyncio.Event().wait()  # until the signal cancels it
        finally:
            await asyncio.shield(cleanup())

    run_until_signalled(main())
    assert done == ["uvloop", "released"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
