"""Per-resource schemas: identity, fields, defaults, enumerations and immutable fields.

The schemas drive validation of every write, so a client that sends an attribute the appliance
does not know, or a value outside an enumeration, fails here the way it would on a real ADC.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lbctl.nitro.simulator import errors

JSON = dict[str, Any]

NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_#. :@=-]*")
MAX_NAME = 127


@dataclass(frozen=True)
class Field:
    """One attribute. ``kind`` is str, int, enum, list or ip; ``wire_str`` shows ints as strings."""

    kind: str = "str"
    choices: tuple[str, ...] = ()
    lo: int | None = None
    hi: int | None = None
    default: Any = None
    wire_str: bool = False
    required: bool = False
    immutable: bool = False
    name: bool = False  # an entity name: checked against the 1075 rules


@dataclass(frozen=True)
class Spec:
    """A resource: ``key`` fields identify one object; ``parent`` is the field the URL names."""

    resource: str
    key: tuple[str, ...]
    fields: Mapping[str, Field]
    readonly: frozenset[str] = field(default_factory=frozenset)
    binding: bool = False

    @property
    def parent(self) -> str:
        return self.key[0]


def _enum(*choices: str, default: str | None = None, **kw: Any) -> Field:
    return Field(kind="enum", choices=choices, default=default, **kw)


YESNO = ("YES", "NO")
STATE = ("ENABLED", "DISABLED")
SERVICETYPES = (
    "HTTP", "FTP", "TCP", "UDP", "SSL", "SSL_BRIDGE", "SSL_TCP", "DTLS", "NNTP", "DNS", "DHCPRA",
    "ANY", "SIP_UDP", "SIP_TCP", "SIP_SSL", "DNS_TCP", "RTSP", "PUSH", "SSL_PUSH", "RADIUS",
    "RDP", "MYSQL", "MSSQL", "DIAMETER", "SSL_DIAMETER", "TFTP", "ORACLE", "SMPP", "SYSLOGTCP",
    "SYSLOGUDP", "FIX", "SSL_FIX", "PROXY", "USER_TCP", "USER_SSL_TCP", "QUIC", "IPFIX",
    "LOGSTREAM", "MONGO", "MONGO_TLS", "MQTT", "MQTT_TLS", "QUIC_BRIDGE", "HTTP_QUIC",
)  # fmt: skip
LBMETHODS = (
    "ROUNDROBIN", "LEASTCONNECTION", "LEASTRESPONSETIME", "URLHASH", "DOMAINHASH",
    "DESTINATIONIPHASH", "SOURCEIPHASH", "SRCIPDESTIPHASH", "LEASTBANDWIDTH", "LEASTPACKETS",
    "TOKEN", "SRCIPSRCPORTHASH", "LRTM", "CALLIDHASH", "CUSTOMLOAD", "LEASTREQUEST",
    "AUDITLOGHASH", "STATICPROXIMITY", "USER_TOKEN",
)  # fmt: skip
PERSISTENCE = (
    "SOURCEIP", "COOKIEINSERT", "SSLSESSION", "RULE", "URLPASSIVE", "CUSTOMSERVERID", "DESTIP",
    "SRCIPDESTIP", "CALLID", "RTSPSID", "DIAMETER", "FIXSESSION", "USERSESSION", "NONE",
)  # fmt: skip
MONITOR_TYPES = (
    "PING", "TCP", "HTTP", "TCP-ECV", "HTTP-ECV", "UDP-ECV", "DNS", "FTP", "TCPS", "HTTPS",
    "TCPS-ECV", "HTTPS-ECV", "ARP", "ND6", "DNS-TCP", "HTTP-INLINE", "USER", "LDAP", "MYSQL",
)  # fmt: skip

TD = Field(kind="int", lo=0, hi=4094, default=0, immutable=True)

SPECS: dict[str, Spec] = {
    "lbvserver": Spec(
        "lbvserver",
        ("name",),
        {
            "name": Field(required=True, name=True),
            "servicetype": _enum(*SERVICETYPES, required=True, immutable=True),
            "ipv46": Field(kind="ip", default="0.0.0.0"),
            "port": Field(kind="int", lo=0, hi=65535, default=0, immutable=True),
            "lbmethod": _enum(*LBMETHODS, default="LEASTCONNECTION"),
            "backuplbmethod": _enum(*LBMETHODS, default="ROUNDROBIN"),
            "persistencetype": _enum(*PERSISTENCE, default="NONE"),
            "timeout": Field(kind="int", lo=0, hi=1440, default=2),
            "comment": Field(),
            "clttimeout": Field(kind="int", lo=0, hi=31536000, default=180, wire_str=True),
            "state": _enum(*STATE, default="ENABLED"),
            "td": TD,
            "range": Field(kind="int", lo=1, hi=254, default=1, wire_str=True, immutable=True),
            "m": _enum("IP", "MAC", "IPTUNNEL", "TOS", default="IP"),
            "netprofile": Field(),
            "listenpriority": Field(kind="int", lo=0, hi=101, default=101, wire_str=True),
        },
        readonly=frozenset(
            {"curstate", "effectivestate", "status", "type", "totalservices", "activeservices"}
        ),
    ),
    "servicegroup": Spec(
        "servicegroup",
        ("servicegroupname",),
        {
            "servicegroupname": Field(required=True, name=True),
            "servicetype": _enum(*SERVICETYPES, required=True, immutable=True),
            "comment": Field(),
            "usip": _enum(*YESNO, default="NO"),
            "cip": _enum(*STATE, default="DISABLED"),
            "cka": _enum(*YESNO, default="NO"),
            "tcpb": _enum(*YESNO, default="NO"),
            "cmp": _enum(*YESNO, default="NO"),
            "maxclient": Field(kind="int", lo=0, hi=4294967294, default=0, wire_str=True),
            "maxreq": Field(kind="int", lo=0, hi=65535, default=0, wire_str=True),
            "clttimeout": Field(kind="int", lo=0, hi=31536000, default=180, wire_str=True),
            "svrtimeout": Field(kind="int", lo=0, hi=31536000, default=360, wire_str=True),
            "healthmonitor": _enum(*YESNO, default="YES"),
            "netprofile": Field(),
            "autoscale": _enum("DISABLED", "DNS", "POLICY", "CLOUD", "API", default="DISABLED"),
            "memberport": Field(kind="int", lo=1, hi=65535, immutable=True),
            "state": _enum(*STATE, default="ENABLED"),
            "td": TD,
        },
        readonly=frozenset({"servicegroupeffectivestate", "numofconnections"}),
    ),
    "server": Spec(
        "server",
        ("name",),
        {
            "name": Field(required=True, name=True),
            "ipaddress": Field(kind="ip"),
            "domain": Field(),
            "comment": Field(),
            "state": _enum(*STATE, default="ENABLED"),
            "td": TD,
        },
    ),
    "servicegroup_servicegroupmember_binding": Spec(
        "servicegroup_servicegroupmember_binding",
        ("servicegroupname", "servername", "port"),
        {
            "servicegroupname": Field(required=True, name=True),
            "ip": Field(kind="ip"),
            "servername": Field(name=True),
            "port": Field(kind="int", lo=1, hi=65535, required=True),
            "weight": Field(kind="int", lo=1, hi=100, default=1, wire_str=True),
            "state": _enum(*STATE, default="ENABLED"),
            "hashid": Field(kind="int", lo=1, hi=4294967295),
            "serverid": Field(kind="int", lo=1, hi=4294967295),
            "customserverid": Field(default="None"),
            "order": Field(kind="int", lo=1, hi=8192),
        },
        readonly=frozenset({"svrstate", "statechangetimesec", "trofsreason"}),
        binding=True,
    ),
    "lbvserver_servicegroup_binding": Spec(
        "lbvserver_servicegroup_binding",
        ("name", "servicegroupname"),
        {
            "name": Field(required=True, name=True),
            "servicegroupname": Field(required=True, name=True),
            "weight": Field(kind="int", lo=1, hi=100),
            "order": Field(kind="int", lo=1, hi=8192),
        },
        binding=True,
    ),
    "lbmonitor": Spec(
        "lbmonitor",
        ("monitorname",),
        {
            "monitorname": Field(required=True, name=True),
            "type": _enum(*MONITOR_TYPES, required=True, immutable=True),
            "interval": Field(kind="int", lo=1, hi=20940000, default=5),
            "resptimeout": Field(kind="int", lo=1, hi=20939000, default=2),
            "retries": Field(kind="int", lo=1, hi=127, default=3),
            "downtime": Field(kind="int", lo=1, hi=20939000, default=30),
            "destip": Field(kind="ip"),
            "destport": Field(kind="int", lo=0, hi=65535),
            "httprequest": Field(),
            "respcode": Field(kind="list"),
            "send": Field(),
            "recv": Field(),
            "lrtm": _enum(*STATE),
            "comment": Field(),
            "state": _enum(*STATE, default="ENABLED"),
        },
    ),
    "servicegroup_lbmonitor_binding": Spec(
        "servicegroup_lbmonitor_binding",
        ("servicegroupname", "monitor_name"),
        {
            "servicegroupname": Field(required=True, name=True),
            "monitor_name": Field(required=True, name=True),
            "weight": Field(kind="int", lo=1, hi=100, default=1),
            "monstate": _enum(*STATE, default="ENABLED"),
            "passive": Field(kind="str"),
        },
        binding=True,
    ),
}


def spec(resource: str) -> Spec:
    try:
        return SPECS[resource]
    except KeyError:
        raise errors.bad_request(1266, "Invalid nitro request", "resource", resource) from None


def check_name(arg: str, value: str) -> None:
    """The appliance's entity-name rules: error 1075 for anything else."""
    if not value or len(value) > MAX_NAME or not NAME_RE.fullmatch(value):
        raise errors.invalid_name(arg, value)


def coerce(spec: Spec, arg: str, value: Any) -> Any:
    """One incoming value, normalised: numbers may arrive as strings, enums in any case."""
    f = spec.fields.get(arg)
    if f is None:
        raise errors.no_such_argument(arg)
    if f.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise errors.invalid_value(arg, value)
        if arg == "port" and value == "*":  # any port, as for servicetype ANY
            value = 65535
        try:
            number = int(value)
        except ValueError:
            raise errors.invalid_value(arg, value) from None
        if (f.lo is not None and number < f.lo) or (f.hi is not None and number > f.hi):
            raise errors.invalid_value(arg, value)
        return number
    if f.kind == "list":
        items = value if isinstance(value, list) else [value]
        return [str(v) for v in items]
    if not isinstance(value, str):
        raise errors.invalid_value(arg, value)
    if f.kind == "enum":
        upper = value.upper()
        if upper not in f.choices:
            raise errors.invalid_value(arg, value)
        return upper
    if f.kind == "ip":
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise errors.invalid_argument(arg) from None
    if f.name:
        check_name(arg, value)
    return value


def parse(spec: Spec, payload: Any, *, require: bool) -> JSON:
    """Validate one payload object; with ``require`` every required field must be present."""
    if not isinstance(payload, dict):
        raise errors.bad_request(1238, "NITRO parse error", spec.resource)
    out: JSON = {}
    for arg, value in payload.items():
        if arg in spec.readonly:
            raise errors.no_such_argument(arg)
        out[arg] = coerce(spec, arg, value)
    if require:
        for arg, f in spec.fields.items():
            if f.required and arg not in out:
                raise errors.required_missing(arg)
    return out


def defaults(spec: Spec) -> JSON:
    return {arg: f.default for arg, f in spec.fields.items() if f.default is not None}


def render(spec: Spec, obj: JSON) -> JSON:
    """An object as GET shows it: ints that the appliance sends as strings become strings."""
    out: JSON = {k: obj[k] for k in spec.key if k in obj}  # names first, as the appliance does
    for arg, value in obj.items():
        f = spec.fields.get(arg)
        if f is not None and f.wire_str and isinstance(value, int):
            out[arg] = str(value)
        elif isinstance(value, list):
            out[arg] = list(value)
        else:
            out[arg] = value
    return out
