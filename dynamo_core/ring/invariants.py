"""The ring's internal invariants, asserted by the tests after every change."""

from __future__ import annotations

import hashlib
import math
from typing import Any

from dynamo_core import codec
from dynamo_core._claim import shares, walk_preference
from dynamo_core.ring.bounds import _EMPTY, _zone_key

# `ring` is a HashRing: not imported, as the ring's module imports this one.

__all__ = ["check_invariants"]


def check_invariants(ring: Any) -> None:
    """Assert every internal invariant (for tests; O(S * span + Q * replicas))."""
    assert set(ring._weights) == set(ring._zones) == set(ring._zone_keys)
    for node, weight in ring._weights.items():
        assert math.isfinite(weight)
        assert weight > 0
        assert ring._zone_keys[node] == _zone_key(node, ring._zones[node])
    if ring._fingerprint is not None:
        data = codec.dumps(ring.to_dict())
        assert ring._fingerprint == hashlib.blake2b(data, digest_size=8).hexdigest()
    if not ring._weights:
        assert ring._owners is _EMPTY
        assert ring._plists is _EMPTY
        assert ring._claim is None
        assert not ring._starts
        assert not ring._spans
        return
    owners = ring._owners
    assert type(owners) is list
    assert type(ring._plists) is list
    assert len(owners) == len(ring._plists) == len(ring._spans)
    assert set(owners) <= set(ring._weights)
    if ring._partitions is not None:
        _check_claim(ring)
    else:
        assert ring._claim is None
        assert ring._starts == sorted(set(ring._starts))
        fresh = type(ring)(ring._replicas, vnodes=ring._vnodes, hash_key=ring._hash_key)
        fresh._weights = ring._weights
        fresh._zones = ring._zones
        fresh._zone_keys = ring._zone_keys
        fresh._rebuild_vnodes()
        assert fresh._starts == ring._starts
        assert fresh._owners == owners
    _check_preference_lists(ring)


def _check_claim(ring: Any) -> None:
    claim = ring._claim
    assert claim is not None
    assert claim.owners is ring._owners
    assert claim.zones is ring._zone_keys
    assert ring._partitions is not None
    assert len(ring._owners) == ring._partitions
    counts = dict.fromkeys(ring._weights, 0)
    for node in ring._owners:
        counts[node] += 1
    assert claim.counts == counts
    targets = shares(ring._partitions, ring._weights)
    for node, count in counts.items():
        assert 1 <= targets[node].floor <= count <= targets[node].ceil, (node, count)
    assert not claim.changed
    assert claim.zoned == ring._zoned()
    assert (claim.node_window, claim.zone_window) == claim.windows()
    assert claim.violations == claim.count_violations()


def _check_preference_lists(ring: Any) -> None:
    owners = ring._owners
    zones, node_count, zone_count = ring._walk_args()
    want = min(ring._replicas, node_count)
    for start, (plist, span) in enumerate(zip(ring._plists, ring._spans, strict=True)):
        expected = walk_preference(
            owners,
            zones,
            start,
            replicas=ring._replicas,
            node_count=node_count,
            zone_count=zone_count,
        )
        assert (plist, span) == expected, (start, plist, span, expected)
        assert len(plist) == want
        assert len(set(plist)) == want
        assert plist[0] == owners[start]
        assert len({ring._zone_keys[node] for node in plist}) == min(want, zone_count)
