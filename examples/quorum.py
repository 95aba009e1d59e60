"""Quorum coordination: drive the pure put/get cores by hand, then through the test harness.

Run it: ``python examples/quorum.py``.
"""

from __future__ import annotations

from collections import deque

from dynamo_core import (
    Complete,
    ConsistencyLevel,
    DVVSet,
    Fetched,
    GetCoordinator,
    GetResult,
    PutCoordinator,
    QuorumPolicy,
    SendFetch,
    SendRepair,
    SendStore,
    Stored,
    Unavailable,
)
from dynamo_core.quorum import Key
from dynamo_core.testing import QuorumHarness

Cart = DVVSet[bytes]


def by_hand() -> None:
    """A driver is a loop that carries out effects; here replicas are dicts and time is fixed."""
    policy = QuorumPolicy.from_levels(3, read=ConsistencyLevel.QUORUM, write=ConsistencyLevel.ALL)
    replicas: dict[str, dict[Key, Cart]] = {"a": {}, "b": {}, "c": {}}
    state = DVVSet[bytes]().update(b"1 book", "a")  # the coordinating node's write

    put = PutCoordinator(policy, "cart:alice", ["a", "b", "c"], state)
    pending = deque(put.start(now=0.0))
    # The one timer channel: a real driver (re)arms its timer from deadline() after each input.
    print(f"put: on_timer due at t={put.deadline()}")
    while pending:
        match pending.popleft():
            case SendStore(target=node, key=key, state=new):
                old = replicas[node].get(key)
                replicas[node][key] = new if old is None else old.sync(new)
                pending.extend(put.receive(node, Stored(), now=0.001))  # the replica's reply
            case Complete() as done:
                print("put:", done.unwrap(), "| state:", put.state.value)

    # b missed a later write: its copy is stale, and the read repairs it.
    seen = replicas["a"]["cart:alice"]
    newer = seen.update(b"1 book, 1 pen", "a", seen.context)
    replicas["a"]["cart:alice"] = replicas["c"]["cart:alice"] = newer
    get: GetCoordinator[Cart] = GetCoordinator(policy, "cart:alice", ["a", "b", "c"])
    for effect in get.start(now=1.0):
        if isinstance(effect, SendFetch):
            answer = Fetched(replicas[effect.target].get(effect.key))
            for out in get.receive(effect.target, answer, now=1.001):
                match out:
                    case Complete(result=GetResult(state=found, answered=who)):
                        assert found is not None
                        print(f"get: {found.values} from {list(who)}")
                    case SendRepair(target=node, state=merged):
                        print(f"read repair -> {node}: {merged.values}")
                        replicas[node]["cart:alice"] = merged


def harness() -> None:
    """The same cores over a simulated network: delays, a crashed node, hints, siblings."""
    cluster: QuorumHarness[Cart] = QuorumHarness(
        ["a", "b", "c", "d", "e"], policy=QuorumPolicy(3, 2, 2), seed=42
    )
    # b has crashed and nobody knows yet: its replica times out and d stands in for it.
    cluster.script("b", silent=True)
    put = cluster.start_put("cart:bob", DVVSet[bytes]().update(b"2 mugs", "a"), w=3)
    cluster.run_until_done(put)
    print("sloppy put:", put.result, "| asked:", put.asked)
    print("hints on d:", cluster.hints_on("d"))

    # Two clients read the same version and write concurrently: both survive as siblings.
    read = cluster.get("cart:bob")
    assert isinstance(read, GetResult)
    assert read.state is not None
    context = read.state.context
    cluster.put("cart:bob", DVVSet[bytes]().update(b"2 mugs, 1 pot", "c", context))
    cluster.put("cart:bob", DVVSet[bytes]().update(b"3 mugs", "d", context))
    cluster.run()
    read = cluster.get("cart:bob")
    assert isinstance(read, GetResult)
    assert read.state is not None
    print("siblings after concurrent writes:", read.state.values)

    # With every replica but one gone, a write at ALL fails fast with Unavailable.
    for node in ("a", "c", "d", "e"):
        cluster.suspect(node)
    result = cluster.put("cart:bob", DVVSet[bytes]().update(b"x", "b"), w=ConsistencyLevel.ALL)
    assert isinstance(result, Unavailable)
    print("unavailable:", result, "| required:", result.required)


if __name__ == "__main__":
    by_hand()
    harness()
