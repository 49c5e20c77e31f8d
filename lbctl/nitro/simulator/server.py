"""The simulator's HTTP face: NITRO under /nitro, a JSON control API under /simulator.

Faults apply to NITRO requests only, so a chaos test can always reach the control API to end an
outage it started.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

from lbctl.nitro.simulator import errors, system
from lbctl.nitro.simulator.errors import NitroError, done
from lbctl.nitro.simulator.faults import Faults
from lbctl.nitro.simulator.health import MEMBER, PROBE
from lbctl.nitro.simulator.nitro import Reply, handle
from lbctl.nitro.simulator.resources import SPECS
from lbctl.nitro.simulator.sessions import Sessions
from lbctl.nitro.simulator.store import Store

JSON_TYPE = "application/json"
REASONS = {599: "Netscaler specific error", 209: "X-NITRO-WARNING"}
DROPPED = 0  # the status recorded for a request whose connection was dropped
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class RequestRecord:
    """One NITRO request served: ``status`` 0 means its connection was dropped."""

    method: str
    resource: str
    name: str | None
    query: dict[str, str] = field(default_factory=dict)
    status: int = 0
    kind: str = "config"
    """``config`` or ``stat`` (``/nitro/v1/<kind>/...``)."""


def _json(status: int, body: Any) -> web.Response:
    return web.Response(
        status=status,
        reason=REASONS.get(status),
        text=json.dumps(body),
        content_type=JSON_TYPE,
        charset="utf-8",
    )


def _reply(reply: Reply) -> web.Response:
    if reply.body is None:  # the appliance answers adds and binds with an empty body
        return web.Response(status=reply.status, text="", content_type="text/html")
    return _json(reply.status, reply.body)


def _target(request: web.Request) -> tuple[str, str | None]:
    """The resource and name in ``/nitro/v1/<config|stat>/<resource>[/<name>]``.

    Empty segments are skipped, so ``config//lbvserver_servicegroup_binding/vs1`` (a doubled
    slash from clients that join URL parts naively) reaches the same object, as the appliance's
    web server merges slashes.  aiohttp decoded the name once; official clients encode it twice
    (nitro.md 1), so a name still holding ``%`` or ``+`` is decoded again."""
    parts = [p for p in request.match_info.get("path", "").split("/") if p]
    if not parts or len(parts) > 2:
        raise errors.bad_request(1266, "Invalid nitro request", "path", request.path)
    name = parts[1] if len(parts) == 2 else None
    if name is not None and ("%" in name or "+" in name):
        name = unquote_plus(name)
    return parts[0], name


def _record_target(request: web.Request) -> tuple[str, str | None]:
    try:
        return _target(request)
    except NitroError:
        return request.path, None


def _timeout(value: Any) -> float | None:
    """The login body's session timeout in seconds; numbers may arrive as strings."""
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        seconds = float(value)
    except (TypeError, ValueError):
        raise errors.invalid_value("timeout", value) from None
    if seconds <= 0:
        raise errors.invalid_value("timeout", value)
    return seconds


class Simulator:
    """A stateful stand-in for a NetScaler ADC speaking NITRO over HTTP."""

    def __init__(
        self,
        username: str = "nsroot",
        password: str = "nsroot",
        session_timeout: float = 1800.0,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
    ) -> None:
        self.username = username
        self.password = password
        self.store = Store()
        self.sessions = Sessions(clock, session_timeout)
        self.faults = Faults(seed)
        self.requests: list[RequestRecord] = []
        self.app = web.Application(middlewares=[self._nitro_middleware])
        self.app.router.add_route("*", "/nitro/v1/{endpoint:config|stat}/{path:.*}", self._nitro)
        self.app.router.add_route("*", "/nitro/{tail:.*}", self._unknown)
        self.app.router.add_get("/simulator/faults", self._get_faults)
        self.app.router.add_put("/simulator/faults", self._put_faults)
        self.app.router.add_post("/simulator/expire-sessions", self._expire)
        self.app.router.add_get("/simulator/objects/{resource}", self._objects)
        self.app.router.add_get("/simulator/requests", self._requests)
        self.app.router.add_delete("/simulator/requests", self._reset_requests)
        self.app.router.add_post("/simulator/reset", self._reset)
        self.app.router.add_put("/simulator/members", self._put_members)
        self.app.router.add_put("/simulator/features", self._put_features)

    # -- the Python API ------------------------------------------------------------------------

    def expire_sessions(self) -> int:
        """Kill every session: the next request with its token gets 401 and errorcode 444."""
        return self.sessions.expire_all()

    def objects(self, resource: str) -> list[dict[str, Any]]:
        """A copy of every object of ``resource`` as a GET shows it (bindings of all parents)."""
        if resource not in SPECS:
            raise KeyError(resource)
        return self.store.list(resource, None, bulk=True)

    def set_probe(self, svrstate: str, selector: dict[str, Any]) -> int:
        """Mark what the monitors would see, UP or DOWN, for every member or service matching
        ``selector``: ``servicegroupname`` (plus optional ``servername``, ``ip``, ``port``) picks
        members, ``servicename`` picks a service.  Returns how many matched; ValueError if the
        request is malformed.  Config GETs (``svrstate``) and stats follow at once."""
        state = str(svrstate).upper()
        if state not in ("UP", "DOWN"):
            raise ValueError("svrstate must be UP or DOWN")
        if "servicename" in selector:
            resource, wanted = "service", {"name": selector["servicename"]}
            unknown = set(selector) - {"servicename"}
        else:
            resource, wanted = MEMBER, dict(selector)
            unknown = set(selector) - {"servicegroupname", "servername", "ip", "port"}
            if "servicegroupname" not in selector:
                raise ValueError("servicegroupname or servicename is required")
        if unknown:
            raise ValueError(f"unknown selector {sorted(unknown)[0]!r}")
        matched = 0
        health = self.store.health()
        for unit in self.store.units(resource):
            view = self.store.view(resource, unit, health)
            if all(str(view.get(k)) == str(v) for k, v in wanted.items()):
                unit[PROBE] = state
                matched += 1
        return matched

    def reset_counts(self) -> None:
        self.requests.clear()

    @property
    def saves(self) -> int:
        return self.store.saves

    @asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve until the block ends; yields the base URL, e.g. ``http://127.0.0.1:43121``."""
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound_host, bound_port = runner.addresses[0][:2]
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            yield f"http://{shown}:{bound_port}"
        finally:
            await runner.cleanup()

    # -- NITRO ---------------------------------------------------------------------------------

    @web.middleware
    async def _nitro_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/nitro/"):
            return await handler(request)
        kind = "stat" if request.path.startswith("/nitro/v1/stat/") else "config"
        record = RequestRecord(
            request.method, *_record_target(request), dict(request.query), kind=kind
        )
        if self.faults.latency > 0:
            await asyncio.sleep(self.faults.latency)
        outcome = self.faults.decide()
        if outcome == "drop":
            self.requests.append(record)
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing to send: the client sees a closed connection
        if outcome == "error":
            response: web.StreamResponse = _json(
                503, {"errorcode": 272, "message": "Device busy", "severity": "ERROR"}
            )
        else:
            try:
                response = await handler(request)
            except NitroError as e:
                response = _json(e.status, e.body())
        self.requests.append(RequestRecord(**{**asdict(record), "status": response.status}))
        return response

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        raise errors.bad_request(1266, "Invalid nitro request", "path", request.path)

    async def _nitro(self, request: web.Request) -> web.StreamResponse:
        resource, name = _target(request)
        endpoint = request.match_info["endpoint"]
        payload = await self._payload(request)
        if endpoint == "config" and resource == "login" and request.method == "POST":
            return self._login(payload)
        token = self._authenticate(request)
        if endpoint == "config" and resource == "logout" and request.method == "POST":
            if token is not None:
                self.sessions.logout(token)
            return _json(200, done())
        onerror = request.headers.get("X-NITRO-ONERROR", "exit").lower()
        reply = handle(
            self.store, request.method, resource, name, request.query, payload, onerror, endpoint
        )
        return _reply(reply)

    async def _payload(self, request: web.Request) -> Any:
        if request.method in ("GET", "DELETE", "HEAD"):
            return None
        raw = await request.read()
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise errors.bad_request(1238, "NITRO parse error") from None

    def _login(self, payload: Any) -> web.Response:
        login = payload.get("login") if isinstance(payload, dict) else None
        if not isinstance(login, dict):
            raise errors.bad_request(1238, "NITRO parse error", "login")
        if login.get("username") != self.username or login.get("password") != self.password:
            raise NitroError(401, 354, "Invalid username or password")
        session = self.sessions.login(self.username, _timeout(login.get("timeout")))
        response = _json(201, {**done(), "sessionid": session.token})
        response.headers["Set-Cookie"] = f"NITRO_AUTH_TOKEN={session.token}; path=/nitro/v1"
        return response

    def _authenticate(self, request: web.Request) -> str | None:
        """The session token in use, or None for stateless X-NITRO-USER/X-NITRO-PASS."""
        token = request.cookies.get("NITRO_AUTH_TOKEN") or request.cookies.get("sessionid")
        if not token and "Set-Cookie" in request.headers:
            jar: SimpleCookie = SimpleCookie()
            jar.load(request.headers["Set-Cookie"])
            morsel = jar.get("NITRO_AUTH_TOKEN")
            token = morsel.value if morsel else None
        if token:
            self.sessions.use(token)
            return token
        user = request.headers.get("X-NITRO-USER")
        if user is not None:
            if user != self.username or request.headers.get("X-NITRO-PASS") != self.password:
                raise NitroError(401, 354, "Invalid username or password")
            return None
        raise NitroError(401, 1026, "Not logged in")

    # -- control API ---------------------------------------------------------------------------

    async def _get_faults(self, _: web.Request) -> web.Response:
        return web.json_response(self.faults.as_json())

    async def _put_faults(self, request: web.Request) -> web.Response:
        try:
            self.faults.update(json.loads(await request.read() or b"null"))
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response(self.faults.as_json())

    async def _expire(self, _: web.Request) -> web.Response:
        return web.json_response({"expired": self.expire_sessions()})

    async def _objects(self, request: web.Request) -> web.Response:
        resource = request.match_info["resource"]
        if resource not in SPECS:
            return web.json_response({"error": f"unknown resource {resource!r}"}, status=404)
        return web.json_response({resource: self.objects(resource)})

    async def _requests(self, _: web.Request) -> web.Response:
        by_method = Counter(r.method for r in self.requests)
        by_status = Counter(str(r.status) for r in self.requests)
        writes = sum(1 for r in self.requests if r.method != "GET")
        body = {
            "total": len(self.requests),
            "by_method": dict(by_method),
            "by_status": dict(by_status),
            "writes": writes,
            "saves": self.store.saves,
        }
        return web.json_response(body)

    async def _reset_requests(self, _: web.Request) -> web.Response:
        self.reset_counts()
        return web.json_response({"total": 0})

    async def _put_members(self, request: web.Request) -> web.Response:
        """``{"servicegroupname": "sg", "svrstate": "DOWN"}``: see ``set_probe``; 404 when
        nothing matched, so a test with a typo fails instead of passing vacuously."""
        try:
            body = json.loads(await request.read() or b"null")
            if not isinstance(body, dict) or "svrstate" not in body:
                raise ValueError("expected a JSON object with svrstate")
            selector = {k: v for k, v in body.items() if k != "svrstate"}
            matched = self.set_probe(body["svrstate"], selector)
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response({"matched": matched}, status=200 if matched else 404)

    async def _put_features(self, request: web.Request) -> web.Response:
        """``{"lb": false}``: switch NITRO features on or off, as ``nsfeature?action=``."""
        try:
            body = json.loads(await request.read() or b"null")
            if not isinstance(body, dict) or not all(isinstance(v, bool) for v in body.values()):
                raise ValueError("expected a JSON object of feature: true|false")
            for feature, on in body.items():
                action = system.handle(self.store, "POST", "nsfeature",
                                       {"action": "enable" if on else "disable"},
                                       {"nsfeature": {"feature": [feature]}})  # fmt: skip
                assert action["errorcode"] == 0
        except (ValueError, NitroError) as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response(system.handle(self.store, "GET", "nsfeature", {}, None))

    async def _reset(self, _: web.Request) -> web.Response:
        """Back to a fresh appliance: configuration cleared, sessions and counts kept."""
        self.store.clear()
        return web.json_response({"reset": True})
