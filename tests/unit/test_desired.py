"""The Service-side writes decided without I/O: exact bodies, guards, and ownership marks."""

from __future__ import annotations

import ipaddress
from typing import Any

from lbctl.model import (
    CLASS_ANNOTATION,
    LB_FINALIZER,
    MANAGED_BY_LABEL,
    MANAGER,
    SERVICE_UID_ANNOTATION,
    VIP_ANNOTATION,
    ServiceView,
    VipView,
)
from lbctl.reconcile import desired
from lbctl.reconcile.conditions import ADDRESS_CONDITION

A = ipaddress.ip_address("10.0.0.1")
B = ipaddress.ip_address("10.0.0.2")


def service(
    *, annotations: dict[str, str] | None = None, finalizers: tuple[str, ...] = (),
    ingress: tuple[str, ...] = (), ports: tuple[tuple[str, int], ...] = (("TCP", 80),),
    name: str = "web", cls: str | None = None, type_: str = "LoadBalancer",
    conditions: list[dict[str, Any]] | None = None,
) -> ServiceView:  # fmt: skip
    raw: dict[str, Any] = {
        "metadata": {"namespace": "ns", "name": name, "uid": f"uid-{name}",
                     "resourceVersion": "7", "annotations": annotations or {},
                     "finalizers": list(finalizers)},
        "spec": {"type": type_, "ports": [{"protocol": p, "port": n} for p, n in ports],
                 **({"loadBalancerClass": cls} if cls else {})},
        "status": {"loadBalancer": {"ingress": [{"ip": i} for i in ingress]},
                   "conditions": conditions or []},
    }  # fmt: skip
    return ServiceView.from_raw(raw)


NOW = "2026-11-29T20:00:00Z"
ALLOCATED = {
    "type": ADDRESS_CONDITION, "status": "True", "reason": "Allocated",
    "message": "10.0.0.1 from pool default", "lastTransitionTime": NOW,
}  # fmt: skip
OTHERS = {"type": "example.com/Ready", "status": "True", "reason": "Fine", "message": ""}


def vip(*, uid: str = "uid-web", cls: str | None = None, managed: bool = True) -> VipView:
    labels = {MANAGED_BY_LABEL: MANAGER} if managed else {}
    annotations = {SERVICE_UID_ANNOTATION: uid, **({CLASS_ANNOTATION: cls} if cls else {})}
    meta = {"namespace": "ns", "name": "web", "labels": labels, "annotations": annotations}
    return VipView.from_raw({"metadata": meta, "spec": {"ipaddress": "10.0.0.1", "service": "web"}})


def test_a_new_address_is_shown_in_one_guarded_write_with_finalizer_and_marks() -> None:
    """Finalizer, annotations, ingress and the condition in one write; another controller's
    condition is kept in the list (written whole, under the version guard)."""
    before = service(finalizers=("other/keep",), conditions=[OTHERS])
    body = desired.shown(before, [A], "gold", "10.0.0.1 from pool default", NOW)
    assert body == {
        "metadata": {
            "finalizers": ["other/keep", LB_FINALIZER],
            "annotations": {VIP_ANNOTATION: "10.0.0.1", CLASS_ANNOTATION: "gold"},
            "resourceVersion": "7",
        },
        "status": {
            "loadBalancer": {"ingress": [{"ip": "10.0.0.1", "ipMode": "Proxy"}]},
            "conditions": [OTHERS, ALLOCATED],
        },
    }


def test_nothing_is_written_when_the_service_shows_it_all_already() -> None:
    done = service(
        annotations={VIP_ANNOTATION: "10.0.0.1", CLASS_ANNOTATION: ""},
        finalizers=(LB_FINALIZER,), ingress=("10.0.0.1",), conditions=[ALLOCATED],
    )  # fmt: skip
    assert desired.shown(done, [A], "", str(ALLOCATED["message"]), "later") is None
    assert desired.waiting(done, "") is None


def test_the_condition_keeps_its_transition_time_unless_its_status_changes() -> None:
    done = service(
        annotations={VIP_ANNOTATION: "10.0.0.1", CLASS_ANNOTATION: ""},
        finalizers=(LB_FINALIZER,), ingress=("10.0.0.1",), conditions=[ALLOCATED],
    )  # fmt: skip
    moved = desired.shown(done, [A], "", "10.0.0.1 from pool other", "later")
    assert moved is not None
    (condition,) = moved["status"]["conditions"]
    assert (condition["message"], condition["lastTransitionTime"]) == (
        "10.0.0.1 from pool other", NOW,
    )  # fmt: skip
    pending = desired.waiting(done, "", why=("PoolExhausted", "no free address"), now="later")
    assert pending is not None
    (condition,) = pending["status"]["conditions"]
    assert (condition["status"], condition["reason"], condition["lastTransitionTime"]) == (
        "False", "PoolExhausted", "later",
    )  # fmt: skip
    released = desired.unshown(service(conditions=[OTHERS, ALLOCATED]), set(), "")
    assert released == {"metadata": {"resourceVersion": "7"}, "status": {"conditions": [OTHERS]}}


def test_unshown_clears_only_what_shows_lbctls_address() -> None:
    foreign = service(annotations={VIP_ANNOTATION: "10.0.0.9"}, finalizers=("x", LB_FINALIZER),
                      ingress=("10.0.0.9",))  # fmt: skip
    assert desired.unshown(foreign, {A}, "") == {
        "metadata": {"finalizers": ["x"], "resourceVersion": "7"}
    }
    ours = service(annotations={VIP_ANNOTATION: "10.0.0.1", CLASS_ANNOTATION: ""},
                   ingress=("10.0.0.1",))  # fmt: skip
    assert desired.unshown(ours, {A}, "") == {
        "metadata": {
            "annotations": {VIP_ANNOTATION: None, CLASS_ANNOTATION: None},
            "resourceVersion": "7",
        },
        "status": {"loadBalancer": {"ingress": None}},
    }
    assert desired.unshown(service(), {A}, "") is None


def test_a_waiting_service_lets_go_of_a_withdrawn_address_but_stays_lbctls() -> None:
    showing = service(annotations={VIP_ANNOTATION: "10.0.0.1", CLASS_ANNOTATION: ""},
                      finalizers=(LB_FINALIZER,), ingress=("10.0.0.1",))  # fmt: skip
    assert desired.waiting(showing, "") is None
    assert desired.waiting(showing, "", {B}) is None
    assert desired.waiting(showing, "", {A}) == {
        "metadata": {"annotations": {VIP_ANNOTATION: None}, "resourceVersion": "7"},
        "status": {"loadBalancer": {"ingress": None}},
    }
    unmarked = service(annotations={VIP_ANNOTATION: "10.0.0.1"}, ingress=("10.0.0.1",))
    assert desired.waiting(unmarked, "gold", {A}) == {
        "metadata": {
            "finalizers": [LB_FINALIZER],
            "annotations": {CLASS_ANNOTATION: "gold", VIP_ANNOTATION: None},
            "resourceVersion": "7",
        },
        "status": {"loadBalancer": {"ingress": None}},
    }


def test_sharing_needs_one_key_and_disjoint_ports() -> None:
    key = {"lbctl.io/allow-shared-ip": "blue"}
    web = service(annotations=key, ports=(("TCP", 80),))
    dns = service(annotations=key, ports=(("UDP", 53),), name="dns")
    clash = service(annotations=key, ports=(("TCP", 80),), name="clash")
    other = service(annotations={"lbctl.io/allow-shared-ip": "green"}, name="g")
    assert desired.may_share(web, dns)
    assert not desired.may_share(web, clash)
    assert not desired.may_share(web, other)
    assert not desired.may_share(service(), service(name="b", ports=(("UDP", 1),)))


def test_marks_that_make_a_service_lbctls() -> None:
    plain = service()
    assert desired.marked(service(annotations={CLASS_ANNOTATION: ""}), None, None, set(), None)
    assert desired.marked(plain, "gold", vip(cls="gold"), set(), None)
    assert desired.marked(plain, None, vip(), set(), None)
    assert not desired.marked(plain, "gold", vip(), set(), None)  # the class-less one's Vip
    assert not desired.marked(plain, None, vip(cls="gold"), set(), None)
    assert not desired.marked(plain, None, vip(uid="earlier"), set(), None)
    assert not desired.marked(plain, None, vip(managed=False), set(), None)
    assert desired.marked(plain, None, None, {"uid-web"}, None)
    shown = service(annotations={VIP_ANNOTATION: "10.0.0.2"})
    assert desired.marked(shown, None, None, set(), B)
    # Held in the index from another instance's Vip for it (its spec.service edited): no mark.
    assert not desired.marked(shown, None, vip(cls="gold"), set(), B)
    assert not desired.marked(shown, None, None, set(), A)
    assert not desired.marked(plain, None, None, set(), None)


def test_a_class_mark_copied_onto_another_controllers_service_is_no_mark() -> None:
    copied = {CLASS_ANNOTATION: "gold"}
    assert desired.marked(service(annotations=copied, cls="gold"), "gold", None, set(), None)
    assert not desired.marked(service(annotations=copied, cls="other"), "gold", None, set(), None)
    assert not desired.marked(service(annotations={CLASS_ANNOTATION: ""}, cls="other"), None,
                              None, set(), None)  # fmt: skip
    # No longer a LoadBalancer: nobody else's, so lbctl's mark is proof enough.
    left = service(annotations=copied, cls=None, type_="ClusterIP")
    assert desired.marked(left, "gold", None, set(), None)


def test_an_address_outside_every_pool_is_kept_and_says_so() -> None:
    assert desired.allocated_status(A, "default")["conditions"][0]["reason"] == "Allocated"
    status = desired.allocated_status(A, None)
    assert status["conditions"][0]["reason"] == desired.OUTSIDE_POOLS
    assert "kept while in use" in status["message"]
