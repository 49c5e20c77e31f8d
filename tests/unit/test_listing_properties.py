"""Listing's indexes agree with a plain model of the ADC's objects, whatever the order of puts
and drops (a binding may come before its parent, as a journal replay puts it)."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from lbctl.adc.names import PortId, object_name, ownership_comment
from lbctl.adc.state import (
    BINDING_KINDS,
    BINDING_PARENT,
    OBJECT_KINDS,
    Key,
    Listing,
    read_objects,
)

NAMES = st.just("a")
OBJECT = st.builds(Key, st.sampled_from(OBJECT_KINDS), NAMES)
BINDING = st.builds(
    Key, st.sampled_from(BINDING_KINDS), NAMES, st.tuples(st.sampled_from(["10.0.0.1", "x"]))
)
OWNERS = st.sampled_from(["ns/one", "ns/two"])
STEP = st.one_of(
    st.tuples(st.just("put"), OBJECT, OWNERS),
    st.tuples(st.just("put"), BINDING, st.none()),
    st.tuples(st.just("drop"), st.one_of(OBJECT, BINDING), st.none()),
)


def parent(key: Key) -> Key:
    return Key(BINDING_PARENT[key.kind], key.name)


@settings(max_examples=500)
@given(st.lists(STEP, max_size=40))
def test_listing_matches_a_model(steps: list[tuple[str, Key, str | None]]) -> None:
    listing = Listing()
    objects: dict[Key, str | None] = {}  # key → owner (None for a binding)
    attrs: dict[Key, dict[str, int]] = {}
    for n, (action, key, owner) in enumerate(steps):
        if action == "put":
            listing.put(key, {"n": n % 2}, owner)
            objects[key], attrs[key] = owner, {"n": n % 2}
        else:
            listing.drop(key)
            objects.pop(key, None)
            if key.kind in OBJECT_KINDS:  # the ADC removes its bindings with it
                for gone in [k for k in objects if k.kind in BINDING_KINDS and parent(k) == key]:
                    del objects[gone]
    assert listing.objects == {k: attrs[k] for k in objects}
    owners = {o for o in objects.values() if o is not None}
    assert listing.owner_keys() == owners
    for kind in OBJECT_KINDS:
        named = {k.name: o for k, o in objects.items() if k.kind == kind and o is not None}
        assert listing.owned(kind) == named
    for owner in ("ns/one", "ns/two"):
        mine = {k for k, o in objects.items() if o == owner}
        under = {k for k in objects if k.kind in BINDING_KINDS and parent(k) in mine}
        assert set(listing.of(owner)) == mine | under
        assert listing.owns(owner) == (owner in owners)
    for key in objects:
        if key.kind in OBJECT_KINDS:
            children = {k for k in objects if k.kind in BINDING_KINDS and parent(k) == key}
            assert listing.of_parent(key) == children


def test_listed_objects_share_their_attribute_strings() -> None:
    """Rows parsed from two replies (every string a new object) keep one copy of each value
    they share, and of the name their key holds."""
    rows = []
    for service in ("web", "db"):
        port = PortId("shop", service, 80, "TCP")
        row = {"name": object_name("k8s", port, "lbv"), "servicetype": "TCP", "port": 80,
               "lbmethod": "ROUNDROBIN", "comment": ownership_comment("k8s", port)}  # fmt: skip
        rows.extend(orjson.loads(orjson.dumps([row])))
    listing = Listing()
    web, db = read_objects(listing, "k8s", "lbvserver", rows)
    for attr in ("servicetype", "lbmethod"):
        assert listing.objects[web][attr] is listing.objects[db][attr]
    assert listing.objects[web]["name"] is web.name
