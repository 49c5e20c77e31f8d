"""NetScaler-style "smart annotations": NITRO attributes per Service port, allow-listed.

``service.citrix.com/lbvserver: '{"80-tcp": {"lbmethod": "ROUNDROBIN"}}'`` sets attributes on
the lb vserver of port 80/TCP; an object without port keys applies to every port.  Only the
attributes below are accepted, with their values checked, so a typo is reported on the Service
instead of being sent to the ADC (or silently ignored).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

LBVSERVER_ANNOTATION = "service.citrix.com/lbvserver"
SERVICEGROUP_ANNOTATION = "service.citrix.com/servicegroup"
MONITOR_ANNOTATION = "service.citrix.com/monitor"
MAX_ANNOTATION = 16_384

Check = Callable[[object], object]
"""Returns the normalised value or raises ValueError with a reason."""


def enum(*allowed: str) -> Check:
    def check(value: object) -> object:
        text = str(value).strip().upper()
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return check


def integer(low: int, high: int) -> Check:
    def check(value: object) -> object:
        if isinstance(value, bool) or not re.fullmatch(r"-?\d+", str(value).strip()):
            raise ValueError("must be an integer")
        number = int(str(value))
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return check


def text(max_length: int) -> Check:
    def check(value: object) -> object:
        if not isinstance(value, str) or len(value) > max_length:
            raise ValueError(f"must be a string of at most {max_length} characters")
        return value

    return check


def codes(value: object) -> object:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if not re.fullmatch(r"[0-9]{3}(-[0-9]{3})?", str(item).strip()):
            raise ValueError("must be HTTP status codes such as 200 or 200-299")
        out.append(str(item).strip())
    return out


YES_NO = enum("YES", "NO")
ON_OFF = enum("ENABLED", "DISABLED")
LB_METHODS = enum(
    "ROUNDROBIN", "LEASTCONNECTION", "LEASTRESPONSETIME", "SOURCEIPHASH", "SRCIPDESTIPHASH",
    "SRCIPSRCPORTHASH", "LEASTBANDWIDTH", "LEASTPACKETS", "CALLIDHASH", "TOKEN", "URLHASH",
    "DOMAINHASH", "DESTINATIONIPHASH", "CUSTOMLOAD",
)  # fmt: skip

ALLOWED: dict[str, dict[str, Check]] = {
    LBVSERVER_ANNOTATION: {
        "lbmethod": LB_METHODS,
        "backuplbmethod": LB_METHODS,
        "persistencetype": enum("SOURCEIP", "NONE", "DESTIP", "SRCIPDESTIP", "CALLID", "RTSPSID"),
        "timeout": integer(0, 1440),
        "clttimeout": integer(0, 31_536_000),
        "hashlength": integer(1, 4096),
        "netmask": text(15),
        "downstateflush": ON_OFF,
        "disableprimaryondown": ON_OFF,
    },
    SERVICEGROUP_ANNOTATION: {
        "usip": YES_NO,
        "useproxyport": YES_NO,
        "cka": YES_NO,
        "tcpb": YES_NO,
        "cmp": YES_NO,
        "cip": ON_OFF,
        "cipheader": text(127),
        "maxclient": integer(0, 4_294_967_294),
        "maxreq": integer(0, 65_535),
        "clttimeout": integer(0, 31_536_000),
        "svrtimeout": integer(0, 31_536_000),
        "healthmonitor": YES_NO,
        "downstateflush": ON_OFF,
    },
    MONITOR_ANNOTATION: {
        "type": enum("PING", "TCP", "HTTP", "TCP-ECV", "HTTP-ECV", "UDP-ECV", "DNS"),
        "interval": integer(1, 20_940_000),
        "resptimeout": integer(1, 20_939_000),
        "retries": integer(1, 127),
        "downtime": integer(1, 20_939_000),
        "httprequest": text(512),
        "respcode": codes,
        "send": text(512),
        "recv": text(512),
        "destport": integer(1, 65_535),
    },
}
_PORT_KEY = re.compile(r"^\d{1,5}-(tcp|udp|sctp)$")


class AnnotationError(ValueError):
    """Names the annotation, the port key and the attribute at fault."""


def per_port(annotations: Mapping[str, str], annotation: str) -> dict[str, dict[str, Any]]:
    """``{"80-tcp": {attr: value}, "*": {...}}`` from one smart annotation, validated."""
    raw = annotations.get(annotation)
    if raw is None:
        return {}
    if len(raw) > MAX_ANNOTATION:
        raise AnnotationError(f"{annotation} is longer than {MAX_ANNOTATION} characters")
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise AnnotationError(f"{annotation} is not valid JSON: {err}") from None
    except RecursionError:
        raise AnnotationError(f"{annotation} is nested too deeply") from None
    if not isinstance(data, dict):
        raise AnnotationError(f"{annotation} must be a JSON object")
    keyed = bool(data) and all(isinstance(k, str) and _PORT_KEY.match(k) for k in data)
    groups = data if keyed else {"*": data}
    allowed = ALLOWED[annotation]
    result: dict[str, dict[str, Any]] = {}
    for key, attributes in groups.items():
        where = f"{annotation}[{key}]" if keyed else annotation
        if not isinstance(attributes, dict):
            raise AnnotationError(f"{where} must be a JSON object of attributes")
        checked: dict[str, Any] = {}
        for name, value in attributes.items():
            check = allowed.get(name)
            if check is None:
                raise AnnotationError(
                    f"{where}: attribute {name!r} is not supported"
                    f" (allowed: {', '.join(sorted(allowed))})"
                )
            try:
                checked[name] = check(value)
            except ValueError as err:
                raise AnnotationError(f"{where}: {name}={value!r} {err}") from None
        result[key] = checked
    return result


def for_port(groups: Mapping[str, Mapping[str, Any]], label: str) -> dict[str, Any]:
    return {**groups.get("*", {}), **groups.get(label, {})}
