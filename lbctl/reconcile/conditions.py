"""lbctl's conditions on a Service's ``status.conditions``, beside other controllers' ones.

Pure: the list to write is computed from the Service as read; the caller writes it in one
merge patch guarded by the resourceVersion it read (a merge patch replaces the list whole).
"""

from __future__ import annotations

from typing import Any

from lbctl.model import ServiceView

ADDRESS_CONDITION = "lbctl.io/AddressAllocated"
"""The Service condition saying whether its address request is satisfied and, if not, why
(as Cilium's ``io.cilium/lb-ipam-request-satisfied``)."""
ADC_CONDITION = "lbctl.io/NetScalerConfigured"
"""The Service condition saying whether the NetScaler holds its configuration and, if not,
why (unreachable, or refused with NITRO's errorcode)."""


def conditions(
    service: ServiceView,
    condition: tuple[str, str, str] | None,
    now: str,
    kind: str = ADDRESS_CONDITION,
) -> list[dict[str, Any]] | None:
    """``status.conditions`` with lbctl's condition ``kind`` set to ``(status, reason,
    message)`` (None: removed), every other condition kept as read, in place; None when
    nothing changes.  The list is written whole (a merge patch), which the resourceVersion
    guard makes safe.  ``lastTransitionTime`` moves only when the status does (API
    conventions)."""
    mine = next((c for c in service.conditions if c.get("type") == kind), None)
    if condition is None:
        return [dict(c) for c in service.conditions if c.get("type") != kind] if mine else None
    status, reason, message = condition
    wanted = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": (
            mine.get("lastTransitionTime", now)
            if mine is not None and mine.get("status") == status
            else now
        ),
    }
    if service.generation:  # Services of today's apiserver have none (0 is dropped)
        wanted["observedGeneration"] = service.generation
    if mine is not None and dict(mine) == wanted:
        return None
    if mine is None:
        return [*(dict(c) for c in service.conditions), wanted]
    return [wanted if c.get("type") == kind else dict(c) for c in service.conditions]
