"""The issue's findings, reproduced against `serve` on the real TCP transport and SQLite.

Three nodes run in one process (the same driver, transport and storage code as
``dynamo-core serve``); each test plays the attacker or the unlucky operator and asserts the safe
outcome: a typed refusal, nodes alive and serving, a restart that succeeds, nothing acknowledged
lost, memory bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sqlite3
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from aio.processes import serve as serve_process
from aio.processes import stop
from aio.serving import Serving
from dynamo_core import (
    DVVSet,
    HashRing,
    Node,
    NodeConfig,
    QuorumPolicy,
    SQLiteStorage,
    codec,
)
from dynamo_core.aio import Client, ClientError, TcpTransport, TransportConfig, serve
from dynamo_core.aio.auth import Connector
from dynamo_core.aio.framing import MAX_HANDSHAKE_FRAME, encode_frame
from dynamo_core.aio.protocol import ClientGet
from dynamo_core.cli import cluster as cluster_cli
from dynamo_core.cli import main as cli
from dynamo_core.errors import CorruptRecord, LimitExceeded, StorageError
from dynamo_core.membership import GossipUpdate, VersionRecord
from dynamo_core.messages import Message, RepairPush, encode_message
from dynamo_core.node import Effect, Send, encode_context
from dynamo_core.vclock import VectorClock

Eventually = Callable[..., Coroutine[Any, Any, None]]
IDS = ("A", "B", "C")
CONFIG = NodeConfig(heartbeat_interval=0.1, request_timeout=2.0, anti_entropy_interval=0.3)
FAST = TransportConfig(connect_timeout=5.0, handshake_timeout=5.0, backoff_max=0.2)


class Cluster(Serving):
    """Three nodes on SQLite files under `path`; a node restarts on its file."""

    def __init__(self, path: Path, ports: dict[str, int], node_class: type[Node] = Node) -> None:
        super().__init__()
        self.path = path
        self.ports = ports
        self.node_class = node_class
        self.ring = HashRing(3, partitions=16)
        self.ring.add_nodes(IDS)
        self.boots = dict.fromkeys(IDS, 0)

    def addresses(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.ports[n]) for n in IDS]

    def start(self, node: str) -> None:
        storage = SQLiteStorage(self.path / f"{node}.db", synchronous="NORMAL")
        self.nodes[node] = self.node_class(
            node,
            self.ring,
            config=CONFIG,
            storage=storage,
            now=time.monotonic(),
            incarnation=self.boots[node],
        )
        self.boots[node] += 1
        peers = {p: ("127.0.0.1", self.ports[p]) for p in IDS if p != node}
        transport = TcpTransport(
            node, ("127.0.0.1", self.ports[node]), peers, config=FAST, seed=ord(node)
        )
        self.run(node, transport)

    async def restart_all(self, eventually: Eventually) -> None:
        for node in IDS:
            await self.stop(node)
        for node in IDS:
            self.start(node)
        await self.connected(eventually)

    def alive(self) -> bool:
        return all(not task.done() for task in self.tasks.values())

    async def connected(self, eventually: Eventually) -> None:
        def up() -> bool:
            now = time.monotonic()
            return all(
                self.transports[n].stats()["peers_up"] == 2
                and all(self.nodes[n].detector.is_available(p, now) for p in IDS if p != n)
                for n in IDS
            )

        await eventually(up, what="the cluster connected")


async def cluster_of_three(
    path: Path, free_port: Callable[[], int], eventually: Eventually, node_class: type[Node] = Node
) -> Cluster:
    cluster = Cluster(path, {n: free_port() for n in IDS}, node_class)
    for node in IDS:
        cluster.start(node)
    await cluster.connected(eventually)
    return cluster


def single(path: Path, node_class: type[Node] = Node) -> Node:
    """A one-node cluster (N = 1) on SQLite."""
    ring = HashRing(1, partitions=8)
    ring.add_node("A")
    storage = SQLiteStorage(path / "a.db", synchronous="NORMAL")
    return node_class(
        "A",
        ring,
        policy=QuorumPolicy(1, 1, 1),
        config=CONFIG,
        storage=storage,
        now=time.monotonic(),
    )


def listening(transport: TcpTransport) -> bool:
    try:
        _ = transport.address
    except RuntimeError:
        return False
    return True


# -- finding 1: a hostile context --------------------------------------------------------------


def test_finding_1_a_hostile_context_is_refused_and_the_node_lives(
    run: Any, tmp_path: Path, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        cluster = await cluster_of_three(tmp_path, free_port, eventually)
        try:
            async with Client(cluster.addresses(), timeout=10.0, seed=1) as client:
                await client.put("k", b"v0")
                epochs = {n: cluster.nodes[n].epoch for n in IDS}
                hostile = VectorClock(
                    {f"{n}#{epochs[n] + i}": 2**63 - 1 for n in IDS for i in range(1, 334)}
                )
                assert len(hostile) == 999
                with pytest.raises(ClientError, match="the limit is 2\\*\\*53"):
                    await client.put("k", b"evil", encode_context(hostile))
                assert cluster.alive()
                values, _ = await client.get("k")
                assert values == (b"v0",)
            await cluster.restart_all(eventually)
            async with Client(cluster.addresses(), timeout=10.0, seed=2) as client:
                assert (await client.get("k"))[0] == (b"v0",)
        finally:
            await cluster.stop_all()

    run(main(), 120)


# -- finding 2: ordinary use that made a key unreadable and the node unstartable ---------------


def test_finding_2_sibling_floods_actors_and_huge_values_are_refused_and_restarts_work(
    run: Any, tmp_path: Path, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        cluster = await cluster_of_three(tmp_path, free_port, eventually)
        try:
            async with Client(cluster.addresses(), timeout=10.0, seed=3) as client:
                # 1,030 blind puts to one key (in batches: a real flood, bounded time).
                acked = refused = 0
                for start in range(0, 1030, 103):
                    batch = [client.put("hot", b"v%d" % i) for i in range(start, start + 103)]
                    for outcome in await asyncio.gather(*batch, return_exceptions=True):
                        if isinstance(outcome, LimitExceeded):
                            assert outcome.limit == "max_siblings"
                            assert "write the merge back with the context" in str(outcome)
                            refused += 1
                        else:
                            assert not isinstance(outcome, BaseException), outcome
                            acked += 1
                assert acked + refused == 1030
                assert 100 <= acked < 400  # each coordinator admits up to 100 (merges fit)
                assert cluster.alive()
                values, context = await client.get("hot")
                assert len(values) >= 100
                # The client does what the error says: merge, write back with the context.
                await client.put("hot", b"merged", context)
                await eventually(
                    lambda: all(
                        (s := cluster.nodes[n].state_of("hot")) is not None
                        and s.values == [b"merged"]
                        for n in IDS
                    ),
                    what="the merge everywhere",
                )
                # Two puts carrying 1,000 made-up actors each.
                made_up = encode_context(VectorClock({f"x{i:04}": 1 for i in range(1000)}))
                for _ in range(2):
                    with pytest.raises(LimitExceeded) as caught:
                        await client.put("actors", b"v", made_up)
                    assert caught.value.limit == "max_clock_entries"
                # Two blind 6.5 MiB puts.
                big = b"x" * (6 * 2**20 + 2**19)
                for _ in range(2):
                    with pytest.raises(LimitExceeded) as caught:
                        await client.put("big", big)
                    assert caught.value.limit == "max_value_bytes"
                assert cluster.alive()
                assert sum(cluster.nodes[n].stats()["writes_refused"] for n in IDS) >= 4
            await cluster.restart_all(eventually)  # every node starts again
            async with Client(cluster.addresses(), timeout=10.0, seed=4) as client:
                assert (await client.get("hot"))[0] == (b"merged",)
                assert (await client.get("actors"))[0] == ()
                assert (await client.get("big"))[0] == ()
                await client.put("after", b"ok")
                await asyncio.sleep(1.0)  # anti-entropy rounds run over every key
            assert cluster.alive()
            assert all(cluster.nodes[n].stats()["records_quarantined"] == 0 for n in IDS)
        finally:
            await cluster.stop_all()

    run(main(), 240)


# -- finding 3: ring versions ------------------------------------------------------------------


async def pose_as(port: int, node: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An authenticated node connection (the cluster runs without a secret, as in the finding)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connector = Connector("node", node, secret=None)
    writer.write(encode_frame(connector.hello()))
    header = await reader.readexactly(4)
    proof = connector.on_challenge(await reader.readexactly(int.from_bytes(header, "big")))
    writer.write(encode_frame(proof))
    await writer.drain()
    return reader, writer


def test_finding_3_forged_and_huge_ring_versions_are_refused(
    run: Any, tmp_path: Path, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        cluster = await cluster_of_three(tmp_path, free_port, eventually)
        try:
            strangers = HashRing(3, partitions=16)
            strangers.add_nodes(["X", "Y", "Z"])
            forged = GossipUpdate(
                VersionRecord(2**62, strangers), 2**62, strangers.fingerprint, (), ()
            )
            huge: Any = forged.to_dict()
            vnodes = HashRing(3, vnodes=4096)
            vnodes.add_nodes(IDS)
            huge["record"]["ring"] = vnodes.to_dict()
            huge["record"]["ring"]["nodes"] = [
                {"id": f"n{i:03}", "weight": 1.0} for i in range(400)
            ]
            _, writer = await pose_as(cluster.ports["A"], "B")
            writer.write(encode_frame(encode_message(forged)))
            writer.write(encode_frame(codec.dumps(huge)))  # 12 KB that used to cost ~600 MB
            await writer.drain()
            a = cluster.nodes["A"]
            await eventually(lambda: a.stats()["versions_refused"] >= 1, what="the refusal")
            await eventually(
                lambda: cluster.transports["A"].stats()["closed_malformed"] >= 1, what="the cut"
            )
            writer.close()
            assert a.ring_version.epoch == 0
            assert a.ring.nodes == IDS
            async with Client(cluster.addresses(), timeout=10.0, seed=6) as client:
                await client.put("k", b"v")
                assert (await client.get("k"))[0] == (b"v",)
            assert cluster.alive()
        finally:
            await cluster.stop_all()

    run(main(), 120)


# -- the driver contains failures of the node core ---------------------------------------------


class BuggyNode(Node):
    """A node whose core raises on one key, one kind of message and one timer pass."""

    __slots__ = ()
    timer_failures = 1

    def put(
        self, request_id: str, key: str | bytes, value: bytes, context: bytes | None, now: float
    ) -> list[Effect]:
        if key == b"boom":
            raise RuntimeError("a bug in put")
        return super().put(request_id, key, value, context, now)

    def receive(self, sender: str, message: Message, now: float) -> list[Effect]:
        if type(message).__name__ == "FetchRequest" and self.node_id == "B":
            raise CorruptRecord("corrupt hint store: a record met while handling a message")
        return super().receive(sender, message, now)

    def on_timer(self, now: float) -> list[Effect]:
        if BuggyNode.timer_failures:
            BuggyNode.timer_failures -= 1
            raise RuntimeError("a bug in a timer")
        return super().on_timer(now)


def test_the_driver_contains_exceptions_from_the_node_core(
    run: Any, tmp_path: Path, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        cluster = await cluster_of_three(tmp_path, free_port, eventually, BuggyNode)
        try:
            a = [("127.0.0.1", cluster.ports["A"])]
            async with Client(a, timeout=10.0, retries=0) as client:
                with pytest.raises(ClientError, match="internal error"):
                    await client.put("boom", b"v")
                await client.put("fine", b"v")  # the same node keeps serving
                assert (await client.get("fine"))[0] == (b"v",)  # B's reads fail; A and C answer
                stats = {n: (await client.stats(("127.0.0.1", cluster.ports[n])))[1] for n in IDS}
            assert stats["A"]["client_errors"] == 1
            assert stats["B"]["peer_errors"] >= 1
            assert sum(stats[n]["timer_errors"] for n in IDS) == 1
            assert cluster.alive()
        finally:
            await cluster.stop_all()

    run(main(), 120)


class OversizedSendNode(Node):
    """A node that once asks to send a message over the frame cap."""

    __slots__ = ()
    sent = False

    def on_timer(self, now: float) -> list[Effect]:
        effects = super().on_timer(now)
        if not OversizedSendNode.sent:
            OversizedSendNode.sent = True
            big = DVVSet[bytes]().update(b"x" * 20_000, "A#1")
            effects.append(Send("B", RepairPush(((b"k", big),))))
        return effects


def test_a_message_over_the_frame_cap_is_dropped_not_fatal(
    run: Any, tmp_path: Path, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        node = single(tmp_path, OversizedSendNode)
        config = TransportConfig(max_frame=16_384)
        transport = TcpTransport(
            "A", ("127.0.0.1", free_port()), {"B": "127.0.0.1:9"}, config=config
        )
        stop = asyncio.Event()
        task = asyncio.create_task(serve(node, transport, stop=stop))
        await eventually(lambda: listening(transport))
        async with Client([transport.address], timeout=10.0, config=config) as client:
            await eventually(lambda: OversizedSendNode.sent, what="the oversized send")
            await client.put("k", b"v")  # still serving
            assert (await client.stats())[1]["send_errors"] == 1
        stop.set()
        await task

    run(main())


class DyingStorageNode(Node):
    """A node whose storage fails for good (an I/O error) in its first timer pass."""

    __slots__ = ()

    def on_timer(self, now: float) -> list[Effect]:
        raise StorageError("SQLite store 'x': disk I/O error")


def test_storage_that_fails_for_good_stops_the_node_with_one_line(
    run: Any, tmp_path: Path, free_port: Callable[[], int], caplog: pytest.LogCaptureFixture
) -> None:
    node = single(tmp_path, DyingStorageNode)
    transport = TcpTransport("A", ("127.0.0.1", free_port()), {}, config=FAST)
    with caplog.at_level("ERROR", logger="dynamo_core.aio"), pytest.raises(StorageError):
        run(serve(node, transport))
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert "storage failed for good, stopping: SQLite store 'x': disk I/O error" in (
        errors[0].getMessage()
    )


# -- finding 4: frames before authentication ---------------------------------------------------


def test_finding_4_big_handshake_frames_are_refused_at_the_header(
    run: Any, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        port = free_port()
        node = TcpTransport("B", ("127.0.0.1", port), {}, config=FAST)
        async with node:
            conns = []
            for _ in range(40):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write((16 * 2**20).to_bytes(4, "big") + b"x" * 65536)
                conns.append((reader, writer))
            for reader, writer in conns:
                assert await asyncio.wait_for(reader.read(), 10) == b""  # closed at once
                writer.close()
            await eventually(lambda: node.stats()["closed_oversized"] == 40, what="refusals")
            # A frame just over the pre-authentication cap is refused the same way.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(encode_frame(b"x" * (MAX_HANDSHAKE_FRAME + 1)))
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
            await eventually(lambda: node.stats()["closed_oversized"] == 41, what="refusal")

    run(main())


def rss_bytes(pid: int) -> int:
    """The resident set of process `pid` (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


def test_finding_4_a_serve_process_flooded_with_big_handshake_frames_stays_small(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    port = free_port()
    proc = serve_process(tmp_path / "a", port)
    try:
        before = rss_bytes(proc.pid)

        async def flood() -> None:
            conns = []
            for _ in range(40):  # each claims a 16 MiB frame and sends 1 MiB of it
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write((16 * 2**20).to_bytes(4, "big") + b"x" * 2**20)
                conns.append((reader, writer))
            for reader, writer in conns:
                # Refused at the header: closed, or reset (or a broken pipe) over the unread rest.
                with contextlib.suppress(ConnectionError):
                    assert await asyncio.wait_for(reader.read(), 10) == b""
                writer.close()
            async with Client([("127.0.0.1", port)], timeout=10.0) as client:
                await client.put("after", b"flood")  # still serving
                assert (await client.get("after"))[0] == (b"flood",)

        asyncio.run(flood())
        grown = rss_bytes(proc.pid) - before
        # The finding: 40 such connections grew a node by 665 MB. Now nothing is buffered.
        assert grown < 16 * 2**20, f"the node grew by {grown:,} bytes"
    finally:
        stop(proc)


# -- finding 7: slow readers -------------------------------------------------------------------


def test_finding_7_a_client_that_does_not_read_is_cut_off_and_its_buffer_freed(
    run: Any, tmp_path: Path, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        node = single(tmp_path)
        port = free_port()
        config = TransportConfig(max_client_buffer=1 << 20)
        transport = TcpTransport("A", ("127.0.0.1", port), {}, config=config)
        stop = asyncio.Event()
        task = asyncio.create_task(serve(node, transport, stop=stop))
        await eventually(lambda: listening(transport))
        async with Client([("127.0.0.1", port)], timeout=10.0) as client:
            await client.put("big", b"y" * 900_000)
            # A raw client that asks for the value again and again and never reads.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            connector = Connector("client", None, secret=None)
            writer.write(encode_frame(connector.hello()))
            header = await reader.readexactly(4)
            challenge = await reader.readexactly(int.from_bytes(header, "big"))
            proof = connector.on_challenge(challenge)
            writer.write(encode_frame(proof))
            for rid in range(1, 200):
                writer.write(encode_frame(codec.dumps(ClientGet(rid, b"big").to_dict())))
            await writer.drain()
            await eventually(
                lambda: transport.stats()["closed_slow_client"] == 1, what="the cut-off"
            )
            # Its handler ended and its unread responses are gone; other clients are served.
            await eventually(lambda: len(transport._connections) == 1, what="buffers released")
            assert (await client.get("big"))[0] == (b"y" * 900_000,)
            writer.close()
        stop.set()
        await task

    run(main())


# -- finding 6: a full disk --------------------------------------------------------------------


def fill(node: Node, full: bool) -> None:
    """Make the node's SQLite file full (as a full disk does: SQLITE_FULL), or not."""
    storage = node.storage
    assert isinstance(storage, SQLiteStorage)
    conn = storage._conn
    assert conn is not None
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages if full else 2**30}")


def test_finding_6_a_full_disk_is_a_degraded_mode_not_a_crash(
    run: Any, tmp_path: Path, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        cluster = await cluster_of_three(tmp_path, free_port, eventually)
        try:
            a = ("127.0.0.1", cluster.ports["A"])
            async with (
                Client([a], timeout=10.0, retries=0) as only_a,
                Client(cluster.addresses(), timeout=10.0, seed=5) as client,
            ):
                await client.put("before", b"x" * 2000)
                fill(cluster.nodes["A"], True)
                acked = []
                for i in range(20):  # writes go on through the other nodes
                    await client.put(f"k{i}", b"y" * 2000)
                    acked.append(f"k{i}")
                with pytest.raises(ClientError, match="storage full"):
                    await only_a.put("direct", b"z" * 2000)
                # Reads on the full node keep working.
                assert (await only_a.get("before"))[0] == (b"x" * 2000,)
                stats = (await only_a.stats())[1]
                assert stats["storage_full"] >= 1
                assert cluster.alive()
                fill(cluster.nodes["A"], False)  # space returns: A resumes by itself
                await eventually(lambda: not cluster.nodes["A"].degraded, what="resume")
                await only_a.put("after", b"ok")
                for key in acked:
                    assert (await client.get(key))[0] == (b"y" * 2000,)
        finally:
            await cluster.stop_all()

    run(main(), 120)


def test_finding_6_starting_on_a_full_disk_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_open = Path.open

    def no_space(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if self.name == "incarnation.tmp":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", no_space)
    argv = ["serve", "--id", "A", "--listen", "127.0.0.1:1", "--data", str(tmp_path / "a")]
    assert cli([*argv, "--n", "1", "--r", "1", "--w", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0  # one line, no traceback
    assert "cannot record the incarnation" in err
    assert "No space left on device" in err
    assert not (tmp_path / "a" / "node.sqlite3").exists()  # never started without it
    monkeypatch.setattr(Path, "open", real_open)
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert cluster_cli.next_incarnation(tmp_path) == 0
    assert len(synced) == 2  # the file, then its directory
    assert (tmp_path / "incarnation").read_text() == "0\n"


def test_a_frame_cap_too_small_for_the_limits_is_refused_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", "--id", "A", "--listen", "127.0.0.1:1", "--data", str(tmp_path / "a")]
    assert cli([*argv, "--n", "1", "--r", "1", "--w", "1", "--max-frame", "1048576"]) == 2
    assert "cannot carry the records these limits admit" in capsys.readouterr().err


# -- quarantine on SQLite ----------------------------------------------------------------------


def test_corrupt_records_planted_in_sqlite_are_quarantined_and_the_node_restarts(
    run: Any,
    tmp_path: Path,
    free_port: Callable[[], int],
    eventually: Eventually,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        cluster = await cluster_of_three(tmp_path, free_port, eventually)
        try:
            async with Client(cluster.addresses(), timeout=10.0, seed=8) as client:
                await client.put("good", b"g")
                await client.put("bad", b"b")
            await cluster.stop("A")
            token = cluster.ring.token(b"bad").to_bytes(8, "big")
            with sqlite3.connect(tmp_path / "A.db") as db:  # a bit flip, a bug, a bad disk
                db.execute("UPDATE kv SET v = ? WHERE k = ?", (b"{broken", b"d/" + token + b"bad"))
                db.execute("UPDATE kv SET v = ? WHERE k = ?", (b"{broken", b"m/epoch"))
            cluster.start("A")  # used to crash-loop
            await cluster.connected(eventually)
            a = ("127.0.0.1", cluster.ports["A"])
            async with Client([a], timeout=10.0) as only_a:
                assert (await only_a.get("bad"))[0] == (b"b",)  # served by the other replicas
                assert (await only_a.get("good"))[0] == (b"g",)
                await only_a.put("new", b"n")
                stats = (await only_a.stats())[1]
            assert stats["records_quarantined"] == 2
            assert cluster.alive()
            with sqlite3.connect(tmp_path / "A.db") as db:  # kept, never overwritten
                (raw,) = db.execute("SELECT v FROM kv WHERE k = ?", (b"d/" + token + b"bad",))
                assert raw[0] == b"{broken"
        finally:
            await cluster.stop_all()

    with caplog.at_level("WARNING", logger="dynamo_core.aio"):
        run(main(), 120)
    logged = [r.getMessage() for r in caplog.records if "quarantined" in r.getMessage()]
    assert len([m for m in logged if "b'bad'" in m]) == 1  # logged once, with its key
