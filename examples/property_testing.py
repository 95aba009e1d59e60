"""Property-test your own merge function and storage backend with dynamo_core's strategies.

A shopping cart maps items to quantities; concurrent writes leave siblings, and the application
merges them. The laws a sibling merge must obey are checked on sibling-rich `DVVSet` states
drawn by `dynamo_core.strategies`; a broken merge (one that adds quantities up) is caught and
shrunk to a one-item counterexample. Then a storage backend with a planted bug meets the
`Storage` conformance model and its failure names the operation and both results.

Run it: ``python examples/property_testing.py`` (needs hypothesis: the ``hypothesis`` extra).
Its last line is the findings as JSON. The functions named ``test_*`` also run under pytest.

# requires: hypothesis, pytest (pip)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from dynamo_core import DVVSet, MemoryStorage
from dynamo_core.strategies import concurrent_dvv_pairs, dvv_sets
from dynamo_core.testing import storage_state_machine

# --8<-- [start:merge]
Cart = tuple[tuple[str, int], ...]  # sorted (item, quantity) pairs: hashable, comparable

carts = st.dictionaries(
    st.sampled_from(["apple", "book", "pen"]), st.integers(1, 5), max_size=3
).map(lambda d: tuple(sorted(d.items())))


def merge(siblings: list[Cart]) -> Cart:
    """The cart after concurrent edits: every item, at the largest quantity any sibling has."""
    merged: dict[str, int] = {}
    for cart in siblings:
        for item, quantity in cart:
            merged[item] = max(merged.get(item, 0), quantity)
    return tuple(sorted(merged.items()))


def merge_adding_up(siblings: list[Cart]) -> Cart:
    """A plausible bug: add the quantities up, so an edit seen twice counts twice."""
    merged: dict[str, int] = {}
    for cart in siblings:
        for item, quantity in cart:
            merged[item] = merged.get(item, 0) + quantity
    return tuple(sorted(merged.items()))


# --8<-- [end:merge]


# --8<-- [start:laws]
def merge_laws_hold(resolve: Callable[[list[Cart]], Cart], state: DVVSet[Cart]) -> bool:
    """The laws of a sibling merge, on one replica's state."""
    siblings = state.values
    once = resolve(siblings)
    return (
        resolve(siblings[::-1]) == once  # the order of siblings does not matter
        and resolve(siblings + siblings) == once  # nor does seeing a sibling twice
        and resolve([once]) == once  # a merged cart is its own merge
        and all(dict(once).get(item, 0) >= q for cart in siblings for item, q in cart)
    )


# min_siblings=2: every state has a real conflict to merge, and shrinks fast.
@given(dvv_sets(carts, min_siblings=2))
def test_merge_laws(state: DVVSet[Cart]) -> None:
    assert merge_laws_hold(merge, state)


@given(concurrent_dvv_pairs(carts))
def test_merging_two_replicas_keeps_both_writes(pair: tuple[DVVSet[Cart], DVVSet[Cart]]) -> None:
    a, b = pair
    merged = dict(merge(a.sync(b).values))
    for cart in a.values + b.values:
        assert all(merged[item] >= quantity for item, quantity in cart)


# --8<-- [end:laws]


# --8<-- [start:storage]
class InclusiveEndStorage(MemoryStorage):
    """A backend with a planted bug: its scan also yields the key equal to `end`."""

    def scan(
        self, start: bytes | None = None, end: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield the pairs with ``start <= key <= end``: one too many."""
        pairs = list(super().scan(start, None))
        return iter([(key, value) for key, value in pairs if end is None or key <= end])


def storage_failure() -> str:
    """Run the conformance model against the broken backend; return the first line it fails with."""
    machine = storage_state_machine(lambda directory: InclusiveEndStorage())
    try:
        run_state_machine_as_test(machine, settings=STORAGE)
    except AssertionError as failure:
        return str(failure).splitlines()[0]
    return "no failure"


# --8<-- [end:storage]

QUIET = settings(database=None, derandomize=True, max_examples=200, print_blob=False, deadline=None)
# The explain phase traces every line (slow before Python 3.12) and would only point at the
# suite's own check: skip it for the state machine, and keep its runs short.
STORAGE = settings(QUIET, stateful_step_count=20, phases=[Phase.generate, Phase.shrink])


def main() -> None:
    # The correct merge passes (run the tests as plain functions, as pytest would).
    settings(QUIET)(test_merge_laws)()
    settings(QUIET)(test_merging_two_replicas_keeps_both_writes)()
    print("merge: every law holds on 200 sibling-rich states and 200 concurrent pairs")

    # The broken one fails; `find` returns the shrunk counterexample.
    # --8<-- [start:find]
    state = find(
        dvv_sets(carts, min_siblings=2),
        lambda s: not merge_laws_hold(merge_adding_up, s),
        settings=QUIET,
    )
    # --8<-- [end:find]
    siblings = state.values
    print("merge_adding_up: fails on", repr(state))
    print("  siblings", siblings, "merge once", merge_adding_up(siblings))
    print("  merge of the siblings seen twice", merge_adding_up(siblings + siblings))

    failure = storage_failure()
    print("InclusiveEndStorage:", failure)
    print(
        json.dumps(
            {
                "merge_laws": "hold",
                "broken_merge_siblings": [dict(cart) for cart in siblings],
                "broken_merge_once": dict(merge_adding_up(siblings)),
                "broken_merge_twice": dict(merge_adding_up(siblings + siblings)),
                "storage_failure": failure,
            }
        )
    )


if __name__ == "__main__":
    main()
