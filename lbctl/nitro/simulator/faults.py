"""Injected faults: slow, failing or vanishing NITRO requests, replayable from a seed.

Clients must survive an ADC that is slow, answers 503 while busy, or drops connections during a
failover; these knobs make each of those happen on demand, at run time.
"""

from __future__ import annotations

import random
from typing import Any, Literal

Outcome = Literal["ok", "error", "drop"]
FIELDS = ("latency", "error_rate", "drop_rate", "outage", "seed")


class Faults:
    """Mutable at run time; one draw of ``rng`` per request decides its fate."""

    def __init__(self, seed: int | None = None) -> None:
        self.latency = 0.0
        self.error_rate = 0.0
        self.drop_rate = 0.0
        self.outage = False
        self._seed = seed
        self.rng = random.Random(seed)

    @property
    def seed(self) -> int | None:
        return self._seed

    @seed.setter
    def seed(self, value: int | None) -> None:
        """Setting a seed restarts the random sequence, so a fault pattern replays exactly."""
        self._seed = value
        self.rng = random.Random(value)

    def decide(self) -> Outcome:
        if self.outage:
            return "drop"
        if self.drop_rate > 0 and self.rng.random() < self.drop_rate:
            return "drop"
        if self.error_rate > 0 and self.rng.random() < self.error_rate:
            return "error"
        return "ok"

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}

    def update(self, changes: Any) -> None:
        """Apply a JSON object of changes, all or nothing; ``ValueError`` names a bad one."""
        if not isinstance(changes, dict):
            raise ValueError("expected a JSON object")
        staged: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in FIELDS:
                raise ValueError(f"unknown fault {name!r}")
            if name == "outage":
                if not isinstance(value, bool):
                    raise ValueError("outage must be true or false")
            elif name == "seed":
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise ValueError("seed must be an integer or null")
            else:
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ValueError(f"{name} must be a non-negative number")
                if name != "latency" and value > 1:
                    raise ValueError(f"{name} must be between 0 and 1")
                value = float(value)
            staged[name] = value
        for name, value in staged.items():
            setattr(self, name, value)
