"""What a Service of lbctl's should say, decided from the observed objects alone (no I/O).

The reconciler (``service``) decides the address and claims its durable record; these
functions turn what is observed into the exact writes: the merge-patch bodies for the
Service's status subresource (which applies ``metadata`` too but never the spec, so lbctl
needs no right to change a Service's spec), the Vip's status, and whether lbctl may call a
Service its own.  Every Service body is guarded by the resourceVersion it was decided on.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import Any

from lbctl.model import (
    CLASS_ANNOTATION,
    LB_FINALIZER,
    VIP_ANNOTATION,
    IPAddress,
    ServiceView,
    VipView,
    parse_shown,
)
from lbctl.reconcile.adc_step import ingress_entries
from lbctl.reconcile.conditions import ADC_CONDITION, ADDRESS_CONDITION, conditions
from lbctl.reconcile.vipstatus import ALLOCATED, vip_status

OUTSIDE_POOLS = "OutsidePools"


def _status(
    ingress: list[dict[str, Any]] | None, conditions: list[dict[str, Any]] | None
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if ingress is not None:
        status["loadBalancer"] = {"ingress": ingress or None}
    if conditions is not None:
        status["conditions"] = conditions
    return {"status": status} if status else {}


def _guarded(service: ServiceView, metadata: dict[str, Any], **rest: Any) -> dict[str, Any]:
    return {"metadata": {**metadata, "resourceVersion": service.resource_version}, **rest}


def shown(
    service: ServiceView,
    addresses: list[IPAddress],
    mark: str,
    message: str = "",
    now: str = "",
) -> dict[str, Any] | None:
    """The body that makes the Service show ``addresses`` (primary first) as lbctl's: its
    finalizer, ``com.citrix.vip``, lbctl's class mark, ``status.loadBalancer.ingress`` and
    the ``AddressAllocated`` condition (True, ``message``), in one write; None when all of it
    is in place.  ``now``: the RFC 3339 time for a condition that changes status."""
    texts = tuple(str(a) for a in addresses)
    metadata: dict[str, Any] = {}
    if not service.has_finalizer:
        metadata["finalizers"] = [*service.finalizers, LB_FINALIZER]
    annotations = {VIP_ANNOTATION: texts[0], CLASS_ANNOTATION: mark}
    changed = {k: v for k, v in annotations.items() if service.annotations.get(k) != v}
    if changed:
        metadata["annotations"] = changed
    listed = conditions(service, ("True", "Allocated", message), now)
    ingress = None if service.ingress_ips == texts else ingress_entries(addresses, None)
    if not metadata and ingress is None and listed is None:
        return None
    return _guarded(service, metadata, **_status(ingress, listed))


def waiting(
    service: ServiceView,
    mark: str,
    withdrawn: AbstractSet[IPAddress] = frozenset(),
    why: tuple[str, str] | None = None,
    now: str = "",
) -> dict[str, Any] | None:
    """The body that marks a Service waiting for an address as lbctl's (finalizer and class
    mark), takes off what shows one of ``withdrawn`` (status and ``com.citrix.vip``) and sets
    the ``AddressAllocated`` condition False with ``why`` (reason, message); None when nothing
    is to be written.  The finalizer list is replaced whole, hence the guard."""
    metadata: dict[str, Any] = {}
    if not service.has_finalizer:
        metadata["finalizers"] = [*service.finalizers, LB_FINALIZER]
        metadata["annotations"] = {CLASS_ANNOTATION: mark}
    if parse_shown(service.annotations.get(VIP_ANNOTATION)) in withdrawn:
        metadata.setdefault("annotations", {})[VIP_ANNOTATION] = None
    listed = None if why is None else conditions(service, ("False", *why), now)
    ingress: list[dict[str, Any]] | None = (
        [] if withdrawn & set(service.ingress_addresses()) else None
    )
    if not metadata and ingress is None and listed is None:
        return None
    return _guarded(service, metadata, **_status(ingress, listed))


def unshown(service: ServiceView, ours: set[IPAddress], mark: str) -> dict[str, Any] | None:
    """The body that takes lbctl's marks off a Service: the status and annotation only where
    they show one of ``ours``, lbctl's class mark and its finalizer; None when none is there.
    Another controller's finalizer, annotations and status stay."""
    metadata: dict[str, Any] = {}
    annotations: dict[str, None] = {}
    if parse_shown(service.annotations.get(VIP_ANNOTATION)) in ours:
        annotations[VIP_ANNOTATION] = None
    if service.annotations.get(CLASS_ANNOTATION) == mark:
        annotations[CLASS_ANNOTATION] = None
    if annotations:
        metadata["annotations"] = annotations
    if service.has_finalizer:
        metadata["finalizers"] = [f for f in service.finalizers if f != LB_FINALIZER]
    ingress: list[dict[str, Any]] | None = [] if ours & set(service.ingress_addresses()) else None
    kept = service.conditions
    cleared = [c for c in kept if c.get("type") not in (ADDRESS_CONDITION, ADC_CONDITION)]
    written = [dict(c) for c in cleared] if len(cleared) != len(kept) else None
    if not metadata and ingress is None and written is None:
        return None
    return _guarded(service, metadata, **_status(ingress, written))


def may_share(service: ServiceView, other: ServiceView) -> bool:
    """Whether two Services may show one address: the same sharing key (which is scoped to
    the namespace) and no port in common, as ``lbctl.io/allow-shared-ip`` promises."""
    key = service.share_key
    return key is not None and key == other.share_key and not service.ports & other.ports


def marked(
    service: ServiceView,
    load_balancer_class: str | None,
    vip: VipView | None,
    recorded_uids: set[str],
    held: IPAddress | None,
) -> bool:
    """Whether the Service carries the marks of the lbctl instance of ``load_balancer_class``:
    a Vip made for this very Service (same name and UID) by an instance of that class (a Vip
    with no class is the class-less instance's); an address record an instance of its class
    claimed for this Service (``recorded_uids``: the holder UIDs of those records; it
    outlives a Vip deleted by hand); and, with no Vip of lbctl's of its name (the index
    holds other instances' Vips' addresses too), ``com.citrix.vip`` naming the address it
    ``held`` for the Service, or its class annotation unless the Service is now a
    LoadBalancer of another class (anyone can copy an annotation, and that controller's
    finalizer must stay).  The standard finalizer is no proof: other controllers use it."""
    made = vip is not None and vip.managed
    if made and vip is not None and vip.service_uid == service.uid:
        # Made for this very Service (even if its spec.service was edited by hand).
        return vip.load_balancer_class == load_balancer_class
    if service.uid in recorded_uids:
        return True
    if made:
        return False  # the index holds an address for another instance's Vip too
    if held is not None and held == parse_shown(service.annotations.get(VIP_ANNOTATION)):
        return True
    foreign = service.is_load_balancer and service.load_balancer_class != load_balancer_class
    return not foreign and service.annotations.get(CLASS_ANNOTATION) == (load_balancer_class or "")


def allocated_status(address: IPAddress, pool: str | None) -> dict[str, Any]:
    """The Vip status of an address in use: Allocated from ``pool``, or OutsidePools when no
    pool contains it any more (kept while in use)."""
    if pool is None:
        message = f"{address} is no longer in any pool; kept while in use"
        return vip_status(ALLOCATED, OUTSIDE_POOLS, message, None)
    return vip_status(ALLOCATED, ALLOCATED, f"{address} from pool {pool}", pool)
