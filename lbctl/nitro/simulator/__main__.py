"""``python -m lbctl.nitro.simulator``: a NITRO simulator for demos, users and chaos tests.

The password comes from NITRO_SIM_PASSWORD or --password-file, never the command line, so it
does not show in process listings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from lbctl.nitro.simulator.server import Simulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lbctl.nitro.simulator",
        description="A stateful NetScaler NITRO simulator. The password is read from "
        "--password-file, else NITRO_SIM_PASSWORD, else 'nsroot'.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9080, help="port; 0 picks a free one")
    parser.add_argument("--username", default="nsroot", help="the admin user name")
    parser.add_argument("--password-file", type=Path, help="file holding the password")
    parser.add_argument(
        "--session-timeout", type=float, default=1800.0, help="seconds of inactivity"
    )
    parser.add_argument("--seed", type=int, help="seed for replayable faults")
    return parser.parse_args(argv)


def password(args: argparse.Namespace) -> str:
    if args.password_file is not None:
        return str(args.password_file.read_text()).strip()
    return os.environ.get("NITRO_SIM_PASSWORD", "nsroot")


async def run(args: argparse.Namespace, secret: str) -> None:
    sim = Simulator(args.username, secret, session_timeout=args.session_timeout, seed=args.seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sim.serve(args.host, args.port) as url:
        print(f"listening on {url}", flush=True)
        await stop.wait()
    print("stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        secret = password(args)
    except OSError as e:
        print(f"cannot read --password-file: {e}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run(args, secret))
    except OSError as e:
        print(f"cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
