"""A key → set-of-values index that holds a key's lone value bare.

lbctl keeps several such indexes per address and per Service (who shows an address, who holds
it); nearly every key has one value, and a one-element set costs 216 bytes against the 8 of a
reference (CPython 3.11), a few MB at 10,000 Services for each index.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V", bound=Hashable)


class SetMap(Generic[K, V]):
    """``K → set[V]`` with no empty sets: a key is present while it has a value.  Values must
    be neither None nor sets."""

    __slots__ = ("_map",)

    def __init__(self) -> None:
        self._map: dict[K, V | set[V]] = {}

    def add(self, key: K, value: V) -> None:
        found = self._map.get(key)
        if found is None:
            self._map[key] = value
        elif isinstance(found, set):
            found.add(value)
        elif found != value:
            self._map[key] = {found, value}

    def discard(self, key: K, value: V) -> bool:
        """Remove ``value`` from ``key``'s set; True when that removed its last value."""
        found = self._map.get(key)
        if isinstance(found, set):
            found.discard(value)
            if len(found) == 1:
                self._map[key] = next(iter(found))
            return False
        if found is not None and found == value:
            del self._map[key]
            return True
        return False

    def get(self, key: K) -> frozenset[V]:
        """A copy of ``key``'s values (empty when it has none)."""
        found = self._map.get(key)
        if found is None:
            return frozenset()
        return frozenset(found) if isinstance(found, set) else frozenset((found,))

    def pop(self, key: K) -> frozenset[V]:
        """``key``'s values, removing the key."""
        found = self.get(key)
        self._map.pop(key, None)
        return found

    def __contains__(self, key: object) -> bool:
        return key in self._map

    def __iter__(self) -> Iterator[K]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def clear(self) -> None:
        self._map.clear()
