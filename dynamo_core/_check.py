"""Argument checks shared by every module.

Each raises the built-in `TypeError` or `ValueError` with a message that names the argument and
says what was allowed, and returns the checked value so a call can sit in an assignment.
"""

from __future__ import annotations

import math

MAX_NODE_ID_LEN = 255
"""The longest node id, in characters, that the library accepts."""


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
