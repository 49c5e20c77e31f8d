"""Async NITRO client: one session shared by all callers, mapped errors, retries, bulk.

The session is created lazily and refreshed at most once per expiry however many requests
notice it at the same time (single-flight under a lock).  Idempotent calls (GET, PUT, DELETE)
are retried with capped exponential backoff on connection errors and 5xx; adds and binds are
retried only when the request provably never left (connect errors), because a lost reply to an
add is reported by the ADC as "already exists" on the retry, which callers handle anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from lbctl.nitro.breaker import CircuitBreaker
from lbctl.nitro.errors import (
    SESSION_ERRORS,
    BulkFailed,
    MalformedResponse,
    NitroError,
    Operation,
    Unavailable,
    error_from_body,
)

JSON = dict[str, Any]
Observer = Callable[[str, str, str, float], None]
"""(resource, method, outcome, seconds) for every HTTP request sent."""

SAVE_TIMEOUT = 30.0
SESSION_LIMIT = 445
STATELESS_FOR = 60.0
"""After "session limit exceeded", send credentials per request (NITRO's stateless mode) for
this long before trying to log in again: sessions left by killed processes expire by then."""
RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
PAGE_SIZE = 1000
"""Objects per reply when :meth:`NitroClient.pages` lists a resource.  A listing's reply and
its parsed rows stay well under a MiB however many Services there are: one reply of 10,000
lb vservers' statistics was 15 MB of JSON and several times that parsed."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


def _encode(name: str) -> str:
    """Path segment encoding for object names (spaces, '#', ':' and '/' are legal in names)."""
    return quote(name, safe="")


def _pairs(values: Mapping[str, object]) -> str:
    """``k:v,k2:v2`` for ``args`` and ``filter``, each value URL-encoded once, as NITRO reads
    them (the ansible collection's ``url_builder``): ``ip:fd00%3A%3A1``."""
    return ",".join(f"{k}:{quote(str(v), safe='')}" for k, v in values.items())


def _query(query: Mapping[str, str] | None) -> str:
    """The query string, sent as built: ``args`` and ``filter`` values are encoded once by
    ``_pairs`` (handing them to httpx as params would encode their ``%`` again: ``%253A``)."""
    if not query:
        return ""
    return "?" + "&".join(f"{k}={v}" for k, v in query.items())


class NitroClient:
    def __init__(
        self,
        url: str,
        credentials: Credentials,
        *,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        observer: Observer | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        session_timeout: int | None = None,
        breaker: CircuitBreaker | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._credentials = credentials
        self.page_size = page_size
        """Objects per reply in :meth:`pages`."""
        self.breaker = breaker or CircuitBreaker()
        """Fails requests at once while the NetScaler does not answer."""
        self._session_timeout = session_timeout
        self._stateless_until = 0.0
        self.stateless_periods = 0
        """Times the ADC's session table was full and lbctl went stateless for a while."""
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/") + "/nitro/v1/",
            verify=verify,
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self._retries = retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self.observer = observer
        self._sleep = sleep
        self._token: str | None = None
        self._login_lock = asyncio.Lock()
        self.requests: Counter[tuple[str, str]] = Counter()
        """(resource, HTTP method) → requests sent, logins included."""
        self.logins = 0

    # -- session -----------------------------------------------------------------------------

    async def login(self) -> None:
        operation = Operation("login", "login")
        login: JSON = {"username": self._credentials.username,
                       "password": self._credentials.password}  # fmt: skip
        if self._session_timeout is not None:
            login["timeout"] = self._session_timeout
        body = {"login": login}
        response = await self._send(
            "POST", "config/login", operation, json_body=body, auth=False, metric="login"
        )
        data = self._decode(operation, response)
        if response.status_code not in (200, 201):
            raise error_from_body(operation, response.status_code, data or {})
        token = response.cookies.get("NITRO_AUTH_TOKEN") or (data or {}).get("sessionid")
        if not token:
            raise MalformedResponse(operation, "login succeeded without a session token")
        self._token = str(token)
        self.logins += 1

    async def logout(self) -> None:
        """End the session (best effort: an unreachable ADC expires it by itself)."""
        if self._token is None:
            return
        operation = Operation("logout", "logout")
        with contextlib.suppress(NitroError):
            await self._send(
                "POST", "config/logout", operation, json_body={"logout": {}}, metric="logout"
            )
        self._token = None

    async def aclose(self) -> None:
        await self.logout()
        await self._http.aclose()

    def _stateless(self) -> bool:
        return time.monotonic() < self._stateless_until

    async def _relogin(self, stale: str | None) -> None:
        async with self._login_lock:
            if self._token is not None and self._token != stale:
                return  # another caller already refreshed it
            self._token = None
            if self._stateless():
                return
            try:
                await self.login()
            except NitroError as err:
                if err.errorcode != SESSION_LIMIT:
                    raise
                # Sessions of killed processes fill the table until they time out; meanwhile
                # NITRO accepts the credentials on each request.
                self._stateless_until = time.monotonic() + STATELESS_FOR
                self.stateless_periods += 1

    # -- operations --------------------------------------------------------------------------

    async def get(
        self,
        resource: str,
        name: str | None = None,
        *,
        filter: Mapping[str, object] | None = None,
        attrs: Sequence[str] | None = None,
        args: Mapping[str, object] | None = None,
        bulkbindings: bool = False,
        page: tuple[int, int] | None = None,
    ) -> list[JSON]:
        """Objects of ``resource`` (a missing key in the reply means none).  ``page``:
        (``pagesize``, ``pageno``), pages counted from 1."""
        query: dict[str, str] = {}
        if filter:
            query["filter"] = _pairs(filter)
        if attrs:
            query["attrs"] = ",".join(attrs)
        if args:
            query["args"] = _pairs(args)
        if bulkbindings:
            query["bulkbindings"] = "yes"
        if page is not None:
            query["pagesize"], query["pageno"] = str(page[0]), str(page[1])
        operation = Operation("get", resource, name)
        return _objects(
            operation, resource, await self._call("GET", resource, name, operation, query)
        )

    async def pages(
        self, resource: str, *, attrs: Sequence[str] | None = None
    ) -> AsyncIterator[list[JSON]]:
        """Every object of ``resource``, ``page_size`` at a time (NITRO's ``pagesize`` and
        ``pageno`` GET options), the last page first; the number of pages comes from a
        ``count=yes`` GET before them.  Raises NitroError.

        The pages are separate reads of a list that may change meanwhile.  Read from the end,
        an object deleted moves only objects of pages still to be read (or one of a page read
        to the page before it: seen twice), so none is missed; an object added at the end, as
        NetScaler adds them, moves nothing.  Read from the start, each deletion from a page
        already read made an object of the next page unseen.  Callers take an object seen
        twice once.  A page shorter than asked does not end the read: the count does.
        """
        total = await self.count(resource)
        for pageno in range(-(-total // self.page_size), 0, -1):
            rows = await self.get(resource, attrs=attrs, page=(self.page_size, pageno))
            if rows:
                yield rows

    async def count(self, resource: str) -> int:
        data = await self._call(
            "GET", resource, None, Operation("count", resource), {"count": "yes"}
        )
        try:
            return int(data[resource][0]["__count"])
        except (KeyError, IndexError, TypeError, ValueError):
            if resource not in data:
                return 0
            raise MalformedResponse(Operation("count", resource), "no __count in reply") from None

    async def add(self, resource: str, obj: JSON, *, idempotent: bool = False) -> None:
        query = {"idempotent": "yes"} if idempotent else {}
        operation = Operation("add", resource, _name_of(obj))
        await self._call("POST", resource, None, operation, query, {resource: obj})

    async def update(self, resource: str, obj: JSON) -> None:
        name = _name_of(obj)
        await self._call(
            "PUT", resource, name, Operation("update", resource, name), {}, {resource: obj}
        )

    async def delete(
        self, resource: str, name: str, *, args: Mapping[str, object] | None = None
    ) -> None:
        query = {"args": _pairs(args)} if args else {}
        await self._call("DELETE", resource, name, Operation("delete", resource, name), query)

    async def bind(self, binding: str, obj: JSON) -> None:
        operation = Operation("bind", binding, _name_of(obj))
        await self._call("POST", binding, None, operation, {}, {binding: obj})

    async def unbind(self, binding: str, name: str, args: Mapping[str, object]) -> None:
        operation = Operation("unbind", binding, name)
        await self._call("DELETE", binding, name, operation, {"args": _pairs(args)})

    async def action(self, resource: str, action: str, obj: JSON) -> None:
        operation = Operation(action, resource, _name_of(obj))
        timeout = SAVE_TIMEOUT if (resource, action) == ("nsconfig", "save") else None
        await self._call(
            "POST", resource, None, operation, {"action": action}, {resource: obj}, timeout
        )

    async def save_config(self) -> None:
        await self.action("nsconfig", "save", {})

    async def bulk(
        self, verb: str, resource: str, items: Sequence[JSON], *, onerror: str = "continue"
    ) -> list[NitroError | None]:
        """Add or bind many objects in one request; one result per item (None: done).

        With ``onerror="exit"`` the ADC stops at the first failure; the items it never reached
        are reported as :class:`Unavailable` so the caller retries them.
        """
        if not items:
            return []
        operation = Operation(f"bulk {verb}", resource, f"{len(items)} items")
        try:
            await self._call(
                "POST", resource, None, operation, {}, {resource: list(items)},
                headers={"X-NITRO-ONERROR": onerror},
            )  # fmt: skip
        except BulkFailed as err:
            results = list(err.results[: len(items)])
            skipped = Unavailable(operation, "not processed: an earlier item failed")
            return results + [skipped] * (len(items) - len(results))
        return [None] * len(items)

    # -- transport ---------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        resource: str,
        name: str | None,
        operation: Operation,
        query: Mapping[str, str],
        body: JSON | None = None,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> JSON:
        """One request to ``/nitro/v1/config/<resource>[/<name>]``, logging in again once if
        the session expired."""
        path = f"config/{resource}" + (f"/{_encode(name)}" if name is not None else "")
        for relogged in (False, True):
            if self._token is None and not self._stateless():
                await self._relogin(None)
            token = self._token
            response = await self._send(
                method, path, operation, query, body, timeout, headers, metric=resource
            )
            data = self._decode(operation, response)
            code = _errorcode(data)
            if response.status_code in (200, 201):
                if code and str((data or {}).get("severity", "ERROR")).upper() == "ERROR":
                    raise error_from_body(operation, response.status_code, data or {})
                return data or {}
            if response.status_code == 401 and code in SESSION_ERRORS and not relogged:
                await self._relogin(token)
                continue
            raise error_from_body(operation, response.status_code, data or {})
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self,
        method: str,
        path: str,
        operation: Operation,
        query: Mapping[str, str] | None = None,
        json_body: JSON | None = None,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        auth: bool = True,
        metric: str | None = None,
    ) -> httpx.Response:
        """One request with retries; connection failures become :class:`Unavailable`."""
        send_headers = dict(headers or {})
        if json_body is not None:
            send_headers["Content-Type"] = "application/json"
        content = orjson.dumps(json_body) if json_body is not None else None
        idempotent = method in ("GET", "PUT", "DELETE")
        resource = metric or path
        attempt = 0
        while True:
            if auth and self._token is not None:
                send_headers["Cookie"] = f"NITRO_AUTH_TOKEN={self._token}"
            elif auth and self._stateless():
                send_headers["X-NITRO-USER"] = self._credentials.username
                send_headers["X-NITRO-PASS"] = self._credentials.password
            self.breaker.check(operation)  # fails fast while the NetScaler does not answer
            started = time.monotonic()
            self.requests[(resource, method)] += 1
            try:
                response = await self._http.request(
                    method,
                    path + _query(query),
                    content=content,
                    headers=send_headers,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.HTTPError as err:
                self.breaker.failure()
                self._observe(resource, method, "unreachable", started)
                retryable = idempotent or isinstance(err, httpx.ConnectError)
                if not retryable or attempt >= self._retries:
                    raise Unavailable(operation, f"{type(err).__name__}: {err}") from None
            except BaseException:
                self.breaker.abandon()  # cancelled: neither an answer nor a failure
                raise
            else:
                self.breaker.success()
                status = response.status_code
                outcome = "ok" if status < 300 else "error"
                self._observe(resource, method, outcome, started)
                if not (status in RETRYABLE_STATUS and idempotent and attempt < self._retries):
                    return response
            attempt += 1
            delay = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
            await self._sleep(delay * random.uniform(0.5, 1.0))

    def _observe(self, resource: str, method: str, outcome: str, started: float) -> None:
        if self.observer is not None:
            self.observer(resource, method, outcome, time.monotonic() - started)

    @staticmethod
    def _decode(operation: Operation, response: httpx.Response) -> JSON | None:
        """The JSON body, None when empty; anything else is a :class:`MalformedResponse`."""
        status = response.status_code
        if not response.content.strip():
            if status in (200, 201):
                return None
            return {"errorcode": None, "message": f"empty reply, HTTP {status}"}
        try:
            data = orjson.loads(response.content)  # as response.json(), without a str copy
        except orjson.JSONDecodeError:
            kind = response.headers.get("content-type", "unknown content type")
            if status in RETRYABLE_STATUS:
                return {"errorcode": None, "message": f"HTTP {status} ({kind})"}
            raise MalformedResponse(
                operation, f"reply is not JSON ({kind})", status=status
            ) from None
        if not isinstance(data, dict):
            raise MalformedResponse(operation, "reply is not a JSON object", status=status)
        return data


def _objects(operation: Operation, resource: str, data: JSON) -> list[JSON]:
    """The objects under ``resource`` in a reply: a missing key means none, a single object
    (``nsfeature``) is a list of one; anything else is malformed."""
    items = data.get(resource, [])
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise MalformedResponse(operation, f"'{resource}' is not a list of objects")
    return items


def _errorcode(data: JSON | None) -> int | None:
    """NITRO's errorcode as a number (some firmware sends it as a string)."""
    code = (data or {}).get("errorcode")
    if isinstance(code, bool) or not isinstance(code, int | str):
        return None
    return int(code) if str(code).strip().isdigit() else None


def _name_of(obj: JSON) -> str | None:
    for key in ("name", "servicegroupname", "monitorname"):
        if isinstance(obj.get(key), str):
            return str(obj[key])
    return None
