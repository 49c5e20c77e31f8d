"""The ADC step of a Service reconcile: program the NetScaler, report per-port failures.

It runs after IPAM and status, so an unreachable NetScaler delays only its own part; failures
become ``status.loadBalancer.ingress[].ports[].error`` and Events, and :class:`AdcNotReady`
makes the work queue retry the Service with backoff.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import structlog

from lbctl.kube.client import SERVICES, KubeClient
from lbctl.kube.events import EventRecorder, timestamp
from lbctl.model import IPAddress, ServiceView
from lbctl.reconcile.adc import AdcOutcome
from lbctl.reconcile.adc_health import AdcHealth, Health
from lbctl.reconcile.conditions import ADC_CONDITION, conditions

log = structlog.get_logger(__name__)


class AdcNotReady(Exception):
    """The Service's ADC configuration is not complete yet; retried with backoff."""


class LoadBalancerBackend(Protocol):
    """What programs the data plane (the NetScaler) for a Service."""

    async def ensure(
        self,
        service: Mapping[str, Any],
        addresses: list[str],
        still_wanted: Callable[[], bool] = ...,
    ) -> AdcOutcome: ...

    async def remove(self, owner: str) -> AdcOutcome: ...

    def may_own(self, owner: str) -> bool:
        """Whether the last read of the ADC showed objects of ``owner``."""
        ...


UNREACHABLE = "the NetScaler does not answer (or refuses lbctl's credentials)"
ADC_UNREACHABLE = "lbctl.io/ADCUnreachable"
"""``ports[].error`` of every port while the NetScaler does not answer."""


def _with_health(message: str, health: Health | None, before: Mapping[str, Any] | None) -> str:
    """The condition's message with what the NetScaler sees of the members, when that is
    worth saying: a vserver not UP, or members not UP (a healthy Service's message stays as
    it is, so health passes and restarts write nothing).  Health not read yet (a restart):
    what the condition said keeps being said."""
    if health is None:
        said = str((before or {}).get("message") or "")
        return said if said.split(";")[0] == message and before and before.get(
            "status") == "True" else message  # fmt: skip
    if health.down or any(v.up < v.total for v in health.vservers):
        return f"{message}; {health.describe()}"
    return message


def _serves(shown: str) -> str:
    return f"the NetScaler serves {shown}"


def _condition(outcome: AdcOutcome, shown: str) -> tuple[str, str, str]:
    """The ``NetScalerConfigured`` condition (status, reason, message) an outcome means for a
    Service showing ``shown``."""
    if outcome.unreachable:
        # The same words for the whole outage (the log has each error): the condition is
        # written, and the Event counted, only when what is said changes.
        return "False", "Unreachable", UNREACHABLE
    if outcome.lb_disabled:
        return "False", "LBFeatureDisabled", outcome.retry or "LB feature disabled"
    if outcome.port_errors:
        label, (reason, message) = sorted(outcome.port_errors.items())[0]
        short = reason.rsplit("/", 1)[-1]
        return "False", short, f"port {label}: {message}"
    if outcome.retry is not None:
        return "False", "Refused", outcome.retry
    if outcome.problem is not None:
        return "False", "InvalidAnnotation", outcome.problem
    return "True", "Configured", _serves(shown)


def ingress_entries(
    addresses: list[IPAddress], ports: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """``status.loadBalancer.ingress``: one entry per address (two for dual-stack)."""
    extra = {"ports": ports} if ports else {}
    return [{"ip": str(a), "ipMode": "Proxy", **extra} for a in addresses]


class AdcStep:
    def __init__(
        self,
        backend: LoadBalancerBackend,
        client: KubeClient,
        recorder: EventRecorder,
        health: AdcHealth | None = None,
    ) -> None:
        """``health``: what the NetScaler says of each Service's vservers (its condition's
        message, and a Warning when one goes DOWN)."""
        self._health = health
        self._backend = backend
        self._client = client
        self._recorder = recorder

    async def ensure(
        self,
        raw: dict[str, Any],
        service: ServiceView,
        addresses: list[IPAddress],
        still_wanted: Callable[[], bool] = lambda: True,
    ) -> list[str]:
        """Program the ADC for a Service that shows ``addresses`` and say what happened on the
        Service: ``ports[].error`` per port and the ``NetScalerConfigured`` condition, in one
        write guarded by the version ``raw`` was read at; ``EnsuredLoadBalancer`` once the ADC
        holds the configuration (again, after a failure: then the Event says from what).
        Raises :class:`AdcNotReady` while it does not.  The versions written."""
        texts = [str(a) for a in addresses]
        outcome = await self._writing(service.key, self._backend.ensure(raw, texts, still_wanted))
        if outcome.skipped:
            return []
        if outcome.problem is not None:
            await self._recorder.record(raw, "Warning", "InvalidAnnotation", outcome.problem)
        for label, (_, message) in sorted(outcome.port_errors.items()):
            await self._recorder.record(raw, "Warning", "SyncLoadBalancerFailed", message)
            log.warning("port not configured on the ADC", service=service.key, port=label)
        shown = ", ".join(map(str, addresses))
        condition = _condition(outcome, shown)
        before = next((c for c in service.conditions if c.get("type") == ADC_CONDITION), None)
        health = self._health.by_service.get(service.key) if self._health is not None else None
        if condition[0] == "True":
            condition = (*condition[:2], _with_health(condition[2], health, before))
        if (
            health is not None
            and self._health is not None
            and service.key in self._health.went_down
        ):
            self._health.went_down.discard(service.key)
            message = f"the NetScaler cannot reach the Service: {health.describe()}"
            await self._recorder.record(raw, "Warning", "LoadBalancerDown", message)
        written = await self._publish(raw, service, addresses, outcome, condition)
        served_before = str((before or {}).get("message") or "").split(";")[0]
        if condition[0] == "True" and (
            before is None or before.get("status") != "True" or served_before != _serves(shown)
        ):
            message = f"Configured on the NetScaler for {shown}"
            if before is not None and before.get("status") != "True":
                message += f" (recovered from {before.get('reason')}: {before.get('message')})"
            await self._recorder.record(raw, "Normal", "EnsuredLoadBalancer", message)
        if outcome.retry is not None:
            if not outcome.port_errors:
                why = UNREACHABLE if outcome.unreachable else outcome.retry
                message = f"NetScaler not configured yet: {why}"
                await self._recorder.record(raw, "Warning", "SyncLoadBalancerFailed", message)
            raise AdcNotReady(outcome.retry)
        return written

    async def _publish(
        self,
        raw: dict[str, Any],
        service: ServiceView,
        addresses: list[IPAddress],
        outcome: AdcOutcome,
        condition: tuple[str, str, str],
    ) -> list[str]:
        """Keep ``status.loadBalancer.ingress[].ports`` saying which ports the ADC does not
        serve (every port while it is unreachable) and the condition current."""
        ports = None
        if outcome.port_errors or outcome.unreachable:
            ports = []
            for port in (raw.get("spec") or {}).get("ports") or []:
                protocol = str(port.get("protocol") or "TCP")
                entry: dict[str, Any] = {"port": port["port"], "protocol": protocol}
                error = outcome.port_errors.get(f"{port['port']}-{protocol.lower()}")
                if error is not None:
                    entry["error"] = error[0]
                elif outcome.unreachable:
                    entry["error"] = ADC_UNREACHABLE
                ports.append(entry)
        ingress = ((raw.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [{}]
        listed = conditions(service, condition, timestamp(), ADC_CONDITION)
        if ingress[0].get("ports") == ports and listed is None:
            return []
        status: dict[str, Any] = {}
        if ingress[0].get("ports") != ports:
            status["loadBalancer"] = {"ingress": ingress_entries(addresses, ports)}
        if listed is not None:
            status["conditions"] = listed
        # Guarded by the version read: the Service may have been replaced meanwhile (deleted
        # and created again under its name), and the new one must not get this status.
        guard = {"resourceVersion": raw["metadata"]["resourceVersion"]}
        updated = await self._client.patch(
            SERVICES, service.namespace, service.name, {"metadata": guard, "status": status},
            subresource="status",
        )  # fmt: skip
        return [str(updated["metadata"]["resourceVersion"])]

    async def _writing(self, owner: str, writes: Awaitable[AdcOutcome]) -> AdcOutcome:
        """Await ``writes`` to the Service's objects; health passes meanwhile skip it."""
        if self._health is None:
            return await writes
        self._health.writing(owner)
        try:
            return await writes
        finally:
            self._health.written(owner)

    async def remove(self, raw: dict[str, Any] | None, key: str, known: bool) -> None:
        """Delete the Service's ADC objects; unless ``known`` to have been ours, only when
        the ADC was seen holding some (so an unreachable ADC never blocks other Services)."""
        if not (known or self._backend.may_own(key)):
            return
        outcome = await self._writing(key, self._backend.remove(key))
        if outcome.retry is not None:
            if raw is not None:
                message = f"NetScaler objects not removed yet: {outcome.retry}"
                await self._recorder.record(raw, "Warning", "SyncLoadBalancerFailed", message)
            raise AdcNotReady(outcome.retry)
