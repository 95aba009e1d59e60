"""The shipped hypothesis strategies: a cheap entry point, replayable values, sharp draws."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

import _dynamo_core_hypothesis
from dynamo_core import DVVSet, HashRing, MerkleTree
from dynamo_core.errors import DecodeError
from dynamo_core.testing import Fault, FaultPlan, SimulatedCluster
from dynamo_core.testing.strategies import (
    _type_table,
    concurrent_dvv_pairs,
    dvv_sets,
    fault_plans,
    merkle_trees,
    rings,
    strategy_for_type,
)


def _run(code: str, **env: str) -> str:
    """Run `code` in a fresh interpreter (so nothing here is imported yet); return its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


# -- the entry point -----------------------------------------------------------------------------


def test_import_hypothesis_loads_almost_nothing_of_dynamo_core() -> None:
    out = _run(
        """
        import sys
        import hypothesis
        assert "_dynamo_core_hypothesis" in sys.modules, "the entry point did not run"
        print(" ".join(sorted(m for m in sys.modules if m.startswith("dynamo_core"))))
        """
    )
    loaded = out.split()
    assert len(loaded) <= 2, loaded
    heavy = ("dynamo_core.node", "dynamo_core.storage.sqlite", "dynamo_core.aio")
    assert not [m for m in loaded if m.startswith(heavy)], loaded


def test_from_type_works_through_the_entry_point_and_loads_strategies_on_first_use() -> None:
    out = _run(
        """
        import sys
        from hypothesis import given, settings, strategies as st
        from dynamo_core.ring import HashRing
        from dynamo_core.vclock import VectorClock
        print("dynamo_core.testing.strategies" in sys.modules)
        drawn = []
        @settings(max_examples=20, database=None)
        @given(st.from_type(HashRing), st.from_type(VectorClock))
        def draw(ring, clock):
            ring._check_invariants()
            drawn.append((ring.replicas, len(clock)))
        draw()
        print(len(drawn), "dynamo_core.testing.strategies" in sys.modules)
        """
    )
    assert out.split() == ["False", "20", "True"]


def test_from_type_works_with_plugins_off_once_strategies_is_imported() -> None:
    out = _run(
        """
        import sys
        from hypothesis import given, settings, strategies as st
        assert "_dynamo_core_hypothesis" not in sys.modules
        from dynamo_core import HashRing
        import dynamo_core.strategies
        rings = []
        @settings(max_examples=30, database=None)
        @given(st.from_type(HashRing))
        def draw(ring):
            ring._check_invariants()
            rings.append(ring)
        draw()
        print(len(rings))
        """,
        HYPOTHESIS_NO_PLUGINS="1",
    )
    assert out.split() == ["30"]


def test_the_entry_point_knows_every_registered_type() -> None:
    registered: dict[str, set[str]] = {}
    for kind in _type_table():
        registered.setdefault(kind.__module__, set()).add(kind.__name__)
    assert registered == {m: set(names) for m, names in _dynamo_core_hypothesis.TYPES.items()}


def test_strategy_for_type_refuses_a_foreign_type() -> None:
    with pytest.raises(TypeError, match="no strategy for <class 'int'>"):
        strategy_for_type(int)


@given(st.from_type(DVVSet[int]))
def test_parametrized_types_draw_their_values(state: DVVSet[int]) -> None:
    assert all(type(value) is int for value in state.values)


# -- replayable values ---------------------------------------------------------------------------


def _rebuild(text: str) -> HashRing:
    """What the docs say to do with a printed ring: parse it, no eval."""
    call = ast.parse(text, mode="eval").body
    assert isinstance(call, ast.Call) and ast.unparse(call.func) == "HashRing.from_dict"
    return HashRing.from_dict(ast.literal_eval(call.args[0]))


@given(rings(max_nodes=6))
def test_a_printed_ring_rebuilds_an_equal_ring(ring: HashRing) -> None:
    text = repr(ring)
    again = _rebuild(text)
    assert again == ring
    assert again.preference_list("k") == ring.preference_list("k") if len(ring) else True
    for node in ring.nodes:  # the members, weights and zones are there to read
        assert repr(node) in text
        assert f"'weight': {ring.weight(node)!r}" in text
        zone = ring.zone(node)
        assert (f"'zone': {zone!r}" in text) if zone else True


def test_a_keyed_ring_prints_a_placeholder_not_its_secret() -> None:
    secret = b"s" * 32
    ring = HashRing(2, vnodes=2, hash_key=secret)
    ring.add_node("a")
    text = repr(ring)
    assert text.endswith(", hash_key=...)")
    assert repr(secret) not in text
    call = ast.parse(text, mode="eval").body
    assert isinstance(call, ast.Call)
    assert HashRing.from_dict(ast.literal_eval(call.args[0]), hash_key=secret) == ring


@given(fault_plans())
def test_a_printed_fault_plan_rebuilds_it(plan: FaultPlan) -> None:
    assert eval(repr(plan), {"__builtins__": {}}, {"FaultPlan": FaultPlan, "Fault": Fault}) == plan


# -- sibling-rich states ---------------------------------------------------------------------------

DRAWS = 200


def test_min_siblings_two_gives_states_with_two_or_more_siblings() -> None:
    counts: list[int] = []

    @settings(max_examples=DRAWS, database=None, phases=[Phase.generate], derandomize=True)
    @given(dvv_sets(min_siblings=2))
    def draw(state: DVVSet[bytes]) -> None:
        counts.append(len(state))

    draw()
    assert len(counts) == DRAWS
    share = sum(count >= 2 for count in counts) / len(counts)
    assert share >= 0.8, share
    assert min(counts) >= 2  # by construction, not by luck


def test_plain_dvv_sets_are_seldom_sibling_rich() -> None:
    """The baseline `min_siblings` fixes: a random history rarely leaves two siblings."""
    counts: list[int] = []

    @settings(max_examples=DRAWS, database=None, phases=[Phase.generate], derandomize=True)
    @given(dvv_sets())
    def draw(state: DVVSet[bytes]) -> None:
        counts.append(len(state))

    draw()
    assert sum(count >= 2 for count in counts) / len(counts) < 0.8


def test_sibling_rich_states_shrink_to_the_fewest_siblings_with_empty_values() -> None:
    smallest = find(
        dvv_sets(min_siblings=3),
        lambda state: True,
        settings=settings(database=None, max_examples=50),
    )
    assert smallest.values == [b"", b"", b""]


@given(dvv_sets(min_siblings=2, max_siblings=5))
def test_sibling_rich_states_are_valid_states(state: DVVSet[bytes]) -> None:
    assert len(state) >= 2
    assert DVVSet.from_dict(state.to_dict()) == state  # strict decoding accepts it


@given(concurrent_dvv_pairs())
def test_concurrent_pairs_conflict(pair: tuple[DVVSet[bytes], DVVSet[bytes]]) -> None:
    a, b = pair
    assert not a.descends(b) and not b.descends(a)
    merged = a.sync(b)
    assert len(merged) >= 2
    assert merged == b.sync(a)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_siblings": -1}, "min_siblings must be in 0 .. 16, got -1"),
        ({"min_siblings": 17}, "min_siblings must be in 0 .. 16, got 17"),
        ({"min_siblings": 3, "max_siblings": 2}, r"max_siblings must be in .* got 2"),
    ],
)
def test_dvv_sets_refuses_bad_sibling_counts(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dvv_sets(**kwargs)


# -- rings with room to grow -----------------------------------------------------------------------


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    rings(max_nodes=8, strategy="partitions", weights=None),
    st.lists(st.sampled_from((0.5, 1.0, 3.0)), min_size=2, max_size=2),
)
def test_a_drawn_ring_takes_two_more_nodes(ring: HashRing, weights: list[float]) -> None:
    for i, weight in enumerate(weights):
        ring.add_node(f"joiner-{i}", weight=weight)  # never "share would be under one partition"
    ring._check_invariants()


@given(rings(max_nodes=8, strategy="partitions", weights=False))
def test_a_drawn_equal_weight_ring_takes_two_more_nodes(ring: HashRing) -> None:
    ring.add_node("joiner-0", weight=0.5)
    ring.add_node("joiner-1", weight=3.0)
    ring._check_invariants()


def test_rings_refuses_bad_headroom() -> None:
    with pytest.raises(ValueError, match="join_headroom must be in 0 .. 64, got -1"):
        rings(join_headroom=-1)


# -- fault plans -----------------------------------------------------------------------------------


@settings(max_examples=25)
@given(fault_plans(max_faults=8, duration=5.0))
def test_fault_plans_apply_to_a_cluster_without_a_skip(plan: FaultPlan) -> None:
    cluster = SimulatedCluster(5, seed=3, record_trace=True)
    plan.apply(cluster)
    down: set[str] = set()
    isolated: set[str] = set()
    parted = 0
    for fault in plan.faults:
        if fault.action in ("crash", "wipe"):
            down.update(fault.nodes)
        elif fault.action == "restart":
            down.difference_update(fault.nodes)
        elif fault.action == "isolate":
            isolated.update(fault.nodes)
        elif fault.action == "rejoin":
            isolated.difference_update(fault.nodes)
        elif fault.action == "partition":
            parted = len(fault.nodes)
        else:
            isolated, parted = set(), 0
        assert len(down) + len(isolated) + parted <= 2  # a majority of five stays up and joined
    cluster.run(plan.end + 1.0)
    assert cluster.trace_lines is not None
    assert not [line for line in cluster.trace_lines if "skipped" in line]
    assert sorted(n for n in cluster.nodes if not cluster.is_up(n)) == sorted(down)


def test_a_fault_that_does_not_fit_is_skipped_and_traced() -> None:
    cluster = SimulatedCluster(3, seed=1, record_trace=True)
    FaultPlan((Fault(0.1, "restart", ("n1",)), Fault(0.2, "crash", ("n2",)))).apply(cluster)
    cluster.run(1.0)
    assert cluster.trace_lines is not None
    skipped = [line.split(" ", 1)[1] for line in cluster.trace_lines if "skipped" in line]
    assert skipped == ["skipped restart n1: it is up"]
    assert not cluster.is_up("n2")


def test_a_plan_naming_unknown_nodes_is_refused_whole() -> None:
    cluster = SimulatedCluster(3, seed=1)
    plan = FaultPlan((Fault(0.1, "crash", ("n1",)), Fault(0.2, "crash", ("n9",))))
    with pytest.raises(ValueError, match="names nodes the cluster lacks: n9"):
        plan.apply(cluster)
    cluster.run(1.0)
    assert cluster.is_up("n1")


def _untyped(value: object) -> Any:  # a value of the wrong type, past the type checker
    return value


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: Fault(-1.0, "crash", ("a",)), ValueError, "at"),
        (
            lambda: Fault(1.0, _untyped("explode"), ("a",)),
            ValueError,
            "action must be one of crash",
        ),
        (lambda: Fault(1.0, "crash", _untyped(["a"])), TypeError, "nodes must be a tuple"),
        (lambda: Fault(1.0, "crash", ("a", "a")), ValueError, "distinct"),
        (lambda: Fault(1.0, "crash", ()), ValueError, "'crash' fault needs some nodes"),
        (lambda: Fault(1.0, "heal", ("a",)), ValueError, "'heal' fault needs no nodes"),
        (
            lambda: FaultPlan((Fault(2.0, "heal"), Fault(1.0, "heal"))),
            ValueError,
            "in order of their times",
        ),
        (lambda: FaultPlan(_untyped([Fault(1.0, "heal")])), TypeError, "tuple of Fault"),
    ],
)
def test_bad_faults_are_refused(build: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        build()


def test_fault_plans_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="distinct names"):
        fault_plans(("a", "a"))
    with pytest.raises(ValueError, match="max_down must be in 0 .. 2"):
        fault_plans(("a", "b"), max_down=3)
    with pytest.raises(ValueError, match="max_faults must be in 0 .. 1000, got -1"):
        fault_plans(max_faults=-1)
    with pytest.raises(ValueError, match=r"duration must be in \(0, 1e6\] seconds, got 0"):
        fault_plans(duration=0)


def test_the_explain_phase_never_blames_an_installed_dynamo_core() -> None:
    from hypothesis.internal import scrutineer

    unhelpful = re.compile(scrutineer._glob_to_re(scrutineer.UNHELPFUL_LOCATIONS))
    assert unhelpful.search("/venv/lib/python3.11/site-packages/dynamo_core/vclock.py")
    assert unhelpful.search("/usr/lib/python3/dist-packages/dynamo_core/testing/storage.py")
    assert not unhelpful.search("/home/me/cart/tests/test_cart.py")
    assert not unhelpful.search("/home/me/dynamo_core/dynamo_core/vclock.py")  # a working copy


def _literal_args(text: str, constructor: str) -> Any:
    call = ast.parse(text, mode="eval").body
    assert isinstance(call, ast.Call) and ast.unparse(call.func) == constructor
    return ast.literal_eval(call.args[0])


@given(dvv_sets() | dvv_sets(min_siblings=2))
def test_a_printed_dvvset_rebuilds_it(state: DVVSet[bytes]) -> None:
    assert DVVSet.from_entries(_literal_args(repr(state), "DVVSet.from_entries")) == state


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("a", 1, [(2, b"x")])], r"dots\[0\]\.dot must be in 1\.\.1, got 2"),
        ([("b", 1, []), ("a", 1, [])], "must sort after the previous one"),
        ([("a",)], r"must be \(node, counter, \[\(dot, value\), \.\.\.\]\) triples"),
        ([("a", 1, [(1, b"x", b"y")])], "triples"),
    ],
)
def test_from_entries_checks_what_from_dict_checks(entries: Any, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        DVVSet.from_entries(entries)


@given(merkle_trees(max_depth=4))
def test_a_printed_merkle_tree_rebuilds_it(tree: MerkleTree) -> None:
    assert MerkleTree.from_dict(_literal_args(repr(tree), "MerkleTree.from_dict")) == tree


def _public_names() -> dict[str, Any]:
    """What a test that pastes a printed example imports."""
    import dynamo_core
    from dynamo_core import membership, merkle, messages, streaming, testing

    names: dict[str, Any] = {}
    for module in (dynamo_core, membership, merkle, messages, streaming, testing):
        names.update({name: getattr(module, name) for name in module.__all__})
    return names


@pytest.mark.parametrize("kind", list(_type_table()), ids=lambda kind: kind.__name__)
def test_every_drawn_value_prints_as_the_call_that_rebuilds_it(kind: type) -> None:
    names = _public_names()

    @settings(max_examples=10, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy_for_type(kind))
    def check(value: Any) -> None:
        assert eval(repr(value), {"__builtins__": {"frozenset": frozenset}}, names) == value

    check()


def test_dynamo_core_testing_imports_neither_pytest_nor_hypothesis() -> None:
    out = _run(
        """
        import sys
        import dynamo_core.testing
        from dynamo_core.testing import FaultPlan, SimulatedCluster
        print("pytest" in sys.modules, "hypothesis" in sys.modules)
        from dynamo_core.testing import StorageConformance  # loads the suite, and pytest
        print("pytest" in sys.modules, StorageConformance.__module__)
        """
    )
    assert out.split() == ["False", "False", "True", "dynamo_core.testing.storage"]
