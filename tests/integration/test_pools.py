"""Pools as VipPool objects, changed live, on the real apiserver: what Services get, what the
pools' status says, and that no address is ever shown twice while the pools change."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from lbctl.kube.client import JSON, NAMESPACES, SERVICES, VIP_POOLS, VIPS, KubeClient
from lbctl.kube.errors import Invalid, NotFound
from lbctl.model import IPAM_RANGE_ANNOTATION, VipView
from lbctl.reconcile.conditions import ADDRESS_CONDITION
from lbctl.reconcile.vipstatus import ALLOCATED, PENDING, vip_status, write_vip_status
from tests.integration.conftest import (
    CreatePool,
    StartLbctl,
    load_balancer,
    shown_ip,
    wait_for_ip,
)
from tests.integration.invariants import ShownAddresses
from tests.integration.test_requests import annotated, warning
from tests.waiting import eventually

STATIC_ONLY = '[{"static": ["10.77.200.1"]}]'
"""A VIP_RANGE with no pool assigned automatically: Services get addresses from objects."""


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


async def condition(kube: KubeClient, namespace: str, name: str) -> JSON | None:
    service = await kube.get(SERVICES, namespace, name)
    found = [
        c for c in (service.get("status") or {}).get("conditions") or []
        if c["type"] == ADDRESS_CONDITION
    ]  # fmt: skip
    return found[0] if found else None


async def condition_is(
    kube: KubeClient, namespace: str, name: str, status: str, reason: str
) -> JSON:
    async def probe() -> JSON | None:
        found = await condition(kube, namespace, name)
        return found if found and (found["status"], found["reason"]) == (status, reason) else None

    return await eventually(probe, what=f"{name}'s condition {status}/{reason}")


async def pool_status(kube: KubeClient, name: str) -> dict[str, Any]:
    return dict((await kube.get(VIP_POOLS, None, name)).get("status") or {})


async def pool_says(kube: KubeClient, name: str, **expected: Any) -> dict[str, Any]:
    """Wait until the pool's status has ``ipv4`` counts and/or a Ready (status, reason)."""

    async def probe() -> dict[str, Any] | None:
        status = await pool_status(kube, name)
        ready = {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}
        for family in ("ipv4", "ipv6"):
            if family in expected and status.get(family) != expected[family]:
                return None
        if "ready" in expected and ready.get("Ready") != expected["ready"]:
            return None
        if "exhausted" in expected and ready.get("Exhausted", ("",))[0] != expected["exhausted"]:
            return None
        return status

    return await eventually(probe, what=f"pool {name} status {expected}")


async def vip_reason(kube: KubeClient, namespace: str, name: str, reason: str) -> None:
    async def probe() -> bool:
        try:
            vip = await kube.get(VIPS, namespace, name)
        except NotFound:  # the Vip is written after the Service's condition and Event
            return False
        return bool(
            ((vip.get("status") or {}).get("conditions") or [{}])[0].get("reason") == reason
        )

    await eventually(probe, what=f"Vip {name} says {reason}")


def counts(total: int, in_use: int) -> dict[str, int]:
    return {"total": total, "inUse": in_use, "free": total - in_use}


async def test_a_pool_created_grown_shrunk_disabled_and_deleted_live(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, vip_pools: CreatePool
) -> None:
    """Every change applies without restart; addresses in use are never moved or shown twice,
    and waiting Services are served as soon as there is room."""
    await start_lbctl(STATIC_ONLY)
    pool = unique("live")
    async with ShownAddresses(kube, namespace) as watch:
        await kube.create(SERVICES, namespace, load_balancer("web"))
        pending = await condition_is(kube, namespace, "web", "False", "NoEligiblePool")
        assert "no pool is assigned automatically" in pending["message"]

        await vip_pools(pool, ["10.130.0.1-10.130.0.2"])
        assert await wait_for_ip(kube, namespace, "web") == "10.130.0.1"
        allocated = await condition_is(kube, namespace, "web", "True", "Allocated")
        assert allocated["message"] == f"Assigned IP 10.130.0.1 (pool {pool})"
        await pool_says(kube, pool, ipv4=counts(2, 1), ready=("True", "Ready"), exhausted="False")

        await kube.create(SERVICES, namespace, load_balancer("api"))
        assert await wait_for_ip(kube, namespace, "api") == "10.130.0.2"
        await kube.create(SERVICES, namespace, load_balancer("late"))
        await condition_is(kube, namespace, "late", "False", "PoolExhausted")
        await pool_says(kube, pool, ipv4=counts(2, 2), exhausted="True")

        grown = {"spec": {"addresses": ["10.130.0.1-10.130.0.2", "10.130.0.3"]}}
        await kube.patch(VIP_POOLS, None, pool, grown)
        assert await wait_for_ip(kube, namespace, "late", within=10) == "10.130.0.3"
        await pool_says(kube, pool, ipv4=counts(3, 3))

        await kube.patch(VIP_POOLS, None, pool, {"spec": {"addresses": ["10.130.0.3"]}})
        for name in ("web", "api"):
            await vip_reason(kube, namespace, name, "OutsidePools")
        await pool_says(kube, pool, ipv4=counts(1, 1))
        await kube.create(SERVICES, namespace, load_balancer("next"))
        await condition_is(kube, namespace, "next", "False", "PoolExhausted")

        await kube.patch(
            VIP_POOLS,
            None,
            pool,
            {"spec": {"addresses": ["10.130.0.3-10.130.0.4"], "disabled": True}},
        )
        await pool_says(kube, pool, ipv4=counts(2, 1), ready=("False", "Disabled"))

        async def told_disabled() -> bool:  # the condition was already PoolExhausted: wait
            found = await condition(kube, namespace, "next")  # for its new message
            return bool(found and found["reason"] == "PoolExhausted"
                        and "disabled" in found["message"])  # fmt: skip

        await eventually(told_disabled, what="next told its pool is disabled")

        await kube.delete(VIP_POOLS, None, pool)
        await vip_reason(kube, namespace, "late", "OutsidePools")
        await condition_is(kube, namespace, "next", "False", "NoEligiblePool")
        for name, address in (("web", "10.130.0.1"), ("api", "10.130.0.2"), ("late", "10.130.0.3")):
            assert shown_ip(await kube.get(SERVICES, namespace, name)) == address, name
    assert not watch.violations, watch.violations


async def test_selectors_priority_and_auto_assign_choose_the_pool(
    kube: KubeClient,
    namespace: str,
    second_namespace: str,
    start_lbctl: StartLbctl,
    vip_pools: CreatePool,
) -> None:
    """Lower priority first, then pools without one; selectors by namespace and Service
    labels; a pool without autoAssign only for Services that name it; a pool that does not
    admit a Service is refused even when named, until a namespace label admits it."""
    team = unique("team")
    await kube.patch(NAMESPACES, None, namespace, {"metadata": {"labels": {"team": team}}})
    await start_lbctl(STATIC_ONLY)
    mine, anyone, db, manual = (unique(p) for p in ("mine", "any", "db", "manual"))
    await vip_pools(
        mine, ["10.131.0.1"], priority=1, namespaceSelector={"matchLabels": {"team": team}}
    )
    await vip_pools(anyone, ["10.131.1.1-10.131.1.5"])
    await vip_pools(db, ["10.131.2.1"], priority=0, serviceSelector={
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}],
    })  # fmt: skip
    await vip_pools(manual, ["10.131.3.1"], autoAssign=False)

    await kube.create(SERVICES, namespace, load_balancer("first"))
    assert await wait_for_ip(kube, namespace, "first") == "10.131.0.1"
    await kube.create(SERVICES, namespace, load_balancer("second"))
    assert await wait_for_ip(kube, namespace, "second") == "10.131.1.1", "priority pool full"

    database = load_balancer("database")
    database["metadata"]["labels"] = {"tier": "db"}
    await kube.create(SERVICES, second_namespace, database)
    assert await wait_for_ip(kube, second_namespace, "database") == "10.131.2.1"
    await kube.create(SERVICES, second_namespace, load_balancer("plain"))
    assert await wait_for_ip(kube, second_namespace, "plain") == "10.131.1.2"

    await kube.create(
        SERVICES, second_namespace, annotated("asks", **{IPAM_RANGE_ANNOTATION: manual})
    )
    assert await wait_for_ip(kube, second_namespace, "asks") == "10.131.3.1"

    await kube.create(
        SERVICES, second_namespace, annotated("outsider", **{IPAM_RANGE_ANNOTATION: mine})
    )
    refused = await condition_is(kube, second_namespace, "outsider", "False", "NoEligiblePool")
    assert "does not admit" in refused["message"]
    await kube.delete(SERVICES, namespace, "first")
    await kube.patch(NAMESPACES, None, second_namespace, {"metadata": {"labels": {"team": team}}})
    assert await wait_for_ip(kube, second_namespace, "outsider", within=10) == "10.131.0.1"


async def test_avoid_buggy_ips_skips_dot_0_and_dot_255_inside_a_dash_range(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, vip_pools: CreatePool
) -> None:
    await start_lbctl(STATIC_ONLY)
    pool = unique("buggy")
    await vip_pools(pool, ["10.132.0.254-10.132.1.1"], avoidBuggyIPs=True)
    await pool_says(kube, pool, ipv4=counts(2, 0))
    for name in ("one", "two", "three"):
        await kube.create(SERVICES, namespace, load_balancer(name))
    assert await wait_for_ip(kube, namespace, "one") == "10.132.0.254"
    assert await wait_for_ip(kube, namespace, "two") == "10.132.1.1"
    await condition_is(kube, namespace, "three", "False", "PoolExhausted")


async def test_an_ipv6_pool_never_hands_out_the_subnet_router_anycast_address(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, vip_pools: CreatePool
) -> None:
    await start_lbctl(STATIC_ONLY)
    pool = unique("six")
    await vip_pools(pool, ["fd00:133::/126"])
    await kube.create(SERVICES, namespace, load_balancer("six", ipFamilies=["IPv6"]))
    assert await wait_for_ip(kube, namespace, "six") == "fd00:133::1"
    status = await pool_says(kube, pool, ready=("True", "Ready"), ipv6=counts(3, 1))
    assert status.get("ipv4") is None


async def test_overlapping_clashing_and_invalid_pools_are_left_out_with_a_reason(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, vip_pools: CreatePool
) -> None:
    """The older pool wins an overlap (its status says so); a VIP_RANGE pool wins a name clash
    or an overlap in this instance (a Service asking for the object is told why; the object's
    status, the same for every instance, judges objects only); a range the schema lets
    through but lbctl refuses is Invalid, and the schema refuses what it can; none of them
    crashes anything, and a pool left out comes into effect once what blocked it goes."""
    await start_lbctl('[{"static": ["10.134.9.1"]}]')
    old, new = unique("a-old"), unique("b-new")  # created in one second: the name decides
    await vip_pools(old, ["10.134.0.0/30"], autoAssign=False)
    await vip_pools(new, ["10.134.0.2-10.134.0.5"], autoAssign=False)
    overlap = await pool_says(kube, new, ready=("False", "Overlap"))
    assert old in overlap["conditions"][0]["message"]
    await pool_says(kube, old, ready=("True", "Ready"))

    covers_static = unique("covers")
    await vip_pools(covers_static, ["10.134.9.0/30"], autoAssign=False)
    await pool_says(kube, covers_static, ready=("True", "Ready"))
    await kube.create(
        SERVICES, namespace, annotated("shadowed", **{IPAM_RANGE_ANNOTATION: covers_static})
    )
    told = await condition_is(kube, namespace, "shadowed", "False", "PoolNotInEffect")
    assert "overlap VIP_RANGE pool 'static'" in told["message"]
    reversed_range = unique("reversed")
    await vip_pools(reversed_range, ["10.134.7.9-10.134.7.1"])
    invalid = await pool_says(kube, reversed_range, ready=("False", "Invalid"))
    assert "reversed" in invalid["conditions"][0]["message"]
    for bad in ("10.0.0.300", "10.134.8.1/24", "10.134.8.1-fd00::1"):
        with pytest.raises(Invalid, match="must be a CIDR with no host bits set"):
            await vip_pools(unique("bad"), [bad])

    await kube.create(SERVICES, namespace, annotated("asks", **{IPAM_RANGE_ANNOTATION: new}))
    refused = await condition_is(kube, namespace, "asks", "False", "PoolNotInEffect")
    assert f"overlap older pool '{old}'" in refused["message"]
    await kube.delete(VIP_POOLS, None, old)
    await pool_says(kube, new, ready=("True", "Ready"))
    assert await wait_for_ip(kube, namespace, "asks", within=10) == "10.134.0.2"


async def test_two_instances_with_different_vip_ranges_agree_on_a_pools_status(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, vip_pools: CreatePool
) -> None:
    """Two instances (one per class), each with its own VIP_RANGE, one of which overlaps the
    pool: the pool's status does not depend on which one writes it, so they do not overwrite
    each other in turn (they did, ~125 patches a second each)."""
    first = await start_lbctl('["10.141.0.0/24"]')
    second = await start_lbctl('["10.142.0.0/24"]', load_balancer_class="example.com/internal")
    pool = unique("both")
    await vip_pools(pool, ["10.141.0.0/28", "10.141.1.0/30"], priority=1)
    await kube.create(
        SERVICES, namespace, load_balancer("b", loadBalancerClass="example.com/internal")
    )
    assert await wait_for_ip(kube, namespace, "b") == "10.141.0.1"
    await pool_says(kube, pool, ready=("True", "Ready"), ipv4=counts(16, 1))

    def writes() -> int:
        return sum(r.runtime.client.calls[("vippools/status", "patch")] for r in (first, second))

    def settled_in() -> bool:
        return not any(r.runtime.pool_status.stale() for r in (first, second))

    await eventually(settled_in, what="nothing left to write")
    settled = writes()
    marker = unique("marker")  # another pool's status written proves passes went by
    await vip_pools(marker, ["10.141.2.1"])
    await pool_says(kube, marker, ready=("True", "Ready"))
    await eventually(settled_in, what="nothing left to write")
    # Each instance may write the new pool's status once (both saw it stale at once); the
    # fight this guards against was ~250 writes a second.
    assert writes() - settled <= 2 * 2, "the instances overwrote each other's pool status"


async def test_an_edit_of_the_pools_never_moves_a_service_that_names_one(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, vip_pools: CreatePool
) -> None:
    """Pool prod is split (its last block given to a new pool) and then grown: the Services
    that name prod keep the addresses they hold, now in the other pool; nobody moves."""
    await start_lbctl(STATIC_ONLY)
    prod = unique("prod")
    await vip_pools(prod, ["10.144.0.1-10.144.0.4"])
    async with ShownAddresses(kube, namespace) as watch:
        for name in ("s1", "s2", "s3"):
            await kube.create(SERVICES, namespace, annotated(name, **{IPAM_RANGE_ANNOTATION: prod}))
            await wait_for_ip(kube, namespace, name)
        await kube.patch(VIP_POOLS, None, prod, {"spec": {"addresses": ["10.144.0.1-10.144.0.2"]}})
        split = unique("prodb")
        await vip_pools(split, ["10.144.0.3-10.144.0.4"])
        await pool_says(kube, split, ready=("True", "Ready"), ipv4=counts(2, 1))
        grown = {"spec": {"addresses": ["10.144.0.1-10.144.0.2", "10.144.0.9"]}}
        await kube.patch(VIP_POOLS, None, prod, grown)
        await pool_says(kube, prod, ipv4=counts(3, 2))
        await kube.create(SERVICES, namespace, annotated("s4", **{IPAM_RANGE_ANNOTATION: prod}))
        assert await wait_for_ip(kube, namespace, "s4") == "10.144.0.9"
        shown = {n: shown_ip(await kube.get(SERVICES, namespace, n)) for n in ("s1", "s2", "s3")}
    assert shown == {"s1": "10.144.0.1", "s2": "10.144.0.2", "s3": "10.144.0.3"}
    assert not watch.violations, watch.violations


async def test_contradictory_requests_are_refused_and_a_new_pool_request_moves_the_service(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    await start_lbctl('[{"prod": ["10.135.0.1"]}, {"dev": ["10.135.1.1-10.135.1.2"]}]')
    both = annotated(
        "both", **{IPAM_RANGE_ANNOTATION: "dev", "service.citrix.com/frontend-ip": "10.135.0.1"}
    )
    await kube.create(SERVICES, namespace, both)
    refused = await warning(kube, namespace, "both", "asks for pool 'dev'")
    assert "10.135.0.1 is in pool 'prod'" in refused["message"]
    await condition_is(kube, namespace, "both", "False", "InvalidRequest")
    await vip_reason(kube, namespace, "both", "InvalidRequest")

    await kube.create(SERVICES, namespace, annotated("mover", **{IPAM_RANGE_ANNOTATION: "dev"}))
    assert await wait_for_ip(kube, namespace, "mover") == "10.135.1.1"
    await kube.patch(
        SERVICES, namespace, "mover", {"metadata": {"annotations": {IPAM_RANGE_ANNOTATION: "prod"}}}
    )
    assert await wait_for_ip_change(kube, namespace, "mover", "10.135.1.1") == "10.135.0.1"

    await kube.create(SERVICES, namespace, annotated("stuck", **{IPAM_RANGE_ANNOTATION: "dev"}))
    first = await wait_for_ip(kube, namespace, "stuck")
    assert first.startswith("10.135.1.")
    await kube.patch(
        SERVICES, namespace, "stuck", {"metadata": {"annotations": {IPAM_RANGE_ANNOTATION: "prod"}}}
    )
    kept = await warning(kube, namespace, "stuck", f"keeping {first}")
    assert "asks for pool 'prod'" in kept["message"]
    await kube.delete(SERVICES, namespace, "mover")
    # Woken by the release (well before the 60 s retry of a waiting Service), on a busy CI
    # machine too: the mover's Vip, record and finalizer go one after the other first.
    assert await wait_for_ip_change(kube, namespace, "stuck", first, within=25) == "10.135.0.1"


async def test_a_requested_address_held_elsewhere_is_handed_over_when_freed(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """The Service keeps its old address while the one it asks for is held, and moves as
    soon as the holder is deleted (not on its next edit or periodic retry)."""
    await start_lbctl('["10.136.0.1-10.136.0.3"]')
    await kube.create(SERVICES, namespace, load_balancer("holder"))
    await kube.create(SERVICES, namespace, load_balancer("wants"))
    assert await wait_for_ip(kube, namespace, "holder") == "10.136.0.1"
    assert await wait_for_ip(kube, namespace, "wants") == "10.136.0.2"
    await kube.patch(SERVICES, namespace, "wants", {"spec": {"loadBalancerIP": "10.136.0.1"}})
    await warning(kube, namespace, "wants", "keeping 10.136.0.2")
    await kube.delete(SERVICES, namespace, "holder")
    assert (
        await wait_for_ip_change(kube, namespace, "wants", "10.136.0.2", within=10) == "10.136.0.1"
    )


async def wait_for_ip_change(
    kube: KubeClient, namespace: str, name: str, old: str, within: float = 20
) -> str:
    async def probe() -> str | None:
        shown = shown_ip(await kube.get(SERVICES, namespace, name))
        return shown if shown not in (None, old) else None

    return await eventually(probe, within=within, what=f"{name} off {old}")


def table_rows(table: JSON, name: str) -> dict[str, Any]:
    """The row of object ``name`` in a server-side Table, by column name."""
    columns = [c["name"] for c in table["columnDefinitions"]]
    for row in table["rows"]:
        if row["object"]["metadata"]["name"] == name:
            return dict(zip(columns, row["cells"], strict=True))
    raise AssertionError(
        f"{name} not in {[r['object']['metadata']['name'] for r in table['rows']]}"
    )


async def test_kubectl_get_shows_pool_usage_and_hand_made_vips_state_and_pool(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, vip_pools: CreatePool
) -> None:
    """What ``kubectl get vippools`` / ``kubectl get vips`` print (the server's Table)."""
    await start_lbctl('[{"gold": ["10.137.0.1"]}, ["10.137.1.0/30"]]')
    pool = unique("seen")
    await vip_pools(pool, ["10.137.2.1-10.137.2.4"], priority=3)
    await pool_says(kube, pool, ipv4=counts(4, 0), ready=("True", "Ready"))
    row = table_rows(await kube.table(VIP_POOLS), pool)
    assert (row["Ready"], row["IPv4 Free"], row["IPv4 In Use"], row["Priority"]) == (
        "True", 4, 0, 3,
    )  # fmt: skip

    def hand_vip(name: str, **spec: str) -> JSON:
        return {"apiVersion": "ipam.citrix.com/v1", "kind": "Vip",
                "metadata": {"name": name}, "spec": spec}  # fmt: skip

    await kube.create(VIPS, namespace, hand_vip("reserved", ipaddress="10.137.1.2"))
    await kube.create(VIPS, namespace, hand_vip("filled", ipaddress="", pool="gold"))
    await eventually(
        lambda: vip_state_is(kube, namespace, "filled", "Reserved", "gold"),
        what="filled Reserved gold",
    )
    await kube.create(VIPS, namespace, hand_vip("starved", ipaddress="", pool="gold"))
    await kube.create(SERVICES, namespace, annotated("asks", **{IPAM_RANGE_ANNOTATION: "gold"}))
    await eventually(
        lambda: vip_state_is(kube, namespace, "reserved", "Reserved", "default"),
        what="reserved Reserved default",
    )
    await eventually(
        lambda: vip_state_is(kube, namespace, "starved", "Pending", "gold"),
        what="starved Pending gold",
    )
    await eventually(
        lambda: vip_state_is(kube, namespace, "asks", "Pending", "gold"), what="asks Pending gold"
    )
    table = await kube.table(VIPS, namespace)
    assert {n: (table_rows(table, n)["State"], table_rows(table, n)["Pool"]) for n in (
        "reserved", "filled", "starved", "asks")} == {
        "reserved": ("Reserved", "default"), "filled": ("Reserved", "gold"),
        "starved": ("Pending", "gold"), "asks": ("Pending", "gold"),
    }  # fmt: skip


async def vip_state_is(kube: KubeClient, namespace: str, name: str, state: str, pool: str) -> bool:
    try:
        status = (await kube.get(VIPS, namespace, name)).get("status") or {}
    except NotFound:
        return False
    return bool((status.get("state"), status.get("pool")) == (state, pool))


async def test_a_vip_condition_moves_its_transition_time_only_when_its_status_changes(
    kube: KubeClient, namespace: str
) -> None:
    """API conventions, on the real apiserver: a new message keeps ``lastTransitionTime``, a
    new status moves it; no ``observedGeneration``, which a Vip's own status writes raise
    (it has no status subresource), and a status that did not change is not written."""
    body = {"apiVersion": "ipam.citrix.com/v1", "kind": "Vip", "metadata": {"name": "c"},
            "spec": {"ipaddress": ""}}  # fmt: skip
    await kube.create(VIPS, namespace, body)

    async def view() -> VipView:
        return VipView.from_raw(await kube.get(VIPS, namespace, "c"))

    stale = vip_status(PENDING, "PoolExhausted", "first", None)
    stale["conditions"][0]["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    await write_vip_status(kube, await view(), stale)
    await write_vip_status(kube, await view(), vip_status(PENDING, "PoolExhausted", "second", None))
    (condition,) = (await view()).status["conditions"]
    assert (condition["message"], condition["lastTransitionTime"]) == (
        "second", "2020-01-01T00:00:00Z",
    )  # fmt: skip
    assert "observedGeneration" not in condition
    unchanged = await view()
    await write_vip_status(kube, unchanged, vip_status(PENDING, "PoolExhausted", "second", None))
    assert (await view()).resource_version == unchanged.resource_version
    await write_vip_status(kube, await view(), vip_status(ALLOCATED, "Allocated", "third", "x"))
    (condition,) = (await view()).status["conditions"]
    assert condition["status"] == "True"
    assert condition["lastTransitionTime"] != "2020-01-01T00:00:00Z"


async def test_vip_range_file_edits_apply_live_and_a_bad_edit_keeps_the_pools(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, tmp_path: Path
) -> None:
    """A /29 grown to a /28 in the file serves the waiting Service without a restart; a value
    lbctl refuses is ignored (the pools in effect stay), and the next good one applies."""
    config = tmp_path / "VIP_RANGE"
    config.write_text('["10.139.0.0/29"]')
    running = await start_lbctl(config.read_text(), vip_range_file=str(config))
    pools = running.runtime.pools
    for index in range(7):
        await kube.create(SERVICES, namespace, load_balancer(f"s{index}"))
    for index in range(6):
        await wait_for_ip(kube, namespace, f"s{index}")
    await condition_is(kube, namespace, "s6", "False", "PoolExhausted")
    replace(config, '["10.139.0.0/29", "10.139.0.9 - 10.139.0.0"]')
    error = await eventually(lambda: pools.vip_range_error, what="the bad edit read")
    assert "'10.139.0.9 - 10.139.0.0' is reversed" in error
    assert [p.name for p in running.runtime.allocator.pools] == ["default"]
    assert await condition(kube, namespace, "s6") is not None
    replace(config, '["10.139.0.0/28"]')
    assert await wait_for_ip(kube, namespace, "s6", within=15) == "10.139.0.7"
    assert pools.vip_range_error is None


def replace(path: Path, text: str) -> None:
    """Swap the file's content in one rename, as the kubelet updates a mounted ConfigMap."""
    staged = path.with_suffix(".new")
    staged.write_text(text)
    staged.replace(path)


async def test_a_request_an_allocated_service_may_not_have_is_a_warning_and_it_keeps_its_own(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl
) -> None:
    """An allocated Service edited into a contradictory request (ipam-range dev with an
    address of prod) or to a pool that does not exist keeps its address, and is told why."""
    await start_lbctl('[{"prod": ["10.146.0.0/28"]}, {"dev": ["10.146.1.0/28"]}]')
    await kube.create(SERVICES, namespace, annotated("svc", **{IPAM_RANGE_ANNOTATION: "prod"}))
    assert await wait_for_ip(kube, namespace, "svc") == "10.146.0.1"
    contradiction = {IPAM_RANGE_ANNOTATION: "dev", "service.citrix.com/frontend-ip": "10.146.0.5"}
    await kube.patch(SERVICES, namespace, "svc", {"metadata": {"annotations": contradiction}})
    told = await warning(kube, namespace, "svc", "keeping 10.146.0.1")
    assert "10.146.0.5 is in pool 'prod' but service.citrix.com/ipam-range asks" in told["message"]
    unknown = {IPAM_RANGE_ANNOTATION: "gold", "service.citrix.com/frontend-ip": None}
    await kube.patch(SERVICES, namespace, "svc", {"metadata": {"annotations": unknown}})
    told = await warning(kube, namespace, "svc", "no pool named 'gold'")
    assert told["message"].endswith("; keeping 10.146.0.1")
    assert shown_ip(await kube.get(SERVICES, namespace, "svc")) == "10.146.0.1"


async def test_a_service_that_comes_to_name_the_pool_it_was_given_first_moves_into_it(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, vip_pools: CreatePool
) -> None:
    """web got 10.158.0.3 from pool a automatically; a's last block went to pool b; then web
    names a: that is a new request (the Vip records what was asked, not where the address
    was), so it moves into a, which has room."""
    await start_lbctl(STATIC_ONLY)
    first, second = unique("a"), unique("b")
    await vip_pools(first, ["10.158.0.1-10.158.0.3"])
    for name in ("s1", "s2", "web"):
        await kube.create(SERVICES, namespace, load_balancer(name))
        await wait_for_ip(kube, namespace, name)
    assert shown_ip(await kube.get(SERVICES, namespace, "web")) == "10.158.0.3"
    await kube.patch(
        VIP_POOLS, None, first, {"spec": {"addresses": ["10.158.0.1-10.158.0.2", "10.158.0.9"]}}
    )
    await vip_pools(second, ["10.158.0.3"], autoAssign=False)
    await pool_says(kube, second, ipv4=counts(1, 1))
    patch = {"metadata": {"annotations": {IPAM_RANGE_ANNOTATION: first}}}
    await kube.patch(SERVICES, namespace, "web", patch)
    assert await wait_for_ip_change(kube, namespace, "web", "10.158.0.3") == "10.158.0.9"
    vip = await kube.get(VIPS, namespace, "web")
    assert vip["metadata"]["annotations"]["lbctl.io/requested-pool"] == first


async def test_a_service_whose_pool_and_vip_are_gone_keeps_its_address_and_gets_its_vip_back(
    kube: KubeClient, namespace: str, start_lbctl: StartLbctl, vip_pools: CreatePool
) -> None:
    """The pool of a Service's address is deleted (the address stays, outside every pool), the
    Service comes to ask for an address no pool holds, and its Vip is deleted by hand while
    lbctl is down: the restarted lbctl keeps the address the Service shows (its record names
    the Service) and writes the Vip again with it, rather than leaving the Service showing an
    address beside a Pending Vip."""
    first = await start_lbctl(STATIC_ONLY)
    gone = unique("gone")
    await vip_pools(gone, ["10.146.0.1"])
    await kube.create(SERVICES, namespace, annotated("kept", **{IPAM_RANGE_ANNOTATION: gone}))
    assert await wait_for_ip(kube, namespace, "kept") == "10.146.0.1"
    await kube.delete(VIP_POOLS, None, gone)
    await vip_reason(kube, namespace, "kept", "OutsidePools")
    await first.stop()
    request = {"metadata": {"annotations": {"service.citrix.com/frontend-ip": "10.146.9.9"}}}
    await kube.patch(SERVICES, namespace, "kept", request)
    await kube.delete(VIPS, namespace, "kept")
    async with ShownAddresses(kube, namespace) as watch:
        await start_lbctl(STATIC_ONLY)
        await vip_reason(kube, namespace, "kept", "OutsidePools")
        vip = await kube.get(VIPS, namespace, "kept")
        assert (vip["spec"]["ipaddress"], vip["status"]["state"]) == ("10.146.0.1", "Allocated")
        assert shown_ip(await kube.get(SERVICES, namespace, "kept")) == "10.146.0.1"
    assert not watch.violations, watch.violations
