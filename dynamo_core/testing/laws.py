"""The laws every [`ReplicaState`][dynamo_core.interfaces.ReplicaState] must satisfy, as tests.

Subclass [`ReplicaStateLaws`][dynamo_core.testing.ReplicaStateLaws] in a pytest module and set
`replicas` to a hypothesis strategy of three of your states::

    from hypothesis import strategies as st

    from dynamo_core.testing import ReplicaStateLaws
    from myapp.crdt import GCounter

    class TestGCounterLaws(ReplicaStateLaws):
        counter = st.builds(GCounter, st.dictionaries(st.sampled_from("abc"), st.integers(0, 9)))
        replicas = st.tuples(counter, counter, counter)

pytest then runs one property test per law. The quorum coordinators merge answers with `sync`
and decide read repair with `descends`, and the hint store merges a later write into a kept
hint: each relies on these laws, and a state that breaks one loses or resurrects writes in ways
that depend on message order. Needs hypothesis (``pip install dynamo-core[hypothesis]``).

[`check_replica_state_laws`][dynamo_core.testing.check_replica_state_laws] checks the same laws
on three given states, for use in your own tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from hypothesis import given
from hypothesis import strategies as st

from dynamo_core import codec
from dynamo_core.interfaces import ReplicaState

__all__ = ["ReplicaStateLaws", "check_replica_state_laws"]


def check_replica_state_laws(
    a: Any, b: Any, c: Any, *, decode: Callable[[object], Any] | None = None
) -> None:
    """Assert every `ReplicaState` law on `a`, `b` and `c` (states of one type).

    The laws: the state has the protocol's methods; `sync` is commutative, associative and
    idempotent; ``a.sync(b)`` descends from both `a` and `b` (an upper bound); `descends` is
    reflexive and transitive; ``a.descends(b)`` exactly when ``a.sync(b) == a`` (sync absorbs
    what a state already includes); and a state survives `to_dict`, the canonical codec and
    `decode` (default: the class's ``from_dict``) unchanged.

    Raises:
        AssertionError: a law does not hold; the message names it.
    """
    for name, state in (("a", a), ("b", b), ("c", c)):
        assert isinstance(state, ReplicaState), f"{name} lacks ReplicaState's methods"
    ab = a.sync(b)
    assert ab == b.sync(a), "sync must be commutative: a.sync(b) == b.sync(a)"
    assert ab.sync(c) == a.sync(b.sync(c)), "sync must be associative"
    assert a.sync(a) == a, "sync must be idempotent: a.sync(a) == a"
    assert ab.descends(a), "a.sync(b) must descend from a (an upper bound)"
    assert ab.descends(b), "a.sync(b) must descend from b (an upper bound)"
    assert a.descends(a), "descends must be reflexive"
    assert a.descends(b) == (ab == a), "a.descends(b) must hold exactly when a.sync(b) == a"
    abc = ab.sync(c)
    assert abc.descends(a), "descends must be transitive: a.sync(b).sync(c) descends from a"
    if a.descends(b) and b.descends(c):
        assert a.descends(c), "descends must be transitive"
    decoder = decode if decode is not None else type(a).from_dict
    for name, state in (("a", a), ("a.sync(b)", ab)):
        wire = codec.loads(codec.dumps(state.to_dict()))
        assert decoder(wire) == state, f"{name} must survive to_dict and from_dict unchanged"


class ReplicaStateLaws:
    """The `ReplicaState` laws as a pytest test class: subclass it and set `replicas`.

    Attributes:
        replicas: A hypothesis strategy of three states of one type (a tuple). Draw states
            that share history — replicas of one key that saw overlapping writes, such as
            [`dvv_replicas(3)`][dynamo_core.strategies.dvv_replicas] — not only independent
            ones (``st.tuples(s, s, s)``): laws such as absorption only bite when one state
            descends from another. The suite also checks the laws on merges of the drawn states.
        decode: How to decode a state's ``to_dict()`` (default: the class's ``from_dict``).
    """

    replicas: ClassVar[st.SearchStrategy[tuple[Any, Any, Any]]]
    decode: ClassVar[Callable[[object], Any] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Fresh tests per subclass: hypothesis refuses one test run from several classes.
        super().__init_subclass__(**kwargs)
        cls.test_replica_state_laws = _laws_test(merged=False)  # type: ignore[attr-defined]
        cls.test_laws_hold_between_a_state_and_its_merges = _laws_test(merged=True)  # type: ignore[attr-defined]


def _laws_test(*, merged: bool) -> Callable[[ReplicaStateLaws], None]:
    @given(data=st.data())
    def test(self: ReplicaStateLaws, data: st.DataObject) -> None:
        a, b, c = data.draw(type(self).replicas, "replicas")
        if merged:  # independent draws rarely descend from one another; merges always do
            a, b, c = a.sync(b), a, a.sync(b).sync(c)
        check_replica_state_laws(a, b, c, decode=type(self).decode)

    return test
