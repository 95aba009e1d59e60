"""What a join moves, and to whom: the guarantee the ring's concept page states and includes."""

from __future__ import annotations

from itertools import product

from hypothesis import given
from hypothesis import strategies as st

from dynamo_core import HashRing
from dynamo_core.strategies import rings

# --8<-- [start:law]
KEYS = [f"key-{i}" for i in range(256)]
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")


@given(
    rings(strategy="partitions", min_nodes=1),
    st.sampled_from((0.5, 1.0, 3.0)),
    st.none() | st.sampled_from(ZONES),
)
def test_what_a_join_moves_and_to_whom(ring: HashRing, weight: float, zone: str | None) -> None:
    before = ring.copy()
    ring.add_node("joiner", weight=weight, zone=zone)
    plain = all(r.weight(n) == 1.0 and r.zone(n) is None for r in (before, ring) for n in r.nodes)
    # While the ring has at most `replicas` members every node holds every key, so the claim
    # may lay the owners out afresh: no data moves. Past that, a partition moves to an existing
    # node only where spacing needs a repair chain: with weights or zones that can happen; with
    # equal weights and no zones, a ring that was spaced and stays spaceable never needs one.
    settled = len(before.nodes) > before.replicas and not before.spacing_violations()
    for key in KEYS:
        old, new = before.preference_list(key), ring.preference_list(key)
        if settled and plain and ring.spacing_possible():
            # Ownership moves only to the joiner: no other node gains a partition.
            assert new[0] in (old[0], "joiner")
        # Every replica a node gains takes the place of one another node loses (the list
        # only grows while the ring had fewer nodes than replicas).
        gained, lost = set(new) - set(old), set(old) - set(new)
        assert len(gained) == len(lost) + len(new) - len(old)
        # With equal weights and no zones, the joiner is the only node that gains anything.
        # With weights or zones, an existing node may gain a replica too.
        if plain:
            assert gained <= {"joiner"}


# --8<-- [end:law]


def _existing_node_gains(zoned: bool, weighted: bool) -> bool:
    """Whether some small ring's join gives an existing node a new replica."""
    for nodes, partitions, joiner_zone in product(range(2, 6), (8, 16), ZONES):
        ring = HashRing(2, partitions=partitions)
        for i in range(nodes):
            ring.add_node(
                f"n{i + 1}",
                zone=ZONES[i % 3] if zoned else None,
                weight=(1.0, 2.0)[i % 2] if weighted else 1.0,
            )
        before = ring.copy()
        ring.add_node("joiner", zone=joiner_zone if zoned else None)
        if any(t.target != "joiner" for t in before.transfers_to(ring)):
            return True
    return False


def test_with_zones_a_join_can_give_an_existing_node_a_new_replica() -> None:
    assert _existing_node_gains(zoned=True, weighted=False)
    assert not _existing_node_gains(zoned=False, weighted=False)
