"""The Services waiting for something a release or a pool change may give them."""

from __future__ import annotations

import itertools


class Waiting(set[str]):
    """A set of keys woken (requeued) whenever an address is freed or the pools change.

    A reconcile that ends satisfied must not drop a wait that the same reconcile recorded
    further down (e.g. it keeps its old address while the one it asks for is held), and must
    not drop the key before it is done (a release during its I/O would wake nobody).  So it
    takes a ``mark`` when it starts and ``settle`` s at the end: the key goes only if nothing
    added it since the mark."""

    def __init__(self) -> None:
        super().__init__()
        self._added: dict[str, int] = {}
        self._clock = itertools.count(1)

    def add(self, key: str) -> None:
        super().add(key)
        self._added[key] = next(self._clock)

    def discard(self, key: object) -> None:
        super().discard(key)
        if isinstance(key, str):
            self._added.pop(key, None)

    def mark(self) -> int:
        """A point in time to ``settle`` against."""
        return next(self._clock)

    def settle(self, key: str, mark: int) -> None:
        """The key's reconcile is satisfied: stop waking it, unless it was added since ``mark``."""
        if self._added.get(key, 0) < mark:
            self.discard(key)
