"""A circuit breaker for the NetScaler: fail fast while it does not answer.

A black-holed NetScaler (connections accepted, never answered) costs every request its full
timeout and retries; with the breaker, a few consecutive connection failures open it, and
from then on requests fail at once with :class:`CircuitOpen` until a cool-down has passed.
Then one request goes through as a probe: its success closes the breaker, its failure opens
it again for twice as long (up to ``max_cooldown``).  Only failures to get any answer count:
a NITRO error reply proves the NetScaler is there.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from lbctl.nitro.errors import Operation, Unavailable


class CircuitOpen(Unavailable):
    """Not sent: the NetScaler has not answered lately (see ``CircuitBreaker``)."""


class CircuitBreaker:
    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 2.0,
        max_cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``threshold`` consecutive connection failures open it; ``cooldown`` seconds (doubled
        after each failed probe, at most ``max_cooldown``) pass before the next probe."""
        self._threshold = threshold
        self._base = cooldown
        self._max = max_cooldown
        self._clock = clock
        self._failures = 0
        self._cooldown = cooldown
        self._opened_at: float | None = None
        self._probing = False
        self.opened = 0
        """How many times it opened, for tests and logs."""
        self.on_close: Callable[[], None] = lambda: None
        """Called when an answer closes it after it was open (the NetScaler is back)."""

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def check(self, operation: Operation) -> None:
        """Raise :class:`CircuitOpen` unless a request may go now (closed, or the one probe
        of a cool-down that has passed)."""
        if self._opened_at is None:
            return
        waited = self._clock() - self._opened_at
        if waited >= self._cooldown and not self._probing:
            self._probing = True
            return
        # One message however long it lasts: Events aggregate by message, conditions are
        # rewritten when theirs changes.
        raise CircuitOpen(operation, "the NetScaler does not answer (circuit open)")

    def success(self) -> None:
        """An answer arrived (any HTTP status): close."""
        was_open = self._opened_at is not None
        self._failures = 0
        self._opened_at = None
        self._probing = False
        self._cooldown = self._base
        if was_open:
            self.on_close()

    def abandon(self) -> None:
        """A request ended without an answer or a failure (cancelled): a probe it was may be
        sent again."""
        self._probing = False

    def failure(self) -> None:
        """No answer (connection refused, reset or timed out)."""
        if self._probing:
            self._probing = False
            self._opened_at = self._clock()
            self._cooldown = min(self._max, self._cooldown * 2)
            return
        self._failures += 1
        if self._failures >= self._threshold and self._opened_at is None:
            self._opened_at = self._clock()
            self.opened += 1
