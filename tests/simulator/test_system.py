"""Appliance-wide resources: nsfeature, nsmode, nsversion and nsconfig."""

from __future__ import annotations

import httpx

from tests.simulator.conftest import add, assert_error, get


async def test_lb_feature_is_on_and_can_be_switched(nitro: httpx.AsyncClient) -> None:
    feature = (await get(nitro, "nsfeature")).json()["nsfeature"]
    assert feature["lb"] is True
    assert "LB" in feature["feature"]
    assert feature["gslb"] is False
    body = {"nsfeature": {"feature": ["lb"]}}
    response = await nitro.post(
        "/nitro/v1/config/nsfeature", params={"action": "disable"}, json=body
    )
    assert response.status_code == 200
    feature = (await get(nitro, "nsfeature")).json()["nsfeature"]
    assert feature["lb"] is False
    assert "LB" not in feature["feature"]
    response = await nitro.put("/simulator/features", json={"lb": True, "gslb": True})
    assert {"LB", "GSLB"} <= set(response.json()["nsfeature"]["feature"])
    assert (await get(nitro, "nsfeature")).json()["nsfeature"]["lb"] is True
    bad = {"nsfeature": {"feature": ["WARPDRIVE"]}}
    assert_error(
        await nitro.post("/nitro/v1/config/nsfeature", params={"action": "enable"}, json=bad),
        599,
        1097,
    )
    assert (await nitro.put("/simulator/features", json={"warpdrive": True})).status_code == 400


async def test_nsmode_and_nsversion(nitro: httpx.AsyncClient) -> None:
    mode = (await get(nitro, "nsmode")).json()["nsmode"]
    assert mode["l3"] is True
    assert mode["l2"] is False
    assert "USNIP" in mode["mode"]
    version = (await get(nitro, "nsversion")).json()["nsversion"]
    assert version["version"].startswith("NetScaler NS14.1")
    assert version["installedversion"] is False


async def test_nsconfig_reports_unsaved_changes(nitro: httpx.AsyncClient) -> None:
    assert (await get(nitro, "nsconfig")).json()["nsconfig"]["configchanged"] is False
    await add(nitro, "server", {"name": "s1", "ipaddress": "10.9.0.1"})
    assert (await get(nitro, "nsconfig")).json()["nsconfig"]["configchanged"] is True
    save = await nitro.post(
        "/nitro/v1/config/nsconfig", params={"action": "save"}, json={"nsconfig": {}}
    )
    assert save.status_code == 200
    assert (await get(nitro, "nsconfig")).json()["nsconfig"]["configchanged"] is False
    assert_error(await add(nitro, "server", {"name": "s1", "ipaddress": "10.9.0.1"}), 409, 273)
    assert (await get(nitro, "nsconfig")).json()["nsconfig"]["configchanged"] is False
