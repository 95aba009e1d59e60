"""The wire codec: node messages to bytes and back.

The six messages of a put through three replicas (two ``StoreRequest`` s with a one-sibling state,
a 100-byte value and a 3-entry causal history, and their ``StoreReply`` s), and the four of a get
(two ``FetchRequest`` s and two ``FetchReply`` s), each encoded with `encode_message` and decoded
with `decode_message`: what a network driver does per message.

* **json floor**: the same dicts through ``json.dumps`` / ``json.loads`` with default options:
  no canonical key order, no duplicate-key check, no envelope or field validation, no objects
  built. What the codec costs beyond raw JSON is the gap to this floor.
"""

from __future__ import annotations

import json

from benchmarks.harness import Case, Group
from dynamo_core import DVVSet, codec
from dynamo_core.messages import (
    FetchReply,
    FetchRequest,
    Message,
    StoreReply,
    StoreRequest,
    decode_message,
    encode_message,
)


def _state(siblings: int) -> DVVSet[bytes]:
    state: DVVSet[bytes] = DVVSet()
    for i, node in enumerate(("node-a#1", "node-b#1", "node-c#1")):
        state = state.update(b"v" * 100, node, state.context if i else None)
    for i in range(siblings - 1):  # concurrent writes: siblings under one node
        state = state.update(bytes([i]) * 100, "node-a#1")
    return state


def _round(messages: list[Message]) -> None:
    for message in messages:
        decode_message(encode_message(message))


def _floor(dicts: list[dict[str, codec.JSONValue]]) -> None:
    for d in dicts:
        json.loads(json.dumps(d))


def _group(title: str, messages: list[Message]) -> Group:
    dicts = [m.to_dict() for m in messages]
    for message in messages:
        assert decode_message(encode_message(message)) == message
    n = len(messages)
    return Group(
        title,
        [
            Case("encode + decode", lambda: _round(messages), ops=n),
            Case("encode_message", lambda: [encode_message(m) for m in messages], ops=n),
            Case("json floor", lambda: _floor(dicts), ops=n),
        ],
        compare=("json floor",),
    )


def groups(quick: bool) -> list[Group]:
    key = b"cart:12345"
    one = _state(1)
    three = _state(3)
    put: list[Message] = [StoreRequest(7, key, one, None, 4), StoreRequest(7, key, one, None, 4)]
    put += [StoreReply(7), StoreReply(7)]
    get: list[Message] = [
        FetchRequest(8, key),
        FetchRequest(8, key),
        FetchReply(8, one),
        FetchReply(8, one),
    ]
    siblings: list[Message] = [StoreRequest(9, key, three, None, 4), FetchReply(9, three)]
    return [
        _group("put messages: 2 StoreRequest + 2 StoreReply, per message", put),
        _group("get messages: 2 FetchRequest + 2 FetchReply, per message", get),
        _group("3 siblings: StoreRequest + FetchReply, per message", siblings),
    ]
