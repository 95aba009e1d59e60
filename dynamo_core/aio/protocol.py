"""The client protocol: requests a client sends a node, and the node's responses.

Each is a frozen attrs value with ``to_dict`` / ``from_dict`` through
[`dynamo_core.codec`][dynamo_core.codec], sent as one frame on a client connection. A request
carries a `rid` chosen by the client; the response echoes it, so one connection carries many
requests at once.

* [`ClientPut`][dynamo_core.aio.protocol.ClientPut] -> a response holding a
  [`PutReply`][dynamo_core.messages.PutReply] or a
  [`RequestFailed`][dynamo_core.messages.RequestFailed];
* [`ClientGet`][dynamo_core.aio.protocol.ClientGet] -> a
  [`GetReply`][dynamo_core.messages.GetReply] or a `RequestFailed`;
* [`ClientStats`][dynamo_core.aio.protocol.ClientStats] ->
  [`StatsReply`][dynamo_core.aio.protocol.StatsReply], the node's counters.

Pure: no sockets, no asyncio.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Self, TypeAlias

import attrs

from dynamo_core import codec
from dynamo_core._check import MAX_NODE_ID_LEN, check_node_id
from dynamo_core.errors import DecodeError
from dynamo_core.messages import (
    MAX_CONTEXT_BYTES,
    MAX_KEY_BYTES,
    GetReply,
    PutReply,
    RequestFailed,
    RequestResult,
    result_from_dict,
)

__all__ = [
    "MAX_STATS",
    "ClientGet",
    "ClientPut",
    "ClientRequest",
    "ClientResponse",
    "ClientStats",
    "RequestResponse",
    "StatsReply",
    "request_from_dict",
    "response_from_dict",
]

MAX_STATS: Final = 1024
"""The most counters a [`StatsReply`][dynamo_core.aio.protocol.StatsReply] may carry."""

_MAX_VALUE: Final = codec.DEFAULT_MAX_BYTES


def _rid(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    if type(value) is not int:
        raise TypeError(f"{attribute.name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= codec.MAX_COUNTER:
        raise ValueError(f"{attribute.name} must be in 0..2**63-1, got {value}")


def _blob(max_len: int, *, optional: bool = False) -> Callable[[Any, Any, Any], None]:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        if type(value) is not bytes:
            raise TypeError(f"{attribute.name} must be bytes, not {type(value).__name__}")
        if len(value) > max_len:
            raise ValueError(f"{attribute.name} must be at most {max_len} bytes")

    return check


def _build(cls: Callable[..., Any], what: str, *args: object) -> Any:
    try:
        return cls(*args)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"{what}: {exc}") from None


@attrs.frozen
class ClientPut:
    """Write `value` under `key`, based on the read that returned `context` (`None`: blind)."""

    rid: int = attrs.field(validator=_rid)
    key: bytes = attrs.field(validator=_blob(MAX_KEY_BYTES))
    value: bytes = attrs.field(validator=_blob(_MAX_VALUE))
    context: bytes | None = attrs.field(
        default=None, validator=_blob(MAX_CONTEXT_BYTES, optional=True)
    )

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``client_put`` envelope."""
        return codec.envelope(
            "client_put",
            {
                "rid": self.rid,
                "key": codec.encode_bytes(self.key),
                "value": codec.encode_bytes(self.value),
                "context": None if self.context is None else codec.encode_bytes(self.context),
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``client_put`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid request.
        """
        obj = codec.open_envelope(data, "client_put", required=("rid", "key", "value", "context"))
        raw = obj["context"]
        context = (
            None
            if raw is None
            else codec.as_bytes(raw, "client_put.context", max_len=MAX_CONTEXT_BYTES)
        )
        return cls(
            codec.as_int(obj["rid"], "client_put.rid"),
            codec.as_bytes(obj["key"], "client_put.key", max_len=MAX_KEY_BYTES),
            codec.as_bytes(obj["value"], "client_put.value", max_len=_MAX_VALUE),
            context,
        )


@attrs.frozen
class ClientGet:
    """Read `key`."""

    rid: int = attrs.field(validator=_rid)
    key: bytes = attrs.field(validator=_blob(MAX_KEY_BYTES))

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``client_get`` envelope."""
        return codec.envelope("client_get", {"rid": self.rid, "key": codec.encode_bytes(self.key)})

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``client_get`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid request.
        """
        obj = codec.open_envelope(data, "client_get", required=("rid", "key"))
        return cls(
            codec.as_int(obj["rid"], "client_get.rid"),
            codec.as_bytes(obj["key"], "client_get.key", max_len=MAX_KEY_BYTES),
        )


@attrs.frozen
class ClientStats:
    """Ask the node for its counters."""

    rid: int = attrs.field(validator=_rid)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``client_stats`` envelope."""
        return codec.envelope("client_stats", {"rid": self.rid})

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``client_stats`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid request.
        """
        obj = codec.open_envelope(data, "client_stats", required=("rid",))
        return cls(codec.as_int(obj["rid"], "client_stats.rid"))


def _check_result(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, PutReply | GetReply | RequestFailed):
        raise TypeError(f"{attribute.name} must be a request result, not {type(value).__name__}")


@attrs.frozen
class ClientResponse:
    """The end of a put or get: `result` is a `PutReply`, `GetReply` or `RequestFailed`."""

    rid: int = attrs.field(validator=_rid)
    result: RequestResult = attrs.field(validator=_check_result)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``client_response`` envelope holding the result's envelope."""
        return codec.envelope("client_response", {"rid": self.rid, "result": self.result.to_dict()})

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``client_response`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid response.
        """
        obj = codec.open_envelope(data, "client_response", required=("rid", "result"))
        return cls(codec.as_int(obj["rid"], "client_response.rid"), result_from_dict(obj["result"]))


def _check_counters(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not tuple:
        raise TypeError(f"{attribute.name} must be a tuple of (name, count) pairs")
    if len(value) > MAX_STATS:
        raise ValueError(f"{attribute.name} must hold at most {MAX_STATS} counters")
    names = []
    for i, item in enumerate(value):
        if (
            type(item) is not tuple
            or len(item) != 2
            or type(item[0]) is not str
            or not 1 <= len(item[0]) <= codec.DEFAULT_MAX_STR
            or type(item[1]) is not int
            or not 0 <= item[1] <= codec.MAX_COUNTER
        ):
            raise ValueError(f"{attribute.name}[{i}] must be a (name, count >= 0) pair")
        names.append(item[0])
    if names != sorted(set(names)):
        raise ValueError(f"{attribute.name} must be sorted by name, without duplicates")


@attrs.frozen
class StatsReply:
    """A node's counters.

    Attributes:
        rid: The request's id.
        node_id: The node that answered.
        counters: ``(name, count)`` pairs sorted by name: the node's `stats()`, the transport's
            and the driver's (see [`serve`][dynamo_core.aio.serve]).
    """

    rid: int = attrs.field(validator=_rid)
    node_id: str = attrs.field(validator=lambda _, a, v: check_node_id(v, a.name))
    counters: tuple[tuple[str, int], ...] = attrs.field(validator=_check_counters)

    @classmethod
    def of(cls, rid: int, node_id: str, counters: Mapping[str, int]) -> StatsReply:
        """Build a reply from a mapping of counters (sorted here)."""
        return cls(rid, node_id, tuple(sorted(counters.items())))

    def as_dict(self) -> dict[str, int]:
        """The counters as a dict."""
        return dict(self.counters)

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``client_stats_reply`` envelope."""
        return codec.envelope(
            "client_stats_reply",
            {"rid": self.rid, "node": self.node_id, "counters": [[k, v] for k, v in self.counters]},
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``client_stats_reply`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid reply.
        """
        obj = codec.open_envelope(data, "client_stats_reply", required=("rid", "node", "counters"))
        items = codec.as_list(obj["counters"], "client_stats_reply.counters", max_items=MAX_STATS)
        counters = []
        for i, item in enumerate(items):
            what = f"client_stats_reply.counters[{i}]"
            pair = codec.as_list(item, what, max_items=2)
            if len(pair) != 2:
                raise DecodeError(f"{what} must be [name, count]")
            counters.append(
                (codec.as_str(pair[0], f"{what}.name"), codec.as_int(pair[1], f"{what}.count"))
            )
        return _build(  # type: ignore[no-any-return]
            cls,
            "client_stats_reply",
            codec.as_int(obj["rid"], "client_stats_reply.rid"),
            codec.as_str(obj["node"], "client_stats_reply.node", max_len=MAX_NODE_ID_LEN),
            tuple(counters),
        )


ClientRequest: TypeAlias = ClientPut | ClientGet | ClientStats
"""Every request a client sends."""

RequestResponse: TypeAlias = ClientResponse | StatsReply
"""Every response a node sends a client."""

_REQUESTS: Final[dict[str, Callable[[object], ClientRequest]]] = {
    "client_put": ClientPut.from_dict,
    "client_get": ClientGet.from_dict,
    "client_stats": ClientStats.from_dict,
}
_RESPONSES: Final[dict[str, Callable[[object], RequestResponse]]] = {
    "client_response": ClientResponse.from_dict,
    "client_stats_reply": StatsReply.from_dict,
}


def request_from_dict(data: object) -> ClientRequest:
    """Decode any client request, dispatching on its ``type``.

    Raises:
        dynamo_core.errors.DecodeError: `data` is not a valid client request.
    """
    request: ClientRequest = codec.decode_by_type(data, _REQUESTS, "client request")
    return request


def response_from_dict(data: object) -> RequestResponse:
    """Decode any response to a client, dispatching on its ``type``.

    Raises:
        dynamo_core.errors.DecodeError: `data` is not a valid response.
    """
    response: RequestResponse = codec.decode_by_type(data, _RESPONSES, "client response")
    return response
