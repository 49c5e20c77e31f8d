"""lbctl status rebuilds the allocator as the controller does."""

from __future__ import annotations

from typing import Any

from lbctl.ipam.allocator import Allocator
from lbctl.ipam.ranges import parse_vip_range
from lbctl.reconcile.shown import ShownIndex
from lbctl.status import rows_and_allocator


def foreign_service() -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "other", "uid": "u1", "resourceVersion": "1"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/other"},
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}},
    }


def test_status_counts_an_address_another_controller_shows_as_the_controller_does() -> None:
    pools = parse_vip_range('["10.0.0.1/32"]')
    controller = Allocator(pools)
    index = ShownIndex(controller, lambda s: s.is_load_balancer and s.load_balancer_class is None)
    index("ADDED", None, foreign_service())
    [held] = controller.stats()
    assert (held.in_use, held.free) == (1, 0)
    _, allocator = rows_and_allocator(pools, [], [foreign_service()], [])
    [shown] = allocator.stats()
    assert (shown.in_use, shown.free) == (1, 0)
    _, as_its_class = rows_and_allocator(
        pools, [], [foreign_service()], [], None, "example.com/other"
    )
    assert [s.free for s in as_its_class.stats()] == [1]  # that instance's own Service
