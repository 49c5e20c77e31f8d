"""Property tests: any sequence of allocator operations keeps the invariants, and rebuilding
from the records it produced reproduces its state exactly."""

from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from lbctl.ipam.allocator import AddressInUse, AllocationError, Allocator
from lbctl.ipam.ranges import Pool, parse_vip_range

POOLS = parse_vip_range('[{"small": ["10.9.0.1 - 10.9.0.4"]}, ["10.8.0.0/29", "2001:db8::/125"]]')
OWNERS = [f"ns/s{i}" for i in range(8)]
ADDRESSES = [ipaddress.ip_address(a) for a in ("10.8.0.3", "10.9.0.2", "2001:db8::5", "192.0.2.1")]

operation = st.one_of(
    st.tuples(st.just("allocate"), st.sampled_from(OWNERS), st.sampled_from(["default", "small"]),
              st.sampled_from([4, 6])),
    st.tuples(st.just("assign"), st.sampled_from(OWNERS), st.sampled_from(ADDRESSES)),
    st.tuples(st.just("release"), st.sampled_from(OWNERS)),
    st.tuples(st.just("share"), st.sampled_from(OWNERS), st.sampled_from(["ns/a", "ns/b"]),
              st.frozensets(st.sampled_from([("TCP", 80), ("TCP", 443), ("UDP", 53)]), max_size=2)),
)  # fmt: skip


def apply_op(allocator: Allocator, op: tuple[object, ...]) -> None:
    """One generated operation; refusals are part of the game."""
    try:
        if op[0] == "allocate":
            allocator.allocate(str(op[1]), pool=str(op[2]), version=int(str(op[3])))
        elif op[0] == "share":
            allocator.allocate(str(op[1]), share_key=str(op[2]), ports=op[3])  # type: ignore[arg-type]
        elif op[0] == "assign":
            allocator.assign(str(op[1]), op[2])  # type: ignore[arg-type]
        else:
            allocator.release(str(op[1]))
    except (AllocationError, AddressInUse):
        pass


def snapshot(allocator: Allocator) -> dict[str, tuple[str, str | None]]:
    return {
        owner: (str(a.address), a.pool)
        for owner in OWNERS
        if (a := allocator.get(owner)) is not None
    }


def rebuild(allocator: Allocator, pools: tuple[Pool, ...]) -> Allocator:
    """An index built afresh from ``pools`` and the holders ``allocator`` has, as a restart
    rebuilds it from the records."""
    rebuilt = Allocator(pools)
    for owner in sorted(snapshot(allocator)):
        held = allocator.get(owner)
        assert held is not None
        rebuilt.assign(owner, held.address, share_key=held.share_key, ports=held.ports)
    return rebuilt


@settings(max_examples=300)
@given(st.lists(operation, max_size=40))
def test_invariants_hold_and_rebuild_reproduces_the_state(ops: list[tuple[object, ...]]) -> None:
    """No address twice, every pooled address inside its pool, counts exact, rebuild equal."""
    allocator = Allocator(POOLS)
    for op in ops:
        apply_op(allocator, op)
        state = snapshot(allocator)
        for owner, (address, pool) in state.items():
            parsed = ipaddress.ip_address(address)
            assert allocator.pool_of(parsed) == pool
            sharers = allocator.holders(parsed)
            assert owner in [a.owner for a in sharers]
            if len(sharers) > 1:
                assert len({a.share_key for a in sharers}) == 1, "sharers with different keys"
                assert sharers[0].share_key is not None, "an address held twice"
                ports = [p for a in sharers for p in a.ports]
                assert len(ports) == len(set(ports)), "two sharers on one port"
        in_use = sum(s.in_use for s in allocator.stats())
        assert in_use == len({address for address, pool in state.values() if pool is not None})

    rebuilt = rebuild(allocator, POOLS)
    assert snapshot(rebuilt) == snapshot(allocator)
    assert rebuilt.stats() == allocator.stats()
    for pool, version in (("default", 4), ("default", 6), ("small", 4)):
        try:
            expected = str(allocator.allocate("ns/next", pool=pool, version=version).address)
        except AllocationError:
            expected = "exhausted"
        try:
            got = str(rebuilt.allocate("ns/next", pool=pool, version=version).address)
        except AllocationError:
            got = "exhausted"
        assert got == expected, "the next allocation differs after a rebuild"
        allocator.release("ns/next")
        rebuilt.release("ns/next")


CHANGED_POOLS = parse_vip_range(
    '[{"small": ["10.9.0.1 - 10.9.0.2"]}, ["10.8.0.4/30", "10.8.1.0/30", "2001:db8::/126"]]'
)


@settings(max_examples=200)
@given(
    st.lists(operation, max_size=40),
    st.lists(
        st.tuples(st.sampled_from(["default", "small"]), st.sampled_from([4, 6])), max_size=12
    ),
)
def test_a_pool_change_never_moves_or_duplicates_an_address(
    ops: list[tuple[object, ...]], later: list[tuple[str, int]]
) -> None:
    """Restarting with other pools keeps every held address with its owner (in a pool or
    not), and new allocations never hand out one of them."""
    allocator = Allocator(POOLS)
    for op in ops:
        apply_op(allocator, op)
    before = {o: allocator.get(o) for o in OWNERS if allocator.get(o) is not None}
    changed = Allocator(CHANGED_POOLS)
    for owner, held in sorted(before.items()):
        assert held is not None
        changed.assign(owner, held.address, share_key=held.share_key, ports=held.ports)
    for owner, held in before.items():
        now = changed.get(owner)
        assert now is not None
        assert held is not None
        assert now.address == held.address, "an address in use moved"
        assert now.pool == changed.pool_of(held.address)
    kept = {held.address for held in before.values() if held is not None}
    for i, (pool, version) in enumerate(later):
        try:
            fresh = changed.allocate(f"other/n{i}", pool=pool, version=version)
        except AllocationError:
            continue
        assert fresh.address not in kept, "an address in use handed out again"
        assert changed.pool_of(fresh.address) == pool
        kept.add(fresh.address)


POOL_SETS = [
    POOLS,
    CHANGED_POOLS,
    (),
    tuple(
        dataclasses.replace(p, avoid_buggy_ips=True, disabled=p.name == "small")
        for p in parse_vip_range('[{"small": ["10.9.0.1 - 10.9.0.4"]}, ["10.8.0.254 - 10.8.1.3"]]')
    ),
    parse_vip_range('[{"small": ["10.8.0.0/29"]}, ["10.9.0.0/29", "2001:db8::/125"]]'),
]
"""Pool sets applied live: shrunk, emptied, disabled with avoidBuggyIPs, blocks swapped."""

live_operation = st.one_of(
    operation, st.tuples(st.just("pools"), st.integers(0, len(POOL_SETS) - 1))
)


@settings(max_examples=300)
@given(st.lists(live_operation, max_size=50))
def test_live_pool_changes_keep_every_address_and_match_a_rebuild(
    ops: list[tuple[object, ...]],
) -> None:
    """Pools replaced between any operations: nothing held moves or is handed out twice, a
    disabled pool hands out nothing, .0/.255 never come from an avoidBuggyIPs pool, the counts
    are exact, and the index equals one built afresh from the same pools and holders."""
    allocator = Allocator(POOLS)
    pools = POOLS
    for op in ops:
        before = snapshot(allocator)
        if op[0] == "pools":
            pools = POOL_SETS[int(str(op[1]))]
            allocator.set_pools(pools)
        else:
            apply_op(allocator, op)
        after = snapshot(allocator)
        for owner, (address, _) in before.items():
            if owner in after and not (op[0] == "assign" and op[1] == owner):
                assert after[owner][0] == address, "an address in use moved"
        for owner, (address, pool) in after.items():
            parsed = ipaddress.ip_address(address)
            assert allocator.pool_of(parsed) == pool
            if owner not in before and op[0] == "allocate" and pool is not None:
                found = allocator.pool(pool)
                assert found is not None
                assert not found.disabled, "a disabled pool handed out an address"
                if found.avoid_buggy_ips and parsed.version == 4:
                    assert int(parsed) % 256 not in (0, 255)
        for address in {a for a, _ in after.values()}:
            sharers = allocator.holders(ipaddress.ip_address(address))
            if len(sharers) > 1:
                keys = {a.share_key for a in sharers}
                assert len(keys) == 1, "sharers with different keys"
                assert None not in keys, "an address held twice"
        in_use = sum(s.in_use for s in allocator.stats())
        assert in_use == len({address for address, pool in after.values() if pool is not None})
    fresh = rebuild(allocator, pools)
    assert snapshot(fresh) == snapshot(allocator)
    assert fresh.stats() == allocator.stats()
