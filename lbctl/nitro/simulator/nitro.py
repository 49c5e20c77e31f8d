"""NITRO configuration requests on a Store: GET options, writes, actions and bulk payloads.

Independent of HTTP transport details so the rules stay readable: the server parses the
request, calls ``handle`` and sends back the ``Reply``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from lbctl.nitro.simulator import errors, stats, system
from lbctl.nitro.simulator.errors import NitroError, done
from lbctl.nitro.simulator.resources import JSON, SPECS, spec
from lbctl.nitro.simulator.store import Store, matches

ONERROR = ("exit", "continue", "rollback")


@dataclass(frozen=True)
class Reply:
    """``body`` None means an empty body, as the appliance sends for 201."""

    status: int
    body: JSON | None


def pairs(text: str | None) -> dict[str, str]:
    """``k:v,k2:v2`` as used by ``args`` and ``filter``; values may be URL-encoded once more."""
    out: dict[str, str] = {}
    if not text:
        return out
    for item in text.split(","):
        arg, sep, value = item.partition(":")
        if not sep:
            raise errors.bad_request(1266, "Invalid nitro request", "args", item)
        out[arg.strip()] = unquote(value)
    return out


def handle(
    store: Store,
    method: str,
    resource: str,
    name: str | None,
    query: Mapping[str, str],
    payload: Any,
    onerror: str,
    endpoint: str = "config",
) -> Reply:
    if endpoint == "stat":
        if method != "GET":
            raise errors.netscaler(1240, "Invalid nitro action or operation", method, resource)
        return Reply(200, stats.handle(store, resource, name, query))
    if resource in system.RESOURCES:
        return Reply(200, system.handle(store, method, resource, query, payload))
    spec(resource)
    if method == "GET":
        return _get(store, resource, name, query)
    if method == "DELETE":
        if name is None:
            raise errors.required_missing(SPECS[resource].parent)
        store.delete(resource, name, pairs(query.get("args")))
        store.changed = True
        return Reply(200, done())
    if method not in ("POST", "PUT"):
        raise errors.netscaler(1240, "Invalid nitro action or operation", method, resource)
    items = _items(resource, payload, name)
    action = query.get("action")
    binding = SPECS[resource].binding
    write: Callable[[Any], None]
    if method == "POST" and action:
        status, write = 200, lambda item: store.action(resource, action, item)
    elif binding:
        status, write = 201, lambda item: store.bind(resource, item)
    elif method == "POST":
        idempotent = query.get("idempotent", "").lower() == "yes"
        status, write = 201, lambda item: store.add(resource, item, idempotent=idempotent)
    else:
        status, write = 200, lambda item: store.update(resource, item)

    def op(item: Any) -> None:
        write(item)
        store.changed = True  # nsconfig configchanged until the next save

    if not isinstance(items, list):
        op(items)
        return Reply(status, None if status == 201 else done())
    rollback_ok = status == 201 and not action
    return _bulk(store, items, op, onerror, status, rollback_ok)


def _items(resource: str, payload: Any, name: str | None) -> Any:
    if not isinstance(payload, dict) or resource not in payload:
        raise errors.bad_request(1238, "NITRO parse error", "expected object key", resource)
    items = payload[resource]
    parent = SPECS[resource].parent
    if name is not None and isinstance(items, dict) and parent not in items:
        items = {parent: name, **items}  # PUT /config/<res>/<name> may leave the name out
    return items


def _bulk(
    store: Store,
    items: list[Any],
    op: Callable[[Any], None],
    onerror: str,
    status: int,
    rollback_ok: bool,
) -> Reply:
    """Every item in turn, per X-NITRO-ONERROR; any failure answers 207 with one entry each."""
    if onerror not in ONERROR:
        raise errors.invalid_value("X-NITRO-ONERROR", onerror)
    if onerror == "rollback" and not rollback_ok:
        raise errors.netscaler(1242, "Rollback not supported for this action")
    before = store.snapshot() if onerror == "rollback" else None
    results: list[JSON] = []
    failed = False
    for item in items:
        try:
            op(item)
        except NitroError as e:
            results.append(e.body())
            failed = True
            if onerror != "continue":
                break
        else:
            results.append(done())
    if not failed:
        return Reply(status, None if status == 201 else done())
    if before is not None:
        store.restore(before)
    body = {"errorcode": 1243, "message": "Bulk operation failed", "severity": "ERROR"}
    return Reply(207, {**body, "response": results})


def _get(store: Store, resource: str, name: str | None, query: Mapping[str, str]) -> Reply:
    s = SPECS[resource]
    bulk = query.get("bulkbindings", "").lower() == "yes"
    objs = store.list(resource, name, bulk=bulk)
    conditions = {**pairs(query.get("args")), **pairs(query.get("filter"))}
    known = set(s.fields) | s.readonly
    for arg in conditions:
        if arg not in known:
            raise errors.no_such_argument(arg)
    objs = [o for o in objs if matches(o, conditions, s.enums())]
    if query.get("count", "").lower() == "yes":
        return Reply(200, {**done(), resource: [{"__count": len(objs)}]})
    if "pagesize" in query:
        try:
            size, page = int(query["pagesize"]), int(query.get("pageno", "1"))
        except ValueError:
            raise errors.invalid_value("pagesize", query["pagesize"]) from None
        if size < 1 or page < 1:
            raise errors.invalid_value("pagesize", size)
        objs = objs[(page - 1) * size : page * size]
    if "attrs" in query:
        wanted = [a.strip() for a in query["attrs"].split(",") if a.strip()]
        objs = [{a: o[a] for a in wanted if a in o} for o in objs]
    body = done()
    if objs:
        body[resource] = objs
    return Reply(200, body)
