"""Field checks and decoding helpers shared by the node's messages."""

from __future__ import annotations

from binascii import a2b_base64
from collections.abc import Callable
from typing import Any, Final, TypeVar

import attrs

from dynamo_core import codec
from dynamo_core._check import MAX_KEY_BYTES, MAX_NODE_ID_LEN, check_node_id
from dynamo_core.errors import DecodeError

_MAX_ID: Final = codec.MAX_COUNTER
_M = TypeVar("_M")
_new = object.__new__
# The envelope and base64 of the hot messages are written inline (not codec.envelope and
# codec.encode_bytes): they are on the path of every request.
_V: Final = codec.FORMAT_VERSION
_b64: Final = codec.encode_bytes


# -- field checks ------------------------------------------------------------------------------


def _check_id(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    if type(value) is not int:
        raise TypeError(f"{attribute.name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= _MAX_ID:
        raise ValueError(f"{attribute.name} must be in 0..2**63-1, got {value}")


def _check_code(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if type(value) is not str:
        raise TypeError(f"{attribute.name} must be a str, not {type(value).__name__}")
    if len(value) > 32:
        raise ValueError(f"{attribute.name} must be at most 32 characters")


def _check_key_field(_: object, attribute: attrs.Attribute[bytes], value: object) -> None:
    if type(value) is not bytes:
        raise TypeError(f"{attribute.name} must be bytes, not {type(value).__name__}")
    if len(value) > MAX_KEY_BYTES:
        raise ValueError(f"{attribute.name} must be at most {MAX_KEY_BYTES} bytes")


def _check_node_tuple(
    _: object, attribute: attrs.Attribute[tuple[str, ...]], value: object
) -> None:
    if type(value) is not tuple:
        raise TypeError(f"{attribute.name} must be a tuple of node ids, not {type(value).__name__}")
    for i, node in enumerate(value):
        check_node_id(node, f"{attribute.name}[{i}]")


def _check_text(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if type(value) is not str:
        raise TypeError(f"{attribute.name} must be a str, not {type(value).__name__}")
    if len(value) > codec.DEFAULT_MAX_STR:
        raise ValueError(f"{attribute.name} must be at most {codec.DEFAULT_MAX_STR} characters")


def _bytes_tuple(
    *, max_items: int, max_len: int
) -> Callable[[object, attrs.Attribute[tuple[bytes, ...]], object], None]:
    def check(_: object, attribute: attrs.Attribute[tuple[bytes, ...]], value: object) -> None:
        if type(value) is not tuple:
            raise TypeError(
                f"{attribute.name} must be a tuple of bytes, not {type(value).__name__}"
            )
        if len(value) > max_items:
            raise ValueError(f"{attribute.name} must hold at most {max_items} items")
        for i, item in enumerate(value):
            if type(item) is not bytes:
                raise TypeError(f"{attribute.name}[{i}] must be bytes, not {type(item).__name__}")
            if len(item) > max_len:
                raise ValueError(f"{attribute.name}[{i}] must be at most {max_len} bytes")

    return check


def _decode_key(value: object, what: str) -> bytes:
    return codec.as_bytes(value, what, max_len=MAX_KEY_BYTES)


def _decode_hint(value: object, what: str) -> str | None:
    if value is None:
        return None
    return codec.as_str(value, what, max_len=MAX_NODE_ID_LEN)


def _decode_nodes(value: object, what: str, *, max_items: int = 1024) -> tuple[str, ...]:
    items = codec.as_list(value, what, max_items=max_items)
    return tuple(
        codec.as_str(node, f"{what}[{i}]", max_len=MAX_NODE_ID_LEN) for i, node in enumerate(items)
    )


def _is_version(value: object) -> bool:
    return type(value) is int and 1 <= value <= _V


def _is_id(value: object) -> bool:
    return type(value) is int and 0 <= value <= _MAX_ID


def _is_hint(value: object) -> bool:
    """A hint the slow path accepts: `None` or an ASCII node id (others take the slow path)."""
    return value is None or (
        type(value) is str and 0 < len(value) <= MAX_NODE_ID_LEN and value.isascii()
    )


_MAX_KEY_B64: Final = 4 * ((MAX_KEY_BYTES + 2) // 3)


def _quick_key(value: object) -> bytes | None:
    """The key a well-formed base64 field holds; `None` where the slow path must decide."""
    if type(value) is not str or len(value) > _MAX_KEY_B64:
        return None
    try:
        key = a2b_base64(value, strict_mode=True)
    except ValueError:
        return None
    return key if len(key) <= MAX_KEY_BYTES else None


def _build(cls: type[Any], what: str, *args: object) -> Any:
    """Construct a value from decoded fields; a validator's complaint becomes a DecodeError."""
    try:
        return cls(*args)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"{what}: {exc}") from None
