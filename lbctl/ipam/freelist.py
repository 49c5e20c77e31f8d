"""A set of free integers kept as sorted, disjoint, inclusive intervals.

Pools can be as large as an IPv6 /64, so addresses are never enumerated: taking the lowest
free address, taking or returning one address are binary searches over the interval bounds.
"""

from __future__ import annotations

from bisect import bisect_right


class FreeList:
    def __init__(self, intervals: list[tuple[int, int]]) -> None:
        merged: list[tuple[int, int]] = []
        for first, last in sorted(intervals):
            if merged and first <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], last))
            else:
                merged.append((first, last))
        self._firsts = [first for first, _ in merged]
        self._lasts = [last for _, last in merged]
        self.free = sum(last - first + 1 for first, last in merged)

    def lowest(self) -> int | None:
        return self._firsts[0] if self._firsts else None

    def __contains__(self, value: int) -> bool:
        index = bisect_right(self._firsts, value) - 1
        return index >= 0 and value <= self._lasts[index]

    def take(self, value: int) -> bool:
        """Remove ``value``; False if it was not free."""
        index = bisect_right(self._firsts, value) - 1
        if index < 0 or value > self._lasts[index]:
            return False
        first, last = self._firsts[index], self._lasts[index]
        if first == last:
            del self._firsts[index], self._lasts[index]
        elif value == first:
            self._firsts[index] = value + 1
        elif value == last:
            self._lasts[index] = value - 1
        else:
            self._lasts[index] = value - 1
            self._firsts.insert(index + 1, value + 1)
            self._lasts.insert(index + 1, last)
        self.free -= 1
        return True

    def give(self, value: int) -> bool:
        """Return ``value`` to the set; False if it was already free."""
        index = bisect_right(self._firsts, value) - 1
        if index >= 0 and value <= self._lasts[index]:
            return False
        joins_left = index >= 0 and self._lasts[index] == value - 1
        right = index + 1
        joins_right = right < len(self._firsts) and self._firsts[right] == value + 1
        if joins_left and joins_right:
            self._lasts[index] = self._lasts[right]
            del self._firsts[right], self._lasts[right]
        elif joins_left:
            self._lasts[index] = value
        elif joins_right:
            self._firsts[right] = value
        else:
            self._firsts.insert(right, value)
            self._lasts.insert(right, value)
        self.free += 1
        return True
