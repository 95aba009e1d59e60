"""Randomized, deterministic cluster runs with faults, and the history check that judges them.

A [`Simulation`][dynamo_core.testing.Simulation] runs one seed:

1. **Load.** A [`SimulatedCluster`][dynamo_core.testing.SimulatedCluster] of `nodes` nodes
   serves `clients` clients doing read-modify-write on `keys` shopping carts: each cycle reads a
   cart through a random node, merges its siblings with the application's resolver (set union;
   or last-write-wins for the negative control), adds one unique item and writes the cart back
   with the context it read. Every add is recorded in a
   [`SetHistory`][dynamo_core.testing.SetHistory] when it is invoked and when it is
   acknowledged.
2. **Faults.** Meanwhile a seeded *nemesis* injects the faults enabled in the config: message
   ``delay``, ``drop``, ``duplicate`` and ``reorder`` throughout, and one at a time ``bisect``
   (a random bisection), ``isolate`` (one node cut off), ``majorities`` (each node sees a
   majority, no two the same one), ``swizzle`` (nodes cut off one by one, then healed in random
   order), ``crash`` (volatile state lost, storage kept, restart later), ``amnesia`` (a crash
   that also loses the storage; at most ``w - 1`` per run, so every acknowledged write keeps a
   durable copy somewhere) and ``pause`` (a gray failure: the node stops processing but keeps
   its connections; what was sent to it waits, as under SIGSTOP). The ``hostile`` workload
   adds a client that sends what the node must refuse — values over the cap, contexts with
   counters near overflow or a thousand made-up actors — and floods one key with blind writes
   past the sibling limit: refusals must be typed, nothing admitted over a limit, every
   acknowledged flood write kept and no refused one stored.
3. **Heal and converge.** The faults stop, the network heals, crashed nodes restart, and the
   cluster runs anti-entropy rounds (every node offers its roots to each of its peers once per
   round) until every key's replicas hold identical states, every segment's replicas have
   identical Merkle roots and no hint is left — or `max_rounds` rounds have passed.
4. **Check.** Every acknowledged add must be in its final cart (Jepsen's *set-full*: lost = 0),
   nothing may appear that was never attempted, every node's invariants must hold, and every
   set of siblings a read ever returned (and the final one) must be writes that are pairwise
   concurrent — none in the causal past of another — which bounds the sibling count by the
   number of concurrent writers.

The same seed gives the same trace, byte for byte, in any process and under any
``PYTHONHASHSEED``: [`SimulationResult.trace_hash`][dynamo_core.testing.SimulationResult] is its
SHA-256. [`run_simulations`][dynamo_core.testing.run_simulations] runs many seeds and sums them
up in a [`SimulationSummary`][dynamo_core.testing.SimulationSummary].
"""

from __future__ import annotations

import hashlib
import random
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, as_completed
from functools import partial
from typing import Final, Literal, cast

import attrs

from dynamo_core import codec
from dynamo_core._check import check_positive_int
from dynamo_core.errors import DecodeError
from dynamo_core.hashing import TOKEN_SPACE
from dynamo_core.limits import LIMIT_NAMES, Limits
from dynamo_core.membership import RingVersion
from dynamo_core.messages import GetReply, PutReply, RequestFailed, RequestResult
from dynamo_core.node import Effect, NodeConfig, RingChanged, encode_context
from dynamo_core.quorum import QuorumPolicy
from dynamo_core.ring import HashRing
from dynamo_core.testing.cluster import NetworkConfig, SimulatedCluster
from dynamo_core.testing.history import SetHistory
from dynamo_core.vclock import VectorClock

__all__ = [
    "CHURN_EVENTS",
    "FAULTS",
    "RESOLVERS",
    "SIMULATION_NODE_CONFIG",
    "Cart",
    "Simulation",
    "SimulationConfig",
    "SimulationResult",
    "SimulationSummary",
    "run_simulations",
]

NETWORK_FAULTS: Final = ("delay", "drop", "duplicate", "reorder")
PARTITION_FAULTS: Final = ("bisect", "isolate", "majorities", "swizzle")
NODE_FAULTS: Final = ("crash", "amnesia", "pause")
WORKLOAD_FAULTS: Final = ("hostile",)
FAULTS: Final = (*NETWORK_FAULTS, *PARTITION_FAULTS, *NODE_FAULTS, *WORKLOAD_FAULTS)
"""Every fault the nemesis knows, by name."""

CHURN_EVENTS: Final = ("join", "double_join", "leave", "partitioned", "join_leave", "replace")
"""What the churn nemesis does: one join; two joins at once; one leave; a join or a leave
submitted while a random bisection is in force; a node that joins and then leaves again (the
riak_kv#1754 pattern); a member replaced by a new node (Riak's ``cluster replace``, counted as
one join and one leave)."""

_SPARES: Final = 3  # node ids beyond the initial ones that churn may add

RESOLVERS: Final = ("union", "lww")
"""How clients merge siblings: set union (correct for carts) or last-write-wins (loses adds)."""

SIMULATION_NODE_CONFIG: Final = NodeConfig(
    heartbeat_interval=0.5,
    request_timeout=0.3,
    forward_timeout=0.6,
    anti_entropy_interval=0.5,
    exchange_timeout=2.0,
    merkle_depth=6,
    handoff_timeout=1.0,
    handoff_backoff=0.25,
    gossip_interval=0.25,
    stream_batch_bytes=2048,
    stream_timeout=0.5,
    limits=Limits(
        max_siblings=16, siblings_warning=8, max_value_bytes=64 * 1024, max_record_bytes=1 << 20
    ),
)
"""Node timings scaled to the simulation's millisecond network (about 1/3 of the defaults), and
admission limits small enough for the hostile workload's flood to reach them."""

_FLOOD_KEY: Final = "flood"
_FLOOD_WRITES: Final = 40  # blind writes per run: past max_siblings=16 even split over nodes
_HOSTILE_REQUESTS: Final = 64  # the hostile client's requests per run (the load waits for them)

_CLIENT_TIMEOUT: Final = 1.5
_SETTLE: Final = 1.5


# -- the cart values -------------------------------------------------------------------------


@attrs.frozen
class Cart:
    """One stored version of a shopping cart: its items, and which write made it when.

    Attributes:
        items: The items in the cart.
        write: The id of the write that produced this version (``"c3.17"``).
        at: The (virtual) time of that write, used by the last-write-wins resolver.
    """

    items: frozenset[str]
    write: str
    at: float

    def encode(self) -> bytes:
        """Return the value bytes stored in the cluster (canonical JSON, items sorted)."""
        items: list[codec.JSONValue] = [*sorted(self.items)]
        return codec.dumps(
            codec.envelope("cart", {"items": items, "write": self.write, "at": self.at})
        )

    @classmethod
    def decode(cls, data: bytes) -> Cart:
        """Decode what `encode` produced.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not an encoded cart.
        """
        obj = codec.open_envelope(codec.loads(data), "cart", required=("items", "write", "at"))
        items = codec.as_list(obj["items"], "cart.items")
        if not _plain_items(items):  # the item-by-item check names the first bad one
            for item in items:
                codec.as_str(item, "cart.items[]")
        return cls(
            frozenset(cast("list[str]", items)),
            codec.as_str(obj["write"], "cart.write"),
            codec.as_float(obj["at"], "cart.at", lo=0.0),
        )


def _plain_items(items: list[object]) -> bool:
    """Whether every item is an ASCII string `codec.as_str` accepts: one pass for a whole cart."""
    if not all(type(item) is str for item in items):
        return False
    texts = cast("list[str]", items)
    lengths = [*map(len, texts)] or [1]
    return min(lengths) >= 1 and max(lengths) <= codec.DEFAULT_MAX_STR and "".join(texts).isascii()


def _resolve(carts: list[Cart], resolver: str) -> frozenset[str]:
    if not carts:
        return frozenset()
    if resolver == "lww":
        return max(carts, key=lambda cart: (cart.at, cart.write)).items
    return frozenset().union(*(cart.items for cart in carts))


# -- configuration ---------------------------------------------------------------------------


def _faults(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, Iterable):
        raise TypeError(
            f"faults must be names or a comma-separated str, not {type(value).__name__}"
        )
    names: set[str] = set()
    for name in value:
        if name == "all":
            names.update(FAULTS)
        elif name == "none":
            continue
        elif name in FAULTS:
            names.add(name)
        else:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}, all, none")
    return tuple(name for name in FAULTS if name in names)


def _count(lo: int, hi: int) -> Callable[[object, attrs.Attribute[int], object], None]:
    def check(_: object, attribute: attrs.Attribute[int], value: object) -> None:
        check_positive_int(value, attribute.name, maximum=hi)
        assert isinstance(value, int)
        if value < lo:
            raise ValueError(f"{attribute.name} must be in {lo}..{hi}, got {value}")

    return check


@attrs.frozen
class SimulationConfig:
    """What one [`Simulation`][dynamo_core.testing.Simulation] seed runs.

    Attributes:
        nodes: Cluster size.
        n: Replicas per key.
        r: Read quorum.
        w: Write quorum.
        sloppy: Sloppy quorum (fallbacks count) or strict.
        ops: Read-modify-write cycles the clients start in total.
        clients: Concurrent clients.
        keys: Shopping carts (fewer keys: more concurrent writes, more siblings).
        faults: The enabled faults (names from `FAULTS`; a comma-separated string, ``"all"``
            and ``"none"`` are accepted).
        resolver: ``"union"`` (the correct cart merge) or ``"lww"`` (the negative control).
        partitions: Ring partitions.
        max_rounds: Anti-entropy rounds allowed after healing before a run is unconverged.
        node_config: The nodes' timings.
        churn: Let a second nemesis join and remove nodes during the load (see
            `CHURN_EVENTS`), with node ids beyond `nodes` (``n6``, ``n7``, ... for 5 nodes);
            the cluster never has fewer than `n` members.

    Raises:
        TypeError, ValueError: A value is out of range (``n`` over ``nodes``, ``r`` or ``w``
            over ``n``, an unknown fault or resolver).
    """

    nodes: int = attrs.field(default=5, validator=_count(1, 64))
    n: int = attrs.field(default=3, validator=_count(1, 64))
    r: int = attrs.field(default=2, validator=_count(1, 64))
    w: int = attrs.field(default=2, validator=_count(1, 64))
    sloppy: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    ops: int = attrs.field(default=2000, validator=_count(1, 10**7))
    clients: int = attrs.field(default=5, validator=_count(1, 1000))
    keys: int = attrs.field(default=8, validator=_count(1, 10**6))
    faults: tuple[str, ...] = attrs.field(default=FAULTS, converter=_faults)
    resolver: Literal["union", "lww"] = attrs.field(
        default="union", validator=attrs.validators.in_(RESOLVERS)
    )
    partitions: int = attrs.field(default=64, validator=_count(1, 2**18))
    max_rounds: int = attrs.field(default=10, validator=_count(1, 1000))
    node_config: NodeConfig = attrs.field(
        default=SIMULATION_NODE_CONFIG, validator=attrs.validators.instance_of(NodeConfig)
    )
    churn: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    def __attrs_post_init__(self) -> None:
        if self.n > self.nodes:
            raise ValueError(f"n must be at most nodes={self.nodes}, got {self.n}")
        QuorumPolicy(self.n, self.r, self.w, sloppy=self.sloppy)  # checks r and w
        ring = HashRing(self.n, partitions=self.partitions)  # a power of two, enough for all
        for i in range(1, self.nodes + 1):
            ring.add_node(f"n{i}")

    @property
    def policy(self) -> QuorumPolicy:
        """The quorum policy of the run."""
        return QuorumPolicy(self.n, self.r, self.w, sloppy=self.sloppy)

    def describe(self) -> dict[str, codec.JSONValue]:
        """The run's parameters as JSON-safe data (for summaries)."""
        return {
            "nodes": self.nodes,
            "n": self.n,
            "r": self.r,
            "w": self.w,
            "sloppy": self.sloppy,
            "ops": self.ops,
            "clients": self.clients,
            "keys": self.keys,
            "faults": list(self.faults),
            "resolver": self.resolver,
            "partitions": self.partitions,
            "max_rounds": self.max_rounds,
            "churn": self.churn,
        }


# -- results ---------------------------------------------------------------------------------


@attrs.frozen
class SimulationResult:
    """The verdict and the measurements of one seed.

    Attributes:
        seed: The seed.
        operations: Read-modify-write cycles started.
        attempted: Adds attempted (cycles whose read succeeded).
        acknowledged: Adds the cluster acknowledged.
        lost: Acknowledged adds missing from the final carts.
        unexpected: Items in the final carts that no client ever added.
        recovered: Unacknowledged adds that survived anyway (legal).
        violations: Everything that went wrong, for people (empty when the run is correct).
        unconverged: Keys and segments still divergent after `max_rounds`, plus leftover
            hints.
        rounds: Anti-entropy rounds it took to converge after healing (``-1``: never).
        max_siblings: The most siblings any read returned.
        joins: Join requests the churn nemesis submitted.
        leaves: Leave requests the churn nemesis submitted.
        versions: Ring versions minted during the run.
        moved_fraction_vs_ideal: The largest, over the run's join-only versions, of the share
            of the replicated key space the version's plan moved divided by the ideal
            ``joiners / (members after)``; 0.0 when no such version was minted.
        faults: How many times each fault was injected, by name.
        messages: Messages sent between nodes.
        sim_seconds: Virtual time the run covered.
        trace_hash: SHA-256 of the run's event trace.
    """

    seed: int
    operations: int
    attempted: int
    acknowledged: int
    lost: int
    unexpected: int
    recovered: int
    violations: tuple[str, ...]
    unconverged: int
    rounds: int
    max_siblings: int
    faults: tuple[tuple[str, int], ...]
    messages: int
    sim_seconds: float
    trace_hash: str
    joins: int = 0
    leaves: int = 0
    versions: int = 0
    moved_fraction_vs_ideal: float = 0.0
    ring_converged: bool = True

    @property
    def ok(self) -> bool:
        """Whether the run found no violation."""
        return not self.violations

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """The result as JSON-safe data."""
        return {
            "seed": self.seed,
            "operations": self.operations,
            "attempted": self.attempted,
            "acknowledged": self.acknowledged,
            "lost": self.lost,
            "unexpected": self.unexpected,
            "recovered": self.recovered,
            "violations": list(self.violations),
            "unconverged": self.unconverged,
            "rounds": self.rounds,
            "max_siblings": self.max_siblings,
            "joins": self.joins,
            "leaves": self.leaves,
            "versions": self.versions,
            "moved_fraction_vs_ideal": round(self.moved_fraction_vs_ideal, 4),
            "ring_converged": self.ring_converged,
            "faults": dict(self.faults),
            "messages": self.messages,
            "sim_seconds": round(self.sim_seconds, 6),
            "trace_hash": self.trace_hash,
        }


# -- one run ---------------------------------------------------------------------------------


class _Write:
    """A write a client attempted: its cart, its causal past, whether it was acknowledged."""

    __slots__ = ("acked", "items", "key", "past")

    def __init__(self, key: str, items: frozenset[str], past: frozenset[str]) -> None:
        self.key = key
        self.items = items
        self.past = past
        self.acked = False


class Simulation:
    """One seeded run: load with faults, heal, converge, check. See the module documentation.

    Args:
        seed: Seeds every random choice (network, nemesis, clients).
        config: What to run (default [`SimulationConfig()`][dynamo_core.testing.SimulationConfig]).
        record_trace: Keep the trace lines (``simulation.cluster.trace_lines``) for debugging.

    Examples:
        >>> result = Simulation(7, SimulationConfig(ops=50)).run()
        >>> result.ok, result.lost
        (True, 0)
    """

    def __init__(
        self, seed: int, config: SimulationConfig | None = None, *, record_trace: bool = False
    ) -> None:
        if type(seed) is not int:
            raise TypeError(f"seed must be an int, not {type(seed).__name__}")
        self.seed = seed
        self.config = config if config is not None else SimulationConfig()
        if not isinstance(self.config, SimulationConfig):
            raise TypeError(f"config must be a SimulationConfig, not {type(config).__name__}")
        self._rng = random.Random(f"dynamo-core/simulation/{seed}")  # noqa: S311 - a simulation
        self.cluster = SimulatedCluster(
            self.config.nodes,
            policy=self.config.policy,
            config=self.config.node_config,
            network=self._fault_network(),
            seed=self._rng.getrandbits(63),
            partitions=self.config.partitions,
            record_trace=record_trace,
        )
        self.history: SetHistory[str, str] = SetHistory()
        self._keys = [f"cart-{i}" for i in range(self.config.keys)]
        self._writes: dict[str, _Write] = {}
        self._started = 0
        self._active = 0
        self._loading = True
        self._amnesia_left = max(0, self.config.w - 1)
        self._fault_counts = dict.fromkeys(self.config.faults, 0)
        self._violations: list[str] = []
        self._max_siblings = 0
        self._down: list[str] = []
        self._check: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
        self._joins = 0
        self._leaves = 0
        self._ratios: dict[RingVersion, float] = {}
        self._ring_converged = True
        first = self.config.nodes + 1
        self._spares = [f"n{i}" for i in range(first, first + _SPARES)] if self.config.churn else []
        if self.config.churn:
            self._fault_counts.update(dict.fromkeys((f"churn_{k}" for k in CHURN_EVENTS), 0))
        self.cluster.observe(self._on_effect)
        self._carts: dict[bytes, Cart] = {}
        self._paused: list[str] = []
        self._hostile_sent = 0
        self._flood_sent = 0
        self._hostile_left = _HOSTILE_REQUESTS if "hostile" in self.config.faults else 0
        self._flood_acked: set[bytes] = set()
        self._flood_refused: set[bytes] = set()

    # -- network faults ----------------------------------------------------------------------

    def _fault_network(self) -> NetworkConfig:
        faults = self.config.faults
        return NetworkConfig(
            drop=0.02 if "drop" in faults else 0.0,
            duplicate=0.02 if "duplicate" in faults else 0.0,
            slow=0.05 if "delay" in faults else 0.0,
            reorder="reorder" in faults,
        )

    # -- the workload ------------------------------------------------------------------------

    def _violation(self, text: str) -> None:
        if len(self._violations) < 50:
            self._violations.append(text)
        elif len(self._violations) == 50:
            self._violations.append("... more violations not shown")

    def _client_next(self, client: int, seq: int) -> None:
        if not self._loading or self._started >= self.config.ops:
            return
        self._started += 1
        self._active += 1
        rng = self._rng
        key = rng.choice(self._keys)
        via = rng.choice(self.cluster.nodes)
        rid = f"c{client}.{seq}"

        def after_get(result: RequestResult) -> None:
            if not isinstance(result, GetReply):
                self._finish(client, seq)
                return
            carts = self._check_siblings(key, result.values, f"read {rid}")
            past: set[str] = set()
            for cart in carts:
                past.add(cart.write)
                known = self._writes.get(cart.write)
                if known is not None:
                    past.update(known.past)
            item = f"{key}/{rid}"
            write = f"{rid}w"
            items = _resolve(carts, self.config.resolver) | {item}
            self._writes[write] = _Write(key, items, frozenset(past))
            op = self.history.invoke(key, item)
            cart = Cart(items, write, round(self.cluster.now, 6))
            value = cart.encode()
            self._carts[value] = cart  # what decoding these bytes gives: reads skip the decode
            target = rng.choice(self.cluster.nodes)

            def after_put(result: RequestResult) -> None:
                if isinstance(result, PutReply):
                    self.history.ok(op)
                    self._writes[write].acked = True
                self._finish(client, seq)

            self.cluster.submit(
                "put",
                target,
                key,
                after_put,
                value=value,
                context=result.context,
                timeout=_CLIENT_TIMEOUT,
                request_id=f"{rid}p",
            )

        self.cluster.submit(
            "get", via, key, after_get, timeout=_CLIENT_TIMEOUT, request_id=f"{rid}g"
        )

    def _finish(self, client: int, seq: int) -> None:
        self._active -= 1
        think = self._rng.uniform(0.0, 0.02)
        self.cluster.call_at(
            self.cluster.now + think,
            lambda: self._client_next(client, seq + 1),
            f"client c{client} next",
        )

    def _check_siblings(self, key: str, values: Iterable[bytes], where: str) -> list[Cart]:
        """Decode a read's siblings and check they are distinct, pairwise concurrent writes."""
        carts: list[Cart] = []
        for value in values:
            cart = self._carts.get(value)
            if cart is None:
                try:
                    cart = self._carts[value] = Cart.decode(value)
                except DecodeError as exc:
                    self._violation(f"{where}: {key} holds a value that is not a cart: {exc}")
                    continue
            write = self._writes.get(cart.write)
            if write is None or write.key != key or write.items != cart.items:
                self._violation(f"{where}: {key} holds a version no client wrote ({cart.write})")
            carts.append(cart)
        self._max_siblings = max(self._max_siblings, len(carts))
        ids = [cart.write for cart in carts]
        if len(set(ids)) != len(ids):
            self._violation(f"{where}: {key} holds the same write twice as siblings: {sorted(ids)}")
        for a in ids:
            past = self._writes[a].past if a in self._writes else frozenset()
            for b in ids:
                if b != a and b in past:
                    self._violation(
                        f"{where}: {key} keeps sibling {b} although {a} was written after it"
                    )
        return carts

    # -- the nemesis -------------------------------------------------------------------------

    def _nemesis(self) -> None:
        if not self._loading:
            return
        kinds = [k for k in self.config.faults if k in PARTITION_FAULTS or k in NODE_FAULTS]
        if self._amnesia_left <= 0 and "amnesia" in kinds:
            kinds.remove("amnesia")
        if not kinds:
            return
        rng = self._rng
        cluster = self.cluster
        kind = rng.choice(kinds)
        self._fault_counts[kind] += 1
        nodes = list(cluster.nodes)
        hold = rng.uniform(0.3, 2.0)
        if kind == "bisect":
            rng.shuffle(nodes)
            half = len(nodes) // 2
            cluster.partition(nodes[:half], nodes[half:])
            self._later(hold, self._heal_then_next, "nemesis heal")
        elif kind == "isolate":
            cluster.isolate(rng.choice(nodes))
            self._later(hold, self._heal_then_next, "nemesis heal")
        elif kind == "majorities":
            self._majorities(nodes)
            self._later(hold, self._heal_then_next, "nemesis heal")
        elif kind == "swizzle":
            self._swizzle(nodes)
        elif kind == "pause":
            victim = rng.choice([n for n in nodes if cluster.is_up(n)])
            cluster.pause(victim)
            self._paused.append(victim)
            self._later(hold, lambda: self._resume_then_next(victim), f"nemesis resume {victim}")
        else:
            victim = rng.choice([n for n in nodes if cluster.is_up(n)])
            if kind == "amnesia":
                self._amnesia_left -= 1
            cluster.crash(victim, wipe=kind == "amnesia")
            self._down.append(victim)
            self._later(hold, lambda: self._restart_then_next(victim), f"nemesis restart {victim}")

    def _later(self, delay: float, callback: Callable[[], None], label: str) -> None:
        self.cluster.call_at(self.cluster.now + delay, callback, label)

    def _next_fault(self) -> None:
        self._later(self._rng.uniform(0.1, 0.8), self._nemesis, "nemesis")

    def _heal_then_next(self) -> None:
        self.cluster.heal()
        self._next_fault()

    def _restart_then_next(self, victim: str) -> None:
        if victim in self._down:
            self._down.remove(victim)
            self.cluster.restart(victim)
        self._next_fault()

    def _resume_then_next(self, victim: str) -> None:
        if victim in self._paused:
            self._paused.remove(victim)
            self.cluster.resume(victim)
        self._next_fault()

    # -- the hostile client ------------------------------------------------------------------

    def _hostile(self) -> None:
        """Send one request a node must refuse (or a flood write), then schedule the next."""
        if not self._loading or self._hostile_left <= 0:
            return
        self._hostile_left -= 1
        rng = self._rng
        cluster = self.cluster
        limits = self.config.node_config.limits
        via = rng.choice(cluster.nodes)
        self._hostile_sent += 1
        self._fault_counts["hostile"] += 1
        rid = f"h{self._hostile_sent}"
        kind = rng.choice(("oversized", "overflow", "actors", *("flood",) * 5))
        value, context = b"x", None
        if kind == "oversized":
            value = b"o" * (limits.max_value_bytes + 1)
        elif kind == "overflow":  # counters at the limit, for the coordinator's next actors
            context = encode_context(
                VectorClock({f"{n}#{e}": 2**63 - 1 for n in cluster.nodes for e in range(1, 9)})
            )
        elif kind == "actors":
            context = encode_context(VectorClock({f"x{i:04}": 1 for i in range(1000)}))
        elif self._flood_sent < _FLOOD_WRITES:
            self._flood_sent += 1
            value = f"flood:{rid}".encode()
        else:
            kind, value = "oversized", b"o" * (limits.max_value_bytes + 1)
        key = _FLOOD_KEY if kind == "flood" else f"hostile-{kind}"

        def outcome(result: RequestResult) -> None:
            if kind == "flood":
                if isinstance(result, PutReply):
                    self._flood_acked.add(value)
                elif isinstance(result, RequestFailed) and result.code in LIMIT_NAMES:
                    self._flood_refused.add(value)  # refused at admission: stored nowhere
            elif isinstance(result, PutReply):
                self._violation(f"hostile {kind} write {rid} via {via} was admitted")

        cluster.submit(
            "put",
            via,
            key,
            outcome,
            value=value,
            context=context,
            timeout=_CLIENT_TIMEOUT,
            request_id=rid,
        )
        self._later(rng.uniform(0.01, 0.04), self._hostile, "hostile")

    def _check_flood(self) -> None:
        """Every acknowledged flood write is in the key's final state; no refused one is."""
        cluster = self.cluster
        owner = cluster.replicas(_FLOOD_KEY)[0]
        state = cluster.node(owner).state_of(_FLOOD_KEY)
        values = set() if state is None else set(state.values)
        lost = self._flood_acked - values
        if lost:
            self._violation(f"{len(lost)} acknowledged flood writes lost")
        stored = self._flood_refused & values
        if stored:
            self._violation(f"{len(stored)} flood writes refused at admission were stored")
        strangers = {v for v in values if not v.startswith(b"flood:")}
        if strangers:
            self._violation(f"{len(strangers)} values nobody wrote are in the flood key")

    def _majorities(self, nodes: list[str]) -> None:
        """Cut links so each node sees a majority (itself included), no two the same one."""
        rng = self._rng
        rng.shuffle(nodes)
        count = len(nodes)
        reach = (count // 2 + 1) // 2  # neighbours on each side in the ring
        for i, a in enumerate(nodes):
            for j in range(i + 1, count):
                distance = min(j - i, count - (j - i))
                if distance > reach:
                    self.cluster.cut(a, nodes[j])

    def _swizzle(self, nodes: list[str]) -> None:
        """Isolate nodes one by one, then let them rejoin one by one in random order."""
        rng = self._rng
        rng.shuffle(nodes)
        victims = nodes[: rng.randint(1, max(1, len(nodes) - 1))]
        order = list(victims)
        rng.shuffle(order)
        at = self.cluster.now
        for victim in victims:
            at += rng.uniform(0.1, 0.5)
            self.cluster.call_at(
                at, partial(self._swizzle_cut, victim), f"nemesis isolate {victim}"
            )
        for victim in order:
            at += rng.uniform(0.1, 0.5)
            self.cluster.call_at(
                at, partial(self.cluster.rejoin, victim), f"nemesis rejoin {victim}"
            )
        self.cluster.call_at(at, self._heal_then_next, "nemesis heal")

    def _swizzle_cut(self, victim: str) -> None:
        if self._loading:  # the faults stop when the load does
            self.cluster.isolate(victim)

    # -- churn -------------------------------------------------------------------------------

    def _on_effect(self, now: float, name: str, effect: Effect) -> None:
        """Measure each new ring version's plan against the ideal movement."""
        if not isinstance(effect, RingChanged) or effect.version in self._ratios:
            return
        node = self.cluster.node(name)
        previous = node.previous_ring
        ring = node.ring
        ratio = 0.0
        if previous is not None:
            joins = [n for n in ring.nodes if n not in previous]
            leaves = [n for n in previous.nodes if n not in ring]
            if joins and not leaves:
                ideal = len(joins) / len(ring.nodes)
                moved = sum(t.range.size for t in node.membership.plan)
                ratio = moved / (TOKEN_SPACE * ring.replicas) / ideal
        elif effect.settled:
            return  # a settled install of a version seen before (or an empty plan)
        self._ratios[effect.version] = ratio

    def _admin_node(self) -> str | None:
        cluster = self.cluster
        members = [n for n in cluster.ring.nodes if cluster.is_up(n)]
        return self._rng.choice(members) if members else None

    def _joinable(self) -> list[str]:
        cluster = self.cluster
        out = [name for name in self._spares if name not in cluster.nodes]
        out.extend(
            name
            for name in cluster.nodes
            if cluster.is_up(name) and cluster.node(name).status in ("left", "outside")
        )
        return out

    def _try_join(self, count: int) -> list[str]:
        rng = self._rng
        cluster = self.cluster
        names = self._joinable()
        rng.shuffle(names)
        joined: list[str] = []
        for name in names[:count]:
            via = self._admin_node()
            if via is None:
                break
            if name not in cluster.nodes:
                cluster.add_node(name)
            try:
                cluster.join(name, via=via)
            except ValueError:
                continue
            self._joins += 1
            joined.append(name)
        return joined

    def _try_leave(self, name: str | None = None) -> bool:
        via = self._admin_node()
        if via is None:
            return False
        if name is None:
            members = list(self.cluster.node(via).ring.nodes)
            if len(members) <= self.config.n:
                return False
            name = self._rng.choice(members)
        try:
            self.cluster.leave(name, via=via)
        except ValueError:
            return False
        self._leaves += 1
        return True

    def _try_replace(self) -> bool:
        rng = self._rng
        cluster = self.cluster
        via = self._admin_node()
        spares = self._joinable()
        if via is None or not spares:
            return False
        old = rng.choice(list(cluster.node(via).ring.nodes))
        new = rng.choice(sorted(spares))
        if new not in cluster.nodes:
            cluster.add_node(new)
        try:
            cluster.replace(old, new, via=via)
        except ValueError:
            return False
        self._joins += 1
        self._leaves += 1
        return True

    def _churn(self) -> None:
        if not self._loading:
            return
        rng = self._rng
        kind = rng.choice(CHURN_EVENTS)
        self._fault_counts[f"churn_{kind}"] += 1
        if kind == "join":
            self._try_join(1)
        elif kind == "double_join":
            self._try_join(2)
        elif kind == "leave":
            self._try_leave()
        elif kind == "replace":
            self._try_replace()
        elif kind == "partitioned":
            nodes = list(self.cluster.nodes)
            rng.shuffle(nodes)
            half = len(nodes) // 2
            self.cluster.partition(nodes[:half], nodes[half:])
            if rng.random() < 0.5:
                self._try_join(1)
            else:
                self._try_leave()
            self._later(rng.uniform(0.3, 1.5), self.cluster.heal, "churn heal")
        else:
            for name in self._try_join(1):
                self._later(rng.uniform(0.5, 2.0), partial(self._leave_again, name, 5), "churn")
        self._later(rng.uniform(0.5, 2.0), self._churn, "churn")

    def _leave_again(self, name: str, tries: int) -> None:
        """The second half of join-then-leave: retry until some member knows of the join."""
        if not self._loading or tries <= 0 or self._try_leave(name):
            return
        self._later(0.5, partial(self._leave_again, name, tries - 1), "churn")

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> SimulationResult:
        """Run the seed to its verdict.

        Returns:
            The result. An exception raised by a node is caught and reported as a violation.
        """
        cluster = self.cluster
        rounds = -1
        unconverged = 0
        try:
            for client in range(self.config.clients):
                start = self._rng.uniform(0.0, 0.05)
                cluster.call_at(start, partial(self._client_next, client, 1), f"client c{client}")
            self._later(self._rng.uniform(0.2, 1.0), self._nemesis, "nemesis")
            if "hostile" in self.config.faults:
                self._later(self._rng.uniform(0.0, 0.5), self._hostile, "hostile")
            if self.config.churn:
                self._later(self._rng.uniform(0.2, 1.0), self._churn, "churn")
            budget = 60.0 + 0.1 * self.config.ops
            if not cluster.run_while(
                lambda: (
                    self._started < self.config.ops or self._active > 0 or self._hostile_left > 0
                ),
                limit=budget,
            ):
                self._violation(f"the workload did not finish within {budget:.0f} virtual seconds")
            rounds, unconverged = self._heal_and_converge()
            self._final_check()
        except Exception as exc:  # a bug in a core is a finding, not a crash
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self._violation(f"exception at t={cluster.now:.3f}: {detail}")
        check = self._check
        return SimulationResult(
            seed=self.seed,
            operations=self._started,
            attempted=check[0],
            acknowledged=check[1],
            lost=check[2],
            unexpected=check[3],
            recovered=check[4],
            violations=tuple(self._violations),
            unconverged=unconverged,
            rounds=rounds,
            max_siblings=self._max_siblings,
            faults=self._faults_injected(),
            messages=cluster.counts()["sent"],
            sim_seconds=cluster.now,
            trace_hash=cluster.trace_hash,
            joins=self._joins,
            leaves=self._leaves,
            versions=len(self._ratios),
            moved_fraction_vs_ideal=max(self._ratios.values(), default=0.0),
            ring_converged=self._ring_converged,
        )

    def _faults_injected(self) -> tuple[tuple[str, int], ...]:
        counts = dict(self._fault_counts)
        seen = self.cluster.counts()
        for fault, counter in (
            ("delay", "slowed"),
            ("drop", "dropped"),
            ("duplicate", "duplicated"),
            ("reorder", "reordered"),
        ):
            if fault in counts:
                counts[fault] = seen[counter]
        return tuple(sorted(counts.items()))

    def _heal_and_converge(self) -> tuple[int, int]:
        cluster = self.cluster
        self._loading = False
        cluster.heal()
        for victim in list(self._paused):
            cluster.resume(victim)
        self._paused.clear()
        for victim in list(self._down):
            cluster.restart(victim)
        self._down.clear()
        cluster.network = NetworkConfig()
        cluster.record("healed")
        node_config = self.config.node_config
        peers = max(1, len(cluster.nodes) - 1)
        round_time = node_config.anti_entropy_interval * peers + node_config.request_timeout
        cluster.run(_SETTLE)
        for done in range(self.config.max_rounds + 1):
            problems = self._divergence()
            if not problems:
                return done, 0
            if done == self.config.max_rounds:
                self._ring_converged = not any(p.startswith("ring") for p in problems)
                for text in problems[:10]:
                    self._violation(f"unconverged after {done} rounds: {text}")
                return -1, len(problems)
            cluster.run(round_time)
        raise AssertionError("unreachable")  # pragma: no cover

    def _divergence(self) -> list[str]:
        cluster = self.cluster
        live = cluster.live_nodes()
        versions = sorted({str(node.ring_version) for node in live})
        if len(versions) > 1:
            return [f"ring versions differ: {', '.join(versions)}"]
        problems = [
            f"ring {versions[0]} not settled on {node.node_id}"
            for node in live
            if not node.membership.settled
        ]
        problems += [
            f"ring change pending on {node.node_id}"
            for node in live
            if node.membership.pending_changes
        ]
        problems += [
            f"{node.node_id} is still leaving" for node in live if node.status == "leaving"
        ]
        if problems:
            return problems
        keys = [*self._keys, _FLOOD_KEY] if "hostile" in self.config.faults else self._keys
        problems = [f"key {key.decode()} differs" for key in cluster.divergent_keys(keys)]
        problems += [f"segment {rng!r} roots differ" for rng in cluster.divergent_ranges()]
        for node in cluster.live_nodes():
            if len(node.hints):
                problems.append(f"{node.node_id} still holds {len(node.hints)} hints")
        return problems

    def _final_check(self) -> None:
        cluster = self.cluster
        for node in cluster.live_nodes():
            try:
                node._check_invariants()
            except AssertionError as exc:
                self._violation(f"{node.node_id} breaks an invariant: {exc}")
        final: dict[str, frozenset[str]] = {}
        for key in self._keys:
            owner = cluster.replicas(key)[0]
            state = cluster.node(owner).state_of(key)
            values = [] if state is None else state.values
            carts = self._check_siblings(key, values, "final state")
            final[key] = _resolve(carts, self.config.resolver)
        if "hostile" in self.config.faults:
            self._check_flood()
        verdict = self.history.check(final)
        self._check = (
            verdict.attempted,
            verdict.acknowledged,
            len(verdict.lost),
            len(verdict.unexpected),
            len(verdict.recovered),
        )
        if verdict.lost:
            shown = ", ".join(f"{k}:{e}" for k, e in verdict.lost[:5])
            self._violation(f"{len(verdict.lost)} acknowledged adds lost (e.g. {shown})")
        if verdict.unexpected:
            shown = ", ".join(f"{k}:{e}" for k, e in verdict.unexpected[:5])
            self._violation(f"{len(verdict.unexpected)} items nobody added appeared ({shown})")


# -- many runs -------------------------------------------------------------------------------


@attrs.frozen
class SimulationSummary:
    """Many seeds' results added up.

    Attributes:
        config: The configuration every seed ran.
        results: Every seed's result, in seed order.
        wall_seconds: Real time the runs took.
    """

    config: SimulationConfig
    results: tuple[SimulationResult, ...]
    wall_seconds: float

    @property
    def seeds(self) -> int:
        """How many seeds ran."""
        return len(self.results)

    @property
    def operations(self) -> int:
        """Read-modify-write cycles over all seeds."""
        return sum(r.operations for r in self.results)

    @property
    def acknowledged(self) -> int:
        """Acknowledged adds over all seeds."""
        return sum(r.acknowledged for r in self.results)

    @property
    def lost(self) -> int:
        """Lost acknowledged adds over all seeds."""
        return sum(r.lost for r in self.results)

    @property
    def violations(self) -> int:
        """Violations over all seeds (a lost add counts in `lost`, once per seed here)."""
        return sum(len(r.violations) for r in self.results)

    @property
    def unconverged(self) -> int:
        """Divergent keys, segments and leftover hints over all seeds."""
        return sum(r.unconverged for r in self.results)

    @property
    def failed_seeds(self) -> tuple[int, ...]:
        """The seeds that found a violation."""
        return tuple(r.seed for r in self.results if not r.ok)

    @property
    def trace_hash(self) -> str:
        """SHA-256 over every seed's trace hash, in seed order."""
        digest = hashlib.sha256()
        for result in self.results:
            digest.update(f"{result.seed}:{result.trace_hash}\n".encode())
        return digest.hexdigest()

    @property
    def ok(self) -> bool:
        """Whether no seed found a violation."""
        return not self.failed_seeds

    def faults(self) -> dict[str, int]:
        """How many times each fault was injected over all seeds, by name (sorted)."""
        faults: dict[str, int] = {}
        for result in self.results:
            for name, count in result.faults:
                faults[name] = faults.get(name, 0) + count
        return dict(sorted(faults.items()))

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """The summary as JSON-safe data (the CLI prints it with ``--json``)."""
        wall = max(self.wall_seconds, 1e-9)
        faults: dict[str, codec.JSONValue] = dict(self.faults())
        rounds = [r.rounds for r in self.results if r.rounds >= 0]
        return {
            "seeds": self.seeds,
            "operations": self.operations,
            "attempted": sum(r.attempted for r in self.results),
            "acknowledged": self.acknowledged,
            "lost": self.lost,
            "unexpected": sum(r.unexpected for r in self.results),
            "recovered": sum(r.recovered for r in self.results),
            "violations": self.violations,
            "unconverged": self.unconverged,
            "failed_seeds": list(self.failed_seeds[:100]),
            "max_siblings": max((r.max_siblings for r in self.results), default=0),
            "max_rounds_to_converge": max(rounds, default=-1),
            "joins": sum(r.joins for r in self.results),
            "leaves": sum(r.leaves for r in self.results),
            "versions": sum(r.versions for r in self.results),
            "ring_unconverged_seeds": sum(1 for r in self.results if not r.ring_converged),
            "moved_fraction_vs_ideal": round(
                max((r.moved_fraction_vs_ideal for r in self.results), default=0.0), 4
            ),
            "faults": faults,
            "messages": sum(r.messages for r in self.results),
            "sim_seconds": round(sum(r.sim_seconds for r in self.results), 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "ops_per_second": round(self.operations / wall, 1),
            "seeds_per_minute": round(60.0 * self.seeds / wall, 1),
            "config": self.config.describe(),
            "trace_hash": self.trace_hash,
        }


def _run_seed(seed: int, config: SimulationConfig) -> SimulationResult:
    """One seed: what an executor's worker runs (a module-level function, so it pickles)."""
    return Simulation(seed, config).run()


def run_simulations(
    seeds: Iterable[int],
    config: SimulationConfig | None = None,
    *,
    executor: Executor | None = None,
    progress: Callable[[SimulationResult], None] | None = None,
) -> SimulationSummary:
    """Run a `Simulation` for every seed and sum the results up, here or on an executor.

    Without `executor` the seeds run one after another in this process. With one — any
    `concurrent.futures.Executor`: a ``ProcessPoolExecutor`` for the local cores, or a
    distributed engine's, such as Dask's ``distributed.Client.get_executor()`` — each seed is
    submitted as a task and may run anywhere. Each seed is deterministic, and the results are
    put back in the order of `seeds` whatever order they finish in, so the summary (and its
    trace hash) is the same whatever ran them; only the wall-clock figures differ.

    Args:
        seeds: The seeds (ints), summed up in the given order.
        config: The configuration for every seed.
        executor: Where to run the seeds (default: here, one after another). It is not shut
            down.
        progress: Called here with each seed's result as it finishes.

    Returns:
        The summary.

    Raises:
        TypeError: a seed is not an int, `config` not a `SimulationConfig` or `executor` not
            an `Executor`; nothing ran.
        Exception: a seed's run raised (on a worker: re-raised here); the other seeds' results
            are discarded.

    Examples:
        >>> from concurrent.futures import ProcessPoolExecutor
        >>> config = SimulationConfig(ops=20)
        >>> with ProcessPoolExecutor(2) as pool:
        ...     summary = run_simulations(range(4), config, executor=pool)
        >>> summary.trace_hash == run_simulations(range(4), config).trace_hash
        True
    """
    config = config if config is not None else SimulationConfig()
    if not isinstance(config, SimulationConfig):
        raise TypeError(f"config must be a SimulationConfig, not {type(config).__name__}")
    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(f"executor must be a concurrent.futures.Executor, not {executor!r}")
    order = list(seeds)
    for seed in order:
        if type(seed) is not int:
            raise TypeError(f"seeds must be ints, got {seed!r}")
    started = time.perf_counter()
    results: list[SimulationResult] = []
    if executor is None:
        for seed in order:
            results.append(_run_seed(seed, config))
            if progress is not None:
                progress(results[-1])
    else:
        futures = [executor.submit(_run_seed, seed, config) for seed in order]
        try:
            for future in as_completed(futures):
                if progress is not None:
                    progress(future.result())
            results = [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()
    return SimulationSummary(config, tuple(results), time.perf_counter() - started)
