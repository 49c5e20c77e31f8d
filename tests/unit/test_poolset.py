"""Which pools are in effect and which a Service may use: pure decisions over parsed objects."""

from __future__ import annotations

from typing import Any

import pytest

from lbctl.ipam.poolset import (
    INVALID,
    NAME_CONFLICT,
    OVERLAP,
    NoEligiblePool,
    candidates,
    combine,
    parse_pool_object,
)
from lbctl.ipam.ranges import parse_vip_range
from lbctl.ipam.selector import LabelSelector, SelectorError


def pool_object(name: str, created: str, addresses: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": created, "generation": 1},
        "spec": {"addresses": addresses, **spec},
    }


def test_label_selectors_follow_apimachinery() -> None:
    selector = LabelSelector.parse(
        {
            "matchLabels": {"team": "a"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["web", "db"]},
                {"key": "legacy", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "NotIn", "values": ["x"]},
            ],
        },
        "spec.serviceSelector",
    )
    assert selector.matches({"team": "a", "tier": "db"})
    assert selector.matches({"team": "a", "tier": "web", "zone": "y"})
    assert not selector.matches({"team": "a", "tier": "db", "legacy": ""})
    assert not selector.matches({"team": "a", "tier": "db", "zone": "x"})
    assert not selector.matches({"team": "b", "tier": "db"})
    assert LabelSelector.parse({}, "s").matches({})
    with pytest.raises(SelectorError, match=r"s\.matchExpressions\[0\]: operator In needs values"):
        LabelSelector.parse({"matchExpressions": [{"key": "k", "operator": "In"}]}, "s")
    with pytest.raises(SelectorError, match="'Like' is not one of"):
        LabelSelector.parse({"matchExpressions": [{"key": "k", "operator": "Like"}]}, "s")


def test_the_older_pool_wins_an_overlap_and_vip_range_wins_every_clash() -> None:
    static = parse_vip_range('[{"prod": ["10.0.9.0/24"]}]')
    objects = [
        parse_pool_object(pool_object("late", "2026-01-02T00:00:00Z", ["10.0.0.2-10.0.0.9"])),
        parse_pool_object(pool_object("early", "2026-01-01T00:00:00Z", ["10.0.0.0/29"])),
        parse_pool_object(pool_object("prod", "2026-01-01T00:00:00Z", ["10.0.5.1"])),
        parse_pool_object(pool_object("inside", "2026-01-01T00:00:00Z", ["10.0.9.7"])),
        parse_pool_object(
            pool_object("twice", "2026-01-01T00:00:00Z", ["10.0.7.0/30", "10.0.7.2"])
        ),
        parse_pool_object(pool_object("upside", "2026-01-01T00:00:00Z", ["10.0.6.9-10.0.6.1"])),
        parse_pool_object(pool_object("apart", "2026-01-03T00:00:00Z", ["10.0.0.8-10.0.0.9"])),
    ]
    found = combine(static, objects)
    assert [p.name for p in found.pools] == ["prod", "early", "apart"]
    reasons = {name: reason for name, (reason, _) in found.left_out.items()}
    assert reasons == {
        "late": OVERLAP, "prod": NAME_CONFLICT, "inside": OVERLAP, "twice": INVALID,
        "upside": INVALID,
    }  # fmt: skip
    assert "older pool 'early'" in found.left_out["late"][1]
    assert "VIP_RANGE pool 'prod'" in found.left_out["inside"][1]
    assert "reversed" in found.left_out["upside"][1]


def test_candidates_follow_priority_then_age_and_respect_auto_assign_and_selectors() -> None:
    objects = [
        parse_pool_object(pool_object("zeta", "2026-01-01T00:00:00Z", ["10.1.0.1"], priority=5)),
        parse_pool_object(pool_object("none", "2026-01-01T00:00:00Z", ["10.1.1.1"])),
        parse_pool_object(pool_object("alpha", "2026-01-02T00:00:00Z", ["10.1.2.1"], priority=1)),
        parse_pool_object(
            pool_object("manual", "2026-01-01T00:00:00Z", ["10.1.3.1"], autoAssign=False)
        ),
        parse_pool_object(
            pool_object(
                "teams",
                "2026-01-01T00:00:00Z",
                ["10.1.4.1"],
                priority=0,
                namespaceSelector={"matchLabels": {"team": "a"}},
            )
        ),
    ]
    pools = combine((), objects).pools
    assert candidates(pools, None, "ns", {}, {}) == ("alpha", "zeta", "none")
    assert candidates(pools, None, "ns", {"team": "a"}, {}) == ("teams", "alpha", "zeta", "none")
    assert candidates(pools, "manual", "ns", {}, {}) == ("manual",)
    with pytest.raises(NoEligiblePool, match="does not admit") as refused:
        candidates(pools, "teams", "ns", {}, {})
    assert refused.value.reason == "NoEligiblePool"
    with pytest.raises(NoEligiblePool, match="no pool named 'gold'") as unknown:
        candidates(pools, "gold", "ns", {}, {})
    assert unknown.value.reason == "UnknownPool"
    with pytest.raises(NoEligiblePool, match="no pool has autoAssign"):
        candidates(combine((), objects[3:4]).pools, None, "ns", {}, {})


def test_avoid_buggy_ips_drops_dot_0_and_dot_255_across_blocks() -> None:
    (pool,) = combine(
        (),
        [parse_pool_object(pool_object("b", "t", ["10.2.0.250-10.2.2.4"], avoidBuggyIPs=True))],
    ).pools
    assert pool.intervals(4) == [
        (0x0A0200FA, 0x0A0200FE), (0x0A020101, 0x0A0201FE), (0x0A020201, 0x0A020204),
    ]  # fmt: skip


def test_avoid_buggy_ips_is_refused_on_blocks_too_large_to_split() -> None:
    """Each /24 becomes an interval: beyond a /12 that would stall every pool change."""
    big = parse_pool_object(pool_object("big", "t", ["10.0.0.0/11"], avoidBuggyIPs=True))
    assert big.pool is None
    assert big.invalid is not None
    assert "2,097,150 addresses; at most 1,048,576" in big.invalid
    plain = parse_pool_object(pool_object("plain", "t", ["10.0.0.0/8"]))
    assert plain.pool is not None
    assert plain.pool.intervals(4) == [(0x0A000001, 0x0AFFFFFE)]
