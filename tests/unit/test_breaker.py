"""The NetScaler circuit breaker: open after consecutive no-answers, one probe per cool-down,
closed by any answer; and the client failing fast while it is open (pinned with respx)."""

from __future__ import annotations

import httpx
import pytest
import respx

from lbctl.nitro.breaker import CircuitBreaker, CircuitOpen
from lbctl.nitro.client import Credentials, NitroClient
from lbctl.nitro.errors import AuthFailed, Operation, Unavailable
from tests.unit.nitro_wire import SECRET, URL, no_sleep

OP = Operation("get", "lbvserver")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_the_threshold_and_probes_once_per_cool_down() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=2, cooldown=1.0, max_cooldown=3.0, clock=clock)
    breaker.failure()
    breaker.check(OP)  # one failure: still closed
    breaker.failure()
    with pytest.raises(CircuitOpen, match=r"does not answer \(circuit open\)"):
        breaker.check(OP)
    clock.now = 1.0
    breaker.check(OP)  # the probe
    with pytest.raises(CircuitOpen):
        breaker.check(OP)  # only one probe at a time
    breaker.failure()  # the probe failed: twice as long
    clock.now = 2.5
    with pytest.raises(CircuitOpen):
        breaker.check(OP)
    clock.now = 3.0
    breaker.check(OP)
    breaker.abandon()  # a cancelled probe may be sent again
    breaker.check(OP)
    breaker.success()
    assert not breaker.is_open
    breaker.check(OP)
    breaker.check(OP)
    assert breaker.opened == 1


async def test_a_black_holed_netscaler_fails_fast_once_the_breaker_opens() -> None:
    """Every attempt times out: after the threshold no request reaches the wire, and an
    answer (even a NITRO error) closes the breaker again."""
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown=5.0, clock=clock)
    nitro = NitroClient(URL, Credentials("nsroot", SECRET), sleep=no_sleep, retries=1,
                        breaker=breaker)  # fmt: skip
    with respx.mock(base_url=f"{URL}/nitro/v1/config", assert_all_called=False) as mock:
        route = mock.post("/login").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(Unavailable, match="ConnectError"):
            await nitro.get("lbvserver")
        assert route.call_count == 2
        with pytest.raises(CircuitOpen):
            await nitro.get("lbvserver")
        assert route.call_count == 3, "the third no-answer opened it"
        for _ in range(5):
            with pytest.raises(CircuitOpen):
                await nitro.get("lbvserver")
        assert route.call_count == 3, "nothing sent while open"
        clock.now = 5.0
        route.mock(return_value=httpx.Response(401, json={"errorcode": 354, "message": "x"}))
        with pytest.raises(AuthFailed):  # an answer, if not a welcome one
            await nitro.get("lbvserver")
        assert not breaker.is_open, "an answer closes it"
    await nitro.aclose()
