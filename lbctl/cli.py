"""Command line: ``lbctl [run] [flags]`` runs the controller; ``lbctl demo`` the local demo;
``lbctl controlplane build`` builds the local kube-apiserver and etcd, ``lbctl helm build``
helm, ``lbctl kubectl build`` kubectl; ``kubectl lbctl`` (the ``kubectl-lbctl`` executable, a
kubectl plugin) reports status.

Every flag has an environment variable; a bad setting exits with code 2 and names it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import uuid
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from lbctl import __version__, logs
from lbctl.config import Settings, env_flag, env_value
from lbctl.ipam.ranges import RangeError, parse_vip_range
from lbctl.kube.leader import LeaderElectionConfig
from lbctl.netscaler_options import adc_from, add_netscaler_arguments

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _service_account_namespace() -> str | None:
    try:
        return Path(SERVICE_ACCOUNT_NAMESPACE).read_text().strip() or None
    except OSError:
        return None


def leader_election_from(args: argparse.Namespace) -> LeaderElectionConfig | None:
    enabled = args.leader_elect if args.leader_elect is not None else not args.kubeconfig
    if not enabled:
        return None
    identity = os.environ.get("POD_NAME") or socket.gethostname()
    return LeaderElectionConfig(
        namespace=args.leader_elect_namespace or _service_account_namespace() or "default",
        name=args.leader_elect_lease_name,
        identity=f"{identity}_{uuid.uuid4().hex[:8]}",
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period,
    )


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lbctl",
        description="Give type: LoadBalancer Services a VIP from VIP_RANGE and VipPool objects, "
        "recorded in a Vip.",
        epilog="Other commands: 'lbctl status [flags]' (pools and allocations in the cluster), "
        "'lbctl demo' (local demo), 'lbctl controlplane build|up', 'lbctl helm build', "
        "'lbctl kubectl build'.",
    )
    parser.add_argument("--version", action="version", version=f"lbctl {__version__}")
    parser.add_argument(
        "--kubeconfig",
        default=env_value("KUBECONFIG"),
        help="kubeconfig file (env KUBECONFIG); default: the in-cluster service account",
    )
    parser.add_argument(
        "--vip-range",
        default=env_value("VIP_RANGE"),
        help="address pools as JSON, e.g. '[\"10.99.98.0/24\"]' (env VIP_RANGE; none: pools "
        "come from VipPool objects only)",
    )
    parser.add_argument(
        "--vip-range-file",
        default=env_value("VIP_RANGE_FILE"),
        help="read VIP_RANGE from this file, e.g. a mounted ConfigMap key, and again whenever "
        "it changes (env VIP_RANGE_FILE)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=env_value("LBCTL_WORKERS", "32"),
        help="concurrent reconciles of Services, Vips and VipPools (env LBCTL_WORKERS; default 32)",
    )
    parser.add_argument(
        "--load-balancer-class",
        default=env_value("LBCTL_LOAD_BALANCER_CLASS"),
        help="handle only Services of this spec.loadBalancerClass "
        "(env LBCTL_LOAD_BALANCER_CLASS; default: Services without a class)",
    )
    parser.add_argument(
        "--metrics-bind-address",
        default=env_value("LBCTL_METRICS_BIND_ADDRESS", ":8080"),
        help="host:port for /metrics, /healthz, /readyz; '0' disables "
        "(env LBCTL_METRICS_BIND_ADDRESS; default :8080)",
    )
    parser.add_argument(
        "--namespace",
        default=env_value("LBCTL_NAMESPACE"),
        help="watch and manage only this namespace (env LBCTL_NAMESPACE; default: all)",
    )
    election = parser.add_argument_group("leader election (a Lease; only the leader reconciles)")
    election.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=env_flag(env_value("LBCTL_LEADER_ELECT")),
        help="(env LBCTL_LEADER_ELECT; default: on in a cluster, off with --kubeconfig)",
    )
    election.add_argument(
        "--leader-elect-namespace",
        default=env_value("LBCTL_LEADER_ELECT_NAMESPACE") or env_value("POD_NAMESPACE"),
        help="namespace of the Lease (env LBCTL_LEADER_ELECT_NAMESPACE or POD_NAMESPACE; "
        "default: the service account's namespace, else 'default')",
    )
    election.add_argument(
        "--leader-elect-lease-name",
        default=env_value("LBCTL_LEADER_ELECT_LEASE_NAME", "lbctl"),
        help="(env LBCTL_LEADER_ELECT_LEASE_NAME; default lbctl)",
    )
    for name, default, what in (
        ("lease-duration", "15", "how long a lease is valid without renewal"),
        ("renew-deadline", "10", "a leader that cannot renew for this long stops"),
        ("retry-period", "2", "time between acquire/renew attempts"),
    ):
        env = f"LBCTL_LEADER_ELECT_{name.upper().replace('-', '_')}"
        election.add_argument(
            f"--leader-elect-{name}",
            type=float,
            default=env_value(env, default),
            help=f"{what}, seconds (env {env}; default {default})",
        )
    add_netscaler_arguments(parser)
    parser.add_argument(
        "--log-level",
        default=env_value("LBCTL_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="(env LBCTL_LOG_LEVEL; default info)",
    )
    parser.add_argument(
        "--log-format",
        default=env_value("LBCTL_LOG_FORMAT", "auto"),
        choices=["auto", "json", "console"],
        help="auto: console on a terminal, JSON otherwise (env LBCTL_LOG_FORMAT)",
    )
    return parser


def settings_from(argv: Sequence[str]) -> tuple[Settings, argparse.Namespace]:
    parser = run_parser()
    args = parser.parse_args(argv)
    if args.vip_range and args.vip_range_file:
        parser.error("VIP_RANGE is given twice: use --vip-range or --vip-range-file, not both")
    if args.vip_range_file:
        try:
            args.vip_range = Path(args.vip_range_file).read_text()
        except OSError as err:
            parser.error(f"--vip-range-file {args.vip_range_file!r}: {err.strerror}")
    try:
        pools = parse_vip_range(args.vip_range or "")
    except RangeError as err:
        parser.error(str(err))
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    address = args.metrics_bind_address
    if address != "0" and not address.rpartition(":")[2].isdigit():
        parser.error(f"--metrics-bind-address must be host:port or '0', got {address!r}")
    election = leader_election_from(args)
    if election is not None:
        try:
            election.validate()
        except ValueError as err:
            parser.error(f"--leader-elect-*: {err}")
    settings = Settings(
        leader_election=election,
        namespace=args.namespace,
        pools=pools,
        vip_range_file=args.vip_range_file,
        kubeconfig=args.kubeconfig,
        workers=args.workers,
        load_balancer_class=args.load_balancer_class,
        metrics_bind_address=address,
        adc=adc_from(parser, args),
    )
    return settings, args


def run_until_signalled(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop's event loop; SIGTERM or SIGINT cancels it so shutdown runs its
    cleanup.  uvloop (libuv, in C) runs lbctl's requests for less CPU than asyncio's own loop
    (``bench.scale``, 10,000 Services: 112 s of CPU instead of 147 s, all addressed in 229 s
    instead of 430 s).  uvloop is imported here: the read-only commands (``kubectl lbctl``)
    run where it does not install (Windows)."""
    import uvloop

    async def runner() -> None:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        uvloop.run(runner())
    finally:
        # A closed uvloop loop leaves its own handlers on SIGTERM and SIGINT (it restores the
        # defaults only while it listens for signals, which it has stopped when it closes), so
        # both would be swallowed until the process exits; asyncio's loop restored them.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:
        from lbctl.devenv import demo

        return demo.main(argv[1:])
    if argv[:1] in (["controlplane"], ["helm"], ["kubectl"]):
        from lbctl.devenv import commands

        return commands.main(argv)
    if argv[:1] == ["status"]:
        from lbctl import status

        return status.main(argv[1:])
    if argv[:1] == ["run"]:
        argv = argv[1:]
    settings, args = settings_from(argv)
    logs.configure(args.log_level, args.log_format)
    from lbctl import app

    run_until_signalled(app.run(settings))
    return 0


PLUGIN_USAGE = """usage: kubectl lbctl [status] [flags]   pools and allocations (flags: --help)
       kubectl lbctl --version"""


def kubectl_plugin(argv: Sequence[str] | None = None) -> int:
    """``kubectl lbctl``: kubectl runs the ``kubectl-lbctl`` executable it finds on PATH with
    the words after ``lbctl``.  Only the read-only commands are offered (``status``, also
    when no command is given, and ``--version``); the controller is never started this way."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["--version"], ["version"]):
        print(f"kubectl-lbctl {__version__}")
        return 0
    if not argv or argv[0].startswith("-"):
        argv = ["status", *argv]
    if argv[0] != "status":
        print(f"kubectl lbctl: unknown command {argv[0]!r}\n{PLUGIN_USAGE}", file=sys.stderr)
        return 2
    from lbctl import status

    return status.main(argv[1:])
