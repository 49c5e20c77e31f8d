"""The appliance's configuration: objects per resource plus the rules that tie them together.

Pure state, no HTTP: the server turns requests into calls here, and ``NitroError`` carries the
appliance's answer to a bad one.  References between resources (a member names its service
group and server, a monitor binding its monitor) drive cascading deletes, "in use" refusals and
renames from one table, as on the appliance.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from lbctl.nitro.simulator import errors
from lbctl.nitro.simulator.resources import JSON, SPECS, Spec, check_name, defaults, parse, render

MEMBER = "servicegroup_servicegroupmember_binding"
VS_BIND = "lbvserver_servicegroup_binding"
MON_BIND = "servicegroup_lbmonitor_binding"

# (resource, key field) -> the (resource, field) pairs that name it.
REFERENCES: dict[str, list[tuple[str, str]]] = {
    "lbvserver": [(VS_BIND, "name")],
    "servicegroup": [(MEMBER, "servicegroupname"), (VS_BIND, "servicegroupname"),
                     (MON_BIND, "servicegroupname")],
    "server": [(MEMBER, "servername")],
    "lbmonitor": [(MON_BIND, "monitor_name")],
}  # fmt: skip
CASCADE = {"lbvserver", "servicegroup"}  # deleting these removes what names them

BUILTIN_MONITORS = {
    "ping-default": "PING", "tcp-default": "TCP", "ping": "PING", "tcp": "TCP", "http": "HTTP",
    "tcp-ecv": "TCP-ECV", "http-ecv": "HTTP-ECV", "udp-ecv": "UDP-ECV", "dns": "DNS",
    "tcps": "TCPS", "https": "HTTPS", "arp": "ARP",
}  # fmt: skip
DEFAULT_MONITORS = {"ping-default", "tcp-default"}

UDP_TYPES = {"UDP", "DNS", "SIP_UDP", "DTLS", "RADIUS", "SYSLOGUDP", "TFTP", "QUIC", "IPFIX"}
COMPATIBLE = [{"HTTP", "SSL"}, {"TCP", "SSL_TCP"}]  # vserver/service-group type families


def key_of(spec: Spec, obj: JSON) -> tuple[str, ...]:
    return tuple(str(obj.get(k)) for k in spec.key)


def _transport(servicetype: str) -> str:
    return "any" if servicetype == "ANY" else "udp" if servicetype in UDP_TYPES else "tcp"


def matches(obj: JSON, conditions: dict[str, str]) -> bool:
    """Exact match on the rendered value; a value written ``/re/`` is a regular expression."""
    for arg, want in conditions.items():
        value = obj.get(arg)
        if value is None:
            return False
        have = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        if len(want) >= 2 and want.startswith("/") and want.endswith("/"):
            if not re.search(want[1:-1], have):
                return False
        elif have != want:
            return False
    return True


@dataclass(frozen=True)
class Health:
    live: set[str]
    """Service groups with at least one enabled member on an enabled server."""
    bound: dict[str, list[str]]
    """lb vserver name → the service groups bound to it."""


class Store:
    """All objects, keyed per resource by their identity fields, in insertion order."""

    def __init__(self) -> None:
        self.saves = 0
        self._objs: dict[str, dict[tuple[str, ...], JSON]] = {}
        self.clear()

    def clear(self) -> None:
        """Back to a fresh appliance: nothing but the built-in monitors."""
        self._objs = {resource: {} for resource in SPECS}
        monitors = self._objs["lbmonitor"]
        for name, kind in BUILTIN_MONITORS.items():
            obj = {**defaults(SPECS["lbmonitor"]), "monitorname": name, "type": kind}
            monitors[(name,)] = self._monitor_defaults(obj)

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

    def view(self, resource: str, obj: JSON, health: Health | None = None) -> JSON:
        """One object as GET shows it, with the appliance's computed read-only fields."""
        spec = SPECS[resource]
        out = render(spec, obj)
        if resource in ("lbvserver", "servicegroup"):
            health = health or self._health()
        if resource == "lbvserver":
            assert health is not None
            out.update(self._vserver_state(obj, health), type="ADDRESS")
        elif resource == "servicegroup":
            assert health is not None
            up = self._sg_up(obj, health)
            out["servicegroupeffectivestate"] = "UP" if up else "DOWN"
        elif resource == MEMBER:
            server = self._objs["server"].get((obj["servername"],), {})
            out["ip"] = server.get("ipaddress", server.get("domain", ""))
            up = obj["state"] == "ENABLED" and server.get("state") == "ENABLED"
            out["svrstate"] = "UP" if up else "OUT OF SERVICE"
        return out

    def _health(self) -> Health:
        """Which service groups have a live member, and which groups each vserver binds:
        computed in one pass, so listing N objects costs O(N), not O(N²)."""
        servers = self._objs["server"]
        live = {
            m["servicegroupname"]
            for m in self._objs[MEMBER].values()
            if m["state"] == "ENABLED" and servers[(m["servername"],)]["state"] == "ENABLED"
        }
        bound: dict[str, list[str]] = {}
        for b in self._objs[VS_BIND].values():
            bound.setdefault(b["name"], []).append(b["servicegroupname"])
        return Health(live, bound)

    def _sg_up(self, sg: JSON, health: Health) -> bool:
        return sg.get("state") == "ENABLED" and sg["servicegroupname"] in health.live

    def _vserver_state(self, vs: JSON, health: Health) -> JSON:
        bound = health.bound.get(vs["name"], [])
        groups = self._objs["servicegroup"]
        up = sum(1 for sg in bound if self._sg_up(groups[(sg,)], health))
        cur = "OUT OF SERVICE" if vs.get("state") == "DISABLED" else "UP" if up else "DOWN"
        total = len(bound)
        return {"curstate": cur, "effectivestate": cur, "status": 1 if cur == "UP" else 7,
                "totalservices": str(total), "activeservices": str(up)}  # fmt: skip

    def list(self, resource: str, name: str | None, *, bulk: bool = False) -> list[JSON]:
        """GET without options: one object, a parent's bindings, or everything."""
        spec = SPECS[resource]
        objs = self._objs[resource]
        if name is None:
            if spec.binding and not bulk:
                raise errors.required_missing(spec.parent)
            health = self._health() if resource in ("lbvserver", "servicegroup") else None
            return [self.view(resource, o, health) for o in objs.values()]
        if not spec.binding:
            obj = objs.get((name,))
            if obj is None:
                raise errors.no_such_resource(spec.parent, name)
            return [self.view(resource, obj)]
        parent = "lbvserver" if resource == VS_BIND else "servicegroup"
        if (name,) not in self._objs[parent]:
            raise errors.no_such_resource(spec.parent, name)
        return [self.view(resource, o) for o in objs.values() if o[spec.parent] == name]

    # -- writes --------------------------------------------------------------------------------

    def add(self, resource: str, payload: Any, *, idempotent: bool = False) -> None:
        spec = SPECS[resource]
        if spec.binding:
            self.bind(resource, payload)
            return
        obj = parse(spec, payload, require=True)
        key = key_of(spec, obj)
        if key in self._objs[resource]:
            if idempotent:
                self.update(resource, payload)
                return
            raise errors.already_exists(spec.parent, key[0])
        obj = {**defaults(spec), **obj}
        if resource == "lbmonitor":
            obj = self._monitor_defaults(obj)
        self._check(resource, obj, None)
        self._objs[resource][key] = obj

    def update(self, resource: str, payload: Any) -> None:
        spec = SPECS[resource]
        if spec.binding:
            raise errors.netscaler(1240, "Invalid nitro action or operation", "update", resource)
        obj = parse(spec, payload, require=False)
        current = self._existing(spec, obj)
        if resource == "lbmonitor" and current["monitorname"] in DEFAULT_MONITORS:
            raise errors.netscaler(2139, "No operations allowed with the default monitor")
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

    def _monitor_defaults(self, obj: JSON) -> JSON:
        if obj["type"] in ("HTTP", "HTTP-ECV", "HTTPS"):
            obj.setdefault("httprequest", "HEAD /")
            obj.setdefault("respcode", ["200"])
        return obj

    def _check(self, resource: str, obj: JSON, own: tuple[str, ...] | None) -> None:
        """Rules across objects that the appliance enforces on add and update."""
        others = [o for k, o in self._objs[resource].items() if k != own]
        if resource == "lbmonitor" and obj["resptimeout"] >= obj["interval"]:
            raise errors.netscaler(
                2128, "Monitor interval must be greater than response timeout",
                "resptimeout", obj["resptimeout"],
            )  # fmt: skip
        elif resource == "server":
            if "ipaddress" in obj and "domain" in obj:
                raise errors.both_specified("ipaddress", "domain")
            if "ipaddress" not in obj and "domain" not in obj:
                raise errors.required_missing("ipaddress")
            ip = obj.get("ipaddress")
            if ip is not None and any(o.get("ipaddress") == ip for o in others):
                raise errors.netscaler(1335, "Server already exists", "ipaddress", ip)
        elif resource == "lbvserver" and obj["ipv46"] not in ("0.0.0.0", "::"):
            mine = _transport(obj["servicetype"])
            for o in others:
                if o["ipv46"] != obj["ipv46"] or o["port"] != obj["port"]:
                    continue
                theirs = _transport(o["servicetype"])
                if "any" in (mine, theirs) or mine == theirs:
                    where = f"{obj['ipv46']}:{obj['port']}"
                    raise errors.netscaler(304, "Address already in use", "ipv46", where)

    def bind(self, resource: str, payload: Any) -> None:
        spec = SPECS[resource]
        raw = dict(payload) if isinstance(payload, dict) else payload
        ip = raw.pop("ip", None) if resource == MEMBER and isinstance(raw, dict) else None
        if ip is not None and "servername" in raw:
            raise errors.both_specified("serverName", "IP")
        if resource == MEMBER and ip is None and isinstance(raw, dict) and "servername" not in raw:
            raise errors.required_missing("ip")
        obj = parse(spec, raw, require=True)
        if ip is not None:
            ip = parse(spec, {"ip": ip}, require=False)["ip"]
        if resource == MEMBER:
            self._need("servicegroup", "servicegroupname", obj["servicegroupname"])
            if ip is None:
                self._need("server", "servername", obj["servername"])
            else:
                server = self._server_for(ip)
                obj["servername"] = server["name"] if server else ip
        elif resource == VS_BIND:
            vs = self._need("lbvserver", "name", obj["name"])
            sg = self._need("servicegroup", "servicegroupname", obj["servicegroupname"])
            a, b = vs["servicetype"], sg["servicetype"]
            if a != b and not any(a in fam and b in fam for fam in COMPATIBLE):
                raise errors.netscaler(
                    1304, "Service type mismatch between the vserver and service", a, b
                )
        else:
            self._need("servicegroup", "servicegroupname", obj["servicegroupname"])
            self._need("lbmonitor", "monitor_name", obj["monitor_name"])
        key = key_of(spec, obj)
        if key in self._objs[resource]:
            if resource == MON_BIND:
                raise errors.netscaler(2133, "The monitor is already bound to the service")
            raise errors.already_exists(*key)
        if resource == MEMBER and ip is not None and self._server_for(ip) is None:
            auto = {**defaults(SPECS["server"]), "name": ip, "ipaddress": ip}
            self._objs["server"][(ip,)] = auto
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
        parent = "lbvserver" if spec.resource == VS_BIND else "servicegroup"
        self._need(parent, spec.parent, name)
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
        for key, obj in objs.items():
            if obj[spec.parent] == name and matches(self.view(spec.resource, obj), conditions):
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
