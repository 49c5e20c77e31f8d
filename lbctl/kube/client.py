"""A small raw-JSON REST client for the apiserver, on kubernetes_asyncio's configuration.

kubernetes_asyncio reads the kubeconfig or the in-cluster account, keeps the bearer token fresh
and builds the TLS session; requests are sent on that session directly.  Objects stay plain
dicts end to end: no typed-model (de)serialisation, which is the slow and memory-hungry part
of the generated client, whose ``call_api`` also walks every request body again.  All
transport errors are mapped here, once, into ``lbctl.kube.errors``.
"""

from __future__ import annotations

import asyncio
import builtins
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit
from urllib.request import getproxies_environment, proxy_bypass

import aiohttp
import orjson

from lbctl import __version__
from lbctl.kube.errors import KubeUnavailable, status_error
from lbctl.kube.k8s import client as k8s_client
from lbctl.kube.k8s import config as k8s_config

JSON = dict[str, Any]
T = TypeVar("T")
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)
READ_BUFSIZE = 2**21
"""Bytes aiohttp may buffer for one line of a watch: etcd's largest request is 1.5 MiB
(kubernetes_asyncio's rest client sets the same; kubernetes/kubernetes#19781)."""


def _rbac_resource(path: str) -> str:
    """'/api/v1/namespaces/ns/services/x/status' → 'services/status' (group-less, as in RBAC)."""
    parts = path.strip("/").split("/")
    parts = parts[2:] if parts[0] == "api" else parts[3:]
    if parts[:1] == ["namespaces"] and len(parts) > 2:
        parts = parts[2:]
    resource = parts[0]
    return f"{resource}/{parts[2]}" if len(parts) > 2 else resource


def _timeout(seconds: float | None) -> aiohttp.ClientTimeout:
    if seconds is None:
        return REQUEST_TIMEOUT
    return aiohttp.ClientTimeout(total=seconds, sock_connect=min(10.0, seconds))


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, sub: str | None = None
    ) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace is not None and self.namespaced:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
        if sub is not None:
            base += f"/{sub}"
        return base


SERVICES = Resource("", "v1", "services", "Service")
VIPS = Resource("ipam.citrix.com", "v1", "vips", "Vip")
VIP_ADDRESSES = Resource("ipam.citrix.com", "v1", "vipaddresses", "VipAddress", namespaced=False)
VIP_POOLS = Resource("ipam.citrix.com", "v1", "vippools", "VipPool", namespaced=False)
EVENTS = Resource("", "v1", "events", "Event")
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
CRDS = Resource(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    namespaced=False,
)

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
FIELD_MANAGER = "lbctl"
"""Every write names lbctl as its field manager, so ``managedFields`` show what lbctl owns."""


async def api_client_from(kubeconfig: str | None) -> k8s_client.ApiClient:
    """An ApiClient from a kubeconfig file, or the in-cluster service account when None."""
    configuration = k8s_client.Configuration()
    if kubeconfig:
        loader = await k8s_config.load_kube_config(
            config_file=kubeconfig, client_configuration=configuration
        )
        _refresh_exec_token(loader, configuration)
    else:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    api = k8s_client.ApiClient(configuration=configuration)
    api.user_agent = f"lbctl/{__version__}"
    _read_environment_once(api)
    return api


def _refresh_exec_token(loader: Any, configuration: k8s_client.Configuration) -> None:
    """An exec credential plugin's token that names its expiry (EKS's, GKE's) is fetched
    again once it is (about to be) expired: kubernetes_asyncio's loader knows how, but only
    its ``refresh_token`` loop, which lbctl does not run, would ask it to.  The token is
    checked before each request, as the in-cluster account's token file is."""
    if getattr(loader, "exec_plugin_expiry", None) is None:
        return  # no exec plugin, or a token with no expiry: used as given
    lock = asyncio.Lock()

    async def refresh(conf: k8s_client.Configuration) -> None:
        async with lock:
            await loader.load_from_exec_plugin()  # runs the plugin only when expired
            conf.api_key["BearerToken"] = loader.token

    configuration.refresh_api_key_hook = refresh


def _read_environment_once(api: k8s_client.ApiClient) -> None:
    """kubernetes_asyncio's aiohttp session trusts the environment, so aiohttp reads the proxy
    variables and ``~/.netrc`` again for every request, in a thread: a quarter of lbctl's CPU
    while Services are created.  The proxy for the apiserver is looked up once here instead
    (``HTTPS_PROXY``/``NO_PROXY``, as client-go honours them); ``.netrc`` never applied, as
    every request carries the kubeconfig's credentials."""
    rest = api.rest_client
    trusting: aiohttp.ClientSession = rest.pool_manager
    rest.pool_manager = aiohttp.ClientSession(
        connector=trusting.connector, trust_env=False, read_bufsize=READ_BUFSIZE
    )
    trusting.detach()  # the connector now belongs to the new session alone
    proxy = environment_proxy(api.configuration.host or "")
    if not rest.proxy and proxy:
        rest.proxy = proxy


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``/``HTTP_PROXY`` by scheme,
    unless ``NO_PROXY`` exempts the host), as urllib reads them; None when there is none."""
    parts = urlsplit(url)
    proxies = getproxies_environment()
    proxy = proxies.get(parts.scheme)
    if not proxy or proxy_bypass(parts.hostname or ""):
        return None
    return proxy


class KubeClient:
    def __init__(self, api: k8s_client.ApiClient) -> None:
        self._api = api
        self._host: str = api.configuration.host or ""
        self.requests: Counter[str] = Counter()
        """Requests made, by verb (get, list, watch, create, patch, delete); for tests and bench."""
        self.results: Counter[tuple[str, str]] = Counter()
        """Requests by (verb, HTTP status code or 'error'), for /metrics."""
        self.calls: Counter[tuple[str, str]] = Counter()
        """Requests by (resource as RBAC names it, verb): tests check RBAC and write counts."""

    async def close(self) -> None:
        await self._api.close()

    async def _send(
        self,
        verb: str,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: aiohttp.ClientTimeout = REQUEST_TIMEOUT,
        accept: str = "application/json",
    ) -> aiohttp.ClientResponse:
        self.requests[verb] += 1
        self.calls[(_rbac_resource(path), verb)] += 1
        headers = {**self._api.default_headers, "Accept": accept, "Content-Type": content_type}
        for setting in (await self._api.configuration.auth_settings()).values():
            headers[setting["key"]] = setting["value"]  # the bearer token, refreshed as needed
        rest = self._api.rest_client
        try:
            response = await rest.pool_manager.request(
                method,
                self._host + path,
                params=query,
                headers=headers,
                data=None if body is None else orjson.dumps(body),
                timeout=timeout,
                proxy=rest.proxy,
                proxy_headers=rest.proxy_headers,
                server_hostname=rest.server_hostname,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            self.results[(verb, "error")] += 1
            raise KubeUnavailable(f"{method} {path}: {type(err).__name__}: {err}") from err
        self.results[(verb, str(response.status))] += 1
        if not 200 <= response.status < 300:
            try:
                data = await response.read()
            except (aiohttp.ClientError, TimeoutError, OSError):
                data = b""
            finally:
                response.release()
            raise status_error(response.status, data)
        return response

    async def _json(self, verb: str, method: str, path: str, **kwargs: Any) -> JSON:
        response = await self._send(verb, method, path, **kwargs)
        try:
            data = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise KubeUnavailable(f"{method} {path}: reading the answer: {err}") from err
        finally:
            response.release()
        result: JSON = orjson.loads(data)
        return result

    async def list(
        self, resource: Resource, namespace: str | None = None, page_size: int = 500
    ) -> tuple[list[JSON], str]:
        """All objects and the list's resourceVersion, paging through ``continue`` tokens."""
        return await self.list_each(resource, namespace, lambda item: item, page_size)

    async def list_each(
        self,
        resource: Resource,
        namespace: str | None,
        each: Callable[[JSON], T],
        page_size: int = 500,
    ) -> tuple[builtins.list[T], str]:
        """As ``list``, with ``each`` applied to every object as its page arrives (e.g. to
        pack it, so a big list never sits in memory whole as dicts)."""
        items: builtins.list[T] = []
        token = ""
        while True:
            query: list[tuple[str, Any]] = [("limit", page_size)]
            if token:
                query.append(("continue", token))
            page = await self._json("list", "GET", resource.path(namespace), query=query)
            found = page.get("items") or []
            items.extend(map(each, found))
            token = page.get("metadata", {}).get("continue") or ""
            if not token:
                return items, str(page["metadata"]["resourceVersion"])

    async def table(self, resource: Resource, namespace: str | None = None) -> JSON:
        """The list as the server renders it for ``kubectl get`` (a ``meta.k8s.io/v1``
        Table: the CRD's printer columns and one row per object)."""
        return await self._json(
            "list", "GET", resource.path(namespace),
            accept="application/json;as=Table;v=v1;g=meta.k8s.io",
        )  # fmt: skip

    async def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None,
        resource_version: str,
        timeout_seconds: int,
        read_timeout: float,
    ) -> AsyncIterator[JSON]:
        """Yield raw watch events until the server ends the stream."""
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", timeout_seconds),
        ]
        timeout = aiohttp.ClientTimeout(sock_connect=10, sock_read=read_timeout)
        response = await self._send(
            "watch", "GET", resource.path(namespace), query=query, timeout=timeout
        )
        buffer = b""
        try:
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield orjson.loads(line)
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise KubeUnavailable(f"watch {resource.plural}: {type(err).__name__}: {err}") from err
        finally:
            response.release()

    async def get(
        self, resource: Resource, namespace: str | None, name: str, *, timeout: float | None = None
    ) -> JSON:
        path = resource.path(namespace, name)
        return await self._json("get", "GET", path, timeout=_timeout(timeout))

    async def create(
        self,
        resource: Resource,
        namespace: str | None,
        body: JSON,
        *,
        timeout: float | None = None,
    ) -> JSON:
        path = resource.path(namespace)
        query = [("fieldManager", FIELD_MANAGER)]
        return await self._json(
            "create", "POST", path, query=query, body=body, timeout=_timeout(timeout)
        )

    async def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
        timeout: float | None = None,
    ) -> JSON:
        path = resource.path(namespace, name, subresource)
        return await self._json(
            "patch",
            "PATCH",
            path,
            query=[("fieldManager", FIELD_MANAGER)],
            body=patch,
            content_type=content_type,
            timeout=_timeout(timeout),
        )

    async def apply(
        self, resource: Resource, body: JSON, *, field_manager: str = FIELD_MANAGER
    ) -> JSON:
        """Server-side apply of a whole object (JSON is YAML, so it is sent as is)."""
        meta = body["metadata"]
        path = resource.path(meta.get("namespace"), meta["name"])
        query: list[tuple[str, Any]] = [("fieldManager", field_manager), ("force", "true")]
        return await self._json(
            "patch", "PATCH", path, query=query, body=body, content_type=APPLY_PATCH
        )

    async def delete(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> JSON:
        """Delete; with ``uid`` only that incarnation of the object, with ``resource_version``
        only that version of it (preconditions: a mismatch is ``Conflict``)."""
        body: JSON = {"kind": "DeleteOptions", "apiVersion": "v1"}
        preconditions = {"uid": uid, "resourceVersion": resource_version}
        if uid or resource_version:
            body["preconditions"] = {k: v for k, v in preconditions.items() if v}
        return await self._json("delete", "DELETE", resource.path(namespace, name), body=body)
