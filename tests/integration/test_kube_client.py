"""The apiserver transport: the environment's proxy is honoured, but read once, not per request."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from lbctl.devenv.controlplane import LocalControlPlane
from lbctl.kube.client import NAMESPACES, KubeClient, api_client_from, environment_proxy
from lbctl.kube.errors import KubeUnavailable


def test_environment_proxy_by_scheme_unless_no_proxy_exempts_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert environment_proxy("https://10.0.0.1:6443") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert environment_proxy("https://10.0.0.1:6443") == "http://proxy.example:3128"
    assert environment_proxy("http://10.0.0.1:8080") is None
    monkeypatch.setenv("NO_PROXY", "10.0.0.1,.cluster.local")
    assert environment_proxy("https://10.0.0.1:6443") is None
    assert environment_proxy("https://kubernetes.default.svc.cluster.local") is None
    assert environment_proxy("https://10.0.0.2:6443") == "http://proxy.example:3128"


@pytest.mark.parametrize("exempt", [True, False])
async def test_requests_go_through_the_environments_proxy_read_at_start(
    control_plane: LocalControlPlane, monkeypatch: pytest.MonkeyPatch, exempt: bool
) -> None:
    """A proxy named by HTTPS_PROXY is used (here one that refuses: requests fail), unless
    NO_PROXY exempts the apiserver; the session itself does not consult the environment."""
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    if exempt:
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    api = await api_client_from(str(control_plane.kubeconfig))
    client = KubeClient(api)
    try:
        assert api.rest_client.pool_manager.trust_env is False
        if exempt:
            assert (await client.get(NAMESPACES, None, "default"))["metadata"]["name"] == "default"
        else:
            with pytest.raises(KubeUnavailable):
                await client.get(NAMESPACES, None, "default", timeout=5)
    finally:
        await client.close()


async def test_a_configured_proxy_gets_its_proxy_headers(control_plane: LocalControlPlane) -> None:
    """The configuration's ``proxy_headers`` (e.g. Proxy-Authorization) reach the proxy on the
    CONNECT that tunnels to the apiserver; here a proxy that records the request and refuses."""
    seen: list[bytes] = []

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    api = await api_client_from(str(control_plane.kubeconfig))
    api.rest_client.proxy = f"http://127.0.0.1:{port}"
    api.rest_client.proxy_headers = {"Proxy-Authorization": "Basic bGJjdGw6cHJveHk="}
    client = KubeClient(api)
    try:
        with pytest.raises(KubeUnavailable):
            await client.get(NAMESPACES, None, "default", timeout=5)
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
    assert len(seen) == 1
    assert seen[0].startswith(b"CONNECT 127.0.0.1:")
    assert b"Proxy-Authorization: Basic bGJjdGw6cHJveHk=" in seen[0]


async def test_an_exec_plugins_expiring_token_is_fetched_again(
    control_plane: LocalControlPlane, tmp_path: Path
) -> None:
    """A kubeconfig whose user is an exec credential plugin (as EKS's and GKE's are) gives a
    token with an expiry: lbctl runs the plugin again once the token is (about to be) expired,
    rather than sending the first token for ever.  (kubernetes_asyncio treats a token as
    expired 5 minutes early, so one that expires in a minute is fetched for each request.)"""
    plane = json.loads(control_plane.kubeconfig.read_text())
    token = plane["users"][0]["user"]["token"]
    calls = tmp_path / "calls"
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        f"#!{sys.executable}\n"
        "import datetime, json, pathlib\n"
        f"pathlib.Path({str(calls)!r}).open('a').write('run\\n')\n"
        "expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1)\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1',"
        " 'kind': 'ExecCredential', 'status': {'token': "
        f"{token!r}, 'expirationTimestamp': expiry.strftime('%Y-%m-%dT%H:%M:%SZ')}}}}))\n"
    )
    plugin.chmod(0o755)
    exec_user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                          "command": str(plugin), "interactiveMode": "Never"}}  # fmt: skip
    plane["users"][0]["user"] = exec_user
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(plane))
    client = KubeClient(await api_client_from(str(kubeconfig)))
    try:
        for _ in range(3):
            await client.get(NAMESPACES, None, "default")
    finally:
        await client.close()
    assert len(calls.read_text().splitlines()) >= 3
