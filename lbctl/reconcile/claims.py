"""Which address a Service should get: pure decisions over a ServiceView and the allocator.

A Service may ask for a pool (``service.citrix.com/ipam-range``) or an exact address
(``service.citrix.com/frontend-ip``, or the deprecated ``spec.loadBalancerIP``).  The answer
is an address, or the reason there is none and whether a released address could change that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from lbctl.ipam.allocator import (
    AddressInUse,
    Allocator,
    PoolExhausted,
    PortConflict,
    UnknownPool,
)
from lbctl.ipam.poolset import NoEligiblePool
from lbctl.ipam.ranges import DEFAULT_POOL
from lbctl.model import (
    IPAM_RANGE_ANNOTATION,
    RESERVED,
    AddressError,
    IPAddress,
    ServiceView,
    parse_address,
)

FRONTEND_IP_ANNOTATION = "service.citrix.com/frontend-ip"


class PoolChoice(Protocol):
    """Which pools a Service may use (``lbctl.reconcile.pools.Pools``)."""

    def candidates(self, service: ServiceView, requested: str | None) -> tuple[str, ...]: ...

    def admits(self, pool: str, service: ServiceView) -> bool: ...

    def pool_of(self, address: IPAddress) -> str | None: ...


@dataclass(frozen=True)
class Request:
    pool: str | None
    """The pool the Service names (``ipam-range``); None: any pool assigned automatically."""
    address: IPAddress | None
    pools: tuple[str, ...] = (DEFAULT_POOL,)
    """The pools to take an address from, in order: the requested address's pool first."""


@dataclass(frozen=True)
class Claimed:
    address: IPAddress
    fresh: bool
    """True when the address was allocated now (not pending, shown or requested before)."""


@dataclass(frozen=True)
class Unsatisfied:
    reason: str
    """The Event reason (AllocationFailed, as MetalLB users know it)."""
    condition: str
    """The Vip condition reason: PoolExhausted, AddressInUse, PortConflict, UnknownPool,
    AddressNotInPool, InvalidRequest."""
    message: str
    waits_for_release: bool
    """True when freeing an address may satisfy it (exhausted pool, requested address held)."""


def request_of(service: ServiceView, choice: PoolChoice) -> Request | Unsatisfied:
    """What the Service asks for, or why the request itself is unusable (a malformed or
    contradictory request, or no pool that may serve it)."""
    pool = service.annotations.get(IPAM_RANGE_ANNOTATION, "").strip() or None
    text = service.annotations.get(FRONTEND_IP_ANNOTATION) or service.load_balancer_ip
    try:
        pools = choice.candidates(service, pool)
    except NoEligiblePool as err:
        if not text:
            message = f"{IPAM_RANGE_ANNOTATION}: {err}" if pool is not None else str(err)
            return Unsatisfied("AllocationFailed", err.reason, message, True)
        pools = ()
    if not text:
        return Request(pool, None, pools)
    source = (
        FRONTEND_IP_ANNOTATION
        if FRONTEND_IP_ANNOTATION in service.annotations
        else ("spec.loadBalancerIP")
    )
    try:
        address = parse_address(text)
    except AddressError as err:
        return Unsatisfied("AllocationFailed", "InvalidRequest", f"{source} {err}", False)
    if address.version != service.families[0]:
        message = (
            f"{source} {address} is IPv{address.version} but the Service's first IP family "
            f"(spec.ipFamilies) is IPv{service.families[0]}"
        )
        return Unsatisfied("AllocationFailed", "InvalidRequest", message, False)
    return _address_request(service, choice, pool, address, source, pools)


def _address_request(
    service: ServiceView,
    choice: PoolChoice,
    pool: str | None,
    address: IPAddress,
    source: str,
    pools: tuple[str, ...],
) -> Request | Unsatisfied:
    """An address request is served from the address's own pool, which must be the pool the
    Service names (if any) and admit it; a request the pools cannot tell yet (the address
    is in no pool) is judged by ``claim``."""
    home = choice.pool_of(address)
    if home is None:
        return Request(pool, address, pools)
    if pool is not None and pool != home:
        message = (
            f"{source} {address} is in pool {home!r} but {IPAM_RANGE_ANNOTATION} asks for "
            f"pool {pool!r}; change one of them"
        )
        return Unsatisfied("AllocationFailed", "InvalidRequest", message, False)
    if not choice.admits(home, service):
        message = (
            f"{source} {address} is in pool {home!r}, which does not admit this Service "
            "(its namespaceSelector or serviceSelector does not match)"
        )
        return Unsatisfied("AllocationFailed", "PoolNotAdmitted", message, True)
    return Request(pool, address, (home, *(p for p in pools if p != home)))


def claim(
    allocator: Allocator,
    service: ServiceView,
    request: Request,
    may_keep: Callable[[IPAddress], bool] = lambda _: True,
) -> Claimed | Unsatisfied:
    """Reserve an address for ``service.key`` in the allocator, or say why it cannot.

    An address the Service shows is held again unless ``may_keep`` says no (e.g. its record
    is being deleted and names an earlier Service of that name: it can never be joined).  A
    pending allocation that no longer matches the request must be released by the caller
    first (releasing wakes waiters, which is the caller's business).
    """
    key = service.key
    pending = allocator.get(key)
    if pending is not None and request.address in (None, pending.address):
        return Claimed(pending.address, fresh=False)
    if request.address is not None:
        result = _claim_requested(allocator, service, request.address)
        if isinstance(result, Unsatisfied) and result.waits_for_release:
            # Keep the address the Service shows (its Vip was lost) while the requested one
            # is held elsewhere; the move follows once that one is freed.
            return _keep_shown(allocator, service, may_keep) or result
        return result
    kept = _keep_shown(allocator, service, may_keep)
    if kept is not None:
        return kept
    # A Service that shows an address it may not hold again (its Vip was lost meanwhile,
    # and its key or ports no longer fit beside the address's holders) must move, as a
    # sharer whose ports changed does, rather than wait showing it beside them.
    version = service.families[0]
    leaving = any(
        a.version == version and allocator.pool_of(a) is not None for a in service.held_addresses()
    )
    try:
        allocation = allocator.allocate(
            key,
            request.pools,
            version=version,
            share_key=service.share_key,
            ports=service.ports,
            own_on_clash=leaving,
        )
        return Claimed(allocation.address, fresh=True)
    except PortConflict as err:
        protocol, port = err.port
        message = (
            f"cannot share {err.address} with {err.holder}, which already uses port "
            f"{port}/{protocol} (key {service.share_key!r})"
        )
        return Unsatisfied("AllocationFailed", "PortConflict", message, True)
    except UnknownPool as err:  # the pools changed since the request was read
        message = f"{IPAM_RANGE_ANNOTATION}: {err}"
        return Unsatisfied("AllocationFailed", "UnknownPool", message, True)
    except PoolExhausted as err:
        return Unsatisfied("AllocationFailed", "PoolExhausted", str(err), True)


def shown_to_keep(allocator: Allocator, service: ServiceView, version: int) -> list[IPAddress]:
    """The addresses of IP ``version`` the Service shows that it may hold again (its Vip was
    lost): one in a pool, or one outside every pool whose record names the Service (its pool
    was deleted or shrunk while it held it: an address in use is never moved for that)."""
    return [
        address
        for address in service.held_addresses()
        if address.version == version
        and (
            allocator.pool_of(address) is not None
            or service.key in (allocator.recorded_for(address) or ())
        )
    ]


def _keep_shown(
    allocator: Allocator, service: ServiceView, may_keep: Callable[[IPAddress], bool]
) -> Claimed | None:
    """Hold again an address the Service already shows (``shown_to_keep``), if nobody else
    may hold it."""
    for address in shown_to_keep(allocator, service, service.families[0]):
        if not may_keep(address):
            continue
        try:
            held = allocator.assign(
                service.key, address, share_key=service.share_key, ports=service.ports
            )
        except AddressInUse:
            continue
        return Claimed(held.address, fresh=False)
    return None


def _claim_requested(
    allocator: Allocator, service: ServiceView, address: IPAddress
) -> Claimed | Unsatisfied:
    home = allocator.pool_of(address)
    if home is None:
        pools = ", ".join(allocator.pool_names)
        return Unsatisfied(
            "AllocationFailed",
            "AddressNotInPool",
            f"requested address {address} is not in any pool ({pools})",
            True,  # a pool may come to hold it
        )
    pool = allocator.pool(home)
    if pool is not None and pool.disabled:
        return Unsatisfied(
            "AllocationFailed",
            "PoolDisabled",
            f"requested address {address} is in pool {home!r}, which is disabled",
            True,
        )
    try:
        allocation = allocator.assign(
            service.key, address, share_key=service.share_key, ports=service.ports
        )
        return Claimed(allocation.address, fresh=True)
    except PortConflict as err:
        return Unsatisfied("AllocationFailed", "PortConflict", f"requested address {err}", True)
    except AddressInUse as err:
        claimed = _claim_reservation(allocator, service, address)
        if claimed is not None:
            return claimed
        return Unsatisfied(
            "AllocationFailed",
            "AddressInUse",
            f"requested address {address} is held by {err.holder}; waiting until it is freed",
            True,
        )


def _claim_reservation(
    allocator: Allocator, service: ServiceView, address: IPAddress
) -> Claimed | None:
    """Claim an address that only a reservation Vip of the Service's namespace holds."""
    holders = allocator.holders(address)
    key = holders[0].share_key if len(holders) == 1 else None
    if key is None or not key.startswith(f"{service.namespace}/{RESERVED}"):
        return None
    allocation = allocator.assign(service.key, address, share_key=key, ports=service.ports)
    return Claimed(allocation.address, fresh=True)
