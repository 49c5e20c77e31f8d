"""apiserver answers map to lbctl's own errors at one boundary."""

from __future__ import annotations

import aiohttp
import pytest

from lbctl.kube import errors


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, b'{"kind":"Status","reason":"NotFound","message":"x not found"}', errors.NotFound),
        (409, b'{"reason":"AlreadyExists","message":"exists"}', errors.AlreadyExists),
        (409, b'{"reason":"Conflict","message":"modified"}', errors.Conflict),
        (410, b'{"reason":"Expired","message":"too old"}', errors.Gone),
        (422, b'{"reason":"Invalid","message":"bad"}', errors.Invalid),
        (403, b'{"reason":"Forbidden","message":"no"}', errors.Forbidden),
        (500, b"<html>oops</html>", errors.KubeStatusError),
    ],
)
def test_status_maps_to_its_class(status: int, body: bytes, expected: type[Exception]) -> None:
    """Each status (and AlreadyExists within 409) has its own class; odd bodies don't crash."""
    error = errors.status_error(status, body)
    assert type(error) is expected
    assert error.status == status


def test_transport_errors_do_not_leak_through_the_hierarchy() -> None:
    """lbctl's errors are not aiohttp's, so callers never need to know the transport."""
    assert not issubclass(errors.KubeError, aiohttp.ClientError)
