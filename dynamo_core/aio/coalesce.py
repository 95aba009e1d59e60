"""Write coalescing: the frames made while handling a batch of reads leave in one write each.

On loopback a ``send`` system call per frame is most of what a message costs a node: it runs
the receiver's TCP path and wakes it. A node that reads eight requests at once and answers each
at once makes eight calls where one would do. So outgoing frames are gathered per connection
and written together, in order, when the batch of reads that made them is done
([`Coalescer.flush`][dynamo_core.aio.coalesce.Coalescer.flush], called by the reader), or at
the event loop's next turn for frames made elsewhere (timers, client tasks). Nothing waits
longer than that turn; what bounds a connection's memory stays with its owner (the outbound
queue's caps, the slow-client cut-off), which counts the frames held here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Coalescer", "FrameBatch"]


class Coalescer:
    """The connections with frames to write, each flushed once per batch.

    [`mark`][dynamo_core.aio.coalesce.Coalescer.mark] a connection when it gets its first
    frame of a batch; the flush callbacks of every marked connection run at the next
    [`flush`][dynamo_core.aio.coalesce.Coalescer.flush], or at the loop's next turn, whichever
    comes first. Marks of one connection are one entry (keyed by its owner object).
    """

    __slots__ = ("_dirty", "_scheduled")

    def __init__(self) -> None:
        self._dirty: dict[object, Callable[[], None]] = {}
        self._scheduled = False

    def mark(self, owner: object, flush: Callable[[], None]) -> None:
        """Have `flush` called at the next flush (once, however often `owner` is marked)."""
        if owner in self._dirty:
            return
        self._dirty[owner] = flush
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._on_turn)

    def _on_turn(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Run the flush of every marked connection, in the order they were marked."""
        while self._dirty:  # a flush may mark again (rarely): until none is left
            dirty, self._dirty = self._dirty, {}
            for flush in dirty.values():
                flush()


class FrameBatch:
    """The frames waiting for one connection, written with one call.

    Args:
        writer: The connection.
    """

    __slots__ = ("frames", "size", "turn_open", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.frames: list[bytes] = []
        self.size = 0
        self.turn_open = False  # written to in this loop turn (`send`)

    def send(self, frame: bytes, coalescer: Coalescer) -> None:
        """Write `frame` at once if it is the connection's first of this loop turn, else hold it.

        A lone request goes out without waiting for the turn to end; the ones made after it in
        the same turn (concurrent requests) are held and written together when it ends, after
        it.
        """
        if self.turn_open:
            self.add(frame)
            return
        self.turn_open = True
        if not self.writer.is_closing():
            self.writer.write(frame)
        coalescer.mark(self, self._end_turn)

    def _end_turn(self) -> None:
        self.turn_open = False
        self.flush()

    def add(self, frame: bytes) -> None:
        """Hold `frame` for the next `flush`, after the frames already held."""
        self.frames.append(frame)
        self.size += len(frame)

    def clear(self) -> None:
        """Forget the frames held (the connection is being dropped)."""
        self.frames.clear()
        self.size = 0

    def flush(self) -> None:
        """Write the frames held, in order, in one call; dropped if the connection is closing."""
        frames = self.frames
        if not frames:
            return
        self.frames = []
        self.size = 0
        if not self.writer.is_closing():
            self.writer.writelines(frames)
