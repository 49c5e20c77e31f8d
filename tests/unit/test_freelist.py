"""The interval free list behaves exactly like a plain set of integers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lbctl.ipam.freelist import FreeList

operations = st.lists(st.tuples(st.sampled_from(["take", "give", "lowest"]), st.integers(0, 40)))


@given(operations)
def test_matches_a_set_model(ops: list[tuple[str, int]]) -> None:
    """Any sequence of take/give/lowest agrees with a set of the same integers."""
    free = FreeList([(0, 10), (20, 30)])
    model = set(range(11)) | set(range(20, 31))
    for op, value in ops:
        if op == "take":
            assert free.take(value) == (value in model)
            model.discard(value)
        elif op == "give":
            assert free.give(value) == (value not in model)
            model.add(value)
        else:
            assert free.lowest() == (min(model) if model else None)
        assert free.free == len(model)
        assert all((v in free) == (v in model) for v in range(-1, 42))


def test_huge_ranges_are_never_enumerated() -> None:
    """A /64-sized interval is counted exactly and handed out from the bottom."""
    free = FreeList([(2**64, 2**65 - 1)])
    assert free.free == 2**64
    assert free.take(2**64)
    assert free.lowest() == 2**64 + 1
    assert free.free == 2**64 - 1
