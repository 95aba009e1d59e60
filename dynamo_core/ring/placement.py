"""How a ring keeps its preference lists: the walks over the owners, and strategy 1's tokens."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import TypeVar

from dynamo_core._claim import walk_preference
from dynamo_core.hashing import TokenFn
from dynamo_core.ring.bounds import _EMPTY, _token_count

_T = TypeVar("_T")


class _Placement:
    """The preference-list upkeep of [`HashRing`][dynamo_core.ring.HashRing], its base class.

    It holds no state of its own: the attributes below are the ring's.
    """

    __slots__ = ("_collided", "_owners", "_plists", "_spans", "_starts")

    _replicas: int
    _vnodes: int | None
    _token_fn: TokenFn
    _weights: dict[str, float]
    _zones: dict[str, str | None]
    _zone_keys: dict[str, tuple[str, str]]
    _collided: bool
    _starts: list[int]
    _owners: list[str]
    _plists: list[tuple[str, ...]]
    _spans: list[int]

    def _token_count(self, weight: float) -> int:
        assert self._vnodes is not None
        return _token_count(self._vnodes, weight)

    def _zoned(self) -> bool:
        return any(zone is not None for zone in self._zones.values())

    def _windows(self) -> tuple[int, int, bool]:
        """What, besides owners, decides preference lists: how many nodes and zones there are."""
        nodes = len(self._weights)
        zones = len({self._zone_keys[node] for node in self._weights})
        return min(self._replicas, nodes), min(self._replicas, zones), self._zoned()

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
