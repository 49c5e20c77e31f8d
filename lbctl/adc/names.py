"""Names and ownership marks of the ADC objects lbctl creates.

Object names are ``<prefix>-<namespace>_<service>_<port>-<protocol>_<kind>``.  Kubernetes names
never contain ``_`` and the prefix never contains ``-``, so a name maps back to one Service port
only; names longer than NetScaler's limit are cut and end in a hash of the full name.  Every
object also carries a comment naming its owner key (the prefix and the instance's scope: its
``--namespace`` and ``--load-balancer-class``), and lbctl only ever changes objects whose name
has its prefix *and* whose comment names exactly its own owner key: two clusters (two
prefixes), or two instances of one cluster with different scopes, can share one ADC without
touching each other's objects.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from lbctl.interning import shared

MAX_NAME = 127
MAX_COMMENT = 256
"""NetScaler's limit on an object's comment."""
MAX_SCOPE = 64
"""A longer scope is written as its hash, so every comment stays within MAX_COMMENT."""
PREFIX_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,7}$")
_COMMENT = re.compile(
    r"^lbctl owner=(?P<prefix>[A-Za-z0-9]+)(?: scope=(?P<scope>\S+))?"
    r" service=(?P<ns>[a-z0-9.-]+)/(?P<name>[a-z0-9.-]+) port=(?P<port>\d+)/(?P<proto>[A-Z]+)$"
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
        """``namespace/name``: the one string lbctl holds for that Service's key (the listing
        keeps it for each of the Service's objects)."""
        return shared(f"{self.namespace}/{self.service}")

    @property
    def label(self) -> str:
        return f"{self.port}-{self.protocol.lower()}"


def object_name(prefix: str, port: PortId, kind: str) -> str:
    full = f"{prefix}-{port.namespace}_{port.service}_{port.label}_{kind}"
    if len(full) <= MAX_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:16]
    return f"{full[: MAX_NAME - len(digest) - 1]}_{digest}"


@dataclass(frozen=True)
class Owner:
    """The owner key of one lbctl instance's ADC objects: everything that scopes it.

    An instance watching all namespaces without a load-balancer class has no scope, and its
    comments keep the format of lbctl before scopes existed, so upgrading it neither orphans
    nor rewrites its objects.
    """

    prefix: str
    namespace: str | None = None
    load_balancer_class: str | None = None

    @property
    def scope(self) -> str | None:
        """``ns:<namespace>``, ``class:<class>`` or both (comma-separated); hashed if long."""
        parts = []
        if self.namespace:
            parts.append(f"ns:{self.namespace}")
        if self.load_balancer_class:
            parts.append(f"class:{self.load_balancer_class}")
        if not parts:
            return None
        text = ",".join(parts)
        if len(text) <= MAX_SCOPE:
            return text
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def as_owner(owner: str | Owner) -> Owner:
    """A bare prefix is the unscoped owner under that prefix."""
    return owner if isinstance(owner, Owner) else Owner(owner)


def ownership_comment(owner: str | Owner, port: PortId) -> str:
    owner = as_owner(owner)
    scope = f" scope={owner.scope}" if owner.scope is not None else ""
    return (
        f"lbctl owner={owner.prefix}{scope} service={port.owner} port={port.port}/{port.protocol}"
    )


def server_comment(owner: str | Owner) -> str:
    """The comment lbctl gives a ``server`` that NetScaler created for one of its member
    binds: the only servers it ever deletes."""
    owner = as_owner(owner)
    scope = f" scope={owner.scope}" if owner.scope is not None else ""
    return f"lbctl owner={owner.prefix}{scope} server"


def owner_of(owner: str | Owner, name: str, comment: object) -> PortId | None:
    """The Service port an ADC object belongs to, if its name has ``owner``'s prefix and its
    comment names exactly ``owner``'s key (prefix and scope)."""
    owner = as_owner(owner)
    if not name.startswith(f"{owner.prefix}-") or not isinstance(comment, str):
        return None
    found = _COMMENT.match(comment)
    if found is None or found["prefix"] != owner.prefix or found["scope"] != owner.scope:
        return None
    return PortId(found["ns"], found["name"], int(found["port"]), found["proto"])
