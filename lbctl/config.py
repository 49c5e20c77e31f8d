"""Settings for one lbctl process, grouped and frozen; built by ``lbctl.cli``."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lbctl import __version__
from lbctl.ipam.ranges import Pool
from lbctl.kube.leader import LeaderElectionConfig


def env_value(name: str, default: str | None = None) -> str | None:
    """The environment variable ``name``, or ``default`` when it is unset or empty."""
    return os.environ.get(name) or default


def env_flag(value: str | None) -> bool | None:
    """A boolean setting's text (1/true/yes/on, any case, is true); None when unset."""
    if value is None:
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class AdcSettings:
    """Where and how to reach the NetScaler; the password is never shown in a repr."""

    url: str
    username: str
    password: str = field(repr=False)
    ca_file: str | None = None
    insecure: bool = False
    prefix: str = "lbctl"
    """Names of lbctl's ADC objects start with '<prefix>-': unique per cluster sharing an ADC."""
    resync_period: float = 300.0
    """Seconds between drift passes (re-read the ADC, repair, delete orphans)."""
    timeout: float = 10.0
    session_timeout: int = 600
    """NITRO session timeout asked for at login, seconds: sessions of a killed lbctl free
    their slot in the ADC's session table after this long."""
    save_config: bool = False
    """Save the running configuration (``save ns config``) after lbctl changed it, as
    NetScaler's own controller offers; coalesced to at most one save per ``save_interval``."""
    save_interval: float = 60.0
    health_period: float = 30.0
    """Seconds between reads of every lb vserver's state (a count, then a NITRO GET per 1,000);
    0: never."""
    workers: int = 8
    """Concurrent NetScaler reconciles (their own queue): NITRO requests in flight at most."""


@dataclass(frozen=True)
class Settings:
    pools: tuple[Pool, ...]
    """The ``VIP_RANGE`` pools at start (VipPool objects add to them live)."""
    vip_range_file: str | None = None
    """Re-read for ``VIP_RANGE`` whenever its content changes (a mounted ConfigMap)."""
    kubeconfig: str | None = None
    """None means the in-cluster service account."""
    workers: int = 32
    """Concurrent reconciles; one key is never reconciled by two workers at once.  A new
    Service's reconcile is a few apiserver round trips in a row, so the throughput of new
    Services grows with the workers until the apiserver is busy (1,000 Services at once, on
    2 cores: 22 s with 4 workers, 10 s with 16, 8.5 s with 32, 8.5 s with 64)."""
    load_balancer_class: str | None = None
    """Handle only Services of this class; None handles Services without a class."""
    metrics_bind_address: str = ":8080"
    """host:port of /metrics, /healthz and /readyz; '0' turns the server off."""
    namespace: str | None = None
    """Watch and manage only this namespace; None means all namespaces."""
    leader_election: LeaderElectionConfig | None = None
    """None: this process always reconciles (one replica, or local work)."""
    adc: AdcSettings | None = None
    """None: IPAM, Vips and Service status only; no NetScaler is programmed."""
    instance: str = field(
        default_factory=lambda: os.environ.get("POD_NAME") or socket.gethostname()
    )
    """Which replica this is (the Pod's name, else the host's): Events' ``reportingInstance``."""

    def summary(self) -> dict[str, Any]:
        """What an operator checks first, for the one start-up log line: version, pools,
        scope, leader election, metrics address and the NetScaler (its URL without any
        credentials; the user and password are never included)."""
        election = self.leader_election
        return {
            "version": __version__,
            "instance": self.instance,
            "pools": {p.name: [r.source for r in p.ranges] for p in self.pools},
            "vip_range_file": self.vip_range_file,
            "load_balancer_class": self.load_balancer_class or "(Services without a class)",
            "namespace": self.namespace or "(all)",
            "leader_election": f"{election.namespace}/{election.name}" if election else "off",
            "metrics_bind_address": "off"
            if self.metrics_bind_address == "0"
            else self.metrics_bind_address,
            "netscaler": _without_credentials(self.adc.url) if self.adc else "off",
            "adc_prefix": self.adc.prefix if self.adc else None,
            "workers": self.workers,
        }


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
