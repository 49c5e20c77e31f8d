"""Read-only views of the raw Service and Vip objects, and the names lbctl writes.

Pure: parsing only, no I/O.  Views copy what the reconcilers need out of the cached dicts, so
nothing downstream can mutate the informer cache by accident.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lbctl.interning import Table, addresses, shared

LB_FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
VIP_ANNOTATION = "com.citrix.vip"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGER = "lbctl"
SERVICE_UID_ANNOTATION = "lbctl.io/service-uid"
IPAM_RANGE_ANNOTATION = "service.citrix.com/ipam-range"
"""On a Service: the pool to take its address from (NetScaler IPAM's annotation)."""
REQUESTED_POOL_ANNOTATION = "lbctl.io/requested-pool"
"""On a Vip: the pool its Service named (``ipam-range``; empty: none) when it got the address,
so only a change of the request, never an edit of the pools, moves it."""
CLASS_ANNOTATION = "lbctl.io/load-balancer-class"
"""On a Vip: the class of the lbctl instance that made it, so instances of two classes can
tell their records apart (absent: class-less, or made before the annotation existed)."""
SHARED_IP_ANNOTATION = "lbctl.io/allow-shared-ip"

Port = tuple[str, int]
FAMILY_VERSIONS = {"IPv4": 4, "IPv6": 6}
SINGLE_STACK = "SingleStack"
REQUIRE_DUAL_STACK = "RequireDualStack"


RESERVED = "#reserved:"
"""Share keys "<namespace>/#reserved:<Vip name>" join a reservation Vip and the one Service
that claimed its address."""


def secondary_owner(key: str) -> str:
    """The allocator owner of a dual-stack Service's address of its second IP family."""
    return f"{key}#secondary"


def _ports_of(spec: dict[str, Any]) -> frozenset[Port]:
    return frozenset(
        (str(p.get("protocol") or "TCP"), int(p["port"]))
        for p in spec.get("ports") or []
        if isinstance(p, dict) and isinstance(p.get("port"), int)
    )


def ports_text(ports: frozenset[Port]) -> list[str]:
    """Vip ``spec.ports`` entries, sorted: ["TCP/443", "TCP/80"]."""
    return sorted(f"{protocol}/{port}" for protocol, port in ports)


_port_sets: Table[frozenset[Port]] = Table(4096)
"""Each distinct set of ports once, however many Vips and holders name it (two per Service,
about 340 bytes each otherwise)."""


def ports_from_text(items: Any) -> frozenset[Port]:
    """Vip ``spec.ports`` entries such as "TCP/80"; malformed ones are ignored.  Equal sets
    come back as one shared object."""
    ports = set()
    for item in items if isinstance(items, list) else []:
        protocol, _, number = str(item).partition("/")
        if number.isdigit():
            ports.add((protocol, int(number)))
    return _port_sets(frozenset(ports))


def namespaced_key(namespace: str, name: str) -> str:
    """``namespace/name``, interned: one string per object however many indexes hold its
    key (it was four copies per Service, 60 bytes each)."""
    return shared(f"{namespace}/{name}")


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressError(ValueError):
    """Text that is not an address lbctl can store and compare: the message says why."""


def parse_address(text: str) -> IPAddress:
    """The address ``text`` names, in canonical form (RFC 5952 for IPv6, as ``str()`` gives).

    Refused, because each would let one address be booked twice under two spellings: an IPv6
    zone id (``2001:db8::1%eth0`` is unequal to ``2001:db8::1`` in Python) and an IPv4-mapped
    IPv6 address (``::ffff:10.0.0.1`` is unequal to ``10.0.0.1``).  IPv4 with leading zeros
    is refused by ``ipaddress`` itself.
    """
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise AddressError(f"{text!r} is not an IP address") from None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            raise AddressError(
                f"{text!r} has an IPv6 zone id (%{address.scope_id}), which a VIP cannot have"
            )
        if address.ipv4_mapped is not None:
            raise AddressError(
                f"{text!r} is an IPv4-mapped IPv6 address; write it as {address.ipv4_mapped}"
            )
    return addresses(address)


def parse_ip(text: Any) -> IPAddress | None:
    """Like :func:`parse_address`, but None for anything that is not a usable address."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_address(text)
    except AddressError:
        return None


def parse_shown(text: Any) -> IPAddress | None:
    """An address a Service shows (``com.citrix.vip``, ``status.loadBalancer.ingress``), read
    as leniently as the apiserver accepts it there, so that what another Service shows cannot
    escape comparison by its spelling: IPv4 with leading zeros is decimal (``10.0.0.01`` is
    ``10.0.0.1``, as ``netutils.ParseIPSloppy`` reads it), an IPv4-mapped IPv6 address is its
    IPv4 address.  None for anything else that is not a usable address.  Requests and
    records are parsed strictly (``parse_address``)."""
    found = parse_ip(text)
    if found is not None or not isinstance(text, str) or not text:
        return found
    text = text.strip()
    octets = text.split(".")
    if len(octets) == 4 and all(o.isascii() and o.isdigit() for o in octets):
        with contextlib.suppress(ValueError):
            return addresses(ipaddress.IPv4Address(".".join(o.lstrip("0") or "0" for o in octets)))
    with contextlib.suppress(ValueError):
        mapped = ipaddress.IPv6Address(text).ipv4_mapped
        return None if mapped is None else addresses(mapped)
    return None


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = obj.get("metadata") or {}
    return meta


@dataclass(frozen=True)
class ServiceView:
    namespace: str
    name: str
    uid: str
    resource_version: str
    type: str
    load_balancer_class: str | None
    deleting: bool
    finalizers: tuple[str, ...]
    annotations: dict[str, str]
    ingress_ips: tuple[str, ...]
    load_balancer_ip: str | None
    ports: frozenset[Port]
    ip_families: tuple[int, ...] = (4,)
    """IP versions from spec.ipFamilies, in order (the apiserver fills them in)."""
    ip_family_policy: str = SINGLE_STACK
    labels: Mapping[str, str] = field(default_factory=dict)
    """metadata.labels, for pools' serviceSelector."""
    conditions: tuple[Mapping[str, Any], ...] = ()
    """status.conditions as read (other controllers' too: a write keeps them)."""
    generation: int = 0

    @property
    def key(self) -> str:
        return namespaced_key(self.namespace, self.name)

    @property
    def requested_pool(self) -> str | None:
        """The pool the Service names (``service.citrix.com/ipam-range``), if any."""
        return self.annotations.get(IPAM_RANGE_ANNOTATION, "").strip() or None

    @property
    def families(self) -> tuple[int, ...]:
        """The IP versions the Service gets an address of: its first family, and the second
        one too when it asks for dual-stack."""
        if self.ip_family_policy == SINGLE_STACK:
            return self.ip_families[:1]
        return self.ip_families[:2]

    @property
    def share_key(self) -> str | None:
        """The sharing key, scoped to the namespace (sharing never crosses namespaces); a
        value in lbctl's reservation form (``#reserved:...``) is no key: those addresses are
        claimed only by asking for them."""
        value = self.annotations.get(SHARED_IP_ANNOTATION, "").strip()
        return f"{self.namespace}/{value}" if value and not value.startswith(RESERVED) else None

    @property
    def is_load_balancer(self) -> bool:
        return self.type == "LoadBalancer"

    @property
    def has_finalizer(self) -> bool:
        return LB_FINALIZER in self.finalizers

    def ingress_addresses(self) -> list[IPAddress]:
        """Addresses ``status.loadBalancer.ingress`` shows, parsed (so compared canonically)."""
        return [a for a in map(parse_shown, self.ingress_ips) if a is not None]

    def held_addresses(self) -> list[IPAddress]:
        """Addresses the Service already shows (annotation first, then status), parsed."""
        found: list[IPAddress] = []
        for text in (self.annotations.get(VIP_ANNOTATION), *self.ingress_ips):
            address = parse_shown(text)
            if address is not None and address not in found:
                found.append(address)
        return found

    @classmethod
    def from_raw(cls, obj: dict[str, Any]) -> ServiceView:
        meta = _meta(obj)
        spec = obj.get("spec") or {}
        ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta.get("uid", ""),
            resource_version=meta.get("resourceVersion", ""),
            type=spec.get("type", "ClusterIP"),
            load_balancer_class=spec.get("loadBalancerClass"),
            deleting=bool(meta.get("deletionTimestamp")),
            finalizers=tuple(meta.get("finalizers") or ()),
            annotations=dict(meta.get("annotations") or {}),
            ingress_ips=tuple(str(i["ip"]) for i in ingress if isinstance(i, dict) and "ip" in i),
            load_balancer_ip=spec.get("loadBalancerIP") or None,
            ports=_ports_of(spec),
            ip_families=tuple(
                FAMILY_VERSIONS[f]
                for f in spec.get("ipFamilies") or ["IPv4"]
                if f in FAMILY_VERSIONS
            )
            or (4,),
            ip_family_policy=str(spec.get("ipFamilyPolicy") or SINGLE_STACK),
            labels=meta.get("labels") or {},
            conditions=tuple((obj.get("status") or {}).get("conditions") or ()),
            generation=int(meta.get("generation") or 0),
        )


@dataclass(frozen=True)
class VipView:
    namespace: str
    name: str
    uid: str
    resource_version: str
    address_text: str | None
    service: str | None
    service_uid: str | None
    managed: bool
    deleting: bool
    status: dict[str, Any]
    sharing_key: str | None
    ports: frozenset[Port]
    secondary_text: str | None = None
    load_balancer_class: str | None = None
    pool: str | None = None
    """spec.pool: for a Vip made by hand without an address, the pool to fill it from."""
    requested_pool: str | None = None
    """The pool its Service named when it got its address ("": none); None: not recorded."""
    generation: int = 0

    @property
    def secondary(self) -> IPAddress | None:
        return parse_ip(self.secondary_text)

    @property
    def share_key(self) -> str | None:
        if self.sharing_key:
            return f"{self.namespace}/{self.sharing_key}"
        if self.is_reservation and self.address is not None:
            return f"{self.namespace}/{RESERVED}{self.name}"
        return None

    @property
    def is_reservation(self) -> bool:
        """Made by a user with an address and no Service: the address is kept from automatic
        allocation, and a Service of the namespace that requests it may claim it."""
        return not self.managed and self.service is None and self.address_text is not None

    @property
    def key(self) -> str:
        return namespaced_key(self.namespace, self.name)

    @property
    def address(self) -> IPAddress | None:
        return parse_ip(self.address_text)

    @classmethod
    def from_raw(cls, obj: dict[str, Any]) -> VipView:
        meta = _meta(obj)
        spec = obj.get("spec") or {}
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta.get("uid", ""),
            resource_version=meta.get("resourceVersion", ""),
            address_text=spec.get("ipaddress") or None,
            service=spec.get("service") or None,
            service_uid=annotations.get(SERVICE_UID_ANNOTATION),
            managed=labels.get(MANAGED_BY_LABEL) == MANAGER,
            deleting=bool(meta.get("deletionTimestamp")),
            status=dict(obj.get("status") or {}),
            sharing_key=spec.get("sharingKey") or None,
            ports=ports_from_text(spec.get("ports")),
            secondary_text=spec.get("secondaryIpaddress") or None,
            pool=spec.get("pool") or None,
            requested_pool=(meta.get("annotations") or {}).get(REQUESTED_POOL_ANNOTATION),
            generation=int(meta.get("generation") or 0),
            load_balancer_class=annotations.get(CLASS_ANNOTATION) or None,
        )


def vip_for_service(
    service: ServiceView,
    address: IPAddress | None,
    pool: str | None,
    share_key: str | None = None,
) -> dict[str, Any]:
    """The Vip lbctl creates for a Service: same name and namespace, address in the spec
    (empty while the Service waits for one)."""
    return {
        "apiVersion": "ipam.citrix.com/v1",
        "kind": "Vip",
        "metadata": {
            "name": service.name,
            "namespace": service.namespace,
            "labels": {MANAGED_BY_LABEL: MANAGER},
            "annotations": {
                SERVICE_UID_ANNOTATION: service.uid,
                REQUESTED_POOL_ANNOTATION: service.requested_pool or "",
                **_class_annotation(service.load_balancer_class),
            },
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": service.name,
                    "uid": service.uid,
                }
            ],
        },
        "spec": {
            "ipaddress": str(address) if address is not None else "",
            "service": service.name,
            "pool": pool or "",
            "description": f"LoadBalancer address of Service {service.key}",
            **sharing_spec(service, share_key),
        },
    }


def _class_annotation(load_balancer_class: str | None) -> dict[str, str]:
    return {CLASS_ANNOTATION: load_balancer_class} if load_balancer_class else {}


def sharing_spec(service: ServiceView, share_key: str | None) -> dict[str, Any]:
    """``sharingKey`` and ``ports`` of a Service's Vip: its sharing annotation, or the key of
    the reservation it claimed (``share_key``), so a restart rebuilds the sharing."""
    key = share_key or service.share_key
    if key is None:
        return {}
    return {
        "sharingKey": key.split("/", 1)[1],
        "ports": ports_text(service.ports),
    }
