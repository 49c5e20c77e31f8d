"""Periodic passes while leading: the VipPools' usage counts and the ADC drift pass."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from lbctl.nitro.errors import NitroError
from lbctl.reconcile.adc import AdcSync
from lbctl.reconcile.adc_health import AdcHealth
from lbctl.reconcile.adc_worker import ADC_KIND

if TYPE_CHECKING:
    from lbctl.app import Runtime

log = structlog.get_logger(__name__)


POOL_STATUS_PERIOD = 2.0
"""Seconds between checks of the VipPools' usage counts (one write per changed pool)."""


async def pool_status_passes(runtime: Runtime) -> None:
    """Keep each VipPool's counts current without a write per allocation: every
    ``POOL_STATUS_PERIOD`` the pools whose status differs are reconciled."""
    while True:
        await asyncio.sleep(POOL_STATUS_PERIOD)
        for name in runtime.pool_status.stale():
            runtime.controller.enqueue("VipPool", name)


async def read_adc(adc: AdcSync) -> set[str]:
    """Read lbctl's ADC objects; the Services owning some (an unreachable ADC: none yet)."""
    try:
        return await adc.refresh()
    except NitroError as err:
        log.warning("cannot read the NetScaler; will retry", error=str(err))
        return set()


async def drift_passes(runtime: Runtime, adc: AdcSync, period: float) -> None:
    """Every ``period``: re-read the ADC and reconcile every Service and every owner found,
    which recreates what was removed by hand, corrects what was changed and deletes the
    objects of Services that no longer exist."""
    while True:
        await asyncio.sleep(period)
        owners = await read_adc(adc)
        keys = set(runtime.services.cached_keys())
        log.info("ADC drift pass", services=len(keys), owners=len(owners))
        for key in owners:
            runtime.controller.enqueue("Service", key)  # e.g. gone: its objects are removed
        if runtime.adc_controller is not None:
            for key in keys:
                runtime.adc_controller.enqueue(ADC_KIND, key)


async def save_passes(adc: AdcSync, interval: float) -> None:
    """Every ``interval``: save the NetScaler's running configuration if lbctl changed it (a
    burst of changes costs one save; a failed save is tried again next time)."""
    while True:
        await asyncio.sleep(interval)
        try:
            if await adc.save():
                log.info("NetScaler configuration saved")
        except NitroError as err:
            log.warning("cannot save the NetScaler's configuration; will retry", error=str(err))


async def health_passes(health: AdcHealth, period: float) -> None:
    """Every ``period``: read the state of every lb vserver (a count, then a GET per 1,000)."""
    while True:
        await asyncio.sleep(period)
        try:
            await health.refresh()
        except NitroError as err:
            log.info("cannot read the lb vservers' state; will retry", error=str(err))
