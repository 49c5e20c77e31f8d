"""The address allocator: pure, synchronous, deterministic (lowest free address first).

Every allocation has an owner (the ``namespace/name`` of its Vip) and an optional token (the
Vip's UID once the Vip exists), so a late delete event for an old Vip of the same name can be
told apart from the current holder.

Besides allocations, the allocator knows which addresses have a durable record in the
apiserver (one ``VipAddress`` per address, see ``lbctl.reconcile.addresses``) and for whom.
A recorded address is never free, whatever this process holds in memory: only the holders the
record names (or sharers joining them under the same key) may take it.  Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lbctl.interning import addresses
from lbctl.ipam.freelist import FreeList
from lbctl.ipam.ranges import DEFAULT_POOL, IPAddress, Pool
from lbctl.setmap import SetMap


class AllocationError(Exception):
    """An allocation request that cannot be satisfied now."""


class UnknownPool(AllocationError):
    pass


class PoolExhausted(AllocationError):
    pass


class AddressInUse(AllocationError):
    def __init__(self, address: IPAddress, holder: str, detail: str = "") -> None:
        super().__init__(f"{address} is held by {holder}{detail}")
        self.address = address
        self.holder = holder


class PortConflict(AddressInUse):
    """Sharing refused: another owner with the same sharing key uses this (protocol, port)."""

    def __init__(self, address: IPAddress, holder: str, port: Port) -> None:
        super().__init__(address, holder, f", which already uses port {port[1]}/{port[0]}")
        self.port = port


Port = tuple[str, int]
"""(protocol, port), e.g. ("TCP", 80)."""


def owner_key(owner: str) -> str:
    """The Service or Vip key behind an allocator owner: ``ns/name#secondary`` → ``ns/name``."""
    return owner.split("#", 1)[0]


@dataclass(frozen=True, slots=True)
class Allocation:
    owner: str
    address: IPAddress
    pool: str | None
    """The pool the address lies in; None for an address outside every pool (kept, not moved)."""
    token: str | None = None
    share_key: str | None = None
    """Owners with the same key may share the address when their ports do not overlap."""
    ports: frozenset[Port] = frozenset()


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
        self._reset(pools)

    def clear(self) -> None:
        """Forget every allocation and record: the index is about to be rebuilt."""
        self._reset(tuple(self._pools.values()))

    def _reset(self, pools: tuple[Pool, ...]) -> None:
        self._index_pools(pools)
        self._by_owner: dict[str, Allocation] = {}
        self._by_address: SetMap[IPAddress, str] = SetMap()
        """Address → the owners holding it (their allocations are in ``_by_owner``); nearly
        always one, held bare (a dict per address cost 230 bytes)."""
        self._shared: dict[str, set[IPAddress]] = {}
        self._records: dict[IPAddress, tuple[tuple[str, ...], str | None, bool]] = {}
        """Address → the keys (``namespace/name``) its durable record names as holders, the
        record's sharing key, and whether the record is being deleted (it then admits no
        holder it does not name: only they may hold the address until it goes)."""
        self._recorded_ports: dict[IPAddress, Mapping[str, frozenset[Port]]] = {}
        """Address → holder key → the ports its record gives that holder (the record names
        other instances' sharers too, which hold nothing in this index)."""
        self._shown_elsewhere: dict[IPAddress, set[str]] = {}
        """Address → the Services lbctl does not manage that show it (``block``)."""

    def _index_pools(self, pools: tuple[Pool, ...]) -> None:
        """Free lists per (pool, family) and a sorted interval index for ``pool_of``; the
        pools' intervals never overlap (``lbctl.ipam.poolset`` keeps overlapping ones out)."""
        self._pools = {pool.name: pool for pool in pools}
        self._free: dict[tuple[str, int], FreeList] = {}
        self._total: dict[tuple[str, int], int] = {}
        bounds: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
        for pool in pools:
            for version in pool.versions:
                intervals = pool.intervals(version)
                self._free[(pool.name, version)] = FreeList(intervals)
                self._total[(pool.name, version)] = sum(b - a + 1 for a, b in intervals)
                bounds[version].extend((a, b, pool.name) for a, b in intervals)
        self._bounds = {v: sorted(found) for v, found in bounds.items()}
        self._firsts = {v: [a for a, _, _ in found] for v, found in self._bounds.items()}

    def set_pools(self, pools: tuple[Pool, ...]) -> None:
        """Replace the pools live: every allocation, record and shown address stays (one now
        outside every pool is kept, with pool None), and the free lists hold the rest."""
        self._index_pools(pools)
        in_use = set(self._by_address) | set(self._records) | set(self._shown_elsewhere)
        for address in in_use:
            self._take(address)
        for owner, allocation in list(self._by_owner.items()):
            pool = self.pool_of(allocation.address)
            if allocation.pool != pool:
                self._by_owner[owner] = dataclasses.replace(allocation, pool=pool)

    @property
    def pool_names(self) -> list[str]:
        return list(self._pools)

    def pool(self, name: str) -> Pool | None:
        return self._pools.get(name)

    @property
    def pools(self) -> tuple[Pool, ...]:
        return tuple(self._pools.values())

    def pool_of(self, address: IPAddress) -> str | None:
        firsts = self._firsts[address.version]
        index = bisect_right(firsts, int(address)) - 1
        if index < 0:
            return None
        _, last, name = self._bounds[address.version][index]
        return name if int(address) <= last else None

    def get(self, owner: str) -> Allocation | None:
        return self._by_owner.get(owner)

    def holders(self, address: IPAddress) -> list[Allocation]:
        """Every owner of ``address`` (several only when it is shared), by owner name."""
        return [self._by_owner[owner] for owner in sorted(self._by_address.get(address))]

    def holder(self, address: IPAddress) -> Allocation | None:
        holders = self.holders(address)
        return holders[0] if holders else None

    def recorded_for(self, address: IPAddress) -> frozenset[str] | None:
        """The holders the address's durable record names; None when it has no record."""
        record = self._records.get(address)
        return frozenset(record[0]) if record is not None else None

    def record(
        self,
        address: IPAddress,
        holders: frozenset[str],
        share_key: str | None = None,
        closed: bool = False,
        ports: Mapping[str, frozenset[Port]] | None = None,
    ) -> None:
        """The apiserver records ``address`` for ``holders`` (``namespace/name`` keys), shared
        under ``share_key`` with the ``ports`` of each holder: take it out of the free list
        until ``unrecord``.  ``closed``: the record is being deleted, so no one else may join
        it, not even under its key."""
        if not self._in_use(address):
            self._take(address)
        # The holders as a tuple: a set of one, as nearly every record names, is four times
        # its size (216 bytes) and there is a record per address in use.
        self._records[address] = (tuple(holders), share_key, closed)
        given = {key: p for key, p in (ports or {}).items() if p}
        if given:
            self._recorded_ports[address] = given
        else:  # as most records: no dict of empty port sets kept per address
            self._recorded_ports.pop(address, None)

    def unrecord(self, address: IPAddress) -> bool:
        """The address's durable record is gone; True when that made the address free."""
        self._recorded_ports.pop(address, None)
        if self._records.pop(address, None) is None or self._in_use(address):
            return False
        return self._give(address)

    def block(self, address: IPAddress, by: str) -> None:
        """Service ``by``, which lbctl does not manage (another controller's, another class's),
        shows ``address``: while it does (``unblock``) and no record names holders of the
        address, nobody is given it."""
        if not self._in_use(address):
            self._take(address)
        self._shown_elsewhere.setdefault(address, set()).add(by)

    def unblock(self, address: IPAddress, by: str) -> bool:
        """``by`` no longer shows ``address``; True when that made the address free."""
        showing = self._shown_elsewhere.get(address)
        if showing is None or by not in showing:
            return False
        showing.discard(by)
        if showing:
            return False
        del self._shown_elsewhere[address]
        return not self._in_use(address) and self._give(address)

    def _in_use(self, address: IPAddress) -> bool:
        return bool(
            address in self._by_address
            or address in self._records
            or address in self._shown_elsewhere
        )

    def _take(self, address: IPAddress) -> None:
        pool = self.pool_of(address)
        if pool is not None:
            self._free[(pool, address.version)].take(int(address))

    def _give(self, address: IPAddress) -> bool:
        pool = self.pool_of(address)
        return pool is not None and self._free[(pool, address.version)].give(int(address))

    def _check_join(
        self, owner: str, address: IPAddress, share_key: str | None, ports: frozenset[Port]
    ) -> None:
        """Raise unless ``owner`` may hold ``address`` beside its current owners: those of
        this index, and the holders its record names (with the ports it gives them)."""
        me = owner_key(owner)
        record = self._records.get(address)
        named = frozenset(record[0] if record is not None else ())
        showing = self._shown_elsewhere.get(address, set()) - {me}
        if showing - named and me not in named:
            # Shown by a Service the record does not name: not lbctl's to give (a holder the
            # record names keeps it, and says so).
            raise AddressInUse(address, ", ".join(sorted(showing - named)), ", which shows it")
        if record is not None and record[2] and me not in named:
            holders = ", ".join(sorted(named)) or "a VipAddress record"
            raise AddressInUse(address, holders, " (its record is being deleted)")
        if record is not None and me not in named and named - {me} and record[1] != share_key:
            # The apiserver admits a new holder beside the named ones only under the record's
            # key, whatever the holders' own keys say (e.g. the record's key edited by hand).
            raise AddressInUse(address, ", ".join(sorted(named)), " under another sharing key")
        others = [a for a in self.holders(address) if a.owner != owner]
        # A holder the record names is judged by this index's holders only (as the record
        # admitted it; a record edited by hand must not lock out its own holders).
        recorded = set() if me in named else named - {me} - {owner_key(a.owner) for a in others}
        if others and (share_key is None or any(a.share_key != share_key for a in others)):
            raise AddressInUse(address, others[0].owner)
        if recorded and (share_key is None or record is None or record[1] != share_key):
            raise AddressInUse(address, ", ".join(sorted(recorded)))
        for other in others:
            overlap = other.ports & ports
            if overlap:
                raise PortConflict(address, other.owner, min(overlap))
        given = self._recorded_ports.get(address, {})
        for key in sorted(recorded):
            overlap = given.get(key, frozenset()) & ports
            if overlap:
                raise PortConflict(address, key, min(overlap))

    def allocate(
        self,
        owner: str,
        pool: str | Sequence[str] = DEFAULT_POOL,
        version: int = 4,
        share_key: str | None = None,
        ports: frozenset[Port] = frozenset(),
        own_on_clash: bool = False,
    ) -> Allocation:
        """Give ``owner`` the lowest free address of ``pool`` (its current one if it has one);
        ``pool`` may be a sequence of pool names, tried in order (the first with room wins).

        With ``share_key``, the owner joins the lowest address already shared under that key
        in those pools; if every such address already uses one of its ports, that is a
        ``PortConflict`` (the key means "share", so it never silently gets an address of its
        own), unless ``own_on_clash``: then it gets a free address, shared under the key from
        then on (for a sharer whose ports changed, which must leave the address it shows).
        A disabled pool hands out nothing new (``PoolExhausted`` naming it)."""
        current = self._by_owner.get(owner)
        if current is not None:
            return current
        names = (pool,) if isinstance(pool, str) else tuple(pool)
        for name in names:
            if name not in self._pools:
                raise UnknownPool(f"no pool named {name!r} (pools: {', '.join(self._pools)})")
        if share_key is not None:
            refused: PortConflict | None = None
            for address in sorted(self._shared.get(share_key, ()), key=int):
                if address.version != version or self.pool_of(address) not in names:
                    continue
                try:
                    self._check_join(owner, address, share_key, ports)
                except PortConflict as err:
                    refused = refused or err
                    continue
                except AddressInUse:
                    continue  # e.g. its record is being deleted: closed to new sharers
                allocation = Allocation(owner, address, self.pool_of(address), None, share_key)
                return self._record(dataclasses.replace(allocation, ports=ports))
            if refused is not None and not own_on_clash:
                raise refused
        for name in names:
            free = self._free.get((name, version))
            lowest = free.lowest() if free is not None and not self._pools[name].disabled else None
            if free is None or lowest is None:
                continue
            free.take(lowest)
            # By the pool's family: ip_address() reads an int below 2**32 as IPv4, so a pool
            # inside ::/96 would hand out 0.0.0.5 for ::5.
            family = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
            address = addresses(family(lowest))
            return self._record(Allocation(owner, address, name, None, share_key, ports))
        raise PoolExhausted(_exhausted(names, version, self._pools))

    def assign(
        self,
        owner: str,
        address: IPAddress,
        token: str | None = None,
        share_key: str | None = None,
        ports: frozenset[Port] = frozenset(),
    ) -> Allocation:
        """Record that ``owner`` holds ``address``; idempotent for the same owner.  A held
        address is joined only under the same ``share_key`` with no overlapping port."""
        self._check_join(owner, address, share_key, ports)
        current = self._by_owner.get(owner)
        if current is not None and current.address != address:
            self.release(owner)
        held = self._by_owner.get(owner)  # released above unless it holds ``address``
        if held is not None and held.address == address:
            wanted = Allocation(owner, address, held.pool, token or held.token, share_key, ports)
            return held if wanted == held else self._record(wanted)
        if not self._in_use(address):
            self._take(address)
        return self._record(
            Allocation(owner, address, self.pool_of(address), token, share_key, ports)
        )

    def bind_token(self, owner: str, token: str) -> None:
        current = self._by_owner.get(owner)
        if current is not None and current.token != token:
            self._record(
                Allocation(
                    current.owner, current.address, current.pool, token,
                    current.share_key, current.ports,
                )
            )  # fmt: skip

    def release(self, owner: str, token: str | None = None) -> Allocation | None:
        """Free ``owner``'s address.  With ``token``, only if the allocation carries it."""
        current = self._by_owner.get(owner)
        if current is None or (token is not None and current.token != token):
            return None
        del self._by_owner[owner]
        emptied = self._by_address.discard(current.address, owner)
        self._forget_share(current.share_key, current.address)
        if not emptied:
            return current
        if not self._in_use(current.address):
            self._give(current.address)
        return current

    def set_ports(self, owner: str, ports: frozenset[Port]) -> Allocation:
        """Change the ports ``owner`` uses on its (shared) address; ``PortConflict`` if another
        sharer uses one of them, and then nothing changes."""
        current = self._by_owner[owner]
        self._check_join(owner, current.address, current.share_key, ports)
        return self._record(dataclasses.replace(current, ports=ports))

    def set_share_key(
        self, owner: str, share_key: str | None, ports: frozenset[Port]
    ) -> Allocation:
        """Re-key the allocation of ``owner`` (its sharing key changed), which holds its
        address alone or beside sharers that all took the new key too (the caller checked the
        apiserver): later sharers join it under ``share_key`` (None: nobody may)."""
        current = self._by_owner[owner]
        kept = ports if share_key is not None else frozenset()
        updated = self._record(dataclasses.replace(current, share_key=share_key, ports=kept))
        self._forget_share(current.share_key, current.address)
        return updated

    def _record(self, allocation: Allocation) -> Allocation:
        previous = self._by_owner.get(allocation.owner)
        self._by_owner[allocation.owner] = allocation
        self._by_address.add(allocation.address, allocation.owner)
        if allocation.share_key is not None:
            self._shared.setdefault(allocation.share_key, set()).add(allocation.address)
        if previous is not None and previous.share_key != allocation.share_key:
            self._forget_share(previous.share_key, previous.address)
        return allocation

    def _forget_share(self, share_key: str | None, address: IPAddress) -> None:
        """Stop offering ``address`` under ``share_key`` once no holder of it uses that key
        (otherwise a later sharer could join an address the free list thinks is free)."""
        if share_key is None:
            return
        if any(self._by_owner[o].share_key == share_key for o in self._by_address.get(address)):
            return
        addresses = self._shared.get(share_key)
        if addresses is not None:
            addresses.discard(address)
            if not addresses:
                del self._shared[share_key]

    def usage(self, pools: Sequence[Pool]) -> dict[tuple[str, int], tuple[int, int]]:
        """(pool, family) → (total, in use) for ``pools`` (in effect here or not), counting
        only what every lbctl instance knows alike, whatever namespaces it watches: the
        addresses with a durable record (not this process's allocations in flight, nor the
        Services it happens to see)."""
        used: dict[int, list[int]] = {4: [], 6: []}
        for address in self._records:
            used[address.version].append(int(address))
        for found in used.values():
            found.sort()
        counts: dict[tuple[str, int], tuple[int, int]] = {}
        for pool in pools:
            for version in pool.versions:
                total = in_use = 0
                for first, last in pool.intervals(version):
                    total += last - first + 1
                    found = used[version]
                    in_use += bisect_right(found, last) - bisect_right(found, first - 1)
                counts[(pool.name, version)] = (total, in_use)
        return counts

    def in_use_outside(self) -> dict[int, int]:
        """IP family → how many addresses in use lie outside every pool (kept, not moved)."""
        counts = {4: 0, 6: 0}
        for address in set(self._by_address) | set(self._records):
            if self.pool_of(address) is None:
                counts[address.version] += 1
        return counts

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


def _exhausted(names: tuple[str, ...], version: int, pools: Mapping[str, Pool]) -> str:
    disabled = [n for n in names if pools[n].disabled]
    detail = f" (disabled: {', '.join(disabled)})" if disabled else ""
    if len(names) == 1:
        return f"pool {names[0]!r} has no free IPv{version} address{detail}"
    return f"pools {', '.join(names)} have no free IPv{version} address{detail}"
