"""A fault proxy between lbctl and the apiserver: writes are applied, their replies are lost.

A lost reply is the one fault the real apiserver cannot be asked for, and the one that decides
whether a write-then-read-back design holds: the client does not know whether its write
happened.  ``FaultProxy`` is an HTTPS reverse proxy on 127.0.0.1 that terminates TLS with a
self-signed certificate made at start and re-originates every request to the real
kube-apiserver.  Reads and watches pass through, streamed (a watch is one long chunked reply).
For each write (POST/PUT/PATCH/DELETE) a seeded ``random.Random`` decides: forward it and pass
the reply on, forward it and **drop** the reply (the connection is closed, or held until the
client gives up), or forward it and **delay** the reply.  The write always reaches the
apiserver first, so what the client does not hear about did happen.

``kubeconfig`` points at the proxy (its own CA, the apiserver's token), for lbctl processes.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import subprocess
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import aiohttp
from aiohttp import web

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HOP_BY_HOP = frozenset(
    {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "upgrade",
     "proxy-connection", "te", "trailer"}
)  # fmt: skip


def resource_of(path: str) -> str:
    """'/apis/g/v1/namespaces/ns/vips/x/status' → 'vips/status': what the counts are keyed by."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    parts = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if parts[:1] == ["namespaces"] and len(parts) > 2:
        parts = parts[2:]
    if not parts or not parts[0]:
        return "(root)"
    return f"{parts[0]}/{parts[2]}" if len(parts) > 2 else parts[0]


def self_signed(workdir: Path) -> tuple[Path, Path]:
    """A certificate for IP 127.0.0.1 and its key, made with the openssl CLI (the
    ``cryptography`` package is not a dependency); the certificate is also the client's CA."""
    cert, key = workdir / "proxy.crt", workdir / "proxy.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=lbctl-fault-proxy", "-keyout", str(key),
         "-out", str(cert), "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class FaultProxy:
    """``async with FaultProxy(url, ca, token, workdir, seed=1, drop=0.1) as proxy: ...``.

    ``drop`` and ``delay`` are the shares of writes whose reply is dropped or delayed;
    ``hang`` is the share of drops that hold the connection open (until the client's own
    timeout, at most ``hang_for`` seconds) instead of closing it at once.  Shares can be
    changed while running (e.g. set to 0 to let everything settle).
    """

    def __init__(
        self, upstream: str, ca_file: Path, token: str, workdir: Path, *, seed: int,
        drop: float = 0.0, delay: float = 0.0, hang: float = 0.0,
        delay_seconds: tuple[float, float] = (0.5, 3.0), hang_for: float = 60.0,
    ) -> None:  # fmt: skip
        self.upstream = upstream.rstrip("/")
        self.ca_file, self.token, self.workdir = ca_file, token, workdir
        self.rng = random.Random(seed)
        self.drop, self.delay, self.hang = drop, delay, hang
        self.delay_seconds, self.hang_for = delay_seconds, hang_for
        self.counts: Counter[tuple[str, str]] = Counter()
        """(outcome, resource) → writes: outcome is forwarded, dropped, hung or delayed."""
        self.requests = 0
        self.url = ""
        self.kubeconfig = workdir / "proxy-kubeconfig"
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._transports: set[asyncio.Transport] = set()
        self.in_flight = 0
        """Writes forwarded whose reply has not been sent, dropped or given up yet."""

    @classmethod
    def in_front_of(
        cls, kubeconfig: Path, workdir: Path, *, seed: int,
        drop: float = 0.0, delay: float = 0.0, hang: float = 0.0,
    ) -> FaultProxy:  # fmt: skip
        """A proxy for the apiserver a kubeconfig names (as ``LocalControlPlane`` writes it:
        server, certificate-authority file, bearer token)."""
        config = json.loads(kubeconfig.read_text())
        cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
        return cls(
            cluster["server"], Path(cluster["certificate-authority"]), user["token"], workdir,
            seed=seed, drop=drop, delay=delay, hang=hang,
        )  # fmt: skip

    def count(self, outcome: str) -> dict[str, int]:
        """Writes with one outcome, by resource."""
        return {r: n for (o, r), n in sorted(self.counts.items()) if o == outcome}

    def summary(self) -> str:
        parts = [f"{o}={sum(self.count(o).values())} {self.count(o)}"
                 for o in ("forwarded", "dropped", "hung", "delayed")]  # fmt: skip
        return f"proxy requests={self.requests} writes " + " ".join(parts)

    async def __aenter__(self) -> FaultProxy:
        cert, key = await asyncio.to_thread(self_signed, self.workdir)
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(cert, key)
        upstream_tls = ssl.create_default_context(cafile=str(self.ca_file))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=upstream_tls, limit=0),
            auto_decompress=False,  # bytes pass through as sent, Content-Encoding and all
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A client that goes away cancels its handler: the upstream watch is closed with it.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_tls)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"https://127.0.0.1:{port}"
        self._write_kubeconfig(cert)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # A TLS connection whose peer vanished can sit in its close handshake past the end of
        # the loop (an unclosed socket): cut whatever the server has left.
        for transport in self._transports:
            transport.abort()
        if self._session is not None:
            await self._session.close()

    def _write_kubeconfig(self, ca: Path) -> None:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "proxy",
            "clusters": [{"name": "proxy",
                          "cluster": {"server": self.url, "certificate-authority": str(ca)}}],
            "users": [{"name": "proxy", "user": {"token": self.token}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
        }  # fmt: skip
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)

    def _fate(self, method: str) -> tuple[str, float]:
        """What happens to this request's reply, and after how long; drawn from the seeded
        generator when the request arrives."""
        if method not in WRITES:
            return "read", 0.0
        roll = self.rng.random()
        if roll < self.drop:
            return ("hung", self.hang_for) if self.rng.random() < self.hang else ("dropped", 0.0)
        if roll < self.drop + self.delay:
            return "delayed", self.rng.uniform(*self.delay_seconds)
        return "forwarded", 0.0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        self.requests += 1
        if request.transport is not None:
            self._transports.add(request.transport)
        fate, wait = self._fate(request.method)
        if fate == "read":
            return await self._stream(request)
        self.in_flight += 1
        try:
            return await self._write(request, fate, wait)
        finally:
            self.in_flight -= 1

    @staticmethod
    def _headers(headers: Mapping[str, str]) -> dict[str, str]:
        return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """A read passed on as it arrives: a watch is one reply that lasts minutes."""
        assert self._session is not None
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=self._headers(request.headers)
        ) as upstream:
            reply = web.StreamResponse(
                status=upstream.status, headers=self._headers(upstream.headers)
            )
            await reply.prepare(request)
            async for chunk in upstream.content.iter_any():
                await reply.write(chunk)
            await reply.write_eof()
            return reply

    async def _write(self, request: web.Request, fate: str, wait: float) -> web.StreamResponse:
        """The write is applied upstream in full before its reply is held back or lost."""
        assert self._session is not None
        body = await request.read()
        async with self._session.request(
            request.method, self.upstream + request.path_qs,
            headers=self._headers(request.headers), data=body or None,
        ) as upstream:  # fmt: skip
            reply_headers = self._headers(upstream.headers)
            data = await upstream.read()  # the write has been applied (or refused) upstream
        self.counts[(fate, resource_of(request.path))] += 1
        # Held back; a hung reply is cancelled here when the client gives up first.
        await asyncio.sleep(wait)
        if fate in ("dropped", "hung"):
            assert request.transport is not None
            request.transport.abort()  # the reply aiohttp then tries to send goes nowhere
        return web.Response(status=upstream.status, headers=reply_headers, body=data)
