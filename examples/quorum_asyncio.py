"""A minimal asyncio driver for the sans-I/O quorum coordinators.

The coordinators hold all the protocol logic; the driver only moves bytes and time: it starts a
coordinator, carries out each effect, feeds replies back with the loop's clock, and calls
``on_timer`` when ``deadline()`` passes. Replicas here are coroutines with random delays; one of
them is too slow, so a fallback takes its place. Run it: ``python examples/quorum_asyncio.py``.
"""

from __future__ import annotations

import asyncio
import random
from typing import assert_never

from dynamo_core import (
    Complete,
    CoordinatorState,
    DVVSet,
    Fetched,
    GetCoordinator,
    GetResult,
    PutCoordinator,
    QuorumPolicy,
    Refused,
    SendFetch,
    SendRepair,
    SendStore,
    Stored,
)
from dynamo_core.quorum import GetEffect, Key, PutEffect

Cart = DVVSet[bytes]
Reply = Stored | Refused | Fetched[Cart]

REPLICAS: dict[str, dict[Key, Cart]] = {node: {} for node in "abcde"}
SLOW = {"b"}  # b answers after the replica timeout
rng = random.Random(7)


async def replica(
    node: str, request: SendStore[Cart] | SendFetch, inbox: asyncio.Queue[tuple[str, Reply]]
) -> None:
    """One replica: wait a network delay, apply the request, reply."""
    await asyncio.sleep(0.08 if node in SLOW else rng.uniform(0.001, 0.01))
    store = REPLICAS[node]
    if isinstance(request, SendStore):
        old = store.get(request.key)
        store[request.key] = request.state if old is None else old.sync(request.state)
        await inbox.put((node, Stored()))
    else:
        await inbox.put((node, Fetched(store.get(request.key))))


async def drive(coordinator: PutCoordinator[Cart] | GetCoordinator[Cart]) -> None:
    """Run one coordinator to the end: the whole driver is this loop and one `match`."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[str, Reply]] = asyncio.Queue()
    tasks: set[asyncio.Task[None]] = set()

    def dispatch(effects: list[PutEffect[Cart]] | list[GetEffect[Cart]]) -> None:
        for effect in effects:
            match effect:
                case SendStore() | SendFetch():
                    task = asyncio.create_task(replica(effect.target, effect, inbox))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                case SendRepair(target=node, key=key, state=merged):
                    REPLICAS[node][key] = merged.sync(REPLICAS[node].get(key) or merged)
                    print(f"  read repair -> {node}")
                case Complete(result=result):
                    print(f"  complete at +{loop.time() - started:.3f}s: {result}")
                case _:
                    assert_never(effect)

    started = loop.time()
    dispatch(coordinator.start(loop.time()))
    while coordinator.state is not CoordinatorState.CLOSED:
        deadline = coordinator.deadline()
        assert deadline is not None
        try:
            sender, reply = await asyncio.wait_for(inbox.get(), max(0.0, deadline - loop.time()))
        except TimeoutError:
            dispatch(coordinator.on_timer(loop.time()))
            continue
        if isinstance(coordinator, PutCoordinator):
            assert not isinstance(reply, Fetched)
            dispatch(coordinator.receive(sender, reply, loop.time()))
        else:
            assert not isinstance(reply, Stored)
            dispatch(coordinator.receive(sender, reply, loop.time()))
    print(f"  closed at +{loop.time() - started:.3f}s; asked {list(coordinator.asked)}")
    for task in list(tasks):  # replies nobody waits for any more
        task.cancel()


async def main() -> None:
    policy = QuorumPolicy(3, 2, 3)
    candidates = ["a", "b", "c", "d", "e"]  # ring.walk(key) minus the nodes believed down
    print("put, w=3 (b is slow: d stands in for it)")
    state = DVVSet[bytes]().update(b"1 book", "a")
    await drive(
        PutCoordinator(policy, "cart", candidates, state, timeout=0.5, replica_timeout=0.05)
    )
    REPLICAS["c"].pop("cart")  # c loses its copy
    print("get, r=2 (c lost its copy; b never got one: both are repaired)")
    get: GetCoordinator[Cart] = GetCoordinator(policy, "cart", candidates, r=2, timeout=0.5)
    await drive(get)
    assert isinstance(get.result, GetResult)
    assert get.result.state is not None
    print("  values:", get.result.state.values, "| c now holds:", REPLICAS["c"]["cart"].values)


if __name__ == "__main__":
    asyncio.run(main())
