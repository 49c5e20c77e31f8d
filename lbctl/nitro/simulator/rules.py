"""The appliance's rules that span objects: built-in monitors, type families and address clashes.

Kept apart from the store so the rules read as a list: each is an error code the appliance
returns (nitro.md 6 and 10).
"""

from __future__ import annotations

from lbctl.nitro.simulator import errors
from lbctl.nitro.simulator.resources import JSON

BUILTIN_MONITORS = {
    "ping-default": "PING", "tcp-default": "TCP", "ping": "PING", "tcp": "TCP", "http": "HTTP",
    "tcp-ecv": "TCP-ECV", "http-ecv": "HTTP-ECV", "udp-ecv": "UDP-ECV", "dns": "DNS",
    "tcps": "TCPS", "https": "HTTPS", "arp": "ARP",
}  # fmt: skip
DEFAULT_MONITORS = {"ping-default", "tcp-default"}

UDP_TYPES = {"UDP", "DNS", "SIP_UDP", "DTLS", "RADIUS", "SYSLOGUDP", "TFTP", "QUIC", "IPFIX"}
COMPATIBLE = [{"HTTP", "SSL"}, {"TCP", "SSL_TCP"}]  # vserver/service-group type families


def _transport(servicetype: str) -> str:
    """Two vservers clash on one address and port only within one transport."""
    return "any" if servicetype == "ANY" else "udp" if servicetype in UDP_TYPES else "tcp"


def monitor_defaults(obj: JSON) -> JSON:
    """HTTP monitors probe ``HEAD /`` and expect 200 unless told otherwise (nitro.md 10)."""
    if obj["type"] in ("HTTP", "HTTP-ECV", "HTTPS"):
        obj.setdefault("httprequest", "HEAD /")
        obj.setdefault("respcode", ["200"])
    return obj


def check(resource: str, obj: JSON, others: list[JSON]) -> None:
    """Rules across objects that the appliance enforces on add and update; ``others`` are the
    resource's other objects."""
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
