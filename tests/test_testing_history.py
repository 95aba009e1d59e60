"""SetHistory classifies every element: lost, recovered, unexpected."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_core.testing import SetHistory


def test_classification() -> None:
    history: SetHistory[str, str] = SetHistory()
    acked = [history.invoke("cart", item) for item in ("a", "b", "c")]
    for op in acked:
        history.ok(op)
    history.invoke("cart", "d")  # unknown outcome
    history.invoke("other", "e")  # unknown outcome, absent
    result = history.check({"cart": {"a", "c", "d", "zz"}})
    assert result.lost == (("cart", "b"),)
    assert result.recovered == (("cart", "d"),)
    assert result.unexpected == (("cart", "zz"),)
    assert not result.ok
    assert result.summary() == {
        "attempted": 5,
        "acknowledged": 3,
        "lost": 1,
        "recovered": 1,
        "unexpected": 1,
    }
    assert history.must_contain() == {"cart": {"a", "b", "c"}}


def test_bad_op_id() -> None:
    history: SetHistory[str, str] = SetHistory()
    with pytest.raises(ValueError, match="op"):
        history.ok(0)


@given(
    st.lists(st.tuples(st.sampled_from("xyz"), st.integers(0, 30), st.booleans()), max_size=40),
    st.data(),
)
def test_a_final_read_between_must_and_may_is_ok(
    ops: list[tuple[str, int, bool]], data: st.DataObject
) -> None:
    history: SetHistory[str, int] = SetHistory()
    for key, element, acked in ops:
        op = history.invoke(key, element)
        if acked:
            history.ok(op)
    must = history.must_contain()
    may: dict[str, set[int]] = {}
    for key, element, _ in ops:
        may.setdefault(key, set()).add(element)
    final = {
        key: must.get(key, set()) | {e for e in elements if data.draw(st.booleans())}
        for key, elements in may.items()
    }
    result = history.check(final)
    assert result.ok
    assert result.acknowledged == len({(k, e) for k, e, a in ops if a})
    # dropping any acknowledged element is caught
    if must:
        key = sorted(must)[0]
        element = sorted(must[key])[0]
        final[key] = final[key] - {element}
        assert history.check(final).lost == ((key, element),)
