"""Names and ownership marks of the ADC objects lbctl creates.

Object names are ``<prefix>-<namespace>_<service>_<port>-<protocol>_<kind>``.  Kubernetes names
never contain ``_`` and the prefix never contains ``-``, so a name maps back to one Service port
only; names longer than NetScaler's limit are cut and end in a hash of the full name.  Every
object also carries a comment naming its owner, and lbctl only ever changes objects whose name
has its prefix *and* whose comment names that prefix: two clusters (two prefixes) can share one
ADC without touching each other's objects.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

MAX_NAME = 127
PREFIX_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,7}$")
_COMMENT = re.compile(
    r"^lbctl owner=(?P<prefix>[A-Za-z0-9]+) service=(?P<ns>[a-z0-9.-]+)/(?P<name>[a-z0-9.-]+)"
    r" port=(?P<port>\d+)/(?P<proto>[A-Z]+)$"
)


class PrefixError(ValueError):
    pass


def check_prefix(prefix: str) -> str:
    if not PREFIX_PATTERN.match(prefix):
        raise PrefixError(
            f"ADC name prefix {prefix!r} must be 1-8 letters and digits, starting with a letter"
        )
    return prefix


@dataclass(frozen=True)
class PortId:
    """One Service port as the ADC sees it."""

    namespace: str
    service: str
    port: int
    protocol: str

    @property
    def owner(self) -> str:
        return f"{self.namespace}/{self.service}"

    @property
    def label(self) -> str:
        return f"{self.port}-{self.protocol.lower()}"


def object_name(prefix: str, port: PortId, kind: str) -> str:
    full = f"{prefix}-{port.namespace}_{port.service}_{port.label}_{kind}"
    if len(full) <= MAX_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:16]
    return f"{full[: MAX_NAME - len(digest) - 1]}_{digest}"


def ownership_comment(prefix: str, port: PortId) -> str:
    return f"lbctl owner={prefix} service={port.owner} port={port.port}/{port.protocol}"


def owner_of(prefix: str, name: str, comment: object) -> PortId | None:
    """The Service port an ADC object belongs to, if it is lbctl's under ``prefix``."""
    if not name.startswith(f"{prefix}-") or not isinstance(comment, str):
        return None
    found = _COMMENT.match(comment)
    if found is None or found["prefix"] != prefix:
        return None
    return PortId(found["ns"], found["name"], int(found["port"]), found["proto"])
