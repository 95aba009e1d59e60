"""An on-path relay for tests: it passes a handshake through, then tampers with the frames."""

from __future__ import annotations

import asyncio
import contextlib

from dynamo_core import codec
from dynamo_core.aio.framing import FrameDecoder, encode_frame
from dynamo_core.aio.protocol import ClientPut
from dynamo_core.messages import Heartbeat, encode_message


class Relay:
    """An on-path relay between A and B: it passes the handshake through, then tampers once.

    Only the first connection is tampered with; later ones pass through untouched.
    """

    def __init__(
        self, target: int, mode: str, *, sealed: bool = True, key: bytes = b"forged"
    ) -> None:
        self.target = target
        self.key = key
        self.fake_tag = b"\x00" * 32 if sealed else b""  # a guess, where a tag is expected
        self.mode = mode
        self.tampered = False
        self.held: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for writer in self.writers:
            writer.transport.abort()

    def tamper(self, index: int, payload: bytes) -> list[bytes]:
        """The frames to forward for the connector's frame number `index` (0, 1: handshake)."""
        if self.tampered or index < 3:
            return [payload]
        self.tampered = True
        forged = encode_message(Heartbeat(1, 99))
        match self.mode:
            case "inject":
                return [payload, forged + self.fake_tag]
            case "inject a client put":
                put = ClientPut(7, self.key, b"forged")
                return [payload, codec.dumps(put.to_dict()) + self.fake_tag]
            case "replay":
                return [payload, payload]
            case "reorder":
                self.tampered = False
                self.mode = "release"
                self.held.append(payload)
                return []
            case "release":
                return [payload, *self.held]
            case "drop":
                self.mode = "pass"
                return []
            case "truncate":
                return [payload[:-5]]
            case _:
                return [payload]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tasks.append(asyncio.current_task())  # type: ignore[arg-type]
        self.writers.append(writer)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers.append(up_writer)

        async def back() -> None:
            with contextlib.suppress(ConnectionError):
                while data := await up_reader.read(65536):
                    writer.write(data)
            writer.transport.abort()

        self.tasks.append(asyncio.create_task(back()))
        decoder = FrameDecoder(1 << 20)
        index = 0
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                for payload in decoder.feed(data):
                    for frame in self.tamper(index, payload):
                        up_writer.write(encode_frame(frame))
                    index += 1
        up_writer.transport.abort()
