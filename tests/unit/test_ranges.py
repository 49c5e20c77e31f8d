"""VIP_RANGE parsing: every accepted form, and every rejected one with its message."""

from __future__ import annotations

import ipaddress

import pytest

from lbctl.ipam.ranges import RangeError, parse_vip_range


def addresses(text: str) -> dict[str, list[tuple[str, str]]]:
    return {
        pool.name: [
            (str(ipaddress.ip_address(r.first)), str(ipaddress.ip_address(r.last)))
            for r in pool.ranges
        ]
        for pool in parse_vip_range(text)
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param('["10.99.98.0/24"]', {"default": [("10.99.98.1", "10.99.98.254")]}, id="cidr"),
        pytest.param(
            '["10.0.0.0/31"]', {"default": [("10.0.0.0", "10.0.0.1")]}, id="slash31-keeps-both"
        ),
        pytest.param(
            '["10.0.0.8/30"]', {"default": [("10.0.0.9", "10.0.0.10")]}, id="slash30-skips-ends"
        ),
        pytest.param(
            '["10.0.0.10 - 10.0.0.20"]', {"default": [("10.0.0.10", "10.0.0.20")]}, id="dash"
        ),
        pytest.param('["10.0.0.7"]', {"default": [("10.0.0.7", "10.0.0.7")]}, id="single"),
        pytest.param(
            '[["172.18.222.185"]]',
            {"default": [("172.18.222.185", "172.18.222.185")]},
            id="nested-single",
        ),
        pytest.param(
            '["2001:db8::/126"]',
            {"default": [("2001:db8::1", "2001:db8::3")]},
            id="ipv6-skips-subnet-router-anycast",
        ),
        pytest.param(
            '["2001:db8::/127"]', {"default": [("2001:db8::", "2001:db8::1")]}, id="ipv6-127-whole"
        ),
        pytest.param(
            '[{"Prod": ["10.1.2.0/24"]}, {"Dev": ["10.1.4.0/24", "10.1.5.0/24"]}, ["10.1.6.0/24"]]',
            {
                "default": [("10.1.6.1", "10.1.6.254")],
                "Prod": [("10.1.2.1", "10.1.2.254")],
                "Dev": [("10.1.4.1", "10.1.4.254"), ("10.1.5.1", "10.1.5.254")],
            },
            id="named-ranges",
        ),
    ],
)
def test_accepted_forms(text: str, expected: dict[str, list[tuple[str, str]]]) -> None:
    """Each documented form parses into the expected pools and inclusive bounds."""
    assert addresses(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[10.0.0.0/24", "not valid JSON", id="bad-json"),
        pytest.param('{"a": 1}', "must be a JSON list", id="not-a-list"),
        pytest.param('["10.0.0.300/24"]', "'10.0.0.300/24' is not a valid CIDR", id="bad-cidr"),
        pytest.param('["10.0.0.1/24"]', "'10.0.0.1/24' is not a valid CIDR", id="host-bits-set"),
        pytest.param('["10.0.0.x"]', "'10.0.0.x' is not a valid IP address", id="bad-address"),
        pytest.param('["10.0.0.9 - 10.0.0.1"]', "is reversed", id="reversed-range"),
        pytest.param('["10.0.0.1 - 2001:db8::1"]', "mixes IPv4 and IPv6", id="mixed-family-range"),
        pytest.param('[""]', "empty string", id="empty-string"),
        pytest.param("[42]", "42 is neither a range", id="number"),
        pytest.param('[{"Dev": []}]', "pool 'Dev' is empty", id="empty-pool"),
        pytest.param('[{"Dev": "10.0.0.0/24"}]', "must be a list of ranges", id="pool-not-list"),
        pytest.param(
            '[{"Dev": [1]}]', "1 in pool 'Dev' is not a string", id="pool-item-not-string"
        ),
        pytest.param('[{"": ["10.0.0.0/24"]}]', "pool name '' is empty", id="empty-name"),
        pytest.param(
            '[{"Dev": ["10.0.0.0/24"]}, {"Dev": ["10.0.1.0/24"]}]',
            "'Dev' is used twice",
            id="dup-name",
        ),
        pytest.param('[{"default": ["10.0.0.0/24"]}]', "is reserved", id="reserved-name"),
        pytest.param(
            '[{"a": ["10.0.0.0/24"], "b": ["10.0.1.0/24"]}]', "one-key object", id="two-keys"
        ),
        pytest.param('["10.0.0.0/24", "10.0.0.128/25"]', "overlaps", id="overlap-within"),
        pytest.param(
            '[{"A": ["10.0.0.0/24"]}, {"B": ["10.0.0.5 - 10.0.0.9"]}]',
            "'10.0.0.5 - 10.0.0.9' (pool 'B') overlaps '10.0.0.0/24' (pool 'A')",
            id="overlap-across",
        ),
    ],
)
def test_rejected_forms_name_the_offending_element(text: str, message: str) -> None:
    """A bad VIP_RANGE is refused with a message that points at what is wrong."""
    with pytest.raises(RangeError, match=None) as caught:
        parse_vip_range(text)
    assert message in str(caught.value)


@pytest.mark.parametrize("text", ["", "  \n", "[]"])
def test_an_empty_vip_range_defines_no_pools(text: str) -> None:
    """VipPool objects then define every pool."""
    assert parse_vip_range(text) == ()
