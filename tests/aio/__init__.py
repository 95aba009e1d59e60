"""Tests of the asyncio runtime (dynamo_core.aio): real sockets, 127.0.0.1 only."""
