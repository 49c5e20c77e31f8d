"""Parse ``VIP_RANGE`` into named pools of address ranges.

Accepted forms, IPv4 and IPv6 (the prototype's and NetScaler IPAM's, as a superset):

* a JSON list of CIDRs: ``["10.99.98.0/24"]``
* dash ranges: ``["10.0.0.10 - 10.0.0.20"]``; single addresses: ``["10.0.0.7"]``
* named ranges plus an unnamed default:
  ``[{"Prod": ["10.1.2.0/24"]}, {"Dev": ["10.1.4.0/24"]}, ["10.1.6.0/24"]]``

IPv4 CIDRs of /30 and larger lose their network and broadcast address, IPv6 CIDRs of /126 and
larger their subnet-router anycast address (the first, RFC 4291 2.6.1).  Every problem is a
``RangeError`` whose message names the offending element.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass

from lbctl.ipam.selector import LabelSelector

DEFAULT_POOL = "default"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RangeError(ValueError):
    """VIP_RANGE is not acceptable; the message names the offending element."""


@dataclass(frozen=True, order=True)
class AddressRange:
    """An inclusive range of addresses of one family, kept as integers."""

    version: int
    first: int
    last: int
    source: str

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def contains(self, address: IPAddress) -> bool:
        return address.version == self.version and self.first <= int(address) <= self.last


@dataclass(frozen=True)
class Pool:
    """A named set of address ranges and the policy for handing them out.

    ``VIP_RANGE`` pools keep the prototype's behaviour: ``default`` is assigned automatically,
    a named pool only to Services that ask for it.  ``VipPool`` objects set every field.
    """

    name: str
    ranges: tuple[AddressRange, ...]
    auto_assign: bool = True
    """False: only Services that ask for the pool, or for an address in it, get one."""
    avoid_buggy_ips: bool = False
    """Never hand out an IPv4 address ending in .0 or .255 (MetalLB's avoidBuggyIPs)."""
    priority: int | None = None
    """Among pools a Service may use, lower first; pools without a priority come last."""
    disabled: bool = False
    """Drain: addresses in use stay, nothing new is handed out."""
    namespace_selector: LabelSelector | None = None
    service_selector: LabelSelector | None = None
    origin: str = "VIP_RANGE"
    """Where the pool is defined: ``VIP_RANGE`` or ``VipPool``."""

    def contains(self, address: IPAddress) -> bool:
        return any(first <= int(address) <= last for first, last in self.intervals(address.version))

    def intervals(self, version: int) -> list[tuple[int, int]]:
        """The inclusive integer intervals of ``version`` that may be handed out."""
        found = [(r.first, r.last) for r in self.ranges if r.version == version]
        if not (self.avoid_buggy_ips and version == 4):
            return found
        usable = []
        for first, last in found:
            for block in range(first >> 8, (last >> 8) + 1):
                low, high = max(first, (block << 8) + 1), min(last, (block << 8) + 254)
                if low <= high:
                    usable.append((low, high))
        return usable

    @property
    def versions(self) -> list[int]:
        return sorted({r.version for r in self.ranges})

    def admits(self, namespace_labels: Mapping[str, str], labels: Mapping[str, str]) -> bool:
        """True when the pool's selectors match a Service with these labels in a namespace
        with ``namespace_labels`` (no selector matches everything)."""
        return (
            self.namespace_selector is None or self.namespace_selector.matches(namespace_labels)
        ) and (self.service_selector is None or self.service_selector.matches(labels))


def _address(text: str, element: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise RangeError(f"VIP_RANGE: {element!r} is not a valid IP address") from None


_MAPPED = ipaddress.ip_network("::ffff:0:0/96")


def parse_range(element: str) -> AddressRange:
    """One element: a CIDR, ``first - last`` or a single address; never one reaching into
    the IPv4-mapped IPv6 block, whose addresses lbctl refuses everywhere else."""
    found = _parse_range(element)
    mapped = int(_MAPPED.network_address), int(_MAPPED.broadcast_address)
    if found.version == 6 and found.first <= mapped[1] and found.last >= mapped[0]:
        raise RangeError(
            f"VIP_RANGE: {element!r} holds IPv4-mapped IPv6 addresses (::ffff:0:0/96); "
            "give IPv4 addresses as IPv4"
        )
    return found


def _parse_range(element: str) -> AddressRange:
    text = element.strip()
    if not text:
        raise RangeError("VIP_RANGE: an empty string is not a range")
    if "%" in text:
        raise RangeError(f"VIP_RANGE: {element!r} has an IPv6 zone id, which a VIP cannot have")
    if "-" in text and "/" not in text:
        first_text, _, last_text = text.partition("-")
        first, last = _address(first_text, element), _address(last_text, element)
        if first.version != last.version:
            raise RangeError(f"VIP_RANGE: {element!r} mixes IPv4 and IPv6")
        if int(last) < int(first):
            raise RangeError(f"VIP_RANGE: {element!r} is reversed (the end is below the start)")
        return AddressRange(first.version, int(first), int(last), element)
    if "/" in text:
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError as err:
            raise RangeError(f"VIP_RANGE: {element!r} is not a valid CIDR ({err})") from None
        low, high = int(network.network_address), int(network.broadcast_address)
        if network.version == 4 and network.prefixlen <= 30:
            low, high = low + 1, high - 1
        elif network.version == 6 and network.prefixlen <= 126:
            low += 1  # the subnet-router anycast address (RFC 4291 2.6.1)
        return AddressRange(network.version, low, high, element)
    address = _address(text, element)
    return AddressRange(address.version, int(address), int(address), element)


def _ranges(name: str, items: object) -> tuple[AddressRange, ...]:
    if not isinstance(items, list):
        raise RangeError(f"VIP_RANGE: pool {name!r} must be a list of ranges, got {items!r}")
    if not items:
        raise RangeError(f"VIP_RANGE: pool {name!r} is empty")
    parsed = []
    for item in items:
        if not isinstance(item, str):
            raise RangeError(f"VIP_RANGE: {item!r} in pool {name!r} is not a string")
        parsed.append(parse_range(item))
    return tuple(parsed)


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object; a key given twice would silently drop a pool, so it is refused."""
    found: dict[str, object] = {}
    for key, value in pairs:
        if key in found:
            raise RangeError(f"VIP_RANGE: pool name {key!r} is used twice")
        found[key] = value
    return found


def parse_vip_range(text: str) -> tuple[Pool, ...]:
    """Parse the whole ``VIP_RANGE`` value into pools; the unnamed one is ``default``.  An
    empty value or ``[]`` defines no pools (VipPool objects then define them all)."""
    if not text.strip():
        return ()
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        raise RangeError(f"VIP_RANGE is not valid JSON ({err.msg} at char {err.pos})") from None
    except RecursionError:
        raise RangeError("VIP_RANGE is nested too deeply to be a list of ranges") from None
    if not isinstance(document, list):
        raise RangeError(f"VIP_RANGE must be a JSON list, got {text.strip()!r}")
    named: dict[str, list[AddressRange]] = {}
    default: list[AddressRange] = []
    for element in document:
        if isinstance(element, str):
            default.append(parse_range(element))
        elif isinstance(element, list):
            default.extend(_ranges(DEFAULT_POOL, element))
        elif isinstance(element, dict) and len(element) == 1:
            ((name, items),) = element.items()
            if not isinstance(name, str) or not name.strip():
                raise RangeError(f"VIP_RANGE: pool name {name!r} is empty")
            if name == DEFAULT_POOL:
                raise RangeError(
                    f"VIP_RANGE: pool name {name!r} is reserved for the unnamed list of ranges"
                )
            if name in named:
                raise RangeError(f"VIP_RANGE: pool name {name!r} is used twice")
            named[name] = list(_ranges(name, items))
        else:
            raise RangeError(
                f"VIP_RANGE: {element!r} is neither a range, a list of ranges nor "
                f'a one-key object {{"name": [ranges]}}'
            )
    pools = [Pool(name, tuple(ranges), auto_assign=False) for name, ranges in named.items()]
    if default:
        pools.insert(0, Pool(DEFAULT_POOL, tuple(default)))
    _reject_overlaps(pools)
    return tuple(pools)


def _reject_overlaps(pools: list[Pool]) -> None:
    owned = sorted((r, pool.name) for pool in pools for r in pool.ranges)
    for (left, left_pool), (right, right_pool) in itertools.pairwise(owned):
        if left.version == right.version and right.first <= left.last:
            raise RangeError(
                f"VIP_RANGE: {right.source!r} (pool {right_pool!r}) overlaps "
                f"{left.source!r} (pool {left_pool!r})"
            )
