"""Actor epochs: a replica never issues the same dot twice, even after losing its data.

A dot ``(actor, n)`` names one write. If a replica loses its copy of a key (a disk replaced, a
backup restored, a key deleted by a bug) and then coordinates a new write to it with its old
actor id, it starts counting again and reissues a dot that other replicas already hold with a
different value. Every replica then believes the two writes are the same one and silently keeps
only one of them: acknowledged data is lost. This is Riak's KV679 bug, fixed there with per-key
actor epochs. [`ActorEpochs`][dynamo_core.epochs.ActorEpochs] is that fix as a pure value-level
helper.

An *actor id* is a node id with an epoch: ``actor_id("node-a", 7) == "node-a#7"``. A replica
keeps one durable counter, its highest epoch. To coordinate a write to a key it asks
``epochs.actor_for(local_context, client_context)``, which returns the actor this replica already
uses for that key when that is provably safe, and otherwise mints a fresh epoch:

* the key is not stored locally (new, or lost): fresh epoch;
* the local state has no actor of this replica minted since the last start: fresh epoch (after a
  restart that may have lost data, the old actors are retired);
* the client's context has seen more writes from the chosen actor than the local state holds
  (the local copy is older than writes this replica coordinated: it lost them): fresh epoch;
* the replica deleted a copy that held the actor (the key's range moved away), so a stale copy
  that comes back later may lack writes it coordinated: the owner calls
  ``epochs.retire(state.context)`` before deleting, and those actors are never used again.

The caller must make the new epoch (``epochs.epoch``) durable no later than the write that uses
it: the node stores it in the same atomic `write_batch` as the key's new state.

How the node uses it: at start it reads its stored epoch ``E`` (0 for a new node) and
builds ``ActorEpochs(node_id, epoch=E)``. To coordinate a put it loads the key's stored
[`DVVSet`][dynamo_core.dvv.DVVSet] (or the empty one), calls
``actor = epochs.actor_for(stored.context, request.context)``, computes
``stored.update(value, actor, request.context)``, and writes that state together with
``epochs.epoch`` in one batch before replicating it. Replicas that only receive states (`sync`,
read repair, hinted handoff, anti-entropy) never mint dots and need nothing. The cost is at most
one extra clock entry per key per restart of its coordinator, or per detected loss.
"""

from __future__ import annotations

from typing import Final

from dynamo_core import codec
from dynamo_core._check import MAX_NODE_ID_LEN, check_node_id
from dynamo_core.vclock import VectorClock

__all__ = ["EPOCH_SEPARATOR", "MAX_BASE_NODE_LEN", "ActorEpochs", "actor_id", "parse_actor"]

EPOCH_SEPARATOR: Final = "#"
"""Separates the node id from the epoch in an actor id (the last one counts)."""

MAX_BASE_NODE_LEN: Final = MAX_NODE_ID_LEN - 1 - len(str(codec.MAX_COUNTER))
"""The longest node id that can carry an epoch and still be a valid actor id (235)."""

_MAX_EPOCH: Final = codec.MAX_COUNTER


def _check_base_node(node: object) -> str:
    check_node_id(node)
    assert isinstance(node, str)
    if len(node) > MAX_BASE_NODE_LEN:
        raise ValueError(
            f"node must be 1..{MAX_BASE_NODE_LEN} characters long to carry an epoch, "
            f"got {len(node)}"
        )
    return node


def actor_id(node: str, epoch: int) -> str:
    """Return the actor id of `node` at `epoch`: ``f"{node}#{epoch}"``.

    Raises:
        TypeError: `node` is not a `str` or `epoch` not an `int`.
        ValueError: `node` is empty or longer than 235 characters, or `epoch` is outside
            ``1 .. 2**63 - 1``.
    """
    _check_base_node(node)
    if type(epoch) is not int:
        raise TypeError(f"epoch must be an int, not {type(epoch).__name__}")
    if not 1 <= epoch <= _MAX_EPOCH:
        raise ValueError(f"epoch must be in 1..2**63-1, got {epoch}")
    return f"{node}{EPOCH_SEPARATOR}{epoch}"


def parse_actor(actor: str) -> tuple[str, int] | None:
    """Split an actor id made by [`actor_id`][dynamo_core.epochs.actor_id] into node and epoch.

    Returns:
        ``(node, epoch)``, or `None` if `actor` is not of that form (a plain node id).
    """
    node, separator, digits = actor.rpartition(EPOCH_SEPARATOR)
    if not separator or not node or not digits.isascii() or not digits.isdigit():
        return None
    if digits[0] == "0" or len(digits) > len(str(_MAX_EPOCH)):
        return None
    epoch = int(digits)
    return (node, epoch) if epoch <= _MAX_EPOCH else None


class ActorEpochs:
    """Chooses, for each write a replica coordinates, an actor id whose dots are fresh.

    Mutable: minting raises `epoch`, which the owner must store durably (see the module
    documentation for the protocol and for how the node uses it).

    Args:
        node: This replica's node id (at most 235 characters).
        epoch: The highest epoch this replica stored before this start (0 for a new replica).
        reuse_previous: Keep using actors minted before this start. Only safe when the store
            is known to have lost nothing (a clean shutdown of a durable store); by default
            every actor minted before the start is retired on its key's next write.

    Raises:
        TypeError, ValueError: `node` is not a valid node id, or `epoch` is not an int in
            ``0 .. 2**63 - 1``.

    Examples:
        >>> epochs = ActorEpochs("node-a", epoch=4)
        >>> epochs.actor_for(VectorClock())  # a key this replica does not hold
        'node-a#5'
        >>> epochs.actor_for(VectorClock({"node-a#5": 3}))  # a key it wrote since the start
        'node-a#5'
        >>> epochs.actor_for(VectorClock({"node-a#5": 3}), VectorClock({"node-a#5": 9}))
        'node-a#6'
    """

    __slots__ = ("_epoch", "_floor", "_node", "_prefix", "_retired")

    def __init__(self, node: str, *, epoch: int = 0, reuse_previous: bool = False) -> None:
        _check_base_node(node)
        if type(epoch) is not int:
            raise TypeError(f"epoch must be an int, not {type(epoch).__name__}")
        if not 0 <= epoch <= _MAX_EPOCH:
            raise ValueError(f"epoch must be in 0..2**63-1, got {epoch}")
        if type(reuse_previous) is not bool:
            raise TypeError(f"reuse_previous must be a bool, not {type(reuse_previous).__name__}")
        self._node = node
        self._prefix = node + EPOCH_SEPARATOR
        self._epoch = epoch
        self._floor = 1 if reuse_previous else epoch + 1
        self._retired: set[int] = set()  # epochs in floor..epoch retired since the start

    @property
    def node(self) -> str:
        """This replica's node id."""
        return self._node

    @property
    def epoch(self) -> int:
        """The highest epoch minted so far: store it durably with the write that used it."""
        return self._epoch

    @property
    def floor(self) -> int:
        """The oldest epoch this replica may still write with (older actors are retired)."""
        return self._floor

    def usable(self, actor: str) -> bool:
        """Whether `actor` is one of this replica's actors that it may still write with."""
        if not actor.startswith(self._prefix):
            return False
        parsed = parse_actor(actor)
        return (
            parsed is not None
            and parsed[0] == self._node
            and parsed[1] not in self._retired
            and self._floor <= parsed[1] <= self._epoch
        )

    def actor_for(self, local: VectorClock, context: VectorClock | None = None) -> str:
        """Return the actor id to coordinate a write with, minting a new epoch when needed.

        Args:
            local: The causal context of the key's locally stored state (the empty clock when
                the key is not stored), e.g. ``DVVSet.context``.
            context: The context the client sent with the write, if any.

        Returns:
            The newest usable actor of this replica in `local` when `context` shows no more
            writes by it than `local` holds; otherwise a freshly minted actor. Cost: O(n) for an
            n-entry `local`.

        Raises:
            TypeError: `local` or `context` is not a `VectorClock`.
            OverflowError: the epoch counter is exhausted.
        """
        if not isinstance(local, VectorClock):
            raise TypeError(f"local must be a VectorClock, not {type(local).__name__}")
        if context is not None and not isinstance(context, VectorClock):
            raise TypeError(f"context must be a VectorClock or None, not {type(context).__name__}")
        best: str | None = None
        best_epoch = 0
        for actor in local:
            if actor.startswith(self._prefix):
                parsed = parse_actor(actor)
                if (
                    parsed is not None
                    and parsed[0] == self._node
                    and self._floor <= parsed[1] <= self._epoch
                    and parsed[1] > best_epoch
                    and parsed[1] not in self._retired
                ):
                    best, best_epoch = actor, parsed[1]
        if best is not None and (context is None or context.get(best) <= local.get(best)):
            return best
        return self.mint()

    def retire(self, context: VectorClock) -> None:
        """Never write again with this replica's actors named in `context`.

        Call it before deleting a stored copy of a key (its range moved away): the copy may
        hold the only record here of writes this replica coordinated, and a stale copy that
        arrives later (a hint, a stream) would otherwise let it count those dots again, silently
        replacing acknowledged writes on every replica (Riak's KV679). Nothing to store: a
        restart retires every earlier actor anyway. Cost: O(n) for an n-entry `context`.

        Raises:
            TypeError: `context` is not a `VectorClock`.
        """
        if not isinstance(context, VectorClock):
            raise TypeError(f"context must be a VectorClock, not {type(context).__name__}")
        for actor in context:
            if self.usable(actor):
                parsed = parse_actor(actor)
                assert parsed is not None
                self._retired.add(parsed[1])
        while self._floor in self._retired:  # keep the set to the epochs above the floor
            self._retired.discard(self._floor)
            self._floor += 1

    def mint(self) -> str:
        """Return a new actor id, never returned before by this replica (raises `epoch`).

        Raises:
            OverflowError: the epoch counter is exhausted.
        """
        if self._epoch >= _MAX_EPOCH:
            raise OverflowError("the epoch counter is at its limit of 2**63-1")
        self._epoch += 1
        return f"{self._prefix}{self._epoch}"

    def __repr__(self) -> str:
        return f"ActorEpochs({self._node!r}, epoch={self._epoch}, floor={self._floor})"

    def _check_invariants(self) -> None:
        """Assert the representation invariants (for tests)."""
        assert self._prefix == self._node + EPOCH_SEPARATOR
        assert 1 <= len(self._node) <= MAX_BASE_NODE_LEN
        assert 0 <= self._epoch <= _MAX_EPOCH
        assert 1 <= self._floor <= self._epoch + 1
        assert all(self._floor < e <= self._epoch for e in self._retired)
