"""Wire format and error mapping of the NITRO client, pinned with respx."""

from __future__ import annotations

import asyncio
import json
import ssl

import certifi
import httpx
import pytest
import respx

from lbctl.app import nitro_client, tls_verify
from lbctl.config import AdcSettings
from lbctl.nitro import errors
from lbctl.nitro.client import Credentials, NitroClient
from tests.unit.nitro_wire import SECRET, URL, login_ok, nitro_error, no_sleep


async def test_login_sends_credentials_and_uses_the_session_cookie(
    mock: respx.MockRouter, client: NitroClient
) -> None:
    route = mock.get("/lbvserver").mock(return_value=httpx.Response(200, json={"errorcode": 0}))
    assert await client.get("lbvserver") == []
    login = mock["login"].calls.last.request
    assert json.loads(login.content) == {"login": {"username": "nsroot", "password": SECRET}}
    assert login.headers["content-type"] == "application/json"
    assert route.calls.last.request.headers["cookie"] == "NITRO_AUTH_TOKEN=tok1"
    assert route.calls.last.request.headers["accept"] == "application/json"


async def test_session_token_from_body_when_no_cookie(mock: respx.MockRouter) -> None:
    mock["login"].mock(
        return_value=httpx.Response(201, json={"errorcode": 0, "sessionid": "##ABC"})
    )
    route = mock.get("/lbvserver").mock(return_value=httpx.Response(200, json={}))
    nitro = NitroClient(URL, Credentials("u", SECRET))
    await nitro.get("lbvserver")
    assert route.calls.last.request.headers["cookie"] == "NITRO_AUTH_TOKEN=##ABC"
    await nitro.aclose()


async def test_get_options_and_name_encoding(mock: respx.MockRouter, client: NitroClient) -> None:
    route = mock.get(url__regex=r".*/servicegroup_servicegroupmember_binding/.*").mock(
        return_value=httpx.Response(
            200,
            json={
                "errorcode": 0,
                "servicegroup_servicegroupmember_binding": [{"ip": "1.2.3.4", "port": 80}],
            },
        )
    )
    found = await client.get(
        "servicegroup_servicegroupmember_binding",
        "k8s ns/a:80",
        filter={"ip": "1.2.3.4", "port": 80},
        attrs=["ip", "port"],
    )
    assert found == [{"ip": "1.2.3.4", "port": 80}]
    request = route.calls.last.request
    assert request.url.raw_path.startswith(
        b"/nitro/v1/config/servicegroup_servicegroupmember_binding/k8s%20ns%2Fa%3A80?"
    )
    assert request.url.params["filter"] == "ip:1.2.3.4,port:80"
    assert request.url.params["attrs"] == "ip,port"


async def test_get_all_bindings_and_count(mock: respx.MockRouter, client: NitroClient) -> None:
    route = mock.get("/lbvserver_servicegroup_binding").mock(
        return_value=httpx.Response(200, json={"errorcode": 0})
    )
    assert await client.get("lbvserver_servicegroup_binding", bulkbindings=True) == []
    assert route.calls.last.request.url.params["bulkbindings"] == "yes"
    mock.get("/lbvserver").mock(
        return_value=httpx.Response(200, json={"lbvserver": [{"__count": "7"}]})
    )
    assert await client.count("lbvserver") == 7


async def test_pages_count_then_ask_for_each_page_from_the_last(
    mock: respx.MockRouter,
) -> None:
    names = [f"vs{i}" for i in range(5)]

    def page(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("count") == "yes":
            return httpx.Response(200, json={"errorcode": 0, "lbvserver": [{"__count": 5}]})
        size, number = int(request.url.params["pagesize"]), int(request.url.params["pageno"])
        rows = [{"name": n} for n in names[(number - 1) * size : number * size]]
        if number == 2:
            rows = rows[:1]  # a short page in the middle
        return httpx.Response(200, json={"errorcode": 0, **({"lbvserver": rows} if rows else {})})

    route = mock.get("/lbvserver").mock(side_effect=page)
    nitro = NitroClient(URL, Credentials("nsroot", SECRET), sleep=no_sleep, page_size=2)
    found = [[r["name"] for r in rows] async for rows in nitro.pages("lbvserver", attrs=["name"])]
    assert found == [["vs4"], ["vs2"], ["vs0", "vs1"]]  # the short page does not end the read
    sent = [dict(call.request.url.params) for call in route.calls]
    assert sent == [{"count": "yes"}] + [
        {"attrs": "name", "pagesize": "2", "pageno": str(n)} for n in (3, 2, 1)
    ]
    await nitro.aclose()


async def test_pages_of_a_resource_that_fills_them_exactly_or_is_empty(
    mock: respx.MockRouter,
) -> None:
    total = 4

    def page(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("count") == "yes":
            counted = {"lbvserver": [{"__count": total}]} if total else {}
            return httpx.Response(200, json={"errorcode": 0, **counted})
        number = int(request.url.params["pageno"])
        rows = [{"name": f"vs{i}"} for i in range(total)][(number - 1) * 2 : number * 2]
        return httpx.Response(200, json={"errorcode": 0, "lbvserver": rows})

    route = mock.get("/lbvserver").mock(side_effect=page)
    nitro = NitroClient(URL, Credentials("nsroot", SECRET), sleep=no_sleep, page_size=2)
    assert len([rows async for rows in nitro.pages("lbvserver")]) == 2
    assert route.call_count == 3  # the count and two full pages, no empty one
    total = 0
    assert [rows async for rows in nitro.pages("lbvserver")] == []
    assert route.call_count == 4
    await nitro.aclose()


async def test_writes_use_documented_methods_and_payloads(
    mock: respx.MockRouter, client: NitroClient
) -> None:
    add = mock.post("/lbvserver").mock(return_value=httpx.Response(201))
    put = mock.put("/lbvserver/k8s-a").mock(return_value=httpx.Response(200))
    delete = mock.delete("/lbmonitor/k8s-m").mock(return_value=httpx.Response(200, json={}))
    unbind = mock.delete("/servicegroup_servicegroupmember_binding/k8s-sg").mock(
        return_value=httpx.Response(200)
    )
    bind = mock.post("/lbvserver_servicegroup_binding").mock(return_value=httpx.Response(201))
    await client.add("lbvserver", {"name": "k8s-a", "port": 80}, idempotent=True)
    await client.update("lbvserver", {"name": "k8s-a", "lbmethod": "ROUNDROBIN"})
    await client.delete("lbmonitor", "k8s-m", args={"type": "HTTP"})
    await client.unbind(
        "servicegroup_servicegroupmember_binding", "k8s-sg", {"ip": "10.0.0.1", "port": 30080}
    )
    await client.bind(
        "lbvserver_servicegroup_binding", {"name": "k8s-a", "servicegroupname": "k8s-sg"}
    )
    assert json.loads(add.calls.last.request.content) == {
        "lbvserver": {"name": "k8s-a", "port": 80}
    }
    assert add.calls.last.request.url.params["idempotent"] == "yes"
    assert json.loads(put.calls.last.request.content) == {
        "lbvserver": {"name": "k8s-a", "lbmethod": "ROUNDROBIN"}
    }
    assert delete.calls.last.request.url.params["args"] == "type:HTTP"
    assert unbind.calls.last.request.url.params["args"] == "ip:10.0.0.1,port:30080"
    assert json.loads(bind.calls.last.request.content) == {
        "lbvserver_servicegroup_binding": {"name": "k8s-a", "servicegroupname": "k8s-sg"}
    }


async def test_save_config_is_an_action(mock: respx.MockRouter, client: NitroClient) -> None:
    route = mock.post("/nsconfig").mock(return_value=httpx.Response(200))
    await client.save_config()
    assert route.calls.last.request.url.params["action"] == "save"
    assert json.loads(route.calls.last.request.content) == {"nsconfig": {}}


async def test_bulk_bind_reports_per_item_results(
    mock: respx.MockRouter, client: NitroClient
) -> None:
    body = {
        "errorcode": 1243,
        "message": "Bulk operation failed",
        "severity": "ERROR",
        "response": [
            {"errorcode": 0, "message": "Done", "severity": "NONE"},
            {"errorcode": 273, "message": "Resource already exists", "severity": "ERROR"},
        ],
    }
    route = mock.post("/servicegroup_servicegroupmember_binding").mock(
        return_value=httpx.Response(207, json=body)
    )
    items = [{"servicegroupname": "sg", "ip": f"10.0.0.{i}", "port": 80} for i in range(3)]
    results = await client.bulk(
        "bind", "servicegroup_servicegroupmember_binding", items, onerror="exit"
    )
    request = route.calls.last.request
    assert request.headers["x-nitro-onerror"] == "exit"
    assert json.loads(request.content) == {"servicegroup_servicegroupmember_binding": items}
    assert results[0] is None
    assert isinstance(results[1], errors.AlreadyExists)
    assert isinstance(results[2], errors.Unavailable)  # never reached: retry it


async def test_bulk_success_is_all_none(mock: respx.MockRouter, client: NitroClient) -> None:
    mock.post("/servicegroup_servicegroupmember_binding").mock(return_value=httpx.Response(201))
    items = [{"servicegroupname": "sg", "ip": "10.0.0.1", "port": 80}]
    assert await client.bulk("bind", "servicegroup_servicegroupmember_binding", items) == [None]
    assert await client.bulk("bind", "servicegroup_servicegroupmember_binding", []) == []


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (409, 273, errors.AlreadyExists),
        (404, 258, errors.NoSuchResource),
        (404, 344, errors.NoSuchResource),
        (599, 463, errors.NoSuchResource),
        (599, 278, errors.InvalidArgument),
        (599, 1097, errors.InvalidArgument),
        (599, 1075, errors.InvalidArgument),
        (599, 1092, errors.InvalidArgument),
        (599, 2133, errors.AlreadyExists),
        (599, 1070, errors.NitroError),
        (401, 354, errors.AuthFailed),
        (503, 272, errors.Unavailable),
    ],
)
async def test_error_mapping(
    mock: respx.MockRouter,
    client: NitroClient,
    status: int,
    code: int,
    expected: type[errors.NitroError],
) -> None:
    mock.post("/lbvserver").mock(return_value=nitro_error(status, code, "Something [name, x]"))
    with pytest.raises(expected) as caught:
        await client.add("lbvserver", {"name": "k8s-x"})
    err = caught.value
    assert type(err) is expected
    assert (err.errorcode, err.status, err.severity) == (code, status, "ERROR")
    assert str(err) == f"add lbvserver k8s-x: errorcode {code}: Something [name, x] (HTTP {status})"


async def test_expired_session_logs_in_once_for_all_callers(mock: respx.MockRouter) -> None:
    tokens = iter(["old", "new", "newer"])
    login = mock["login"].mock(side_effect=lambda _: login_ok(next(tokens)))

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["cookie"] == "NITRO_AUTH_TOKEN=old":
            return nitro_error(401, 444, "Session expired or killed. Please login again")
        return httpx.Response(200, json={"lbvserver": [{"name": "a"}]})

    mock.get("/lbvserver").mock(side_effect=answer)
    nitro = NitroClient(URL, Credentials("nsroot", SECRET), sleep=no_sleep)
    await nitro.login()
    results = await asyncio.gather(*(nitro.get("lbvserver") for _ in range(5)))
    assert results == [[{"name": "a"}]] * 5
    assert login.call_count == 2  # the first login, then one shared re-login
    await nitro.aclose()


async def test_session_error_twice_is_an_auth_failure(
    mock: respx.MockRouter, client: NitroClient
) -> None:
    route = mock.get("/lbvserver").mock(return_value=nitro_error(401, 1027, "Not logged in"))
    with pytest.raises(errors.AuthFailed):
        await client.get("lbvserver")
    assert route.call_count == 2


async def test_bad_credentials_never_show_the_password(mock: respx.MockRouter) -> None:
    mock["login"].mock(return_value=nitro_error(401, 354, "Invalid username or password"))
    nitro = NitroClient(URL, Credentials("nsroot", SECRET))
    with pytest.raises(errors.AuthFailed) as caught:
        await nitro.get("lbvserver")
    assert caught.value.errorcode == 354
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
    assert SECRET not in repr(Credentials("nsroot", SECRET))
    await nitro.aclose()


async def test_idempotent_calls_retry_5xx_and_connection_errors(
    mock: respx.MockRouter, client: NitroClient
) -> None:
    route = mock.get("/lbvserver").mock(
        side_effect=[
            httpx.Response(503, text="<html>busy</html>", headers={"content-type": "text/html"}),
            httpx.ReadTimeout("read timed out"),
            httpx.Response(200, json={"lbvserver": []}),
        ]
    )
    assert await client.get("lbvserver") == []
    assert route.call_count == 3


async def test_retries_are_bounded(mock: respx.MockRouter, client: NitroClient) -> None:
    route = mock.delete("/lbvserver/a").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(errors.Unavailable) as caught:
        await client.delete("lbvserver", "a")
    assert route.call_count == 3  # first try + 2 retries
    assert "ConnectError" in str(caught.value)
    assert not isinstance(caught.value.__cause__, httpx.HTTPError)


async def test_adds_are_not_retried_once_sent(mock: respx.MockRouter, client: NitroClient) -> None:
    route = mock.post("/lbvserver").mock(
        side_effect=[httpx.ReadTimeout("lost reply"), httpx.Response(201)]
    )
    with pytest.raises(errors.Unavailable):
        await client.add("lbvserver", {"name": "a"})
    assert route.call_count == 1
    five = mock.post("/servicegroup").mock(return_value=httpx.Response(503, json={}))
    with pytest.raises(errors.Unavailable):
        await client.add("servicegroup", {"servicegroupname": "a"})
    assert five.call_count == 1


async def test_adds_retry_when_the_connection_was_refused(
    mock: respx.MockRouter, client: NitroClient
) -> None:
    route = mock.post("/lbvserver").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(201)]
    )
    await client.add("lbvserver", {"name": "a"})
    assert route.call_count == 2


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>Error</html>", headers={"content-type": "text/html"}),
        httpx.Response(200, text='{"errorcode": 0, "lbvs'),
        httpx.Response(200, json=[1, 2]),
        httpx.Response(200, json={"lbvserver": "nope"}),
        httpx.Response(200, json={"lbvserver": [1]}),
        httpx.Response(599, text="<html>Netscaler specific error</html>"),
    ],
)
async def test_malformed_replies(
    mock: respx.MockRouter, client: NitroClient, response: httpx.Response
) -> None:
    mock.get("/lbvserver").mock(return_value=response)
    with pytest.raises(errors.MalformedResponse):
        await client.get("lbvserver")


async def test_empty_error_body_still_raises(mock: respx.MockRouter, client: NitroClient) -> None:
    mock.put("/lbvserver/a").mock(return_value=httpx.Response(404))
    with pytest.raises(errors.NitroError) as caught:
        await client.update("lbvserver", {"name": "a"})
    assert caught.value.status == 404


async def test_observer_sees_every_request(mock: respx.MockRouter) -> None:
    seen: list[tuple[str, str, str]] = []
    nitro = NitroClient(
        URL,
        Credentials("nsroot", SECRET),
        observer=lambda resource, method, outcome, _: seen.append((resource, method, outcome)),
    )
    mock.get("/lbvserver").mock(return_value=httpx.Response(200, json={}))
    mock.post("/lbvserver").mock(return_value=nitro_error(409, 273, "exists"))
    await nitro.get("lbvserver")
    with pytest.raises(errors.AlreadyExists):
        await nitro.add("lbvserver", {"name": "a"})
    assert seen == [
        ("login", "POST", "ok"),
        ("lbvserver", "GET", "ok"),
        ("lbvserver", "POST", "error"),
    ]
    assert nitro.requests[("lbvserver", "POST")] == 1
    await nitro.aclose()


async def test_logout_on_close(mock: respx.MockRouter) -> None:
    route = mock["logout"]
    mock.get("/lbvserver").mock(return_value=httpx.Response(200, json={}))
    nitro = NitroClient(URL, Credentials("nsroot", SECRET))
    await nitro.get("lbvserver")
    await nitro.aclose()
    assert json.loads(route.calls.last.request.content) == {"logout": {}}
    assert route.calls.last.request.headers["cookie"] == "NITRO_AUTH_TOKEN=tok1"


async def test_a_full_session_table_falls_back_to_stateless_requests(
    mock: respx.MockRouter,
) -> None:
    """Error 445 at login (sessions of killed processes fill the table): requests carry the
    credentials themselves until a later login can succeed."""
    login = mock["login"].mock(return_value=nitro_error(599, 445, "Session limit exceeded"))
    route = mock.get("/lbvserver").mock(return_value=httpx.Response(200, json={}))
    nitro = NitroClient(URL, Credentials("nsroot", SECRET), session_timeout=120)
    assert await nitro.get("lbvserver") == []
    assert await nitro.get("lbvserver") == []
    assert login.call_count == 1
    assert json.loads(login.calls.last.request.content)["login"]["timeout"] == 120
    sent = route.calls.last.request.headers
    assert (sent["x-nitro-user"], sent["x-nitro-pass"]) == ("nsroot", SECRET)
    assert "cookie" not in sent
    assert nitro.stateless_periods == 1
    await nitro.aclose()


async def test_args_values_are_encoded_once_on_the_wire(
    mock: respx.MockRouter, client: NitroClient
) -> None:
    """NITRO reads ``args``/``filter`` values URL-encoded once (``ip:fd00%3A%3A1``); an IPv6
    member's ``:`` must not reach the ADC as ``%253A``."""
    route = mock.delete(path__regex=r"/servicegroup_servicegroupmember_binding/sg1").mock(
        return_value=httpx.Response(200, json={"errorcode": 0})
    )
    await client.unbind(
        "servicegroup_servicegroupmember_binding", "sg1", {"ip": "fd00::1", "port": 80}
    )
    (call,) = route.calls
    assert call.request.url.query == b"args=ip:fd00%3A%3A1,port:80"


async def test_a_ca_file_becomes_an_ssl_context() -> None:
    """httpx 0.28 deprecates ``verify=<path>`` (a warning, an error under ``-W error``)."""
    settings = AdcSettings(url=URL, username="u", password=SECRET, ca_file=certifi.where())
    assert isinstance(tls_verify(settings), ssl.SSLContext)
    await nitro_client(settings).aclose()
    insecure = AdcSettings(url=URL, username="u", password=SECRET, insecure=True)
    assert tls_verify(insecure) is False
