"""Waiters are woken when an address record frees something they may need."""

from __future__ import annotations

import copy
import ipaddress

from lbctl.ipam.allocator import Allocator
from lbctl.ipam.ranges import parse_vip_range
from lbctl.reconcile.address_index import AddressTracker
from lbctl.vipaddress import Holder, address_record


def test_a_record_holder_freeing_a_port_wakes_waiters() -> None:
    """web (blue, TCP 80) holds X; a blue sharer needing TCP 80 waits.  web's record is
    updated to TCP 8080: the waiter fits now and must be woken (not left to its 60 s retry);
    adding a port frees nothing and wakes nobody."""
    allocator = Allocator(parse_vip_range('["10.0.0.1"]'))
    woken: list[int] = []
    tracker = AddressTracker(allocator, lambda _key: None, lambda: woken.append(1))
    x = ipaddress.ip_address("10.0.0.1")
    web = Holder("Service", "ns", "web", "uid-web", frozenset({("TCP", 80)}), None)
    old = address_record(x, web, "default", "ns/blue")
    old["metadata"]["resourceVersion"] = "1"
    tracker("ADDED", None, old)
    new = copy.deepcopy(old)
    new["metadata"]["resourceVersion"] = "2"
    new["spec"]["holders"][0]["ports"] = ["TCP/8080"]
    tracker("MODIFIED", old, new)
    assert woken, "no waiter woken when web freed TCP 80"
    woken.clear()
    more = copy.deepcopy(new)
    more["metadata"]["resourceVersion"] = "3"
    more["spec"]["holders"][0]["ports"] = ["TCP/8080", "TCP/8443"]
    tracker("MODIFIED", new, more)
    assert not woken, "a port added frees nothing"


def test_an_address_gone_leaves_every_other_holders_addresses_in_place() -> None:
    """Releasing one address forgets it for its holder only; the tracker's maps shrink as
    records go, and a replay rebuilds them exactly."""
    allocator = Allocator(parse_vip_range('["10.0.0.0/29"]'))
    tracker = AddressTracker(allocator, lambda _key: None, lambda: None)
    records = []
    for index, name in enumerate(("a", "b", "c"), start=1):
        holder = Holder("Service", "ns", name, f"uid-{name}", frozenset({("TCP", 80)}), None)
        record = address_record(ipaddress.ip_address(f"10.0.0.{index}"), holder, "default", None)
        record["metadata"]["resourceVersion"] = str(index)
        record["metadata"]["uid"] = f"record-{index}"
        records.append(record)
        tracker("ADDED", None, record)
    tracker.gone(ipaddress.ip_address("10.0.0.2"), "record-2")
    assert {k: sorted(map(str, tracker.held(k))) for k in tracker.holder_keys()} == {
        "ns/a": ["10.0.0.1"], "ns/c": ["10.0.0.3"],
    }  # fmt: skip
    assert allocator.holder(ipaddress.ip_address("10.0.0.2")) is None
    tracker("DELETED", records[0], None)
    assert tracker.holder_keys() == ["ns/c"]
    tracker.gone(ipaddress.ip_address("10.0.0.3"), "record-3")
    assert tracker.holder_keys() == []
    tracker.replay([records[1]])
    assert {k: sorted(map(str, tracker.held(k))) for k in tracker.holder_keys()} == {
        "ns/b": ["10.0.0.2"]
    }


def test_a_record_deleted_here_and_claimed_again_elsewhere_stays_in_the_index() -> None:
    """This process deletes a's record of X; before its delete call returns, the watch has
    already reported the deletion and another instance's new record of X for b.  Freeing X
    "now" must not forget b's record: the index would offer X again, to be refused for ever."""
    allocator = Allocator(parse_vip_range('["10.0.0.0/29"]'))
    tracker = AddressTracker(allocator, lambda _key: None, lambda: None)
    x = ipaddress.ip_address("10.0.0.1")
    ports = frozenset({("TCP", 80)})
    ours = address_record(x, Holder("Service", "ns", "a", "uid-a", ports, None), "default", None)
    ours["metadata"].update(resourceVersion="1", uid="record-a")
    theirs = address_record(
        x, Holder("Service", "other", "b", "uid-b", ports, None), "default", None
    )
    theirs["metadata"].update(resourceVersion="3", uid="record-b")
    tracker("ADDED", None, ours)
    tracker("DELETED", ours, None)
    tracker("ADDED", None, theirs)
    tracker.gone(x, "record-a")
    assert allocator.recorded_for(x) == frozenset({"other/b"})
    assert tracker.holder_keys() == ["other/b"]


def test_a_record_freed_here_wakes_waiters_again_when_the_watch_reports_its_deletion() -> None:
    """This process frees X (``gone``) and wakes the waiters; one of them reads the record
    from the informer cache before the watch has reported the deletion, finds it still there
    (being deleted), and waits again.  The deletion event must wake it: the index had freed X
    already, so nothing else would (it waited for its 60 s retry; seen with 32 workers)."""
    allocator = Allocator(parse_vip_range('["10.0.0.1"]'))
    woken: list[int] = []
    tracker = AddressTracker(allocator, lambda _key: None, lambda: woken.append(1))
    x = ipaddress.ip_address("10.0.0.1")
    web = Holder("Service", "ns", "web", "uid-web", frozenset({("TCP", 80)}), None)
    record = address_record(x, web, "default", None)
    record["metadata"].update(resourceVersion="1", uid="record-x")
    tracker("ADDED", None, record)
    deleting = copy.deepcopy(record)
    deleting["metadata"].update(resourceVersion="2", deletionTimestamp="2026-11-30T00:00:00Z")
    tracker("MODIFIED", record, deleting)
    tracker.gone(x, "record-x")
    assert woken == [1]
    tracker("DELETED", deleting, None)
    assert woken == [1, 1], "the record's deletion from the cache woke nobody"
    assert allocator.recorded_for(x) is None
