"""ADC state as plain data: objects and bindings keyed uniformly, read from NITRO listings.

Pure.  A :class:`Key` names one object (``lbvserver``, ``servicegroup``, ``lbmonitor``) or one
binding (``member``, ``vserver_binding``, ``monitor_binding``, the parent's name plus the bound
thing).  NITRO returns numbers sometimes as strings; :func:`same` compares after normalising.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lbctl.adc.annotations import (
    ALLOWED,
    LBVSERVER_ANNOTATION,
    MONITOR_ANNOTATION,
    SERVICEGROUP_ANNOTATION,
)
from lbctl.adc.names import Owner, owner_of
from lbctl.interning import Table, shared

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
MANAGED_ATTRS = {
    "lbvserver": ("name", "servicetype", "ipv46", "port", "lbmethod", "persistencetype",
                  "timeout", "comment", *ALLOWED[LBVSERVER_ANNOTATION]),
    "servicegroup": ("servicegroupname", "servicetype", "comment",
                     *ALLOWED[SERVICEGROUP_ANNOTATION]),
    "lbmonitor": ("monitorname", "type", "destport", "httprequest", "respcode", "comment",
                  *ALLOWED[MONITOR_ANNOTATION]),
}  # fmt: skip
"""What lbctl reads back (``?attrs=``) and keeps of its objects: what it may set."""
BINDING_ATTRS = {
    "servicegroup_servicegroupmember_binding": ("servicegroupname", "ip", "servername", "port"),
    "lbvserver_servicegroup_binding": ("name", "servicegroupname"),
    "servicegroup_lbmonitor_binding": ("servicegroupname", "monitor_name"),
}
IMMUTABLE = {
    "lbvserver": frozenset({"servicetype", "port", "td", "range"}),
    "servicegroup": frozenset({"servicetype", "td"}),
    "lbmonitor": frozenset({"type"}),
}


@dataclass(frozen=True, order=True, slots=True)
class Key:
    kind: str
    name: str
    sub: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # One string per object name, node IP and port, however many keys refer to it.
        object.__setattr__(self, "name", shared(self.name))
        if self.sub:
            object.__setattr__(self, "sub", tuple(shared(s) for s in self.sub))

    def __str__(self) -> str:
        return f"{self.kind} {self.name}" + (f" {'/'.join(self.sub)}" if self.sub else "")


State = dict[Key, Attrs]
NO_ATTRS: Mapping[str, Any] = {}
"""A binding's attributes: it is its key, nothing to compare."""


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


class Listing:
    """One instance's objects on the ADC (under its owner key), indexed by Service and parent.

    Held for every Service, so it is kept compact: an object's attributes are one tuple, the
    names first (shared by every object with the same names) and then the values; a parent's
    bindings are found by its name, a lone binding held bare, several in a list.  A one-port
    Service on three nodes read from a NITRO reply costs about 1.6 KB so, strings included,
    against 2.2 KB as dicts of attributes and a list per parent (CPython 3.11)."""

    def __init__(self) -> None:
        self._rows: dict[Key, tuple[Any, ...]] = {}
        """Key → (attribute names, value, ...); ``()`` for a binding."""
        self._owner: dict[Key, str] = {}
        self._by_owner: dict[str, list[Key]] = {}
        self._children: dict[str, dict[str, Key | list[Key]]] = {
            kind: {} for kind in set(BINDING_PARENT.values())
        }
        """Parent kind → parent name → its binding's key, or its bindings' keys."""

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def __iter__(self) -> Iterator[Key]:
        """Every object's and binding's key."""
        return iter(self._rows)

    def attrs(self, key: Key) -> Attrs:
        """A new dict of the attributes kept of ``key``.  Raises KeyError if it is absent."""
        row = self._rows[key]
        return dict(zip(row[0], row[1:], strict=True)) if row else {}

    def state(self) -> State:
        """Everything listed, as :data:`State`."""
        return {key: self.attrs(key) for key in self._rows}

    def put(self, key: Key, attrs: Mapping[str, Any], owner: str | None = None) -> None:
        """Add or replace an object (with its owning Service) or a binding.  What is already
        there as it is stays (a drift pass puts everything again: the objects it made would
        replace long-lived ones for nothing)."""
        row = _row(attrs)
        before = self._rows.get(key)
        if before != row:
            self._rows[key] = row
        if key.kind in BINDING_KINDS:
            if before is None:
                self._add_child(key)
        elif owner is not None and self._owner.get(key) != owner:
            self._forget_owner(key)
            self._owner[key] = owner
            self._by_owner.setdefault(owner, []).append(key)

    def update(self, key: Key, attrs: Mapping[str, Any]) -> None:
        """Set some attributes of an object that is listed (nothing if it is not)."""
        if key in self._rows:
            self._rows[key] = _row({**self.attrs(key), **attrs})

    def drop(self, key: Key) -> None:
        """Remove an object, and the bindings the ADC removes with it."""
        known = self._rows.pop(key, None) is not None
        if key.kind in BINDING_KINDS:
            if known:
                self._remove_child(key)
            return
        for child in self.of_parent(key):
            self._rows.pop(child, None)
        self._children.get(key.kind, {}).pop(key.name, None)
        self._forget_owner(key)

    def _add_child(self, key: Key) -> None:
        under = self._children[BINDING_PARENT[key.kind]]
        found = under.get(key.name)
        if found is None:
            under[key.name] = key
        elif isinstance(found, list):
            found.append(key)
        else:
            under[key.name] = [found, key]

    def _remove_child(self, key: Key) -> None:
        under = self._children[BINDING_PARENT[key.kind]]
        found = under.get(key.name)
        if isinstance(found, list):
            found.remove(key)
            if len(found) == 1:
                under[key.name] = found[0]
        elif found == key:
            del under[key.name]

    def _forget_owner(self, key: Key) -> None:
        owner = self._owner.pop(key, None)
        if owner is not None:
            keys = self._by_owner[owner]
            keys.remove(key)
            if not keys:
                del self._by_owner[owner]

    def of(self, owner: str) -> State:
        """Everything that belongs to ``owner``: its objects and the bindings under them."""
        found: State = {}
        for key in self._by_owner.get(owner, ()):
            found[key] = self.attrs(key)
            for child in self.of_parent(key):
                found[child] = self.attrs(child)
        return found

    def owned(self, kind: str) -> dict[str, str]:
        """Name → owning Service of each object of ``kind`` (``lbvserver``, ...)."""
        return {key.name: owner for key, owner in self._owner.items() if key.kind == kind}

    def of_parent(self, key: Key) -> set[Key]:
        found = self._children.get(key.kind, {}).get(key.name)
        if found is None:
            return set()
        return set(found) if isinstance(found, list) else {found}

    def owns(self, owner: str) -> bool:
        return owner in self._by_owner

    def owner_keys(self) -> set[str]:
        return set(self._by_owner)


_names: Table[tuple[str, ...]] = Table(1024)
"""Each distinct tuple of attribute names once (a handful: one or two per kind)."""


def _row(attrs: Mapping[str, Any]) -> tuple[Any, ...]:
    """Attributes as a listing keeps them: ``(names, value, ...)``, ``()`` when there are none
    (160 bytes for an lb vserver's 8 attributes against 290 as a dict)."""
    if not attrs:
        return ()
    return (_names(tuple(attrs)), *(_kept(k, v) for k, v in attrs.items()))


def read_listing(owner: str | Owner, rows: Mapping[str, Iterable[Mapping[str, Any]]]) -> Listing:
    """Build a :class:`Listing` from full NITRO listings (resource name → rows)."""
    listing = Listing()
    for kind in OBJECT_KINDS:
        read_objects(listing, owner, kind, rows.get(kind, ()))
    for kind, resource in BINDING_RESOURCE.items():
        read_bindings(listing, kind, rows.get(resource, ()))
    return listing


def read_objects(
    listing: Listing, owner: str | Owner, kind: str, rows: Iterable[Mapping[str, Any]]
) -> list[Key]:
    """Put the objects of ``kind`` (``lbvserver``, ...) among ``rows`` that are this
    instance's (their name has its prefix and their comment names exactly its owner key)
    into ``listing``; their keys.  Rows may come a page at a time."""
    found: list[Key] = []
    for row in rows:
        name = str(row.get(KEY_FIELD[kind], ""))
        port = owner_of(owner, name, row.get("comment"))
        if port is not None:
            key = Key(kind, name)
            listing.put(key, {k: row[k] for k in MANAGED_ATTRS[kind] if k in row}, port.owner)
            found.append(key)
    return found


def _kept(attr: str, value: Any) -> Any:
    """An attribute's value as a listing keeps it: each string once however many objects
    have it (``TCP``, ``ROUNDROBIN``, the name its key holds already: about ten strings per
    Service otherwise), but for those nothing else has (the comment, which names one owner, and
    the lb vserver's address): sharing those would only add an entry to the table."""
    return shared(value) if isinstance(value, str) and attr not in _UNSHARED else value


_UNSHARED = frozenset({"comment", "ipv46"})


def read_bindings(listing: Listing, kind: str, rows: Iterable[Mapping[str, Any]]) -> list[Key]:
    """Put the bindings of ``kind`` (``member``, ...) among ``rows`` whose parent object is
    in ``listing`` (read the objects first); their keys."""
    parent = BINDING_PARENT[kind]
    found: list[Key] = []
    for row in rows:
        key = binding_key(kind, row)
        if key is not None and Key(parent, key.name) in listing:
            listing.put(key, NO_ATTRS)
            found.append(key)
    return found
