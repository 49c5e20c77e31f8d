"""The address allocator: pure, synchronous, deterministic (lowest free address first).

Every allocation has an owner (the ``namespace/name`` of its Vip) and an optional token (the
Vip's UID once the Vip exists), so a late delete event for an old Vip of the same name can be
told apart from the current holder.  Nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from lbctl.ipam.freelist import FreeList
from lbctl.ipam.ranges import DEFAULT_POOL, IPAddress, Pool


class AllocationError(Exception):
    """An allocation request that cannot be satisfied now."""


class UnknownPool(AllocationError):
    pass


class PoolExhausted(AllocationError):
    pass


class AddressInUse(AllocationError):
    def __init__(self, address: IPAddress, holder: str) -> None:
        super().__init__(f"{address} is held by {holder}")
        self.address = address
        self.holder = holder


@dataclass(frozen=True)
class Allocation:
    owner: str
    address: IPAddress
    pool: str | None
    """The pool the address lies in; None for an address outside every pool (kept, not moved)."""
    token: str | None = None


@dataclass(frozen=True)
class PoolStats:
    name: str
    version: int
    total: int
    in_use: int

    @property
    def free(self) -> int:
        return self.total - self.in_use


class Allocator:
    def __init__(self, pools: tuple[Pool, ...]) -> None:
        self._pools = {pool.name: pool for pool in pools}
        self._free: dict[tuple[str, int], FreeList] = {}
        self._total: dict[tuple[str, int], int] = {}
        for pool in pools:
            for version in sorted({r.version for r in pool.ranges}):
                ranges = [(r.first, r.last) for r in pool.ranges if r.version == version]
                self._free[(pool.name, version)] = FreeList(ranges)
                self._total[(pool.name, version)] = sum(b - a + 1 for a, b in ranges)
        self._by_owner: dict[str, Allocation] = {}
        self._by_address: dict[IPAddress, Allocation] = {}

    @property
    def pool_names(self) -> list[str]:
        return list(self._pools)

    def pool_of(self, address: IPAddress) -> str | None:
        for pool in self._pools.values():
            if pool.contains(address):
                return pool.name
        return None

    def get(self, owner: str) -> Allocation | None:
        return self._by_owner.get(owner)

    def holder(self, address: IPAddress) -> Allocation | None:
        return self._by_address.get(address)

    def allocate(self, owner: str, pool: str = DEFAULT_POOL, version: int = 4) -> Allocation:
        """Give ``owner`` the lowest free address of ``pool`` (its current one if it has one)."""
        current = self._by_owner.get(owner)
        if current is not None:
            return current
        if pool not in self._pools:
            raise UnknownPool(f"no pool named {pool!r} (pools: {', '.join(self._pools)})")
        free = self._free.get((pool, version))
        lowest = free.lowest() if free else None
        if free is None or lowest is None:
            raise PoolExhausted(f"pool {pool!r} has no free IPv{version} address")
        free.take(lowest)
        address = ipaddress.ip_address(lowest)
        return self._record(Allocation(owner, address, pool))

    def assign(self, owner: str, address: IPAddress, token: str | None = None) -> Allocation:
        """Record that ``owner`` holds ``address``; idempotent for the same owner."""
        held = self._by_address.get(address)
        if held is not None and held.owner != owner:
            raise AddressInUse(address, held.owner)
        current = self._by_owner.get(owner)
        if current is not None and current.address != address:
            self.release(owner)
        if held is not None and held.owner == owner:
            if token is not None and held.token != token:
                return self._record(Allocation(owner, address, held.pool, token))
            return held
        pool = self.pool_of(address)
        if pool is not None:
            self._free[(pool, address.version)].take(int(address))
        return self._record(Allocation(owner, address, pool, token))

    def bind_token(self, owner: str, token: str) -> None:
        current = self._by_owner.get(owner)
        if current is not None and current.token != token:
            self._record(Allocation(current.owner, current.address, current.pool, token))

    def release(self, owner: str, token: str | None = None) -> Allocation | None:
        """Free ``owner``'s address.  With ``token``, only if the allocation carries it."""
        current = self._by_owner.get(owner)
        if current is None or (token is not None and current.token != token):
            return None
        del self._by_owner[owner]
        del self._by_address[current.address]
        if current.pool is not None:
            self._free[(current.pool, current.address.version)].give(int(current.address))
        return current

    def _record(self, allocation: Allocation) -> Allocation:
        self._by_owner[allocation.owner] = allocation
        self._by_address[allocation.address] = allocation
        return allocation

    def stats(self) -> list[PoolStats]:
        return [
            PoolStats(
                pool,
                version,
                self._total[(pool, version)],
                self._total[(pool, version)] - free.free,
            )
            for (pool, version), free in self._free.items()
        ]
