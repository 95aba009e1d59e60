"""The messages Dynamo nodes send each other, and the results of client requests.

Every message a [`Node`][dynamo_core.node.Node] sends is a frozen attrs value with ``to_dict`` /
``from_dict`` through [`dynamo_core.codec`][dynamo_core.codec], so a driver can put it on any
transport: the deterministic [`Simulation`][dynamo_core.testing.Simulation] passes the objects,
a network driver sends [`encode_message`][dynamo_core.messages.encode_message] bytes and decodes
them with [`decode_message`][dynamo_core.messages.decode_message] (one dispatcher,
[`message_from_dict`][dynamo_core.messages.message_from_dict], for every kind). Decoders raise
only [`DecodeError`][dynamo_core.errors.DecodeError] and are capped in size.

* [`Heartbeat`][dynamo_core.messages.Heartbeat]: every node to every other, every
  `heartbeat_interval`; feeds the failure detectors.
* [`StoreRequest`][dynamo_core.messages.StoreRequest] /
  [`StoreReply`][dynamo_core.messages.StoreReply]: a put coordinator and a replica (or a fallback
  keeping a hint).
* [`FetchRequest`][dynamo_core.messages.FetchRequest] /
  [`FetchReply`][dynamo_core.messages.FetchReply]: a get coordinator and a replica.
* [`ReadRepair`][dynamo_core.messages.ReadRepair]: a get coordinator to a stale replica; no reply.
* [`Forward`][dynamo_core.messages.Forward] /
  [`ForwardReply`][dynamo_core.messages.ForwardReply]: a node asked for a key it does not
  replicate, and the primary that coordinated the request for it.
* [`HintBatch`][dynamo_core.hints.HintBatch] / [`HintAck`][dynamo_core.hints.HintAck]: a
  fallback handing hints over to the node they belong to.
* [`SyncOffer`][dynamo_core.messages.SyncOffer] / [`SyncDiff`][dynamo_core.messages.SyncDiff]:
  anti-entropy, the Merkle roots of the ranges two replicas share and which of them differ.
* [`ExchangeMessage`][dynamo_core.messages.ExchangeMessage]: one message of a Merkle exchange
  over one range.
* [`RepairPush`][dynamo_core.messages.RepairPush] /
  [`RepairPull`][dynamo_core.messages.RepairPull]: anti-entropy repair, states shipped to the
  side that lacks them.
* [`GossipDigest`][dynamo_core.membership.GossipDigest] /
  [`GossipUpdate`][dynamo_core.membership.GossipUpdate]: membership gossip (ring versions and
  change requests).
* [`StreamPull`][dynamo_core.streaming.StreamPull] /
  [`StreamBatch`][dynamo_core.streaming.StreamBatch]: a new replica pulling a range's data.

Keys travel as `bytes` (a `str` key is its UTF-8 encoding); replica states as
[`DVVSet`][dynamo_core.dvv.DVVSet] encodings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeAlias

from dynamo_core import codec
from dynamo_core._check import MAX_KEY_BYTES
from dynamo_core.dvv import DVVSet
from dynamo_core.hints import HintAck, HintBatch
from dynamo_core.membership import GossipDigest, GossipUpdate
from dynamo_core.messages._fields import _V
from dynamo_core.messages.anti_entropy import (
    MAX_RANGES,
    MAX_REPAIR_KEYS,
    ExchangeMessage,
    RepairPull,
    RepairPush,
    SyncDiff,
    SyncOffer,
)
from dynamo_core.messages.replication import (
    FetchReply,
    FetchRequest,
    Forward,
    ForwardReply,
    Heartbeat,
    ReadRepair,
    StoreReply,
    StoreRequest,
    _read_fetch,
    _read_fetched,
    _read_store,
    _read_stored,
)
from dynamo_core.messages.results import (
    MAX_CONTEXT_BYTES,
    GetReply,
    PutReply,
    RequestFailed,
    RequestResult,
    result_from_dict,
)
from dynamo_core.streaming import StreamBatch, StreamPull

__all__ = [
    "MAX_CONTEXT_BYTES",
    "MAX_KEY_BYTES",
    "MAX_RANGES",
    "MAX_REPAIR_KEYS",
    "MESSAGE_TYPES",
    "ExchangeMessage",
    "FetchReply",
    "FetchRequest",
    "Forward",
    "ForwardReply",
    "GetReply",
    "Heartbeat",
    "HintAck",
    "Message",
    "PutReply",
    "ReadRepair",
    "RepairPull",
    "RepairPush",
    "RequestFailed",
    "RequestResult",
    "StoreReply",
    "StoreRequest",
    "SyncDiff",
    "SyncOffer",
    "decode_message",
    "encode_message",
    "message_from_dict",
    "result_from_dict",
]

"""The longest key, in bytes, a node accepts (64 KiB, as the hint store and Merkle exchange)."""


Message: TypeAlias = (
    Heartbeat
    | StoreRequest
    | StoreReply
    | FetchRequest
    | FetchReply
    | ReadRepair
    | Forward
    | ForwardReply
    | HintBatch[DVVSet[bytes]]
    | HintAck
    | SyncOffer
    | SyncDiff
    | ExchangeMessage
    | RepairPush
    | RepairPull
    | GossipDigest
    | GossipUpdate
    | StreamPull
    | StreamBatch
)
"""Every message one node sends another."""

MESSAGE_TYPES: Final[tuple[type[Any], ...]] = (
    Heartbeat,
    StoreRequest,
    StoreReply,
    FetchRequest,
    FetchReply,
    ReadRepair,
    Forward,
    ForwardReply,
    HintBatch,
    HintAck,
    SyncOffer,
    SyncDiff,
    ExchangeMessage,
    RepairPush,
    RepairPull,
    GossipDigest,
    GossipUpdate,
    StreamPull,
    StreamBatch,
)

_MESSAGE_TYPE_SET: Final = frozenset(MESSAGE_TYPES)

_DECODERS: Final[dict[str, Callable[[object], Message]]] = {
    "node_heartbeat": Heartbeat.from_dict,
    "node_store": StoreRequest.from_dict,
    "node_stored": StoreReply.from_dict,
    "node_fetch": FetchRequest.from_dict,
    "node_fetched": FetchReply.from_dict,
    "node_read_repair": ReadRepair.from_dict,
    "node_forward": Forward.from_dict,
    "node_forward_reply": ForwardReply.from_dict,
    "hint_batch": HintBatch.from_dict,
    "node_hint_ack": HintAck.from_dict,
    "node_sync_offer": SyncOffer.from_dict,
    "node_sync_diff": SyncDiff.from_dict,
    "node_exchange": ExchangeMessage.from_dict,
    "node_repair_push": RepairPush.from_dict,
    "node_repair_pull": RepairPull.from_dict,
    "gossip_digest": GossipDigest.from_dict,
    "gossip_update": GossipUpdate.from_dict,
    "stream_pull": StreamPull.from_dict,
    "stream_batch": StreamBatch.from_dict,
}


# The request path's messages, written and read directly (see `_read_store`).
_WRITERS: Final[dict[type[Any], Callable[[Any], str | None]]] = {
    StoreRequest: StoreRequest._json,
    StoreReply: StoreReply._json,
    FetchRequest: FetchRequest._json,
    FetchReply: FetchReply._json,
}
_READERS: Final[dict[str, Callable[[str], Message | None]]] = {
    f'node_store","v":{_V}}}': _read_store,
    f'node_stored","v":{_V}}}': _read_stored,
    f'node_fetch","v":{_V}}}': _read_fetch,
    f'node_fetched","v":{_V}}}': _read_fetched,
}


def message_from_dict(data: object) -> Message:
    """Decode any node-to-node message from its envelope, dispatching on its ``type``.

    Cost: O(size of `data`), bounded by each message's caps.

    Returns:
        The message.

    Raises:
        dynamo_core.errors.DecodeError: `data` is not a valid encoded node message.
    """
    return codec.decode_by_type(data, _DECODERS, "node message")


def encode_message(message: Message) -> bytes:
    """Encode a message as canonical JSON bytes ([`codec.dumps`][dynamo_core.codec.dumps]).

    Returns:
        The encoded message.

    Raises:
        TypeError: `message` is not a node message.
    """
    write = _WRITERS.get(type(message))
    if write is not None:
        text = write(message)
        if text is not None:
            return text.encode("utf-8")
    if type(message) not in _MESSAGE_TYPE_SET and not isinstance(message, MESSAGE_TYPES):
        raise TypeError(f"message must be a node message, not {type(message).__name__}")
    return codec.dumps(message.to_dict())


def decode_message(
    data: bytes | bytearray | memoryview | str, *, max_bytes: int = codec.DEFAULT_MAX_BYTES
) -> Message:
    """Decode bytes made by [`encode_message`][dynamo_core.messages.encode_message].

    Returns:
        The message.

    Raises:
        dynamo_core.errors.DecodeError: `data` is over `max_bytes` or not a valid message.
    """
    text = codec.canonical_text(data, max_bytes)
    if text is not None:
        read = _READERS.get(text.rpartition('"type":"')[2])
        message = None if read is None else read(text)
        if message is not None:
            return message
    return codec.decode_by_type(codec.loads(data, max_bytes=max_bytes), _DECODERS, "node message")
