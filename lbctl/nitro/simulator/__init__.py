"""A stateful NITRO simulator: stands in for a NetScaler ADC in tests, demos and by users."""

from lbctl.nitro.simulator.faults import Faults
from lbctl.nitro.simulator.server import RequestRecord, Simulator

__all__ = ["Faults", "RequestRecord", "Simulator"]
