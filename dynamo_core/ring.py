"""The consistent-hash ring: which nodes hold each key, and what moves when membership changes.

[`HashRing`][dynamo_core.ring.HashRing] maps every key to a *preference list* of distinct nodes,
the first of which is its *owner* (the coordinator in Dynamo's terms). Two placement strategies
from the Dynamo paper are offered:

* **Strategy 3 (the default): Q equal partitions.** The 64-bit token circle is cut into
  ``Q = partitions`` equal partitions (4096 by default; a power of two, so the partition of a token
  is ``token >> (64 - log2(Q))``). Nodes *claim* whole partitions: each owns a number proportional
  to its weight (``k`` or ``k + 1`` with equal weights), any `replicas` consecutive partitions are
  on distinct nodes (and distinct zones) whenever that is possible, a join takes only what balance
  requires and only the joining node gains data, and a leave hands the leaver's partitions to the
  others evenly. Preference lists are precomputed per partition, so a lookup is one hash, one
  shift and one list index.
* **Strategy 1: ``vnodes`` tokens per unit of weight.** Node ``n`` with weight ``w`` places
  ``max(1, floor(vnodes * w + 0.5))`` tokens at ``token(f"{n}#{i}")`` for ``i = 0, 1, ...``
  (the ring's token function over the UTF-8 name, so another language reproduces placement). A
  key belongs to the first node token strictly greater than its own token, wrapping at ``2**64``.
  Balance is statistical: max/mean ownership falls only like ``1/sqrt(vnodes)``.

Both strategies give identical placement in every process and on every machine: nothing depends
on `hash()`, `PYTHONHASHSEED` or set and dict iteration order.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, NoReturn, Self, SupportsIndex, TypeVar

import attrs
import mmh3

from dynamo_core import codec
from dynamo_core._check import (
    MAX_NODE_ID_LEN,
    check_key,
    check_node_id,
    check_positive_float,
    check_positive_int,
    node_id_field,
)
from dynamo_core._claim import Claim, Share, shares, walk_preference
from dynamo_core.errors import DecodeError, EmptyRingError
from dynamo_core.hashing import (
    TOKEN_BITS,
    TOKEN_SPACE,
    TokenFn,
    TokenRange,
    coalesce,
    token_function,
)

__all__ = [
    "DEFAULT_PARTITIONS",
    "MAX_NODES",
    "MAX_PARTITIONS",
    "MAX_REPLICAS",
    "MAX_VNODES",
    "HashRing",
    "TokenRange",
    "Transfer",
]

DEFAULT_PARTITIONS: Final = 4096
"""Partitions of a strategy-3 ring when neither `partitions` nor `vnodes` is given."""

MAX_PARTITIONS: Final = 2**18
"""The most partitions a ring may have (262,144: enough for about 26,000 nodes at 10 each)."""

MAX_VNODES: Final = 4096
"""The most tokens per unit of weight of a strategy-1 ring."""

MAX_NODE_TOKENS: Final = 2**16
"""The most tokens one node of a strategy-1 ring may place (``vnodes * weight``)."""

MAX_NODES: Final = 65_536
"""The most nodes a ring may have."""

MAX_DECODED_TOKENS: Final = 2**18
"""The most tokens (all nodes together) of a strategy-1 ring that `from_dict` builds: the cap is
checked before any token is placed, so decoding stays linear in the input and bounded."""

MAX_REPLICAS: Final = 64
"""The largest replication factor a ring accepts."""

_MASK: Final = TOKEN_SPACE - 1
_T = TypeVar("_T")
_hash128 = mmh3.hash128


class _EmptyTable(list[Any]):
    """The lookup table of a ring with no nodes: every index raises `EmptyRingError`."""

    __slots__ = ()

    def __getitem__(self, index: SupportsIndex | slice) -> NoReturn:
        raise EmptyRingError("the ring has no nodes: add a node before looking keys up")


_EMPTY: Final = _EmptyTable()


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


def _zone_key(node: str, zone: str | None) -> tuple[str, str]:
    """What zone distinctness compares: the zone, or for a node without one, the node itself."""
    return ("zone", zone) if zone is not None else ("node", node)


def _key_id(secret: bytes) -> str:
    """A public fingerprint of a cluster secret: equal rings must use the same one."""
    return hashlib.blake2b(b"dynamo_core.ring key id", digest_size=8, key=secret).hexdigest()


# -- Transfer ----------------------------------------------------------------------------------


def _check_range(_: object, attribute: attrs.Attribute[TokenRange], value: TokenRange) -> None:
    if type(value) is not TokenRange:
        raise TypeError(f"{attribute.name} must be a TokenRange, not {type(value).__name__}")


@attrs.frozen
class Transfer:
    """The data of `range` must be sent from `source` to `target`.

    Produced by [`HashRing.transfers_to`][dynamo_core.ring.HashRing.transfers_to]: `target`
    becomes a replica of `range` and `source` already held it.

    Raises:
        TypeError: `range` is not a `TokenRange`, or a node id is not a `str`.
        ValueError: a node id is empty or too long, or `source` equals `target`.
    """

    range: TokenRange = attrs.field(validator=_check_range)
    source: str = attrs.field(validator=node_id_field)
    target: str = attrs.field(validator=node_id_field)

    def __attrs_post_init__(self) -> None:
        if self.source == self.target:
            raise ValueError(f"source and target must differ, both are {self.source!r}")

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as ``{"type": "transfer", "v": 1, "range": {...}, "source", "target"}``."""
        return codec.envelope(
            "transfer",
            {"range": self.range.to_dict(), "source": self.source, "target": self.target},
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode what [`to_dict`][dynamo_core.ring.Transfer.to_dict] produced.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded transfer.
        """
        obj = codec.open_envelope(data, "transfer", required=("range", "source", "target"))
        rng = TokenRange.from_dict(obj["range"])
        source = codec.as_str(obj["source"], "transfer.source", max_len=MAX_NODE_ID_LEN)
        target = codec.as_str(obj["target"], "transfer.target", max_len=MAX_NODE_ID_LEN)
        if source == target:
            raise DecodeError("transfer.source and transfer.target must differ")
        return cls(rng, source, target)


# -- HashRing ----------------------------------------------------------------------------------


class HashRing:
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
        "_collided",
        "_fast",
        "_fingerprint",
        "_hash_key",
        "_key_id",
        "_owners",
        "_partitions",
        "_plists",
        "_replicas",
        "_shift",
        "_spans",
        "_starts",
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

    def _token_count(self, weight: float) -> int:
        assert self._vnodes is not None
        return max(1, math.floor(self._vnodes * weight + 0.5))

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

    def _zoned(self) -> bool:
        return any(zone is not None for zone in self._zones.values())

    def _windows(self) -> tuple[int, int, bool]:
        """What, besides owners, decides preference lists: how many nodes and zones there are."""
        nodes = len(self._weights)
        zones = len({self._zone_keys[node] for node in self._weights})
        return min(self._replicas, nodes), min(self._replicas, zones), self._zoned()

    def _after_change(self, before: tuple[int, int, bool]) -> None:
        claim = self._claim
        assert claim is not None
        changed, claim.changed = claim.changed, set()
        if self._windows() != before:
            self._refresh_all()
        else:
            self._refresh(changed)

    # -- preference lists ------------------------------------------------------------------------

    def _walk_args(self) -> tuple[dict[str, tuple[str, str]] | None, int, int]:
        owning = set(self._owners)
        zones = self._zone_keys if self._zoned() else None
        zone_count = len({self._zone_keys[node] for node in owning})
        return zones, len(owning), zone_count

    def _refresh_all(self) -> None:
        """Recompute every preference list. Cost: O(S * span) for S segments."""
        owners = self._owners
        zones, node_count, zone_count = self._walk_args()
        plists: list[tuple[str, ...]] = []
        spans: list[int] = []
        cache: dict[tuple[str, ...], tuple[str, ...]] = {}
        replicas = self._replicas
        for start in range(len(owners)):
            plist, span = walk_preference(
                owners,
                zones,
                start,
                replicas=replicas,
                node_count=node_count,
                zone_count=zone_count,
            )
            plists.append(cache.setdefault(plist, plist))
            spans.append(span)
        self._plists = plists
        self._spans = spans

    def _refresh(self, changed: set[int]) -> None:
        """Recompute the preference lists whose walks read a changed segment."""
        if not changed:
            return
        owners = self._owners
        size = len(owners)
        spans = self._spans
        reach = max(spans)
        affected: set[int] = set()
        for pos in changed:
            for back in range(min(reach, size)):
                start = pos - back
                if start < 0:
                    start += size
                if spans[start] > back:
                    affected.add(start)
        self._recompute(affected)

    def _node_tokens(self, node: str) -> list[int]:
        """The tokens of `node` (strategy 1): ``token(f"{node}#{i}")``, sorted, without repeats."""
        token_fn = self._token_fn
        prefix = node + "#"
        count = self._token_count(self._weights[node])
        return sorted({token_fn((prefix + str(i)).encode("utf-8")) for i in range(count)})

    def _rebuild_vnodes(self) -> None:
        """Place every node's tokens and recompute all preference lists (strategy 1)."""
        self._collided = False
        if not self._weights:
            self._starts = []
            self._owners = _EMPTY
            self._plists = _EMPTY
            self._spans = []
            return
        entries = sorted(
            (tok, node) for node in sorted(self._weights) for tok in self._node_tokens(node)
        )
        starts: list[int] = []
        vnode_owner: list[str] = []
        for tok, node in entries:
            if starts and starts[-1] == tok:
                # A 64-bit collision: the first in (token, node) order keeps the token.
                self._collided = True
                continue
            starts.append(tok)
            vnode_owner.append(node)
        # The segment [starts[i], starts[i + 1]) belongs to the node of the token that ends it.
        self._starts = starts
        self._owners = vnode_owner[1:] + vnode_owner[:1]
        self._refresh_all()

    def _vnodes_insert(self, node: str, before: tuple[int, int, bool]) -> None:
        """Insert `node`'s tokens, refreshing only the walks that read a split segment."""
        tokens = self._node_tokens(node)
        starts = self._starts
        if self._collided or not starts or any(_contains(starts, tok) for tok in tokens):
            self._rebuild_vnodes()
            return
        owners, plists, spans = self._owners, self._plists, self._spans
        fresh = [False] * len(starts)
        for tok in tokens:
            # Token `tok` splits segment j - 1 (the last one if j == 0): its first part becomes
            # `node`'s, its second part keeps the old owner, preference list and span.
            j = bisect.bisect_left(starts, tok)
            starts.insert(j, tok)
            _split(owners, j, node)
            _split(plists, j, ())
            _split(spans, j, 0)
            _split(fresh, j, True)
        if self._windows() != before:
            self._refresh_all()
            return
        size = len(starts)
        reach = max(spans)
        dirty = {pos for pos in range(size) if fresh[pos]}
        for new in list(dirty):
            # The old segments before `new` whose walk reached the segment after it now meet
            # `node` first. `back` is that distance in old segments.
            back = 0
            pos = new
            for _ in range(size):
                pos = pos - 1 if pos else size - 1
                if fresh[pos]:
                    continue
                back += 1
                if back >= reach:
                    break
                if spans[pos] > back:
                    dirty.add(pos)
        self._recompute(dirty)

    def _vnodes_delete(self, node: str, before: tuple[int, int, bool]) -> None:
        """Delete `node`'s tokens, refreshing only the walks that read one of its segments."""
        if self._collided or not self._weights:
            self._rebuild_vnodes()
            return
        starts, owners, plists, spans = self._starts, self._owners, self._plists, self._spans
        size = len(starts)
        gone = [pos for pos in range(size) if owners[pos] == node]
        reach = max(spans)
        dirty = [False] * size
        for pos in gone:
            for back in range(min(reach, size)):
                start = pos - back
                if spans[start] > back:
                    dirty[start] = True
        # Deleting the token that ends segment q merges q into the segment after it, which
        # keeps its own owner, preference list and span (shifted to index q).
        for i in sorted(((q + 1) % size for q in gone), reverse=True):  # index 0 last
            del starts[i]
            _merge(owners, i)
            _merge(plists, i)
            _merge(spans, i)
            _merge(dirty, i)
        if self._windows() != before:
            self._refresh_all()
            return
        self._recompute({pos for pos, flag in enumerate(dirty) if flag})

    def _recompute(self, positions: set[int]) -> None:
        owners, plists, spans = self._owners, self._plists, self._spans
        zones, node_count, zone_count = self._walk_args()
        replicas = self._replicas
        for start in positions:
            plists[start], spans[start] = walk_preference(
                owners,
                zones,
                start,
                replicas=replicas,
                node_count=node_count,
                zone_count=zone_count,
            )

    # -- lookups -------------------------------------------------------------------------------

    def token(self, key: str | bytes) -> int:
        """Return the token of `key` on this ring's circle. Cost: O(len(key)).

        Raises:
            TypeError: `key` is neither `str` nor `bytes`.
            ValueError: `key` is a `str` that cannot be encoded as UTF-8.
        """
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
        if type(key) is str:
            # The token hash and the partition shift, inlined for the common case (strategy 3,
            # unkeyed, str key); the tests check that it agrees with `hashing.token`. Other
            # rings have `_fast = None`: the shift raises TypeError and the general path runs
            # (HashRing gives them a subclass that goes there directly).
            try:
                return self._plists[(_hash128(key.encode(), 0, True, False) & _MASK) >> self._fast]
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
        if type(key) is str:
            try:
                return self._owners[(_hash128(key.encode(), 0, True, False) & _MASK) >> self._fast]
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
        names = sorted(self._weights)
        nodes: list[codec.JSONValue] = []
        for name in names:
            entry: dict[str, codec.JSONValue] = {"id": name, "weight": self._weights[name]}
            if self._zones[name] is not None:
                entry["zone"] = self._zones[name]
            nodes.append(entry)
        body: dict[str, codec.JSONValue] = {"replicas": self._replicas, "nodes": nodes}
        if self._key_id is None:
            body["hash"] = "murmur3"
        else:
            body["hash"] = "blake2b-keyed"
            body["key_id"] = self._key_id
        if self._partitions is not None:
            body["partitions"] = self._partitions
            index = {name: i for i, name in enumerate(names)}
            body["owners"] = [index[owner] for owner in self._owners] if names else []
        else:
            body["vnodes"] = self._vnodes
        return codec.envelope("hash_ring", body)

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
        obj = codec.open_envelope(
            data,
            "hash_ring",
            required=("replicas", "nodes", "hash"),
            optional=("partitions", "vnodes", "owners", "key_id"),
        )
        replicas = codec.as_int(obj["replicas"], "hash_ring.replicas", lo=1, hi=MAX_REPLICAS)
        _check_hash(obj, hash_key)
        has_partitions = "partitions" in obj
        if has_partitions == ("vnodes" in obj):
            raise DecodeError("hash_ring must have exactly one of the fields partitions, vnodes")
        if has_partitions != ("owners" in obj):
            raise DecodeError("hash_ring.owners goes with partitions, and only with it")
        if has_partitions:
            partitions = codec.as_int(
                obj["partitions"], "hash_ring.partitions", lo=1, hi=MAX_PARTITIONS
            )
            if partitions & (partitions - 1):
                raise DecodeError("hash_ring.partitions must be a power of two")
            ring = cls(replicas, partitions=partitions, hash_key=hash_key)
        else:
            vnodes = codec.as_int(obj["vnodes"], "hash_ring.vnodes", lo=1, hi=MAX_VNODES)
            ring = cls(replicas, vnodes=vnodes, hash_key=hash_key)
        names, weights, zones = _decode_nodes(obj["nodes"])
        ring._weights = dict(zip(names, weights, strict=True))
        ring._zones = dict(zip(names, zones, strict=True))
        ring._zone_keys = {
            name: _zone_key(name, zone) for name, zone in zip(names, zones, strict=True)
        }
        if ring._vnodes is not None:
            _check_token_counts([ring._token_count(w) for w in weights], names)
            ring._rebuild_vnodes()
            return ring
        owners = _decode_owners(obj["owners"], names, ring._partitions or 0)
        if owners:
            targets = shares(len(owners), ring._weights)
            counts = dict.fromkeys(names, 0)
            for owner in owners:
                counts[owner] += 1
            for name in names:
                if not targets[name].floor <= counts[name] <= targets[name].ceil:
                    raise DecodeError(
                        f"hash_ring.owners gives {name!r} {counts[name]} partitions; its share is "
                        f"{targets[name].floor}..{targets[name].ceil}"
                    )
            ring._owners = owners
            ring._claim = Claim(owners, ring._zone_keys, replicas, zoned=ring._zoned())
            ring._refresh_all()
        return ring

    # -- invariants ----------------------------------------------------------------------------

    def _check_invariants(self) -> None:
        """Assert every internal invariant (for tests; O(S * span + Q * replicas))."""
        assert set(self._weights) == set(self._zones) == set(self._zone_keys)
        for node, weight in self._weights.items():
            assert math.isfinite(weight)
            assert weight > 0
            assert self._zone_keys[node] == _zone_key(node, self._zones[node])
        if self._fingerprint is not None:
            data = codec.dumps(self.to_dict())
            assert self._fingerprint == hashlib.blake2b(data, digest_size=8).hexdigest()
        if not self._weights:
            assert self._owners is _EMPTY
            assert self._plists is _EMPTY
            assert self._claim is None
            assert not self._starts
            assert not self._spans
            return
        owners = self._owners
        assert type(owners) is list
        assert type(self._plists) is list
        assert len(owners) == len(self._plists) == len(self._spans)
        assert set(owners) <= set(self._weights)
        if self._partitions is not None:
            self._check_claim()
        else:
            assert self._claim is None
            assert self._starts == sorted(set(self._starts))
            fresh = HashRing(self._replicas, vnodes=self._vnodes, hash_key=self._hash_key)
            fresh._weights = self._weights
            fresh._zones = self._zones
            fresh._zone_keys = self._zone_keys
            fresh._rebuild_vnodes()
            assert fresh._starts == self._starts
            assert fresh._owners == owners
        self._check_preference_lists()

    def _check_claim(self) -> None:
        claim = self._claim
        assert claim is not None
        assert claim.owners is self._owners
        assert claim.zones is self._zone_keys
        assert self._partitions is not None
        assert len(self._owners) == self._partitions
        counts = dict.fromkeys(self._weights, 0)
        for node in self._owners:
            counts[node] += 1
        assert claim.counts == counts
        targets = shares(self._partitions, self._weights)
        for node, count in counts.items():
            assert 1 <= targets[node].floor <= count <= targets[node].ceil, (node, count)
        assert not claim.changed
        assert claim.zoned == self._zoned()
        assert (claim.node_window, claim.zone_window) == claim.windows()
        assert claim.violations == claim.count_violations()

    def _check_preference_lists(self) -> None:
        owners = self._owners
        zones, node_count, zone_count = self._walk_args()
        want = min(self._replicas, node_count)
        for start, (plist, span) in enumerate(zip(self._plists, self._spans, strict=True)):
            expected = walk_preference(
                owners,
                zones,
                start,
                replicas=self._replicas,
                node_count=node_count,
                zone_count=zone_count,
            )
            assert (plist, span) == expected, (start, plist, span, expected)
            assert len(plist) == want
            assert len(set(plist)) == want
            assert plist[0] == owners[start]
            assert len({self._zone_keys[node] for node in plist}) == min(want, zone_count)

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


def _split(column: list[_T], j: int, value: _T) -> None:
    """Split segment ``j - 1`` at a new token ``starts[j]`` (segment -1, the last, if j == 0).

    The second part keeps the old entry (its walk is unchanged); the first part gets `value`.
    """
    k = j - 1 if j else -1
    column.insert(j, column[k])
    column[k] = value


def _merge(column: list[_T], i: int) -> None:
    """Merge segment ``i - 1`` into segment i, whose entry survives (token ``starts[i]`` went)."""
    if i:
        del column[i - 1]
    else:
        column[-1] = column.pop(0)


def _contains(items: Sequence[int], value: int) -> bool:
    i = bisect.bisect_left(items, value)
    return i < len(items) and items[i] == value


def _check_hash(obj: Mapping[str, object], hash_key: bytes | None) -> None:
    kind = obj["hash"]
    if kind == "murmur3":
        if "key_id" in obj:
            raise DecodeError("hash_ring.key_id is only allowed with a keyed hash")
        if hash_key is not None:
            raise DecodeError("the ring was encoded without a hash_key, but one was given")
        return
    if kind != "blake2b-keyed":
        raise DecodeError("hash_ring.hash must be 'murmur3' or 'blake2b-keyed'")
    if "key_id" not in obj:
        raise DecodeError("hash_ring is missing field(s): key_id")
    key_id = codec.as_str(obj["key_id"], "hash_ring.key_id", max_len=16)
    if hash_key is None:
        raise DecodeError("the ring was encoded with a keyed hash: pass its hash_key")
    try:
        token_function(hash_key)
        expected = _key_id(hash_key)
    except (TypeError, ValueError):
        raise DecodeError("hash_key must be bytes, 16..64 long") from None
    if key_id != expected:
        raise DecodeError("hash_key is not the secret the ring was encoded with")


def _decode_owners(value: object, names: Sequence[str], partitions: int) -> list[str]:
    raw = codec.as_list(value, "hash_ring.owners", max_items=MAX_PARTITIONS)
    if not names:
        if raw:
            raise DecodeError("hash_ring.owners must be empty when there are no nodes")
        return []
    if len(raw) != partitions:
        raise DecodeError(f"hash_ring.owners must have {partitions} entries, got {len(raw)}")
    last = len(names) - 1
    owners: list[str] = []
    for i, item in enumerate(raw):
        if type(item) is not int or not 0 <= item <= last:
            raise DecodeError(f"hash_ring.owners[{i}] must be an integer in 0..{last}")
        owners.append(names[item])
    return owners


def _check_token_counts(counts: Sequence[int], names: Sequence[str]) -> None:
    """Refuse a decoded strategy-1 ring with too many tokens, before any is placed."""
    for name, count in zip(names, counts, strict=True):
        if count > MAX_NODE_TOKENS:
            raise DecodeError(f"hash_ring.nodes: {name!r} has too many tokens")
    total = sum(counts)
    if total > MAX_DECODED_TOKENS:
        raise DecodeError(f"hash_ring has {total} tokens in all; the limit is {MAX_DECODED_TOKENS}")


def _decode_nodes(value: object) -> tuple[list[str], list[float], list[str | None]]:
    items = codec.as_list(value, "hash_ring.nodes", max_items=MAX_NODES)
    names: list[str] = []
    weights: list[float] = []
    zones: list[str | None] = []
    for i, item in enumerate(items):
        what = f"hash_ring.nodes[{i}]"
        obj = codec.fields(item, what, required=("id", "weight"), optional=("zone",))
        name = codec.as_str(obj["id"], f"{what}.id", max_len=MAX_NODE_ID_LEN)
        weight = codec.as_float(obj["weight"], f"{what}.weight", lo=0.0)
        if not weight > 0:
            raise DecodeError(f"{what}.weight must be > 0")
        zone = None
        if "zone" in obj:
            zone = codec.as_str(obj["zone"], f"{what}.zone", max_len=MAX_NODE_ID_LEN)
        if names and name <= names[-1]:
            raise DecodeError(f"{what}.id must sort after the previous id (sorted, no duplicates)")
        names.append(name)
        weights.append(weight)
        zones.append(zone)
    return names, weights, zones


def _pair_sources(
    before: Sequence[str], after: Sequence[str], new: Sequence[str], members: Mapping[str, object]
) -> tuple[tuple[str, str], ...]:
    """Name a source for each new replica of a range.

    The i-th new replica receives from the i-th node that lost a replica of the range but is
    still a member (it holds the data and is about to drop it: on a join, the node whose
    partition the joiner took, so a partition's ranges coalesce into one transfer); when there
    is no such node, from the first node of the old list that is still a member (on a leave),
    or from the old owner if none is.
    """
    departed = [node for node in before if node not in after and node in members]
    fallback = next((node for node in before if node in members), before[0])
    return tuple(
        (departed[i] if i < len(departed) else fallback, target) for i, target in enumerate(new)
    )


def _plan(pieces: Sequence[tuple[int, tuple[tuple[str, str], ...]]]) -> list[Transfer]:
    """Turn per-piece moves into coalesced transfers.

    `pieces` are ``(start, moves)`` in token order; piece i covers ``[start_i, start_{i+1})`` and
    the last one wraps to the first start. Runs of consecutive pieces (cyclically) with the same
    ``(source, target)`` become one transfer.
    """
    count = len(pieces)
    starts = [start for start, _ in pieces]

    def end_of(i: int) -> int:
        if i + 1 < count:
            return starts[i + 1]
        return starts[0] if starts[0] != 0 else TOKEN_SPACE

    runs: dict[tuple[str, str], list[int]] = {}
    for i, (_, moves) in enumerate(pieces):
        for move in moves:
            runs.setdefault(move, []).append(i)
    out: list[Transfer] = []
    for (source, target), indexes in runs.items():
        if len(indexes) == count:
            out.append(Transfer(TokenRange(starts[0], end_of(count - 1)), source, target))
            continue
        groups: list[list[int]] = []
        for i in indexes:
            if groups and groups[-1][-1] == i - 1:
                groups[-1].append(i)
            else:
                groups.append([i])
        if len(groups) > 1 and groups[0][0] == 0 and groups[-1][-1] == count - 1:
            groups[0] = groups.pop() + groups[0]  # the run wraps past the last piece
        out.extend(
            Transfer(TokenRange(starts[group[0]], end_of(group[-1])), source, target)
            for group in groups
        )
    out.sort(key=lambda t: (t.range.start, t.source, t.target))
    return out
