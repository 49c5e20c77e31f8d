"""Attribute schemas as data: every attribute the NITRO reference lists is accepted and typed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lbctl.nitro.simulator.resources import ATTRIBUTES, SPECS
from tests.simulator.conftest import add, assert_error, get

SYSTEM = {"nsfeature", "nsmode", "nsversion"}
SAMPLE = {"string": "x", "integer": 1, "number": 1.5, "boolean": True,
          "array of string": ["x"], "array of integer": [1], "[]int": [1]}  # fmt: skip


def test_every_documented_config_resource_has_a_spec() -> None:
    configs = {r.split("/", 1)[1] for r in ATTRIBUTES["resources"] if r.startswith("config/")}
    assert configs - SYSTEM <= set(SPECS)


@pytest.mark.parametrize("resource", sorted(SPECS))
def test_every_reference_attribute_is_known(resource: str) -> None:
    spec = SPECS[resource]
    documented = ATTRIBUTES["resources"].get(f"config/{resource}", {})
    known = set(spec.fields) | spec.readonly
    assert {a for a in documented if not a.startswith("_")} <= known


async def test_monitor_takes_deviation_and_failureretries(nitro: httpx.AsyncClient) -> None:
    mon = {"monitorname": "m1", "type": "HTTP", "deviation": 0, "failureretries": 3}
    assert (await add(nitro, "lbmonitor", mon)).status_code == 201
    (got,) = (await get(nitro, "lbmonitor/m1")).json()["lbmonitor"]
    assert (got["deviation"], got["failureretries"], got["successretries"]) == (0, 3, 1)
    assert (got["reverse"], got["units1"]) == ("NO", "SEC")


async def test_every_string_and_number_attribute_of_a_monitor_is_accepted(
    nitro: httpx.AsyncClient,
) -> None:
    """Each writable non-enum attribute, with a value of its documented JSON type."""
    spec = SPECS["lbmonitor"]
    types: dict[str, str] = ATTRIBUTES["resources"]["config/lbmonitor"]
    payload: dict[str, Any] = {"monitorname": "all", "type": "USER"}
    for arg, kind in types.items():
        f = spec.fields.get(arg)
        if f is None or f.kind in ("enum", "ip") or arg in payload or f.lo is not None:
            continue
        payload[arg] = SAMPLE[kind]
    payload.update(interval=10, resptimeout=2)
    assert len(payload) > 60
    response = await add(nitro, "lbmonitor", payload)
    assert response.status_code == 201, response.text
    (got,) = (await get(nitro, "lbmonitor/all")).json()["lbmonitor"]
    assert got["scriptname"] == "x"
    assert got["acctapplicationid"] == [1]


async def test_unknown_and_private_attributes_are_still_1090(nitro: httpx.AsyncClient) -> None:
    for extra in ({"bogus": 1}, {"_nextgenapiresource": "x"}):
        mon = {"monitorname": "m2", "type": "TCP", **extra}
        data = assert_error(await add(nitro, "lbmonitor", mon), 599, 1090)
        assert data["message"] == f"No such argument [{next(iter(extra))}]"


async def test_wrong_json_type_is_1097(nitro: httpx.AsyncClient) -> None:
    mon = {"monitorname": "m3", "type": "TCP", "failureretries": "many"}
    assert_error(await add(nitro, "lbmonitor", mon), 599, 1097)


async def test_enum_args_compare_case_insensitively(nitro: httpx.AsyncClient) -> None:
    await add(nitro, "lbmonitor", {"monitorname": "m1", "type": "HTTP"})
    response = await get(nitro, "lbmonitor/m1", args="type:http")
    assert [m["type"] for m in response.json()["lbmonitor"]] == ["HTTP"]
    response = await get(nitro, "lbmonitor", filter="type:tcp")
    assert {m["monitorname"] for m in response.json()["lbmonitor"]} == {"tcp-default", "tcp"}
    assert "lbmonitor" not in (await get(nitro, "lbmonitor/m1", args="monitorname:M1")).json()
