"""Appliance-wide resources: ``nsfeature``, ``nsmode``, ``nsversion`` and ``nsconfig``.

Monitoring plugins and controllers read these before anything else (is LB licensed and on, are
there unsaved changes), so they answer like an appliance: each GET returns one object, not a
list, with the attribute names of the NITRO reference (data/nitro-attributes.json).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lbctl.nitro.simulator import errors
from lbctl.nitro.simulator.errors import done
from lbctl.nitro.simulator.resources import ATTRIBUTES, JSON

if TYPE_CHECKING:
    from lbctl.nitro.simulator.store import Store

RESOURCES = ("nsfeature", "nsmode", "nsversion", "nsconfig")

# Feature and mode flags are the reference's attribute names; NITRO's nsfeature and nsmode docs
# mark each one "Boolean, Read-only", so GET shows JSON booleans (the Go schema says string).
FEATURES = tuple(a for a in ATTRIBUTES["resources"]["config/nsfeature"] if a[0] != "_")
FEATURES = tuple(a for a in FEATURES if a != "feature")
MODES = tuple(a for a in ATTRIBUTES["resources"]["config/nsmode"] if a[0] != "_" and a != "mode")

# Chosen: what a freshly licensed appliance has on after the setup wizard. NITRO documents no
# factory list; LB is the one lbctl needs, the others are those commonly enabled with it.
DEFAULT_FEATURES = frozenset({"lb", "cs", "ssl", "rewrite", "responder"})
# The modes `show ns mode` lists as enabled on a new appliance: Fast Ramp, Layer 3, Edge
# configuration, Use SNIP and Path MTU Discovery (NetScaler "Configuring modes of packet
# forwarding"; chosen where the docs do not list defaults for the others).
DEFAULT_MODES = frozenset({"fr", "l3", "edge", "usnip", "pmtud"})
# The reference schema is NetScaler 14.1's, so the simulator says it is 14.1.
VERSION = "NetScaler NS14.1: Build 25.53.nc, Date: Jan 1 2025, 00:00:00   (64-bit)"


class System:
    """The feature and mode switches, changed by NITRO ``?action=enable|disable``."""

    def __init__(self) -> None:
        self.features = set(DEFAULT_FEATURES)
        self.modes = set(DEFAULT_MODES)

    def flags(self, names: tuple[str, ...], on: set[str], listed: str) -> JSON:
        """One object: a boolean per flag plus the list of enabled ones in upper case."""
        out: JSON = {name: name in on for name in names}
        out[listed] = [name.upper() for name in names if name in on]
        return out

    def switch(
        self, names: tuple[str, ...], on: set[str], listed: str, payload: Any, enable: bool
    ) -> None:
        """``{"nsfeature": {"feature": ["LB"]}}``: names compare case-insensitively, as the CLI
        takes ``enable ns feature lb``."""
        body = payload.get(listed) if isinstance(payload, dict) else None
        if body is None:
            raise errors.required_missing(listed)
        wanted = [body] if isinstance(body, str) else body
        if not isinstance(wanted, list):
            raise errors.invalid_value(listed, body)
        chosen = [str(w).lower() for w in wanted]
        for name in chosen:
            if name not in names:
                raise errors.invalid_value(listed, name)
        for name in chosen:
            if enable:
                on.add(name)
            else:
                on.discard(name)


def handle(
    store: Store, method: str, resource: str, query: Mapping[str, str], payload: Any
) -> JSON:
    """One request on an appliance-wide resource: the reply body (always HTTP 200)."""
    action = query.get("action")
    system = store.system
    if method == "GET" and not action:
        return {**done(), resource: _get(store, resource)}
    if method == "POST" and resource == "nsconfig" and action == "save":
        store.saves += 1
        store.changed = False
        return done()
    if method == "POST" and resource == "nsconfig" and action == "clear":
        saves = store.saves
        store.clear()
        store.saves = saves
        return done()
    if method == "POST" and action in ("enable", "disable") and resource in ("nsfeature", "nsmode"):
        body = payload.get(resource) if isinstance(payload, dict) else None
        if resource == "nsfeature":
            system.switch(FEATURES, system.features, "feature", body, action == "enable")
        else:
            system.switch(MODES, system.modes, "mode", body, action == "enable")
        return done()
    raise errors.netscaler(1240, "Invalid nitro action or operation", resource, action or method)


def _get(store: Store, resource: str) -> JSON:
    system = store.system
    if resource == "nsfeature":
        return system.flags(FEATURES, system.features, "feature")
    if resource == "nsmode":
        return system.flags(MODES, system.modes, "mode")
    if resource == "nsversion":
        return {"installedversion": False, "version": VERSION, "mode": "1"}
    # nsconfig is not in the reference schema; configchanged is the field NITRO's nsconfig docs
    # give for "unsaved configuration", which monitoring plugins read.
    return {"configchanged": store.changed}
