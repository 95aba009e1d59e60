"""SimulatedCluster: virtual time, the seeded network, partitions, crashes and amnesia."""

from __future__ import annotations

import pytest

from dynamo_core import GetReply, NodeConfig, PutReply, RequestFailed
from dynamo_core.errors import DynamoError
from dynamo_core.messages import Heartbeat
from dynamo_core.node import Send
from dynamo_core.testing import NetworkConfig, SimulatedCluster

FAST = NodeConfig(
    heartbeat_interval=0.5,
    request_timeout=0.3,
    forward_timeout=0.6,
    anti_entropy_interval=0.5,
    merkle_depth=4,
    handoff_timeout=1.0,
    handoff_backoff=0.25,
)


def cluster(**kw: object) -> SimulatedCluster:
    kw.setdefault("config", FAST)
    kw.setdefault("partitions", 16)
    return SimulatedCluster(**kw)  # type: ignore[arg-type]


def scenario(seed: int, network: NetworkConfig) -> SimulatedCluster:
    c = cluster(seed=seed, network=network)
    for i in range(6):
        c.put(f"k{i}", b"v%d" % i, via=c.nodes[i % 5])
    c.crash("n2")
    c.put("k0", b"w", via="n1")
    c.restart("n2")
    c.run(3.0)
    return c


def test_the_same_seed_gives_the_same_trace_and_another_seed_does_not() -> None:
    noisy = NetworkConfig(drop=0.05, duplicate=0.05, slow=0.1, reorder=True)
    a, b, c = scenario(1, noisy), scenario(1, noisy), scenario(2, noisy)
    assert a.trace_hash == b.trace_hash
    assert a.trace_hash != c.trace_hash
    assert a.counts() == b.counts()


def test_record_trace_keeps_lines_that_hash_to_trace_hash() -> None:
    import hashlib

    c = cluster(record_trace=True)
    c.put("k", b"v")
    assert c.trace_lines
    digest = hashlib.sha256("".join(line + "\n" for line in c.trace_lines).encode())
    assert digest.hexdigest() == c.trace_hash
    assert any(" recv " in line and "StoreRequest" in line for line in c.trace_lines)


def test_a_quiet_cluster_serves_reads_and_writes() -> None:
    c = cluster()
    assert c.nodes == ("n1", "n2", "n3", "n4", "n5")
    reply = c.put("cart", b"v")
    assert isinstance(reply, PutReply)
    read = c.get("cart", via="n4")
    assert isinstance(read, GetReply)
    assert read.values == (b"v",)
    c.run(1.0)
    assert c.divergent_keys(["cart"]) == []
    assert c.divergent_ranges() == []
    assert c.counts()["dropped"] == 0


def test_heartbeats_run_on_their_own_in_virtual_time() -> None:
    c = cluster()
    seen: list[tuple[float, str]] = []
    c.observe(
        lambda now, node, effect: (
            seen.append((now, node))
            if isinstance(effect, Send) and isinstance(effect.message, Heartbeat)
            else None
        )
    )
    c.run(2.0)
    assert c.now == 2.0
    times = sorted({round(now, 6) for now, node in seen if node == "n1"})
    assert times == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_a_partition_blocks_messages_both_ways_until_healed() -> None:
    c = cluster()
    c.partition(["n1", "n2"])
    assert not c.can_talk("n1", "n3")
    assert not c.can_talk("n4", "n2")
    assert c.can_talk("n3", "n5")  # the unnamed nodes form one group
    c.run(1.0)
    assert c.counts()["partitioned"] > 0
    c.heal()
    assert c.can_talk("n1", "n3")
    with pytest.raises(ValueError, match="unknown or repeated"):
        c.partition(["n1"], ["n1"])


def test_isolate_cut_and_rejoin() -> None:
    c = cluster()
    c.isolate("n3")
    assert not c.can_talk("n3", "n1")
    assert not c.can_talk("n5", "n3")
    c.cut("n1", "n2")
    assert not c.can_talk("n2", "n1")
    c.rejoin("n3")
    assert c.can_talk("n3", "n1")
    assert not c.can_talk("n1", "n2")
    c.heal()
    assert c.can_talk("n1", "n2")


def test_a_crashed_node_loses_messages_and_its_clients_fail_at_once() -> None:
    c = cluster()
    c.crash("n1")
    assert not c.is_up("n1")
    with pytest.raises(DynamoError, match="down"):
        c.node("n1")
    with pytest.raises(DynamoError, match="down"):
        c.crash("n1")
    result = c.get("k", via="n1")
    assert isinstance(result, RequestFailed)
    assert "down" in result.reason
    c.run(1.0)
    assert c.counts()["to_down_node"] > 0
    c.restart("n1")
    with pytest.raises(DynamoError, match="running"):
        c.restart("n1")
    assert c.node("n1").incarnation == 2


def test_a_crash_keeps_the_storage_and_amnesia_loses_it() -> None:
    c = cluster()
    key = "k"
    owner = c.replicas(key)[0]
    c.put(key, b"v", via=owner)
    c.crash(owner)
    c.restart(owner)
    assert c.node(owner).state_of(key) is not None
    c.crash(owner, wipe=True)
    c.restart(owner)
    assert c.node(owner).state_of(key) is None
    assert c.node(owner).keys() == []


def test_the_client_gives_up_after_its_timeout() -> None:
    c = cluster()
    c.partition(["n1"])
    c.run(0.1)
    key = next(f"k{i}" for i in range(50) if "n1" not in c.replicas(f"k{i}"))
    result = c.put(key, b"v", via="n1", timeout=0.2)  # the forward cannot finish in 0.2 s
    assert isinstance(result, RequestFailed)
    assert "gave up" in result.reason


def test_a_network_that_drops_everything_delivers_nothing() -> None:
    c = cluster(network=NetworkConfig(drop=1.0))
    c.run(2.0)
    counts = c.counts()
    assert counts["sent"] > 0
    assert counts["dropped"] == counts["sent"]
    assert counts["delivered"] == 0


def _heartbeat_orders(reorder: bool) -> tuple[bool, int]:
    c = cluster(seed=3, network=NetworkConfig(jitter=1.0, reorder=reorder), record_trace=True)
    c.run(20.0)
    assert c.trace_lines is not None
    seqs: dict[str, list[int]] = {}
    for line in c.trace_lines:
        parts = line.split()
        if parts[1] == "recv" and parts[3] == "Heartbeat":
            link, seq = parts[2], int(parts[4].split("=")[1])
            seqs.setdefault(link, []).append(seq)
    in_order = all(s == sorted(s) for s in seqs.values())
    return in_order, c.counts()["reordered"]


def test_links_are_fifo_unless_reordering_is_on() -> None:
    assert _heartbeat_orders(reorder=False) == (True, 0)
    in_order, overtaken = _heartbeat_orders(reorder=True)
    assert not in_order
    assert overtaken > 0


def test_duplicates_are_counted_and_delivered_twice() -> None:
    c = cluster(network=NetworkConfig(duplicate=1.0))
    c.run(0.6)
    counts = c.counts()
    assert counts["duplicated"] == counts["sent"]
    assert counts["delivered"] == 2 * counts["sent"]


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="nodes"):
        SimulatedCluster(["a", "a"])
    with pytest.raises(TypeError, match="seed"):
        SimulatedCluster(3, seed="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="drop"):
        NetworkConfig(drop=1.5)
    with pytest.raises(ValueError, match="low <= high"):
        NetworkConfig(slow_delay=(1.0, 0.5))
    c = cluster()
    with pytest.raises(ValueError, match="kind"):
        c.submit("delete", "n1", "k", print)
    with pytest.raises(ValueError, match="via"):
        c.submit("get", "zz", "k", print)
    with pytest.raises(KeyError):
        c.node("zz")
