"""ADC state as plain data: objects and bindings keyed uniformly, read from NITRO listings.

Pure.  A :class:`Key` names one object (``lbvserver``, ``servicegroup``, ``lbmonitor``) or one
binding (``member``, ``vserver_binding``, ``monitor_binding``, the parent's name plus the bound
thing).  NITRO returns numbers sometimes as strings; :func:`same` compares after normalising.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lbctl.adc.names import owner_of

Attrs = dict[str, Any]

OBJECT_KINDS = ("lbmonitor", "servicegroup", "lbvserver")
BINDING_KINDS = ("member", "vserver_binding", "monitor_binding")
KEY_FIELD = {"lbvserver": "name", "servicegroup": "servicegroupname", "lbmonitor": "monitorname"}
BINDING_RESOURCE = {
    "member": "servicegroup_servicegroupmember_binding",
    "vserver_binding": "lbvserver_servicegroup_binding",
    "monitor_binding": "servicegroup_lbmonitor_binding",
}
BINDING_PARENT = {"member": "servicegroup", "vserver_binding": "lbvserver",
                  "monitor_binding": "servicegroup"}  # fmt: skip
IMMUTABLE = {
    "lbvserver": frozenset({"servicetype", "port", "td", "range"}),
    "servicegroup": frozenset({"servicetype", "td"}),
    "lbmonitor": frozenset({"type"}),
}


@dataclass(frozen=True, order=True)
class Key:
    kind: str
    name: str
    sub: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.kind} {self.name}" + (f" {'/'.join(self.sub)}" if self.sub else "")


State = dict[Key, Attrs]


def normalise(value: object) -> object:
    if isinstance(value, list | tuple):
        return tuple(sorted(str(normalise(v)) for v in value))
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.lstrip("-").isdigit() else text


def same(desired: object, actual: object) -> bool:
    return normalise(desired) == normalise(actual)


def binding_key(kind: str, item: Mapping[str, Any]) -> Key | None:
    """The key of one binding row from a NITRO listing, or None if it is malformed."""
    try:
        if kind == "member":
            ip = item.get("ip") or item.get("servername")
            return Key(kind, str(item["servicegroupname"]), (str(ip), str(int(item["port"]))))
        if kind == "vserver_binding":
            return Key(kind, str(item["name"]), (str(item["servicegroupname"]),))
        return Key(kind, str(item["servicegroupname"]), (str(item["monitor_name"]),))
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class Listing:
    """lbctl's objects on the ADC (under one prefix), indexed by owning Service."""

    objects: State
    owners: dict[Key, str]
    """Object key → "namespace/name" of the Service it belongs to."""

    def of(self, owner: str) -> State:
        """Everything that belongs to ``owner``: its objects and the bindings under them."""
        mine = {k for k, o in self.owners.items() if o == owner}
        names = {(k.kind, k.name) for k in mine}
        return {
            k: v
            for k, v in self.objects.items()
            if k in mine or (k.kind in BINDING_KINDS and (BINDING_PARENT[k.kind], k.name) in names)
        }

    def owner_keys(self) -> set[str]:
        return set(self.owners.values())


def read_listing(prefix: str, rows: Mapping[str, Iterable[Mapping[str, Any]]]) -> Listing:
    """Build a :class:`Listing` from full NITRO listings (resource name → rows).

    Objects count as lbctl's only when name prefix and ownership comment agree; bindings only
    when their parent object is lbctl's.
    """
    objects: State = {}
    owners: dict[Key, str] = {}
    for kind in OBJECT_KINDS:
        for row in rows.get(kind, ()):
            name = str(row.get(KEY_FIELD[kind], ""))
            port = owner_of(prefix, name, row.get("comment"))
            if port is not None:
                key = Key(kind, name)
                objects[key] = dict(row)
                owners[key] = port.owner
    ours = {(k.kind, k.name) for k in objects}
    for kind, resource in BINDING_RESOURCE.items():
        for row in rows.get(resource, ()):
            found = binding_key(kind, row)
            if found is not None and (BINDING_PARENT[kind], found.name) in ours:
                objects[found] = dict(row)
    return Listing(objects, owners)
