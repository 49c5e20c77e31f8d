"""Health from the NetScaler itself: each lb vserver's state and how many of its members the
NetScaler sees UP, read for every vserver in a pass of paged GETs (``config/lbvserver`` with
``attrs=name,curstate,activeservices,totalservices``: about 100 bytes a vserver, where
``stat/lbvserver`` sends some 60 counters, 1.5 KB, that lbctl does not read).

Nothing else tells a Service's owner that traffic cannot flow (no member passes its
monitor); the Service's ``NetScalerConfigured`` condition says it in its message, and a
Warning Event when a vserver seen UP goes DOWN.  A pass does not judge a Service whose
objects were being written while it read (a new lb vserver has no members bound yet and
reads DOWN): that was a Warning and two status writes for a new Service now and then.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from lbctl.interning import shared
from lbctl.nitro.client import NitroClient
from lbctl.reconcile.adc import AdcSync

ATTRS = ("name", "curstate", "activeservices", "totalservices")
"""What a pass reads of each lb vserver (read-only attributes of NITRO's ``lbvserver``)."""


@dataclass(frozen=True, slots=True)
class VserverHealth:
    name: str
    state: str
    """NITRO's ``curstate``: UP, DOWN, OUT OF SERVICE, ..."""
    up: int
    """Members (services) the NetScaler sees UP (``activeservices``)."""
    total: int
    """Members bound (``totalservices``)."""


@dataclass(frozen=True, slots=True)
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
        self._writing: set[str] = set()
        """Services whose NetScaler objects are being written now."""
        self._written_during_pass: set[str] = set()

    def writing(self, owner: str) -> None:
        """The ADC worker starts writing the Service's objects (``written`` when done)."""
        self._writing.add(owner)
        self._written_during_pass.add(owner)

    def written(self, owner: str) -> None:
        self._writing.discard(owner)

    async def refresh(self) -> None:
        """One pass: the vservers' count, then one GET per page of ``page_size`` vservers, each
        of a bounded size.  Raises NitroError.  A Service not all of whose vservers were read
        (gone from the ADC, or added since they were counted: see :meth:`NitroClient.pages`)
        keeps its health as it was; one without vservers any more loses it.  Without a listing
        (it is to be read again) there is no pass: not knowing lbctl's vservers is not their
        being gone."""
        if not self._adc.listed:
            return
        self._written_during_pass = set(self._writing)
        owners = self._adc.vservers()
        found: dict[str, dict[str, VserverHealth]] = {}  # by name: pages may show one twice
        async for page in self._client.pages("lbvserver", attrs=ATTRS):
            for row in page:
                name = str(row.get("name"))
                owner = owners.get(name)
                if owner is None or owner in self._written_during_pass:
                    continue
                up = int(row.get("activeservices") or 0)
                total = max(up, int(row.get("totalservices") or 0))
                state = shared(str(row.get("curstate") or "UNKNOWN"))
                vserver = VserverHealth(shared(name), state, up, total)  # as the listing's
                found.setdefault(owner, {})[vserver.name] = vserver
        expected = Counter(owners.values())
        for owner in set(self.by_service) - set(expected) - self._written_during_pass:
            del self.by_service[owner]
            self.went_down.discard(owner)
        for owner, vservers in found.items():
            if len(vservers) < expected[owner]:
                continue
            health = Health(tuple(vservers[name] for name in sorted(vservers)))
            before = self.by_service.get(owner)
            if before == health:
                continue
            if health.down and before is not None and not before.down:
                self.went_down.add(owner)
            elif not health.down:
                self.went_down.discard(owner)
            self.by_service[owner] = health
            self._changed(owner)
        self.passes += 1
