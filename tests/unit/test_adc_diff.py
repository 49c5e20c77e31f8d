"""Diffing desired against actual ADC state: fewest operations, safe order, converges."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lbctl.adc.diff import Op, apply, diff
from lbctl.adc.plan import Node, plan_service
from lbctl.adc.state import BINDING_PARENT, Key, State, read_listing, same

V = Key("lbvserver", "k8s-a_b_80-tcp_lbv")
G = Key("servicegroup", "k8s-a_b_80-tcp_sgp")
M = Key("lbmonitor", "k8s-a_b_80-tcp_mon")


def desired(**spec: Any) -> State:
    ports = spec.pop("ports", [{"port": 80, "protocol": "TCP", "nodePort": 30080}])
    service = {
        "metadata": {"namespace": "a", "name": "b", "annotations": spec.pop("annotations", {})},
        "spec": {"ports": ports, **spec},
    }
    nodes = [Node(f"n{i}", f"10.0.0.{i}", True, False) for i in spec.pop("nodes", (1, 2, 3))]
    return plan_service("k8s", service, spec.pop("vip", "192.0.2.1"), nodes).objects


def test_new_service_is_adds_then_binds() -> None:
    ops = diff(desired(), {})
    assert [str(op) for op in ops] == [
        f"add {G}",
        f"add {V}",
        "bind member k8s-a_b_80-tcp_sgp 10.0.0.1/30080",
        "bind member k8s-a_b_80-tcp_sgp 10.0.0.2/30080",
        "bind member k8s-a_b_80-tcp_sgp 10.0.0.3/30080",
        f"bind vserver_binding {V.name} {G.name}",
    ]


def test_same_state_with_string_numbers_needs_nothing() -> None:
    want = desired()
    actual = copy.deepcopy(want)
    actual[V] = {**actual[V], "port": "80", "extra": "ignored", "curstate": "UP"}
    assert diff(want, actual) == []


def test_changed_attribute_is_an_update_of_that_attribute_only() -> None:
    want = desired()
    actual = copy.deepcopy(want)
    actual[V]["lbmethod"] = "ROUNDROBIN"
    actual[V]["ipv46"] = "192.0.2.99"
    assert diff(want, actual) == [
        Op("update", V, {"ipv46": "192.0.2.1", "lbmethod": "LEASTCONNECTION"})
    ]


def test_member_changes_bind_and_unbind_only_the_difference() -> None:
    before = desired(nodes=(1, 2, 3))
    after = desired(nodes=(2, 3, 4))
    assert [str(op) for op in diff(after, before)] == [
        "bind member k8s-a_b_80-tcp_sgp 10.0.0.4/30080",
        "unbind member k8s-a_b_80-tcp_sgp 10.0.0.1/30080",
    ]


def test_immutable_change_recreates_and_rebinds() -> None:
    before = desired()
    after = desired(annotations={"service.citrix.com/service-type-0": "HTTP"})
    ops = [str(op) for op in diff(after, before)]
    assert ops[:2] == [f"delete {V}", f"delete {G}"]
    assert ops[2:4] == [f"add {G}", f"add {V}"]
    assert sum(op.startswith("bind") for op in ops) == 4


def test_switching_to_local_traffic_adds_and_back_removes_the_monitor() -> None:
    cluster = desired()
    local = desired(externalTrafficPolicy="Local", healthCheckNodePort=32000)
    assert [str(op) for op in diff(local, cluster)] == [
        f"add {M}",
        f"bind monitor_binding {G.name} {M.name}",
    ]
    assert [str(op) for op in diff(cluster, local)] == [
        f"unbind monitor_binding {G.name} {M.name}",
        f"delete {M}",
    ]


def test_removing_everything_deletes_vserver_before_group_and_relies_on_cascade() -> None:
    local = desired(externalTrafficPolicy="Local", healthCheckNodePort=32000)
    assert [str(op) for op in diff({}, local)] == [f"delete {V}", f"delete {G}", f"delete {M}"]


def test_listing_keeps_only_owned_objects_and_their_bindings() -> None:
    comment = "lbctl owner=k8s service=a/b port=80/TCP"
    rows: dict[str, list[dict[str, Any]]] = {
        "lbvserver": [
            {"name": V.name, "comment": comment, "port": "80"},
            {"name": "k8s-x_y_80-tcp_lbv", "comment": "made by hand"},
            {"name": "prod-a_b_80-tcp_lbv", "comment": comment},
        ],
        "servicegroup": [{"servicegroupname": G.name, "comment": comment}],
        "servicegroup_servicegroupmember_binding": [
            {"servicegroupname": G.name, "ip": "10.0.0.1", "port": 30080},
            {"servicegroupname": "foreign", "ip": "10.0.0.1", "port": 30080},
            {"servicegroupname": G.name, "port": "bad"},
        ],
        "lbvserver_servicegroup_binding": [{"name": V.name, "servicegroupname": G.name}],
    }
    listing = read_listing("k8s", rows)
    assert sorted(listing) == sorted(
        [
            V,
            G,
            Key("member", G.name, ("10.0.0.1", "30080")),
            Key("vserver_binding", V.name, (G.name,)),
        ]
    )
    assert listing.owner_keys() == {"a/b"}
    assert listing.of("a/b") == listing.state()
    assert listing.of("a/c") == {}


def states() -> st.SearchStrategy[State]:
    return st.builds(
        lambda nodes, port, local, affinity, http, vip: desired(
            nodes=tuple(nodes),
            ports=[{"port": port, "protocol": "TCP", "nodePort": 30000 + port}],
            externalTrafficPolicy="Local" if local else "Cluster",
            healthCheckNodePort=32000,
            sessionAffinity="ClientIP" if affinity else "None",
            annotations={"service.citrix.com/service-type-0": "HTTP"} if http else {},
            vip=vip,
        ),
        st.sets(st.integers(1, 6), max_size=6),
        st.sampled_from([80, 443]),
        st.booleans(),
        st.booleans(),
        st.booleans(),
        st.sampled_from(["192.0.2.1", "192.0.2.2"]),
    ) | st.just({})


@settings(max_examples=300, deadline=None)
@given(states(), states())
def test_applying_the_diff_reaches_the_desired_state(want: State, have: State) -> None:
    state = copy.deepcopy(have)
    ops = diff(want, state)
    for op in ops:
        if op.action in ("bind", "add"):  # parents exist before children refer to them
            if op.key.kind in BINDING_PARENT:
                assert Key(BINDING_PARENT[op.key.kind], op.key.name) in state, op
            assert op.key not in state, op
        if op.action == "delete" and op.key.kind == "lbmonitor":
            assert not any(k.kind == "monitor_binding" and k.sub == (op.key.name,) for k in state)
        apply(state, op)
    assert state.keys() == want.keys()
    assert all(same(v, state[k].get(a)) for k, attrs in want.items() for a, v in attrs.items())
    assert diff(want, state) == []
    assert (
        all(op.action != "delete" for op in ops)
        or want.keys() != have.keys()
        or any(want[k].get(a) != have[k].get(a) for k in want for a in ("servicetype", "port"))
    )
