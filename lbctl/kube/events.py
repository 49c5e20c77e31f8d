"""Post core/v1 Events about objects, best effort, without repeating the same one every retry."""

from __future__ import annotations

import datetime
import time
from collections import OrderedDict

import structlog

from lbctl.kube.client import EVENTS, JSON, KubeClient
from lbctl.kube.errors import KubeError

log = structlog.get_logger(__name__)

REPEAT_AFTER = 600.0
REMEMBERED = 4096


class EventRecorder:
    def __init__(self, client: KubeClient, component: str = "lbctl") -> None:
        self._client = client
        self._component = component
        self._recent: OrderedDict[tuple[str, str, str], float] = OrderedDict()

    def _seen_recently(self, signature: tuple[str, str, str]) -> bool:
        now = time.monotonic()
        last = self._recent.get(signature)
        if last is not None and now - last < REPEAT_AFTER:
            return True
        self._recent[signature] = now
        self._recent.move_to_end(signature)
        while len(self._recent) > REMEMBERED:
            self._recent.popitem(last=False)
        return False

    async def record(self, obj: JSON, event_type: str, reason: str, message: str) -> None:
        """Post an Event on ``obj``; Warning or Normal.  Never raises."""
        meta = obj["metadata"]
        if self._seen_recently((str(meta.get("uid")), reason, message)):
            return
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        api_version = obj.get("apiVersion", "v1")
        event: JSON = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": api_version,
                "kind": obj.get("kind", "Service"),
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta.get("uid"),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self._client.create(EVENTS, meta["namespace"], event)
        except KubeError as err:
            log.warning("could not post event", reason=reason, error=str(err))
