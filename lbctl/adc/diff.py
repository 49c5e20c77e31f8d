"""From (desired, actual) ADC state to the fewest NITRO operations, in a safe order.

Pure.  Attributes are compared one by one, so a changed attribute is an update of that
attribute, never a delete and re-add; only a change of an attribute the ADC cannot update
(e.g. an lb vserver's service type) recreates the object.  Deleting a service group or lb
vserver removes its bindings on the ADC too, which the plan accounts for instead of unbinding
first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lbctl.adc.state import (
    BINDING_KINDS,
    BINDING_PARENT,
    IMMUTABLE,
    OBJECT_KINDS,
    Attrs,
    Key,
    State,
    same,
)

ADD_ORDER = {kind: i for i, kind in enumerate(OBJECT_KINDS)}
"""Monitors and groups before the vservers and bindings that refer to them."""
DELETE_ORDER = {kind: i for i, kind in enumerate(reversed(OBJECT_KINDS))}


@dataclass(frozen=True)
class Op:
    action: str
    """add, update, delete, bind or unbind."""
    key: Key
    attrs: Attrs = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.action} {self.key}"


def changed(desired: Attrs, actual: Attrs) -> Attrs:
    return {k: v for k, v in desired.items() if not same(v, actual.get(k))}


def diff(desired: State, actual: State) -> list[Op]:
    """Operations that turn ``actual`` into ``desired`` (both one Service's objects)."""
    recreate: set[Key] = set()
    updates: list[Op] = []
    for key, attrs in desired.items():
        if key.kind not in OBJECT_KINDS or key not in actual:
            continue
        delta = changed(attrs, actual[key])
        if delta.keys() & IMMUTABLE[key.kind]:
            recreate.add(key)
        elif delta:
            updates.append(Op("update", key, delta))
    gone = {k for k in actual if k.kind in OBJECT_KINDS and k not in desired} | recreate
    gone_parents = {(k.kind, k.name) for k in gone}

    def cascaded(key: Key) -> bool:
        return key.kind in BINDING_KINDS and (BINDING_PARENT[key.kind], key.name) in gone_parents

    def refers_to_gone(key: Key) -> bool:
        """A binding to an object about to be deleted, under a parent that stays."""
        referred = {"monitor_binding": "lbmonitor", "vserver_binding": "servicegroup"}
        kind = referred.get(key.kind)
        return kind is not None and Key(kind, key.sub[0]) in gone

    detach = {k for k in actual if refers_to_gone(k) and not cascaded(k)}
    present = {k for k in actual if k not in gone and not cascaded(k) and k not in detach}
    ops: list[Op] = []
    # A bound monitor (or service group) cannot be deleted: unbind it where it stays bound.
    ops += [Op("unbind", k) for k in sorted(detach)]
    ops += [
        Op("delete", k, actual[k])
        for k in sorted(recreate, key=lambda k: (DELETE_ORDER[k.kind], k))
    ]
    ops += [
        Op("add", k, desired[k])
        for k in sorted(desired, key=lambda k: (ADD_ORDER.get(k.kind, 9), k))
        if k.kind in OBJECT_KINDS and (k not in actual or k in recreate)
    ]
    ops += updates
    ops += [Op("bind", k) for k in sorted(desired) if k.kind in BINDING_KINDS and k not in present]
    ops += [
        Op("unbind", k) for k in sorted(present) if k.kind in BINDING_KINDS and k not in desired
    ]
    ops += [
        Op("delete", k, actual[k])
        for k in sorted(gone - recreate, key=lambda k: (DELETE_ORDER[k.kind], k))
    ]
    return ops


def apply(state: State, op: Op) -> None:
    """Record in ``state`` the effect of a successful ``op`` (cascades included)."""
    if op.action in ("add", "bind"):
        state[op.key] = dict(op.attrs)
    elif op.action == "update":
        state.setdefault(op.key, {}).update(op.attrs)
    else:
        state.pop(op.key, None)
        if op.action == "delete":
            for key in [k for k in state if k.kind in BINDING_KINDS]:
                if (BINDING_PARENT[key.kind], key.name) == (op.key.kind, op.key.name):
                    del state[key]
