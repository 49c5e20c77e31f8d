"""One object for equal values that many indexes keep (object keys, ADC names, port sets,
addresses).

``sys.intern`` would do for strings on Python 3.11 and 3.13, but on 3.12 interned strings are
immortal (PEP 683): every key lbctl ever saw would stay in memory, about 100 bytes each,
however many Services came and went (measured: 1,000,000 keys interned and dropped kept
106 MB on 3.12.1, none on 3.11.7 and 3.13.0).  These tables are lbctl's own and bounded.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class Table(Generic[T]):
    """Equal values as one shared object, ``kept`` values at most: when full it starts again
    (values in use stay alive where they are used; equal ones met later are shared anew)."""

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self._values: dict[T, T] = {}

    def __call__(self, value: T) -> T:
        """The one object held for values equal to ``value`` (``value`` itself at first)."""
        found = self._values.get(value)
        if found is None:
            if len(self._values) >= self.kept:
                self._values.clear()
            found = self._values[value] = value
        return found

    def __len__(self) -> int:
        return len(self._values)


shared: Table[str] = Table(1 << 18)
"""Strings: ``shared(text)``."""

addresses: Table[ipaddress.IPv4Address | ipaddress.IPv6Address] = Table(1 << 17)
"""Addresses: a Service's VIP is parsed from its Vip, its VipAddress record and its own status
(about 90 bytes each); ``addresses(address)``."""
