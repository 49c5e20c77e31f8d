"""Which address a Service should get (``reconcile.claims``), over a real allocator."""

from __future__ import annotations

import ipaddress
from typing import Any

from lbctl.ipam.allocator import Allocator
from lbctl.ipam.ranges import DEFAULT_POOL, parse_vip_range
from lbctl.model import ServiceView
from lbctl.reconcile.claims import Claimed, Request, Unsatisfied, claim

A = ipaddress.ip_address("10.0.0.1")
B = ipaddress.ip_address("10.0.0.2")


def showing(address: str | None, *, key: str | None = None) -> ServiceView:
    annotations = {"lbctl.io/allow-shared-ip": key} if key else {}
    ingress = [{"ip": address}] if address else []
    raw: dict[str, Any] = {
        "metadata": {"namespace": "ns", "name": "web", "uid": "u", "annotations": annotations},
        "spec": {"type": "LoadBalancer", "ports": [{"protocol": "TCP", "port": 80}]},
        "status": {"loadBalancer": {"ingress": ingress}},
    }
    return ServiceView.from_raw(raw)


def test_a_shown_address_is_held_again_unless_it_may_not_be_kept() -> None:
    """A's record is being deleted and names web (an earlier web, the record's UID says): the
    index admits web, but only ``may_keep`` knows it never can join."""
    allocator = Allocator(parse_vip_range('["10.0.0.1-10.0.0.2"]'))
    allocator.record(A, frozenset({"ns/web"}), None, closed=True)
    assert claim(allocator, showing("10.0.0.1"), Request(DEFAULT_POOL, None)) == Claimed(A, False)
    allocator.release("ns/web")
    kept = claim(allocator, showing("10.0.0.1"), Request(DEFAULT_POOL, None), lambda a: a != A)
    assert kept == Claimed(B, True)


def test_a_sharer_leaving_a_shown_address_gets_its_own_where_its_keys_address_clashes() -> None:
    """Its Vip was lost and its port now clashes with the other sharer of its key: it gets a
    free address rather than wait (showing the clashing one) for a sharer to go."""
    allocator = Allocator(parse_vip_range('["10.0.0.1-10.0.0.2"]'))
    allocator.allocate("ns/api", share_key="ns/blue", ports=frozenset({("TCP", 80)}))
    leaving = claim(allocator, showing("10.0.0.1", key="blue"), Request(DEFAULT_POOL, None))
    assert leaving == Claimed(B, True)
    allocator.release("ns/web")
    refused = claim(allocator, showing(None, key="blue"), Request(DEFAULT_POOL, None))
    assert isinstance(refused, Unsatisfied)
    assert refused.condition == "PortConflict"


def test_a_key_in_lbctls_reservation_form_is_no_sharing_key() -> None:
    """``#reserved:<name>`` is how a claimed reservation's key reads: a Service that writes
    it as its sharing key shares nothing (it took the reserved address without asking)."""
    assert showing(None, key="#reserved:kept").share_key is None
    assert showing(None, key="blue").share_key == "ns/blue"
