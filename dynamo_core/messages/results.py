"""The results of client requests, as a node answers them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Self, TypeAlias

import attrs

from dynamo_core import codec
from dynamo_core.errors import DecodeError
from dynamo_core.messages._fields import (
    _build,
    _bytes_tuple,
    _check_code,
    _check_id,
    _check_node_tuple,
    _check_text,
    _decode_nodes,
)

MAX_CONTEXT_BYTES: Final = 256 * 1024
"""The largest encoded client context accepted (a clock of up to 1,024 entries fits)."""


# -- client results ----------------------------------------------------------------------------


@attrs.frozen
class PutReply:
    """A put succeeded: `w` replicas acknowledged the new state.

    Attributes:
        acked: The nodes whose acknowledgements counted, sorted.
        hinted: ``(fallback, primary)`` for every fallback that stored a hinted copy by the time
            the write succeeded, sorted.
    """

    acked: tuple[str, ...] = attrs.field(validator=_check_node_tuple)
    hinted: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        """Always `True`: the request succeeded."""
        return True

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_put_reply`` envelope."""
        return codec.envelope(
            "node_put_reply",
            {"acked": list(self.acked), "hinted": [[f, p] for f, p in self.hinted]},
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_put_reply`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded reply.
        """
        obj = codec.open_envelope(data, "node_put_reply", required=("acked", "hinted"))
        acked = _decode_nodes(obj["acked"], "node_put_reply.acked")
        pairs = codec.as_list(obj["hinted"], "node_put_reply.hinted", max_items=1024)
        hinted = []
        for i, pair in enumerate(pairs):
            nodes = _decode_nodes(pair, f"node_put_reply.hinted[{i}]", max_items=2)
            if len(nodes) != 2:
                raise DecodeError(f"node_put_reply.hinted[{i}] must be [fallback, primary]")
            hinted.append((nodes[0], nodes[1]))
        return _build(cls, "node_put_reply", acked, tuple(hinted))  # type: ignore[no-any-return]


@attrs.frozen
class GetReply:
    """A get succeeded: `r` replicas answered.

    Attributes:
        values: The siblings (one per concurrent write not yet merged), in a deterministic
            order; empty when the key was not found.
        context: The opaque causal context: send it back with the next put of this key, so that
            the put replaces exactly the values read here.
        found: Whether any replica held the key.
    """

    values: tuple[bytes, ...] = attrs.field(
        validator=_bytes_tuple(max_items=1024, max_len=codec.DEFAULT_MAX_BYTES)
    )
    context: bytes = attrs.field(validator=attrs.validators.instance_of(bytes))
    found: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))

    @property
    def ok(self) -> bool:
        """Always `True`: the request succeeded."""
        return True

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_get_reply`` envelope (values and context in base64)."""
        return codec.envelope(
            "node_get_reply",
            {
                "values": [codec.encode_bytes(v) for v in self.values],
                "context": codec.encode_bytes(self.context),
                "found": self.found,
            },
        )

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_get_reply`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded reply.
        """
        obj = codec.open_envelope(data, "node_get_reply", required=("values", "context", "found"))
        raw = codec.as_list(obj["values"], "node_get_reply.values", max_items=1024)
        values = tuple(
            codec.as_bytes(v, f"node_get_reply.values[{i}]", max_len=codec.DEFAULT_MAX_BYTES)
            for i, v in enumerate(raw)
        )
        context = codec.as_bytes(
            obj["context"], "node_get_reply.context", max_len=MAX_CONTEXT_BYTES
        )
        found = codec.as_bool(obj["found"], "node_get_reply.found")
        return _build(cls, "node_get_reply", values, context, found)  # type: ignore[no-any-return]


@attrs.frozen
class RequestFailed:
    """A request failed: too few replicas answered in time, or the coordinator did not answer.

    The write may still have reached some replicas (it is then neither acknowledged nor lost:
    a later read may or may not see it).

    Attributes:
        reason: What happened, for people.
        required: The replicas that had to answer (0 when the coordinator never answered).
        answered: The replicas that did, sorted.
        code: What kind of refusal it is, for programs: ``""`` (too few answers, or the
            coordinator never answered), a limit name of
            [`LIMIT_NAMES`][dynamo_core.limits.LIMIT_NAMES] (the write was refused and changed
            nothing), ``"storage_full"`` (the coordinator refuses writes: try another node),
            ``"quarantined"`` (the coordinator's copy of the key is quarantined: try another
            node) or ``"bad_request"``.
    """

    reason: str = attrs.field(validator=_check_text)
    required: int = attrs.field(default=0, validator=_check_id)
    answered: tuple[str, ...] = attrs.field(default=(), validator=_check_node_tuple)
    code: str = attrs.field(default="", validator=_check_code)

    @property
    def ok(self) -> bool:
        """Always `False`."""
        return False

    def to_dict(self) -> dict[str, codec.JSONValue]:
        """Encode as a ``node_request_failed`` envelope."""
        body: dict[str, codec.JSONValue] = {
            "reason": self.reason,
            "required": self.required,
            "answered": list(self.answered),
        }
        if self.code:
            body["code"] = self.code
        return codec.envelope("node_request_failed", body)

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Decode a ``node_request_failed`` envelope.

        Raises:
            dynamo_core.errors.DecodeError: `data` is not a valid encoded result.
        """
        obj = codec.open_envelope(
            data,
            "node_request_failed",
            required=("reason", "required", "answered"),
            optional=("code",),
        )
        reason = codec.as_str(obj["reason"], "node_request_failed.reason", min_len=0)
        required = codec.as_int(obj["required"], "node_request_failed.required")
        answered = _decode_nodes(obj["answered"], "node_request_failed.answered")
        code = codec.as_str(obj.get("code", ""), "node_request_failed.code", max_len=32, min_len=0)
        return _build(cls, "node_request_failed", reason, required, answered, code)  # type: ignore[no-any-return]


RequestResult: TypeAlias = PutReply | GetReply | RequestFailed
"""What a client request ends with."""

_RESULTS: Final[dict[str, Callable[[object], RequestResult]]] = {
    "node_put_reply": PutReply.from_dict,
    "node_get_reply": GetReply.from_dict,
    "node_request_failed": RequestFailed.from_dict,
}


def result_from_dict(data: object) -> RequestResult:
    """Decode any request result, dispatching on its ``type``.

    Raises:
        dynamo_core.errors.DecodeError: `data` is not a valid encoded result.
    """
    result: RequestResult = codec.decode_by_type(data, _RESULTS, "request result")
    return result
