"""A sharer's port change decided against the index and the record, without the apiserver."""

from __future__ import annotations

import ipaddress
from typing import Any, cast

import pytest

from lbctl.ipam.allocator import Allocator
from lbctl.ipam.ranges import parse_vip_range
from lbctl.kube.events import EventRecorder
from lbctl.model import IPAddress, ServiceView, VipView
from lbctl.reconcile.addresses import AddressRecords
from lbctl.reconcile.follow import Follow, NoRoom
from lbctl.reconcile.pools import Pools
from lbctl.reconcile.records import VipRecords

CURRENT = ipaddress.ip_address("10.0.0.1")


class Events:
    def __init__(self) -> None:
        self.posted: list[tuple[str, str, str]] = []

    async def record(self, obj: Any, type_: str, reason: str, message: str) -> None:
        self.posted.append((type_, reason, message))


class RecordSaysClash:
    """The address record names another instance's sharer on the same port."""

    def port_clash(self, address: IPAddress, service: ServiceView) -> str | None:
        return f"{address} is held by ns/web, which already uses port 80/TCP"


async def test_a_clash_only_the_record_knows_leaves_no_room_and_changes_nothing() -> None:
    """The index offers the Service's own address again (only the record knows the other
    sharer's ports): there is no room for it, which the caller turns into a wait; the ports
    it holds the address with are unchanged and no claim is made."""
    allocator = Allocator(parse_vip_range('["10.0.0.0/30"]'))
    allocator.assign("ns/dns", CURRENT, share_key="ns/blue", ports=frozenset({("UDP", 53)}))
    events, waiting = Events(), set[str]()

    async def hold(*_: object) -> bool:
        raise AssertionError("no claim may be made")

    follow = Follow(
        allocator, cast(VipRecords, None), cast(EventRecorder, events), hold, waiting,
        cast(AddressRecords, RecordSaysClash()), Pools(allocator, allocator.pools),
    )  # fmt: skip
    raw: dict[str, Any] = {
        "metadata": {"namespace": "ns", "name": "dns", "uid": "u",
                     "annotations": {"lbctl.io/allow-shared-ip": "blue"}},
        "spec": {"type": "LoadBalancer", "ports": [{"protocol": "TCP", "port": 80}]},
    }  # fmt: skip
    vip = VipView.from_raw({"metadata": {"namespace": "ns", "name": "dns"}, "spec": {}})
    with pytest.raises(NoRoom, match="port 80/TCP"):
        await follow.ports(raw, ServiceView.from_raw(raw), vip, CURRENT, set())
    assert not events.posted
    held = allocator.get("ns/dns")
    assert held is not None
    assert held.ports == {("UDP", 53)}
    assert allocator.get("ns/dns#moving") is None
