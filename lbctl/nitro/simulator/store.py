"""The appliance's configuration: objects per resource plus the rules that tie them together.

Pure state, no HTTP: the server turns requests into calls here, and ``NitroError`` carries the
appliance's answer to a bad one.  References between resources (a member names its service
group and server, a monitor binding its monitor) drive cascading deletes, "in use" refusals and
renames from one table, as on the appliance.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from lbctl.nitro.simulator import errors
from lbctl.nitro.simulator.health import MEMBER, VS_BIND, VS_SVC, Health
from lbctl.nitro.simulator.resources import JSON, SPECS, Spec, check_name, defaults, parse, render
from lbctl.nitro.simulator.rules import (
    BUILTIN_MONITORS,
    COMPATIBLE,
    DEFAULT_MONITORS,
    check,
    monitor_defaults,
)
from lbctl.nitro.simulator.system import System

MON_BINDS = {"servicegroup_lbmonitor_binding", "service_lbmonitor_binding"}
VS_BINDS = {VS_BIND: "servicegroup", VS_SVC: "service"}  # vserver bindings: what they bind

# resource -> the (resource, field) pairs that name it, from the ``refs`` in specs.json.
REFERENCES: dict[str, list[tuple[str, str]]] = {}
for _other, _spec in SPECS.items():
    for _arg, _target in _spec.refs.items():
        REFERENCES.setdefault(_target, []).append((_other, _arg))
# Deleting these removes what names them (their bindings); a server or monitor in use is refused.
CASCADE = {"lbvserver", "servicegroup", "service"}


def key_of(spec: Spec, obj: JSON) -> tuple[str, ...]:
    return tuple(str(obj.get(k)) for k in spec.key)


def matches(obj: JSON, conditions: dict[str, str], enums: frozenset[str] = frozenset()) -> bool:
    """Exact match on the rendered value; a value written ``/re/`` is a regular expression.

    Enumerations compare case-insensitively (``args=type:http`` finds an HTTP monitor), as the
    appliance takes enum values in any case on writes (NITRO docs list them upper case)."""
    for arg, want in conditions.items():
        value = obj.get(arg)
        if value is None:
            return False
        have = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        if len(want) >= 2 and want.startswith("/") and want.endswith("/"):
            if not re.search(want[1:-1], have):
                return False
        elif arg in enums and have.upper() == want.upper():
            continue
        elif have != want:
            return False
    return True


class Store:
    """All objects, keyed per resource by their identity fields, in insertion order."""

    def __init__(self) -> None:
        self.saves = 0
        self.changed = False  # nsconfig configchanged: a write since the last save
        self.system = System()
        self._objs: dict[str, dict[tuple[str, ...], JSON]] = {}
        self.clear()

    def clear(self) -> None:
        """Back to a fresh appliance: nothing but the built-in monitors."""
        self.system = System()
        self._objs = {resource: {} for resource in SPECS}
        monitors = self._objs["lbmonitor"]
        for name, kind in BUILTIN_MONITORS.items():
            obj = {**defaults(SPECS["lbmonitor"]), "monitorname": name, "type": kind}
            monitors[(name,)] = monitor_defaults(obj)

    def snapshot(self) -> Any:
        return copy.deepcopy((self._objs, self.saves))

    def restore(self, state: Any) -> None:
        self._objs, self.saves = copy.deepcopy(state)

    # -- reads ---------------------------------------------------------------------------------

    def find(self, resource: str, *key: str) -> JSON | None:
        return self._objs[resource].get(tuple(key))

    def _referrers(self, resource: str, name: str) -> list[tuple[str, tuple[str, ...]]]:
        found = []
        for other, arg in REFERENCES.get(resource, []):
            found += [(other, k) for k, o in self._objs[other].items() if o.get(arg) == name]
        return found

    def health(self) -> Health:
        return Health(self._objs)

    def view(self, resource: str, obj: JSON, health: Health | None = None) -> JSON:
        """One object as GET shows it, with the appliance's computed read-only fields."""
        spec = SPECS[resource]
        out = render(spec, obj)
        health = health or self.health()
        if resource == "lbvserver":
            out.update(health.vserver(obj), type="ADDRESS")
        elif resource == "servicegroup":
            out["servicegroupeffectivestate"] = health.group(obj["servicegroupname"])
            out["numofconnections"] = 0
        elif resource in (MEMBER, "service"):
            server = self._objs["server"].get((obj["servername"],), {})
            out["ip" if resource == MEMBER else "ipaddress"] = server.get(
                "ipaddress", server.get("domain", "")
            )
            if resource == MEMBER:
                out["svrstate"] = health.members[key_of(spec, obj)]
            else:
                out["svrstate"] = health.services[obj["name"]]
        elif resource == VS_SVC:
            service = self._objs["service"][(obj["servicename"],)]
            vs = self._objs["lbvserver"][(obj["name"],)]
            ip = self.view("service", service, health)["ipaddress"]
            out.update(curstate=health.services[obj["servicename"]], ipv46=vs["ipv46"],
                       port=vs["port"], servicetype=service["servicetype"],
                       vsvrbindsvcip=ip, vsvrbindsvcport=service["port"])  # fmt: skip
        return out

    def units(self, resource: str) -> list[JSON]:
        """The raw objects of ``resource``: the control API marks probes on them."""
        return list(self._objs[resource].values())

    def list(self, resource: str, name: str | None, *, bulk: bool = False) -> list[JSON]:
        """GET without options: one object, a parent's bindings, or everything."""
        spec = SPECS[resource]
        objs = self._objs[resource]
        if name is None:
            if spec.binding and not bulk:
                raise errors.required_missing(spec.parent)
            health = self.health()
            return [self.view(resource, o, health) for o in objs.values()]
        if not spec.binding:
            obj = objs.get((name,))
            if obj is None:
                raise errors.no_such_resource(spec.parent, name)
            return [self.view(resource, obj)]
        if (name,) not in self._objs[spec.parent_resource]:
            raise errors.no_such_resource(spec.parent, name)
        health = self.health()
        return [self.view(resource, o, health) for o in objs.values() if o[spec.parent] == name]

    # -- writes --------------------------------------------------------------------------------

    def add(self, resource: str, payload: Any, *, idempotent: bool = False) -> None:
        spec = SPECS[resource]
        if spec.binding:
            self.bind(resource, payload)
            return
        raw, ip = self._split_ip(resource, payload)
        obj = parse(spec, raw, require=True)
        key = key_of(spec, obj)
        if key in self._objs[resource]:
            if idempotent:
                self.update(resource, raw)
                return
            raise errors.already_exists(spec.parent, key[0])
        obj = {**defaults(spec), **obj}
        if resource == "lbmonitor":
            obj = monitor_defaults(obj)
        self._check(resource, obj, None)
        if resource == "service":
            self._place(spec, obj, ip)
            self._create_server(ip)
        self._objs[resource][key] = obj

    def update(self, resource: str, payload: Any) -> None:
        spec = SPECS[resource]
        if spec.binding:
            raise errors.netscaler(1240, "Invalid nitro action or operation", "update", resource)
        obj = parse(spec, payload, require=False)
        current = self._existing(spec, obj)
        if resource == "lbmonitor" and current["monitorname"] in DEFAULT_MONITORS:
            raise errors.netscaler(2139, "No operations allowed with the default monitor")
        if resource == "servicegroup" and "monitor_name_svc" in obj:
            self._set_monstate(current, obj.pop("monitor_name_svc"), obj.get("monstate"))
            obj.pop("monstate", None)
        changes = {k: v for k, v in obj.items() if not spec.fields[k].immutable}
        merged = {**current, **changes}
        self._check(resource, merged, key_of(spec, current))
        current.update(changes)

    def _existing(self, spec: Spec, obj: JSON) -> JSON:
        name = obj.get(spec.parent)
        if name is None:
            raise errors.required_missing(spec.parent)
        current = self._objs[spec.resource].get((str(name),))
        if current is None:
            raise errors.no_such_resource(spec.parent, name)
        return current

    def _check(self, resource: str, obj: JSON, own: tuple[str, ...] | None) -> None:
        check(resource, obj, [o for k, o in self._objs[resource].items() if k != own])

    def _set_monstate(self, group: JSON, monitor: str, state: str | None) -> None:
        """``set servicegroup <sg> -monitorName <m> -monState <s>``: one monitor binding."""
        if state is None:
            raise errors.required_missing("monState")
        binding = self.find("servicegroup_lbmonitor_binding", group["servicegroupname"], monitor)
        if binding is None:
            raise errors.no_such_resource("monitorName", monitor)
        binding["monstate"] = state

    def _split_ip(self, resource: str, payload: Any) -> tuple[Any, str | None]:
        """A member or service names its server or gives an IP, never both (1092)."""
        if resource not in (MEMBER, "service") or not isinstance(payload, dict):
            return payload, None
        raw = dict(payload)
        ip = raw.pop("ip", None)
        if ip is not None and "servername" in raw:
            raise errors.both_specified("serverName", "IP")
        if ip is None and "servername" not in raw:
            raise errors.required_missing("ip")
        if ip is not None:
            ip = parse(SPECS[resource], {"ip": ip}, require=False)["ip"]
        return raw, ip

    def _place(self, spec: Spec, obj: JSON, ip: str | None) -> None:
        """Point a member or service at its server; by IP, the server is found or auto-created
        on write (nitro.md 10: binding by IP creates a server named after it)."""
        if ip is None:
            self._need("server", "servername", obj["servername"])
            return
        server = self._server_for(ip)
        obj["servername"] = server["name"] if server else ip

    def _create_server(self, ip: str | None) -> None:
        if ip is not None and self._server_for(ip) is None:
            self._objs["server"][(ip,)] = {**defaults(SPECS["server"]), "name": ip, "ipaddress": ip}

    def bind(self, resource: str, payload: Any) -> None:
        spec = SPECS[resource]
        raw, ip = self._split_ip(resource, payload)
        obj = parse(spec, raw, require=True)
        for arg, target in spec.refs.items():
            if resource == MEMBER and arg == "servername":
                self._place(spec, obj, ip)
            else:
                self._need(target, arg, obj[arg])
        if resource in VS_BINDS:
            vs = self._objs["lbvserver"][(obj["name"],)]
            arg = spec.key[1]
            bound = self._objs[VS_BINDS[resource]][(obj[arg],)]
            a, b = vs["servicetype"], bound["servicetype"]
            if a != b and not any(a in fam and b in fam for fam in COMPATIBLE):
                raise errors.netscaler(
                    1304, "Service type mismatch between the vserver and service", a, b
                )
        key = key_of(spec, obj)
        if key in self._objs[resource]:
            if resource in MON_BINDS:
                raise errors.netscaler(2133, "The monitor is already bound to the service")
            raise errors.already_exists(*key)
        self._create_server(ip)
        self._objs[resource][key] = {**defaults(spec), **obj}

    def _need(self, resource: str, arg: str, name: str) -> JSON:
        obj = self._objs[resource].get((name,))
        if obj is None:
            raise errors.no_such_resource(arg, name)
        return obj

    def _server_for(self, ip: str) -> JSON | None:
        """The server a bind by IP uses: one named or addressed so; else it is auto-created."""
        servers = self._objs["server"]
        if (ip,) in servers:
            return servers[(ip,)]
        found = [s for s in servers.values() if s.get("ipaddress") == ip]
        return found[0] if found else None

    def delete(self, resource: str, name: str, args: dict[str, str]) -> None:
        spec = SPECS[resource]
        if spec.binding:
            self._unbind(spec, name, args)
            return
        obj = self._objs[resource].get((name,))
        if resource == "lbmonitor":
            kind = args.get("type")
            if kind is None:
                raise errors.required_missing("type")
            if obj is not None and obj["type"] != kind.upper():
                obj = None
            if obj is not None and name in BUILTIN_MONITORS:
                raise errors.netscaler(2132, "Built-in monitors cannot be deleted", name)
        if obj is None:
            raise errors.no_such_resource(spec.parent, name)
        used = self._referrers(resource, name)
        if used and resource not in CASCADE:
            if resource == "lbmonitor":
                raise errors.netscaler(2131, "Monitor must be unbound before it can be deleted")
            raise errors.netscaler(1070, "Object in use, cannot delete", spec.parent, name)
        for other, key in used:
            del self._objs[other][key]
        del self._objs[resource][(name,)]

    def _unbind(self, spec: Spec, name: str, args: dict[str, str]) -> None:
        self._need(spec.parent_resource, spec.parent, name)
        conditions = dict(args)
        if spec.resource == MEMBER:
            if "ip" in conditions and "servername" in conditions:
                raise errors.both_specified("serverName", "IP")
            if "ip" not in conditions and "servername" not in conditions:
                raise errors.required_missing("ip")
            if "port" not in conditions:
                raise errors.required_missing("port")
        else:
            if spec.key[1] not in conditions:
                raise errors.required_missing(spec.key[1])
        for arg in conditions:
            if arg not in spec.fields:
                raise errors.no_such_argument(arg)
        objs = self._objs[spec.resource]
        health = self.health()
        for key, obj in objs.items():
            view = self.view(spec.resource, obj, health)
            if obj[spec.parent] == name and matches(view, conditions, spec.enums()):
                del objs[key]
                return
        raise errors.no_such_resource(*next(iter(conditions.items())))

    def action(self, resource: str, action: str, payload: Any) -> None:
        """POST ``?action=``: enable, disable, rename and unset."""
        spec = SPECS[resource]
        if spec.binding or action not in ("enable", "disable", "rename", "unset"):
            raise errors.netscaler(1240, "Invalid nitro action or operation", action, resource)
        if not isinstance(payload, dict):
            raise errors.bad_request(1238, "NITRO parse error", resource)
        body = dict(payload)
        if action == "rename":
            self._rename(spec, body)
        elif action == "unset":
            self._unset(spec, body)
        elif resource == "servicegroup" and "servername" in body:
            member = self.find(MEMBER, str(body.get("servicegroupname")), str(body["servername"]),
                               str(body.get("port")))  # fmt: skip
            if member is None:
                raise errors.no_such_resource("servername", body["servername"])
            member["state"] = "ENABLED" if action == "enable" else "DISABLED"
        else:
            extra = set(body) - {spec.parent, "delay", "graceful"}
            if extra:
                raise errors.no_such_argument(sorted(extra)[0])
            current = self._existing(spec, body)
            current["state"] = "ENABLED" if action == "enable" else "DISABLED"

    def _rename(self, spec: Spec, body: JSON) -> None:
        new = body.pop("newname", None)
        if new is None:
            raise errors.required_missing("newname")
        check_name("newname", str(new))
        current = self._existing(spec, body)
        old = current[spec.parent]
        if (new,) in self._objs[spec.resource]:
            raise errors.already_exists(spec.parent, new)
        for other, key in self._referrers(spec.resource, old):
            obj = self._objs[other].pop(key)
            arg = next(a for r, a in REFERENCES[spec.resource] if r == other)
            obj[arg] = new
            self._objs[other][key_of(SPECS[other], obj)] = obj
        del self._objs[spec.resource][(old,)]
        current[spec.parent] = new
        self._objs[spec.resource][(new,)] = current

    def _unset(self, spec: Spec, body: JSON) -> None:
        current = self._existing(spec, body)
        for arg in body:
            if arg == spec.parent:
                continue
            f = spec.fields.get(arg)
            if f is None:
                raise errors.no_such_argument(arg)
            if f.required or f.immutable:
                raise errors.invalid_argument(arg)
            if f.default is None:
                current.pop(arg, None)
            else:
                current[arg] = f.default
        self._check(spec.resource, current, key_of(spec, current))
