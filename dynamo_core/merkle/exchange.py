"""The sans-I/O Merkle exchange between two replicas, its effects, report and in-process driver."""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import TypeAlias, assert_never

import attrs

from dynamo_core._check import check_positive_int, check_time, key_bytes
from dynamo_core.errors import LocalProtocolError, RemoteProtocolError
from dynamo_core.hashing import (
    TokenRange,
)
from dynamo_core.merkle.tree import (
    DIGEST_SIZE,
    MAX_LEVELS_PER_ROUND,
    MerkleTree,
    _check_digest,
)
from dynamo_core.merkle.wire import (
    Abort,
    Close,
    GetItems,
    GetNodes,
    Hello,
    InSync,
    Items,
    Message,
    Nodes,
    UseDepth,
    decode_message,
    encode_message,
)

__all__ = [
    "Done",
    "Effect",
    "ExchangeReport",
    "ExchangeRole",
    "ExchangeState",
    "Failed",
    "ItemSource",
    "LoadItems",
    "MerkleExchange",
    "Send",
    "run_exchange",
]

# -- exchange effects and report ---------------------------------------------------------------


@attrs.frozen
class Send:
    """Effect: send `message` to the peer (encode it with `encode_message` or `to_dict`)."""

    message: Message


@attrs.frozen
class LoadItems:
    """Effect: read the local ``(key, digest)`` items of these segments, then call `items_loaded`.

    `ranges` are the same segments as coalesced token ranges, for stores that scan by token.
    Passing more items than asked for is fine: the exchange keeps those in `segments`.
    """

    segments: tuple[int, ...]
    ranges: tuple[TokenRange, ...]


@attrs.frozen
class Done:
    """Effect: the exchange finished; `report` says what it found and what it cost."""

    report: ExchangeReport


@attrs.frozen
class Failed:
    """Effect: the exchange was aborted, locally or by the peer, for `reason`."""

    reason: str
    by_peer: bool


Effect: TypeAlias = Send | LoadItems | Done | Failed
"""What an input to [`MerkleExchange`][dynamo_core.merkle.MerkleExchange] asks its driver to do."""


class ExchangeRole(enum.StrEnum):
    """Which side of an exchange a [`MerkleExchange`][dynamo_core.merkle.MerkleExchange] plays."""

    INITIATOR = "initiator"
    """Starts the exchange, makes every comparison and gets the key report."""
    RESPONDER = "responder"
    """Answers requests from its own tree and store."""


class ExchangeState(enum.Enum):
    """The states of an exchange (h11 style: `MerkleExchange.state` is always one of these)."""

    IDLE = "idle"
    """Not started (initiator) or waiting for a `Hello` (responder)."""
    AWAIT_NODES = "await_nodes"
    """Initiator: a request for node digests is outstanding."""
    AWAIT_CONFIRM = "await_confirm"
    """Initiator: the first pass found differing segments; waiting to re-check them."""
    AWAIT_ITEMS = "await_items"
    """Initiator: waiting for the peer's items and/or its own `items_loaded`."""
    SERVING = "serving"
    """Responder: answering requests."""
    LOADING = "loading"
    """Responder: waiting for `items_loaded` to answer a `GetItems`."""
    DONE = "done"
    """Finished; a `Done` effect carried the report."""
    FAILED = "failed"
    """Aborted by either side; a `Failed` effect said why."""


@attrs.frozen
class ExchangeReport:
    """What an exchange found and what it cost.

    The key lists are filled on the initiator only (the responder never compares keys); keys are
    `bytes` (a `str` key appears as its UTF-8 encoding) and each list is sorted.

    Attributes:
        role: The side this report belongs to.
        in_sync: Whether the roots were equal at the start.
        segments: The differing segments (after confirmation, when enabled), ascending.
        ranges: `segments` as coalesced token ranges.
        unconfirmed: Segments that differed in the first pass but not when re-checked.
        fetched: The segments whose items were compared (`segments` unless capped).
        missing: Keys the peer has and this side lacks.
        remote_missing: Keys this side has and the peer lacks.
        different: Keys both sides have with different digests.
        round_trips: Requests that were answered (the responder counts the ones it answered).
        messages: Messages sent and received.
        digests: Tree node digests sent and received (items not included).
        items: ``(key, digest)`` items sent and received.
        wire_bytes: Bytes sent and received, as
            [`encode_message`][dynamo_core.merkle.encode_message] encodes the messages.
        depth: The depth the trees were compared at (the shallower of the two).
    """

    role: ExchangeRole
    in_sync: bool = False
    segments: tuple[int, ...] = ()
    ranges: tuple[TokenRange, ...] = ()
    unconfirmed: tuple[int, ...] = ()
    fetched: tuple[int, ...] = ()
    missing: tuple[bytes, ...] = ()
    remote_missing: tuple[bytes, ...] = ()
    different: tuple[bytes, ...] = ()
    round_trips: int = 0
    messages: int = 0
    digests: int = 0
    items: int = 0
    wire_bytes: int = 0
    depth: int = 0

    @property
    def repairs(self) -> int:
        """How many keys need repair: missing + remote_missing + different."""
        return len(self.missing) + len(self.remote_missing) + len(self.different)


# -- the exchange ------------------------------------------------------------------------------


class MerkleExchange:
    """One side of a Merkle exchange between two replicas: a sans-I/O state machine.

    The **initiator** sends its root; the **responder** answers with the nodes `levels_per_round`
    levels below it; the initiator compares them with its own and asks, in the next round trip,
    for the nodes `levels_per_round` levels below each *differing* one, and so on down to the
    leaves. It then asks for the ``(key, digest)`` items of the differing segments and reports the
    keys that are missing on either side or different. Round trips:
    ``ceil(depth / levels_per_round) + 1``, one more with confirmation. Node digests exchanged,
    for d differing segments: about ``2**L / L`` per level on each of the d paths below
    ``log2 d`` (``L = levels_per_round``), within 3x of the lower bound
    ``d * (depth - log2 d)`` for ``L <= 3``.

    Nothing here does I/O or reads a clock. Each input returns a list of effects:
    [`Send`][dynamo_core.merkle.Send] a message to the peer,
    [`LoadItems`][dynamo_core.merkle.LoadItems] from the local store (answer with
    [`items_loaded`][dynamo_core.merkle.MerkleExchange.items_loaded]), and finally
    [`Done`][dynamo_core.merkle.Done] or [`Failed`][dynamo_core.merkle.Failed]. The one timer
    channel is [`deadline`][dynamo_core.merkle.MerkleExchange.deadline]: when it is not ``None``
    (a confirmation pass is waiting), call
    [`on_timer`][dynamo_core.merkle.MerkleExchange.on_timer] once the clock reaches it.

    Misuse by the caller raises [`LocalProtocolError`][dynamo_core.errors.LocalProtocolError]; a
    message the peer should not have sent raises
    [`RemoteProtocolError`][dynamo_core.errors.RemoteProtocolError] (the driver then usually calls
    [`abort`][dynamo_core.merkle.MerkleExchange.abort]). Either way the state is unchanged.

    The exchange reads the live tree at each step, so writes during an exchange are seen by
    later steps; `confirm_delay` (Riak's compare-twice) re-checks the differing leaves after a
    pause and drops segments that have converged, so writes still in flight are not repaired.

    Args:
        tree: The local tree; the peer's must cover the same range with the same token
            function. Depths may differ: the deeper side folds its tree to the shallower depth
            ([`fold`][dynamo_core.merkle.MerkleTree.fold]; the responder announces its depth
            with [`UseDepth`][dynamo_core.merkle.UseDepth] when it is the shallower), and the
            exchange then works on that folded snapshot, whose segments `LoadItems` and the
            report refer to (its `ranges` are token ranges, valid at any depth).
        role: ``"initiator"`` or ``"responder"``.
        levels_per_round: Levels descended per round trip, ``1 .. MAX_LEVELS_PER_ROUND``
            (initiator only). Higher: fewer round trips, more digests.
        confirm_delay: ``None`` for one pass; a number of seconds to re-check the differing
            leaves after that pause (initiator only). Then every input needs `now`.
        fetch_items: Whether to fetch items and report keys (initiator only); with ``False`` the
            report gives only the differing segments and ranges, as Cassandra's repair does.
        max_segments: Fetch items for at most this many differing segments (the lowest ones);
            ``None`` for no limit (initiator only). Later exchanges repair the rest.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: An argument is out of range, or a role-specific option is given to a
            responder.
    """

    __slots__ = (
        "_confirm_delay",
        "_confirming",
        "_deadline",
        "_fetch_items",
        "_fetched",
        "_first_pass",
        "_hello",
        "_in_sync",
        "_levels",
        "_local_items",
        "_max_segments",
        "_pending",
        "_remote_items",
        "_role",
        "_segments",
        "_state",
        "_stats",
        "_tree",
        "_unconfirmed",
    )

    def __init__(
        self,
        tree: MerkleTree,
        role: ExchangeRole | str = ExchangeRole.INITIATOR,
        *,
        levels_per_round: int = 2,
        confirm_delay: float | None = None,
        fetch_items: bool = True,
        max_segments: int | None = None,
    ) -> None:
        if not isinstance(tree, MerkleTree):
            raise TypeError(f"tree must be a MerkleTree, not {type(tree).__name__}")
        if not isinstance(role, str):
            raise TypeError(f"role must be 'initiator' or 'responder', not {type(role).__name__}")
        try:
            self._role = ExchangeRole(role)
        except ValueError:
            raise ValueError(f"role must be 'initiator' or 'responder', got {role!r}") from None
        check_positive_int(levels_per_round, "levels_per_round", maximum=MAX_LEVELS_PER_ROUND)
        if confirm_delay is not None:
            confirm_delay = check_time(confirm_delay, "confirm_delay")
        if type(fetch_items) is not bool:
            raise TypeError(f"fetch_items must be a bool, not {type(fetch_items).__name__}")
        if max_segments is not None:
            check_positive_int(max_segments, "max_segments")
        if self._role is ExchangeRole.RESPONDER and (
            levels_per_round != 2
            or confirm_delay is not None
            or not fetch_items
            or max_segments is not None
        ):
            raise ValueError(
                "levels_per_round, confirm_delay, fetch_items and max_segments are chosen by the "
                "initiator; a responder takes only the tree"
            )
        self._tree = tree
        self._levels = levels_per_round
        self._confirm_delay = confirm_delay
        self._fetch_items = fetch_items
        self._max_segments = max_segments
        self._state = ExchangeState.IDLE
        self._pending: GetNodes | None = None  # the outstanding node request (initiator)
        self._confirming = False
        self._deadline: float | None = None
        self._in_sync = False
        self._hello = False  # the outstanding request is a Hello
        self._first_pass: tuple[int, ...] = ()
        self._segments: tuple[int, ...] = ()
        self._unconfirmed: tuple[int, ...] = ()
        self._fetched: tuple[int, ...] = ()
        self._local_items: dict[bytes, bytes] | None = None
        self._remote_items: dict[bytes, bytes] | None = None
        # round trips, messages, digests, items, bytes
        self._stats = [0, 0, 0, 0, 0]

    # -- inspection --------------------------------------------------------------------------

    @property
    def role(self) -> ExchangeRole:
        """This side's role."""
        return self._role

    @property
    def state(self) -> ExchangeState:
        """The current state."""
        return self._state

    @property
    def tree(self) -> MerkleTree:
        """The local tree."""
        return self._tree

    @property
    def finished(self) -> bool:
        """Whether the exchange is over (`DONE` or `FAILED`)."""
        return self._state in (ExchangeState.DONE, ExchangeState.FAILED)

    def deadline(self) -> float | None:
        """When `on_timer` is next due, or ``None`` when no timer is set."""
        return self._deadline

    def report(self) -> ExchangeReport:
        """Return the report so far (final once `Done` was emitted). Cost: O(k log k), k items."""
        rounds, messages, digests, items, nbytes = self._stats
        segments = self._segments
        missing: tuple[bytes, ...] = ()
        remote_missing: tuple[bytes, ...] = ()
        different: tuple[bytes, ...] = ()
        if self._local_items is not None and self._remote_items is not None:
            local, remote = self._local_items, self._remote_items
            missing = tuple(sorted(key for key in remote if key not in local))
            remote_missing = tuple(sorted(key for key in local if key not in remote))
            different = tuple(
                sorted(key for key in local if key in remote and local[key] != remote[key])
            )
        return ExchangeReport(
            role=self._role,
            in_sync=self._in_sync,
            segments=segments,
            ranges=tuple(self._tree.ranges_of(segments)),
            unconfirmed=self._unconfirmed,
            fetched=self._fetched,
            missing=missing,
            remote_missing=remote_missing,
            different=different,
            round_trips=rounds,
            messages=messages,
            digests=digests,
            items=items,
            wire_bytes=nbytes,
            depth=self._tree.depth,
        )

    # -- plumbing ----------------------------------------------------------------------------

    def _count(self, message: Message) -> None:
        stats = self._stats
        stats[1] += 1
        stats[4] += len(encode_message(message))
        if isinstance(message, Nodes):
            stats[2] += len(message.digests) // DIGEST_SIZE
        elif isinstance(message, Hello):
            stats[2] += 1
        elif isinstance(message, Items):
            stats[3] += len(message.keys)

    def _send(self, message: Message, *, request: bool = False) -> Send:
        self._count(message)
        if request:
            self._stats[0] += 1
        return Send(message)

    def _end(self, state: ExchangeState) -> None:
        self._state = state
        self._deadline = None
        self._pending = None
        self._confirming = False

    def _done(self) -> Done:
        self._end(ExchangeState.DONE)
        return Done(self.report())

    def _check_now(self, now: float | None) -> None:
        if now is not None:
            check_time(now)
        elif self._confirm_delay is not None:
            raise LocalProtocolError("with confirm_delay set, every input needs now")

    def _expect(self, *states: ExchangeState, action: str) -> None:
        if self._state not in states:
            raise LocalProtocolError(f"cannot {action} in state {self._state.name}")

    def _check_invariants(self) -> None:
        """Assert the state machine's internal consistency (tests call it after every input)."""
        state = self._state
        initiator = self._role is ExchangeRole.INITIATOR
        if initiator:
            assert state not in (ExchangeState.SERVING, ExchangeState.LOADING)
        else:
            assert state not in (
                ExchangeState.AWAIT_NODES,
                ExchangeState.AWAIT_CONFIRM,
                ExchangeState.AWAIT_ITEMS,
            )
            assert self._pending is None
            assert self._local_items is None
            assert self._remote_items is None
        assert (self._pending is not None) == (state is ExchangeState.AWAIT_NODES)
        assert (self._deadline is not None) == (state is ExchangeState.AWAIT_CONFIRM)
        if self._confirming:
            assert state is ExchangeState.AWAIT_NODES
            assert self._pending is not None
            assert self._pending.parents == self._first_pass
        if self._pending is not None:
            pending = self._pending
            assert pending.to_height <= pending.height <= self._tree.depth
            assert pending.height - pending.to_height <= self._levels or pending.height == 0
        assert all(a < b for a, b in itertools.pairwise(self._segments))
        if initiator:
            assert set(self._fetched) <= set(self._segments)
            assert set(self._segments) <= set(self._first_pass) or not self._first_pass
            assert not (set(self._unconfirmed) & set(self._segments))
        if self._local_items is not None or self._remote_items is not None:
            assert state in (ExchangeState.AWAIT_ITEMS, ExchangeState.DONE, ExchangeState.FAILED)
        for items in (self._local_items, self._remote_items):
            if items is not None:
                wanted = set(self._fetched)
                assert all(self._tree.segment(key) in wanted for key in items)
                assert all(len(digest) == DIGEST_SIZE for digest in items.values())
        assert all(count >= 0 for count in self._stats)
        rounds, messages = self._stats[0], self._stats[1]
        assert rounds <= messages
        if self._in_sync:
            assert state is ExchangeState.DONE
            assert not self._segments

    # -- inputs ------------------------------------------------------------------------------

    def start(self, now: float | None = None) -> list[Effect]:
        """Start the exchange (initiator): send the root and the first request.

        Cost: O(1), plus any rehash the tree has pending.

        Args:
            now: The current time; needed only with `confirm_delay`.

        Returns:
            ``[Send(Hello)]``.

        Raises:
            LocalProtocolError: This is a responder, or the exchange has already started.
        """
        if self._role is not ExchangeRole.INITIATOR:
            raise LocalProtocolError("only the initiator starts an exchange")
        self._expect(ExchangeState.IDLE, action="start")
        self._check_now(now)
        return [self._say_hello()]

    def _say_hello(self) -> Send:
        tree = self._tree
        to_height = max(tree.depth - self._levels, 0)
        hello = Hello(tree.depth, tree.start, tree.end, tree.fingerprint, tree.root, to_height)
        self._pending = GetNodes(tree.depth, (0,), to_height)
        self._hello = True
        self._state = ExchangeState.AWAIT_NODES
        return self._send(hello, request=True)

    def receive(self, message: Message, now: float | None = None) -> list[Effect]:
        """Handle a message from the peer.

        Cost: O(size of the message): node comparisons for `Nodes`, one token per key for
        `Items`, a slice of the tree per asked node for a request.

        Args:
            message: A decoded message ([`decode_message`][dynamo_core.merkle.decode_message]).
            now: The current time; needed only with `confirm_delay`.

        Returns:
            The effects the message causes.

        Raises:
            TypeError: `message` is not an exchange message.
            LocalProtocolError: `now` is missing although `confirm_delay` is set.
            RemoteProtocolError: The peer sent a message it should not have: out of turn,
                inconsistent with the request, or after the exchange finished. The state is
                unchanged.
        """
        if not isinstance(
            message, Hello | InSync | UseDepth | GetNodes | Nodes | GetItems | Items | Close | Abort
        ):
            raise TypeError(f"message must be an exchange message, not {type(message).__name__}")
        self._check_now(now)
        if self.finished:
            raise RemoteProtocolError(
                f"{type(message).__name__} received after the exchange finished"
            )
        if isinstance(message, Abort):
            self._count(message)
            self._end(ExchangeState.FAILED)
            return [Failed(message.reason, by_peer=True)]
        if self._role is ExchangeRole.INITIATOR:
            return self._initiator_receive(message, now)
        return self._responder_receive(message)

    def items_loaded(
        self, items: Iterable[tuple[str | bytes, bytes]], now: float | None = None
    ) -> list[Effect]:
        """Hand over the local ``(key, digest)`` items asked for by a `LoadItems` effect.

        Cost: O(n) for n items passed (one token each), plus O(k log k) to sort k kept keys.

        Items outside the asked-for segments are ignored, so passing every item is correct
        (if slower).

        Args:
            items: ``(key, digest)`` pairs, each key at most once.
            now: The current time; needed only with `confirm_delay`.

        Returns:
            The effects: on the responder the `Items` answer; on the initiator `Done` once the
            peer's items have arrived too.

        Raises:
            LocalProtocolError: No `LoadItems` is outstanding.
            TypeError: An item is not a ``(key, digest)`` pair of `str`/`bytes` and `bytes`.
            ValueError: A digest is not 16 bytes, or a key appears twice. The state is unchanged.
        """
        self._check_now(now)
        if self._role is ExchangeRole.INITIATOR:
            if self._state is not ExchangeState.AWAIT_ITEMS or self._local_items is not None:
                raise LocalProtocolError(f"no LoadItems is outstanding (state {self._state.name})")
        else:
            self._expect(ExchangeState.LOADING, action="take items")
        wanted = set(self._fetched)
        segment = self._tree.segment
        local: dict[bytes, bytes] = {}
        for key, digest in items:
            data = key_bytes(key, max_len=None)
            _check_digest(digest)
            if segment(data) not in wanted:
                continue
            if data in local:
                raise ValueError(f"items holds key {data!r:.80} twice")
            local[data] = digest
        if self._role is ExchangeRole.RESPONDER:
            keys = tuple(sorted(local))
            answer = Items(keys, b"".join(local[key] for key in keys))
            effects: list[Effect] = [self._send(answer)]
            self._stats[0] += 1
            effects.append(self._done())
            return effects
        self._local_items = local
        if self._remote_items is not None:
            return [self._done()]
        return []

    def on_timer(self, now: float) -> list[Effect]:
        """The time `deadline()` gave has come: run the confirmation pass.

        Returns:
            ``[Send(GetNodes)]`` re-asking for the differing leaves, or ``[]`` if `now` is still
            before the deadline.

        Raises:
            LocalProtocolError: No timer is set.
        """
        now = check_time(now)
        if self._deadline is None:
            raise LocalProtocolError("on_timer called with no timer set")
        if now < self._deadline:
            return []
        return self._recheck()

    def abort(self, reason: str) -> list[Effect]:
        """Give up: tell the peer and finish as failed.

        Returns:
            ``[Send(Abort(reason)), Failed(reason, by_peer=False)]``.

        Raises:
            TypeError: `reason` is not a `str`.
            ValueError: `reason` is empty or longer than 1024 characters.
            LocalProtocolError: The exchange has already finished.
        """
        message = Abort(reason)
        if self.finished:
            raise LocalProtocolError(f"cannot abort in state {self._state.name}")
        effects: list[Effect] = [self._send(message), Failed(reason, by_peer=False)]
        self._end(ExchangeState.FAILED)
        return effects

    # -- initiator ---------------------------------------------------------------------------

    def _initiator_receive(self, message: Message, now: float | None) -> list[Effect]:
        state = self._state
        if state is ExchangeState.AWAIT_NODES:
            pending = self._pending
            assert pending is not None
            hello, self._hello = self._hello, False
            if isinstance(message, Nodes):
                try:
                    return self._take_nodes(pending, message, now)
                except RemoteProtocolError:
                    self._hello = hello
                    raise
            if hello and isinstance(message, InSync):
                self._count(message)
                self._in_sync = True
                return [self._done()]
            if hello and isinstance(message, UseDepth) and message.depth < self._tree.depth:
                self._count(message)
                self._tree = self._tree.fold(message.depth)
                return [self._say_hello()]
            self._hello = hello
        elif (
            state is ExchangeState.AWAIT_ITEMS
            and isinstance(message, Items)
            and self._remote_items is None
        ):
            return self._take_items(message)
        raise RemoteProtocolError(f"unexpected {type(message).__name__} in state {state.name}")

    def _take_nodes(self, pending: GetNodes, message: Nodes, now: float | None) -> list[Effect]:
        tree = self._tree
        width = 1 << (pending.height - pending.to_height)
        expected = len(pending.parents) * width * DIGEST_SIZE
        if message.height != pending.to_height or len(message.digests) != expected:
            raise RemoteProtocolError(
                f"Nodes answer has height {message.height} and {len(message.digests)} bytes; "
                f"expected height {pending.to_height} and {expected} bytes"
            )
        self._count(message)
        mine = tree._level(pending.to_height)
        theirs = message.digests
        block = width * DIGEST_SIZE
        differing: list[int] = []
        for position, parent in enumerate(pending.parents):
            remote = theirs[position * block : (position + 1) * block]
            first = parent * width
            local = mine[first * DIGEST_SIZE : (first + width) * DIGEST_SIZE]
            if local == remote:
                continue
            differing.extend(
                first + offset // DIGEST_SIZE
                for offset in range(0, block, DIGEST_SIZE)
                if local[offset : offset + DIGEST_SIZE] != remote[offset : offset + DIGEST_SIZE]
            )
        self._pending = None
        if pending.to_height > 0:
            if not differing:  # the trees converged while we descended
                return self._finish_descent(())
            to_height = max(pending.to_height - self._levels, 0)
            request = GetNodes(pending.to_height, tuple(differing), to_height)
            self._pending = request
            return [self._send(request, request=True)]
        if self._confirming:
            self._confirming = False
            still = tuple(differing)
            kept = set(still)
            self._unconfirmed = tuple(i for i in self._first_pass if i not in kept)
            return self._finish_descent(still)
        self._first_pass = tuple(differing)
        if self._confirm_delay is None or not differing:
            return self._finish_descent(self._first_pass)
        assert now is not None  # _check_now enforced it
        if self._confirm_delay == 0:
            return self._recheck()
        self._state = ExchangeState.AWAIT_CONFIRM
        self._deadline = now + self._confirm_delay
        return []  # deadline() now says when to call on_timer

    def _recheck(self) -> list[Effect]:
        request = GetNodes(0, self._first_pass, 0)
        self._pending = request
        self._confirming = True
        self._deadline = None
        self._state = ExchangeState.AWAIT_NODES
        return [self._send(request, request=True)]

    def _finish_descent(self, segments: tuple[int, ...]) -> list[Effect]:
        self._segments = segments
        if not segments or not self._fetch_items:
            close = self._send(Close())
            return [close, self._done()]
        fetched = segments
        if self._max_segments is not None:
            fetched = segments[: self._max_segments]
        self._fetched = fetched
        self._state = ExchangeState.AWAIT_ITEMS
        ranges = tuple(self._tree.ranges_of(fetched))
        return [self._send(GetItems(fetched), request=True), LoadItems(fetched, ranges)]

    def _take_items(self, message: Items) -> list[Effect]:
        wanted = set(self._fetched)
        segment = self._tree.segment
        for key in message.keys:
            try:
                index = segment(key)
            except ValueError:
                index = -1
            if index not in wanted:
                raise RemoteProtocolError(
                    f"Items holds key {key!r:.80}, outside the asked segments"
                )
        self._count(message)
        digests = message.digests
        self._remote_items = {
            key: digests[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE]
            for i, key in enumerate(message.keys)
        }
        if self._local_items is not None:
            return [self._done()]
        return []

    # -- responder ---------------------------------------------------------------------------

    def _responder_receive(self, message: Message) -> list[Effect]:  # noqa: PLR0911 - per message
        state = self._state
        tree = self._tree
        if state is ExchangeState.IDLE and isinstance(message, Hello):
            if message.depth - message.to_height > MAX_LEVELS_PER_ROUND or (
                message.to_height > message.depth
            ):
                raise RemoteProtocolError(
                    f"Hello asks for height {message.to_height} below depth {message.depth}"
                )
            self._count(message)
            shape = (message.start, message.end, message.fingerprint)
            if shape != (tree.start, tree.end, tree.fingerprint):
                reason = (
                    "tree ranges or token functions differ: peer has "
                    f"depth={message.depth} range=[{message.start:#x}, {message.end:#x}) "
                    f"fingerprint={message.fingerprint:#x}, we have {tree._describe_shape()}"
                )
                effects: list[Effect] = [self._send(Abort(reason)), Failed(reason, by_peer=False)]
                self._end(ExchangeState.FAILED)
                return effects
            self._stats[0] += 1
            if message.depth > tree.depth:  # the initiator folds to ours and says hello again
                return [self._send(UseDepth(tree.depth))]
            if message.depth < tree.depth:
                tree = self._tree = tree.fold(message.depth)
            if message.root == tree.root:
                self._in_sync = True
                return [self._send(InSync()), self._done()]
            self._state = ExchangeState.SERVING
            answer = Nodes(message.to_height, bytes(tree._level(message.to_height)))
            return [self._send(answer)]
        if state is ExchangeState.SERVING:
            if isinstance(message, GetNodes):
                return [self._send(self._answer_nodes(message))]
            if isinstance(message, GetItems):
                if not message.segments or message.segments[-1] >= tree.segments:
                    raise RemoteProtocolError(
                        f"GetItems asks for segments outside 0..{tree.segments - 1}"
                    )
                self._count(message)
                self._fetched = self._segments = message.segments
                self._state = ExchangeState.LOADING
                ranges = tuple(tree.ranges_of(message.segments))
                return [LoadItems(message.segments, ranges)]
            if isinstance(message, Close):
                self._count(message)
                return [self._done()]
        raise RemoteProtocolError(f"unexpected {type(message).__name__} in state {state.name}")

    def _answer_nodes(self, message: GetNodes) -> Nodes:
        tree = self._tree
        height, to_height, parents = message.height, message.to_height, message.parents
        if not (to_height <= height <= tree.depth and height - to_height <= MAX_LEVELS_PER_ROUND):
            raise RemoteProtocolError(
                f"GetNodes from height {height} to {to_height} does not fit depth {tree.depth}"
            )
        if not parents or parents[-1] >= 1 << (tree.depth - height):
            raise RemoteProtocolError(f"GetNodes parents must be 1..n nodes at height {height}")
        self._count(message)
        self._stats[0] += 1
        level = tree._level(to_height)
        width = DIGEST_SIZE << (height - to_height)
        return Nodes(
            to_height,
            b"".join(bytes(level[parent * width : (parent + 1) * width]) for parent in parents),
        )


# -- an in-process driver ----------------------------------------------------------------------

ItemSource: TypeAlias = (
    "Mapping[bytes, bytes] | Mapping[str, bytes] | Mapping[str | bytes, bytes]"
    " | Callable[[LoadItems], Iterable[tuple[str | bytes, bytes]]]"
)
"""Where `run_exchange` reads a side's items: a mapping from key to digest, or a function that
answers a [`LoadItems`][dynamo_core.merkle.LoadItems] request with ``(key, digest)`` pairs."""


def _load(source: ItemSource, request: LoadItems) -> Iterable[tuple[str | bytes, bytes]]:
    if callable(source):
        return source(request)
    return source.items()


def run_exchange(
    initiator: MerkleTree,
    responder: MerkleTree,
    initiator_items: ItemSource,
    responder_items: ItemSource,
    *,
    levels_per_round: int = 2,
    confirm_delay: float | None = None,
    fetch_items: bool = True,
    max_segments: int | None = None,
    before_confirm: Callable[[], object] | None = None,
) -> ExchangeReport:
    """Run a whole exchange between two trees in this process and return the initiator's report.

    A small driver for two stores in one process (a sync job, a test, a benchmark): every message
    goes through [`encode_message`][dynamo_core.merkle.encode_message] and
    [`decode_message`][dynamo_core.merkle.decode_message], so the byte counts are the real wire
    sizes. Time is virtual: a confirmation timer fires at once, after `before_confirm` (a hook
    where a test can let in-flight writes land). Cost: that of the exchange, plus reading items.

    Args:
        initiator: The tree of the side that gets the report.
        responder: The peer's tree: the same range and token function; its depth may differ
            (the exchange runs at the shallower depth).
        initiator_items: The initiator's items (see [`ItemSource`][dynamo_core.merkle.ItemSource]).
        responder_items: The responder's items.
        levels_per_round: As for [`MerkleExchange`][dynamo_core.merkle.MerkleExchange].
        confirm_delay: As for `MerkleExchange`.
        fetch_items: As for `MerkleExchange`.
        max_segments: As for `MerkleExchange`.
        before_confirm: Called before the confirmation pass, if there is one.

    Returns:
        The initiator's report.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: The trees cover different ranges or use different token functions, or an
            option is out of range.
    """
    initiator._check_foldable(responder)
    sides = {
        ExchangeRole.INITIATOR: MerkleExchange(
            initiator,
            levels_per_round=levels_per_round,
            confirm_delay=confirm_delay,
            fetch_items=fetch_items,
            max_segments=max_segments,
        ),
        ExchangeRole.RESPONDER: MerkleExchange(responder, ExchangeRole.RESPONDER),
    }
    sources = {ExchangeRole.INITIATOR: initiator_items, ExchangeRole.RESPONDER: responder_items}
    now = 0.0
    wire: list[tuple[ExchangeRole, bytes]] = []
    report: ExchangeReport | None = None

    def handle(role: ExchangeRole, effects: list[Effect]) -> None:
        nonlocal report
        peer = ExchangeRole.RESPONDER if role is ExchangeRole.INITIATOR else ExchangeRole.INITIATOR
        for effect in effects:
            match effect:
                case Send(message=message):
                    wire.append((peer, encode_message(message)))
                case LoadItems():
                    loaded = _load(sources[role], effect)
                    handle(role, sides[role].items_loaded(loaded, now))
                case Done(report=done):
                    if role is ExchangeRole.INITIATOR:
                        report = done
                case Failed(reason=reason):
                    raise ValueError(f"the exchange failed: {reason}")
                case _:  # pragma: no cover - the union is exhaustive
                    assert_never(effect)

    handle(ExchangeRole.INITIATOR, sides[ExchangeRole.INITIATOR].start(now))
    while True:
        if wire:
            role, data = wire.pop(0)
            handle(role, sides[role].receive(decode_message(data), now))
            continue
        timers = [(at, role) for role, side in sides.items() if (at := side.deadline()) is not None]
        if not timers:
            break
        at, role = min(timers, key=lambda timer: timer[0])
        now = max(now, at)
        if before_confirm is not None:
            before_confirm()
        handle(role, sides[role].on_timer(now))
    assert report is not None, "the exchange ended without a report"
    return report
