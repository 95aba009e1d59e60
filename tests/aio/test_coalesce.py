"""Write coalescing: frames of one batch leave in one write per connection, in order, capped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st

from dynamo_core.aio import Client, Inbound, TcpTransport, TransportConfig
from dynamo_core.aio import transport as transport_module
from dynamo_core.aio.coalesce import Coalescer, FrameBatch
from dynamo_core.aio.framing import encode_frame
from dynamo_core.messages import Heartbeat, encode_message

Eventually = Callable[..., Coroutine[Any, Any, None]]
FAST = TransportConfig(backoff_initial=0.02, backoff_max=0.2, max_frame=4096)


class Recorder:
    """Stands in for an `asyncio.StreamWriter`: records each write call."""

    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []
        self.closing = False

    def write(self, frame: bytes) -> None:
        self.calls.append([frame])

    def writelines(self, frames: list[bytes]) -> None:
        self.calls.append(list(frames))

    def is_closing(self) -> bool:
        return self.closing


class CountingTransport:
    """Wraps a socket transport and counts the write calls that reach it."""

    def __init__(self, inner: asyncio.Transport) -> None:
        self.inner = inner
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.inner.write(data)

    def writelines(self, frames: list[bytes]) -> None:
        self.write(b"".join(frames))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def drained(transport: TcpTransport, into: list[Any], count: int) -> bool:
    into.extend(transport.inbox.drain())
    return len(into) >= count


def batch(recorder: Recorder) -> FrameBatch:
    return FrameBatch(recorder)  # type: ignore[arg-type]


@given(st.lists(st.lists(st.binary(max_size=8), max_size=6), max_size=6))
def test_a_batch_writes_its_frames_once_in_order(turns: list[list[bytes]]) -> None:
    recorder = Recorder()
    frames = batch(recorder)
    for turn in turns:
        for frame in turn:
            frames.add(frame)
        assert frames.size == sum(map(len, turn))
        frames.flush()
        frames.flush()  # nothing left: no second write
        assert frames.size == 0
    assert recorder.calls == [turn for turn in turns if turn]  # one call per non-empty turn


def test_a_batch_of_a_closing_connection_is_dropped_and_clear_forgets() -> None:
    recorder = Recorder()
    frames = batch(recorder)
    frames.add(b"a")
    frames.clear()
    frames.flush()
    frames.add(b"b")
    recorder.closing = True
    frames.flush()
    assert recorder.calls == []
    assert frames.size == 0


def test_a_lone_frame_goes_at_once_and_the_rest_of_its_turn_together_after_it(run: Any) -> None:
    async def main() -> None:
        recorder = Recorder()
        frames = batch(recorder)
        coalescer = Coalescer()
        frames.send(b"1", coalescer)
        assert recorder.calls == [[b"1"]]  # the first of the turn: no wait
        frames.send(b"2", coalescer)
        frames.send(b"3", coalescer)
        assert recorder.calls == [[b"1"]]  # held
        await asyncio.sleep(0)
        assert recorder.calls == [[b"1"], [b"2", b"3"]]  # one write at the turn's end, in order
        await asyncio.sleep(0)
        frames.send(b"4", coalescer)  # a new turn: at once again
        assert recorder.calls[-1] == [b"4"]
        recorder.closing = True
        await asyncio.sleep(0)
        frames.send(b"5", coalescer)  # the connection is closing: nothing written
        assert recorder.calls[-1] == [b"4"]

    run(main())


def test_marks_are_flushed_once_at_the_next_turn_or_at_flush(run: Any) -> None:
    async def main() -> None:
        coalescer = Coalescer()
        calls: list[str] = []
        for _ in range(3):  # marked again and again in one turn: flushed once
            coalescer.mark("a", lambda: calls.append("a"))
            coalescer.mark("b", lambda: calls.append("b"))
        assert calls == []  # nothing is written before the turn ends
        await asyncio.sleep(0)
        assert calls == ["a", "b"]  # in the order first marked
        coalescer.mark("a", lambda: calls.append("a again"))
        coalescer.flush()  # the reader's flush at the end of its batch: at once
        assert calls == ["a", "b", "a again"]
        await asyncio.sleep(0)  # the scheduled turn finds nothing left
        assert calls == ["a", "b", "a again"]

        def remark() -> None:  # a flush that makes another frame is flushed too
            calls.append("first")
            coalescer.mark("c", lambda: calls.append("second"))

        coalescer.mark("c", remark)
        coalescer.flush()
        assert calls[-2:] == ["first", "second"]

    run(main())


def test_sends_of_one_turn_leave_in_one_write_in_order(
    run: Any, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        pa, pb = free_port(), free_port()
        a = TcpTransport("A", ("127.0.0.1", pa), {"B": ("127.0.0.1", pb)}, config=FAST, seed=1)
        b = TcpTransport("B", ("127.0.0.1", pb), {"A": ("127.0.0.1", pa)}, config=FAST, seed=2)
        async with a, b:
            await eventually(lambda: a.peer_state("B") == "up", what="A connected to B")
            writer = a._out["B"].writer
            assert writer is not None
            counting = CountingTransport(writer.transport)  # type: ignore[arg-type]
            writer._transport = counting  # type: ignore[attr-defined]
            for seq in range(100):
                a.send("B", encode_message(Heartbeat(1, seq)))
            assert counting.writes == 0  # held until the turn ends
            received: list[Any] = []

            def arrived() -> bool:
                received.extend(b.inbox.drain())
                return len(received) >= 100

            await eventually(arrived, what="100 messages at B")
            assert counting.writes == 1  # one write for the whole turn, not one per frame
            assert all(isinstance(e, Inbound) for e in received)
            assert [e.message.seq for e in received] == list(range(100))  # order kept
            assert a.stats()["frames_sent"] == 100

    run(main())


def test_the_outbound_caps_bound_one_turn_of_sends(
    run: Any, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        pa, pb = free_port(), free_port()
        capped = TransportConfig(max_queue=3, backoff_initial=0.02, backoff_max=0.2)
        a = TcpTransport("A", ("127.0.0.1", pa), {"B": ("127.0.0.1", pb)}, config=capped)
        b = TcpTransport("B", ("127.0.0.1", pb), {"A": ("127.0.0.1", pa)}, config=FAST)
        async with a, b:
            await eventually(lambda: a.peer_state("B") == "up", what="A connected to B")
            for seq in range(5):
                a.send("B", encode_message(Heartbeat(1, seq)))
            assert a.stats()["queued"] == 3  # the batch waiting for the turn's end is capped
            assert a.stats()["dropped_queue_full"] == 2
            received: list[Any] = []
            await eventually(lambda: drained(b, received, 3), what="the first three")
            assert [e.message.seq for e in received] == [0, 1, 2]
            for seq in range(5, 8):  # the next turn has room again
                a.send("B", encode_message(Heartbeat(1, seq)))
            await eventually(lambda: drained(b, received, 6), what="the next three")
            assert [e.message.seq for e in received] == [0, 1, 2, 5, 6, 7]

            payload = encode_message(Heartbeat(1, 1))
            bytes_capped = TransportConfig(max_queue_bytes=len(payload) * 4)
            c = TcpTransport("C", ("127.0.0.1", 0), {"B": ("127.0.0.1", pb)}, config=bytes_capped)
            async with c:
                for _ in range(6):
                    c.send("B", payload)
                assert c.stats()["queued"] == 4  # by bytes, too
                assert c.stats()["dropped_queue_full"] == 2

    run(main())


def test_concurrent_client_requests_of_one_turn_leave_in_two_writes(
    run: Any, free_port: Callable[[], int], eventually: Eventually
) -> None:
    """The node answers them in one write too (the responses of one batch of reads)."""

    async def main() -> None:
        t = TcpTransport("A", ("127.0.0.1", 0), {}, config=FAST)
        async with t:

            async def answer() -> None:  # a stand-in for serve: answer every stats request
                while True:
                    await t.inbox.wait(None)
                    for call in t.inbox.drain():
                        call.respond(_stats_reply(call.request.rid))  # type: ignore[union-attr]

            server = asyncio.create_task(answer())
            async with Client([t.address], timeout=10.0) as client:
                await client.stats()  # the connection is open
                conn = client._conns[t.address]
                counting = CountingTransport(conn.writer.transport)  # type: ignore[arg-type]
                conn.writer._transport = counting  # type: ignore[attr-defined]
                sent_before = t.stats()["frames_sent"]
                replies = await asyncio.gather(*(client.stats() for _ in range(20)))
                assert counting.writes == 2  # 20 requests: the first at once, then the rest
                assert [node for node, _ in replies] == ["A"] * 20
                assert t.stats()["frames_sent"] - sent_before == 20
            server.cancel()

    run(main())


def _stats_reply(rid: int) -> Any:
    from dynamo_core.aio.protocol import StatsReply

    return StatsReply.of(rid, "A", {})


def test_an_answer_made_just_before_the_transport_closes_still_goes_out(
    run: Any, eventually: Eventually
) -> None:
    async def main() -> None:
        t = TcpTransport("A", ("127.0.0.1", 0), {}, config=FAST)
        await t.start()
        async with Client([t.address], timeout=10.0, retries=0) as client:
            request = asyncio.create_task(client.stats())
            await eventually(lambda: len(t.inbox) == 1, what="the request")
            (call,) = t.inbox.drain()
            call.respond(_stats_reply(call.request.rid))  # type: ignore[union-attr]
            await t.close()  # in the same turn: the answer is still held for the turn's end
            node, _ = await request
            assert node == "A"

    run(main())


def test_answers_made_before_a_malformed_frame_go_out_before_the_close(
    run: Any, eventually: Eventually
) -> None:
    async def main() -> None:
        t = TcpTransport("A", ("127.0.0.1", 0), {}, config=FAST)
        async with t:
            t.inbox.handler = lambda call: call.respond(  # type: ignore[union-attr]
                _stats_reply(call.request.rid)  # type: ignore[union-attr]
            )
            async with Client([t.address], timeout=10.0, retries=0) as client:
                await client.stats()  # the connection is open
                request = asyncio.create_task(client.stats())
                await asyncio.sleep(0)  # the request is made, held for this turn's write
                conn = client._conns[t.address]
                conn.batch.add(encode_frame(b"not JSON"))  # read in the same batch, after it
                node, _ = await request
                assert node == "A"
                await eventually(lambda: t.stats()["closed_malformed"] == 1, what="the close")

    run(main())


def test_a_peer_that_stops_reading_costs_a_bounded_buffer_then_its_connection(
    run: Any, free_port: Callable[[], int], eventually: Eventually
) -> None:
    async def main() -> None:
        pa, pb = free_port(), free_port()
        cap = 256 * 1024
        config = TransportConfig(max_queue_bytes=cap, write_timeout=1.0, backoff_initial=0.02)
        a = TcpTransport("A", ("127.0.0.1", pa), {"B": ("127.0.0.1", pb)}, config=config)
        b = TcpTransport("B", ("127.0.0.1", pb), {"A": ("127.0.0.1", pa)}, config=FAST, seed=2)
        async with a, b:
            await eventually(lambda: a.peer_state("B") == "up", what="A connected to B")
            await eventually(lambda: len(b._connections) == 2, what="B accepted A")
            outbound = b._out["A"].writer
            for conn in b._connections:  # B stops reading what A sends
                if conn is not outbound:
                    cast("asyncio.Transport", conn.transport).pause_reading()
            out = a._out["B"]
            writer = out.writer
            assert writer is not None
            payload = b"x" * 4000
            buffered = queued = 0
            for _ in range(400):  # 16 MB offered, more than a queue's worth per loop turn
                for _ in range(100):
                    a.send("B", payload)
                buffered = max(buffered, writer.transport.get_write_buffer_size())
                queued = max(queued, out.queued_bytes)
                await asyncio.sleep(0)
                if out.writer is not writer:
                    break
            assert buffered > transport_module._HIGH_WATER  # the peer did stop reading
            framed_queue = cap + 4 * (cap // len(payload))  # a full queue, with frame headers
            assert buffered < transport_module._HIGH_WATER + framed_queue
            assert queued <= cap
            assert a.stats()["dropped_queue_full"] > 0
            await eventually(lambda: a.stats()["disconnects"] >= 1, what="the write timeout")

    run(main())
