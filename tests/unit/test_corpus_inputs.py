"""Bad input corpus, pure part: hostile VIP_RANGE values, smart annotations and NITRO replies.

Each case states the one outcome expected of it: ``VIP_RANGE`` exits 2 with a message naming
the offending element (or, for odd but legal forms, the exact pools parsed); an annotation is
an ``AnnotationError`` naming the attribute; a NITRO reply is the lbctl error class raised, or
a retry that then succeeds.  Cases already pinned by test_ranges.py, test_cli.py and
test_nitro_client.py are not repeated here.
"""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from lbctl.adc.annotations import (
    LBVSERVER_ANNOTATION,
    MONITOR_ANNOTATION,
    AnnotationError,
    per_port,
)
from lbctl.adc.diff import diff
from lbctl.adc.plan import Node, plan_service
from lbctl.adc.state import BINDING_RESOURCE, OBJECT_KINDS, read_listing
from lbctl.nitro import errors
from lbctl.nitro.client import Credentials, NitroClient
from tests.unit.nitro_wire import URL, no_sleep

# -- 1. VIP_RANGE --------------------------------------------------------------------------

HUGE_WITH_DUPLICATE = json.dumps(
    [f"10.{i // 256}.{i % 256}.1" for i in range(5000)] + ["10.19.135.1"]
)


@pytest.mark.parametrize(
    ("vip_range", "message"),
    [
        pytest.param("null", "must be a JSON list, got 'null'", id="null"),
        pytest.param("{}", "must be a JSON list, got '{}'", id="empty-object"),
        pytest.param('"10.0.0.0/24"', "got '\"10.0.0.0/24\"'", id="bare-string"),
        pytest.param("[[[]]]", "[] in pool 'default' is not a string", id="nested-empty"),
        pytest.param(
            '[["10.0.0.1", ["10.0.0.2"]]]',
            "['10.0.0.2'] in pool 'default' is not a string",
            id="nested-garbage",
        ),
        pytest.param("[[]]", "pool 'default' is empty", id="empty-default-list"),
        pytest.param("[true]", "True is neither a range", id="boolean"),
        pytest.param("[NaN]", "nan is neither a range", id="nan"),
        pytest.param("[{}]", "{} is neither a range", id="zero-key-object"),
        pytest.param(
            '[{"A": null}]', "pool 'A' must be a list of ranges, got None", id="null-pool"
        ),
        pytest.param('[{" ": ["10.0.0.0/24"]}]', "pool name ' ' is empty", id="blank-pool-name"),
        pytest.param('["\\u00a0\\t"]', "an empty string is not a range", id="unicode-whitespace"),
        pytest.param(
            '["\\uff11\\uff10.0.0.1"]',
            "'\uff11\uff10.0.0.1' is not a valid IP address",
            id="fullwidth-digits",
        ),
        pytest.param(
            '["10.0.0.0/\\u0662\\u0664"]',
            "'10.0.0.0/\u0662\u0664' is not a valid CIDR",
            id="arabic-indic-prefix",
        ),
        pytest.param('["10.0.0.1-"]', "'10.0.0.1-' is not a valid IP address", id="open-dash"),
        pytest.param('["- 10.0.0.1"]', "'- 10.0.0.1' is not a valid IP address", id="dash-first"),
        pytest.param(
            '["10.0.0.1 - 10.0.0.5 - 10.0.0.9"]',
            "'10.0.0.1 - 10.0.0.5 - 10.0.0.9' is not a valid IP address",
            id="double-dash",
        ),
        pytest.param(
            '["2001:db8::1 - 10.0.0.9"]',
            "'2001:db8::1 - 10.0.0.9' mixes IPv4 and IPv6",
            id="mixed-family-v6-first",
        ),
        pytest.param(
            '["fe80::1%eth0/64"]', "'fe80::1%eth0/64' has an IPv6 zone id", id="zone-id-cidr"
        ),
        pytest.param('["fe80::%eth0/64"]', "'fe80::%eth0/64' has an IPv6 zone id", id="zone-net"),
        pytest.param(
            '["fe80::1%eth0 - fe80::9%eth0"]', "has an IPv6 zone id", id="zone-id-dash-range"
        ),
        pytest.param('["10.0.0.01"]', "'10.0.0.01' is not a valid IP address", id="leading-0"),
        pytest.param(
            '["::ffff:10.0.0.0/120"]', "holds IPv4-mapped IPv6 addresses", id="v4-mapped-cidr"
        ),
        pytest.param('["::ffff:10.0.0.1"]', "holds IPv4-mapped IPv6", id="v4-mapped-single"),
        pytest.param('["::/0"]', "holds IPv4-mapped IPv6", id="ipv6-slash-0-holds-mapped"),
        pytest.param('["10.0.0.0/+24"]', "'10.0.0.0/+24' is not a valid CIDR", id="plus-prefix"),
        pytest.param('["10.0.0.0/24/8"]', "'10.0.0.0/24/8' is not a valid CIDR", id="two-slashes"),
        pytest.param(
            '[{"A": ["10.0.0.0/24"], "A": ["10.0.1.0/24"]}]',
            "pool name 'A' is used twice",
            id="duplicate-key-in-one-object",
        ),
        pytest.param(
            '[{"A": ["10.0.0.0/24"]}, ["10.0.0.0/24"]]',
            "'10.0.0.0/24' (pool 'default') overlaps '10.0.0.0/24' (pool 'A')",
            id="same-cidr-default-and-named",
        ),
        pytest.param("[" * 5000, "VIP_RANGE is nested too deeply", id="deep-nesting"),
        pytest.param(
            HUGE_WITH_DUPLICATE,
            "'10.19.135.1' (pool 'default') overlaps '10.19.135.1' (pool 'default')",
            id="huge-list-with-duplicate",
        ),
        pytest.param(
            '["\\ufeff10.0.0.1"]', "'\\ufeff10.0.0.1' is not a valid IP address", id="bom-inside"
        ),
    ],
)
def test_bad_vip_range_exits_2_naming_the_element(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    vip_range: str,
    message: str,
) -> None:
    from lbctl.cli import settings_from

    monkeypatch.setenv("VIP_RANGE", vip_range)
    with pytest.raises(SystemExit) as caught:
        settings_from(["--kubeconfig", "/nonexistent"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "lbctl: error: VIP_RANGE" in err
    assert message in err


@pytest.mark.parametrize(
    ("vip_range", "pools"),
    [
        pytest.param('["0.0.0.0/0"]', {"default": [(1, 2**32 - 2)]}, id="ipv4-slash-0"),
        pytest.param('["8000::/1"]', {"default": [(2**127 + 1, 2**128 - 1)]}, id="ipv6-slash-1"),
        pytest.param('[" 10.0.0.7 "]', {"default": [(0x0A000007, 0x0A000007)]}, id="padded"),
        pytest.param(
            '[{"1": ["10.0.0.0/31"]}]', {"1": [(0x0A000000, 0x0A000001)]}, id="numeric-pool-name"
        ),
    ],
)
def test_odd_but_legal_vip_range_is_parsed_exactly(
    monkeypatch: pytest.MonkeyPatch, vip_range: str, pools: dict[str, list[tuple[int, int]]]
) -> None:
    """Huge or odd-looking forms that are valid start up with exactly these bounds."""
    from lbctl.cli import settings_from

    monkeypatch.setenv("VIP_RANGE", vip_range)
    settings, _ = settings_from(["--kubeconfig", "/nonexistent"])
    assert {p.name: [(r.first, r.last) for r in p.ranges] for p in settings.pools} == pools


# -- 2. smart annotations (pure part; the cluster part is in test_corpus_cluster.py) -------


@pytest.mark.parametrize(
    ("annotation", "value", "message"),
    [
        pytest.param(
            LBVSERVER_ANNOTATION, "[" * 3000, "is nested too deeply", id="deeply-nested-array"
        ),
        pytest.param(
            LBVSERVER_ANNOTATION, '{"a":' * 3000, "is nested too deeply", id="deeply-nested-object"
        ),
        pytest.param(
            MONITOR_ANNOTATION,
            '{"respcode": ["\\uff12\\uff10\\uff10"]}',
            "must be HTTP status codes",
            id="fullwidth-respcode",
        ),
        pytest.param(LBVSERVER_ANNOTATION, '{"timeout": NaN}', "timeout=nan", id="nan"),
        pytest.param(LBVSERVER_ANNOTATION, '{"timeout": 1e400}', "timeout=inf", id="infinity"),
        pytest.param(LBVSERVER_ANNOTATION, '{"timeout": 10.0}', "timeout=10.0", id="float"),
        pytest.param(
            LBVSERVER_ANNOTATION, '{"80-TCP": {}}', "attribute '80-TCP' is not", id="upper-key"
        ),
        pytest.param(LBVSERVER_ANNOTATION, "null", "must be a JSON object", id="null"),
        pytest.param(
            LBVSERVER_ANNOTATION,
            '{"lbmethod": "ROUNDROBIN", "lbmethod": "RANDOM"}',
            "lbmethod='RANDOM' must be one of",
            id="duplicate-key-last-wins-and-is-checked",
        ),
    ],
)
def test_hostile_smart_annotation_is_an_annotation_error(
    annotation: str, value: str, message: str
) -> None:
    with pytest.raises(AnnotationError) as caught:
        per_port({annotation: value}, annotation)
    assert message in str(caught.value)
    assert str(caught.value).startswith(annotation)


# -- 5. NITRO replies ----------------------------------------------------------------------

SECRET = "c0rpus-pa55"


HTML = {"content-type": "text/html"}


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(
            httpx.Response(201, json={"errorcode": 0}, headers={"Set-Cookie": "SESSID=abc"}),
            errors.MalformedResponse,
            id="cookie-without-token-and-no-sessionid",
        ),
        pytest.param(
            httpx.Response(
                201,
                json={"errorcode": 0, "sessionid": ""},
                headers={"Set-Cookie": "NITRO_AUTH_TOKEN=; path=/"},
            ),
            errors.MalformedResponse,
            id="empty-token-and-empty-sessionid",
        ),
        pytest.param(
            httpx.Response(200, json={"errorcode": 0, "message": "Done"}),
            errors.MalformedResponse,
            id="login-without-sessionid",
        ),
        pytest.param(
            httpx.Response(201, text="<html>Welcome</html>", headers=HTML),
            errors.MalformedResponse,
            id="login-html",
        ),
        pytest.param(
            httpx.Response(502, text="<html>Bad Gateway</html>", headers=HTML),
            errors.Unavailable,
            id="login-502-html",
        ),
        pytest.param(httpx.Response(401), errors.AuthFailed, id="login-401-empty"),
        pytest.param(
            httpx.Response(201, json=["sessionid", "x"]), errors.MalformedResponse, id="login-list"
        ),
    ],
)
async def test_broken_login_reply(
    mock: respx.MockRouter, reply: httpx.Response, expected: type[errors.NitroError]
) -> None:
    mock["login"].mock(return_value=reply)
    route = mock.get("/lbvserver").mock(return_value=httpx.Response(200, json={}))
    nitro = NitroClient(URL, Credentials("nsroot", SECRET), sleep=no_sleep)
    with pytest.raises(expected) as caught:
        await nitro.get("lbvserver")
    assert type(caught.value) is expected
    assert mock["login"].call_count == 1  # a POST: never retried
    assert route.call_count == 0  # nothing sent without a session
    assert SECRET not in str(caught.value)
    await nitro.aclose()


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(
            httpx.Response(
                200,
                json={"errorcode": 278, "message": "Invalid argument [port]", "severity": "ERROR"},
            ),
            errors.InvalidArgument,
            id="200-with-errorcode",
        ),
        pytest.param(
            httpx.Response(201, json={"errorcode": "273", "message": "Resource already exists"}),
            errors.AlreadyExists,
            id="201-with-string-errorcode",
        ),
        pytest.param(
            httpx.Response(599, json={"errorcode": "1097", "message": "Invalid name"}),
            errors.InvalidArgument,
            id="string-errorcode",
        ),
        pytest.param(
            httpx.Response(599, json={"errorcode": None, "message": None}),
            errors.NitroError,
            id="null-errorcode-and-message",
        ),
        pytest.param(httpx.Response(500), errors.Unavailable, id="empty-500"),
        pytest.param(httpx.Response(599, text="   "), errors.NitroError, id="blank-599"),
        pytest.param(
            httpx.Response(503, text="<html>Service Unavailable</html>", headers=HTML),
            errors.Unavailable,
            id="html-503-add-not-retried",
        ),
        pytest.param(
            httpx.Response(201, text="null"), errors.MalformedResponse, id="json-null-body"
        ),
    ],
)
async def test_broken_reply_to_an_add(
    mock: respx.MockRouter,
    client: NitroClient,
    reply: httpx.Response,
    expected: type[errors.NitroError],
) -> None:
    route = mock.post("/lbvserver").mock(return_value=reply)
    with pytest.raises(expected) as caught:
        await client.add("lbvserver", {"name": "lbctl-a"})
    assert type(caught.value) is expected
    assert route.call_count == 1
    assert "lbctl-a" in str(caught.value)


async def test_200_with_a_warning_is_success(mock: respx.MockRouter, client: NitroClient) -> None:
    """NetScaler reports warnings with severity WARNING: those are done, not failed."""
    body = {"errorcode": 1067, "message": "Feature(s) not enabled [LB]", "severity": "WARNING"}
    route = mock.post("/lbvserver").mock(return_value=httpx.Response(201, json=body))
    await client.add("lbvserver", {"name": "lbctl-a"})
    assert route.call_count == 1


async def test_session_expiry_with_a_string_errorcode_logs_in_again(
    mock: respx.MockRouter, client: NitroClient
) -> None:
    replies = [
        httpx.Response(401, json={"errorcode": "444", "message": "Session expired"}),
        httpx.Response(200, json={"lbvserver": [{"name": "a"}]}),
    ]
    route = mock.get("/lbvserver").mock(side_effect=replies)
    assert await client.get("lbvserver") == [{"name": "a"}]
    assert (route.call_count, mock["login"].call_count) == (2, 2)


@pytest.mark.parametrize(
    "method", [pytest.param("GET", id="get"), pytest.param("PUT", id="put"),
               pytest.param("DELETE", id="delete")],
)  # fmt: skip
async def test_idempotent_calls_retry_html_502_and_503_then_succeed(
    mock: respx.MockRouter, client: NitroClient, method: str
) -> None:
    route = mock.route(method=method, path__regex=r".*/lbvserver(/lbctl-a)?$").mock(
        side_effect=[
            httpx.Response(502, text="<html><h1>502 Bad Gateway</h1></html>", headers=HTML),
            httpx.Response(503, text="<html>maintenance</html>", headers=HTML),
            httpx.Response(200, json={"errorcode": 0, "lbvserver": [{"name": "lbctl-a"}]}),
        ]
    )
    if method == "GET":
        assert await client.get("lbvserver") == [{"name": "lbctl-a"}]
    elif method == "PUT":
        await client.update("lbvserver", {"name": "lbctl-a", "lbmethod": "ROUNDROBIN"})
    else:
        await client.delete("lbvserver", "lbctl-a")
    assert route.call_count == 3


async def test_html_503_beyond_the_retries_is_unavailable(
    mock: respx.MockRouter, client: NitroClient
) -> None:
    route = mock.get("/lbvserver").mock(
        return_value=httpx.Response(503, text="<html>down</html>", headers=HTML)
    )
    with pytest.raises(errors.Unavailable) as caught:
        await client.get("lbvserver")
    assert route.call_count == 3
    assert caught.value.status == 503
    assert "text/html" in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"lbvserver": "x"}, id="string-for-list"),
        pytest.param({"lbvserver": 7}, id="number-for-list"),
        pytest.param({"lbvserver": [{"name": "a"}, "b"]}, id="mixed-list"),
        pytest.param({"lbvserver": [None]}, id="null-item"),
    ],
)
async def test_wrong_types_in_a_listing(
    mock: respx.MockRouter, client: NitroClient, body: dict[str, object]
) -> None:
    mock.get("/lbvserver").mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(errors.MalformedResponse) as caught:
        await client.get("lbvserver")
    assert "'lbvserver' is not a list of objects" in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"lbvserver": "x"}, id="string"),
        pytest.param({"lbvserver": [{"__count": "many"}]}, id="non-numeric"),
        pytest.param({"lbvserver": []}, id="empty-list"),
    ],
)
async def test_malformed_count(
    mock: respx.MockRouter, client: NitroClient, body: dict[str, object]
) -> None:
    mock.get("/lbvserver").mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(errors.MalformedResponse):
        await client.count("lbvserver")


async def test_numbers_as_strings_in_a_listing_need_no_write() -> None:
    """NITRO's "80" for 80 must not look like drift to the diff."""
    service = {
        "metadata": {"namespace": "ns", "name": "web", "annotations": {}},
        "spec": {"type": "LoadBalancer",
                 "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]},
    }  # fmt: skip
    plan = plan_service("lbctl", service, "10.0.0.1", [Node("n", "10.1.0.1", True, False)])
    rows: dict[str, list[dict[str, object]]] = {r: [] for r in OBJECT_KINDS}
    rows.update({r: [] for r in BINDING_RESOURCE.values()})
    for key, attrs in plan.objects.items():
        text = {k: str(v) for k, v in attrs.items()}
        if key.kind == "lbvserver":
            rows["lbvserver"].append({"name": key.name, **text})
        elif key.kind == "servicegroup":
            rows["servicegroup"].append({"servicegroupname": key.name, **text})
        elif key.kind == "member":
            rows[BINDING_RESOURCE["member"]].append(
                {"servicegroupname": key.name, "ip": key.sub[0], "port": key.sub[1]}
            )
        elif key.kind == "vserver_binding":
            rows[BINDING_RESOURCE["vserver_binding"]].append(
                {"name": key.name, "servicegroupname": key.sub[0]}
            )
    listing = read_listing("lbctl", rows)
    assert any(isinstance(v.get("port"), str) for v in listing.state().values())
    assert diff(plan.objects, listing.of("ns/web")) == []


async def test_bulk_207_with_mixed_and_malformed_items(
    mock: respx.MockRouter, client: NitroClient
) -> None:
    body = {
        "errorcode": 1243,
        "message": "Bulk operation failed",
        "severity": "ERROR",
        "response": [
            {"errorcode": "0", "message": "Done"},
            "garbage",
            {"errorcode": "258", "message": "No such resource"},
            {"errorcode": 1097, "message": "Invalid name"},
        ],
    }
    mock.post("/servicegroup_servicegroupmember_binding").mock(
        return_value=httpx.Response(207, json=body)
    )
    items = [{"servicegroupname": "sg", "ip": f"10.0.0.{i}", "port": 80} for i in range(5)]
    results = await client.bulk("bind", "servicegroup_servicegroupmember_binding", items)
    assert results[0] is None
    assert [type(r) for r in results[1:]] == [
        errors.MalformedResponse,
        errors.NoSuchResource,
        errors.InvalidArgument,
        errors.Unavailable,  # the ADC answered for 4 of 5: the last one is retried
    ]


async def test_bulk_207_with_more_results_than_items_and_no_list(
    mock: respx.MockRouter, client: NitroClient
) -> None:
    route = mock.post("/servicegroup_servicegroupmember_binding")
    items = [{"servicegroupname": "sg", "ip": "10.0.0.1", "port": 80}]
    route.mock(return_value=httpx.Response(207, json={
        "errorcode": 1243, "response": [{"errorcode": 0}, {"errorcode": 273}]}))  # fmt: skip
    assert await client.bulk("bind", "servicegroup_servicegroupmember_binding", items) == [None]
    route.mock(return_value=httpx.Response(207, json={"errorcode": 1243, "response": "oops"}))
    results = await client.bulk("bind", "servicegroup_servicegroupmember_binding", items)
    assert [type(r) for r in results] == [errors.Unavailable]
