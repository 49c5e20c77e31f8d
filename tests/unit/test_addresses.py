"""Addresses are stored and compared in one canonical spelling; others are refused by name."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest

from lbctl.ipam.allocator import Allocator
from lbctl.ipam.ranges import parse_vip_range
from lbctl.model import AddressError, ServiceView, VipView, parse_address, parse_ip, parse_shown
from lbctl.reconcile.claims import FRONTEND_IP_ANNOTATION, Request, Unsatisfied, request_of
from lbctl.reconcile.pools import Pools

RANGES = parse_vip_range('["10.0.0.0/24", "2001:db8::/120"]')
POOLS = Pools(Allocator(RANGES), RANGES)


def service(
    annotations: dict[str, str] | None = None,
    status_ip: str | None = None,
    families: list[str] | None = None,
    **spec: Any,
) -> ServiceView:
    ingress = [{"ip": status_ip}] if status_ip else []
    return ServiceView.from_raw(
        {
            "metadata": {"namespace": "ns", "name": "web", "annotations": annotations or {}},
            "spec": {"type": "LoadBalancer", "ipFamilies": families or ["IPv6"], **spec},
            "status": {"loadBalancer": {"ingress": ingress}},
        }
    )


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("2001:0db8::0001", "2001:db8::1"),
        (" 10.0.0.1 ", "10.0.0.1"),
        ("fd00:90:0:0:0:0:0:0", "fd00:90::"),
    ],
)
def test_every_spelling_of_an_address_is_one_canonical_address(text: str, canonical: str) -> None:
    assert str(parse_address(text)) == canonical
    assert parse_address(text) == ipaddress.ip_address(canonical)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2001:db8::1%x", "'2001:db8::1%x' has an IPv6 zone id (%x)"),
        ("fe80::1%eth0", "'fe80::1%eth0' has an IPv6 zone id (%eth0)"),
        ("::ffff:10.0.0.1", "'::ffff:10.0.0.1' is an IPv4-mapped IPv6 address; write it as 10.0"),
        ("::ffff:a00:1", "is an IPv4-mapped IPv6 address; write it as 10.0.0.1"),
        ("10.0.0.01", "'10.0.0.01' is not an IP address"),
        ("10.0.0.1/32", "'10.0.0.1/32' is not an IP address"),
    ],
)
def test_spellings_that_would_book_an_address_twice_are_refused(text: str, message: str) -> None:
    with pytest.raises(AddressError, match=re.escape(message)):
        parse_address(text)
    assert parse_ip(text) is None


def test_what_another_service_shows_is_read_as_the_apiserver_reads_it() -> None:
    """A request with leading zeros or in IPv4-mapped form is refused, but a status the
    apiserver accepted so shows that address (netutils.ParseIPSloppy), and is compared as it."""
    ten = ipaddress.ip_address("10.0.0.1")
    many = "0" * 5000 + "10.0.0.1"  # more digits than int() takes
    for text in ("10.0.0.01", "10.0.0.0001", "010.000.000.001", "::ffff:10.0.0.1", many):
        assert parse_shown(text) == ten, text
    for bad in ("10.0.0.256", "10.0.0.\u0661", "2001:db8::1%x", "", None, "x"):
        assert parse_shown(bad) is None, bad
    shown = service({"com.citrix.vip": "10.0.0.01"})
    assert shown.held_addresses() == [ten]


@pytest.mark.parametrize("text", ["2001:db8::1%x", "::ffff:10.0.0.1"])
def test_a_requested_address_with_a_zone_or_mapped_form_is_an_invalid_request(text: str) -> None:
    for view, source in (
        (service({FRONTEND_IP_ANNOTATION: text}), FRONTEND_IP_ANNOTATION),
        (service(loadBalancerIP=text), "spec.loadBalancerIP"),
    ):
        found = request_of(view, POOLS)
        assert isinstance(found, Unsatisfied), source
        assert (found.reason, found.condition) == ("AllocationFailed", "InvalidRequest")
        assert found.message.startswith(f"{source} {text!r} ")
        assert not found.waits_for_release


def test_a_request_in_another_spelling_is_the_same_canonical_address() -> None:
    found = request_of(service({FRONTEND_IP_ANNOTATION: "2001:DB8::0:1"}), POOLS)
    assert found == Request(None, ipaddress.ip_address("2001:db8::1"), ("default",))


def test_shown_addresses_with_a_zone_are_not_held() -> None:
    """A pre-set annotation or status with a zone id is not an address the Service holds."""
    view = service({"com.citrix.vip": "2001:db8::1%x"}, status_ip="2001:db8::1%eth0")
    assert view.held_addresses() == []
    assert view.ingress_addresses() == []
    canonical = service({"com.citrix.vip": "2001:DB8::1"}, status_ip="2001:db8:0::1")
    assert canonical.held_addresses() == [ipaddress.ip_address("2001:db8::1")]


def test_a_vip_recording_a_zone_id_records_no_address() -> None:
    raw = {
        "metadata": {"namespace": "ns", "name": "web"},
        "spec": {"ipaddress": "2001:db8::1%x", "secondaryIpaddress": "::ffff:10.0.0.1"},
    }
    vip = VipView.from_raw(raw)
    assert (vip.address, vip.secondary) == (None, None)
