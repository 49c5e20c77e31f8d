"""The informer's packed objects: every object comes back as it went in, and objects like the
first ones pack to a fraction of their JSON."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from lbctl.kube.packing import SAMPLES, Packer


def service(i: int) -> dict[str, Any]:
    """A LoadBalancer Service as lbctl caches it, numbered."""
    address = f"10.64.{i // 250}.{i % 250 + 1}"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "annotations": {"com.citrix.vip": address},
            "creationTimestamp": f"2026-11-30T08:{i % 60:02d}:09Z",
            "finalizers": ["service.kubernetes.io/load-balancer-cleanup"],
            "name": f"svc-{i:05d}",
            "namespace": "shop",
            "resourceVersion": str(1000 + i),
            "uid": f"d88b678b-3b5c-4568-b84e-{i:012d}",
        },
        "spec": {
            "ports": [{"name": "web", "nodePort": 30000 + i, "port": 80, "protocol": "TCP"}],
            "type": "LoadBalancer",
        },
        "status": {"loadBalancer": {"ingress": [{"ip": address, "ipMode": "Proxy"}]}},
    }


def test_objects_come_back_equal_and_fresh() -> None:
    packer = Packer()
    packed = [packer.pack(service(i)) for i in range(3 * SAMPLES)]
    for i, data in enumerate(packed):
        found = packer.unpack(data)
        assert found == service(i)
        found["metadata"]["name"] = "changed"
        assert packer.unpack(data) == service(i)


def test_objects_like_the_first_ones_pack_to_a_fifth_of_their_json() -> None:
    packer = Packer()
    for i in range(SAMPLES):
        data = packer.pack(service(i))
        assert data == orjson.dumps(service(i))  # the dictionary's samples stay plain JSON
    for i in range(SAMPLES, 200):
        data = packer.pack(service(i))
        assert len(data) < len(orjson.dumps(service(i))) / 5, (i, len(data))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=12), json_values, max_size=6), max_size=30))
def test_any_objects_round_trip(objects: list[dict[str, Any]]) -> None:
    packer = Packer()
    packed = [packer.pack(obj) for obj in objects]
    assert [packer.unpack(data) for data in packed] == objects
