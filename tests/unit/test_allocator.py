"""The allocator as a sequence of scenarios (MetalLB-style), checked after every step."""

from __future__ import annotations

import ipaddress

import pytest

from lbctl.ipam.allocator import (
    AddressInUse,
    Allocator,
    PoolExhausted,
    PortConflict,
    UnknownPool,
)
from lbctl.ipam.ranges import parse_vip_range


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.fixture
def allocator() -> Allocator:
    return Allocator(parse_vip_range('["10.0.0.1 - 10.0.0.3", {"Dev": ["10.1.0.0/30"]}]'))


def test_lowest_free_address_first_and_reused_after_release(allocator: Allocator) -> None:
    """Allocation is deterministic: lowest free first, and a released address comes back."""
    assert allocator.allocate("ns/a").address == ip("10.0.0.1")
    assert allocator.allocate("ns/b").address == ip("10.0.0.2")
    assert allocator.allocate("ns/a").address == ip("10.0.0.1"), "idempotent for an owner"
    allocator.release("ns/a")
    assert allocator.allocate("ns/c").address == ip("10.0.0.1")


def test_an_address_is_never_given_twice(allocator: Allocator) -> None:
    """assign() of a held address to another owner is refused, naming the holder."""
    allocator.assign("ns/a", ip("10.0.0.2"))
    with pytest.raises(AddressInUse, match="ns/a"):
        allocator.assign("ns/b", ip("10.0.0.2"))
    assert allocator.allocate("ns/b").address == ip("10.0.0.1")
    assert allocator.allocate("ns/c").address == ip("10.0.0.3")


def test_exhaustion_and_unknown_pool(allocator: Allocator) -> None:
    """A full pool and a missing pool are errors, not silent fallbacks."""
    for owner in ("a", "b", "c"):
        allocator.allocate(owner)
    with pytest.raises(PoolExhausted):
        allocator.allocate("d")
    with pytest.raises(UnknownPool, match="Prod"):
        allocator.allocate("d", pool="Prod")
    assert allocator.allocate("d", pool="Dev").address == ip("10.1.0.1")


def test_release_with_a_stale_token_keeps_the_current_holder(allocator: Allocator) -> None:
    """A late delete of an old Vip (old UID) does not free the new Vip's address."""
    allocator.allocate("ns/a")
    allocator.bind_token("ns/a", "uid-new")
    assert allocator.release("ns/a", token="uid-old") is None
    assert allocator.get("ns/a") is not None
    assert allocator.release("ns/a", token="uid-new") is not None


def test_addresses_outside_every_pool_are_kept_but_not_counted(allocator: Allocator) -> None:
    """A recorded address outside the pools stays with its owner and leaves counts alone."""
    allocation = allocator.assign("ns/legacy", ip("192.0.2.9"))
    assert allocation.pool is None
    default = next(s for s in allocator.stats() if s.name == "default")
    assert (default.total, default.in_use, default.free) == (3, 0, 3)


def test_stats_count_exactly(allocator: Allocator) -> None:
    """Totals, in-use and free per pool and family."""
    allocator.allocate("a")
    allocator.allocate("b", pool="Dev")
    assert {(s.name, s.version, s.total, s.in_use) for s in allocator.stats()} == {
        ("default", 4, 3, 1),
        ("Dev", 4, 2, 1),
    }


WEB = frozenset({("TCP", 80), ("TCP", 443)})
DNS = frozenset({("UDP", 53), ("TCP", 53)})


def test_sharing_joins_the_keys_address_when_ports_do_not_overlap(allocator: Allocator) -> None:
    """Same key, disjoint ports: one address; the address frees with its last sharer."""
    web = allocator.allocate("ns/web", share_key="ns/k", ports=WEB)
    dns = allocator.allocate("ns/dns", share_key="ns/k", ports=DNS)
    assert dns.address == web.address
    assert [a.owner for a in allocator.holders(web.address)] == ["ns/dns", "ns/web"]
    default = next(s for s in allocator.stats() if s.name == "default")
    assert default.in_use == 1
    allocator.release("ns/web")
    assert allocator.holder(web.address) is not None
    allocator.release("ns/dns")
    assert allocator.holder(web.address) is None
    assert allocator.allocate("ns/other").address == web.address


def test_sharing_is_refused_on_a_port_overlap_or_another_key(allocator: Allocator) -> None:
    """An overlap is refused naming the port and the holder; another key gets its own address."""
    web = allocator.allocate("ns/web", share_key="ns/k", ports=WEB)
    with pytest.raises(PortConflict, match="port 443/TCP") as caught:
        allocator.assign("ns/web2", web.address, share_key="ns/k", ports=frozenset({("TCP", 443)}))
    assert caught.value.holder == "ns/web"
    with pytest.raises(AddressInUse):
        allocator.assign("ns/x", web.address, share_key="ns/other", ports=DNS)
    with pytest.raises(PortConflict, match="port 80/TCP"):
        allocator.allocate("ns/web2", share_key="ns/k", ports=WEB)
    assert allocator.allocate("ns/y", share_key="ns/other", ports=DNS).address != web.address


def test_a_sharer_that_must_leave_gets_an_address_of_its_own_shared_under_its_key(
    allocator: Allocator,
) -> None:
    """own_on_clash: a clash on every address of the key gives a free address, which later
    sharers of the key may join."""
    web = allocator.allocate("ns/web", share_key="ns/k", ports=WEB)
    moved = allocator.allocate("ns/dns", share_key="ns/k", ports=WEB, own_on_clash=True)
    assert moved.address != web.address
    assert moved.share_key == "ns/k"
    # The lowest address of the key that fits is joined first.
    assert allocator.allocate("ns/x", share_key="ns/k", ports=DNS).address == web.address
    joined = allocator.allocate("ns/y", share_key="ns/k", ports=frozenset({("TCP", 80), ("UDP", 1)}),
                                own_on_clash=True)  # fmt: skip
    assert joined.address not in (web.address, moved.address)


def test_an_address_reassigned_without_its_key_is_not_offered_to_sharers_after_release() -> None:
    """Found by the property test: a sharer re-assigned without its key, then released, must
    not leave the address joinable under the old key while the free list has it back."""
    allocator = Allocator(parse_vip_range('["10.8.0.0/29"]'))
    first = allocator.allocate("ns/s1", share_key="ns/a")
    allocator.assign("ns/s1", first.address)  # the same address, no key any more
    allocator.release("ns/s1")
    joined = allocator.allocate("ns/s2", share_key="ns/a")
    other = allocator.allocate("ns/s3")
    assert joined.address != other.address
    assert sum(s.in_use for s in allocator.stats()) == 2


def test_a_recorded_address_is_never_free_whatever_memory_holds(allocator: Allocator) -> None:
    """A durable record keeps its address out of the free list, names who may hold it, and
    outlives the in-memory holders; the address is free only once the record is gone."""
    allocator.record(ip("10.0.0.1"), frozenset({"ns/a"}))
    assert allocator.allocate("ns/b").address == ip("10.0.0.2")
    with pytest.raises(AddressInUse, match="ns/a"):
        allocator.assign("ns/c", ip("10.0.0.1"))
    allocator.assign("ns/a#moving", ip("10.0.0.1"))  # an owner of the named key may hold it
    allocator.release("ns/a#moving")
    assert allocator.allocate("ns/d").address == ip("10.0.0.3")
    assert allocator.unrecord(ip("10.0.0.1")) is True
    assert allocator.allocate("ns/e").address == ip("10.0.0.1")
    assert allocator.unrecord(ip("10.0.0.1")) is False, "no record left"


def test_a_record_held_in_memory_frees_nothing_when_unrecorded(allocator: Allocator) -> None:
    allocator.assign("ns/a", ip("10.0.0.1"))
    allocator.record(ip("10.0.0.1"), frozenset({"ns/a"}))
    assert allocator.unrecord(ip("10.0.0.1")) is False
    assert allocator.holder(ip("10.0.0.1")) is not None
    allocator.release("ns/a")
    assert allocator.allocate("ns/b").address == ip("10.0.0.1")


def test_a_record_shared_under_a_key_may_be_joined_under_that_key(allocator: Allocator) -> None:
    allocator.record(ip("10.0.0.2"), frozenset({"ns/a"}), "ns/blue")
    allocator.assign("ns/b", ip("10.0.0.2"), share_key="ns/blue", ports=frozenset({("TCP", 80)}))
    assert [a.owner for a in allocator.holders(ip("10.0.0.2"))] == ["ns/b"]
    allocator.record(ip("10.0.0.3"), frozenset({"ns/c"}), "ns/green")
    with pytest.raises(AddressInUse, match="ns/c"):
        allocator.assign("ns/d", ip("10.0.0.3"), share_key="ns/blue")


def test_the_ports_a_record_gives_are_those_it_was_last_read_with(allocator: Allocator) -> None:
    web = frozenset({("TCP", 80)})
    allocator.record(ip("10.0.0.2"), frozenset({"ns/a"}), "ns/blue", ports={"ns/a": web})
    with pytest.raises(PortConflict, match="ns/a"):
        allocator.assign("ns/b", ip("10.0.0.2"), share_key="ns/blue", ports=web)
    allocator.record(ip("10.0.0.2"), frozenset({"ns/a"}), "ns/blue", ports={"ns/a": frozenset()})
    assert allocator.assign("ns/b", ip("10.0.0.2"), share_key="ns/blue", ports=web).owner == "ns/b"


def test_a_record_being_deleted_admits_no_new_holder(allocator: Allocator) -> None:
    """A record deleted by hand (kept by its finalizer while its holders show the address)
    is closed: its holders keep the address, a sharer of its key is not offered it and gets
    an address of its own, and nobody else may take it until the record is gone."""
    web, dns = frozenset({("TCP", 80)}), frozenset({("UDP", 53)})
    allocator.assign("ns/web", ip("10.0.0.1"), share_key="ns/blue", ports=web)
    allocator.record(ip("10.0.0.1"), frozenset({"ns/web"}), "ns/blue", closed=True)
    assert allocator.assign("ns/web", ip("10.0.0.1"), share_key="ns/blue", ports=web)
    joined = allocator.allocate("ns/dns", share_key="ns/blue", ports=dns)
    assert joined.address == ip("10.0.0.2")
    with pytest.raises(AddressInUse, match="being deleted"):
        allocator.assign("ns/ntp", ip("10.0.0.1"), share_key="ns/blue")
    allocator.release("ns/web")
    with pytest.raises(AddressInUse, match="being deleted"):
        allocator.assign("ns/ntp", ip("10.0.0.1"))
    assert allocator.unrecord(ip("10.0.0.1")) is True
    assert allocator.allocate("ns/ntp").address == ip("10.0.0.1")


def test_clear_forgets_allocations_and_records(allocator: Allocator) -> None:
    allocator.assign("ns/a", ip("10.0.0.1"))
    allocator.record(ip("10.0.0.2"), frozenset({"ns/b"}))
    allocator.clear()
    assert allocator.get("ns/a") is None
    assert allocator.recorded_for(ip("10.0.0.2")) is None
    assert allocator.allocate("ns/c").address == ip("10.0.0.1")


def test_an_address_another_controllers_service_shows_is_given_to_nobody(
    allocator: Allocator,
) -> None:
    """block: neither allocated nor assigned while shown elsewhere, unless a durable record
    decides (it names the owner, or may be joined under its key); unblock frees it (and says
    so) once nothing else holds it."""
    first = ip("10.0.0.1")
    allocator.block(first, "other/lb")
    assert allocator.allocate("ns/a").address == ip("10.0.0.2")
    with pytest.raises(AddressInUse, match="other/lb, which shows it"):
        allocator.assign("ns/b", first)
    allocator.record(first, frozenset({"ns/c"}))
    assert allocator.assign("ns/c", first).address == first  # its record stands
    allocator.release("ns/c")
    assert not allocator.unrecord(first)  # still shown elsewhere
    assert [s.in_use for s in allocator.stats() if s.name == "default"] == [2]
    assert allocator.unblock(first, "other/lb")
    assert not allocator.unblock(first, "other/lb")
    assert allocator.allocate("ns/d").address == first


def test_a_records_holders_ports_refuse_a_clashing_sharer_this_index_does_not_hold(
    allocator: Allocator,
) -> None:
    """A record names the sharers of every instance; those of another instance hold nothing
    in this index, but the ports the record gives them still refuse a clashing joiner (it was
    offered the address, refused by the record, and offered it again twice a second)."""
    x, web = ip("10.0.0.1"), frozenset({("TCP", 80)})
    allocator.record(x, frozenset({"ns/web"}), "ns/blue", ports={"ns/web": web})
    with pytest.raises(PortConflict, match="ns/web"):
        allocator.assign("ns/api", x, share_key="ns/blue", ports=web)
    moved = allocator.allocate("ns/api", share_key="ns/blue", ports=web, own_on_clash=True)
    assert moved.address == ip("10.0.0.2")
    dns = allocator.assign("ns/dns", x, share_key="ns/blue", ports=frozenset({("UDP", 53)}))
    assert dns.address == x


def test_an_address_shown_by_a_service_its_record_does_not_name_gets_no_new_holder(
    allocator: Allocator,
) -> None:
    """A Service lbctl does not manage shows an address whose record names web (e.g. it
    carries a copy of web's ``com.citrix.vip``): web keeps it, a new sharer of web's key is
    not offered it (it would wait for ever to show it) and gets an address of its own."""
    x, web = ip("10.0.0.1"), frozenset({("TCP", 80)})
    allocator.record(x, frozenset({"ns/web"}), "ns/blue", ports={"ns/web": web})
    allocator.block(x, "ns/copy")
    assert allocator.assign("ns/web", x, share_key="ns/blue", ports=web).address == x
    joined = allocator.allocate("ns/dns", share_key="ns/blue", ports=frozenset({("UDP", 53)}))
    assert joined.address == ip("10.0.0.2")


def test_a_holder_its_record_names_is_not_locked_out_by_a_hand_edited_record(
    allocator: Allocator,
) -> None:
    """The record's sharing key edited by hand (red): web and dns, which it names, still
    hold the address under their own key (they were refused, each 'held by' the other)."""
    x, web, dns = ip("10.0.0.1"), frozenset({("TCP", 80)}), frozenset({("UDP", 53)})
    allocator.record(x, frozenset({"ns/web", "ns/dns"}), "ns/red", ports={"ns/web": web})
    assert allocator.assign("ns/web", x, share_key="ns/blue", ports=web).address == x
    assert allocator.assign("ns/dns", x, share_key="ns/blue", ports=dns).address == x


def test_an_ipv6_pool_of_small_addresses_gives_ipv6_addresses() -> None:
    """``::5`` is the integer 5: an address built from it must stay IPv6, or the Service would
    be shown 0.0.0.5."""
    allocator = Allocator(parse_vip_range('["::5 - ::6"]'))
    first = allocator.allocate("shop/web", version=6).address
    assert first == ipaddress.IPv6Address("::5")
    assert allocator.allocate("shop/db", version=6).address == ipaddress.IPv6Address("::6")
