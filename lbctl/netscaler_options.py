"""The NetScaler's command-line flags and the ``AdcSettings`` they make.

Every flag has an environment variable (the NetScaler ingress controller's names where it has
one: NS_URL or NS_IP/NS_PROTOCOL/NS_PORT, NS_USER, NS_PASSWORD); a bad setting exits with
code 2 and names it.  The password is read from the environment or a file, never a flag.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import urlparse

from lbctl.adc.names import PrefixError, check_prefix
from lbctl.config import AdcSettings, env_flag, env_value


def add_netscaler_arguments(parser: argparse.ArgumentParser) -> None:
    """The "NetScaler ADC (NITRO)" group of ``lbctl run``'s flags."""
    adc = parser.add_argument_group(
        "NetScaler ADC (NITRO); without a URL lbctl does IPAM and Service status only"
    )
    adc.add_argument(
        "--netscaler-url",
        default=env_value("NS_URL") or _url_from_ns_ip(),
        help="e.g. https://10.0.0.5 (env NS_URL, or NS_IP with NS_PROTOCOL and NS_PORT)",
    )
    adc.add_argument(
        "--netscaler-username",
        default=env_value("NS_USER"),
        help="NITRO user (env NS_USER); or --netscaler-username-file",
    )
    adc.add_argument(
        "--netscaler-username-file",
        default=env_value("NS_USER_FILE"),
        help="file holding the NITRO user, e.g. a mounted Secret key (env NS_USER_FILE)",
    )
    adc.add_argument(
        "--netscaler-password-file",
        default=env_value("NS_PASSWORD_FILE"),
        help="file holding the NITRO password, e.g. a mounted Secret key "
        "(env NS_PASSWORD_FILE; or the password itself in env NS_PASSWORD, never as a flag)",
    )
    adc.add_argument(
        "--netscaler-ca-file",
        default=env_value("NS_CA_FILE"),
        help="CA bundle to verify the NetScaler's certificate (env NS_CA_FILE)",
    )
    adc.add_argument(
        "--netscaler-insecure",
        action=argparse.BooleanOptionalAction,
        default=bool(env_flag(env_value("NS_INSECURE"))),
        help="do not verify the NetScaler's TLS certificate (env NS_INSECURE; default off)",
    )
    adc.add_argument(
        "--adc-prefix",
        default=env_value("NS_APPS_NAME_PREFIX", "lbctl"),
        help="name prefix of lbctl's ADC objects, unique per cluster sharing an ADC; "
        "1-8 letters and digits (env NS_APPS_NAME_PREFIX; default lbctl)",
    )
    adc.add_argument(
        "--adc-resync-period",
        type=float,
        default=env_value("LBCTL_ADC_RESYNC_PERIOD", "300"),
        help="seconds between drift passes that re-read the ADC, repair changes and delete "
        "orphans (env LBCTL_ADC_RESYNC_PERIOD; default 300)",
    )
    adc.add_argument(
        "--netscaler-timeout",
        type=float,
        default=env_value("NS_TIMEOUT", "10"),
        help="seconds per NITRO request (env NS_TIMEOUT; default 10)",
    )
    adc.add_argument(
        "--netscaler-session-timeout",
        type=int,
        default=env_value("NS_SESSION_TIMEOUT", "600"),
        help="NITRO session idle timeout asked for at login, seconds (env NS_SESSION_TIMEOUT; "
        "default 600)",
    )
    adc.add_argument(
        "--adc-workers",
        type=int,
        default=env_value("LBCTL_ADC_WORKERS", "8"),
        help="concurrent NetScaler reconciles, i.e. NITRO requests in flight at most "
        "(env LBCTL_ADC_WORKERS; default 8)",
    )
    adc.add_argument(
        "--adc-health-period",
        type=float,
        default=env_value("LBCTL_ADC_HEALTH_PERIOD", "30"),
        help="seconds between reads of the lb vservers' state and members UP, shown on each "
        "Service (env LBCTL_ADC_HEALTH_PERIOD; default 30; 0: never)",
    )
    adc.add_argument(
        "--netscaler-save-config",
        action=argparse.BooleanOptionalAction,
        default=bool(env_flag(env_value("NS_SAVE_CONFIG"))),
        help="save the NetScaler's running configuration after lbctl changed it, at most once "
        "per --netscaler-save-interval (env NS_SAVE_CONFIG; default off)",
    )
    adc.add_argument(
        "--netscaler-save-interval",
        type=float,
        default=env_value("NS_SAVE_INTERVAL", "60"),
        help="seconds between saves of the NetScaler's configuration (env NS_SAVE_INTERVAL; "
        "default 60)",
    )


def _url_from_ns_ip() -> str | None:
    """NetScaler ingress controller style: NS_IP, NS_PROTOCOL, NS_PORT."""
    host = env_value("NS_IP")
    if host is None:
        return None
    port = env_value("NS_PORT")
    return f"{env_value('NS_PROTOCOL', 'https')}://{host}" + (f":{port}" if port else "")


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
    password = env_value("NS_PASSWORD")
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
