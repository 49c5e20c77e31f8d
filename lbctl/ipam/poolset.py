"""The pools in effect: ``VIP_RANGE`` pools plus ``VipPool`` objects, and which of them a
Service may use.  Pure: objects come in as parsed JSON, decisions go out as values.

How the two sources combine (the README says the same):

* ``VIP_RANGE`` pools count as older than every ``VipPool`` object: on a name clash or an
  overlap the ``VIP_RANGE`` pool wins and the object is not used (its status says why).
* Between objects, the older (``creationTimestamp``, then name) wins an overlap.
* A Service without a pool request may use every pool with ``autoAssign`` whose selectors match
  it, lower ``priority`` first, pools without a priority last, then older first.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lbctl.ipam.ranges import AddressRange, Pool, RangeError, parse_range
from lbctl.ipam.selector import LabelSelector, SelectorError

VIP_POOL = "VipPool"

READY = "Ready"
OVERLAP = "Overlap"
NAME_CONFLICT = "NameConflict"
INVALID = "Invalid"
EXHAUSTED = "Exhausted"
DISABLED = "Disabled"


@dataclass(frozen=True)
class PoolObject:
    """One ``VipPool`` as read: its pool, or why its spec cannot be used."""

    name: str
    created: str
    generation: int
    pool: Pool | None
    invalid: str | None = None


@dataclass(frozen=True)
class PoolSet:
    """The pools in effect, in age order, and each object's reason for being left out."""

    pools: tuple[Pool, ...]
    left_out: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Object name → (reason, message) for an object whose pool is not in effect."""


AVOID_BUGGY_LIMIT = 2**20
"""IPv4 addresses a pool with ``avoidBuggyIPs`` may hold: each /24 becomes an interval of its
own, and pools are re-indexed on every change (a /8 takes ~0.2 s, a /0 would take minutes)."""


class NoEligiblePool(ValueError):
    """No pool may serve the Service; the message says why in the user's terms, ``reason``
    is the Vip condition reason (``UnknownPool`` or ``NoEligiblePool``)."""

    def __init__(self, message: str, reason: str = "NoEligiblePool") -> None:
        super().__init__(message)
        self.reason = reason


def parse_pool_object(raw: Mapping[str, Any]) -> PoolObject:
    """Read a ``VipPool``; a spec the CRD schema let through but lbctl cannot use (a range it
    refuses, a bad selector) is kept as ``invalid`` with a message naming the element."""
    meta = raw.get("metadata", {})
    name = str(meta.get("name", ""))
    created = str(meta.get("creationTimestamp") or "")
    generation = int(meta.get("generation") or 0)
    spec = raw.get("spec") or {}
    try:
        pool = _pool(name, spec)
    except (RangeError, SelectorError) as err:
        message = str(err).replace("VIP_RANGE: ", "spec.addresses: ")
        return PoolObject(name, created, generation, None, message)
    return PoolObject(name, created, generation, pool)


def _pool(name: str, spec: Mapping[str, Any]) -> Pool:
    addresses = spec.get("addresses")
    if not isinstance(addresses, list) or not addresses:
        raise RangeError("spec.addresses must list at least one range")
    ranges: list[AddressRange] = []
    for item in addresses:
        if not isinstance(item, str):
            raise RangeError(f"spec.addresses: {item!r} is not a string")
        ranges.append(parse_range(item))
    _reject_self_overlap(ranges)
    avoid_buggy = bool(spec.get("avoidBuggyIPs", False))
    size = sum(r.size for r in ranges if r.version == 4)
    if avoid_buggy and size > AVOID_BUGGY_LIMIT:
        raise RangeError(
            f"spec.avoidBuggyIPs: the IPv4 blocks hold {size:,} addresses; at most "
            f"{AVOID_BUGGY_LIMIT:,} (a /12) can skip .0 and .255"
        )
    priority = spec.get("priority")
    return Pool(
        name,
        tuple(ranges),
        auto_assign=bool(spec.get("autoAssign", True)),
        avoid_buggy_ips=avoid_buggy,
        priority=int(priority) if isinstance(priority, int) else None,
        disabled=bool(spec.get("disabled", False)),
        namespace_selector=_selector(spec, "namespaceSelector"),
        service_selector=_selector(spec, "serviceSelector"),
        origin=VIP_POOL,
    )


def _selector(spec: Mapping[str, Any], name: str) -> LabelSelector | None:
    raw = spec.get(name)
    return None if raw is None else LabelSelector.parse(raw, f"spec.{name}")


def _reject_self_overlap(ranges: list[AddressRange]) -> None:
    ordered = sorted(ranges)
    for left, right in itertools.pairwise(ordered):
        if left.version == right.version and right.first <= left.last:
            raise RangeError(f"VIP_RANGE: {right.source!r} overlaps {left.source!r}")


class _Claimed:
    """Intervals already taken by pools in effect, per family, for overlap checks."""

    def __init__(self) -> None:
        self._spans: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}

    def overlap(self, pool: Pool) -> str | None:
        for version in pool.versions:
            spans = self._spans[version]
            firsts = [a for a, _, _ in spans]
            for first, last in pool.intervals(version):
                index = bisect_right(firsts, last) - 1
                if index >= 0 and spans[index][1] >= first:
                    return spans[index][2]
        return None

    def add(self, pool: Pool) -> None:
        for version in pool.versions:
            self._spans[version].extend((a, b, pool.name) for a, b in pool.intervals(version))
            self._spans[version].sort()


def combine(static: tuple[Pool, ...], objects: list[PoolObject]) -> PoolSet:
    """The pools in effect: every ``VIP_RANGE`` pool, then each valid object, oldest first,
    unless its name or one of its addresses is already taken."""
    claimed = _Claimed()
    for pool in static:
        claimed.add(pool)
    pools = list(static)
    names = {pool.name: pool.origin for pool in static}
    left_out: dict[str, tuple[str, str]] = {}
    for obj in sorted(objects, key=lambda o: (o.created, o.name)):
        if obj.pool is None:
            left_out[obj.name] = (INVALID, obj.invalid or "invalid spec")
            continue
        if obj.name in names:
            message = f"a VIP_RANGE pool is named {obj.name!r}; VIP_RANGE wins a name clash"
            left_out[obj.name] = (NAME_CONFLICT, message)
            continue
        other = claimed.overlap(obj.pool)
        if other is not None:
            source = "VIP_RANGE pool" if names.get(other) == "VIP_RANGE" else "older pool"
            message = f"addresses overlap {source} {other!r}; this pool is not used"
            left_out[obj.name] = (OVERLAP, message)
            continue
        claimed.add(obj.pool)
        pools.append(obj.pool)
        names[obj.name] = VIP_POOL
    return PoolSet(tuple(pools), left_out)


def candidates(
    pools: tuple[Pool, ...] | list[Pool],
    requested: str | None,
    namespace: str,
    namespace_labels: Mapping[str, str],
    labels: Mapping[str, str],
) -> tuple[str, ...]:
    """The pools a Service may get an address from, in the order to try them.

    ``requested``: the pool the Service names (then only that one, whatever its
    ``autoAssign``).  Raises ``NoEligiblePool`` when none may serve it."""
    if requested is not None:
        pool = next((p for p in pools if p.name == requested), None)
        if pool is None:
            names = ", ".join(p.name for p in pools) or "none"
            raise NoEligiblePool(f"no pool named {requested!r} (pools: {names})", "UnknownPool")
        if not pool.admits(namespace_labels, labels):
            raise NoEligiblePool(
                f"pool {requested!r} does not admit this Service (its namespaceSelector or "
                f"serviceSelector does not match namespace {namespace!r} or the Service's labels)"
            )
        return (requested,)
    order = {pool.name: index for index, pool in enumerate(pools)}
    eligible = [p for p in pools if p.auto_assign and p.admits(namespace_labels, labels)]
    if not eligible:
        automatic = [p.name for p in pools if p.auto_assign]
        detail = (
            f"the pools with autoAssign ({', '.join(automatic)}) do not admit it by selector"
            if automatic
            else "no pool has autoAssign; name one with service.citrix.com/ipam-range"
        )
        raise NoEligiblePool(f"no pool is assigned automatically to this Service: {detail}")
    eligible.sort(key=lambda p: (p.priority is None, p.priority or 0, order[p.name]))
    return tuple(p.name for p in eligible)
