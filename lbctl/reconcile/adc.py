"""Programs one Service's ADC objects by diff, from a shared listing of lbctl's objects.

The listing (a handful of NITRO GETs, one more per 1,000 objects of a kind) is read at start
and on every drift pass; between passes it is kept current by applying each successful write to
it, so a Service that is already right costs no NITRO request at all and a new one costs only
its writes.  A write that finds the ADC different from the listing (an object missing or already
there) marks the listing stale: the next reconcile reads it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from lbctl.adc.diff import Op, diff
from lbctl.adc.names import Owner, as_owner, server_comment
from lbctl.adc.plan import Endpoint, Node, Plan, plan_service
from lbctl.adc.state import (
    BINDING_ATTRS,
    BINDING_RESOURCE,
    KEY_FIELD,
    MANAGED_ATTRS,
    NO_ATTRS,
    OBJECT_KINDS,
    Key,
    Listing,
    read_bindings,
    read_objects,
)
from lbctl.nitro.client import NitroClient
from lbctl.nitro.errors import AlreadyExists, AuthFailed, NitroError, NoSuchResource, Unavailable

log = structlog.get_logger(__name__)

ADC_FAILED = "lbctl.io/ADCConfigFailed"
SERVER_ATTRS = ("name", "ipaddress", "comment")


@dataclass
class AdcOutcome:
    """What happened on the ADC for one Service."""

    port_errors: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Port label ("80-tcp") → (reason, message) for ports the ADC could not be given."""
    problem: str | None = None
    """A problem with the whole Service (bad annotation): reported, not retried."""
    retry: str | None = None
    """Why the Service must be tried again (ADC unreachable, a port failed)."""
    unreachable: bool = False
    """The ADC did not answer (or refused lbctl's credentials): nothing is known per port."""
    lb_disabled: bool = False
    """The NetScaler's LB feature is off: nothing was tried."""
    skipped: bool = False
    """The Service was no longer to be configured once its turn came: nothing was done."""
    writes: int = 0


class AdcSync:
    def __init__(
        self,
        client: NitroClient,
        owner: str | Owner,
        nodes: Callable[[], Iterable[Node]],
        endpoints: Callable[[str], Iterable[Endpoint]],
    ) -> None:
        self._client = client
        self._owner = as_owner(owner)
        self._nodes = nodes
        self._endpoints = endpoints
        self._listing: Listing | None = None
        self._refreshing = asyncio.Lock()
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}
        """Owner → (lock, users): one Service's configuration and removal never interleave
        (they run on different work queues)."""
        self._journal: list[tuple[Op, str]] | None = None
        """Writes made while a listing is being read; replayed onto it, since the GETs may
        have run before them."""
        self._released: set[str] = set()
        """Member IPs lbctl unbound: the ``server`` objects its binds created go once unused."""
        self._servers: dict[str, str] | None = None
        """``server`` name → comment, as last read (None: not read yet)."""
        self.unsaved = False
        """lbctl changed the running configuration since it was last saved."""
        self.lb_disabled: str | None = None
        """Why the NetScaler cannot load-balance (its LB feature is off), or None."""
        self.passes = 0

    async def refresh(self) -> set[str]:
        """Read lbctl's objects from the ADC; the Services that own some."""
        async with self._refreshing:
            return await self._refresh()

    async def _refresh(self) -> set[str]:
        """Read the ADC into the listing in use, where the ADC workers go on reading and
        recording meanwhile (a second listing of every Service's objects would double what
        lbctl holds for a while); what it no longer has goes once all is read.  Objects come a
        page at a time, each kind of binding in one bulk GET.  Raises NitroError (the listing
        is then partly read: a hint still, as ever)."""
        listing = self._listing or Listing()
        seen: set[Key] = set()
        self._journal = []
        try:
            for kind in OBJECT_KINDS:
                async for page in self._client.pages(kind, attrs=MANAGED_ATTRS[kind]):
                    seen.update(read_objects(listing, self._owner, kind, page))
            in_use: set[str] = set()
            for kind, resource in BINDING_RESOURCE.items():
                rows = await self._client.get(
                    resource, bulkbindings=True, attrs=BINDING_ATTRS[resource]
                )
                seen.update(read_bindings(listing, kind, rows))
                if kind == "member":
                    in_use = {str(m.get("ip") or m.get("servername")) for m in rows}
                del rows
            self._servers = {
                str(s.get("name")): str(s.get("comment") or "")
                async for page in self._client.pages("server", attrs=SERVER_ATTRS)
                for s in page
            }
            await self.check_features()
            for key in [k for k in listing if k not in seen]:
                listing.drop(key)
            for op, owner in self._journal:  # written meanwhile, maybe after their GET
                _record(listing, op, owner)
        finally:
            self._journal = None
        self._listing = listing
        self.passes += 1
        await self._delete_unused_servers(in_use)
        return self._listing.owner_keys()

    async def check_features(self) -> None:
        """Read ``nsfeature``: without the LB feature every lb vserver add would fail, so
        lbctl says so once, clearly, instead (``lb_disabled``)."""
        (features,) = await self._client.get("nsfeature") or [{}]
        enabled = features.get("lb") in (True, "true", "ON") or "LB" in (
            features.get("feature") or []
        )
        was = self.lb_disabled
        self.lb_disabled = (
            None
            if enabled
            else ("the NetScaler's load-balancing feature is disabled (enable ns feature lb)")
        )
        if self.lb_disabled and not was:
            log.error("NetScaler cannot load-balance", reason=self.lb_disabled)
        elif was and not self.lb_disabled:
            log.info("NetScaler load-balancing feature enabled")

    async def _delete_unused_servers(self, in_use: set[str]) -> None:
        """Binding a member by IP makes NetScaler create a ``server`` named after the IP, and
        unbinding leaves it behind: delete those lbctl's binds created (they carry lbctl's
        server comment) once nothing binds them.  A server that was there before, made by
        hand or another tool, is never deleted."""
        candidates = self._released - in_use
        self._released &= in_use
        mine = server_comment(self._owner)
        for name in sorted(candidates):
            if (self._servers or {}).get(name) == mine:
                with contextlib.suppress(NitroError):  # in use after all: it stays
                    await self._client.delete("server", name)
                    (self._servers or {}).pop(name, None)
                    self.unsaved = True

    async def _absent_servers(self, batch: list[Op]) -> set[str]:
        """The member IPs of ``batch`` that have no ``server`` right now, read from the ADC
        just before the bind (the listing may be minutes old: a server made by hand since
        then must not be taken for one lbctl's bind created)."""
        absent: set[str] = set()
        if self._servers is None:
            return absent
        for op in batch:
            ip = op.key.sub[0] if op.key.kind == "member" and op.action == "bind" else None
            if ip is None or ip in self._servers or ip in absent:
                continue
            try:
                (found,) = await self._client.get("server", ip) or [{}]
                self._servers[ip] = str(found.get("comment") or "")
            except NoSuchResource:
                absent.add(ip)
        return absent

    async def _mark_created_servers(
        self, batch: list[Op], errors: list[NitroError | None], absent: set[str]
    ) -> None:
        """Members just bound by IP whose ``server`` did not exist (``absent``): NetScaler
        created it for lbctl's bind, so it gets lbctl's server comment (its proof of
        ownership).  A server that existed keeps its comment."""
        if self._servers is None:
            return
        mine = server_comment(self._owner)
        for op, error in zip(batch, errors, strict=True):
            ip = op.key.sub[0] if op.key.kind == "member" and op.action == "bind" else None
            if error is None and ip is not None and ip in absent:
                try:
                    await self._client.update("server", {"name": ip, "comment": mine})
                    self._servers[ip] = mine
                except NitroError as err:
                    log.warning("cannot mark a server lbctl created", server=ip, error=str(err))

    async def save(self) -> bool:
        """Save the running configuration if lbctl changed it; True when it saved."""
        if not self.unsaved:
            return False
        self.unsaved = False
        try:
            await self._client.save_config()
        except NitroError:
            self.unsaved = True
            raise
        return True

    @property
    def listed(self) -> bool:
        """A listing of the ADC is held: not before the first read, nor after a write found
        the ADC otherwise, until it is read again (meanwhile :meth:`vservers` is empty)."""
        return self._listing is not None

    def vservers(self) -> dict[str, str]:
        """lb vserver name → the Service owning it, as last listed."""
        return {} if self._listing is None else self._listing.owned("lbvserver")

    def may_own(self, owner: str) -> bool:
        return self._listing is not None and self._listing.owns(owner)

    async def _current(self) -> Listing:
        if self._listing is None:
            async with self._refreshing:
                if self._listing is None:  # not refreshed by another worker meanwhile
                    await self._refresh()
        assert self._listing is not None
        return self._listing

    @contextlib.asynccontextmanager
    async def _turn(self, owner: str) -> AsyncIterator[None]:
        lock, users = self._turns.get(owner) or (asyncio.Lock(), 0)
        self._turns[owner] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[owner]
            if users == 1:
                del self._turns[owner]
            else:
                self._turns[owner] = (lock, users - 1)

    async def ensure(
        self,
        service: Mapping[str, Any],
        addresses: list[str],
        still_wanted: Callable[[], bool] = lambda: True,
    ) -> AdcOutcome:
        """Configure the Service's objects, in its turn: ``still_wanted`` is asked once the
        turn comes (a removal of the Service may have run meanwhile: then nothing is done)."""
        meta = service["metadata"]
        async with self._turn(f"{meta['namespace']}/{meta['name']}"):
            if not still_wanted():
                return AdcOutcome(skipped=True)
            return await self._ensure(service, addresses)

    async def _ensure(self, service: Mapping[str, Any], addresses: list[str]) -> AdcOutcome:
        if self.lb_disabled is not None:
            try:
                await self.check_features()  # enabled meanwhile?
            except NitroError as err:
                return AdcOutcome(retry=str(err), unreachable=isinstance(err, Unavailable))
            if self.lb_disabled is not None:
                return AdcOutcome(retry=self.lb_disabled, lb_disabled=True)
        meta = service["metadata"]
        owner = f"{meta['namespace']}/{meta['name']}"
        nodes, endpoints = self._nodes(), self._endpoints(owner)
        plan = plan_service(self._owner, service, addresses, nodes, endpoints)
        if "*" in plan.problems:
            return AdcOutcome(problem=plan.problems["*"])
        outcome = await self._converge(owner, plan)
        for label, message in plan.problems.items():
            outcome.port_errors[label] = (plan.reasons[label], message)
        return outcome

    async def remove(self, owner: str) -> AdcOutcome:
        """Delete every object of ``owner`` (a Service that is gone or no longer ours), in its
        turn (after a configuration of it that is under way)."""
        async with self._turn(owner):
            return await self._converge(owner, Plan())

    async def _converge(self, owner: str, plan: Plan) -> AdcOutcome:
        outcome = AdcOutcome()
        try:
            listing = await self._current()
        except NitroError as err:
            outcome.retry = f"cannot read the ADC: {err}"
            outcome.unreachable = isinstance(err, Unavailable | AuthFailed)
            return outcome
        ops = diff(plan.objects, listing.of(owner))
        failed: set[str] = set()
        for _, group in itertools.groupby(ops, key=_batch_key):
            batch = [op for op in group if plan.ports.get(op.key, "*") not in failed]
            if not batch:
                continue
            log.debug("ADC write", service=owner, operations=[str(op) for op in batch])
            try:
                absent = await self._absent_servers(batch)
            except NitroError as err:
                errors: list[NitroError | None] = [err] * len(batch)
            else:
                errors = await self._run(batch)
                await self._mark_created_servers(batch, errors, absent)
            outcome.writes += 1
            for op, error in zip(batch, errors, strict=True):
                if error is None:
                    self.unsaved = True
                    if op.action in ("delete", "unbind"):
                        self._released |= _member_ips(listing, op.key)
                    _record(listing, op, owner)
                    if self._listing is not None and self._listing is not listing:
                        _record(self._listing, op, owner)  # read since this began
                    if self._journal is not None:
                        self._journal.append((op, owner))
                    continue
                log.warning("ADC operation failed", operation=str(op), error=str(error))
                if isinstance(error, AlreadyExists | NoSuchResource):
                    self._listing = None  # the ADC is not what the listing says: read it again
                if isinstance(error, Unavailable | AuthFailed):
                    outcome.retry = str(error)
                    outcome.unreachable = True
                    return outcome
                label = plan.ports.get(op.key, "*")
                failed.add(label)
                outcome.port_errors.setdefault(label, (ADC_FAILED, str(error)))
                outcome.retry = str(error)
        if outcome.writes:
            log.info("ADC configured", service=owner, requests=outcome.writes, ok=not failed)
        return outcome

    async def _run(self, batch: list[Op]) -> list[NitroError | None]:
        op = batch[0]
        try:
            if len(batch) > 1:
                rows = [_binding_row(o) for o in batch]
                return await self._client.bulk("bind", BINDING_RESOURCE["member"], rows)
            await self._execute(op)
        except NitroError as err:
            return [err] * len(batch)  # the whole request failed: every item with it
        return [None]

    async def _execute(self, op: Op) -> None:
        key = op.key
        if key.kind in OBJECT_KINDS:
            ident = {KEY_FIELD[key.kind]: key.name}
            if op.action == "add":
                await self._client.add(key.kind, {**ident, **op.attrs})
            elif op.action == "update":
                extra = {"type": op.attrs.get("type")} if key.kind == "lbmonitor" else {}
                await self._client.update(key.kind, {**ident, **op.attrs, **extra})
            else:
                args = {"type": op.attrs["type"]} if key.kind == "lbmonitor" else None
                with contextlib.suppress(NoSuchResource):  # already gone: as wanted
                    await self._client.delete(key.kind, key.name, args=args)
            return
        resource = BINDING_RESOURCE[key.kind]
        if op.action == "bind":
            await self._client.bind(resource, _binding_row(op))
            return
        row = _binding_row(op)
        parent_field = "name" if key.kind == "vserver_binding" else "servicegroupname"
        row.pop(parent_field)
        with contextlib.suppress(NoSuchResource):
            await self._client.unbind(resource, key.name, row)


def _batch_key(op: Op) -> object:
    """Member binds in a row go out as one bulk request; everything else alone."""
    return "members" if op.action == "bind" and op.key.kind == "member" else id(op)


def _record(listing: Listing, op: Op, owner: str) -> None:
    """Apply a successful write to a listing."""
    if op.action == "bind":
        listing.put(op.key, NO_ATTRS)
    elif op.action == "add":
        listing.put(op.key, op.attrs, owner)
    elif op.action == "update":
        listing.update(op.key, op.attrs)
    else:
        listing.drop(op.key)


def _member_ips(listing: Listing, key: Key) -> set[str]:
    """IPs of the members ``key`` removes: itself, or those of a service group it deletes."""
    if key.kind == "member":
        return {key.sub[0]}
    if key.kind == "servicegroup":
        children = listing.of_parent(key)
        return {k.sub[0] for k in children if k.kind == "member"}
    return set()


def _binding_row(op: Op) -> dict[str, Any]:
    key = op.key
    if key.kind == "member":
        return {"servicegroupname": key.name, "ip": key.sub[0], "port": int(key.sub[1])}
    if key.kind == "vserver_binding":
        return {"name": key.name, "servicegroupname": key.sub[0]}
    return {"servicegroupname": key.name, "monitor_name": key.sub[0]}
