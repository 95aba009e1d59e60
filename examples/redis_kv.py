"""A replicated key-value layer over three independent Redis servers, built from the primitives.

Run it: ``python examples/redis_kv.py`` (needs ``redis-server`` on the PATH and the ``redis``
package). It starts three ``redis-server`` processes on loopback ports and ends with a JSON line.

# requires: redis (pip), redis-server (apt)

What each primitive does here:

* **Placement**: a `HashRing` with N=3 orders the three stores for each key (`walk`).
* **Quorums**: `PutCoordinator` / `GetCoordinator` with `QuorumPolicy(3, 2, 2)` (sloppy), each
  run by the generic driver `dynamo_core.aio.Driver`; the effect handler below is the whole
  integration with Redis.
* **Versions**: `DVVSet`. A write is a read-modify-write done *atomically at one replica* (the
  first live store of the key: a Redis ``WATCH``/``MULTI`` transaction), under that replica's
  actor from `ActorEpochs` with its epoch stored durably in the same Redis (append-only file,
  fsync always). So no two writes ever mint the same dot; concurrent writers become siblings.
* **Hinted handoff**: when a store is down, the coordinator's own `HintStore` (SQLite, beside the
  service, fed wall time) stands in for it, and `Handoff`, under the same generic driver,
  delivers the hints when the store returns.

The fallback contract, as the handler below implements it. The candidates of a key are its
three stores in ring order, then ``"hints"``: this process's hint store.

* ``SendStore(target, key, state, hint=None)``: merge `state` into the target's copy (atomic
  ``WATCH``/``MULTI``), reply `Stored`; a store that cannot be reached replies `Refused`, so the
  coordinator moves to the next candidate at once.
* ``SendStore("hints", key, state, hint=primary)``: do not merge into any store: keep it as a hint
  for `primary` (`HintStore.add`), reply `Stored` only if `add` kept it.
* ``SendFetch(target, key)``: reply `Fetched(state or None)`; ``SendFetch("hints", key,
  hint=primary)``: answer from `HintStore.get(primary, key)`.
* Sloppy W with the hints in this process: an acknowledged write with one store down is on one
  store plus this service's SQLite file. It survives losing either, not both; the hint file must
  be durable for W=2 to mean anything.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from dynamo_core import (
    ActorEpochs,
    CoordinatorState,
    DVVSet,
    Fetched,
    GetCoordinator,
    GetResult,
    Handoff,
    HashRing,
    HintStore,
    PutCoordinator,
    PutResult,
    QuorumPolicy,
    Refused,
    SendFetch,
    SendRepair,
    SendStore,
    SQLiteStorage,
    Stored,
    VectorClock,
    codec,
)
from dynamo_core.aio import Driver
from dynamo_core.hints import HintsDelivered, SendHints

State = DVVSet[bytes]
STORES = ("r1", "r2", "r3")
HINTS = "hints"  # the fallback candidate: this process's hint store
EPOCH_KEY = b"__epoch__"
DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


class WallClock:
    """Wall time read once, advanced by the monotonic clock (see the clock guide).

    Hints are persisted, so their times need a wall-time base that survives a reboot; the
    coordinators' timers need progress that never jumps when the wall clock is stepped.
    """

    def __init__(self) -> None:
        self.offset = time.time() - time.monotonic()

    def now(self) -> float:
        """Seconds since the epoch, advancing monotonically."""
        return self.offset + time.monotonic()


def encode(state: State) -> bytes:
    return codec.dumps(state.to_dict())


def decode(raw: bytes | str | None) -> State:
    return DVVSet() if raw is None else DVVSet.from_dict(codec.loads(raw))


# -- the three stores --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Store:
    """One redis-server process, durable (append-only file, fsync on every write)."""

    def __init__(self, name: str, root: Path) -> None:
        self.name, self.dir, self.port = name, root / name, free_port()
        self.dir.mkdir()
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = Redis(
            host="127.0.0.1",
            port=self.port,
            socket_timeout=1.0,
            socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
        )

    def start(self) -> None:
        """Start (or restart, on the same files) the server and wait until it accepts."""
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir",
             str(self.dir), "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server {self.name} did not start")

    def kill(self) -> None:
        """SIGKILL the server: no clean shutdown."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    async def merge(self, key: str | bytes, state: State) -> None:
        """Merge `state` into this store's copy of `key`, atomically (WATCH/MULTI)."""
        async with self.client.pipeline() as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    merged = decode(await pipe.get(key)).sync(state)
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                    pipe.set(key, encode(merged))
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    async def update(self, key: bytes, value: bytes, context: VectorClock) -> State:
        """The coordinating write: read, mint a dot under this store's actor, write, atomically.

        The actor comes from `ActorEpochs` with the epoch kept in this Redis (durable: AOF with
        fsync always), so `reuse_previous=True` is safe and the dots of one actor are minted one
        at a time, inside the transaction: no dot is ever minted twice.
        """
        async with self.client.pipeline() as pipe:
            while True:
                try:
                    await pipe.watch(key, EPOCH_KEY)
                    local = decode(await pipe.get(key))
                    stored_epoch = await pipe.get(EPOCH_KEY)
                    epochs = ActorEpochs(
                        self.name, epoch=int(stored_epoch or 0), reuse_previous=True
                    )
                    actor = epochs.actor_for(local.context, context)
                    new = local.update(value, actor, context)
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                    pipe.set(key, encode(new))
                    pipe.set(EPOCH_KEY, str(epochs.epoch))
                    await pipe.execute()
                    return new
                except WatchError:
                    continue


# -- the replicated layer ----------------------------------------------------------------------


def deliver(core: Any, sender: str, reply: Any, now: float) -> list[Any]:
    """Feed a store's reply to its coordinator, or drop it if the coordinator has closed."""
    if core.state is CoordinatorState.CLOSED:
        return []  # too late: the coordinator gave up on this store (it would refuse the reply)
    result: list[Any] = core.receive(sender, reply, now)
    return result


class ReplicatedKV:
    """put/get over the stores: ring placement, quorums, DVVSet versions, hinted handoff."""

    def __init__(self, stores: dict[str, Store], hints: HintStore[State]) -> None:
        self.stores = stores
        self.hints = hints
        self.clock = WallClock()
        self.policy = QuorumPolicy(3, 2, 2)
        self.ring = HashRing(3, partitions=16)
        self.ring.add_nodes(sorted(stores))
        self.down: set[str] = set()

    def candidates(self, key: bytes) -> list[str]:
        """The key's stores in ring order, then this process's hint store."""
        return [*self.ring.walk(key), HINTS]

    async def handle(self, driver: Driver[Any], core: Any, effect: Any) -> None:
        """The effect handler: the whole integration with Redis (see the module docstring)."""
        match effect:
            case (
                SendStore(target=target, key=key, state=state, hint=hint)
                | SendRepair(target=target, key=key, state=state, hint=hint)
            ):
                reply: Any
                if target == HINTS:
                    assert hint is not None, "the hint store only ever stands in for a store"
                    kept = self.hints.add(hint, key, state, self.clock.now())
                    reply = Stored() if kept else Refused(f"hint for {hint} refused")
                else:
                    try:
                        await self.stores[target].merge(key, state)
                        reply = Stored()
                    except DOWN:
                        self.down.add(target)
                        reply = Refused(f"{target} is down")
                if isinstance(effect, SendStore):  # a read repair expects no reply
                    driver.submit(partial(deliver, core, target, reply))
            case SendFetch(target=target, key=key, hint=hint):
                if target == HINTS:
                    held = self.hints.get(hint, key) if hint is not None else None
                    answer: Any = Fetched(None if held is None else held.state)
                else:
                    try:
                        raw = await self.stores[target].client.get(key)
                        answer = Fetched(None if raw is None else decode(raw))
                    except DOWN:
                        self.down.add(target)
                        answer = Refused(f"{target} is down")
                driver.submit(partial(deliver, core, target, answer))

    async def run(self, core: Any, start: Any) -> None:
        """Run a coordinator until every store answered or timed out (then it is idle).

        Not ``until=lambda: core.result is not None``: that returns at W acks and cancels the
        stores still being written, which would leave them to read repair.
        """

        def handle(effect: Any) -> Any:
            return self.handle(driver, core, effect)

        driver: Driver[Any] = Driver(core, handle, clock=self.clock)
        await driver.run(start)

    async def get(self, key: bytes) -> GetResult[State]:
        """A quorum read (R=2), with read repair."""
        get: GetCoordinator[State] = GetCoordinator(
            self.policy, key, self.candidates(key), timeout=2.0,
            preference_list=self.ring.preference_list(key),
        )  # fmt: skip
        await self.run(get, get.start)
        result = get.result
        assert isinstance(result, GetResult), result
        return result

    async def put(self, key: bytes, value: bytes, context: VectorClock) -> PutResult:
        """Mint the new version at the first live store, then replicate it to a quorum."""
        for name in self.ring.walk(key):
            if name in self.down:
                continue
            try:
                state = await self.stores[name].update(key, value, context)
                break
            except DOWN:
                self.down.add(name)
        else:
            raise RuntimeError("no store is up to coordinate the write")
        put = PutCoordinator(
            self.policy, key, self.candidates(key), state, timeout=2.0, replica_timeout=0.5,
            preference_list=self.ring.preference_list(key),
        )  # fmt: skip
        await self.run(put, put.start)
        result = put.result
        assert isinstance(result, PutResult), result
        return result

    async def hand_off(self, target: str) -> int:
        """The store is back: deliver its hints with the Handoff core under the generic driver."""
        handoff: Handoff[State] = Handoff(self.hints)
        delivered = 0

        async def deliver(effect: SendHints[State]) -> None:
            for hint in effect.batch.hints:
                key = hint.key if isinstance(hint.key, bytes) else hint.key.encode()
                await self.stores[effect.target].merge(key, hint.state)
            driver.submit(partial(handoff.on_ack, effect.target, effect.batch.batch_id))

        def handle(effect: Any) -> Any:
            nonlocal delivered
            match effect:
                case SendHints():
                    return deliver(effect)  # a coroutine: the driver runs it as a task
                case HintsDelivered(removed=removed):
                    delivered += removed  # counted at once, not in a task the end may cancel
            return None

        driver: Driver[Any] = Driver(handoff, handle, clock=self.clock)
        self.down.discard(target)
        await driver.run(
            partial(handoff.target_up, target), until=lambda: self.hints.count(target) == 0
        )
        return delivered


async def scenario(stores: dict[str, Store], hints: HintStore[State]) -> dict[str, Any]:
    kv = ReplicatedKV(stores, hints)
    acknowledged: dict[bytes, bytes] = {}

    async def write(key: bytes, value: bytes) -> None:
        current = await kv.get(key)
        context = current.state.context if current.state is not None else VectorClock()
        await kv.put(key, value, context)
        acknowledged[key] = value

    for i in range(40):
        await write(b"user:%02d" % i, b"v1 of %d" % i)
    print(f"40 writes on 3 stores; hints pending: {len(hints)}")

    stores["r2"].kill()
    print("r2 killed (SIGKILL)")
    for i in range(40, 80):
        await write(b"user:%02d" % i, b"v1 of %d" % i)
    pending = hints.count("r2")
    print(f"40 more writes with r2 down: every one acknowledged, {pending} hints kept for r2")

    # Two writers update the same cart from the same read: concurrent, so both survive.
    cart = b"cart:shared"
    await write(cart, b"milk")
    seen = await kv.get(cart)
    assert seen.state is not None
    order = list(kv.ring.walk(cart))
    live = [n for n in order if n not in kv.down]
    first = await stores[live[0]].update(cart, b"milk,eggs", seen.state.context)
    second = await stores[live[1]].update(cart, b"milk,bread", seen.state.context)
    for state in (first, second):  # replicate both versions
        put = PutCoordinator(kv.policy, cart, kv.candidates(cart), state, timeout=2.0)
        await kv.run(put, put.start)
    siblings = await kv.get(cart)
    assert siblings.state is not None
    sibling_values = sorted(siblings.state.values)
    shown = " and ".join(repr(v.decode()) for v in sibling_values)
    print(f"two concurrent writers: {len(sibling_values)} siblings, {shown}")
    union = b",".join(sorted({p for v in sibling_values for p in v.split(b",")}))
    await kv.put(cart, union, siblings.state.context)  # the merge: one write covering both
    merged = await kv.get(cart)
    assert merged.state is not None
    acknowledged[cart] = union
    print(f"merged by a write with the read's context: {merged.state.values[0].decode()!r}")

    stores["r2"].start()
    delivered = await kv.hand_off("r2")
    print(f"r2 is back: {delivered} hints delivered, {hints.count('r2')} left")

    # The check: every acknowledged write is on every store, and a quorum read returns it.
    lost = 0
    for key, value in acknowledged.items():
        got = await kv.get(key)
        if got.state is None or value not in got.state.values:
            lost += 1
    on_every_store = 0
    for key, value in acknowledged.items():
        raws = [await stores[n].client.get(key) for n in STORES]
        if all(raw is not None and value in decode(raw).values for raw in raws):
            on_every_store += 1
    return {
        "acknowledged": len(acknowledged),
        "lost": lost,
        "hinted": pending,
        "hints_delivered": delivered,
        "hints_left": len(hints),
        "siblings": len(sibling_values),
        "after_merge": len(merged.state.values),
        "on_every_store": on_every_store,
    }


async def main(root: Path) -> dict[str, Any]:
    stores = {name: Store(name, root) for name in STORES}
    for store in stores.values():
        store.start()
    hints: HintStore[State] = HintStore(SQLiteStorage(root / "hints.sqlite3"))
    try:
        return await scenario(stores, hints)
    finally:
        hints.storage.close()
        for store in stores.values():
            await store.client.aclose()
            if store.proc is not None and store.proc.poll() is None:
                store.proc.terminate()
                store.proc.wait()


if __name__ == "__main__":
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    with tempfile.TemporaryDirectory() as tmp:
        summary = asyncio.run(main(Path(tmp)))
    print(json.dumps(summary, sort_keys=True))
