"""A list+watch informer: a local cache of one resource kept current from a watch.

It lists, then watches from the list's resourceVersion with bookmarks on and a randomised
server-side timeout; a closed watch resumes from the last seen resourceVersion.  On 410 Gone it
relists and diffs the new list against the cache, so objects deleted during the gap still
produce DELETED events.  Other failures back off exponentially with jitter.  Handlers get
``(event_type, old, new)``; cached objects are shared and must never be mutated.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import structlog

from lbctl.interning import shared
from lbctl.kube.client import JSON, KubeClient, Resource
from lbctl.kube.errors import Gone, KubeError, KubeUnavailable, NotFound, status_error
from lbctl.kube.packing import Packer

log = structlog.get_logger(__name__)

SHORT_WATCH = 1.0
"""A watch that ends sooner than this without a single event counts as a failure."""

Handler = Callable[[str, JSON | None, JSON | None], None]
"""``(type, old, new)`` with type ADDED / MODIFIED / DELETED; called in event order."""


UNREAD: dict[str, dict[str, tuple[str, ...]]] = {
    "services": {
        "spec": ("clusterIP", "clusterIPs", "selector", "internalTrafficPolicy"),
    },
    "vips": {
        "metadata": ("ownerReferences",),
        "spec": ("description",),
    },
    "nodes": {
        "spec": ("podCIDR", "podCIDRs", "providerID", "taints"),
        "status": ("images", "nodeInfo", "daemonEndpoints", "capacity", "allocatable",
                   "volumesAttached", "volumesInUse"),
    },
}  # fmt: skip
"""Per resource, fields no reconciler reads: dropped from cached objects."""


Trim = Callable[[JSON], JSON]
"""Reduces an object to what its readers need (given per informer by who reads it)."""


def slim(obj: JSON, plural: str = "", trim: Trim | None = None) -> JSON:
    """Keep a cached object small: drop ``managedFields`` (often half its size), kubectl's copy
    of the last applied object and the fields in ``UNREAD``, and apply the informer's
    ``trim``."""
    if trim is not None:
        obj = trim(obj)
    meta = obj.get("metadata", {})
    meta.pop("managedFields", None)
    (meta.get("annotations") or {}).pop("kubectl.kubernetes.io/last-applied-configuration", None)
    for section, fields in UNREAD.get(plural, {}).items():
        part = obj.get(section)
        if isinstance(part, dict):
            for name in fields:
                part.pop(name, None)
    return obj


def by_age(obj: JSON) -> tuple[str, int]:
    """Creation time (1 s resolution), then resourceVersion as the tie-break."""
    meta = obj.get("metadata", {})
    version = str(meta.get("resourceVersion") or "0")
    return str(meta.get("creationTimestamp") or ""), int(version) if version.isdigit() else 0


def object_key(obj: JSON) -> str:
    """``namespace/name`` (``name`` if cluster-scoped), interned: the cache and every index
    keyed by it share one string."""
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    return shared(f"{namespace}/{meta['name']}" if namespace else str(meta["name"]))


class Backoff:
    """Exponential backoff with full jitter, capped; ``reset()`` after a success."""

    def __init__(self, initial: float = 0.8, cap: float = 30.0, rng: random.Random | None = None):
        self.initial, self.cap = initial, cap
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        delay = min(self.cap, self.initial * 2.0**self.failures)
        self.failures += 1
        return delay / 2 + self._rng.uniform(0, delay / 2)

    def reset(self) -> None:
        self.failures = 0


class Informer:
    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        *,
        namespace: str | None = None,
        watch_timeout: tuple[int, int] = (240, 360),
        read_timeout: float = 90.0,
        backoff: Backoff | None = None,
        trim: Trim | None = None,
    ) -> None:
        self._client = client
        self._trim = trim
        self.resource = resource
        self._namespace = namespace
        self._watch_timeout = watch_timeout
        self._read_timeout = read_timeout
        self._backoff = backoff or Backoff()
        self._handlers: list[Handler] = []
        self._store: dict[str, bytes] = {}
        """Key → the slimmed object, packed: a sixth of its JSON (about 160 bytes for a Service
        of 1 KB, whose dicts would take 4 KB), read back on demand in microseconds."""
        self._packer = Packer()
        self._resource_version = ""
        self.synced = asyncio.Event()
        self.relists = 0
        self.watch_restarts = 0

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def get(self, key: str) -> JSON | None:
        """The cached object (a fresh copy: changing it changes nothing cached)."""
        packed = self._store.get(key)
        return None if packed is None else self._packer.unpack(packed)

    def items(self) -> Iterator[tuple[str, JSON]]:
        return ((key, self._packer.unpack(packed)) for key, packed in list(self._store.items()))

    def cached_keys(self) -> list[str]:
        """The cached objects' keys (cheaper than ``items`` when only they are needed)."""
        return list(self._store)

    def __len__(self) -> int:
        return len(self._store)

    def _emit(self, kind: str, old: JSON | None, new: JSON | None) -> None:
        for handler in self._handlers:
            try:
                handler(kind, old, new)
            except Exception:
                log.exception("informer handler failed", resource=self.resource.plural)

    async def run(self) -> None:
        """List and watch forever; only cancellation stops it.  A second call resumes the
        watch from the last seen resourceVersion (relisting only if that has expired)."""
        need_list = not self._resource_version
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                await self._watch()
                self._backoff.reset()
            except Gone:
                log.info("watch expired, relisting", resource=self.resource.plural)
                need_list = True
            except KubeError as err:
                delay = self._backoff.next_delay()
                if isinstance(err, NotFound) and self.resource.group:
                    log.error(
                        "resource not served: is its CustomResourceDefinition installed?",
                        crd=f"{self.resource.plural}.{self.resource.group}",
                        api_version=self.resource.api_version,
                        retry_in=round(delay, 2),
                    )
                else:
                    log.warning(
                        "list/watch failed, retrying",
                        resource=self.resource.plural,
                        error=str(err),
                        retry_in=round(delay, 2),
                    )
                await asyncio.sleep(delay)
            self.watch_restarts += 1

    async def relist(self) -> None:
        """List once, replacing the cache and telling handlers what changed (as a relist after
        an expired watch does); for a caller that drives the cache itself instead of ``run``."""
        await self._list()

    async def _list(self) -> None:
        plural = self.resource.plural

        def entry(item: JSON) -> tuple[tuple[str, int], str, bytes]:
            obj = slim(item, plural, self._trim)
            return by_age(obj), object_key(obj), self._packer.pack(obj)

        # Packed as each page arrives: a relist of 10,000 objects never holds them all as
        # dicts (every informer relists at once when lbctl starts).
        entries, resource_version = await self._client.list_each(
            self.resource, self._namespace, entry
        )
        # Oldest first, so handlers meet objects in creation order (the older of two Vips
        # claiming one address keeps it, whatever their names).
        entries.sort(key=lambda e: e[0])
        old_store = self._store
        self._store = {key: packed for _, key, packed in entries}
        self._resource_version = resource_version
        if self.synced.is_set():
            self.relists += 1
        for key, gone in old_store.items():
            if key not in self._store:
                self._emit("DELETED", self._packer.unpack(gone), None)
        for _, key, packed in entries:
            before = old_store.get(key)
            if before is None:
                self._emit("ADDED", None, self._packer.unpack(packed))
                continue
            if before == packed:
                continue
            old, new = self._packer.unpack(before), self._packer.unpack(packed)
            if old["metadata"].get("resourceVersion") != new["metadata"].get("resourceVersion"):
                self._emit("MODIFIED", old, new)
        self.synced.set()

    async def _watch(self) -> None:
        low, high = self._watch_timeout
        stream = self._client.watch(
            self.resource,
            namespace=self._namespace,
            resource_version=self._resource_version,
            timeout_seconds=random.randint(low, high),
            read_timeout=self._read_timeout,
        )
        started, events = time.monotonic(), 0
        async for event in stream:
            events += 1
            self._apply(event)
        if events == 0 and time.monotonic() - started < SHORT_WATCH:
            # A server that ends every watch at once would otherwise make this a tight loop.
            raise KubeUnavailable(f"watch of {self.resource.plural} ended at once, no events")

    def _apply(self, event: JSON) -> None:
        kind = event.get("type")
        obj: Any = event.get("object") or {}
        if kind == "ERROR":
            raise status_error(int(obj.get("code") or 500), obj)
        resource_version = obj.get("metadata", {}).get("resourceVersion")
        if resource_version:
            self._resource_version = str(resource_version)
        if kind == "BOOKMARK":
            return
        obj = slim(obj, self.resource.plural, self._trim)
        key = object_key(obj)
        old = self.get(key)
        if kind in ("ADDED", "MODIFIED"):
            self._store[key] = self._packer.pack(obj)
            self._emit("ADDED" if old is None else "MODIFIED", old, obj)
        elif kind == "DELETED":
            self._store.pop(key, None)
            self._emit("DELETED", obj, None)
        else:
            log.warning("unknown watch event type", type=kind, resource=self.resource.plural)
