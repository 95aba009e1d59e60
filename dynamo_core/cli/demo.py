"""The shopping-cart story behind ``dynamo-core demo``, told on a simulated 5-node cluster.

[`run_demo`][dynamo_core.cli.demo.run_demo] drives a
[`SimulatedCluster`][dynamo_core.testing.SimulatedCluster] (N=3, R=2, W=2, sloppy quorum)
through the situations the Dynamo paper was written for, and narrates each through a
[`Narrator`][dynamo_core.cli.demo.Narrator] — the CLI's is built on ``rich``, a test's can collect
plain text:

1. placement: the ring, the cart's preference list and its fallbacks;
2. a node goes down; writes still succeed, and a fallback keeps a hinted copy;
3. a partition: both sides accept a write, a read returns the two versions as siblings, the
   application merges them (set union) and writes the merge back;
4. the node returns and the fallbacks hand their hints over;
5. a replica loses its disk and anti-entropy (Merkle exchanges) repairs it;
6. where everything ended up;
7. a sixth node joins: the new ring version's transfer plan, the ranges streamed to it, and
   how much of the data moved (about 1/6, the minimum).

Everything runs in virtual time from a fixed seed, so the story is the same on every run.
Each step also *checks* what it narrates; a check that fails is reported in
[`DemoOutcome.problems`][dynamo_core.cli.demo.DemoOutcome] and makes the CLI exit 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Final, Protocol

import attrs

from dynamo_core import codec
from dynamo_core.hints import HintsDelivered
from dynamo_core.messages import GetReply, PutReply, RequestResult
from dynamo_core.node import AntiEntropyDone, Effect, TransferDone
from dynamo_core.quorum import QuorumPolicy
from dynamo_core.testing.cluster import SimulatedCluster
from dynamo_core.testing.simulation import SIMULATION_NODE_CONFIG

__all__ = ["DemoOutcome", "Narrator", "Progress", "decode_cart", "encode_cart", "run_demo"]

CART: Final = "cart:alice"
_OTHER_CARTS: Final = 40


class Progress(Protocol):
    """A progress bar: `advance` it by units of work."""

    def advance(self, amount: int = 1) -> None:
        """Record `amount` more units done."""
        ...


class Narrator(Protocol):
    """Where the demo tells its story (the CLI renders it with ``rich``)."""

    def step(self, number: int, title: str) -> None:
        """Start step `number`."""
        ...

    def say(self, text: str) -> None:
        """One line of narration (plain text)."""
        ...

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """Show a table."""
        ...

    def progress(self, label: str, total: int) -> AbstractContextManager[Progress]:
        """A progress bar for `total` units of work."""
        ...


@attrs.frozen
class DemoOutcome:
    """What the demo showed, and whether each step did what it narrated.

    Attributes:
        problems: Checks that failed (empty when the story went as told).
        final_cart: The items of Alice's cart at the end.
        trace_hash: The cluster's trace hash: the same on every run.
    """

    problems: tuple[str, ...]
    final_cart: tuple[str, ...]
    trace_hash: str

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return not self.problems


def encode_cart(items: set[str] | frozenset[str]) -> bytes:
    """A cart as stored: the sorted items as canonical JSON."""
    listed: list[codec.JSONValue] = [*sorted(items)]
    return codec.dumps(listed)


def decode_cart(value: bytes) -> frozenset[str]:
    """The items of a stored cart.

    Raises:
        dynamo_core.errors.DecodeError: `value` is not an encoded cart.
    """
    items = codec.as_list(codec.loads(value), "cart")
    return frozenset(codec.as_str(item, "cart item") for item in items)


def _items(result: RequestResult) -> list[frozenset[str]]:
    return [decode_cart(v) for v in result.values] if isinstance(result, GetReply) else []


def _show(items: frozenset[str]) -> str:
    return "{" + ", ".join(sorted(items)) + "}"


class _Story:
    def __init__(self, narrator: Narrator, seed: int) -> None:
        self.out = narrator
        self.cluster = SimulatedCluster(
            5,
            policy=QuorumPolicy(3, 2, 2),
            config=SIMULATION_NODE_CONFIG,
            seed=seed,
            partitions=64,
        )
        self.problems: list[str] = []
        self.delivered: list[tuple[float, str, HintsDelivered]] = []
        self.exchanges: list[tuple[float, str, AntiEntropyDone]] = []
        self.cluster.observe(self._observe)

    def _observe(self, now: float, node: str, effect: Effect) -> None:
        if isinstance(effect, HintsDelivered):
            self.delivered.append((now, node, effect))
        elif isinstance(effect, AntiEntropyDone):
            self.exchanges.append((now, node, effect))

    def check(self, condition: bool, text: str) -> None:
        if not condition:
            self.problems.append(text)
            self.out.say(f"!! unexpected: {text}")

    def add(self, via: str, item: str) -> RequestResult:
        """Alice's app: read the cart, merge the siblings, add an item, write it back."""
        read = self.cluster.get(CART, via=via)
        if not isinstance(read, GetReply):
            return read
        items = frozenset().union(*_items(read)) | {item}
        return self.cluster.put(CART, encode_cart(items), read.context, via=via)

    # -- the steps -----------------------------------------------------------------------------

    def placement(self) -> None:
        cluster = self.cluster
        ring = cluster.ring
        self.out.step(1, "Placement: who holds Alice's cart")
        self.out.say(
            f"{len(cluster.nodes)} nodes share a ring of 64 equal partitions (Dynamo's "
            "strategy 3); each key lives on the first N=3 distinct nodes clockwise from its token."
        )
        rows = []
        for key in (CART, "cart:bob", "cart:carol"):
            walk = list(ring.walk(key))
            rows.append(
                [
                    key,
                    f"{ring.token(key):#018x}",
                    str(ring.partition(key)),
                    " ".join(walk[:3]),
                    " ".join(walk[3:]),
                ]
            )
        self.out.table(
            "Preference lists (reads need R=2 answers, writes W=2 acknowledgements)",
            ["key", "token", "partition", "preference list", "fallbacks"],
            rows,
        )
        ownership = ring.ownership(replicated=True)
        self.out.table(
            "Share of the key space each node replicates",
            ["node", "share", "partitions"],
            [
                [node, f"{share:.1%}", str(round(share * 64))]
                for node, share in sorted(ownership.items())
            ],
        )
        with self.out.progress("filling 40 other carts", _OTHER_CARTS) as bar:
            for i in range(_OTHER_CARTS):
                key = f"cart:{i:03d}"
                reply = cluster.put(key, encode_cart({f"item-{i}"}), None, via=cluster.nodes[i % 5])
                self.check(isinstance(reply, PutReply), f"the write to {key} failed: {reply}")
                bar.advance()
        first = self.add(cluster.nodes[0], "book")
        self.check(isinstance(first, PutReply), f"adding the book failed: {first}")
        owner = cluster.replicas(CART)[0]
        if isinstance(first, PutReply):
            self.out.say(
                f"Alice adds a book through {cluster.nodes[0]}, which is not a replica: it "
                f"forwards the request to {owner}, which coordinates. Acknowledged by "
                f"{', '.join(first.acked)}."
            )

    def node_down(self) -> tuple[str, str, str]:
        cluster = self.cluster
        p1, p2, p3 = cluster.replicas(CART)
        fallbacks = list(cluster.ring.walk(CART))[3:]
        self.out.step(2, f"A replica goes down: {p3} crashes")
        cluster.crash(p3)
        cluster.run(10.0)
        phi = cluster.node(p1).detector.phi(p3, cluster.now)
        self.out.say(
            f"{p3} stops answering. Heartbeats stop too: after 10 s of silence {p1}'s φ-accrual "
            f"detector has φ = {phi:.1f} > 8 for {p3} and considers it down."
        )
        self.check(not cluster.node(p1).detector.is_available(p3, cluster.now), "p3 not convicted")
        reply = self.add(p1, "pen")
        self.check(isinstance(reply, PutReply), f"adding the pen failed: {reply}")
        cluster.run(0.5)
        holders = [
            (name, cluster.node(name).hints.count(p3))
            for name in fallbacks
            if cluster.is_up(name) and cluster.node(name).hints.get(p3, CART.encode()) is not None
        ]
        if isinstance(reply, PutReply):
            hinted = ", ".join(f"{f} for {p}" for f, p in reply.hinted) or "none yet"
            self.out.say(
                f"Alice adds a pen: the write still succeeds with W=2 (acknowledged by "
                f"{', '.join(reply.acked)}; hinted copies: {hinted})."
            )
        self.check(bool(holders), f"no fallback holds a hint for {p3}")
        self.out.table(
            f"Sloppy quorum: the first fallback in ring order keeps {p3}'s copy as a hint",
            ["fallback", f"hints held for {p3}", "what it holds for cart:alice"],
            [
                [
                    name,
                    str(count),
                    _show(
                        frozenset().union(
                            *(
                                decode_cart(v)
                                for v in cluster.node(name)
                                .hints.get(p3, CART.encode())
                                .state.values  # type: ignore[union-attr]
                            )
                        )
                    ),
                ]
                for name, count in holders
            ],
        )
        return p1, p2, p3

    def partition(self, p1: str, p2: str, p3: str) -> None:
        cluster = self.cluster
        f1, f2 = list(cluster.ring.walk(CART))[3:]
        self.out.step(3, "A partition: two concurrent versions of the cart")
        cluster.partition([p1, f1], [p2, f2, p3])
        self.out.say(
            f"The network splits into {{{p1}, {f1}}} and {{{p2}, {f2}, {p3}}}. After 10 s each "
            "side believes the other down; sloppy quorum lets both sides accept writes."
        )
        cluster.run(10.0)
        laptop = self.add(p1, "lamp")
        phone = self.add(p2, "mug")
        self.check(isinstance(laptop, PutReply), f"the laptop's write failed: {laptop}")
        self.check(isinstance(phone, PutReply), f"the phone's write failed: {phone}")
        for device, via, reply, item in (
            ("laptop", p1, laptop, "lamp"),
            ("phone", p2, phone, "mug"),
        ):
            if isinstance(reply, PutReply):
                self.out.say(
                    f"Alice's {device} (via {via}) adds a {item}: acknowledged by "
                    f"{', '.join(reply.acked)}"
                    + (
                        f", hinted: {', '.join(f'{f} for {p}' for f, p in reply.hinted)}"
                        if reply.hinted
                        else ""
                    )
                )
        cluster.heal()
        cluster.run(2.0)
        read = cluster.get(CART, via=p1)
        siblings = _items(read)
        self.check(len(siblings) == 2, f"expected 2 siblings after the partition, got {siblings}")
        self.out.say("The partition heals. Alice opens her cart; the read returns both versions:")
        self.out.table(
            "Siblings: concurrent writes, neither saw the other",
            ["sibling", "items"],
            [[str(i + 1), _show(items)] for i, items in enumerate(siblings)],
        )
        merged = frozenset().union(*siblings)
        if isinstance(read, GetReply):
            reply = cluster.put(CART, encode_cart(merged), read.context, via=p1)
            self.check(isinstance(reply, PutReply), f"writing the merge failed: {reply}")
        after = _items(cluster.get(CART, via=p2))
        self.check(after == [merged], f"expected one merged version, got {after}")
        self.out.say(
            f"The app merges them (set union) and writes {_show(merged)} back with the read's "
            "context, which replaces exactly the two siblings: one version again, nothing lost."
        )

    def node_returns(self, p3: str) -> None:
        cluster = self.cluster
        self.out.step(4, f"{p3} comes back: hinted handoff")
        start = len(self.delivered)
        cluster.restart(p3)
        cluster.run(3.0)
        rows = [
            [f"{now:.2f}", node, effect.target, str(effect.removed)]
            for now, node, effect in self.delivered[start:]
        ]
        self.out.say(
            f"{p3} restarts with its disk intact. Its heartbeats reach the others again; the "
            "fallbacks see it up and hand over the hints they kept for it."
        )
        self.out.table(
            "Hints delivered", ["time (s)", "from", "to", "hints"], rows or [["-", "-", "-", "0"]]
        )
        self.check(
            any(e.target == p3 and e.removed for _, _, e in self.delivered[start:]),
            "no hint reached p3",
        )
        state = cluster.node(p3).state_of(CART)
        items = [decode_cart(v) for v in state.values] if state is not None else []
        self.out.say(f"{p3} now holds cart:alice = {' | '.join(_show(i) for i in items)}")
        self.check(cluster.pending_hints() == 0, "hints are left undelivered")

    def amnesia(self) -> None:
        cluster = self.cluster
        victim = cluster.nodes[3]
        held = len(cluster.node(victim).keys())
        self.out.step(5, f"{victim} loses its disk: Merkle anti-entropy repairs it")
        start = len(self.exchanges)
        cluster.crash(victim, wipe=True)
        cluster.restart(victim)
        self.out.say(
            f"{victim} held {held} keys. Its disk is replaced and it restarts empty, with a fresh "
            "actor epoch so it can never reissue an old dot (Riak's KV679). Nobody kept hints for "
            "it: it was never down while writes happened. Every 0.5 s each node compares the "
            "Merkle roots of the ranges it shares with its next peer, and exchanges trees where "
            "they differ."
        )
        keys = [f"cart:{i:03d}" for i in range(_OTHER_CARTS)] + [CART]
        with self.out.progress("anti-entropy rounds", 10) as bar:
            for _ in range(10):
                cluster.run(2.5)
                bar.advance()
                if not cluster.divergent_keys(keys) and not cluster.divergent_ranges():
                    break
        involved = [
            (now, node, e) for now, node, e in self.exchanges[start:] if victim in (node, e.peer)
        ]
        pairs: dict[tuple[str, str], list[int]] = {}
        for _, node, e in involved:
            totals = pairs.setdefault((node, e.peer), [0, 0, 0, 0, 0, 0])
            report = e.report
            done = (1, len(report.segments), report.digests, report.round_trips)
            for i, amount in enumerate((*done, e.pushed + e.pulled, report.wire_bytes)):
                totals[i] += amount
        self.out.table(
            f"Merkle exchanges involving {victim} (initiator > peer)",
            ["pair", "ranges", "segments", "digests", "round trips", "keys", "bytes"],
            [[f"{a} > {b}", *(f"{v:,}" for v in totals)] for (a, b), totals in pairs.items()],
        )
        now_held = len(cluster.node(victim).keys())
        self.check(now_held == held, f"{victim} holds {now_held} keys after repair, not {held}")
        self.check(not cluster.divergent_keys(keys), "replicas still differ after anti-entropy")
        self.check(not cluster.divergent_ranges(), "Merkle roots still differ after anti-entropy")
        digests = sum(e.report.digests for _, _, e in involved)
        self.out.say(
            f"{len(involved)} exchanges, {digests} tree digests in all, brought back all {held} "
            "keys; every replica of every key now holds an identical state and identical Merkle "
            "roots."
        )

    def join(self, cart: frozenset[str]) -> None:
        cluster = self.cluster
        self.out.step(7, "A sixth node joins: about 1/6 of the data moves to it, nothing else")
        before = {name: set(cluster.node(name).keys()) for name in cluster.nodes}
        replicas = sum(len(keys) for keys in before.values())
        done: list[TransferDone] = []
        cluster.observe(lambda _t, _n, e: done.append(e) if isinstance(e, TransferDone) else None)
        joiner = cluster.add_node("n6")
        via = cluster.nodes[1]
        cluster.join("n6", via=via)
        self.out.say(
            f"n6 boots outside the ring and learns it from its seeds by gossip. An admin asks "
            f"{via} to add it; the request spreads by gossip to the claimant "
            f"({cluster.node(via).membership.claimant}, the smallest node id), which mints ring "
            "version 1: the new ring and the transfer plan. While the ranges move, writes go to "
            "a quorum of the old and of the new replicas, and reads use the old ones."
        )
        settled = cluster.run_while(lambda: not cluster.settled(), limit=60.0)
        self.check(settled, "the ring did not settle within 60 virtual seconds")
        cluster.run(2.0)
        plan = joiner.membership.plan
        keys = {t.index: t.keys for t in done}
        rows = [
            [
                f"{t.range.start:#018x}",
                f"{t.range.end % 2**64:#018x}",
                t.source,
                t.target,
                str(keys.get(i, 0)),
            ]
            for i, t in enumerate(plan)
        ]
        self.out.table(
            f"Transfer plan of ring version {joiner.ring_version} (streamed in batches)",
            ["range start", "range end", "source", "target", "keys"],
            rows,
        )
        moved = len(joiner.keys())
        after = {name: set(cluster.node(name).keys()) for name in cluster.nodes}
        share = moved / max(1, replicas)
        self.out.say(
            f"n6 now holds {moved} of the {replicas} key replicas ({share:.1%}; ideal 1/6 = "
            f"{1 / 6:.1%}, ratio {share * 6:.2f}); the old nodes only lost keys, each to n6, "
            "and dropped them only after n6's streams completed."
        )
        self.check(all(v.epoch == 1 for v in cluster.ring_versions().values()), "versions differ")
        self.check(joiner.status == "member", f"n6 is {joiner.status}, not a member")
        self.check(
            all(after[n] <= before[n] for n in before), "an old node gained keys from the join"
        )
        self.check(sum(len(k) for k in after.values()) == replicas, "the replica count changed")
        self.check(0.1 <= share <= 0.25, f"{share:.1%} of the replicas moved, not about 1/6")
        final = _items(cluster.get(CART, via="n6"))
        again = frozenset().union(*final) if final else frozenset()
        self.check(again == cart, f"after the join the cart reads {_show(again)}")
        self.out.say(f"Alice's cart, read through n6: {_show(again)}.")

    def summary(self) -> frozenset[str]:
        cluster = self.cluster
        self.out.step(6, "Where everything ended up")
        rows = []
        for name in cluster.nodes:
            node = cluster.node(name)
            stats = node.stats()
            rows.append(
                [
                    name,
                    str(len(node.keys())),
                    str(stats["puts_coordinated"]),
                    str(stats["hints_stored"]),
                    str(stats["hints_received"]),
                    str(stats["read_repairs"]),
                    str(stats["exchanges"]),
                    str(stats["keys_pushed"] + stats["keys_pulled"]),
                ]
            )
        self.out.table(
            "Per node since its last start: keys held, puts coordinated, hints kept for others "
            "and received, read repairs, Merkle exchanges started and keys they repaired",
            ["node", "keys", "puts", "hints kept", "hints in", "read repairs", "exchanges", "keys"],
            rows,
        )
        final = _items(cluster.get(CART, via=cluster.nodes[0]))
        cart = frozenset().union(*final) if final else frozenset()
        self.check(cart == {"book", "pen", "lamp", "mug"}, f"the final cart is {_show(cart)}")
        self.out.say(f"Alice's cart: {_show(cart)} — every acknowledged add is there.")
        counts = cluster.counts()
        self.out.say(
            f"{counts['sent']:,} messages in {cluster.now:.1f} virtual seconds; trace hash "
            f"{cluster.trace_hash[:16]} (the same on every run)."
        )
        return cart


def run_demo(narrator: Narrator, *, seed: int = 0) -> DemoOutcome:
    """Tell the shopping-cart story through `narrator` and check every step.

    Args:
        narrator: Where the story goes.
        seed: The network's seed (the story is written for seed 0; others work too).

    Returns:
        The outcome: failed checks, the final cart, the trace hash.
    """
    story = _Story(narrator, seed)
    story.placement()
    p1, p2, p3 = story.node_down()
    story.partition(p1, p2, p3)
    story.node_returns(p3)
    story.amnesia()
    cart = story.summary()
    story.join(cart)
    return DemoOutcome(tuple(story.problems), tuple(sorted(cart)), story.cluster.trace_hash)
