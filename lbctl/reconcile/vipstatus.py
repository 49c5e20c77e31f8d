"""A Vip's status: its state (Allocated, Pending, Reserved), the pool and one ``Allocated``
condition, written only when it changes; the condition's ``lastTransitionTime`` moves only
when its status does.

The Vip has no status subresource, so a new Service's Vip is created with its status in one
write.  The price: every write of the Vip, status included, raises ``metadata.generation``, so
the condition carries no ``observedGeneration`` (it could never equal the generation)."""

from __future__ import annotations

import contextlib
from typing import Any

from lbctl.kube.client import VIPS, KubeClient
from lbctl.kube.errors import NotFound
from lbctl.kube.events import timestamp
from lbctl.model import VipView

ALLOCATED = "Allocated"
PENDING = "Pending"
RESERVED = "Reserved"


def vip_status(state: str, reason: str, message: str, pool: str | None) -> dict[str, Any]:
    """The status body; ``pool``: where the address lies, or the pool a Pending Vip asks for."""
    now = timestamp()
    return {
        "state": state,
        "message": message,
        "conditions": [
            {
                "type": "Allocated",
                "status": "False" if state == PENDING else "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": now,
            }
        ],
        **({"pool": pool} if pool else {}),
    }


def _essence(status: dict[str, Any]) -> tuple[Any, ...]:
    condition = (status.get("conditions") or [{}])[0]
    return (
        status.get("state"),
        status.get("message"),
        status.get("pool"),
        condition.get("reason"),
    )


async def write_vip_status(client: KubeClient, vip: VipView, status: dict[str, Any]) -> None:
    """Patch the Vip's status when its state, message, pool or reason differ; a Vip deleted
    meanwhile is no error."""
    condition = dict(status["conditions"][0])
    before = (vip.status.get("conditions") or [{}])[0]
    if before.get("status") == condition["status"] and before.get("lastTransitionTime"):
        condition["lastTransitionTime"] = before["lastTransitionTime"]
    wanted = {**status, "conditions": [condition]}
    if "pool" not in wanted:
        wanted["pool"] = None
    if _essence(vip.status) == _essence(wanted):
        return
    with contextlib.suppress(NotFound):
        await client.patch(VIPS, vip.namespace, vip.name, {"status": wanted})
