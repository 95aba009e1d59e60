"""The simulation check: 200+ seeded histories with faults, the LWW negative control, mutants
the checker must catch, and trace determinism across processes and hash seeds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given, settings

from dynamo_core import ActorEpochs, DVVSet, PutReply, codec
from dynamo_core.errors import DecodeError
from dynamo_core.limits import Limits
from dynamo_core.node import keyspace
from dynamo_core.node.anti_entropy import AntiEntropy
from dynamo_core.node.liveness import Liveness
from dynamo_core.node.membership import Members
from dynamo_core.node.streams import Streams
from dynamo_core.strategies import simulation_configs
from dynamo_core.testing import (
    CHURN_EVENTS,
    FAULTS,
    Cart,
    SimulatedCluster,
    Simulation,
    SimulationConfig,
    SimulationResult,
    run_simulations,
)

# Small histories, every fault on: 200 seeds take well under a minute on two cores.
SMALL = SimulationConfig(ops=100)
VARIANTS = {
    "strict quorum": SimulationConfig(ops=80, sloppy=False),
    "r=1 w=1": SimulationConfig(ops=80, r=1, w=1),
    "r=1 w=3": SimulationConfig(ops=80, r=1, w=3),
    "3 nodes": SimulationConfig(ops=80, nodes=3),
    "7 nodes n=5 r=3 w=3": SimulationConfig(ops=80, nodes=7, n=5, r=3, w=3),
    "one cart": SimulationConfig(ops=80, keys=1, clients=6),
}


def _explain(result: SimulationResult) -> str:
    return f"seed {result.seed}: " + "; ".join(result.violations[:5])


@pytest.mark.parametrize("seed", range(200))
def test_no_acknowledged_write_is_lost_and_every_replica_converges(seed: int) -> None:
    result = Simulation(seed, SMALL).run()
    assert result.ok, _explain(result)
    assert result.lost == 0
    assert result.unexpected == 0
    assert result.unconverged == 0
    assert 0 <= result.rounds <= SMALL.max_rounds
    assert result.operations == SMALL.ops
    assert result.acknowledged <= result.attempted <= result.operations


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("seed", range(5))
def test_other_cluster_shapes_and_quorums(name: str, seed: int) -> None:
    result = Simulation(1000 + seed, VARIANTS[name]).run()
    assert result.ok, _explain(result)


def test_the_seeds_exercise_every_fault_and_make_siblings() -> None:
    summary = run_simulations(range(12), SMALL)
    faults = summary.faults()
    assert all(faults[name] > 0 for name in FAULTS), faults
    assert max(r.max_siblings for r in summary.results) >= 2
    assert summary.acknowledged > 0
    assert any(r.recovered for r in summary.results)  # unacknowledged adds can survive


def test_last_write_wins_loses_acknowledged_adds() -> None:
    # The negative control: the same runs with a LWW resolver must lose adds, or the checker
    # could not see loss at all.
    summary = run_simulations(range(5), SimulationConfig(ops=100, resolver="lww"))
    assert summary.lost > 0
    assert not summary.ok
    assert any("acknowledged adds lost" in v for r in summary.results for v in r.violations)
    assert summary.unconverged == 0  # it converges -- on the wrong answer


@pytest.fixture
def patched() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_reused_dots_are_refused_never_lost(patched: pytest.MonkeyPatch) -> None:
    # Mutant: every write of a node uses the same actor, as if epochs did not exist (KV679).
    # Merging two values under one dot used to keep one of them silently; now the replicas
    # refuse such stores (the write is not acknowledged) and count the collision.
    patched.setattr(ActorEpochs, "actor_for", lambda self, local, context=None: f"{self.node}#1")
    # The hostile flood is left out: its blind writes to one key from every coordinator can
    # give two replicas different values under one dot before any store is refused, and those
    # then stay visibly divergent (what `_absorb` promises), which the checker reports. Pause is
    # left out so these eight seeds keep the schedules that make collisions.
    faults = ",".join(f for f in FAULTS if f not in ("hostile", "pause"))
    collisions = 0
    for seed in range(8):
        simulation = Simulation(seed, SimulationConfig(ops=300, faults=faults))
        result = simulation.run()
        assert result.lost == 0 and not result.violations, result.violations
        cluster = simulation.cluster
        collisions += sum(cluster.node(n).stats()["dot_collisions"] for n in cluster.nodes)
    assert collisions > 0


def test_the_checker_catches_undelivered_hints(patched: pytest.MonkeyPatch) -> None:
    patched.setattr(Liveness, "refresh_handoff", lambda self, now, out: None)
    summary = run_simulations(range(5), SMALL)
    assert summary.unconverged > 0
    assert not summary.ok


def test_the_checker_catches_missing_anti_entropy(patched: pytest.MonkeyPatch) -> None:
    patched.setattr(AntiEntropy, "start_round", lambda self, now, out: None)
    summary = run_simulations(range(5), SimulationConfig(ops=100, faults="amnesia,drop"))
    assert summary.unconverged > 0


def test_the_checker_catches_dominated_siblings(patched: pytest.MonkeyPatch) -> None:
    # Mutant: the coordinator ignores the client's context, so every write is blind and
    # siblings the client already merged stay (the sibling explosion of per-server clocks).
    original = DVVSet.update
    patched.setattr(
        DVVSet,
        "update",
        lambda self, value, node, context=None: original(self, value, node, None),
    )
    result = Simulation(1, SimulationConfig(ops=60, faults="none")).run()
    assert any("although" in v and "was written after it" in v for v in result.violations)


def test_trace_hash_is_deterministic_in_process() -> None:
    config = SimulationConfig(ops=60)
    a, b = Simulation(9, config).run(), Simulation(9, config).run()
    assert a == b
    assert Simulation(10, config).run().trace_hash != a.trace_hash


_PROBE = """
import json, sys
from dynamo_core.testing import Simulation, SimulationConfig, run_simulations
result = Simulation(int(sys.argv[1]), SimulationConfig(ops=60)).run()
summary = run_simulations(range(3), SimulationConfig(ops=40))
print(json.dumps([result.trace_hash, summary.trace_hash, result.to_dict()]))
"""


def test_trace_hash_is_the_same_across_processes_and_hash_seeds() -> None:
    outputs = []
    for hash_seed in ("0", "1", "987654"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        run = subprocess.run(
            [sys.executable, "-c", _PROBE, "5"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        outputs.append(json.loads(run.stdout))
    assert outputs[0] == outputs[1] == outputs[2]
    here = Simulation(5, SimulationConfig(ops=60)).run()
    assert outputs[0][0] == here.trace_hash
    assert outputs[0][2] == here.to_dict()


def test_summary_reports_every_required_field() -> None:
    summary = run_simulations(range(2), SimulationConfig(ops=30))
    data = summary.to_dict()
    for field in ("seeds", "operations", "acknowledged", "lost", "violations", "unconverged"):
        assert isinstance(data[field], int), field
    assert data["seeds"] == 2
    assert data["operations"] == 60
    assert isinstance(data["trace_hash"], str)
    assert len(data["trace_hash"]) == 64
    json.dumps(data)  # JSON-safe


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="n must be at most nodes"):
        SimulationConfig(nodes=2, n=3)
    with pytest.raises(ValueError, match="r must be"):
        SimulationConfig(n=3, r=4)
    with pytest.raises(ValueError, match="power of two"):
        SimulationConfig(partitions=48)
    with pytest.raises(ValueError, match="unknown fault"):
        SimulationConfig(faults="meteor")
    with pytest.raises(ValueError, match="resolver"):
        SimulationConfig(resolver="max")  # type: ignore[arg-type]
    assert SimulationConfig(faults="all").faults == FAULTS
    assert SimulationConfig(faults="none").faults == ()
    assert SimulationConfig(faults="crash, drop").faults == ("drop", "crash")
    with pytest.raises(TypeError, match="seed"):
        Simulation("1")  # type: ignore[arg-type]


def test_cart_codec_round_trips() -> None:
    cart = Cart(frozenset({"b", "a"}), "c1.2w", 3.5)
    assert Cart.decode(cart.encode()) == cart
    assert cart.encode() == Cart(frozenset({"a", "b"}), "c1.2w", 3.5).encode()
    for items in (frozenset(), frozenset({"k/é", "k/\u2603"}), frozenset({"x" * 1024})):
        assert Cart.decode(Cart(items, "c1.2w", 3.5).encode()).items == items


@pytest.mark.parametrize(
    ("item", "error"),
    [
        ("", "cart.items\\[\\] must be 1..1024 characters"),
        ("x" * 1025, "cart.items\\[\\] must be 1..1024 characters"),
        (7, "cart.items\\[\\] must be a string"),
        ("\ud800", "cart.items\\[\\] holds a lone surrogate"),
    ],
)
def test_a_cart_with_a_bad_item_is_refused_naming_it(item: object, error: str) -> None:
    # One pass checks a whole cart; a bad item falls back to the check that names it.
    envelope = codec.envelope("cart", {"items": ["ok", item], "write": "w", "at": 1.0})  # type: ignore[list-item]
    data = json.dumps(envelope).encode()  # escapes the lone surrogate, as a hostile peer may
    with pytest.raises(DecodeError, match=error):
        Cart.decode(data)


@settings(max_examples=8, deadline=None)
@given(simulation_configs(max_ops=30))
def test_any_small_configuration_keeps_every_acknowledged_write(config: SimulationConfig) -> None:
    result = Simulation(0, config).run()
    assert result.ok, _explain(result)


# -- membership churn ----------------------------------------------------------------------------

CHURN = SimulationConfig(ops=100, churn=True)
CHURN_FULL = SimulationConfig(churn=True)  # what `simulate --churn` runs


@pytest.mark.parametrize("seed", range(40))
def test_joins_and_leaves_under_faults_lose_nothing_and_the_ring_converges(seed: int) -> None:
    result = Simulation(seed, CHURN).run()
    assert result.ok, _explain(result)
    assert result.lost == 0 and result.unconverged == 0
    assert result.ring_converged
    assert result.moved_fraction_vs_ideal <= 1.05


def test_churn_exercises_every_membership_event() -> None:
    summary = run_simulations(range(12), CHURN)
    faults = summary.faults()
    assert all(faults[f"churn_{kind}"] > 0 for kind in CHURN_EVENTS), faults
    data = summary.to_dict()
    assert isinstance(data["joins"], int) and data["joins"] > 0
    assert isinstance(data["leaves"], int) and data["leaves"] > 0
    assert isinstance(data["versions"], int) and data["versions"] >= data["joins"] // 2
    assert data["ring_unconverged_seeds"] == 0
    moved = data["moved_fraction_vs_ideal"]
    assert isinstance(moved, float) and 0.5 < moved <= 1.05
    assert summary.ok


def test_the_checker_catches_data_dropped_without_a_handover(patched: pytest.MonkeyPatch) -> None:
    # Mutant: a node deletes the ranges it no longer replicates without checking that it
    # served them or re-hinting them: acknowledged writes disappear with churn.
    def drop_everything(self: Members, now: float) -> None:
        node = self._node
        for skey, _ in list(node.storage.scan(keyspace.DATA, keyspace.DATA_END)):
            if node.replica.segment_of(keyspace.token_of(skey)) is None:
                node.storage.delete(skey)
        self.foreign = False

    patched.setattr(Members, "drop_foreign", drop_everything)
    patched.setattr(Streams, "start", lambda self, now, out: None)
    summary = run_simulations(range(6), SimulationConfig(ops=150, churn=True, faults="none"))
    assert not summary.ok
    assert summary.lost > 0 or summary.unconverged > 0


def test_a_stale_copy_after_a_range_moved_away_never_reissues_a_dot(
    patched: pytest.MonkeyPatch,
) -> None:
    # Churn seed 379 (found by the 1,000-seed run): a node coordinates a write, the key's range
    # moves away and its copy is deleted, an older copy comes back as a hint, and the node
    # coordinates again. Unless deleting retired its actor, it counts the same dot a second
    # time and every replica drops the first, acknowledged write as "already seen" (KV679).
    assert Simulation(379, CHURN_FULL).run().ok
    patched.setattr(ActorEpochs, "retire", lambda self, context: None)
    result = Simulation(379, CHURN_FULL).run()
    assert result.lost > 0, "the mutant no longer loses here: pick a seed that shows it"


def test_the_checker_catches_a_ring_that_never_converges(patched: pytest.MonkeyPatch) -> None:
    # Mutant: nodes never gossip (they still schedule the rounds, doing nothing in them).
    def no_gossip(self: Members, now: float, out: object, *, schedule: bool = True) -> None:
        if schedule:
            self._next_gossip = now + self._node.config.gossip_interval

    patched.setattr(Members, "gossip", no_gossip)
    summary = run_simulations(range(4), SimulationConfig(ops=80, churn=True, faults="none"))
    assert sum(1 for r in summary.results if not r.ring_converged) > 0
    assert summary.to_dict()["ring_unconverged_seeds"] != 0
    assert not summary.ok


def test_churn_runs_are_deterministic() -> None:
    a, b = Simulation(3, CHURN).run(), Simulation(3, CHURN).run()
    assert a == b and a.joins + a.leaves > 0


def test_the_hostile_workload_is_refused_and_its_flood_checked() -> None:
    config = SimulationConfig(ops=100, faults="hostile")
    for seed in range(3):
        simulation = Simulation(seed, config)
        result = simulation.run()
        assert result.ok, _explain(result)
        assert dict(result.faults)["hostile"] > 0
        assert simulation._flood_refused  # the flood reached max_siblings
        assert simulation._flood_acked


def test_the_checker_sees_an_admitted_hostile_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mutant that forgets the value cap: the hostile client's oversized writes get in."""
    monkeypatch.setattr(Limits, "check_value", lambda self, value: None)
    result = Simulation(1, SimulationConfig(ops=100, faults="hostile")).run()
    assert any("hostile oversized write" in v and "admitted" in v for v in result.violations)


def test_a_paused_node_holds_its_input_and_catches_up() -> None:
    cluster = SimulatedCluster(3, seed=1)
    cluster.pause("n3")
    assert cluster.is_paused("n3")
    result = cluster.put("k", b"v", via="n1")
    assert isinstance(result, PutReply)  # W=2 from the two running nodes
    cluster.run(2.0)
    assert cluster.counts()["held"] > 0
    assert cluster.node("n3").state_of("k") is None  # it processed nothing
    cluster.resume("n3")
    cluster.run(1.0)
    state = cluster.node("n3").state_of("k")
    assert state is not None
    assert state.values == [b"v"]
