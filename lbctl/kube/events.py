"""Post core/v1 Events about objects, aggregated like Kubernetes' own recorder.

The first occurrence of (object, type, reason, message) creates an Event; repeats only raise
its ``count`` and ``lastTimestamp``, at most once per ``UPDATE_EVERY`` seconds, so a failure
loop cannot flood the apiserver.  An Event's name is derived from that signature, so a
restarted lbctl (or another replica) that reports the same thing finds the Event by its name
(the create is refused as AlreadyExists) and counts it again rather than adding a second one.
Recording never raises: an Event is worth less than the reconcile that emits it.

``reportingComponent`` (events.k8s.io's ``reportingController``) names lbctl, and
``reportingInstance`` the replica (its Pod's name) that first reported the Event.
"""

from __future__ import annotations

import datetime
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from lbctl.kube.client import EVENTS, JSON, KubeClient
from lbctl.kube.errors import AlreadyExists, KubeError, NotFound

log = structlog.get_logger(__name__)

UPDATE_EVERY = 60.0
REMEMBERED = 4096
MAX_INSTANCE = 128
"""The apiserver's limit on ``reportingInstance``."""

Signature = tuple[str, str, str, str]


@dataclass(slots=True)
class _Seen:
    """What was posted for one signature (up to REMEMBERED of them are kept)."""

    namespace: str
    name: str
    count: int
    written_count: int
    written_at: float


def timestamp() -> str:
    """Now, as the apiserver writes times (RFC 3339, UTC, seconds): Events, and conditions'
    ``lastTransitionTime``."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_name(object_name: str, signature: tuple[str, ...]) -> str:
    """``<object>.<16 hex>``: the same for every process that reports the same thing."""
    digest = hashlib.sha256("\x00".join(signature).encode()).hexdigest()[:16]
    return f"{object_name[:200]}.{digest}"


class EventRecorder:
    def __init__(
        self,
        client: KubeClient,
        component: str = "lbctl",
        instance: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._clock = clock
        self._component = component
        self._instance = instance[:MAX_INSTANCE]
        self._seen: OrderedDict[Signature, _Seen] = OrderedDict()

    def _remember(self, signature: Signature, seen: _Seen) -> None:
        self._seen[signature] = seen
        self._seen.move_to_end(signature)
        while len(self._seen) > REMEMBERED:
            self._seen.popitem(last=False)

    async def record(self, obj: JSON, event_type: str, reason: str, message: str) -> None:
        """Post (or count again) an Event on ``obj``; ``event_type`` is Normal or Warning."""
        meta = obj["metadata"]
        message = message[:1024]
        signature = (str(meta.get("uid")), event_type, reason, message)
        seen = self._seen.get(signature)
        try:
            if seen is None:
                await self._create(obj, signature, event_type, reason, message)
            else:
                seen.count += 1
                if self._clock() - seen.written_at >= UPDATE_EVERY:
                    await self._bump(signature, seen)
        except KubeError as err:
            log.warning("could not post event", reason=reason, error=str(err))

    async def _create(
        self, obj: JSON, signature: Signature, event_type: str, reason: str, message: str
    ) -> None:
        meta = obj["metadata"]
        namespace = meta["namespace"]
        name = event_name(meta["name"], (*signature, self._component))
        now = timestamp()
        event: JSON = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", "v1"),
                "kind": obj.get("kind", "Service"),
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta.get("uid"),
            },
            "type": event_type,
            "reason": reason,
            "message": message,
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self._client.create(EVENTS, namespace, event)
            count = 1
        except AlreadyExists:  # reported before this process started (or by another replica)
            earlier = await self._client.get(EVENTS, namespace, name)
            count = int(earlier.get("count") or 1) + 1
            await self._client.patch(
                EVENTS, namespace, name, {"count": count, "lastTimestamp": now}
            )
        self._remember(signature, _Seen(namespace, name, count, count, self._clock()))

    async def _bump(self, signature: Signature, seen: _Seen) -> None:
        patch = {"count": seen.count, "lastTimestamp": timestamp()}
        try:
            await self._client.patch(EVENTS, seen.namespace, seen.name, patch)
        except NotFound:
            self._seen.pop(signature, None)
            return
        seen.written_count = seen.count
        seen.written_at = self._clock()
