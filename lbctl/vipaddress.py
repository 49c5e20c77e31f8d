"""Views of ``VipAddress`` records and the names lbctl gives them (pure: no I/O).

One record per address in use, named by the address, naming its holders: the apiserver's
proof that an address is taken (see ``lbctl.reconcile.addresses`` for the writes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lbctl.interning import shared
from lbctl.model import (
    MANAGED_BY_LABEL,
    MANAGER,
    IPAddress,
    Port,
    namespaced_key,
    parse_ip,
    ports_from_text,
    ports_text,
)

ADDRESS_FINALIZER = "ipam.citrix.com/in-use"
"""Keeps a ``VipAddress`` (and so its name, the address) while lbctl still has a holder of it:
deleting the record by hand waits until the holders have let the address go."""


def record_name(address: IPAddress) -> str:
    """The name of an address's ``VipAddress``: the canonical address itself for IPv4
    (``10.0.0.7``); for IPv6, which ``:`` cannot name, the exploded form with ``-``
    (``2001-0db8-0000-…-0001``), so each address has exactly one name."""
    if address.version == 4:
        return str(address)
    return address.exploded.replace(":", "-")


@dataclass(frozen=True, slots=True)
class Holder:
    """One holder named by a ``VipAddress``: a Service (or a hand-made Vip) by key and UID."""

    kind: str
    namespace: str
    name: str
    uid: str
    ports: frozenset[Port] = frozenset()
    load_balancer_class: str | None = None
    """The class of the lbctl instance that claimed it: instances of other classes sharing
    the cluster leave this holder alone while its Service exists."""

    @property
    def key(self) -> str:
        return namespaced_key(self.namespace, self.name)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            **({"ports": ports_text(self.ports)} if self.ports else {}),
            **({"loadBalancerClass": self.load_balancer_class} if self.load_balancer_class else {}),
        }


@dataclass(frozen=True)
class AddressRecordView:
    """A ``VipAddress``: the apiserver's proof that one address is held, and by whom."""

    name: str
    uid: str
    resource_version: str
    address: IPAddress | None
    sharing_key: str | None
    holders: tuple[Holder, ...]
    deleting: bool
    created: str = ""
    """``metadata.creationTimestamp`` (RFC 3339, UTC)."""

    @property
    def holder_keys(self) -> frozenset[str]:
        return frozenset(h.key for h in self.holders)

    def holder(self, uid: str) -> Holder | None:
        return next((h for h in self.holders if h.uid == uid), None)

    @classmethod
    def from_raw(cls, obj: dict[str, Any]) -> AddressRecordView:
        meta: dict[str, Any] = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        address = parse_ip(spec.get("address"))
        if address is not None and record_name(address) != meta.get("name"):
            address = None  # a record must be named by its address to prove anything
        holders = tuple(
            Holder(  # kind and namespace interned: the index keeps a Holder per Service
                shared(str(h.get("kind") or "Service")),
                shared(str(h.get("namespace") or "")),
                str(h.get("name") or ""),
                str(h.get("uid") or ""),
                ports_from_text(h.get("ports")),
                h.get("loadBalancerClass") or None,
            )
            for h in spec.get("holders") or []
            if isinstance(h, dict)
        )
        return cls(
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            resource_version=str(meta.get("resourceVersion", "")),
            address=address,
            sharing_key=spec.get("sharingKey") or None,
            holders=holders,
            deleting=bool(meta.get("deletionTimestamp")),
            created=str(meta.get("creationTimestamp") or ""),
        )


def address_record(
    address: IPAddress, holder: Holder, pool: str | None, sharing_key: str | None
) -> dict[str, Any]:
    """A new ``VipAddress`` for ``address`` naming one holder."""
    return {
        "apiVersion": "ipam.citrix.com/v1",
        "kind": "VipAddress",
        "metadata": {
            "name": record_name(address),
            "labels": {MANAGED_BY_LABEL: MANAGER},
            "finalizers": [ADDRESS_FINALIZER],
        },
        "spec": {
            "address": str(address),
            "pool": pool or "",
            **({"sharingKey": sharing_key} if sharing_key else {}),
            "holders": [holder.to_json()],
        },
    }
