"""``GET /nitro/v1/stat/<resource>[/<name>]``: statistics consistent with configuration state.

The simulator carries no traffic, so every counter and rate is zero; the state attributes come
from the same health model as config GETs (a vserver whose members are all DOWN is DOWN with
``vslbhealth`` 0).  Attribute names and JSON types are those of the NITRO reference
(data/nitro-attributes.json, ``stat/<resource>``).
"""

from __future__ import annotations

from collections.abc import Mapping

from lbctl.nitro.simulator import errors
from lbctl.nitro.simulator.errors import done
from lbctl.nitro.simulator.health import MEMBER, Health
from lbctl.nitro.simulator.resources import ATTRIBUTES, JSON
from lbctl.nitro.simulator.store import Store

RESOURCES = ("lbvserver", "servicegroup", "service")
# Request arguments listed among the stat attributes: they select and sort, and are not shown.
REQUEST_ARGS = {"clearstats", "sortby", "sortorder"}
KEYS = {"lbvserver": "name", "servicegroup": "servicegroupname", "service": "name"}


def _zeros(resource: str) -> JSON:
    """Every numeric stat attribute at zero, typed as the reference declares it."""
    types: dict[str, str] = ATTRIBUTES["resources"][f"stat/{resource}"]
    zero = {"integer": 0, "number": 0.0}
    return {a: zero[t] for a, t in types.items() if t in zero and a not in REQUEST_ARGS}


def handle(store: Store, resource: str, name: str | None, query: Mapping[str, str]) -> JSON:
    """The reply body for one stat GET; an unknown name is 404/258 as on config GETs."""
    if resource not in RESOURCES:
        raise errors.bad_request(1266, "Invalid nitro request", "resource", resource)
    key = KEYS[resource]
    health = store.health()
    objs = store.units(resource)
    if name is not None:
        objs = [o for o in objs if o[key] == name]
        if not objs:
            raise errors.no_such_resource(key, name)
    bindings = query.get("statbindings", "").lower() == "yes"
    rows = [_row(store, resource, o, health, bindings) for o in objs]
    return {**done(), resource: rows} if rows else done()


def _row(store: Store, resource: str, obj: JSON, health: Health, bindings: bool) -> JSON:
    if resource == "lbvserver":
        state = health.vserver(obj)
        total, up = int(state["totalservices"]), int(state["activeservices"])
        return {
            **_zeros(resource),
            "name": obj["name"],
            "primaryipaddress": obj["ipv46"],
            "primaryport": obj["port"],
            "type": obj["servicetype"],
            "state": state["curstate"],
            "vslbhealth": int(state["health"]),
            "actsvcs": up,
            "inactsvcs": total - up,
        }
    if resource == "service":
        view = store.view("service", obj, health)
        return {
            **_zeros(resource),
            "name": obj["name"],
            "primaryipaddress": view["ipaddress"],
            "primaryport": obj["port"],
            "servicetype": obj["servicetype"],
            "state": view["svrstate"],
        }
    # stat/servicegroup's state is the group's effective state (UP, DOWN, PARTIAL-UP, ...):
    # NITRO gives it the same values as a service's state; chosen so it agrees with config.
    row: JSON = {
        "servicegroupname": obj["servicegroupname"],
        "servicetype": obj["servicetype"],
        "state": health.group(obj["servicegroupname"]),
    }
    if bindings:
        members = [
            m for m in store.units(MEMBER) if m["servicegroupname"] == obj["servicegroupname"]
        ]
        rows = [_member(store, m, obj, health) for m in members]
        if rows:
            row["servicegroupmember"] = rows
    return row


def _member(store: Store, member: JSON, group: JSON, health: Health) -> JSON:
    """One member under ``?statbindings=yes`` (stat/servicegroupmember in the reference)."""
    view = store.view(MEMBER, member, health)
    return {
        **_zeros("servicegroupmember"),
        "servicegroupname": group["servicegroupname"],
        "servername": member["servername"],
        "ip": view["ip"],
        "port": member["port"],
        "primaryipaddress": view["ip"],
        "primaryport": member["port"],
        "servicetype": group["servicetype"],
        "state": view["svrstate"],
    }
