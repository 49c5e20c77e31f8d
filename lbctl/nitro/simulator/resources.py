"""Per-resource schemas, loaded from data: identity, fields, defaults, enumerations, immutables.

The schemas drive validation of every write, so a client that sends an attribute the appliance
does not know, or a value outside an enumeration, fails here the way it would on a real ADC.
They are data, not code: ``data/nitro-attributes.json`` is a verbatim copy of the NITRO schema
reference (every attribute name and JSON type per resource) and ``data/specs.json`` refines it
(keys, read-only attributes, enumerations, ranges, defaults).  See the ``_about`` of the latter.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources as package_data
from typing import Any

from lbctl.nitro.simulator import errors

JSON = dict[str, Any]

NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_#. :@=-]*")
MAX_NAME = 127

# JSON type in the NITRO schema reference -> the simulator's kind.
KINDS = {
    "string": "str",
    "integer": "int",
    "number": "number",
    "boolean": "bool",
    "array of string": "list",
    "array of integer": "intlist",
    "[]int": "intlist",
}


@dataclass(frozen=True)
class Field:
    """One attribute. ``kind`` is str, int, number, bool, enum, ip, list or intlist;
    ``wire_str`` shows ints as strings."""

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
    """A resource: ``key`` fields identify one object; ``parent`` is the field the URL names.

    ``parent_resource`` is, for a binding, the resource its URL name belongs to; ``refs`` maps a
    field to the resource whose object it must name."""

    resource: str
    key: tuple[str, ...]
    fields: Mapping[str, Field]
    readonly: frozenset[str] = field(default_factory=frozenset)
    binding: bool = False
    parent_resource: str = ""
    refs: Mapping[str, str] = field(default_factory=dict)

    @property
    def parent(self) -> str:
        return self.key[0]

    def enums(self) -> frozenset[str]:
        return frozenset(a for a, f in self.fields.items() if f.kind == "enum")


def _read(name: str) -> Any:
    return json.loads(package_data.files(__package__).joinpath("data", name).read_text())


def _field(ref: JSON, enums: Mapping[str, list[str]], wire_type: str | None) -> Field:
    """A refinement from specs.json over the reference's JSON type."""
    choices = ref.get("choices", ())
    if isinstance(choices, str):
        choices = enums[choices]
    kind = ref.get("kind") or KINDS.get(wire_type or "string", "str")
    known = {k: v for k, v in ref.items() if k not in ("kind", "choices", "_note")}
    return Field(kind=kind, choices=tuple(choices), **known)


def load(attributes: JSON, specs: JSON) -> dict[str, Spec]:
    """Every resource in ``specs`` with every attribute the reference lists for it.

    Names starting with ``_`` (``_nextgenapiresource``) are the Go client's routing hints, not
    attributes the appliance takes, so they stay unknown."""
    enums = specs["enums"]
    out: dict[str, Spec] = {}
    for resource, raw in specs["resources"].items():
        types: dict[str, str] = attributes["resources"].get(f"config/{resource}", {})
        readonly = frozenset(raw.get("readonly", ()))
        names = [a for a in types if not a.startswith("_") and a not in readonly]
        fields = {a: _field(raw["fields"].get(a, {}), enums, types.get(a)) for a in names}
        for a, ref in raw["fields"].items():  # refinements the reference lacks, e.g. ip kinds
            fields.setdefault(a, _field(ref, enums, types.get(a)))
        out[resource] = Spec(
            resource,
            tuple(raw["key"]),
            fields,
            readonly,
            binding=raw.get("binding", False),
            parent_resource=raw.get("parent", ""),
            refs=raw.get("refs", {}),
        )
    return out


ATTRIBUTES: JSON = _read("nitro-attributes.json")
SPECS: dict[str, Spec] = load(ATTRIBUTES, _read("specs.json"))


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
    if f.kind in ("list", "intlist"):
        items = value if isinstance(value, list) else [value]
        if f.kind == "list":
            return [str(v) for v in items]
        return [coerce_number(arg, v, int) for v in items]
    if f.kind == "number":
        return coerce_number(arg, value, float)
    if f.kind == "bool":
        if not isinstance(value, bool):
            raise errors.invalid_value(arg, value)
        return value
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


def coerce_number(arg: str, value: Any, kind: type[int] | type[float]) -> Any:
    """A number that may arrive as a string, as NITRO clients send them."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise errors.invalid_value(arg, value)
    try:
        return kind(value)
    except ValueError:
        raise errors.invalid_value(arg, value) from None


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
        if arg.startswith("_"):  # the simulator's private marks, e.g. a test's probe result
            continue
        f = spec.fields.get(arg)
        if f is not None and f.wire_str and isinstance(value, int):
            out[arg] = str(value)
        elif isinstance(value, list):
            out[arg] = list(value)
        else:
            out[arg] = value
    return out
