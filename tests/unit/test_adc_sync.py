"""AdcSync over a respx-mocked NetScaler: failures become outcomes, never exceptions."""

from __future__ import annotations

import httpx
import respx

from lbctl.adc.plan import Node
from lbctl.nitro.client import NitroClient
from lbctl.reconcile.adc import AdcSync

SERVICE = {
    "metadata": {"namespace": "shop", "name": "web", "annotations": {}},
    "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]},
}
NODES = [Node(f"n{i}", f"10.0.0.{i}", ready=True, excluded=False) for i in (1, 2, 3)]


async def test_a_refused_bulk_bind_is_a_port_error_and_a_retry_not_a_crash(
    mock: respx.MockRouter, client: NitroClient
) -> None:
    for resource in (
        "lbvserver",
        "servicegroup",
        "lbmonitor",
        "servicegroup_servicegroupmember_binding",
        "lbvserver_servicegroup_binding",
        "servicegroup_lbmonitor_binding",
        "server",
    ):
        mock.get(f"/{resource}").mock(return_value=httpx.Response(200, json={"errorcode": 0}))
    mock.get("/nsfeature").mock(
        return_value=httpx.Response(200, json={"errorcode": 0, "nsfeature": {"lb": True}})
    )
    mock.put(path__regex=r"/server/").mock(return_value=httpx.Response(200))
    mock.get(path__regex=r"/server/").mock(  # no server yet for a member bound by IP
        return_value=httpx.Response(
            404, json={"errorcode": 258, "message": "No such resource", "severity": "ERROR"}
        )
    )
    mock.post("/servicegroup").mock(return_value=httpx.Response(201))
    mock.post("/lbvserver").mock(return_value=httpx.Response(201))
    members = mock.post("/servicegroup_servicegroupmember_binding").mock(
        return_value=httpx.Response(
            599, json={"errorcode": 1238, "message": "NITRO parse error", "severity": "ERROR"}
        )
    )
    sync = AdcSync(client, "k8s", lambda: NODES, lambda _: [])
    outcome = await sync.ensure(SERVICE, ["192.0.2.1"])
    assert members.call_count == 1
    assert outcome.retry is not None
    reason, message = outcome.port_errors["80-tcp"]
    assert reason == "lbctl.io/ADCConfigFailed"
    assert "errorcode 1238" in message
    # The next attempt sends only what is still missing: the members and the binding.
    members.mock(return_value=httpx.Response(201))
    binding = mock.post("/lbvserver_servicegroup_binding").mock(return_value=httpx.Response(201))
    again = await sync.ensure(SERVICE, ["192.0.2.1"])
    assert again.retry is None
    assert again.writes == 2
    assert binding.call_count == 1
