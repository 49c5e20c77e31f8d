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
from urllib.parse import urlparse

from lbctl import __version__, logs
from lbctl.adc.names import PrefixError, check_prefix
from lbctl.config import AdcSettings, Settings
from lbctl.ipam.ranges import RangeError, parse_vip_range
from lbctl.kube.leader import LeaderElectionConfig

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


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
        default=_env("KUBECONFIG"),
        help="kubeconfig file (env KUBECONFIG); default: the in-cluster service account",
    )
    parser.add_argument(
        "--vip-range",
        default=_env("VIP_RANGE"),
        help="address pools as JSON, e.g. '[\"10.99.98.0/24\"]' (env VIP_RANGE; none: pools "
        "come from VipPool objects only)",
    )
    parser.add_argument(
        "--vip-range-file",
        default=_env("VIP_RANGE_FILE"),
        help="read VIP_RANGE from this file, e.g. a mounted ConfigMap key, and again whenever "
        "it changes (env VIP_RANGE_FILE)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=_env("LBCTL_WORKERS", "32"),
        help="concurrent reconciles of Services, Vips and VipPools (env LBCTL_WORKERS; default 32)",
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
        "--namespace",
        default=_env("LBCTL_NAMESPACE"),
        help="watch and manage only this namespace (env LBCTL_NAMESPACE; default: all)",
    )
    election = parser.add_argument_group("leader election (a Lease; only the leader reconciles)")
    election.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=_flag(_env("LBCTL_LEADER_ELECT")),
        help="(env LBCTL_LEADER_ELECT; default: on in a cluster, off with --kubeconfig)",
    )
    election.add_argument(
        "--leader-elect-namespace",
        default=_env("LBCTL_LEADER_ELECT_NAMESPACE") or _env("POD_NAMESPACE"),
        help="namespace of the Lease (env LBCTL_LEADER_ELECT_NAMESPACE or POD_NAMESPACE; "
        "default: the service account's namespace, else 'default')",
    )
    election.add_argument(
        "--leader-elect-lease-name",
        default=_env("LBCTL_LEADER_ELECT_LEASE_NAME", "lbctl"),
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
            default=_env(env, default),
            help=f"{what}, seconds (env {env}; default {default})",
        )
    adc = parser.add_argument_group(
        "NetScaler ADC (NITRO); without a URL lbctl does IPAM and Service status only"
    )
    adc.add_argument(
        "--netscaler-url",
        default=_env("NS_URL") or _url_from_ns_ip(),
        help="e.g. https://10.0.0.5 (env NS_URL, or NS_IP with NS_PROTOCOL and NS_PORT)",
    )
    adc.add_argument(
        "--netscaler-username",
        default=_env("NS_USER"),
        help="NITRO user (env NS_USER); or --netscaler-username-file",
    )
    adc.add_argument(
        "--netscaler-username-file",
        default=_env("NS_USER_FILE"),
        help="file holding the NITRO user, e.g. a mounted Secret key (env NS_USER_FILE)",
    )
    adc.add_argument(
        "--netscaler-password-file",
        default=_env("NS_PASSWORD_FILE"),
        help="file holding the NITRO password, e.g. a mounted Secret key "
        "(env NS_PASSWORD_FILE; or the password itself in env NS_PASSWORD, never as a flag)",
    )
    adc.add_argument(
        "--netscaler-ca-file",
        default=_env("NS_CA_FILE"),
        help="CA bundle to verify the NetScaler's certificate (env NS_CA_FILE)",
    )
    adc.add_argument(
        "--netscaler-insecure",
        action=argparse.BooleanOptionalAction,
        default=bool(_flag(_env("NS_INSECURE"))),
        help="do not verify the NetScaler's TLS certificate (env NS_INSECURE; default off)",
    )
    adc.add_argument(
        "--adc-prefix",
        default=_env("NS_APPS_NAME_PREFIX", "lbctl"),
        help="name prefix of lbctl's ADC objects, unique per cluster sharing an ADC; "
        "1-8 letters and digits (env NS_APPS_NAME_PREFIX; default lbctl)",
    )
    adc.add_argument(
        "--adc-resync-period",
        type=float,
        default=_env("LBCTL_ADC_RESYNC_PERIOD", "300"),
        help="seconds between drift passes that re-read the ADC, repair changes and delete "
        "orphans (env LBCTL_ADC_RESYNC_PERIOD; default 300)",
    )
    adc.add_argument(
        "--netscaler-timeout",
        type=float,
        default=_env("NS_TIMEOUT", "10"),
        help="seconds per NITRO request (env NS_TIMEOUT; default 10)",
    )
    adc.add_argument(
        "--netscaler-session-timeout",
        type=int,
        default=_env("NS_SESSION_TIMEOUT", "600"),
        help="NITRO session idle timeout asked for at login, seconds (env NS_SESSION_TIMEOUT; "
        "default 600)",
    )
    adc.add_argument(
        "--adc-workers",
        type=int,
        default=_env("LBCTL_ADC_WORKERS", "8"),
        help="concurrent NetScaler reconciles, i.e. NITRO requests in flight at most "
        "(env LBCTL_ADC_WORKERS; default 8)",
    )
    adc.add_argument(
        "--adc-health-period",
        type=float,
        default=_env("LBCTL_ADC_HEALTH_PERIOD", "30"),
        help="seconds between reads of the lb vservers' state and members UP, shown on each "
        "Service (env LBCTL_ADC_HEALTH_PERIOD; default 30; 0: never)",
    )
    adc.add_argument(
        "--netscaler-save-config",
        action=argparse.BooleanOptionalAction,
        default=bool(_flag(_env("NS_SAVE_CONFIG"))),
        help="save the NetScaler's running configuration after lbctl changed it, at most once "
        "per --netscaler-save-interval (env NS_SAVE_CONFIG; default off)",
    )
    adc.add_argument(
        "--netscaler-save-interval",
        type=float,
        default=_env("NS_SAVE_INTERVAL", "60"),
        help="seconds between saves of the NetScaler's configuration (env NS_SAVE_INTERVAL; "
        "default 60)",
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


def _url_from_ns_ip() -> str | None:
    """NetScaler ingress controller style: NS_IP, NS_PROTOCOL, NS_PORT."""
    host = _env("NS_IP")
    if host is None:
        return None
    port = _env("NS_PORT")
    return f"{_env('NS_PROTOCOL', 'https')}://{host}" + (f":{port}" if port else "")


def _read_secret(parser: argparse.ArgumentParser, flag: str, path: str) -> str:
    try:
        value = Path(path).read_text().strip()
    except OSError as err:
        parser.error(f"{flag} {path!r}: {err.strerror}")
    if not value:
        parser.error(f"{flag} {path!r} is empty")
    return value


def adc_from(parser: argparse.ArgumentParser, args: argparse.Namespace) -> AdcSettings | None:
    url = args.netscaler_url
    if not url:
        return None
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        parser.error(f"--netscaler-url must be http(s)://host[:port], got {url!r}")
    username = args.netscaler_username
    if args.netscaler_username_file:
        username = _read_secret(parser, "--netscaler-username-file", args.netscaler_username_file)
    if not username:
        parser.error("--netscaler-url is set but no NITRO user: set NS_USER or NS_USER_FILE")
    password = _env("NS_PASSWORD")
    if args.netscaler_password_file:
        password = _read_secret(parser, "--netscaler-password-file", args.netscaler_password_file)
    if not password:
        parser.error(
            "--netscaler-url is set but no NITRO password: set NS_PASSWORD_FILE or NS_PASSWORD"
        )
    try:
        prefix = check_prefix(args.adc_prefix)
    except PrefixError as err:
        parser.error(f"--adc-prefix: {err}")
    if args.adc_resync_period < 1:
        parser.error(f"--adc-resync-period must be at least 1 s, got {args.adc_resync_period}")
    if args.netscaler_timeout <= 0:
        parser.error(f"--netscaler-timeout must be positive, got {args.netscaler_timeout}")
    if args.adc_health_period < 0:
        parser.error(f"--adc-health-period must be 0 or more, got {args.adc_health_period}")
    if args.adc_workers < 1:
        parser.error(f"--adc-workers must be at least 1, got {args.adc_workers}")
    if args.netscaler_save_interval < 1:
        parser.error(
            f"--netscaler-save-interval must be at least 1 s, got {args.netscaler_save_interval}"
        )
    if not 60 <= args.netscaler_session_timeout <= 86_400:
        parser.error(
            f"--netscaler-session-timeout must be 60-86400 s, got {args.netscaler_session_timeout}"
        )
    if args.netscaler_ca_file and not Path(args.netscaler_ca_file).is_file():
        parser.error(f"--netscaler-ca-file {args.netscaler_ca_file!r} is not a file")
    return AdcSettings(
        url=url,
        username=username,
        password=password,
        ca_file=args.netscaler_ca_file,
        insecure=args.netscaler_insecure,
        prefix=prefix,
        resync_period=args.adc_resync_period,
        timeout=args.netscaler_timeout,
        session_timeout=args.netscaler_session_timeout,
        save_config=args.netscaler_save_config,
        save_interval=args.netscaler_save_interval,
        health_period=args.adc_health_period,
        workers=args.adc_workers,
    )


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
