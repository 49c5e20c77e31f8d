"""Values held once per Service by several indexes are one object, not a copy per index."""

from __future__ import annotations

import ipaddress

import orjson
import pytest

from lbctl import interning, model
from lbctl.ipam.allocator import Allocator
from lbctl.ipam.ranges import parse_vip_range
from lbctl.kube.informer import object_key
from lbctl.model import namespaced_key, parse_address, parse_ip, parse_shown, ports_from_text
from lbctl.vipaddress import AddressRecordView, Holder


def test_equal_port_lists_give_one_shared_set() -> None:
    first = ports_from_text(["TCP/80", "TCP/443"])
    again = ports_from_text(["TCP/443", "TCP/80", "bad"])
    assert first == {("TCP", 80), ("TCP", 443)}
    assert again is first
    assert ports_from_text([]) is ports_from_text(None)


def test_the_shared_port_sets_stay_bounded() -> None:
    for port in range(2 * model._port_sets.kept):
        assert ports_from_text([f"TCP/{port}"]) == {("TCP", port)}
        assert len(model._port_sets) <= model._port_sets.kept


def test_keys_of_one_object_are_one_string() -> None:
    namespace, name = "".join(["sh", "op"]), "".join(["cart", "-1"])  # built, not literals
    from_cache = object_key({"metadata": {"namespace": namespace, "name": name}})
    assert from_cache == "shop/cart-1"
    assert namespaced_key(namespace, name) is from_cache
    assert Holder("Service", namespace, name, "uid-1").key is from_cache


def test_holders_read_from_records_share_kind_and_namespace() -> None:
    def record(address: str, name: str) -> dict[str, object]:
        holder = {"kind": "Service", "namespace": "shop", "name": name, "uid": f"u-{name}"}
        parsed: dict[str, object] = orjson.loads(
            orjson.dumps(
                {"metadata": {"name": address}, "spec": {"address": address, "holders": [holder]}}
            )
        )
        return parsed

    (a,) = AddressRecordView.from_raw(record("10.0.0.1", "a")).holders
    (b,) = AddressRecordView.from_raw(record("10.0.0.2", "b")).holders
    assert (a.kind, a.namespace) == ("Service", "shop")
    assert a.kind is b.kind
    assert a.namespace is b.namespace


def test_the_shared_string_table_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unlike ``sys.intern`` on Python 3.12 (immortal strings), the table lets go: it never
    holds more than ``kept`` strings, however many distinct keys come and go."""
    monkeypatch.setattr(interning.shared, "kept", 8)
    for i in range(100):
        key = interning.shared(f"ns-{i}/svc-{i}")
        assert interning.shared("".join(["ns-", str(i), "/svc-", str(i)])) is key
        assert len(interning.shared) <= 8


def test_equal_addresses_are_one_object_however_they_were_read() -> None:
    """A VIP read from its Vip, its record, the Service's status (spelled leniently) and the
    allocator that gave it is one object."""
    allocator = Allocator(parse_vip_range('["10.7.0.1 - 10.7.0.2"]'))
    given = allocator.allocate("shop/web").address
    assert given == ipaddress.ip_address("10.7.0.1")
    assert parse_address("".join(["10.7.", "0.1"])) is given
    assert parse_ip(" 10.7.0.1") is given
    assert parse_shown("10.7.0.01") is given
    assert parse_shown("::ffff:10.7.0.1") is given
    assert parse_address("2001:db8::1") is parse_address("2001:db8:0::1")
