"""Partition claim for Dynamo strategy 3, and preference-list walks (private to `ring`).

The ring is a cycle of segments (the Q equal partitions of strategy 3, or the token intervals of
strategy 1), each owned by one node. This module holds the pure algorithms over that cycle:

* `shares` — every node's exact weighted share of Q partitions, as floor and ceiling;
* `Claim` — the mutable assignment of partitions to nodes with its spacing *violation* count,
  and the join, leave and balance steps that change it with as little movement as possible;
* `walk_preference` — the preference list of one segment and how far its walk looked.

A *violation* is a pair of partitions closer than the spacing window that belong to the same
node (window ``min(replicas, nodes)``), or to the same zone (window ``min(replicas, zones)``,
counted only when some node has a zone). The claim keeps their number low; zero means that any
`replicas` consecutive partitions are on distinct nodes and distinct zones.
"""

from __future__ import annotations

import collections
import operator
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from typing import NamedTuple

__all__ = ["Claim", "Share", "count_pairs", "shares", "walk_preference"]


class Share(NamedTuple):
    """A node's exact share ``Q * weight / total`` of Q partitions."""

    floor: int
    ceil: int
    rem: int
    """The remainder of the exact division (0 when the share is a whole number)."""


def shares(partitions: int, weights: Mapping[str, float]) -> dict[str, Share]:
    """Return each node's share of `partitions`, computed exactly from its float weight.

    Floats are dyadic rationals, so scaling every weight to the largest denominator gives
    integers and the shares carry no rounding error: equal weights give equal shares on every
    machine. Cost: O(n) for n nodes.
    """
    ratios = {node: float(w).as_integer_ratio() for node, w in weights.items()}
    den = max((d for _, d in ratios.values()), default=1)
    scaled = {node: num * (den // d) for node, (num, d) in ratios.items()}
    total = sum(scaled.values())
    out: dict[str, Share] = {}
    for node, amount in scaled.items():
        floor, rem = divmod(partitions * amount, total)
        out[node] = Share(floor, floor + (rem != 0), rem)
    return out


def count_pairs(labels: Sequence[Hashable], window: int) -> int:
    """Count pairs of positions closer than `window` on the cycle that carry equal labels.

    Cost: O(len(labels) * window).
    """
    size = len(labels)
    total = 0
    for dist in range(1, min(window - 1, size // 2) + 1):
        rotated = [*labels[dist:], *labels[:dist]]
        same = sum(map(operator.eq, labels, rotated))
        total += same // 2 if 2 * dist == size else same
    return total


def _pair_change(owners: Sequence[str], pos: int, window: int, old: str, new: str) -> int:
    """How many more same-node pairs within `window` there are if `pos` goes from old to new."""
    size = len(owners)
    change = 0
    if 2 * (window - 1) < size:
        # Negative indexes wrap around the ring: no modulo needed.
        back = pos - size
        for dist in range(1, window):
            for other in (owners[pos - dist], owners[back + dist]):
                if other == new:
                    change += 1
                elif other == old:
                    change -= 1
        return change
    for q in _neighbours(pos, window, size):
        other = owners[q]
        if other == new:
            change += 1
        elif other == old:
            change -= 1
    return change


def _neighbours(pos: int, window: int, size: int) -> list[int]:
    """Positions other than `pos` within cyclic distance < `window`, each once."""
    if window <= 1:
        return []
    if 2 * (window - 1) < size:
        out = []
        for dist in range(1, window):
            out.append((pos - dist) % size)
            out.append((pos + dist) % size)
        return out
    return [q for q in range(size) if q != pos]


class _Picker:
    """What the joiners may still take: `must` and `may` per donor, and the picks left.

    One picker serves a whole batch of joiners: `node` and `left` are the current joiner's,
    `later` the picks of the joiners after it, so the donors that must still give are served
    in time whatever the order.
    """

    __slots__ = ("later", "left", "may", "must", "must_left", "node")

    def __init__(self, must: dict[str, int], may: dict[str, int]) -> None:
        self.node = ""
        self.left = 0
        self.later = 0
        self.must = must
        self.may = may
        self.must_left = sum(must.values())

    def can_take(self, donor: str) -> bool:
        """Whether a partition of `donor` may be taken now."""
        if donor == self.node or self.may.get(donor, 0) == 0:
            return False
        # Once the picks left are only enough for the donors that must still give, only they may.
        return self.must_left < self.left + self.later or self.must[donor] > 0

    def took(self, donor: str) -> None:
        """Record that a partition of `donor` was taken."""
        self.left -= 1
        self.may[donor] -= 1
        if self.must[donor] > 0:
            self.must[donor] -= 1
            self.must_left -= 1


def _spread(count: int) -> list[int]:
    """``0 .. count - 1`` in bit-reversed order: every prefix is spread evenly over the range."""
    bits = max(1, (count - 1).bit_length())
    out = []
    for i in range(1 << bits):
        value = int(format(i, f"0{bits}b")[::-1], 2)
        if value < count:
            out.append(value)
    return out


class Claim:
    """Which node owns each of Q partitions, with the moves that keep it balanced and spaced.

    Attributes:
        owners: The owner of each partition.
        counts: How many partitions each node owns.
        violations: The number of spacing violations (see the module docstring).
        changed: Partitions whose owner changed since the caller last cleared it.
    """

    __slots__ = (
        "changed",
        "counts",
        "node_window",
        "owners",
        "replicas",
        "violations",
        "zone_window",
        "zoned",
        "zones",
    )

    def __init__(
        self,
        owners: list[str],
        zones: Mapping[str, Hashable],
        replicas: int,
        *,
        zoned: bool,
    ) -> None:
        self.owners = owners
        self.zones = zones
        self.replicas = replicas
        self.zoned = zoned
        self.counts: dict[str, int] = {}
        for node in owners:
            self.counts[node] = self.counts.get(node, 0) + 1
        self.changed: set[int] = set()
        self.node_window = 0
        self.zone_window = 0
        self.violations = 0
        self.set_windows()

    # -- spacing ------------------------------------------------------------------------------

    def windows(self) -> tuple[int, int]:
        """Return the node and zone spacing windows for the current owners."""
        nodes = [node for node, count in self.counts.items() if count > 0]
        node_window = min(self.replicas, len(nodes))
        zone_window = min(self.replicas, len({self.zones[node] for node in nodes}))
        return node_window, zone_window

    def set_windows(self, node_window: int | None = None, zone_window: int | None = None) -> None:
        """Use the given windows (default: those of the current owners) and recount violations."""
        auto_node, auto_zone = self.windows()
        self.node_window = auto_node if node_window is None else node_window
        self.zone_window = auto_zone if zone_window is None else zone_window
        self.violations = self.count_violations()

    def configure(self, *, zoned: bool, node_window: int, zone_window: int) -> None:
        """Judge spacing with these settings, recounting violations only if they changed."""
        if (zoned, node_window, zone_window) != (self.zoned, self.node_window, self.zone_window):
            self.zoned = zoned
            self.node_window = node_window
            self.zone_window = zone_window
            self.violations = self.count_violations()

    def copy(self, owners: list[str], zones: Mapping[str, Hashable]) -> Claim:
        """Return a copy over `owners` (a copy of `self.owners`) and the copy's zone map."""
        new = Claim.__new__(Claim)
        new.owners = owners
        new.zones = zones
        new.replicas = self.replicas
        new.zoned = self.zoned
        new.counts = dict(self.counts)
        new.changed = set(self.changed)
        new.node_window = self.node_window
        new.zone_window = self.zone_window
        new.violations = self.violations
        return new

    def count_violations(self) -> int:
        """Count violations from scratch. Cost: O(Q * replicas)."""
        total = count_pairs(self.owners, self.node_window)
        if self.zoned:
            zones = self.zones
            total += count_pairs([zones[node] for node in self.owners], self.zone_window)
        return total

    def delta(self, pos: int, new: str) -> int:
        """Return how the violation count changes if `pos` is given to `new`. Cost: O(replicas)."""
        owners = self.owners
        old = owners[pos]
        if old == new:
            return 0
        change = _pair_change(owners, pos, self.node_window, old, new)
        if self.zoned:
            zones = self.zones
            new_zone, old_zone = zones[new], zones[old]
            if new_zone != old_zone:
                labels = [zones[owners[q]] for q in _neighbours(pos, self.zone_window, len(owners))]
                change += labels.count(new_zone) - labels.count(old_zone)
        return change

    def assign(self, pos: int, new: str) -> None:
        """Give partition `pos` to `new`, keeping counts and the violation count current."""
        old = self.owners[pos]
        if old == new:
            return
        self.violations += self.delta(pos, new)
        self.owners[pos] = new
        self.counts[old] -= 1
        if self.counts[old] == 0:
            del self.counts[old]
        self.counts[new] = self.counts.get(new, 0) + 1
        self.changed.add(pos)

    def rename(self, old: str, new: str) -> None:
        """Give every partition of `old` to `new` (a replace: spacing is unchanged)."""
        owners = self.owners
        for pos, node in enumerate(owners):
            if node == old:
                owners[pos] = new
                self.changed.add(pos)
        self.counts[new] = self.counts.pop(old)

    def reshape(self, targets: Mapping[str, Share], *, zoned: bool) -> None:
        """Restore balance and spacing after a member's weight or zone changed in place."""
        self.zoned = zoned
        self.set_windows()
        self.balance(targets)
        self.repair(targets)

    # -- join ---------------------------------------------------------------------------------

    def join(
        self,
        nodes: Sequence[str],
        targets: Mapping[str, Share],
        starts: Mapping[str, int],
        *,
        zoned: bool,
    ) -> None:
        """Give the joining `nodes` partitions taken from the others (see `_join_from`).

        If the claim from the joiners' `starts` leaves violations although `spacing_possible`,
        it is tried again from starts shifted by 1, 2, ... positions (up to the spacing of a
        joiner's partitions, at most ``2 * replicas + 2`` tries) and the first spaced result
        is kept; only if none is spaced does `relayout` run. Cost: O(Q * replicas) per try.
        """
        size = len(self.owners)
        trial = self.copy(list(self.owners), self.zones)
        trial._join_from(nodes, targets, starts, zoned=zoned)
        if trial.violations and trial.spacing_possible():
            stride = min(size // max(1, targets[node].floor) for node in nodes)
            for shift in range(1, min(stride, 2 * self.replicas + 2)):
                other = self.copy(list(self.owners), self.zones)
                shifted = {node: (starts[node] + shift) % size for node in nodes}
                other._join_from(nodes, targets, shifted, zoned=zoned)
                if other.violations < trial.violations:
                    trial = other
                if not trial.violations:
                    break
        self.configure(zoned=zoned, node_window=trial.node_window, zone_window=trial.zone_window)
        for pos, node in enumerate(trial.owners):
            self.assign(pos, node)
        self.balance(targets)
        self.repair(targets)

    def _join_from(
        self,
        nodes: Sequence[str],
        targets: Mapping[str, Share],
        starts: Mapping[str, int],
        *,
        zoned: bool,
    ) -> None:
        """Give the joining `nodes` partitions taken from the others, as balance requires.

        Every existing node keeps between its new floor and ``min(count, new ceiling)``, so no
        existing node gains; the joiners take their new floors unless the others must shed more.
        Each joiner's partitions are chosen near evenly spaced positions from its `starts`
        entry, preferring ones whose move removes violations and never adding one when
        avoidable: joiners of several zones at once take from their own zones' nodes, which
        keeps zones spaced. A ring of fewer than `replicas` nodes must get one joiner at a time.
        """
        counts = self.counts
        must: dict[str, int] = {}
        may: dict[str, int] = {}
        for other, count in counts.items():
            share = targets[other]
            must[other] = max(0, count - share.ceil)
            may[other] = max(0, count - share.floor)
        wanted = {node: targets[node].floor for node in nodes}
        # The others may have to shed more than the joiners' floors: give the joiners up to
        # their ceilings, largest remainder first (and never more than the others can give).
        extra = min(sum(must.values()), sum(may.values())) - sum(wanted.values())
        for node in sorted(nodes, key=lambda n: (-targets[n].rem, n)):
            if extra <= 0:
                break
            if targets[node].ceil > wanted[node]:
                wanted[node] += 1
                extra -= 1
        owning = [*counts, *nodes]
        self.configure(
            zoned=zoned,
            node_window=min(self.replicas, len(owning)),
            zone_window=min(self.replicas, len({self.zones[other] for other in owning})),
        )
        picker = _Picker(must, may)
        picker.later = sum(wanted.values())
        for node in nodes:
            picker.node = node
            picker.left = wanted[node]
            picker.later -= wanted[node]
            if len(self.counts) < self.replicas and len(nodes) == 1:
                self._take_layout(picker)
            if picker.left:
                self._take_spread(picker, starts[node])
        self.balance(targets)
        self.repair(targets, relayout=False)

    def _take_layout(self, picker: _Picker) -> None:
        """Claim for a ring of at most `replicas` nodes, preparing spacing for later joins.

        Every preference list holds every node while there are at most `replicas` nodes, so
        spacing cannot matter yet; the layout makes it hold once there are more. Slot s is the
        partitions p with ``p % replicas == s``; the m-th node to join takes slot ``m - 1``
        whole, then its share of the higher slots, spread evenly around the ring. With equal
        weights, once the replicas-th node has joined each node owns one slot, and any
        `replicas` consecutive partitions are on distinct nodes (but at the seam where Q is not
        a multiple of `replicas`).
        """
        replicas = self.replicas
        size = len(self.owners)
        mine = len(self.counts)
        order = _spread(-(-size // replicas))
        for index in order:  # the joiner's own slot, spread around the ring
            pos = mine + replicas * index
            if pos < size:
                self._offer(picker, pos)
                if not picker.left:
                    return
        higher = range(mine + 1, replicas)
        for index in order:  # a share of each higher slot, spread alike
            for slot in higher:
                pos = slot + replicas * index
                if pos < size:
                    self._offer(picker, pos)
                    if not picker.left:
                        return

    def _offer(self, picker: _Picker, pos: int) -> None:
        donor = self.owners[pos]
        if picker.can_take(donor):
            picker.took(donor)
            self.assign(pos, picker.node)

    def _take_spread(self, picker: _Picker, start: int) -> None:
        """Take partitions near evenly spaced positions, adding as few violations as possible.

        Around each target position the candidates within `radius` are ranked by the violations
        their move adds (then by donor preference and distance); the search stops early once
        nothing can rank better, and goes past `radius` only while nothing found adds no
        violation (up to two passes over the ring per join).
        """
        owners = self.owners
        size = len(owners)
        wanted = picker.left
        radius = max(self.replicas, -(-size // (2 * wanted)))
        half = size // 2
        budget = 2 * size
        zones = self.zones
        zoned = self.zoned
        my_zone = zones[picker.node]
        for k in range(wanted):
            target = (start + (k * size) // wanted) % size
            best: tuple[int, int, int, int] | None = None
            best_pos = -1
            dist = 0
            while True:
                for candidate in (target + dist, target - dist) if dist else (target,):
                    pos = candidate % size
                    donor = owners[pos]
                    if not picker.can_take(donor):
                        continue
                    delta = self.delta(pos, picker.node)
                    # Ties go to the joiner's zone-mates: taking from them leaves every zone's
                    # share as it is, which keeps zones spaced for the joiners still to come.
                    other_zone = 1 if zoned and zones[donor] != my_zone else 0
                    key = (delta, other_zone, 0 if picker.must[donor] else 1, dist)
                    if best is None or key < best:
                        best, best_pos = key, pos
                if best is not None:
                    ideal = best[0] == 0 and best[1] == 0 and (best[2] == 0 or not picker.must_left)
                    if (dist >= radius and (best[0] <= 0 or budget <= 0)) or (
                        ideal and self.violations == 0
                    ):
                        break
                if dist >= half:
                    if best is None:  # pragma: no cover - the share arithmetic leaves a donor
                        raise AssertionError("no partition can be taken")
                    break
                dist += 1
                if dist > radius:
                    budget -= 2
            picker.took(owners[best_pos])
            self.assign(best_pos, picker.node)

    # -- leave --------------------------------------------------------------------------------

    def leave(self, nodes: Collection[str], targets: Mapping[str, Share], *, zoned: bool) -> None:
        """Hand the leaving `nodes`' partitions to the others, each receiving what balance allows.

        Each receiver ends between ``max(count, new floor)`` and its new ceiling, so nothing but
        the leaver's partitions moves (unless balance cannot otherwise be kept, see `balance`).
        Which receiver takes which partition is a bipartite matching with capacities: first the
        receivers below their new floor, then up to the ceilings, using only hand-offs that add
        no violation (augmenting paths find such an assignment whenever one exists); partitions
        left over go, in ring order, to the receiver adding the fewest violations.
        """
        owners = self.owners
        leaving = set(nodes)
        orphans = [pos for pos, owner in enumerate(owners) if owner in leaving]
        receivers = sorted(other for other in self.counts if other not in leaving)
        must: dict[str, int] = {}
        room: dict[str, int] = {}
        for other in receivers:
            count = self.counts[other]
            share = targets[other]
            must[other] = max(0, share.floor - count)
            room[other] = max(0, share.ceil - count)
        # Spacing after the leave is judged with the windows of the remaining nodes.
        self.configure(
            zoned=zoned,
            node_window=min(self.replicas, len(receivers)),
            zone_window=min(self.replicas, len({self.zones[other] for other in receivers})),
        )
        clean = {pos: self._clean_receivers(pos, leaving, receivers) for pos in orphans}
        match = _Matching(clean, receivers)
        match.fill(orphans, must)
        # A receiver below its floor that no clean hand-off reaches still gets its share now,
        # before the others may take every orphan: the orphan that adds the fewest violations.
        for other in receivers:
            for _ in range(must[other] - match.load[other]):
                free = [pos for pos in orphans if pos not in match.assigned]
                if not free:
                    break
                match.force(min(free, key=lambda pos: (self.delta(pos, other), pos)), other)
        match.fill(orphans, room)
        for pos in orphans:
            if pos in match.assigned:
                self.assign(pos, match.assigned[pos])
        rest = [pos for pos in orphans if pos not in match.assigned]
        self._hand_off_rest(rest, receivers, match.load, must, room)
        for node in leaving:
            self.counts.pop(node, None)
        self.balance(targets)
        self.repair(targets)

    def _hand_off_rest(
        self,
        rest: Sequence[int],
        receivers: Sequence[str],
        taken: dict[str, int],
        must: Mapping[str, int],
        room: Mapping[str, int],
    ) -> None:
        """Give the orphans no clean hand-off took, in ring order, adding the fewest violations."""
        must_left = sum(max(0, must[other] - taken[other]) for other in receivers)
        for index, pos in enumerate(rest):
            only_must = must_left >= len(rest) - index
            best: tuple[int, int, str] | None = None
            for other in receivers:
                if taken[other] >= room[other]:
                    continue
                short = taken[other] < must[other]
                if only_must and not short:
                    continue
                key = (self.delta(pos, other), 0 if short else 1, other)
                if best is None or key < best:
                    best = key
            # With no room anywhere (ruled out by the share arithmetic), `balance` settles it.
            chosen = best[2] if best is not None else receivers[0]
            if taken[chosen] < must[chosen]:
                must_left -= 1
            taken[chosen] += 1
            self.assign(pos, chosen)

    def _clean_receivers(
        self, pos: int, leaving: Collection[str], receivers: Sequence[str]
    ) -> list[str]:
        """The receivers that could take `pos` from a leaving node adding no violation."""
        owners = self.owners
        size = len(owners)
        near: set[Hashable] = set()
        for q in _neighbours(pos, self.node_window, size):
            near.add(owners[q])
        if self.zoned:
            zones = self.zones
            near_zones = {
                zones[owners[q]]
                for q in _neighbours(pos, self.zone_window, size)
                if owners[q] not in leaving
            }
            return [o for o in receivers if o not in near and zones[o] not in near_zones]
        return [o for o in receivers if o not in near]

    # -- balance ------------------------------------------------------------------------------

    def balance(self, targets: Mapping[str, Share]) -> None:
        """Move partitions until every node holds between the floor and ceiling of its share.

        Joins and leaves already meet this in every case with equal weights; with unequal
        weights a minimal-movement step can leave a node one partition outside its share, and
        this moves the fewest partitions that fix it. Cost: O(Q * nodes) per extra move.
        """
        nodes = sorted(targets)
        for node in nodes:
            self.counts.setdefault(node, 0)
        while True:
            over = [n for n in nodes if self.counts[n] > targets[n].ceil]
            under = [n for n in nodes if self.counts[n] < targets[n].floor]
            if over:
                donors = over
                receivers = [n for n in nodes if self.counts[n] < targets[n].ceil]
                if under:
                    receivers = under
            elif under:
                receivers = under
                donors = [n for n in nodes if self.counts[n] > targets[n].floor]
            else:
                break
            self._move_one(donors, receivers)
        for node in nodes:
            if self.counts[node] == 0:
                del self.counts[node]
        self._spread_zones(targets)

    def _spread_zones(self, targets: Mapping[str, Share]) -> bool:
        """Keep every zone within ``Q // replicas`` partitions when the node shares allow it.

        The nodes above their floors (the remainders of the shares) may fall unevenly on the
        zones: 16 partitions on two zones of five equal nodes give six nodes a second
        partition, and if four of them are in one zone it holds 9 > 16 // 2, which no layout
        can space. Moving a partition from a node above its floor in a zone over the cap to a
        node below its ceiling in a zone under it keeps every node within its share and only
        lowers the fullest zones; it runs only if some choice of node counts within the shares
        puts every zone within the cap (so it never moves data in vain). Returns whether it
        moved anything.
        """
        if not self.zoned or self.zone_window < self.replicas or len(self.counts) < self.replicas:
            return False
        size = len(self.owners)
        cap = size // self.replicas
        members: dict[Hashable, list[str]] = {}
        for node in sorted(self.counts):
            members.setdefault(self.zones[node], []).append(node)
        lo = {zone: sum(targets[n].floor for n in nodes) for zone, nodes in members.items()}
        hi = {zone: sum(targets[n].ceil for n in nodes) for zone, nodes in members.items()}
        if max(lo.values()) > cap or sum(min(hi[z], cap) for z in members) < size:
            return False  # no balanced layout spaces the zones
        moved = False
        while True:
            total = {zone: sum(self.counts[n] for n in nodes) for zone, nodes in members.items()}
            donors = [
                n
                for zone, nodes in members.items()
                if total[zone] > cap
                for n in nodes
                if self.counts[n] > targets[n].floor
            ]
            receivers = [
                n
                for zone, nodes in members.items()
                if total[zone] < min(hi[zone], cap)
                for n in nodes
                if self.counts[n] < targets[n].ceil
            ]
            if not donors or not receivers:
                return moved
            self._move_one(donors, receivers)
            moved = True

    def _move_one(self, donors: Iterable[str], receivers: Sequence[str]) -> None:
        donor_set = set(donors)
        best: tuple[int, int, str] | None = None
        for pos, owner in enumerate(self.owners):
            if owner not in donor_set:
                continue
            for other in receivers:
                key = (self.delta(pos, other), pos, other)
                if best is None or key < best:
                    best = key
        if best is None:  # pragma: no cover - counts guarantee a donor partition
            raise AssertionError("no partition to move")
        self.assign(best[1], best[2])

    # -- repair -------------------------------------------------------------------------------

    def _spacing_labels(self) -> tuple[dict[str, Hashable], int]:
        """What a spaced layout must keep apart, and the window: zones if there are enough."""
        if self.zoned and self.zone_window >= self.replicas:
            return {node: self.zones[node] for node in self.counts}, self.zone_window
        return {node: node for node in self.counts}, self.node_window

    def spacing_possible(self) -> bool:
        """Whether a layout with the current counts has no violation (see `ring`'s docs).

        With labels (zones when there are at least `replicas` of them, else nodes) of total
        counts c and window w, a cycle with no label twice within w exists if and only if
        every ``c * w <= Q``: necessary because a label's partitions are pairwise w apart,
        sufficient by `column_layout`. A ring with fewer nodes than `replicas` never qualifies.
        """
        if len(self.counts) < self.replicas:
            return False
        labels, window = self._spacing_labels()
        totals = collections.Counter[Hashable]()
        for node, count in self.counts.items():
            totals[labels[node]] += count
        return max(totals.values()) * window <= len(self.owners)

    def violating(self) -> list[int]:
        """The partitions that take part in a violation, in ring order. Cost: O(Q * replicas)."""
        owners = self.owners
        size = len(owners)
        out: set[int] = set()
        rows: list[tuple[Sequence[Hashable], int]] = [(owners, self.node_window)]
        if self.zoned:
            zones = self.zones
            rows.append(([zones[node] for node in owners], self.zone_window))
        for labels, window in rows:
            for dist in range(1, min(window - 1, size // 2) + 1):
                for pos in range(size):
                    if labels[pos] == labels[pos - dist]:
                        out.add(pos)
                        out.add((pos - dist) % size)
        return sorted(out)

    def repair(self, targets: Mapping[str, Share], *, relayout: bool = True) -> None:
        """Remove violations by short chains of moves that keep every node within its share.

        For a partition in a violation, a breadth-first search looks for the shortest chain:
        its owner gives it to a node that fits there, that node gives one of its partitions to
        another node that fits there, and so on, until a node with room under its ceiling (or
        the first owner, closing a cycle) takes the last one. The chain is kept if it removes
        violations. Searches stop when no violation is left, none can be removed this way, or
        the work budget (about ten passes over the ring) is spent; if violations remain
        although `spacing_possible`, `relayout` lays out a spaced ring keeping as many
        partitions where they are as it can. Ties go to the lower node id and partition.
        """
        if self.violations == 0:
            return
        if len(self.counts) <= self.replicas:
            # Every preference list holds every node: a fresh layout moves no data, and the
            # column layout is the one later joins space best from.
            if relayout:
                self.relayout()
            return
        budget = 10 * len(self.owners) * self.replicas
        for _ in range(2):  # a chain may fill a zone over its cap: spread, then chain again
            failed: set[int] = set()
            while self.violations > 0 and budget > 0:
                pending = [pos for pos in self.violating() if pos not in failed]
                if not pending:
                    break
                pos = pending[0]
                fixed, work = self._repair_chain(pos, targets)
                budget -= work
                if not fixed:
                    failed.add(pos)
            if not self.violations or not self._spread_zones(targets):
                break
        if relayout and self.violations > 0 and self.spacing_possible():
            self.relayout()

    def _fits(self, pos: int, node: str) -> bool:
        """Whether `node` could own `pos` without a violation (ignoring the current owner)."""
        owners = self.owners
        size = len(owners)
        for q in _neighbours(pos, self.node_window, size):
            if owners[q] == node:
                return False
        if self.zoned:
            zones = self.zones
            zone = zones[node]
            for q in _neighbours(pos, self.zone_window, size):
                if zones[owners[q]] == zone and q != pos:
                    return False
        return True

    def _repair_chain(  # noqa: PLR0912 - one breadth-first search with its bookkeeping
        self, pos: int, targets: Mapping[str, Share]
    ) -> tuple[bool, int]:
        """Find and apply the shortest chain that removes `pos`'s violation; return the work."""
        owners = self.owners
        first = owners[pos]
        nodes = sorted(self.counts)
        counts = self.counts
        shrink = counts[first] > targets[first].floor
        mine: dict[str, list[int]] = {node: [] for node in nodes}
        for q, node in enumerate(owners):
            mine[node].append(q)
        came: dict[str, tuple[str, int]] = {}
        frontier: list[str] = []
        work = len(owners)
        for node in nodes:
            if node != first and self._fits(pos, node):
                came[node] = (first, pos)
                frontier.append(node)
        end: str | None = None
        while frontier and end is None:
            end = next(
                (node for node in frontier if shrink and counts[node] < targets[node].ceil), None
            )
            if end is not None:
                break
            following: list[str] = []
            for giver in frontier:
                for q in mine[giver]:
                    work += 1
                    for node in nodes:
                        if node in came or node == giver or not self._fits(q, node):
                            continue
                        came[node] = (giver, q)
                        if node == first:
                            end = first
                            break
                        following.append(node)
                    if end is not None:
                        break
                if end is not None:
                    break
            frontier = following
        if end is None:
            return False, work
        chain: list[tuple[int, str]] = []
        node = end
        while True:
            giver, q = came[node]
            chain.append((q, node))
            if q == pos:
                break
            node = giver
        before = self.violations
        undo = [(q, owners[q]) for q, _ in chain]
        for q, node in chain:
            self.assign(q, node)
        if self.violations < before:
            return True, work
        for q, node in reversed(undo):
            self.assign(q, node)
        return False, work

    def relayout(self) -> None:  # noqa: PLR0912 - build, match, then assign
        """Lay the ring out afresh with no violation, keeping the counts (and most owners).

        `column_layout` gives a spaced cycle of anonymous labels; each is then matched to a
        real label (zone or node) of the same count, greedily by how many partitions it would
        keep, over a few rotations; inside a zone, nodes keep the partitions they hold and
        fill the rest in node-id order. Applied only if it has fewer violations.
        """
        owners = self.owners
        size = len(owners)
        labels, _ = self._spacing_labels()
        totals = collections.Counter[Hashable]()
        for node, count in self.counts.items():
            totals[labels[node]] += count
        order = sorted(totals, key=lambda label: (-totals[label], repr(label)))
        layout = column_layout([totals[label] for label in order], size)
        current = [labels[node] for node in owners]
        best: tuple[int, int, dict[int, Hashable]] | None = None
        for shift in range(min(size, 2 * self.replicas + 2)):
            overlap = collections.Counter(
                zip(layout[size - shift :] + layout[: size - shift], current, strict=True)
            )
            match: dict[int, Hashable] = {}
            used: set[Hashable] = set()
            kept = 0
            for (slot, label), count in sorted(
                overlap.items(), key=lambda item: (-item[1], item[0][0], repr(item[0][1]))
            ):
                if slot in match or label in used or totals[order[slot]] != totals[label]:
                    continue
                match[slot] = label
                used.add(label)
                kept += count
            spare = [label for label in order if label not in used]
            for slot in range(len(order)):
                if slot not in match:
                    match[slot] = next(
                        label for label in spare if totals[label] == totals[order[slot]]
                    )
                    spare.remove(match[slot])
            if best is None or kept > best[0]:
                best = (kept, shift, match)
        assert best is not None
        _, shift, match = best
        rotated = layout[size - shift :] + layout[: size - shift]
        quota = dict(self.counts)
        new: list[str | None] = [None] * size
        for pos, slot in enumerate(rotated):
            if labels[owners[pos]] == match[slot] and quota[owners[pos]] > 0:
                new[pos] = owners[pos]
                quota[owners[pos]] -= 1
        members = sorted(self.counts)
        for pos, slot in enumerate(rotated):
            if new[pos] is None:
                node = next(n for n in members if quota[n] > 0 and labels[n] == match[slot])
                new[pos] = node
                quota[node] -= 1
        candidate = Claim([node or "" for node in new], self.zones, self.replicas, zoned=self.zoned)
        candidate.configure(
            zoned=self.zoned, node_window=self.node_window, zone_window=self.zone_window
        )
        if candidate.violations < self.violations:
            for pos, node in enumerate(candidate.owners):
                self.assign(pos, node)


def column_layout(counts: Sequence[int], size: int) -> list[int]:
    """A cycle of `size` holding label i ``counts[i]`` times, each label spaced as far as it can.

    `counts` must be sorted in decreasing order and sum to `size`. With t the largest count,
    the cycle is cut into t blocks of near-equal length and the labels, each repeated, fill
    the blocks column by column (the first cell of every block, then the second...). A label
    of count t fills one whole column; a shorter one meets each block at most once and, where
    it crosses from one column to the next, skips a block. So two partitions of one label are
    at least ``size // t`` apart: for any window w with ``t * w <= size``, no label repeats
    within w. Cost: O(size).
    """
    top = counts[0]
    base, longer = divmod(size, top)
    starts = [row * base + min(row, longer) for row in range(top)]
    lengths = [base + (row < longer) for row in range(top)]
    cells = [
        starts[row] + col
        for col in range(base + (longer > 0))
        for row in range(top)
        if col < lengths[row]
    ]
    out = [0] * size
    index = 0
    for label, count in enumerate(counts):
        for cell in cells[index : index + count]:
            out[cell] = label
        index += count
    return out


class _Matching:
    """A capacity-bounded bipartite matching of partitions to nodes (augmenting paths, BFS)."""

    __slots__ = ("assigned", "edges", "holders", "load")

    def __init__(self, edges: Mapping[int, Sequence[str]], nodes: Iterable[str]) -> None:
        self.edges = edges
        self.assigned: dict[int, str] = {}
        self.holders: dict[str, set[int]] = {node: set() for node in nodes}
        self.load: dict[str, int] = dict.fromkeys(self.holders, 0)

    def force(self, item: int, node: str) -> None:
        """Assign `item` to `node` whatever the edges say."""
        self.assigned[item] = node
        self.holders[node].add(item)
        self.load[node] += 1

    def fill(self, items: Sequence[int], capacity: Mapping[str, int]) -> None:
        """Match as many unmatched `items` as the capacities allow (loads never decrease)."""
        free = sum(max(0, capacity.get(node, 0) - load) for node, load in self.load.items())
        for item in items:
            if free == 0:
                return
            if item not in self.assigned and self._augment(item, capacity):
                free -= 1

    def _augment(self, root: int, capacity: Mapping[str, int]) -> bool:
        reached: dict[str, int] = {}
        queue = collections.deque([root])
        seen = {root}
        while queue:
            item = queue.popleft()
            for node in self.edges[item]:
                if node in reached or (not capacity.get(node, 0) and not self.holders[node]):
                    continue
                reached[node] = item
                if self.load[node] < capacity.get(node, 0):
                    # Shift every item on the path one step: only `node`'s load grows.
                    cur_item, cur_node = item, node
                    while True:
                        prev = self.assigned.get(cur_item)
                        self.assigned[cur_item] = cur_node
                        self.holders[cur_node].add(cur_item)
                        if prev is None:
                            break
                        self.holders[prev].discard(cur_item)
                        cur_item, cur_node = reached[prev], prev
                    self.load[node] += 1
                    return True
                holders = self.holders[node]
                for other in sorted(holders) if holders else ():
                    if other not in seen:
                        seen.add(other)
                        queue.append(other)
        return False


def walk_preference(
    owners: Sequence[str],
    zones: Mapping[str, Hashable] | None,
    start: int,
    *,
    replicas: int,
    node_count: int,
    zone_count: int,
) -> tuple[tuple[str, ...], int]:
    """Return the preference list of the segment at `start` and how many segments it read.

    Walks clockwise from `start`, skipping nodes already chosen. With `zones`, a first pass
    takes only nodes of zones not yet chosen; if fewer than `replicas` zones exist, the list is
    filled with the other distinct nodes in the order the walk met them.

    Args:
        owners: The owner of each segment, in ring order.
        zones: Each node's zone key, or `None` when no node has a zone.
        start: The segment the key falls in.
        replicas: The wanted list length.
        node_count: The number of distinct nodes in `owners`.
        zone_count: The number of distinct zones among them.

    Returns:
        The list, and the number of segments from `start` that determined it.
    """
    want = min(replicas, node_count)
    if zones is None:
        return _walk_nodes(owners, start, want)
    return _walk_zones(owners, zones, start, want, zone_count)


def _walk_nodes(owners: Sequence[str], start: int, want: int) -> tuple[tuple[str, ...], int]:
    size = len(owners)
    chosen: list[str] = []
    pos = start
    steps = 0
    while steps < size:
        node = owners[pos]
        steps += 1
        if node not in chosen:
            chosen.append(node)
            if len(chosen) == want:
                break
        pos += 1
        if pos == size:
            pos = 0
    return tuple(chosen), steps


def _walk_zones(
    owners: Sequence[str], zones: Mapping[str, Hashable], start: int, want: int, zone_count: int
) -> tuple[tuple[str, ...], int]:
    size = len(owners)
    chosen: list[str] = []
    extra: list[str] = []
    seen: set[str] = set()
    zones_seen: set[Hashable] = set()
    pos = start
    steps = 0
    while steps < size:
        node = owners[pos]
        steps += 1
        if node not in seen:
            seen.add(node)
            zone = zones[node]
            if zone in zones_seen:
                extra.append(node)
            else:
                zones_seen.add(zone)
                chosen.append(node)
                if len(chosen) == want:
                    break
            if len(zones_seen) == zone_count and len(chosen) + len(extra) >= want:
                break
        pos += 1
        if pos == size:
            pos = 0
    if len(chosen) < want:
        chosen.extend(extra[: want - len(chosen)])
    return tuple(chosen), steps
