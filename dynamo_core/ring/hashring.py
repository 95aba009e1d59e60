"""The `HashRing` class: placement, lookups, membership changes and copies."""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Final, NoReturn, Self, TypeVar

import mmh3

from dynamo_core import codec
from dynamo_core._check import (
    check_key,
    check_node_id,
    check_positive_float,
    check_positive_int,
)
from dynamo_core._claim import Claim, Share, shares
from dynamo_core.errors import EmptyRingError
from dynamo_core.hashing import (
    TOKEN_BITS,
    TOKEN_SPACE,
    TokenFn,
    TokenRange,
    coalesce,
    token_function,
)
from dynamo_core.ring.bounds import (
    _EMPTY,
    DEFAULT_PARTITIONS,
    MAX_NODE_TOKENS,
    MAX_NODES,
    MAX_PARTITIONS,
    MAX_REPLICAS,
    MAX_VNODES,
    _key_id,
    _zone_key,
)
from dynamo_core.ring.encoding import decode, encode
from dynamo_core.ring.invariants import check_invariants
from dynamo_core.ring.placement import _Placement
from dynamo_core.ring.transfers import Transfer, _pair_sources, _plan

__all__ = ["HashRing"]

_MASK: Final = TOKEN_SPACE - 1
_T = TypeVar("_T")
_hash128 = mmh3.hash128


class _Keep:
    """The type of `KEEP`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep()
"""The default of `zone=` in `replace` and `update_node`: keep the zone the node has."""


def _bad_key(key: object) -> NoReturn:
    check_key(key)
    raise AssertionError("unreachable")  # pragma: no cover


class HashRing(_Placement):
    """A consistent-hash ring of named nodes with weights and optional zones.

    Args:
        replicas: How many distinct nodes hold each key (Dynamo's N), 1 to 64.
        partitions: Strategy 3 with this many equal partitions: a power of two from 1 to
            262,144. Choose at least ten times the largest cluster you expect, so each node holds
            ten or more partitions and balance stays within 10%. The default when `vnodes` is not
            given either is 4096.
        vnodes: Strategy 1 with this many tokens per unit of weight, 1 to 4096.
        hash_key: A 16-64 byte cluster secret: place keys (and strategy-1 tokens) with keyed
            BLAKE2b instead of the public MurmurHash3, so users cannot grind keys onto one node.
            Every member of a cluster must use the same secret; it is never serialized.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: both `partitions` and `vnodes` are given, or a value is out of range or
            `partitions` is not a power of two.

    Keys are `str` (hashed as UTF-8) or `bytes`. Lookups on a ring with no nodes raise
    [`EmptyRingError`][dynamo_core.errors.EmptyRingError]. A ring is mutable and not
    thread-safe: give readers a [`copy`][dynamo_core.ring.HashRing.copy] or guard it with a lock.

    The lookups of the default ring (strategy 3, unkeyed) are inlined for speed; a strategy-1 or
    keyed ring is an instance of a private subclass that goes straight to the general path.
    `isinstance(ring, HashRing)` holds for both.

    Examples:
        >>> ring = HashRing(replicas=3)
        >>> for name in ("a", "b", "c", "d"):
        ...     ring.add_node(name)
        >>> len(ring.preference_list("cart:alice"))
        3
    """

    __slots__ = (
        "_claim",
        "_fast",
        "_fingerprint",
        "_hash_key",
        "_key_id",
        "_partitions",
        "_replicas",
        "_shift",
        "_token_fn",
        "_vnodes",
        "_weights",
        "_zone_keys",
        "_zones",
    )

    def __new__(
        cls,
        replicas: int = 3,
        *,
        partitions: int | None = None,
        vnodes: int | None = None,
        hash_key: bytes | None = None,
    ) -> Self:
        """Create the ring: a private subclass when lookups cannot be inlined (see above)."""
        if cls is HashRing and (vnodes is not None or hash_key is not None):
            # Lookups of these rings cannot be inlined: give them the general path directly.
            return object.__new__(_GeneralRing)  # type: ignore[return-value]
        return object.__new__(cls)

    def __init__(
        self,
        replicas: int = 3,
        *,
        partitions: int | None = None,
        vnodes: int | None = None,
        hash_key: bytes | None = None,
    ) -> None:
        self._replicas = check_positive_int(replicas, "replicas", maximum=MAX_REPLICAS)
        if partitions is not None and vnodes is not None:
            raise ValueError("give partitions (strategy 3) or vnodes (strategy 1), not both")
        if vnodes is not None:
            self._vnodes: int | None = check_positive_int(vnodes, "vnodes", maximum=MAX_VNODES)
            self._partitions: int | None = None
        else:
            if partitions is None:
                partitions = DEFAULT_PARTITIONS
            check_positive_int(partitions, "partitions", maximum=MAX_PARTITIONS)
            if partitions & (partitions - 1):
                raise ValueError(
                    f"partitions must be a power of two (so a lookup is a shift), got {partitions}"
                )
            self._partitions = partitions
            self._vnodes = None
        self._token_fn: TokenFn = token_function(hash_key)
        self._hash_key = hash_key
        self._key_id = None if hash_key is None else _key_id(hash_key)
        self._shift = TOKEN_BITS - (self._partitions.bit_length() - 1) if self._partitions else 0
        # The shift of the inlined lookup, or None (not an int: the shift raises TypeError).
        self._fast: int = self._shift if self._partitions and hash_key is None else None  # type: ignore[assignment]
        self._weights: dict[str, float] = {}
        self._zones: dict[str, str | None] = {}
        self._zone_keys: dict[str, tuple[str, str]] = {}
        self._claim: Claim | None = None
        self._collided = False
        self._starts: list[int] = []
        self._owners: list[str] = _EMPTY
        self._plists: list[tuple[str, ...]] = _EMPTY
        self._spans: list[int] = []
        self._fingerprint: str | None = None

    # -- configuration -------------------------------------------------------------------------

    @property
    def replicas(self) -> int:
        """How many distinct nodes hold each key."""
        return self._replicas

    @property
    def partitions(self) -> int | None:
        """The partition count of a strategy-3 ring, `None` for strategy 1."""
        return self._partitions

    @property
    def vnodes(self) -> int | None:
        """Tokens per unit of weight of a strategy-1 ring, `None` for strategy 3."""
        return self._vnodes

    @property
    def keyed(self) -> bool:
        """Whether keys are placed with the keyed (BLAKE2b) hash."""
        return self._hash_key is not None

    @property
    def nodes(self) -> tuple[str, ...]:
        """The members, sorted."""
        return tuple(sorted(self._weights))

    def weight(self, node: str) -> float:
        """Return `node`'s weight.

        Raises:
            ValueError: `node` is not a member.
        """
        return self._weights[self._member(node)]

    def zone(self, node: str) -> str | None:
        """Return `node`'s zone (`None` if it has none).

        Raises:
            ValueError: `node` is not a member.
        """
        return self._zones[self._member(node)]

    def __len__(self) -> int:
        return len(self._weights)

    def __contains__(self, node: object) -> bool:
        return node in self._weights

    def __repr__(self) -> str:
        """``HashRing.from_dict({...})``: the call that rebuilds the ring, with its encoding.

        The dict is [`to_dict`][dynamo_core.ring.HashRing.to_dict]'s, a Python literal: paste
        the repr into a test, or rebuild the ring from the text without `eval`:
        ``HashRing.from_dict(ast.literal_eval(ast.parse(text, mode="eval").body.args[0]))``.
        It shows the members with their weights and zones, the shape (replicas, partitions or
        vnodes) and each partition's owner. A keyed ring ends with ``hash_key=...``: the secret
        is never shown; pass it to `from_dict`. Cost: O(S).
        """
        keyed = ", hash_key=..." if self.keyed else ""
        return f"HashRing.from_dict({self.to_dict()!r}{keyed})"

    def _member(self, node: str) -> str:
        check_node_id(node)
        if node not in self._weights:
            raise ValueError(f"node {node!r} is not a member of the ring")
        return node

    # -- membership ----------------------------------------------------------------------------

    def add_node(self, node: str, *, weight: float = 1.0, zone: str | None = None) -> None:
        """Add `node` with a relative `weight`, optionally in a failure `zone`.

        Strategy 3: the node takes partitions from the others, only as many as balance requires,
        spaced so that any `replicas` consecutive partitions stay on distinct nodes and zones
        where possible; no other node gains a partition. Strategy 1: the node places its tokens.

        Cost: strategy 3, O(Q/n * replicas) for the claim plus O(moved * span) to refresh the
        preference lists, O(Q * replicas) while the ring has at most `replicas` nodes; strategy 1,
        O(t * (T + span)) for the node's t tokens among T.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: `node` is already a member, an argument is out of range, the ring is
                full, or (strategy 3) a node's share would be under one partition. The ring is
                unchanged.
        """
        self.add_nodes([node], weights={node: weight}, zones={node: zone})

    def add_nodes(
        self,
        nodes: Iterable[str],
        *,
        weights: Mapping[str, float] | None = None,
        zones: Mapping[str, str | None] | None = None,
    ) -> None:
        """Add several nodes in one step (weight 1.0 and no zone unless given).

        Strategy 3: one claim for all of them, so the partitions that move are exactly the new
        nodes' shares, as with one join at a time, but each joiner takes from the nodes of its
        own zone where it can. Growing a zoned ring by one node per zone in one call keeps the
        zones spaced, where joins one by one make a zone briefly larger than the others and
        leave some preference lists skipping a repeated zone. While the ring has fewer nodes
        than `replicas`, nodes join one at a time, in the order given.

        Cost: as `add_node` for each node, with one preference-list refresh.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: a node is already a member or given twice, `weights` or `zones` name a
                node not being added, an argument is out of range, the ring would be too full,
                or (strategy 3) a node's share would be under one partition. The ring is
                unchanged.
        """
        new, new_weights, new_zones = self._check_new(nodes, weights, zones)
        if not new:
            return
        targets: dict[str, Share] = {}
        if self._vnodes is None:
            targets = self._shares_or_raise({**self._weights, **new_weights})
        self._fingerprint = None
        if self._vnodes is not None:
            for node in new:
                before = self._windows()
                self._admit(node, new_weights[node], new_zones[node])
                self._vnodes_insert(node, before)
            return
        assert self._partitions is not None
        queue = list(new)
        while queue and len(self._weights) < self._replicas:
            # The slot layout of a small ring takes its nodes one at a time.
            node = queue.pop(0)
            self._join([node], {node: new_weights[node]}, {node: new_zones[node]})
        if queue:
            self._join(queue, new_weights, new_zones, targets=targets)

    def _check_new(
        self,
        nodes: Iterable[str],
        weights: Mapping[str, float] | None,
        zones: Mapping[str, str | None] | None,
    ) -> tuple[list[str], dict[str, float], dict[str, str | None]]:
        """Validate a batch of joiners; return them with their weights and zones."""
        if isinstance(nodes, str):
            raise TypeError("nodes must be an iterable of node ids, not a single str")
        new = list(nodes)
        for node in new:
            check_node_id(node)
            if node in self._weights:
                raise ValueError(f"node {node!r} is already a member of the ring")
        if len(set(new)) != len(new):
            raise ValueError("nodes must not repeat a node")
        if len(self._weights) + len(new) > MAX_NODES:
            raise ValueError(f"the ring would be too full: at most {MAX_NODES} nodes")
        given_weights = dict(weights or {})
        given_zones = dict(zones or {})
        for name, mapping in (("weights", given_weights), ("zones", given_zones)):
            stray = sorted(set(mapping) - set(new))
            if stray:
                raise ValueError(f"{name} names {stray[0]!r}, which is not being added")
        new_weights = {
            node: check_positive_float(given_weights.get(node, 1.0), "weight") for node in new
        }
        new_zones: dict[str, str | None] = {}
        for node in new:
            zone = given_zones.get(node)
            if zone is not None:
                check_node_id(zone, "zone")
            new_zones[node] = zone
            if self._vnodes is not None:
                count = self._token_count(new_weights[node])
                if count > MAX_NODE_TOKENS:
                    raise ValueError(
                        f"weight {new_weights[node]!r} gives {count} tokens at "
                        f"vnodes={self._vnodes}; the limit per node is {MAX_NODE_TOKENS}"
                    )
        return new, new_weights, new_zones

    def _admit(self, node: str, weight: float, zone: str | None) -> None:
        self._weights[node] = weight
        self._zones[node] = zone
        self._zone_keys[node] = _zone_key(node, zone)

    def _join(
        self,
        nodes: Sequence[str],
        weights: Mapping[str, float],
        zones: Mapping[str, str | None],
        *,
        targets: Mapping[str, Share] | None = None,
    ) -> None:
        """Strategy 3: admit `nodes` and run one claim for them."""
        assert self._partitions is not None
        before = self._windows()
        for node in nodes:
            self._admit(node, weights[node], zones[node])
        if targets is None:
            targets = self._shares_or_raise(self._weights)
        if self._claim is None:
            owners = [nodes[0]] * self._partitions
            self._claim = Claim(owners, self._zone_keys, self._replicas, zoned=self._zoned())
            self._owners = owners
            self._refresh_all()
            return
        starts = {node: self._token_fn(node.encode("utf-8")) >> self._shift for node in nodes}
        self._claim.join(nodes, targets, starts, zoned=self._zoned())
        self._after_change(before)

    def replace(
        self,
        old: str,
        new: str,
        *,
        weight: float | None = None,
        zone: str | _Keep | None = KEEP,
    ) -> None:
        """Put `new` in `old`'s place: Riak's ``cluster replace``.

        `new` takes `old`'s weight and zone unless `weight` or `zone` says otherwise (pass
        ``zone=None`` for no zone). Strategy 3: `new` takes every partition of `old` and
        nothing else changes, so ``old_ring.transfers_to(ring)`` sends exactly `old`'s data,
        all of it to `new`; a different weight or zone then rebalances and respaces as
        [`update_node`][dynamo_core.ring.HashRing.update_node] does. Strategy 1: `new` places
        its own tokens (token positions derive from the name), as `remove_node` then
        `add_node` would.

        Cost: strategy 3, O(Q * replicas) to recount spacing plus O(moved * span) to refresh
        the preference lists; strategy 1, as a leave and a join.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: `old` is not a member, `new` is one, or an argument is out of range
                (a different weight must also give every node at least one partition). The
                ring is unchanged.
        """
        self._member(old)
        check_node_id(new, "new")
        if new in self._weights:
            raise ValueError(f"node {new!r} is already a member of the ring")
        new_weight = (
            self._weights[old] if weight is None else check_positive_float(weight, "weight")
        )
        new_zone = self._zones[old] if isinstance(zone, _Keep) else zone
        if new_zone is not None:
            check_node_id(new_zone, "zone")
        if self._vnodes is not None:
            self._check_new([new], {new: new_weight}, {new: new_zone})
            self.remove_node(old)
            self.add_node(new, weight=new_weight, zone=new_zone)
            return
        targets = None
        if new_weight != self._weights[old]:
            weights = {n: w for n, w in self._weights.items() if n != old}
            targets = self._shares_or_raise({**weights, new: new_weight})
        self._fingerprint = None
        before = self._windows()
        claim = self._claim
        assert claim is not None
        self._admit(new, self._weights[old], self._zones[old])
        claim.rename(old, new)
        del self._weights[old], self._zones[old], self._zone_keys[old]
        if (new_weight, new_zone) != (self._weights[new], self._zones[new]):
            self._update(new, new_weight, new_zone, targets)
        self._after_change(before)

    def update_node(
        self, node: str, *, weight: float | None = None, zone: str | _Keep | None = KEEP
    ) -> None:
        """Change a member's `weight` or `zone` in place (unchanged unless given).

        Strategy 3: the node's share follows its new weight — a heavier node takes partitions
        from the others as a join would, a lighter one hands some out as a leave would — and
        the claim then restores spacing (zones included) as after any change; `transfers_to`
        gives the plan. Strategy 1: the node's tokens are placed again for the new weight.

        Cost: as a join or a leave of the node's change in share.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: `node` is not a member or an argument is out of range (every node
                must keep at least one partition). The ring is unchanged.
        """
        self._member(node)
        new_weight = (
            self._weights[node] if weight is None else check_positive_float(weight, "weight")
        )
        new_zone = self._zones[node] if isinstance(zone, _Keep) else zone
        if new_zone is not None:
            check_node_id(new_zone, "zone")
        if (new_weight, new_zone) == (self._weights[node], self._zones[node]):
            return
        if self._vnodes is not None:
            count = self._token_count(new_weight)
            if count > MAX_NODE_TOKENS:
                raise ValueError(
                    f"weight {new_weight!r} gives {count} tokens at vnodes={self._vnodes}; "
                    f"the limit per node is {MAX_NODE_TOKENS}"
                )
            self._fingerprint = None
            self._admit(node, new_weight, new_zone)
            self._rebuild_vnodes()
            return
        targets = self._shares_or_raise({**self._weights, node: new_weight})
        self._fingerprint = None
        before = self._windows()
        self._update(node, new_weight, new_zone, targets)
        self._after_change(before)

    def _update(
        self, node: str, weight: float, zone: str | None, targets: Mapping[str, Share] | None
    ) -> None:
        """Strategy 3: give `node` a new weight and zone, then rebalance and respace."""
        claim = self._claim
        assert claim is not None
        self._admit(node, weight, zone)
        # A new zone changes the walks that read the node's partitions even if none moves.
        claim.changed.update(pos for pos, owner in enumerate(self._owners) if owner == node)
        if targets is None:
            targets = self._shares_or_raise(self._weights)
        claim.reshape(targets, zoned=self._zoned())

    def remove_node(self, node: str) -> None:
        """Remove `node`; its data's new homes are given by `transfers_to`.

        Strategy 3: the leaver's partitions go to the remaining nodes, each receiving what its
        new share allows, so nothing else moves. Strategy 1: its tokens are removed.

        Cost: strategy 3, O(Q + (Q/n) * n) for the hand-off plus O(moved * span) to refresh the
        preference lists; strategy 1, O(t * T + span * t).

        Raises:
            TypeError: `node` is not a `str`.
            ValueError: `node` is not a member. The ring is unchanged.
        """
        self.remove_nodes([node])

    def remove_nodes(self, nodes: Iterable[str]) -> None:
        """Remove several nodes in one step: one hand-off of all their partitions.

        Raises:
            TypeError: a node id is not a `str`, or `nodes` is a single `str`.
            ValueError: a node is not a member, or is given twice. The ring is unchanged.
        """
        if isinstance(nodes, str):
            raise TypeError("nodes must be an iterable of node ids, not a single str")
        leaving = list(nodes)
        for node in leaving:
            self._member(node)
        if len(set(leaving)) != len(leaving):
            raise ValueError("nodes must not repeat a node")
        if not leaving:
            return
        self._fingerprint = None
        if self._vnodes is not None:
            for node in leaving:
                before = self._windows()
                del self._weights[node], self._zones[node], self._zone_keys[node]
                self._vnodes_delete(node, before)
            return
        before = self._windows()
        for node in leaving:
            del self._weights[node], self._zones[node]
        claim = self._claim
        assert claim is not None
        if self._weights:
            # The claim still reads the leavers' zones while it hands their partitions off.
            claim.leave(leaving, self._shares_or_raise(self._weights), zoned=self._zoned())
        for node in leaving:
            del self._zone_keys[node]
        if not self._weights:
            self._claim = None
            self._owners = _EMPTY
            self._plists = _EMPTY
            self._spans = []
            return
        self._after_change(before)

    def _shares_or_raise(self, weights: Mapping[str, float]) -> dict[str, Share]:
        assert self._partitions is not None
        targets = shares(self._partitions, weights)
        small = [node for node in sorted(targets) if targets[node].floor < 1]
        if small:
            raise ValueError(
                f"node {small[0]!r}'s share would be under one of the {self._partitions} "
                "partitions: use more partitions, or weights closer together"
            )
        return targets

    def _after_change(self, before: tuple[int, int, bool]) -> None:
        claim = self._claim
        assert claim is not None
        changed, claim.changed = claim.changed, set()
        if self._windows() != before:
            self._refresh_all()
        else:
            self._refresh(changed)

    # -- lookups -------------------------------------------------------------------------------

    def token(self, key: str | bytes) -> int:
        """Return the token of `key` on this ring's circle. Cost: O(len(key)).

        Raises:
            TypeError: `key` is neither `str` nor `bytes`.
            ValueError: `key` is a `str` that cannot be encoded as UTF-8.
        """
        if type(key) is bytes and self._key_id is None:
            return _hash128(key, 0, True, False) & _MASK  # the default token, inlined
        check_key(key)
        return self._token_fn(key)

    def _segment(self, tok: int) -> int:
        if self._partitions is not None:
            return tok >> self._shift
        if not self._starts:
            raise EmptyRingError("the ring has no nodes: add a node before looking keys up")
        return bisect.bisect_right(self._starts, tok) - 1

    def preference_list(self, key: str | bytes) -> tuple[str, ...]:
        """Return the nodes that hold `key`: ``min(replicas, len(nodes))`` distinct nodes.

        Walking clockwise from the key, nodes already chosen are skipped; where zones are set,
        nodes of zones not yet chosen come first, and other nodes fill in only when there are
        fewer zones than replicas. The first node is the key's owner.

        Cost: strategy 3, one hash, one shift and one index (O(len(key))); strategy 1, plus a
        binary search, O(log T).

        Raises:
            TypeError: `key` is neither `str` nor `bytes`.
            ValueError: `key` is a `str` that cannot be encoded as UTF-8.
            EmptyRingError: the ring has no nodes.
        """
        kind = type(key)
        if kind is str or kind is bytes:
            # The token hash and the partition shift, inlined for the common case (strategy 3,
            # unkeyed); the tests check that it agrees with `hashing.token`. Other rings have
            # `_fast = None`: the shift raises TypeError and the general path runs (HashRing
            # gives them a subclass that goes there directly).
            raw = key.encode() if isinstance(key, str) else key
            try:
                return self._plists[(_hash128(raw, 0, True, False) & _MASK) >> self._fast]
            except TypeError:
                pass
        return self._plists[self._segment(self.token(key))]

    def owner(self, key: str | bytes) -> str:
        """Return the node that owns `key`: the first of its preference list.

        Cost: as [`preference_list`][dynamo_core.ring.HashRing.preference_list].

        Raises:
            TypeError: `key` is neither `str` nor `bytes`.
            ValueError: `key` is a `str` that cannot be encoded as UTF-8.
            EmptyRingError: the ring has no nodes.
        """
        kind = type(key)
        if kind is str or kind is bytes:  # inlined as in `preference_list`
            raw = key.encode() if isinstance(key, str) else key
            try:
                return self._owners[(_hash128(raw, 0, True, False) & _MASK) >> self._fast]
            except TypeError:
                pass
        return self._owners[self._segment(self.token(key))]

    def preference_list_for_token(self, tok: int) -> tuple[str, ...]:
        """Return the preference list of a token (as `preference_list` does for a key).

        Raises:
            TypeError: `tok` is not an `int`.
            ValueError: `tok` is outside ``[0, 2**64)``.
            EmptyRingError: the ring has no nodes.
        """
        if type(tok) is not int:
            raise TypeError(f"tok must be an int token, not {type(tok).__name__}")
        if not 0 <= tok < TOKEN_SPACE:
            raise ValueError(f"tok must be in [0, 2**64), got {tok}")
        return self._plists[self._segment(tok)]

    def walk(self, key: str | bytes) -> Iterator[str]:
        """Iterate over every node once: the preference list, then the rest in ring order.

        The nodes after the preference list are the fallbacks of a sloppy quorum, in the order
        to try them; none repeats a node already yielded. Nodes that own no segment (possible
        only in a strategy-1 ring whose tokens collide) come last, sorted.

        Cost: O(1) to start; O(S) for S segments if iterated to the end.

        Raises:
            TypeError: `key` is neither `str` nor `bytes`.
            ValueError: `key` is a `str` that cannot be encoded as UTF-8.
            EmptyRingError: the ring has no nodes (raised by this call, not by iteration).
        """
        start = self._segment(self.token(key))
        plist = self._plists[start]
        return self._walk_from(start, plist)

    def _placement(self, key: str | bytes) -> tuple[tuple[str, ...], Iterator[str]]:
        """`preference_list(key)` and `walk(key)` with one hash (a node's request path)."""
        start = self._segment(self.token(key))
        plist = self._plists[start]
        return plist, self._walk_from(start, plist)

    def _walk_from(self, start: int, plist: tuple[str, ...]) -> Iterator[str]:
        yield from plist
        seen = set(plist)
        total = len(self._weights)
        owners = self._owners
        size = len(owners)
        pos = start
        for _ in range(size):
            if len(seen) == total:
                return
            node = owners[pos]
            if node not in seen:
                seen.add(node)
                yield node
            pos += 1
            if pos == size:
                pos = 0
        for node in sorted(self._weights):
            if node not in seen:
                yield node

    def partition(self, key: str | bytes) -> int:
        """Return the index of the partition that holds `key` (strategy 3 only). Cost: O(len(key)).

        Raises:
            TypeError: `key` is neither `str` nor `bytes`.
            ValueError: the ring uses strategy 1, or `key` cannot be encoded as UTF-8.
        """
        if self._partitions is None:
            raise ValueError("partition() needs a strategy-3 ring (partitions=...), not vnodes")
        return self.token(key) >> self._shift

    def partition_range(self, index: int) -> TokenRange:
        """Return the token range of partition `index` (strategy 3 only). Cost: O(1).

        Raises:
            TypeError: `index` is not an `int`.
            ValueError: the ring uses strategy 1, or `index` is outside ``0 .. partitions - 1``.
        """
        if self._partitions is None:
            raise ValueError("partition_range() needs a strategy-3 ring, not vnodes")
        if type(index) is not int:
            raise TypeError(f"index must be an int, not {type(index).__name__}")
        if not 0 <= index < self._partitions:
            raise ValueError(f"index must be in 0..{self._partitions - 1}, got {index}")
        return TokenRange(index << self._shift, (index + 1) << self._shift)

    def partition_of(self, tok: int) -> int:
        """Return the index of the partition that holds token `tok` (strategy 3 only).

        Riak's ``hash_to_partition_id``: ``tok >> (64 - log2(Q))``, so partition i covers
        [`partition_range(i)`][dynamo_core.ring.HashRing.partition_range] and
        ``partition(key) == partition_of(token(key))``. Cost: O(1).

        Raises:
            TypeError: `tok` is not an `int`.
            ValueError: the ring uses strategy 1, or `tok` is outside ``[0, 2**64)``.
        """
        if self._partitions is None:
            raise ValueError("partition_of() needs a strategy-3 ring (partitions=...), not vnodes")
        if type(tok) is not int:
            raise TypeError(f"tok must be an int token, not {type(tok).__name__}")
        if not 0 <= tok < TOKEN_SPACE:
            raise ValueError(f"tok must be in [0, 2**64), got {tok}")
        return tok >> self._shift

    # -- spacing -------------------------------------------------------------------------------

    def spacing_violations(self) -> tuple[int, ...]:
        """Return where the spacing rule fails (Riak's ``meets_target_n``, as a list).

        The rule: any `replicas` consecutive partitions, wrapping from the last to the first,
        belong to distinct nodes, and, when the members have at least `replicas` distinct zones
        (a node without a zone counts as its own), to distinct zones. The result holds the
        index of the first partition of every window that breaks it, in order; it is empty
        when the rule holds and when the ring is empty. A ring with fewer members than
        `replicas` breaks it everywhere. Cost: O(Q * replicas).

        Raises:
            ValueError: the ring uses strategy 1.
        """
        if self._partitions is None:
            raise ValueError("spacing_violations() needs a strategy-3 ring, not vnodes")
        if not self._weights:
            return ()
        owners = self._owners
        keys = self._zone_keys
        window = self._replicas
        rows: list[Sequence[object]] = [owners]
        if self._zoned() and len(set(keys.values())) >= window:
            rows.append([keys[node] for node in owners])
        size = len(owners)
        bad: list[int] = []
        for start in range(size):
            for labels in rows:
                seen = {labels[(start + i) % size] for i in range(window)}
                if len(seen) < window:
                    bad.append(start)
                    break
        return tuple(bad)

    def spacing_possible(self) -> bool:
        """Whether a layout meeting the spacing rule exists for the members' partition counts.

        With c the most partitions one label holds (the label being the zone when there are at
        least `replicas` zones, else the node) and Q partitions, a spaced layout exists if and
        only if there are at least `replicas` members and ``c * replicas <= Q`` (see the ring
        concepts page). The claim then always produces one. Cost: O(n) for n members.

        Raises:
            ValueError: the ring uses strategy 1.
        """
        if self._partitions is None:
            raise ValueError("spacing_possible() needs a strategy-3 ring, not vnodes")
        return self._claim is not None and self._claim.spacing_possible()

    # -- segments, ranges, ownership -------------------------------------------------------------

    def _segment_bounds(self) -> list[tuple[int, int]]:
        """The ``(start, end)`` tokens of every segment in ring order (end may wrap)."""
        if self._partitions is not None:
            if not self._weights:
                return []
            step = 1 << self._shift
            return [(i * step, (i + 1) * step) for i in range(self._partitions)]
        starts = self._starts
        if not starts:
            return []
        ends = [*starts[1:], starts[0]]
        # Only the last segment can end at token 0, and then it ends at the top of the circle.
        return [(s, e or TOKEN_SPACE) for s, e in zip(starts, ends, strict=True)]

    def segments(self) -> list[tuple[TokenRange, tuple[str, ...]]]:
        """Return every segment of the ring with its preference list, in token order.

        For strategy 3 the segments are the partitions; for strategy 1 the intervals between
        consecutive tokens (the last one wraps past ``2**64``). Cost: O(S).
        """
        return [
            (TokenRange(s, e), plist)
            for (s, e), plist in zip(self._segment_bounds(), self._plists, strict=True)
        ]

    def ranges(self, node: str, *, replicated: bool = False) -> list[TokenRange]:
        """Return the token ranges `node` owns (or, with `replicated`, holds any replica of).

        Adjacent ranges are merged, and a range that wraps is returned as its two pieces, so the
        result is sorted and no two ranges touch (see
        [`coalesce`][dynamo_core.hashing.coalesce]). Cost: O(S log S).

        Raises:
            ValueError: `node` is not a member.
        """
        self._member(node)
        out = []
        for (s, e), plist in zip(self._segment_bounds(), self._plists, strict=True):
            if (node in plist) if replicated else (plist[0] == node):
                out.append(TokenRange(s, e))
        return coalesce(out)

    def ownership(self, *, replicated: bool = False) -> dict[str, float]:
        """Return each node's share of the key space, keyed by node in sorted order.

        The primary shares (each key counted once, for its owner) sum to 1. With `replicated`,
        a node's share counts every key it holds a replica of, and the shares sum to
        ``min(replicas, len(nodes))``. An empty ring returns ``{}``. Cost: O(S * replicas).
        """
        totals = dict.fromkeys(sorted(self._weights), 0)
        for (s, e), plist in zip(self._segment_bounds(), self._plists, strict=True):
            size = e - s if e > s else TOKEN_SPACE - s + e
            for node in plist if replicated else plist[:1]:
                totals[node] += size
        return {node: amount / TOKEN_SPACE for node, amount in totals.items()}

    # -- copies, plans, identity -----------------------------------------------------------------

    def copy(self) -> HashRing:
        """Return an independent copy (mutating one never changes the other). Cost: O(S)."""
        new = object.__new__(type(self))
        for name in (
            "_replicas",
            "_partitions",
            "_vnodes",
            "_token_fn",
            "_hash_key",
            "_key_id",
            "_shift",
            "_fast",
            "_fingerprint",
            "_collided",
        ):
            setattr(new, name, getattr(self, name))
        new._weights = dict(self._weights)
        new._zones = dict(self._zones)
        new._zone_keys = dict(self._zone_keys)
        new._starts = list(self._starts)
        new._spans = list(self._spans)
        if self._weights:
            new._owners = list(self._owners)
            new._plists = list(self._plists)
        else:
            new._owners = _EMPTY
            new._plists = _EMPTY
        new._claim = None
        if self._claim is not None:
            new._claim = self._claim.copy(new._owners, new._zone_keys)
        return new

    def transfers_to(self, other: HashRing) -> list[Transfer]:
        """Return the data movements that turn this ring's placement into `other`'s.

        For every token range whose replica set differs between the two rings, each node that
        is a replica in `other` but not here (a *target*) must receive the range's data from a
        node that held it here (the *source*). The source is a node that stops being a replica
        of the range but stays a member (on a join, the node whose partition the joiner took);
        if there is none, the first node of this ring's preference list that is still a member
        of `other` (on a leave), or the first one if none is. Adjacent ranges with the same
        source and target are merged into one transfer. Ranges that only lose replicas need no
        transfer, and neither does anything when this ring is empty.

        Typical use: ``old = ring.copy(); ring.add_node("e"); plan = old.transfers_to(ring)``.

        Cost: O((S1 + S2) * replicas) for the two rings' segment counts.

        Returns:
            The transfers, sorted by range start, then source, then target.

        Raises:
            TypeError: `other` is not a `HashRing`.
            ValueError: the rings place keys with different hash functions.
        """
        if not isinstance(other, HashRing):
            raise TypeError(f"other must be a HashRing, not {type(other).__name__}")
        if self._key_id != other._key_id:
            raise ValueError("the rings use different token hashes: their ranges do not correspond")
        if not self._weights or not other._weights:
            return []
        mine = self._segment_bounds()
        theirs = other._segment_bounds()
        cuts = sorted({s for s, _ in mine} | {s for s, _ in theirs})
        my_starts = [s for s, _ in mine]
        their_starts = [s for s, _ in theirs]
        members = other._weights
        pieces: list[tuple[int, tuple[tuple[str, str], ...]]] = []
        for cut in cuts:
            before = self._plists[bisect.bisect_right(my_starts, cut) - 1]
            after = other._plists[bisect.bisect_right(their_starts, cut) - 1]
            moves: tuple[tuple[str, str], ...] = ()
            if before != after:
                new = [node for node in after if node not in before]
                if new:
                    moves = _pair_sources(before, after, new, members)
            pieces.append((cut, moves))
        return _plan(pieces)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HashRing):
            return NotImplemented
        return self._identity() == other._identity()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def _identity(self) -> tuple[object, ...]:
        nodes = tuple(
            (node, self._weights[node], self._zones[node]) for node in sorted(self._weights)
        )
        owners = tuple(self._owners) if self._partitions is not None and self._weights else ()
        return (self._replicas, self._partitions, self._vnodes, self._key_id, nodes, owners)

    @property
    def fingerprint(self) -> str:
        """A short digest of the ring's state, equal for equal rings (16 hex digits).

        Gossip it to find out cheaply whether two members see the same ring version. It is
        BLAKE2b-64 over the canonical encoding (`codec.dumps(ring.to_dict())`); cached until the
        next change. Cost: O(S) after a change, O(1) otherwise.
        """
        if self._fingerprint is None:
            data = codec.dumps(self.to_dict())
            self._fingerprint = hashlib.blake2b(data, digest_size=8).hexdigest()
        return self._fingerprint

    # -- serialization -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode the ring as a JSON-safe dict (an envelope of type ``"hash_ring"``).

        Fields: ``replicas``; ``partitions`` or ``vnodes``; ``hash`` (``"murmur3"`` or
        ``"blake2b-keyed"``, with ``key_id``, a public fingerprint of the secret, never the
        secret); ``nodes``, sorted ``{"id", "weight", "zone"?}`` objects; and for strategy 3
        ``owners``, the index into ``nodes`` of each partition's owner (the claim depends on
        the history of joins and leaves, so it travels with the ring). Cost: O(S).
        """
        return encode(
            replicas=self._replicas,
            partitions=self._partitions,
            vnodes=self._vnodes,
            key_id=self._key_id,
            weights=self._weights,
            zones=self._zones,
            owners=self._owners,
        )

    @classmethod
    def from_dict(cls, data: object, *, hash_key: bytes | None = None) -> HashRing:
        """Decode what [`to_dict`][dynamo_core.ring.HashRing.to_dict] produced.

        A strategy-3 ring's ``owners`` must give every node between the floor and the ceiling of
        its weighted share, as the claim always does. Cost: O(S * span), bounded by the caps.

        Args:
            data: The encoded ring.
            hash_key: The cluster secret, required if and only if the ring is keyed.

        Raises:
            dynamo_core.errors.DecodeError: `data` is malformed, over a cap, inconsistent, or was
                encoded with a different (or no) `hash_key`.
        """
        fields = decode(data, hash_key)
        names, zones = fields.names, fields.zones
        ring = cls(
            fields.replicas, partitions=fields.partitions, vnodes=fields.vnodes, hash_key=hash_key
        )
        ring._weights = dict(zip(names, fields.weights, strict=True))
        ring._zones = dict(zip(names, zones, strict=True))
        ring._zone_keys = {
            name: _zone_key(name, zone) for name, zone in zip(names, zones, strict=True)
        }
        if ring._vnodes is not None:
            ring._rebuild_vnodes()
        elif fields.owners:
            ring._owners = fields.owners
            ring._claim = Claim(ring._owners, ring._zone_keys, ring._replicas, zoned=ring._zoned())
            ring._refresh_all()
        return ring

    # -- invariants ----------------------------------------------------------------------------

    def _check_invariants(self) -> None:
        """Assert every internal invariant (for tests; O(S * span + Q * replicas))."""
        check_invariants(self)

    def _violations(self) -> int:
        """Spacing violations of a strategy-3 ring (0 when fully spaced). Cost: O(Q * replicas)."""
        if self._claim is None:
            return 0
        return self._claim.violations


class _GeneralRing(HashRing):
    """A ring whose lookups cannot be inlined: strategy 1 or a keyed hash.

    `HashRing(...)` returns one for those configurations (as `pathlib.Path` returns a
    `PosixPath`); it is a `HashRing` in every respect but the lookup path.
    """

    __slots__ = ()

    def preference_list(self, key: str | bytes) -> tuple[str, ...]:
        """Return the nodes that hold `key` (see `HashRing.preference_list`)."""
        return self._plists[self._segment(self.token(key))]

    def owner(self, key: str | bytes) -> str:
        """Return the node that owns `key` (see `HashRing.owner`)."""
        return self._owners[self._segment(self.token(key))]
