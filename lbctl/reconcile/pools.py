"""The pools in effect, kept live: ``VIP_RANGE`` (re-read from its file when that changes) and
``VipPool`` objects, which pools a Service may use, and what each ``VipPool``'s status says.

Every change of the pools is applied to the allocator at once (addresses in use stay, even
outside every pool) and wakes every Service and Vip, so waiting ones try again and the Vips of
addresses now outside every pool say so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from lbctl.ipam.allocator import Allocator
from lbctl.ipam.poolset import (
    NoEligiblePool,
    PoolSet,
    combine,
    parse_pool_object,
)
from lbctl.ipam.poolset import candidates as eligible
from lbctl.ipam.ranges import Pool, RangeError, parse_vip_range
from lbctl.kube.client import JSON
from lbctl.kube.informer import Informer
from lbctl.model import IPAddress, ServiceView

log = structlog.get_logger(__name__)

CHOICES_KEPT = 10_000
"""Remembered pool choices (distinct label sets), forgotten all at once beyond this."""


class Pools:
    """The pools in effect and the policy choices over them (see ``lbctl.ipam.poolset``)."""

    def __init__(
        self,
        allocator: Allocator,
        static: tuple[Pool, ...],
        objects: Informer | None = None,
        namespaces: Informer | None = None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._allocator = allocator
        self._static = static
        self._objects = objects
        self._namespaces = namespaces
        self._on_change = on_change
        self._live = False
        self._chosen: dict[tuple[Any, ...], tuple[str, ...] | NoEligiblePool] = {}
        """(namespace, its labels, the object's labels, requested pool) → the answer, until
        the pools change: 100 pools take ~30 µs to filter and order per Service."""
        self.vip_range_error: str | None = None
        """Why the ``VIP_RANGE`` file's current content is not in effect (None: it is)."""
        self.current = PoolSet(static)
        self.objects_only = PoolSet(())
        """The VipPool objects judged among themselves, without ``VIP_RANGE``: what their
        status says, the same in every instance (``poolstatus``)."""
        allocator.set_pools(static)

    def start(self) -> None:
        """The caches are synced: apply the pools read so far; from now on every change
        wakes Services and Vips (during the first list that would only repeat work)."""
        self.refresh()
        self._live = True

    def refresh(self) -> None:
        """Recompute the pools from ``VIP_RANGE`` and the cached objects; apply a change."""
        objects = (
            [parse_pool_object(raw) for _, raw in self._objects.items()] if self._objects else []
        )
        self.objects_only = combine((), objects)
        updated = combine(self._static, objects)
        if updated == self.current:
            return
        before = {p.name for p in self.current.pools}
        self.current = updated
        self._chosen.clear()
        self._allocator.set_pools(updated.pools)
        log.info(
            "pools changed",
            pools=[p.name for p in updated.pools],
            added=sorted({p.name for p in updated.pools} - before),
            left_out={name: reason for name, (reason, _) in updated.left_out.items()},
        )
        if self._live:
            self._on_change()

    @property
    def static(self) -> tuple[Pool, ...]:
        """The ``VIP_RANGE`` pools."""
        return self._static

    def set_static(self, pools: tuple[Pool, ...]) -> None:
        """``VIP_RANGE`` changed (its file was edited)."""
        self._static = pools
        self.refresh()

    def on_pool(self, kind: str, old: JSON | None, new: JSON | None) -> None:
        """Informer handler for ``VipPool`` objects."""
        if _spec(old) != _spec(new) or kind in ("ADDED", "DELETED"):
            self.refresh()

    def on_namespace(self, kind: str, old: JSON | None, new: JSON | None) -> None:
        """Informer handler for Namespaces: a label change may admit waiting Services."""
        selective = any(p.namespace_selector for p in self.current.pools)
        if self._live and selective and _labels(old) != _labels(new):
            self._on_change()

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        """The Namespace's labels; ``kubernetes.io/metadata.name`` at least, which the
        apiserver sets on every Namespace (so a selector on it works before the cache has it)."""
        raw = self._namespaces.get(namespace) if self._namespaces is not None else None
        labels = dict(_labels(raw))
        labels.setdefault("kubernetes.io/metadata.name", namespace)
        return labels

    def candidates(self, service: ServiceView, requested: str | None) -> tuple[str, ...]:
        """The pools the Service may get an address from, in order; ``NoEligiblePool`` when
        none (the message says why)."""
        return self.choose(service.namespace, service.labels, requested)

    def choose(
        self, namespace: str, labels: Mapping[str, str], requested: str | None
    ) -> tuple[str, ...]:
        """``candidates`` for an object with ``labels`` in ``namespace`` (e.g. a Vip)."""
        namespace_labels = self.namespace_labels(namespace)
        key = (
            namespace,
            tuple(sorted(namespace_labels.items())),
            tuple(sorted(labels.items())),
            requested,
        )
        found = self._chosen.get(key)
        left_out = self.current.left_out.get(requested) if requested is not None else None
        if found is None and left_out is not None:
            reason, why = left_out
            found = NoEligiblePool(
                f"pool {requested!r} is not in effect ({reason}: {why})", "PoolNotInEffect"
            )
        if found is None:
            try:
                found = eligible(self.current.pools, requested, namespace, namespace_labels, labels)
            except NoEligiblePool as err:
                found = err
            if len(self._chosen) > CHOICES_KEPT:
                self._chosen.clear()
            self._chosen[key] = found
        if isinstance(found, NoEligiblePool):
            raise NoEligiblePool(str(found), found.reason)
        return found

    def pool_of(self, address: IPAddress) -> str | None:
        return self._allocator.pool_of(address)

    def admits(self, pool: str, service: ServiceView) -> bool:
        found = self._allocator.pool(pool)
        return found is not None and found.admits(
            self.namespace_labels(service.namespace), service.labels
        )


VIP_RANGE_FILE_PERIOD = 5.0
"""Seconds between reads of ``VIP_RANGE_FILE`` (the kubelet updates a mounted ConfigMap
within about a minute; it swaps a symlink, so the content is compared, not the mtime)."""


async def follow_vip_range_file(
    path: str, pools: Pools, period: float = VIP_RANGE_FILE_PERIOD
) -> None:
    """Apply every change of the ``VIP_RANGE`` file until cancelled, from the first read on
    (an edit made while lbctl started is not missed).  A value that does not parse is logged
    with the offending element and ignored: the pools in effect stay; so does a file that
    cannot be read (logged once until it can be again)."""
    last: str | None = None
    unreadable = False
    while True:
        text = _read(path, warn=not unreadable)
        unreadable = text is None
        if text is not None and text != last:
            last = text
            _apply(path, text, pools)
        await asyncio.sleep(period)


def _read(path: str, warn: bool) -> str | None:
    """The file's text (a small local file: read on the event loop), or None."""
    try:
        return Path(path).read_text()
    except OSError as err:
        if warn:
            log.warning("cannot read VIP_RANGE_FILE; keeping the pools in effect",
                        path=path, error=err.strerror)  # fmt: skip
        return None


def _apply(path: str, text: str, pools: Pools) -> None:
    try:
        parsed = parse_vip_range(text)
    except RangeError as err:
        pools.vip_range_error = str(err)
        log.error("VIP_RANGE_FILE holds a value lbctl refuses; keeping the pools in effect",
                  path=path, error=str(err))  # fmt: skip
        return
    pools.vip_range_error = None
    if parsed != pools.static:
        log.info("VIP_RANGE_FILE changed", path=path, pools=[p.name for p in parsed])
        pools.set_static(parsed)


def _spec(raw: JSON | None) -> Any:
    return None if raw is None else (raw.get("spec"), raw["metadata"].get("creationTimestamp"))


def _labels(raw: JSON | None) -> Mapping[str, str]:
    return ((raw or {}).get("metadata") or {}).get("labels") or {}
