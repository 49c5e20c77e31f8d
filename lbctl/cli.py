"""Command line: ``lbctl [run] [flags]`` runs the controller; ``lbctl demo`` the local demo;
``lbctl controlplane build`` builds the local kube-apiserver and etcd.

Every flag has an environment variable; a bad setting exits with code 2 and names it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from lbctl import logs
from lbctl.config import Settings
from lbctl.ipam.ranges import RangeError, parse_vip_range


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lbctl",
        description="Give type: LoadBalancer Services a VIP from VIP_RANGE, recorded in a Vip.",
        epilog="Other commands: 'lbctl demo' (local demo), 'lbctl controlplane build'.",
    )
    parser.add_argument(
        "--kubeconfig",
        default=_env("KUBECONFIG"),
        help="kubeconfig file (env KUBECONFIG); default: the in-cluster service account",
    )
    parser.add_argument(
        "--vip-range",
        default=_env("VIP_RANGE"),
        help="address pools as JSON, e.g. '[\"10.99.98.0/24\"]' (env VIP_RANGE; required)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(_env("LBCTL_WORKERS", "4") or 4),
        help="concurrent reconciles (env LBCTL_WORKERS; default 4)",
    )
    parser.add_argument(
        "--load-balancer-class",
        default=_env("LBCTL_LOAD_BALANCER_CLASS"),
        help="handle only Services of this spec.loadBalancerClass "
        "(env LBCTL_LOAD_BALANCER_CLASS; default: Services without a class)",
    )
    parser.add_argument(
        "--metrics-bind-address",
        default=_env("LBCTL_METRICS_BIND_ADDRESS", ":8080"),
        help="host:port for /metrics, /healthz, /readyz; '0' disables "
        "(env LBCTL_METRICS_BIND_ADDRESS; default :8080)",
    )
    parser.add_argument(
        "--log-level",
        default=_env("LBCTL_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="(env LBCTL_LOG_LEVEL; default info)",
    )
    parser.add_argument(
        "--log-format",
        default=_env("LBCTL_LOG_FORMAT", "auto"),
        choices=["auto", "json", "console"],
        help="auto: console on a terminal, JSON otherwise (env LBCTL_LOG_FORMAT)",
    )
    return parser


def settings_from(argv: Sequence[str]) -> tuple[Settings, argparse.Namespace]:
    parser = run_parser()
    args = parser.parse_args(argv)
    if not args.vip_range:
        parser.error("VIP_RANGE is not set: pass --vip-range or set the VIP_RANGE variable")
    try:
        pools = parse_vip_range(args.vip_range)
    except RangeError as err:
        parser.error(str(err))
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    address = args.metrics_bind_address
    if address != "0" and not address.rpartition(":")[2].isdigit():
        parser.error(f"--metrics-bind-address must be host:port or '0', got {address!r}")
    settings = Settings(
        pools=pools,
        kubeconfig=args.kubeconfig,
        workers=args.workers,
        load_balancer_class=args.load_balancer_class,
        metrics_bind_address=address,
    )
    return settings, args


def run_until_signalled(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main``; SIGTERM or SIGINT cancels it so shutdown runs its cleanup."""

    async def runner() -> None:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(runner())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:
        from lbctl.devenv import demo

        return demo.main(argv[1:])
    if argv[:1] == ["controlplane"]:
        from lbctl.devenv import commands

        return commands.main(argv[1:])
    if argv[:1] == ["run"]:
        argv = argv[1:]
    settings, args = settings_from(argv)
    logs.configure(args.log_level, args.log_format)
    from lbctl import app

    run_until_signalled(app.run(settings))
    return 0
