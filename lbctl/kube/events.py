"""Post core/v1 Events about objects, aggregated like Kubernetes' own recorder.

The first occurrence of (object, type, reason, message) creates an Event; repeats only raise
its ``count`` and ``lastTimestamp``, at most once per ``UPDATE_EVERY`` seconds, so a failure
loop cannot flood the apiserver.  Recording never raises: an Event is worth less than the
reconcile that emits it.
"""

from __future__ import annotations

import datetime
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from lbctl.kube.client import EVENTS, JSON, KubeClient
from lbctl.kube.errors import KubeError, NotFound

log = structlog.get_logger(__name__)

UPDATE_EVERY = 60.0
REMEMBERED = 4096

Signature = tuple[str, str, str, str]


@dataclass
class _Seen:
    namespace: str
    name: str
    count: int
    written_count: int
    written_at: float


def timestamp() -> str:
    """Now, as the apiserver writes times (RFC 3339, UTC, seconds): Events, and conditions'
    ``lastTransitionTime``."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(
        self,
        client: KubeClient,
        component: str = "lbctl",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._clock = clock
        self._component = component
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
        now = timestamp()
        event: JSON = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
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
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        created = await self._client.create(EVENTS, meta["namespace"], event)
        name = created["metadata"]["name"]
        self._remember(signature, _Seen(meta["namespace"], name, 1, 1, self._clock()))

    async def _bump(self, signature: Signature, seen: _Seen) -> None:
        patch = {"count": seen.count, "lastTimestamp": timestamp()}
        try:
            await self._client.patch(EVENTS, seen.namespace, seen.name, patch)
        except NotFound:
            self._seen.pop(signature, None)
            return
        seen.written_count = seen.count
        seen.written_at = self._clock()
