"""Health as the appliance derives it: member and service states roll up into service groups and
vservers, shown on config GETs (``svrstate``, ``servicegroupeffectivestate``, ``curstate``) and
by the ``stat/`` endpoints (``state``, ``vslbhealth``, ``actsvcs``).

The simulator runs no probes.  A member or service is UP unless something takes it out of
service (it, its server or its group is disabled) or a test marks its probe DOWN through the
control API; the mark is kept on the object under ``_probe``, which GETs never show.
"""

from __future__ import annotations

from collections.abc import Mapping

from lbctl.nitro.simulator.resources import JSON

MEMBER = "servicegroup_servicegroupmember_binding"
VS_BIND = "lbvserver_servicegroup_binding"
VS_SVC = "lbvserver_service_binding"
PROBE = "_probe"  # the private key holding a test's UP/DOWN mark

UP, DOWN, OFS = "UP", "DOWN", "OUT OF SERVICE"

Objects = Mapping[str, Mapping[tuple[str, ...], JSON]]


def unit_state(unit: JSON, server: JSON, group: JSON | None) -> str:
    """``svrstate`` of one member (``group`` is its service group) or one service (None).

    A disabled unit, server or group is OUT OF SERVICE.  Monitoring decides UP or DOWN only
    when it is on: ``healthmonitor NO`` means "always UP" (NITRO servicegroup/service docs), and
    we chose the same for a group whose ``monstate`` is DISABLED: with its monitors off the
    appliance has nothing that could mark the member DOWN."""
    owner = unit if group is None else group
    if unit.get("state") != "ENABLED" or server.get("state") != "ENABLED":
        return OFS
    if owner.get("state") != "ENABLED":
        return OFS
    monitored = owner.get("healthmonitor", "YES") == "YES" and owner.get("monstate") != "DISABLED"
    return DOWN if monitored and unit.get(PROBE) == DOWN else UP


def rollup(states: list[str]) -> str:
    """``servicegroupeffectivestate`` from its members, per NITRO's servicegroup reference: all UP
    is UP, all DOWN is DOWN, all out of service is OUT OF SERVICE, some UP is PARTIAL-UP, some
    DOWN and the rest out of service is PARTIAL-DOWN.  A group without members is DOWN (the
    docs are silent; the appliance has nothing to send traffic to)."""
    if not states:
        return DOWN
    distinct = set(states)
    if len(distinct) == 1:
        return states[0]
    return "PARTIAL-UP" if UP in distinct else "PARTIAL-DOWN"


class Health:
    """Every unit's state computed in one pass, so listing N objects costs O(N), not O(N²)."""

    def __init__(self, objs: Objects) -> None:
        servers = objs["server"]
        groups = objs["servicegroup"]
        self.members: dict[tuple[str, ...], str] = {}
        self.groups: dict[str, list[str]] = {name: [] for (name,) in groups}
        for key, m in objs[MEMBER].items():
            group = groups[(m["servicegroupname"],)]
            state = unit_state(m, servers.get((m["servername"],), {}), group)
            self.members[key] = state
            self.groups[m["servicegroupname"]].append(state)
        self.services = {
            name: unit_state(s, servers.get((s["servername"],), {}), None)
            for (name,), s in objs["service"].items()
        }
        self.vservers: dict[str, list[str]] = {name: [] for (name,) in objs["lbvserver"]}
        for b in objs[VS_BIND].values():
            self.vservers[b["name"]] += self.groups.get(b["servicegroupname"], [])
        for b in objs[VS_SVC].values():
            self.vservers[b["name"]].append(self.services[b["servicename"]])

    def group(self, name: str) -> str:
        return rollup(self.groups.get(name, []))

    def vserver(self, vs: JSON) -> JSON:
        """The vserver's state counters.  Every member of a bound group counts as one service,
        as ``show lb vserver`` lists each member; health is the UP share in whole percent."""
        units = self.vservers.get(vs["name"], [])
        up = units.count(UP)
        cur = OFS if vs.get("state") == "DISABLED" else UP if up else DOWN
        return {
            "curstate": cur,
            "effectivestate": cur,
            "status": 1 if cur == UP else 7,
            "totalservices": str(len(units)),
            "activeservices": str(up),
            "health": str(up * 100 // len(units) if units else 0),
        }
