"""The pure planner: Service + nodes + endpoints → desired ADC objects."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lbctl.adc.names import (
    MAX_COMMENT,
    MAX_NAME,
    Owner,
    PortId,
    object_name,
    owner_of,
    ownership_comment,
)
from lbctl.adc.plan import Endpoint, Node, endpoints_from_slices, plan_service
from lbctl.adc.state import Key

NODES = [
    Node("n1", "10.0.0.1", ready=True, excluded=False),
    Node("n2", "10.0.0.2", ready=True, excluded=False),
    Node("n3", "10.0.0.3", ready=False, excluded=False),
    Node("n4", "10.0.0.4", ready=True, excluded=True),
    Node("n5", None, ready=True, excluded=False),
]


def service(**spec: Any) -> dict[str, Any]:
    annotations = spec.pop("annotations", {})
    return {
        "metadata": {"namespace": "shop", "name": "web", "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}],
            **spec,
        },
    }


def kinds(objects: dict[Key, Any]) -> dict[str, list[Key]]:
    found: dict[str, list[Key]] = {}
    for key in sorted(objects):
        found.setdefault(key.kind, []).append(key)
    return found


def test_one_port_service_on_ready_nodes() -> None:
    plan = plan_service("k8s", service(), "192.0.2.10", NODES)
    assert not plan.problems
    vserver = Key("lbvserver", "k8s-shop_web_80-tcp_lbv")
    group = Key("servicegroup", "k8s-shop_web_80-tcp_sgp")
    assert plan.objects[vserver] == {
        "servicetype": "TCP",
        "ipv46": "192.0.2.10",
        "port": 80,
        "lbmethod": "LEASTCONNECTION",
        "persistencetype": "NONE",
        "comment": "lbctl owner=k8s service=shop/web port=80/TCP",
    }
    assert plan.objects[group]["servicetype"] == "TCP"
    assert [k.sub for k in kinds(plan.objects)["member"]] == [
        ("10.0.0.1", "30080"),
        ("10.0.0.2", "30080"),
    ]
    assert Key("vserver_binding", vserver.name, (group.name,)) in plan.objects
    assert "lbmonitor" not in kinds(plan.objects)


def test_udp_and_unsupported_protocol_are_per_port() -> None:
    ports = [
        {"port": 53, "protocol": "UDP", "nodePort": 30053},
        {"port": 9000, "protocol": "SCTP", "nodePort": 30900},
    ]
    plan = plan_service("k8s", service(ports=ports), "192.0.2.10", NODES)
    assert plan.objects[Key("lbvserver", "k8s-shop_web_53-udp_lbv")]["servicetype"] == "UDP"
    assert "SCTP" in plan.problems["9000-sctp"]
    assert plan.reasons["9000-sctp"] == "lbctl.io/UnsupportedProtocol"
    assert not any("9000" in k.name for k in plan.objects)


def test_service_type_annotation_picks_http() -> None:
    plan = plan_service(
        "k8s",
        service(annotations={"service.citrix.com/service-type-0": "http"}),
        "192.0.2.1",
        NODES,
    )
    assert plan.objects[Key("lbvserver", "k8s-shop_web_80-tcp_lbv")]["servicetype"] == "HTTP"
    bad = plan_service(
        "k8s", service(annotations={"service.citrix.com/service-type-0": "SSL"}), "192.0.2.1", NODES
    )
    assert "SSL" in bad.problems["80-tcp"]


def test_local_traffic_policy_binds_a_health_monitor() -> None:
    plan = plan_service(
        "k8s",
        service(externalTrafficPolicy="Local", healthCheckNodePort=32000),
        "192.0.2.10",
        NODES,
    )
    monitor = plan.objects[Key("lbmonitor", "k8s-shop_web_80-tcp_mon")]
    assert monitor["type"] == "HTTP"
    assert monitor["destport"] == 32000
    assert monitor["httprequest"] == "GET /healthz"
    assert (
        Key("monitor_binding", "k8s-shop_web_80-tcp_sgp", ("k8s-shop_web_80-tcp_mon",))
        in plan.objects
    )


def test_client_ip_affinity_is_source_ip_persistence_in_minutes() -> None:
    spec = service(
        sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 601}}
    )
    attrs = plan_service("k8s", spec, "192.0.2.10", NODES).objects[
        Key("lbvserver", "k8s-shop_web_80-tcp_lbv")
    ]
    assert (attrs["persistencetype"], attrs["timeout"]) == ("SOURCEIP", 11)


def test_smart_annotations_per_port_and_global() -> None:
    annotations = {
        "service.citrix.com/lbvserver": json.dumps({"80-tcp": {"lbmethod": "roundrobin"}}),
        "service.citrix.com/servicegroup": json.dumps({"usip": "yes", "maxclient": "100"}),
        "service.citrix.com/monitor": json.dumps(
            {"80-tcp": {"type": "http", "respcode": ["200-299"]}}
        ),
    }
    plan = plan_service("k8s", service(annotations=annotations), "192.0.2.10", NODES)
    assert plan.objects[Key("lbvserver", "k8s-shop_web_80-tcp_lbv")]["lbmethod"] == "ROUNDROBIN"
    group = plan.objects[Key("servicegroup", "k8s-shop_web_80-tcp_sgp")]
    assert (group["usip"], group["maxclient"]) == ("YES", 100)
    assert plan.objects[Key("lbmonitor", "k8s-shop_web_80-tcp_mon")]["respcode"] == ["200-299"]


@pytest.mark.parametrize(
    ("annotation", "value", "message"),
    [
        ("service.citrix.com/lbvserver", "{not json", "not valid JSON"),
        ("service.citrix.com/lbvserver", "[1]", "must be a JSON object"),
        (
            "service.citrix.com/lbvserver",
            '{"80-tcp": {"ipv46": "1.2.3.4"}}',
            "'ipv46' is not supported",
        ),
        (
            "service.citrix.com/lbvserver",
            '{"lbmethod": "FASTEST"}',
            "lbmethod='FASTEST' must be one of",
        ),
        ("service.citrix.com/lbvserver", '{"timeout": 99999}', "must be between 0 and 1440"),
        (
            "service.citrix.com/servicegroup",
            '{"80-tcp": "yes"}',
            "must be a JSON object of attributes",
        ),
        ("service.citrix.com/servicegroup", '{"maxclient": true}', "must be an integer"),
        ("service.citrix.com/monitor", '{"respcode": ["ok"]}', "HTTP status codes"),
        ("service.citrix.com/monitor", '{"comment": "x"}', "'comment' is not supported"),
        ("service.citrix.com/monitor", "{" + '"a":1,' * 5000 + '"b":2}', "longer than"),
    ],
)
def test_bad_smart_annotation_is_one_problem_for_the_service(
    annotation: str, value: str, message: str
) -> None:
    plan = plan_service("k8s", service(annotations={annotation: value}), "192.0.2.10", NODES)
    assert plan.objects == {}
    assert message in plan.problems["*"]
    assert annotation in plan.problems["*"]


def test_pod_members_from_endpoint_slices() -> None:
    slices = [
        {
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.0.5"], "conditions": {"ready": True}},
                {"addresses": ["10.244.0.6"], "conditions": {"ready": False}},
                {"addresses": ["10.244.0.7"]},
            ],
        }
    ]
    endpoints = endpoints_from_slices(slices)
    assert endpoints == [
        Endpoint("10.244.0.5", 8080, "http", "TCP"),
        Endpoint("10.244.0.7", 8080, "http", "TCP"),
    ]
    spec = service(allocateLoadBalancerNodePorts=False)
    plan = plan_service("k8s", spec, "192.0.2.10", NODES, endpoints)
    assert [k.sub for k in kinds(plan.objects)["member"]] == [
        ("10.244.0.5", "8080"),
        ("10.244.0.7", "8080"),
    ]
    by_annotation = plan_service(
        "k8s", service(annotations={"lbctl.io/members": "pods"}), "192.0.2.10", NODES, endpoints
    )
    assert len(kinds(by_annotation.objects)["member"]) == 2


def test_node_from_raw() -> None:
    node = Node.from_raw(
        {
            "metadata": {
                "name": "a",
                "labels": {"node.kubernetes.io/exclude-from-external-load-balancers": ""},
            },
            "status": {
                "addresses": [
                    {"type": "Hostname", "address": "a"},
                    {"type": "InternalIP", "address": "10.1.1.1"},
                ],
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
    )
    assert node == Node("a", "10.1.1.1", ready=True, excluded=True)
    assert not node.eligible


def test_names_are_bounded_unique_and_map_back_to_their_owner() -> None:
    long = PortId("n" * 63, "s" * 63, 65535, "UDP")
    name = object_name("k8s", long, "lbv")
    assert len(name) == MAX_NAME
    other = PortId("n" * 63, "s" * 62 + "t", 65535, "UDP")
    assert object_name("k8s", other, "lbv") != name
    assert owner_of("k8s", name, ownership_comment("k8s", long)) == long
    assert owner_of("k8s2", name, ownership_comment("k8s", long)) is None
    assert owner_of("k8s", name, "hand-made") is None
    assert owner_of("k8s", "other_name", ownership_comment("k8s", long)) is None


SCOPES = [
    Owner("k8s"),
    Owner("k8s", namespace="a"),
    Owner("k8s", namespace="b"),
    Owner("k8s", load_balancer_class="example.com/x"),
    Owner("k8s", load_balancer_class="example.com/y"),
    Owner("k8s", namespace="a", load_balancer_class="example.com/x"),
    Owner("k8s", namespace="n" * 63, load_balancer_class="c" * 63 + "/" + "d" * 63),
    Owner("k8s", namespace="n" * 63, load_balancer_class="c" * 63 + "/" + "d" * 62 + "e"),
]


def test_an_object_is_owned_only_by_the_instance_of_exactly_its_scope() -> None:
    """Instances sharing a prefix but scoped by namespace or class never claim each other's
    objects, also when a long scope is written as its hash."""
    port = PortId("a", "web", 80, "TCP")
    name = object_name("k8s", port, "lbv")
    for writer in SCOPES:
        comment = ownership_comment(writer, port)
        owners = [reader for reader in SCOPES if owner_of(reader, name, comment) is not None]
        assert owners == [writer], comment


def test_the_unscoped_owner_keeps_the_comment_format_of_earlier_versions() -> None:
    """Objects written before scopes existed stay the unscoped, class-less instance's own."""
    port = PortId("a", "web", 80, "TCP")
    legacy = "lbctl owner=k8s service=a/web port=80/TCP"
    assert ownership_comment(Owner("k8s"), port) == legacy
    assert ownership_comment("k8s", port) == legacy
    assert owner_of(Owner("k8s"), "k8s-a_web_80-tcp_lbv", legacy) == port
    assert owner_of(Owner("k8s", namespace="a"), "k8s-a_web_80-tcp_lbv", legacy) is None
    scoped = ownership_comment(Owner("k8s", namespace="a", load_balancer_class="x.io/lb"), port)
    assert scoped == "lbctl owner=k8s scope=ns:a,class:x.io/lb service=a/web port=80/TCP"


def test_comments_stay_within_the_netscaler_limit() -> None:
    longest = PortId("n" * 63, "s" * 63, 65535, "SCTP")
    for owner in SCOPES:
        wide = Owner("abcdefgh", owner.namespace, owner.load_balancer_class)
        comment = ownership_comment(wide, longest)
        assert len(comment) <= MAX_COMMENT
        assert owner_of(wide, object_name(wide.prefix, longest, "sgp"), comment) == longest


@pytest.mark.parametrize(
    ("value", "excluded"),
    [(None, False), ("false", False), ("False", False), ("0", False), ("true", True),
     ("True", True), ("", True), ("yes", True)],
)  # fmt: skip
def test_the_exclude_label_excludes_unless_its_value_reads_as_false(
    value: str | None, excluded: bool
) -> None:
    """kubernetes/kubernetes#131085: ``false`` keeps the node; ``true`` and values that do
    not parse as a boolean (the empty one too) exclude it."""
    labels = (
        {} if value is None else {"node.kubernetes.io/exclude-from-external-load-balancers": value}
    )
    node = Node.from_raw({
        "metadata": {"name": "n", "labels": labels},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                   "conditions": [{"type": "Ready", "status": "True"}]},
    })  # fmt: skip
    assert node.excluded is excluded
    assert node.eligible is not excluded
