"""Argument checks shared by every module.

Each raises the built-in `TypeError` or `ValueError` with a message that names the argument and
says what was allowed, and returns the checked value so a call can sit in an assignment.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import attrs

MAX_NODE_ID_LEN: Final = 255
"""The longest node id, in characters, that the library accepts."""

MAX_KEY_BYTES: Final = 65_536
"""The longest key, in bytes (a `str` key counts its UTF-8 encoding), that the library stores or
ships: every decoder caps keys at it, so one frame can always carry a key."""


def check_bytes(value: object, name: str) -> bytes:
    """Return `value` if it is `bytes`; raise `TypeError` naming `name` otherwise."""
    if type(value) is not bytes:
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    return value


def check_key(value: object, name: str = "key") -> str | bytes:
    """Return `value` if it is a `str` or `bytes` key; raise `TypeError` otherwise."""
    if type(value) is not str and type(value) is not bytes:
        raise TypeError(f"{name} must be str or bytes, not {type(value).__name__}")
    return value


def key_bytes(key: object, name: str = "key", *, max_len: int | None = MAX_KEY_BYTES) -> bytes:
    """Return the bytes a `str` or `bytes` key is hashed, stored and measured as.

    A `str` key is its UTF-8 encoding. `max_len` is the longest accepted, in bytes (`None`: no
    cap, for structures such as a Merkle tree that only hash the key).

    Raises:
        TypeError: `key` is not a `str` or `bytes`.
        ValueError: `key` is a `str` with a lone surrogate, or longer than `max_len` bytes.
    """
    if type(key) is bytes:
        data = key
    elif type(key) is str:
        try:
            data = key.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{name} must be encodable as UTF-8 (no lone surrogates)") from None
    else:
        raise TypeError(f"{name} must be str or bytes, not {type(key).__name__}")
    if max_len is not None and len(data) > max_len:
        raise ValueError(f"{name} must be at most {max_len} bytes long, got {len(data)}")
    return data


def utf8_error(value: str) -> str | None:
    """Return why `value` cannot be encoded as UTF-8 (a lone surrogate), or `None` if it can.

    Decoders call it on every string they accept, so a string that passed a decoder never
    fails later when it is hashed, stored or sent. Cost: O(len(value)), one C-level pass.
    """
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds a lone surrogate at index {exc.start} (not encodable as UTF-8)"
    return None


def check_text(value: str, name: str) -> str:
    """Return `value` if it is encodable as UTF-8; raise `ValueError` naming `name` otherwise."""
    error = utf8_error(value)
    if error is not None:
        raise ValueError(f"{name} {error}")
    return value


def check_node_id(value: object, name: str = "node") -> str:
    """Return `value` if it is a non-empty `str` of at most 255 characters, encodable as UTF-8.

    Raises:
        TypeError: `value` is not a `str`.
        ValueError: `value` is empty, too long, or holds a lone surrogate (not UTF-8).
    """
    if type(value) is not str:
        raise TypeError(f"{name} must be a str node id, not {type(value).__name__}")
    if not 1 <= len(value) <= MAX_NODE_ID_LEN:
        raise ValueError(f"{name} must be 1..{MAX_NODE_ID_LEN} characters long, got {len(value)}")
    return check_text(value, name)


def node_id_field(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """The attrs validator form of `check_node_id`: the error names the field."""
    check_node_id(value, attribute.name)


def check_time(value: object, name: str = "now") -> float:
    """Return `value` as a float if it is a finite, non-negative number of seconds.

    Raises:
        TypeError: `value` is not an `int` or `float` (booleans are refused).
        ValueError: `value` is negative, NaN or infinite.
    """
    if type(value) is not float and type(value) is not int:
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    number = float(value)
    if not (math.isfinite(number) and number >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def check_positive_int(value: object, name: str, *, maximum: int | None = None) -> int:
    """Return `value` if it is an `int` (not a boolean) in ``1 .. maximum``.

    Raises:
        TypeError: `value` is not an `int`.
        ValueError: `value` is out of range.
    """
    if type(value) is not int:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1 or (maximum is not None and value > maximum):
        allowed = f"1..{maximum}" if maximum is not None else ">= 1"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def check_positive_float(value: object, name: str) -> float:
    """Return `value` as a float if it is a finite number > 0.

    Raises:
        TypeError: `value` is not an `int` or `float`.
        ValueError: `value` is not finite or not positive.
    """
    if type(value) is not float and type(value) is not int:
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    number = float(value)
    if not (math.isfinite(number) and number > 0.0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number
