"""SetMap behaves as a dict of non-empty sets, whatever the order of adds and discards."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lbctl.setmap import SetMap

operations = st.lists(
    st.tuples(st.sampled_from(["add", "discard", "pop"]), st.integers(0, 3), st.integers(0, 3)),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_it_answers_as_a_dict_of_sets(ops: list[tuple[str, int, int]]) -> None:
    index: SetMap[int, int] = SetMap()
    model: dict[int, set[int]] = {}
    for op, key, value in ops:
        if op == "add":
            index.add(key, value)
            model.setdefault(key, set()).add(value)
        elif op == "discard":
            emptied = index.discard(key, value)
            had = key in model
            model.get(key, set()).discard(value)
            if not model.get(key, True):
                del model[key]
            assert emptied == (had and key not in model)
        else:
            assert index.pop(key) == model.pop(key, set())
        assert sorted(index) == sorted(model)
        assert len(index) == len(model)
        for k in range(4):
            assert index.get(k) == model.get(k, set())
            assert (k in index) == (k in model)
    index.clear()
    assert len(index) == 0
    assert index.get(0) == frozenset()


def test_a_lone_value_is_held_bare() -> None:
    index: SetMap[str, str] = SetMap()
    index.add("10.0.0.1", "ns/a")
    assert index._map == {"10.0.0.1": "ns/a"}
    index.add("10.0.0.1", "ns/b")
    assert index._map == {"10.0.0.1": {"ns/a", "ns/b"}}
    index.discard("10.0.0.1", "ns/a")
    assert index._map == {"10.0.0.1": "ns/b"}
