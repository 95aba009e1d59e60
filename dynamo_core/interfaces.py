"""The small interfaces that users plug their own implementations into.

They are `typing.Protocol`s: an implementation only needs the methods, not a base class.
Each has a reference implementation in the library and a conformance suite in
[`dynamo_core.testing`][dynamo_core.testing] that any implementation can run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

__all__ = ["Clock", "ReplicaState", "Storage", "Transport"]


@runtime_checkable
class Storage(Protocol):
    """An ordered key-value store of `bytes` to `bytes`.

    Keys are ordered by unsigned byte comparison (``memcmp``, shorter first on a common prefix),
    which is the order of Python's `bytes` comparison. Implementations must:

    * refuse keys and values that are not `bytes` with `TypeError` naming the argument;
    * apply `write_batch` atomically — after a failure or a crash, either all of it or none of it;
    * raise [`StorageClosedError`][dynamo_core.errors.StorageClosedError] for every operation after
      `close()`, which itself may be called more than once;
    * work as a context manager that closes on exit.

    When each method checks and raises (the conformance suite quotes these rules when a backend
    breaks one):

    * `get`, `put` and `delete` check their arguments and that the store is open before doing
      anything, and raise from the call.
    * `scan` checks `start`, `end` and that the store is open **when called**, not on the first
      ``next()``: a generator function that validates in its body breaks the contract (validate,
      then return an inner generator). An iterator still open at `close()` raises
      `StorageClosedError` on its next ``next()``.
    * `write_batch` checks every item of `puts` and `deletes` (``TypeError`` naming
      ``puts[i]`` or ``deletes[i]``) and that no key is both put and deleted (``ValueError``)
      before it writes any, so a refused batch changes nothing. It accepts any iterables,
      iterators included, and reads each once.
    * `__enter__` raises `StorageClosedError` on a closed store; `close` never raises.

    A backend that claims durability must also keep every acknowledged write across a crash of
    the process. The reference backends are
    [`MemoryStorage`][dynamo_core.storage.MemoryStorage] and
    [`SQLiteStorage`][dynamo_core.storage.SQLiteStorage].
    """

    def get(self, key: bytes) -> bytes | None:
        """Return the value stored under `key`, or `None`."""
        ...

    def put(self, key: bytes, value: bytes) -> None:
        """Store `value` under `key`, replacing any previous value."""
        ...

    def delete(self, key: bytes) -> None:
        """Remove `key`; removing a missing key is not an error."""
        ...

    def scan(
        self, start: bytes | None = None, end: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, value)`` pairs with ``start <= key < end`` in ascending key order.

        `None` leaves that side unbounded. Writes made while the iterator is open may or may not
        be seen, but every key is yielded at most once and in order; a key present from start
        to end is yielded.

        Raises:
            TypeError: `start` or `end` is neither `bytes` nor `None` — raised by the call
                itself, not by the first ``next()``.
            StorageClosedError: the store is closed (by the call, or by ``next()`` once the
                store is closed while the iterator is open).
        """
        ...

    def write_batch(
        self, puts: Iterable[tuple[bytes, bytes]] = (), deletes: Iterable[bytes] = ()
    ) -> None:
        """Apply all `puts` and `deletes` atomically.

        A key may not appear in both; a key put twice keeps the later value.
        """
        ...

    def close(self) -> None:
        """Release the store's resources. Later operations raise `StorageClosedError`."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class ReplicaState(Protocol):
    """What a replica stores for one key: a state that merges and knows its causal history.

    The quorum coordinators and the hint store are generic over this protocol, with
    [`DVVSet`][dynamo_core.DVVSet] as the default: an application with its own CRDT plugs it in
    there by giving it these methods (and a ``from_dict`` decoder for the wire). The
    [`Node`][dynamo_core.node.Node] is not generic: it stores, merges, limits and ships `DVVSet`
    states (its messages carry `DVVSet`), so a cluster of nodes is DVVSet-based.

    Laws every implementation must satisfy: `sync` is commutative, associative and idempotent;
    ``a.sync(b).descends(a)`` and ``a.sync(b).descends(b)``; `descends` is reflexive, transitive
    and holds exactly when ``a.sync(b) == a``; a state survives ``to_dict`` / ``from_dict``.
    [`ReplicaStateLaws`][dynamo_core.testing.ReplicaStateLaws] checks them all; the library runs
    it on `DVVSet` and its test states.
    """

    def sync(self, other: Self) -> Self:
        """Return the merge of two replicas' states (a least upper bound)."""
        ...

    def descends(self, other: Self) -> bool:
        """Whether this state already includes every update that `other` includes."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """Encode for the wire and for storage through [`dynamo_core.codec`][dynamo_core.codec]."""
        ...


@runtime_checkable
class Transport(Protocol):
    """Delivers encoded messages to other nodes: the sending half of a node's transport.

    What consumes it: [`serve`][dynamo_core.aio.serve], through
    [`DriverTransport`][dynamo_core.aio.DriverTransport] (this plus an inbox, start, close and
    counters). Nothing else does: the primitives (ring, clocks, trees, quorums, hints) take no
    transport, and the protocol cores are sans-I/O — they return effects such as "send this to
    b" and take replies as inputs, so an embedder carries messages however it likes (see
    [`dynamo_core.drive`][dynamo_core.drive]).

    Delivery is best effort: a message may be lost, delayed, duplicated or reordered, and the
    protocol cores are written to tolerate all of that. `send` must not block on the network.
    """

    def send(self, target: str, payload: bytes) -> None:
        """Queue `payload` for delivery to the node `target`."""
        ...


@runtime_checkable
class Clock(Protocol):
    """A source of time in seconds. Protocol cores never read it; drivers do."""

    def now(self) -> float:
        """Return the current time in seconds (monotonic within one process)."""
        ...
