"""Informer behaviour for watch faults a real apiserver cannot be made to produce on demand.

A scripted HTTP server plays the apiserver: a bookmark, an ERROR event with code 500, an
unknown event type, a 410.  Everything else about informers runs against the real apiserver
in tests/integration.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from kubernetes_asyncio import client as k8s_client

from lbctl.kube.client import JSON, SERVICES, KubeClient
from lbctl.kube.informer import Backoff, Informer
from tests.waiting import cancel_and_wait, eventually


def svc(name: str, rv: str) -> JSON:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv, "uid": name}}


def event(kind: str, obj: JSON) -> JSON:
    return {"type": kind, "object": obj}


LISTS = [([svc("a", "5")], "10"), ([svc("b", "21")], "30")]
WATCHES: list[list[JSON]] = [
    [event("BOOKMARK", {"metadata": {"resourceVersion": "20"}})],
    [event("ERROR", {"kind": "Status", "code": 500, "reason": "InternalError", "message": "x"})],
    [event("WEIRD", svc("z", "20")), event("ADDED", svc("b", "21"))],
    [event("ERROR", {"kind": "Status", "code": 410, "reason": "Expired", "message": "old"})],
]


class ScriptedApiserver:
    def __init__(self) -> None:
        self.lists = 0
        self.watch_versions: list[str] = []
        self.closing = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "true":
            items, rv = LISTS[min(self.lists, len(LISTS) - 1)]
            self.lists += 1
            return web.json_response({"items": items, "metadata": {"resourceVersion": rv}})
        self.watch_versions.append(request.query["resourceVersion"])
        response = web.StreamResponse()
        await response.prepare(request)
        index = len(self.watch_versions) - 1
        if index >= len(WATCHES):
            await self.closing.wait()
        for item in WATCHES[index]:
            await response.write(json.dumps(item).encode() + b"\n")
        return response


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedApiserver, KubeClient]]:
    server = ScriptedApiserver()
    app = web.Application()
    app.router.add_get("/api/v1/services", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    configuration = k8s_client.Configuration(host=f"http://127.0.0.1:{port}")
    client = KubeClient(k8s_client.ApiClient(configuration=configuration))
    yield server, client
    server.closing.set()
    await client.close()
    await runner.cleanup()


async def test_bookmarks_errors_unknown_types_and_410_are_each_handled(
    scripted: tuple[ScriptedApiserver, KubeClient],
) -> None:
    """Resume from bookmarks, back off on errors, skip unknown types, relist and diff on 410."""
    server, client = scripted
    informer = Informer(client, SERVICES, backoff=Backoff(0.01, 0.05))
    seen: list[tuple[str, str]] = []

    def record(kind: str, old: Any, new: Any) -> None:
        seen.append((kind, (new or old)["metadata"]["name"]))

    informer.add_handler(record)
    task = asyncio.create_task(informer.run())
    try:
        await eventually(lambda: len(server.watch_versions) == 5, what="fifth watch")
    finally:
        await cancel_and_wait(task)

    assert server.watch_versions == ["10", "20", "20", "21", "30"]
    assert server.lists == 2
    assert informer.relists == 1
    assert seen == [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    assert [key for key, _ in informer.items()] == ["ns/b"]


def test_backoff_grows_is_capped_and_resets() -> None:
    """Delays double up to the cap (with jitter inside [d/2, d]) and start over after reset."""
    backoff = Backoff(initial=1.0, cap=8.0)
    delays = [backoff.next_delay() for _ in range(6)]
    for delay, ceiling in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next_delay() <= 1.0
