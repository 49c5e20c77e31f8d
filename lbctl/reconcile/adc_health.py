"""Health from the NetScaler itself: each lb vserver's state and how many of its members the
NetScaler sees UP, read for every vserver in one request per pass (``stat/lbvserver``).

Nothing else tells a Service's owner that traffic cannot flow (no member passes its
monitor); the Service's ``NetScalerConfigured`` condition says it in its message, and a
Warning Event when a vserver goes DOWN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lbctl.nitro.client import NitroClient
from lbctl.reconcile.adc import AdcSync


@dataclass(frozen=True)
class VserverHealth:
    name: str
    state: str
    """NITRO's ``state``: UP, DOWN, OUT OF SERVICE, ..."""
    up: int
    """Members (services) the NetScaler sees UP (``actsvcs``)."""
    total: int
    """``actsvcs`` + ``inactsvcs``."""


@dataclass(frozen=True)
class Health:
    vservers: tuple[VserverHealth, ...]

    @property
    def down(self) -> bool:
        return any(v.state != "UP" for v in self.vservers)

    def describe(self) -> str:
        """``lb vserver <name> UP, 3/3 members UP`` per vserver, joined by ``; ``."""
        return "; ".join(
            f"lb vserver {v.name} {v.state}, {v.up}/{v.total} members UP" for v in self.vservers
        )


class AdcHealth:
    def __init__(self, client: NitroClient, adc: AdcSync, changed: Callable[[str], None]) -> None:
        """``changed``: called with a Service key whose health changed (its condition is
        brought up to date by the ADC worker)."""
        self._client = client
        self._adc = adc
        self._changed = changed
        self.by_service: dict[str, Health] = {}
        self.went_down: set[str] = set()
        """Services a vserver of which went DOWN since the ADC worker last said so."""
        self.passes = 0

    async def refresh(self) -> None:
        """One pass: one NITRO request, whatever the number of Services.  Raises NitroError."""
        rows = {str(r.get("name")): r for r in await self._client.stats("lbvserver")}
        found: dict[str, list[VserverHealth]] = {}
        for name, owner in self._adc.vservers().items():
            row = rows.get(name)
            if row is None:
                continue
            up = int(row.get("actsvcs") or 0)
            total = up + int(row.get("inactsvcs") or 0)
            found.setdefault(owner, []).append(
                VserverHealth(name, str(row.get("state") or "UNKNOWN"), up, total)
            )
        for owner in set(self.by_service) - set(found):
            del self.by_service[owner]
            self.went_down.discard(owner)
        for owner, vservers in found.items():
            health = Health(tuple(sorted(vservers, key=lambda v: v.name)))
            before = self.by_service.get(owner)
            if before == health:
                continue
            if health.down and (before is None or not before.down):
                self.went_down.add(owner)
            elif not health.down:
                self.went_down.discard(owner)
            self.by_service[owner] = health
            self._changed(owner)
        self.passes += 1
