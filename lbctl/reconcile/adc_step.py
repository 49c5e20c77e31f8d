"""The ADC step of a Service reconcile: program the NetScaler, report per-port failures.

It runs after IPAM and status, so an unreachable NetScaler delays only its own part; failures
become ``status.loadBalancer.ingress[].ports[].error`` and Events, and :class:`AdcNotReady`
makes the work queue retry the Service with backoff.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import structlog

from lbctl.kube.client import SERVICES, KubeClient
from lbctl.kube.events import EventRecorder
from lbctl.model import IPAddress, ServiceView
from lbctl.reconcile.adc import AdcOutcome

log = structlog.get_logger(__name__)


class AdcNotReady(Exception):
    """The Service's ADC configuration is not complete yet; retried with backoff."""


class LoadBalancerBackend(Protocol):
    """What programs the data plane (the NetScaler) for a Service."""

    async def ensure(self, service: Mapping[str, Any], addresses: list[str]) -> AdcOutcome: ...

    async def remove(self, owner: str) -> AdcOutcome: ...

    def may_own(self, owner: str) -> bool:
        """Whether the last read of the ADC showed objects of ``owner``."""
        ...


def ingress_entries(
    addresses: list[IPAddress], ports: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """``status.loadBalancer.ingress``: one entry per address (two for dual-stack)."""
    extra = {"ports": ports} if ports else {}
    return [{"ip": str(a), "ipMode": "Proxy", **extra} for a in addresses]


class AdcStep:
    def __init__(
        self, backend: LoadBalancerBackend, client: KubeClient, recorder: EventRecorder
    ) -> None:
        self._backend = backend
        self._client = client
        self._recorder = recorder

    async def ensure(
        self, raw: dict[str, Any], service: ServiceView, addresses: list[IPAddress]
    ) -> list[str]:
        """Program the ADC (after IPAM and status: an ADC outage never holds those back);
        ``raw`` is the Service as last read or written (its ``ports[].error`` is kept up to
        date in a write guarded by that version)."""
        outcome = await self._backend.ensure(raw, [str(a) for a in addresses])
        if outcome.problem is not None:
            await self._recorder.record(raw, "Warning", "InvalidAnnotation", outcome.problem)
        for label, (_, message) in sorted(outcome.port_errors.items()):
            await self._recorder.record(raw, "Warning", "SyncLoadBalancerFailed", message)
            log.warning("port not configured on the ADC", service=service.key, port=label)
        written = await self._publish_port_errors(raw, service, addresses, outcome)
        if outcome.retry is not None:
            if not outcome.port_errors:
                message = f"NetScaler not configured yet: {outcome.retry}"
                await self._recorder.record(raw, "Warning", "SyncLoadBalancerFailed", message)
            raise AdcNotReady(outcome.retry)
        return written

    async def _publish_port_errors(
        self,
        raw: dict[str, Any],
        service: ServiceView,
        addresses: list[IPAddress],
        outcome: AdcOutcome,
    ) -> list[str]:
        """Keep ``status.loadBalancer.ingress[].ports`` saying which ports failed on the ADC."""
        if outcome.retry is not None and not outcome.port_errors:
            return []  # unreachable ADC: nothing new to say per port
        ports = None
        if outcome.port_errors:
            ports = []
            for port in (raw.get("spec") or {}).get("ports") or []:
                protocol = str(port.get("protocol") or "TCP")
                entry: dict[str, Any] = {"port": port["port"], "protocol": protocol}
                error = outcome.port_errors.get(f"{port['port']}-{protocol.lower()}")
                if error is not None:
                    entry["error"] = error[0]
                ports.append(entry)
        ingress = ((raw.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [{}]
        if ingress[0].get("ports") == ports:
            return []
        status = {"loadBalancer": {"ingress": ingress_entries(addresses, ports)}}
        # Guarded by the version read: the Service may have been replaced meanwhile (deleted
        # and created again under its name), and the new one must not get this status.
        guard = {"resourceVersion": raw["metadata"]["resourceVersion"]}
        updated = await self._client.patch(
            SERVICES, service.namespace, service.name, {"metadata": guard, "status": status},
            subresource="status",
        )  # fmt: skip
        return [str(updated["metadata"]["resourceVersion"])]

    async def remove(self, raw: dict[str, Any] | None, key: str, known: bool) -> None:
        """Delete the Service's ADC objects; unless ``known`` to have been ours, only when
        the ADC was seen holding some (so an unreachable ADC never blocks other Services)."""
        if not (known or self._backend.may_own(key)):
            return
        outcome = await self._backend.remove(key)
        if outcome.retry is not None:
            if raw is not None:
                message = f"NetScaler objects not removed yet: {outcome.retry}"
                await self._recorder.record(raw, "Warning", "SyncLoadBalancerFailed", message)
            raise AdcNotReady(outcome.retry)
