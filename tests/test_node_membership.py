"""Joins and leaves on real nodes: gossip, joint quorums, streams, fencing, dropping data safely."""

from __future__ import annotations

import pytest

from dynamo_core import DVVSet, HashRing, Node, NodeConfig, RingChanged, TransferDone
from dynamo_core.hints import Hint, HintBatch
from dynamo_core.membership import GossipDigest, GossipUpdate
from dynamo_core.messages import HintAck, PutReply, StoreReply, StoreRequest
from dynamo_core.node import NODE_STATUSES, Send
from dynamo_core.storage import MemoryStorage
from dynamo_core.streaming import StreamPull
from dynamo_core.testing import SimulatedCluster

CONFIG = NodeConfig(
    heartbeat_interval=0.5,
    request_timeout=0.3,
    anti_entropy_interval=0.5,
    gossip_interval=0.25,
    stream_batch_bytes=512,
    stream_timeout=0.5,
)
KEYS = [f"key-{i}" for i in range(120)]


def loaded(nodes: int = 5, seed: int = 1) -> SimulatedCluster:
    cluster = SimulatedCluster(nodes, config=CONFIG, seed=seed)
    for key in KEYS:
        assert isinstance(cluster.put(key, key.encode()), PutReply)
    return cluster


def settle(cluster: SimulatedCluster, *leaving: str) -> None:
    def busy() -> bool:
        if not cluster.settled():
            return True
        return any(cluster.node(n).status != "left" for n in leaving)

    assert cluster.run_while(busy, limit=60.0), cluster.ring_versions()
    cluster.run(2.0)


def check_all_readable(cluster: SimulatedCluster) -> None:
    for key in KEYS:
        result = cluster.get(key)
        assert result.ok and result.values == (key.encode(),), (key, result)  # type: ignore[union-attr]
    for node in cluster.live_nodes():
        node._check_invariants()


def holdings(cluster: SimulatedCluster) -> dict[str, set[bytes]]:
    return {node.node_id: set(node.keys()) for node in cluster.live_nodes()}


def test_a_join_moves_one_share_to_the_new_node_and_nothing_else() -> None:
    cluster = loaded()
    before = holdings(cluster)
    notes: list[object] = []
    cluster.observe(lambda _t, _n, effect: notes.append(effect))
    joiner = cluster.add_node("n6")
    assert joiner.status == "outside" and joiner.keys() == []
    cluster.join("n6")
    assert cluster.node("n1").status == "member"
    settle(cluster)
    after = holdings(cluster)
    moved = len(after["n6"])
    replicas = 3 * len(KEYS)
    assert 0.6 * replicas / 6 <= moved <= 1.4 * replicas / 6  # about 1/6 of the replicas
    for name, keys in after.items():
        if name != "n6":
            assert keys <= before[name]  # old nodes only lose keys
    assert sum(len(k) for k in after.values()) == replicas
    assert {str(v) for v in cluster.ring_versions().values()} == {str(joiner.ring_version)}
    assert joiner.status == "member" and joiner.ring_version.epoch == 1
    assert any(isinstance(e, RingChanged) and not e.settled for e in notes)
    done = [e for e in notes if isinstance(e, TransferDone)]
    assert done and all(e.transfer.target == "n6" for e in done)
    assert sum(e.keys for e in done) == moved
    check_all_readable(cluster)


def test_a_leaving_node_streams_everything_out_and_ends_left() -> None:
    cluster = loaded()
    cluster.leave("n3")
    assert cluster.run_while(lambda: cluster.node("n3").status != "leaving", limit=5.0)
    settle(cluster, "n3")
    gone = cluster.node("n3")
    assert gone.status == "left" and gone.keys() == [] and len(gone.hints) == 0
    assert "n3" not in cluster.ring
    assert gone.stats()["stream_keys_served"] > 0
    assert sum(len(k) for k in holdings(cluster).values()) == 3 * len(KEYS)
    check_all_readable(cluster)


def test_two_joins_at_once_make_one_version() -> None:
    cluster = loaded()
    cluster.add_node("n6")
    cluster.add_node("n7")
    cluster.join("n6", via="n3")  # not the claimant: both reach it by gossip together
    cluster.join("n7", via="n3")
    settle(cluster)
    assert cluster.node("n1").ring_version.epoch == 1
    assert set(cluster.ring.nodes) == {"n1", "n2", "n3", "n4", "n5", "n6", "n7"}
    check_all_readable(cluster)


def test_join_then_leave_under_writes_loses_nothing() -> None:
    # riak_kv#1754: two nodes joined and then left, and acknowledged writes were lost.
    cluster = loaded(seed=3)
    cluster.add_node("n6")
    cluster.add_node("n7")
    cluster.join("n6")
    cluster.join("n7", via="n2")
    written: dict[str, bytes] = {}
    for round_ in range(3):
        for i, key in enumerate(KEYS[::7]):
            value = f"{key}/{round_}".encode()
            read = cluster.get(key)
            assert read.ok
            result = cluster.put(key, value, read.context, via=f"n{1 + i % 5}")  # type: ignore[union-attr]
            if isinstance(result, PutReply):
                written[key] = value
        cluster.run(0.7)
    settle(cluster)
    cluster.leave("n6")
    cluster.leave("n7", via="n4")
    settle(cluster, "n6", "n7")
    for key, value in written.items():
        result = cluster.get(key)
        assert result.ok and value in result.values, key  # type: ignore[union-attr]
    assert set(cluster.ring.nodes) == {"n1", "n2", "n3", "n4", "n5"}


def test_a_join_during_a_partition_completes_after_it_heals() -> None:
    cluster = loaded()
    cluster.add_node("n6")
    cluster.partition(["n1", "n2"], ["n3", "n4", "n5", "n6"])
    cluster.join("n6", via="n4")  # the claimant n1 is on the other side
    cluster.run(3.0)
    assert cluster.node("n4").ring_version.epoch == 0  # only the claimant mints
    cluster.heal()
    settle(cluster)
    assert "n6" in cluster.ring
    check_all_readable(cluster)


def test_a_crashed_joiner_resumes_its_streams() -> None:
    cluster = loaded()
    joiner = cluster.add_node("n6")
    cluster.join("n6")
    cluster.run_while(lambda: cluster.node("n6").stats()["stream_keys_received"] < 10, limit=30)
    received = joiner.stats()["stream_keys_received"]
    cluster.crash("n6")
    cluster.run(1.0)
    cluster.restart("n6")
    settle(cluster)
    again = cluster.node("n6")
    assert again.status == "member"
    assert received + again.stats()["stream_keys_received"] <= len(again.keys()) + 2 * 8
    check_all_readable(cluster)


def test_a_restarted_node_keeps_its_ring_version() -> None:
    cluster = loaded()
    cluster.add_node("n6")
    cluster.join("n6")
    settle(cluster)
    version = cluster.node("n2").ring_version
    cluster.crash("n2")
    cluster.restart("n2")
    assert cluster.node("n2").ring_version == version


def test_admin_requests_are_validated() -> None:
    cluster = loaded(nodes=3)
    node = cluster.node("n2")  # not the claimant: requests wait for gossip
    with pytest.raises(ValueError, match="already a member"):
        node.join("n2", cluster.now)
    with pytest.raises(ValueError, match="not a member"):
        node.leave("n9", cluster.now)
    with pytest.raises(ValueError, match="fewer than n=3"):
        node.leave("n2", cluster.now)
    with pytest.raises(ValueError, match="weight"):
        node.join("n9", cluster.now, weight=0)
    with pytest.raises(TypeError, match="node"):
        node.join(7, cluster.now)  # type: ignore[arg-type]
    node.join("n9", cluster.now)
    with pytest.raises(ValueError, match="already a member"):
        node.join("n9", cluster.now)  # its join is already requested
    assert node.membership.pending_changes[0].node == "n9"
    assert node.status in NODE_STATUSES


def test_a_replace_moves_exactly_the_old_nodes_data_to_the_new_one() -> None:
    cluster = loaded()
    before = holdings(cluster)
    cluster.add_node("n6")
    cluster.replace("n3", "n6", via="n2")
    assert cluster.node("n2").membership.pending_changes[-1].op == "replace"
    settle(cluster, "n3")
    after = holdings(cluster)
    assert after["n6"] == before["n3"]  # every key n3 held, and nothing else
    for name in ("n1", "n2", "n4", "n5"):
        assert after[name] == before[name]  # nobody else gains or loses anything
    assert cluster.node("n3").status == "left" and after["n3"] == set()
    assert cluster.node("n6").status == "member"
    assert cluster.ring.nodes == ("n1", "n2", "n4", "n5", "n6")
    assert cluster.node("n1").ring_version.epoch == 1  # one version
    check_all_readable(cluster)


def test_an_update_rebalances_through_membership() -> None:
    cluster = loaded()
    cluster.node("n1").update_member("n2", cluster.now, zone="az1", weight=2.0)
    settle(cluster)
    ring = cluster.ring
    assert (ring.weight("n2"), ring.zone("n2")) == (2.0, "az1")
    assert ring.ownership()["n2"] == pytest.approx(2 / 6, abs=1 / 32)
    check_all_readable(cluster)


def test_replace_and_update_requests_are_validated() -> None:
    cluster = loaded(nodes=4)
    node = cluster.node("n2")
    with pytest.raises(ValueError, match="not a member"):
        node.replace("n9", "n8", cluster.now)
    with pytest.raises(ValueError, match="already a member"):
        node.replace("n3", "n4", cluster.now)
    with pytest.raises(TypeError, match="new"):
        node.replace("n3", 7, cluster.now)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a member"):
        node.update_member("n9", cluster.now, weight=2.0)
    with pytest.raises(ValueError, match="weight"):
        node.update_member("n3", cluster.now, weight=-1.0)
    node.replace("n3", "n8", cluster.now)
    with pytest.raises(ValueError, match="already leaving"):
        node.replace("n3", "n9", cluster.now)  # already being replaced
    with pytest.raises(ValueError, match="already a member"):
        node.join("n8", cluster.now)  # its replace is already requested
    assert node.membership.pending_changes[-1].new == "n8"


# -- the node core directly ------------------------------------------------------------------------


def ring_of(*names: str) -> HashRing:
    ring = HashRing(3, partitions=16)
    for name in names:
        ring.add_node(name)
    return ring


STATE = DVVSet[bytes]().update(b"x", "a#1")


def test_a_store_placed_with_an_older_ring_is_refused() -> None:
    a = Node("a", ring_of("a", "b", "c"), config=CONFIG)
    a.join("d", 0.0)  # a is the claimant: epoch 1 at once
    assert a.ring_version.epoch == 1
    effects = a.receive("b", StoreRequest(7, b"k", STATE, None, 0), 0.1)
    replies = [e.message for e in effects if isinstance(e, Send)]
    assert StoreReply(7, False, "stale ring epoch") in replies
    assert any(isinstance(m, GossipDigest) for m in replies)  # so b catches up
    assert a.stats()["stores_refused_stale"] == 1
    effects = a.receive("b", StoreRequest(8, b"k", STATE, None, 1), 0.2)
    assert StoreReply(8, True, "") in [e.message for e in effects if isinstance(e, Send)]


def test_an_outside_node_learns_the_ring_from_a_seed() -> None:
    ring = ring_of("a", "b", "c")
    member = Node("a", ring, config=CONFIG)
    newcomer = Node("z", HashRing(3, partitions=16), config=CONFIG, seeds=["a"])
    assert newcomer.status == "outside" and newcomer.membership.outside
    digest = [e for e in newcomer.on_timer(0.0) if isinstance(e, Send) and e.target == "a"]
    gossip = [e.message for e in digest if isinstance(e.message, GossipDigest)]
    assert gossip
    answer = member.receive("z", gossip[0], 0.1)
    update = [
        e.message for e in answer if isinstance(e, Send) and isinstance(e.message, GossipUpdate)
    ]
    assert update and update[0].record is not None
    newcomer.receive("a", update[0], 0.2)
    assert newcomer.ring_version == member.ring_version
    learned = newcomer.membership
    assert not learned.outside
    assert newcomer.status == "outside"  # it knows the ring, and it is not in it
    newcomer._check_invariants()


def test_a_hint_for_a_key_the_target_no_longer_replicates_is_handed_on() -> None:
    ring = ring_of("a", "b", "c", "d")
    storage = MemoryStorage()
    a = Node("a", ring, config=CONFIG, storage=storage)
    key = next(
        f"k{i}".encode() for i in range(1000) if "a" not in ring.preference_list(f"k{i}".encode())
    )
    batch = HintBatch(42, (Hint("a", key, STATE, 0.0),))
    effects = a.receive("x", batch, 1.0)
    assert Send("x", HintAck(42)) in effects
    held = {h.target for t in a.hints.targets() for h in a.hints.pending(t)}
    assert held == set(ring.preference_list(key))  # kept for the key's replicas, not dropped
    assert a.stats()["keys_rehinted"] == 1


def test_a_source_answers_not_yet_until_it_knows_the_version() -> None:
    b = Node("b", ring_of("a", "b", "c"), config=CONFIG)
    from dynamo_core.hashing import TokenRange

    effects = b.receive("d", StreamPull(1, 0, 5, TokenRange(0, 2**63), None, 4096), 0.0)
    batches = [e.message for e in effects if isinstance(e, Send)]
    assert any(getattr(m, "status", None) == "not_yet" for m in batches)
    assert any(isinstance(m, GossipDigest) for m in batches)


def test_the_committed_membership_figure_is_current() -> None:
    import importlib.util
    from pathlib import Path

    script = Path(__file__).parent.parent / "docs" / "gen_membership_figure.py"
    spec = importlib.util.spec_from_file_location("gen_membership_figure", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0, "run: python docs/gen_membership_figure.py"
