"""Quorum: put and get rounds through the pure coordinators beside the dict work they wrap.

A *round* is one whole request against three in-memory replicas (dicts): build the coordinator,
start it, carry out every effect, feed every reply, until it closes. The floor is the storage
work alone — the same three dict writes (put) or reads (get) — so the ratio is the coordinator's
overhead per request. There is no Python peer: no package offers quorum coordination.
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import Case, Group
from dynamo_core import DVVSet
from dynamo_core.quorum import (
    Complete,
    Fetched,
    GetCoordinator,
    PutCoordinator,
    QuorumPolicy,
    SendFetch,
    SendRepair,
    SendStore,
    Stored,
)
from dynamo_core.testing import QuorumHarness

NODES = ["a", "b", "c"]
STORED = Stored()


class Blob:
    """An opaque state whose merge costs nothing, to time the coordinators alone."""

    __slots__ = ()

    def sync(self, other: Blob) -> Blob:
        return self

    def descends(self, other: Blob) -> bool:
        return True

    def to_dict(self) -> dict[str, Any]:
        return {}


def put_round(policy: QuorumPolicy, replicas: dict[str, dict[str, Any]], state: Any) -> None:
    put = PutCoordinator(policy, "k", NODES, state)
    for effect in put.start(0.0):
        if type(effect) is SendStore:
            replicas[effect.target]["k"] = effect.state
            put.receive(effect.target, STORED, 0.001)


def merging_put_round(
    policy: QuorumPolicy, replicas: dict[str, dict[str, Any]], before: Any, state: Any
) -> None:
    put = PutCoordinator(policy, "k", NODES, state)
    for effect in put.start(0.0):
        if type(effect) is SendStore:
            # Every replica holds `before` and merges the write (as if each round were a new key).
            replicas[effect.target]["k"] = before.sync(effect.state)
            put.receive(effect.target, STORED, 0.001)


def get_round(policy: QuorumPolicy, replicas: dict[str, dict[str, Any]]) -> object:
    get: GetCoordinator[Any] = GetCoordinator(policy, "k", NODES)
    result = None
    for effect in get.start(0.0):
        if type(effect) is SendFetch:
            for out in get.receive(effect.target, Fetched(replicas[effect.target].get("k")), 0.001):
                if type(out) is Complete:
                    result = out.result
                elif type(out) is SendRepair:  # pragma: no cover - replicas agree
                    replicas[out.target]["k"] = out.state
    return result


def groups(quick: bool) -> list[Group]:
    policy = QuorumPolicy(3, 2, 2)
    blob = Blob()
    replicas: dict[str, dict[str, Any]] = {node: {"k": blob} for node in NODES}
    floor: dict[str, dict[str, Any]] = {node: {"k": blob} for node in NODES}

    # A realistic state: a cart with two siblings, written again with the context it read.
    cart = DVVSet[bytes]().update(b"book", "a").update(b"pen", "b")
    write = DVVSet[bytes]().update(b"book, pen", "c", cart.context)
    carts: dict[str, dict[str, Any]] = {node: {"k": cart} for node in NODES}
    dvv_replicas: dict[str, dict[str, Any]] = {node: {"k": cart} for node in NODES}

    def floor_put() -> None:
        floor["a"]["k"] = blob
        floor["b"]["k"] = blob
        floor["c"]["k"] = blob

    def floor_get() -> object:
        return (floor["a"].get("k"), floor["b"].get("k"), floor["c"].get("k"))

    def floor_dvv_put() -> None:
        carts["a"]["k"] = cart.sync(write)
        carts["b"]["k"] = cart.sync(write)
        carts["c"]["k"] = cart.sync(write)

    def floor_dvv_get() -> object:
        a, b, c = dvv_replicas["a"]["k"], dvv_replicas["b"]["k"], dvv_replicas["c"]["k"]
        merged = a.sync(b).sync(c)
        return merged, a.descends(merged), b.descends(merged), c.descends(merged)

    harness: QuorumHarness[Any] = QuorumHarness(NODES, policy=policy, seed=1)

    def harness_put() -> None:
        harness.put("k", blob)
        harness.run()

    return [
        Group(
            "put round, n=3 w=2 (3 stores, 3 acks)",
            [
                Case("PutCoordinator", lambda: put_round(policy, replicas, blob)),
                Case("QuorumHarness.put (virtual network)", harness_put),
                Case("floor: 3 dict writes", floor_put),
            ],
            compare=("floor: 3 dict writes",),
        ),
        Group(
            "get round, n=3 r=2 (3 fetches, merge, repair check)",
            [
                Case("GetCoordinator", lambda: get_round(policy, replicas)),
                Case("floor: 3 dict reads", floor_get),
            ],
            compare=("floor: 3 dict reads",),
        ),
        Group(
            "put round with DVVSet replicas (2 siblings, each replica merges)",
            [
                Case(
                    "PutCoordinator + sync",
                    lambda: merging_put_round(policy, carts, cart, write),
                ),
                Case("floor: 3 syncs + 3 dict writes", floor_dvv_put),
            ],
            compare=("floor: 3 syncs + 3 dict writes",),
        ),
        Group(
            "get round with DVVSet replicas (3 answers merged, 3 descends checks)",
            [
                Case("GetCoordinator", lambda: get_round(policy, dvv_replicas)),
                Case("floor: 3 reads, 2 syncs, 3 descends", floor_dvv_get),
            ],
            compare=("floor: 3 reads, 2 syncs, 3 descends",),
        ),
    ]
