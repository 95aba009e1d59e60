"""The `ReplicaState` law suite of `dynamo_core.testing`, run on every state the library ships
or tests with, and shown to catch a state that breaks a law."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Self

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_core import codec
from dynamo_core.strategies import dvv_replicas, vector_clocks, versioned
from dynamo_core.testing import DotSet, ReplicaStateLaws, check_replica_state_laws
from dynamo_core.vclock import Ordering, Versioned, reconcile

from gset import GSet


def _maximal(versions: Iterable[Versioned[bytes]]) -> tuple[Versioned[bytes], ...]:
    return tuple(reconcile(versions))


@attrs.frozen
class Siblings:
    """A replica state over `Versioned` values: the maximal versions, as `reconcile` keeps them.

    `sync` reconciles the union; a state descends from another when each of the other's
    versions is one of its own or strictly older than one of its own.
    """

    versions: tuple[Versioned[bytes], ...] = attrs.field(converter=_maximal)

    def sync(self, other: Siblings) -> Siblings:
        return Siblings(self.versions + other.versions)

    def descends(self, other: Siblings) -> bool:
        return all(
            v in self.versions
            or any(w.clock.compare(v.clock) is Ordering.AFTER for w in self.versions)
            for v in other.versions
        )

    def to_dict(self) -> dict[str, Any]:
        return codec.envelope("siblings", {"versions": [v.to_dict() for v in self.versions]})

    @classmethod
    def from_dict(cls, data: object) -> Self:
        obj = codec.open_envelope(data, "siblings", required=("versions",))
        items = codec.as_list(obj["versions"], "siblings.versions", max_items=100)
        return cls(tuple(Versioned.from_dict(item) for item in items))


clocks = vector_clocks(nodes=st.sampled_from("abc"), max_entries=3)
siblings = st.lists(versioned(st.binary(max_size=2), clocks), max_size=3).map(Siblings)
dot_sets = st.frozensets(st.tuples(st.sampled_from("abc"), st.integers(1, 3))).map(DotSet)
gsets = st.frozensets(st.sampled_from("abcd")).map(GSet)


class TestDVVSetLaws(ReplicaStateLaws):
    replicas = dvv_replicas(3)  # type: ignore[assignment]


class TestVersionedSiblingsLaws(ReplicaStateLaws):
    replicas = st.tuples(siblings, siblings, siblings)


class TestDotSetLaws(ReplicaStateLaws):
    replicas = st.tuples(dot_sets, dot_sets, dot_sets)


class TestGSetLaws(ReplicaStateLaws):
    replicas = st.tuples(gsets, gsets, gsets)


@attrs.frozen
class LastWriterWins:
    """Breaks commutativity: `sync` keeps the argument, whatever it holds."""

    value: int = 0

    def sync(self, other: LastWriterWins) -> LastWriterWins:
        return other

    def descends(self, other: LastWriterWins) -> bool:
        return self == other

    def to_dict(self) -> dict[str, Any]:
        return codec.envelope("lww", {"value": self.value})


@attrs.frozen
class Forgetful(GSet):
    """Lawful merges, but `descends` ignores what the other holds (claims it has everything)."""

    def sync(self, other: GSet) -> Forgetful:
        return Forgetful(self.items | other.items)

    def descends(self, other: GSet) -> bool:
        return True


def test_the_suite_catches_a_non_commutative_sync() -> None:
    with pytest.raises(AssertionError, match="commutative"):
        check_replica_state_laws(LastWriterWins(1), LastWriterWins(2), LastWriterWins(3))


def test_the_suite_catches_a_descends_that_disagrees_with_sync() -> None:
    with pytest.raises(AssertionError, match=r"a\.descends\(b\) must hold exactly when"):
        check_replica_state_laws(
            Forgetful(frozenset("a")), Forgetful(frozenset("b")), Forgetful(frozenset())
        )


def test_the_suite_catches_a_lossy_decoder() -> None:
    with pytest.raises(AssertionError, match="from_dict"):
        check_replica_state_laws(
            GSet(frozenset("a")), GSet(frozenset("b")), GSet(), decode=lambda _: GSet()
        )


def test_the_suite_refuses_an_object_that_is_not_a_replica_state() -> None:
    with pytest.raises(AssertionError, match="ReplicaState"):
        check_replica_state_laws(1, 2, 3)


@given(st.tuples(siblings, siblings))
def test_siblings_keep_concurrent_versions(pair: tuple[Siblings, Siblings]) -> None:
    a, b = pair
    merged = a.sync(b)
    for v in a.versions + b.versions:
        assert v in merged.versions or any(
            w.clock.compare(v.clock) is Ordering.AFTER for w in merged.versions
        )
