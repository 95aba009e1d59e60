"""The wire codec: versioned, JSON-safe encodings with strict, capped decoders.

Every value type in dynamo_core encodes to a plain JSON-safe ``dict`` (`to_dict()`) and decodes
from one (`from_dict()`) with the helpers in this module, so there is one set of rules for what
the library accepts from another process:

* An encoded object is an *envelope*: ``{"type": <kind>, "v": <format version>, ...fields}``.
  A decoder checks the kind and the version, requires every mandatory field and rejects unknown
  ones, so a typo or a message from a newer format is an error, never silently half-read.
* Integers are counters in ``0 .. 2**63 - 1`` unless a decoder says otherwise; booleans are never
  accepted as integers; floats must be finite; strings and lists have length caps; bytes travel
  as standard base64 and are capped *before* decoding.
* Anything wrong raises [`DecodeError`][dynamo_core.errors.DecodeError] with a message that
  names the field (``"clock.entries[3].counter"``) and says what was allowed. Decoders never raise
  `KeyError`, `IndexError`, `TypeError` or `RecursionError`, and never do work that is not
  bounded by the size of their input.

[`dumps`][dynamo_core.codec.dumps] and [`loads`][dynamo_core.codec.loads] turn those dicts into
canonical UTF-8 JSON bytes and back (sorted keys, no whitespace, no NaN), so equal values encode to
equal bytes. The library never uses `pickle`, `marshal` or `shelve` (the linter bans them).
"""

from __future__ import annotations

import binascii
import json
import json.encoder
import math
from collections.abc import Callable, Collection, Mapping
from typing import Final, TypeAlias, TypeVar

from dynamo_core._check import utf8_error
from dynamo_core.errors import DecodeError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_MAX_STR",
    "FORMAT_VERSION",
    "MAX_COUNTER",
    "JSONValue",
    "as_bool",
    "as_bytes",
    "as_float",
    "as_int",
    "as_list",
    "as_str",
    "canonical_text",
    "decode_by_type",
    "dumps",
    "encode_bytes",
    "envelope",
    "fields",
    "loads",
    "open_envelope",
]

_T = TypeVar("_T")

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"
"""A value that `json` can encode: what every `to_dict()` returns."""

FORMAT_VERSION: Final = 1
"""The version written into every envelope. Decoders accept versions ``1 .. FORMAT_VERSION``."""

MAX_COUNTER: Final = 2**63 - 1
"""The largest integer a decoder accepts by default (a signed 64-bit counter)."""

DEFAULT_MAX_BYTES: Final = 16 * 2**20
"""Default cap on an encoded message given to [`loads`][dynamo_core.codec.loads] (16 MiB)."""

DEFAULT_MAX_ITEMS: Final = 1_000_000
"""Default cap on the length of a decoded list."""

DEFAULT_MAX_STR: Final = 1024
"""Default cap, in characters, on a decoded string (node ids, kinds)."""

_TYPE_NAMES: Final = {
    type(None): "null",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
}


def _describe(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


# -- bytes on the wire -------------------------------------------------------------------------


_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _make_fast_encoder() -> Callable[[JSONValue], str] | None:
    """The C encoder of `_ENCODER`, built once instead of on every call, without cycle markers.

    `json.dumps` builds a new C encoder (and a marker dict) per call: two thirds of the cost of a
    small message. Without markers a circular value overflows the C stack guard (`RecursionError`),
    which `dumps` reports as the same `ValueError`. `None` where `json` has no C accelerator.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    basestring = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or basestring is None:
        return None
    encoder = make(None, _ENCODER.default, basestring, None, ":", ",", True, False, False)

    def encode(value: JSONValue) -> str:
        chunks: tuple[str, ...] = encoder(value, 0)
        return "".join(chunks)

    return encode


_FAST_ENCODE: Final = _make_fast_encoder()


def dumps(value: JSONValue) -> bytes:
    """Encode a JSON-safe value as canonical UTF-8 JSON.

    Keys are sorted and no whitespace is emitted, so equal values give equal bytes.

    Returns:
        The encoded bytes.

    Raises:
        TypeError: `value` holds something JSON cannot encode.
        ValueError: `value` holds a NaN or infinite float, a circular reference, or is nested too
            deeply to encode.
    """
    if _FAST_ENCODE is None:  # pragma: no cover - CPython always has the C encoder
        return _ENCODER.encode(value).encode("utf-8")
    try:
        return _FAST_ENCODE(value).encode("utf-8")
    except RecursionError:
        raise ValueError("value holds a circular reference or is nested too deeply") from None


def _reject_constant(name: str) -> float:
    raise DecodeError(f"JSON constant {name} is not allowed: numbers must be finite")


def _unique_object(pairs: list[tuple[str, JSONValue]]) -> dict[str, JSONValue]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise DecodeError("JSON object has a duplicate key")
    return obj


# Built once: json.loads with hooks would construct a new decoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_unique_object)
_SCAN: Final[Callable[[str, int], tuple[JSONValue, int]]] = _DECODER.scan_once  # type: ignore[attr-defined]


def loads(
    data: bytes | bytearray | memoryview | str, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> JSONValue:
    """Decode JSON produced by [`dumps`][dynamo_core.codec.dumps] (or any strict JSON).

    Cost: O(len(data)); the size cap is checked before any parsing.

    Args:
        data: UTF-8 encoded JSON.
        max_bytes: The largest input accepted.

    Returns:
        The decoded value (validate it with a type's `from_dict`).

    Raises:
        TypeError: `data` is not bytes-like or `str`.
        DecodeError: `data` is over `max_bytes`, not UTF-8, not JSON, nested too deeply, has a
            duplicate object key, or holds NaN, Infinity or an integer too long to parse.
    """
    if isinstance(data, str):
        size = len(data)
    elif isinstance(data, bytes | bytearray | memoryview):
        size = memoryview(data).nbytes
    else:
        raise TypeError(f"data must be bytes or str, not {type(data).__name__}")
    if size > max_bytes:
        raise DecodeError(f"encoded message is {size} bytes; the limit is {max_bytes}")
    try:
        text = data if isinstance(data, str) else str(data, "utf-8")
        try:  # what dumps wrote (no surrounding whitespace): the scanner alone, no regexes
            value, end = _SCAN(text, 0)
        except StopIteration:
            end = -1
        if end != len(text):  # whitespace around the value, or an error to report
            value = _DECODER.decode(text)
    except DecodeError:
        raise
    except UnicodeDecodeError as exc:
        raise DecodeError(f"encoded message is not valid UTF-8: {exc.reason}") from None
    except RecursionError:
        raise DecodeError("encoded message is nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError and the int-digits limit
        raise DecodeError(f"encoded message is not valid JSON: {exc}") from None
    return value


def canonical_text(data: object, max_bytes: int) -> str | None:
    """The text of `data` for a fast reader of the canonical form, or `None` to take `loads`.

    `None` unless `data` is `bytes` of at most `max_bytes` that decode as UTF-8: every other
    case goes through [`loads`][dynamo_core.codec.loads], which names what is wrong.
    """
    if type(data) is not bytes or len(data) > max_bytes:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def encode_bytes(data: bytes) -> str:
    """Encode bytes for a JSON field (standard base64 with padding)."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


# -- field decoders ----------------------------------------------------------------------------


def as_int(value: object, what: str, *, lo: int = 0, hi: int = MAX_COUNTER) -> int:
    """Return `value` if it is an integer (not a boolean) in ``lo .. hi``.

    Raises:
        DecodeError: naming `what`, otherwise.
    """
    if type(value) is not int:
        raise DecodeError(f"{what} must be an integer, not {_describe(value)}")
    if not lo <= value <= hi:
        raise DecodeError(f"{what} must be in {lo}..{hi}, got {value}")
    return value


def as_float(value: object, what: str, *, lo: float = -math.inf, hi: float = math.inf) -> float:
    """Return `value` as a float if it is a finite number (not a boolean) in ``lo .. hi``.

    Raises:
        DecodeError: naming `what`, otherwise.
    """
    if type(value) is not float and type(value) is not int:
        raise DecodeError(f"{what} must be a number, not {_describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise DecodeError(f"{what} is too large for a float") from None
    if not math.isfinite(number) or not lo <= number <= hi:
        raise DecodeError(f"{what} must be a finite number in {lo}..{hi}, got {value}")
    return number


def as_bool(value: object, what: str) -> bool:
    """Return `value` if it is a boolean.

    Raises:
        DecodeError: naming `what`, otherwise.
    """
    if type(value) is not bool:
        raise DecodeError(f"{what} must be a boolean, not {_describe(value)}")
    return value


def as_str(value: object, what: str, *, max_len: int = DEFAULT_MAX_STR, min_len: int = 1) -> str:
    """Return `value` if it is a string of ``min_len .. max_len`` characters, valid UTF-8.

    A lone surrogate (U+D800 to U+DFFF alone, which JSON escapes can carry) is refused here, so no
    decoded string fails later when it is hashed, stored or sent.

    Raises:
        DecodeError: naming `what`, otherwise.
    """
    if type(value) is not str:
        raise DecodeError(f"{what} must be a string, not {_describe(value)}")
    if not min_len <= len(value) <= max_len:
        raise DecodeError(f"{what} must be {min_len}..{max_len} characters long, got {len(value)}")
    error = utf8_error(value)
    if error is not None:
        raise DecodeError(f"{what} {error}")
    return value


def as_bytes(value: object, what: str, *, max_len: int) -> bytes:
    """Decode a base64 field made by [`encode_bytes`][dynamo_core.codec.encode_bytes].

    The encoded length is checked against `max_len` before anything is decoded.

    Raises:
        DecodeError: naming `what`, if `value` is not a string of strict base64 or decodes to
            more than `max_len` bytes.
    """
    if type(value) is not str:
        raise DecodeError(f"{what} must be a base64 string, not {_describe(value)}")
    if len(value) > 4 * ((max_len + 2) // 3):
        raise DecodeError(f"{what} is longer than the {max_len}-byte limit")
    try:  # strict: what base64.b64decode(validate=True) accepts, without its regex
        data = binascii.a2b_base64(value, strict_mode=True)
    except ValueError:  # binascii.Error, and a non-ASCII string
        raise DecodeError(f"{what} is not valid base64") from None
    if len(data) > max_len:
        raise DecodeError(f"{what} is {len(data)} bytes; the limit is {max_len}")
    return data


def as_list(value: object, what: str, *, max_items: int = DEFAULT_MAX_ITEMS) -> list[object]:
    """Return `value` if it is a list of at most `max_items` items.

    Raises:
        DecodeError: naming `what`, otherwise.
    """
    if type(value) is not list:
        raise DecodeError(f"{what} must be a list, not {_describe(value)}")
    if len(value) > max_items:
        raise DecodeError(f"{what} has {len(value)} items; the limit is {max_items}")
    return value


def fields(
    value: object,
    what: str,
    *,
    required: Collection[str],
    optional: Collection[str] = (),
) -> dict[str, object]:
    """Check that `value` is an object with exactly the given fields.

    Args:
        value: The decoded JSON value.
        what: The name used in error messages.
        required: Fields that must be present.
        optional: Fields that may be present.

    Returns:
        `value`, typed as a dict.

    Raises:
        DecodeError: `value` is not an object, misses a required field or has an unknown one.
    """
    if type(value) is not dict:
        raise DecodeError(f"{what} must be an object, not {_describe(value)}")
    obj: dict[str, object] = value
    missing = [name for name in required if name not in obj]
    if missing:
        raise DecodeError(f"{what} is missing field(s): {', '.join(sorted(missing))}")
    unknown = [k for k in obj if k not in required and k not in optional]
    if unknown:
        shown = sorted(repr(k)[:64] for k in unknown[:8])
        raise DecodeError(f"{what} has unknown field(s): {', '.join(shown)}")
    return obj


# -- envelopes ---------------------------------------------------------------------------------


def envelope(kind: str, body: Mapping[str, JSONValue]) -> dict[str, JSONValue]:
    """Wrap the fields of an encoded value with its kind and the format version.

    Returns:
        ``{"type": kind, "v": FORMAT_VERSION, **body}``.
    """
    out: dict[str, JSONValue] = {"type": kind, "v": FORMAT_VERSION}
    out.update(body)
    return out


def open_envelope(
    value: object,
    kind: str,
    *,
    required: Collection[str] = (),
    optional: Collection[str] = (),
) -> dict[str, object]:
    """Check an envelope made by [`envelope`][dynamo_core.codec.envelope] and its fields.

    Args:
        value: The decoded JSON value.
        kind: The expected ``type``.
        required: Body fields that must be present.
        optional: Body fields that may be present.

    Returns:
        The envelope as a dict, ready for the field decoders.

    Raises:
        DecodeError: `value` is not an envelope of `kind`, has an unsupported version, or its
            fields do not match.
    """
    if type(value) is dict and value.get("type") == kind:
        # Fast path: exactly the fields asked for and a known version; anything else goes
        # through the checks below, which accept the same envelopes and name what is wrong.
        version = value.get("v")
        extra = len(value) - 2 - len(required)
        if (
            type(version) is int
            and 1 <= version <= FORMAT_VERSION
            and all(map(value.__contains__, required))
            and (extra == 0 or (extra > 0 and extra == sum(map(value.__contains__, optional))))
        ):
            return value
    obj = fields(value, kind, required=("type", "v", *required), optional=optional)
    if obj["type"] != kind:
        got = obj["type"]
        shown = repr(got[:64]) if isinstance(got, str) else _describe(got)
        raise DecodeError(f"expected an encoded {kind}, got type {shown}")
    as_int(obj["v"], f"{kind}.v", lo=1, hi=FORMAT_VERSION)
    return obj


def decode_by_type(value: object, decoders: Mapping[str, Callable[[object], _T]], what: str) -> _T:
    """Decode an envelope with the decoder its ``type`` names in `decoders`.

    The dispatch of every union decoder (node messages, exchange messages, client requests).

    Args:
        value: The decoded JSON value.
        decoders: Decoder by envelope ``type``.
        what: What the union is called, for the error message ("node message").

    Returns:
        What the decoder returned.

    Raises:
        DecodeError: `value` is not an object, its ``type`` is not in `decoders`, or the
            decoder refused it.
    """
    if type(value) is not dict:
        raise DecodeError(f"a {what} must be an object")
    kind = value.get("type")
    decoder = decoders.get(kind) if type(kind) is str else None
    if decoder is None:
        shown = repr(kind[:64]) if type(kind) is str else type(kind).__name__
        raise DecodeError(f"not a {what} type: {shown}")
    return decoder(value)
