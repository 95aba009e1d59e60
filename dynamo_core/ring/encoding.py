"""The ring's wire form: a ring's fields as a JSON-safe envelope, and every check of decoding."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from dynamo_core import codec
from dynamo_core._check import MAX_NODE_ID_LEN
from dynamo_core._claim import shares
from dynamo_core.errors import DecodeError
from dynamo_core.hashing import token_function
from dynamo_core.ring.bounds import (
    MAX_DECODED_TOKENS,
    MAX_NODE_TOKENS,
    MAX_NODES,
    MAX_PARTITIONS,
    MAX_REPLICAS,
    MAX_VNODES,
    _key_id,
    _token_count,
)

__all__ = ["Decoded", "decode", "encode"]


def encode(
    *,
    replicas: int,
    partitions: int | None,
    vnodes: int | None,
    key_id: str | None,
    weights: Mapping[str, float],
    zones: Mapping[str, str | None],
    owners: Sequence[str],
) -> dict[str, codec.JSONValue]:
    """The envelope of type ``"hash_ring"`` (see `HashRing.to_dict` for its fields)."""
    names = sorted(weights)
    nodes: list[codec.JSONValue] = []
    for name in names:
        entry: dict[str, codec.JSONValue] = {"id": name, "weight": weights[name]}
        if zones[name] is not None:
            entry["zone"] = zones[name]
        nodes.append(entry)
    body: dict[str, codec.JSONValue] = {"replicas": replicas, "nodes": nodes}
    if key_id is None:
        body["hash"] = "murmur3"
    else:
        body["hash"] = "blake2b-keyed"
        body["key_id"] = key_id
    if partitions is not None:
        body["partitions"] = partitions
        index = {name: i for i, name in enumerate(names)}
        body["owners"] = [index[owner] for owner in owners] if names else []
    else:
        body["vnodes"] = vnodes
    return codec.envelope("hash_ring", body)


@attrs.frozen
class Decoded:
    """A decoded ring's fields, every one checked: what `HashRing.from_dict` builds a ring of.

    Exactly one of `partitions` and `vnodes` is set; `owners` (one node per partition, or empty
    when there are no nodes) only with `partitions`.
    """

    replicas: int
    partitions: int | None
    vnodes: int | None
    names: list[str]
    weights: list[float]
    zones: list[str | None]
    owners: list[str]


def decode(data: object, hash_key: bytes | None) -> Decoded:
    """Check and decode what `encode` produced (see `HashRing.from_dict`).

    Raises:
        dynamo_core.errors.DecodeError: `data` is malformed, over a cap, inconsistent, or was
            encoded with a different (or no) `hash_key`.
    """
    obj = codec.open_envelope(
        data,
        "hash_ring",
        required=("replicas", "nodes", "hash"),
        optional=("partitions", "vnodes", "owners", "key_id"),
    )
    replicas = codec.as_int(obj["replicas"], "hash_ring.replicas", lo=1, hi=MAX_REPLICAS)
    _check_hash(obj, hash_key)
    has_partitions = "partitions" in obj
    if has_partitions == ("vnodes" in obj):
        raise DecodeError("hash_ring must have exactly one of the fields partitions, vnodes")
    if has_partitions != ("owners" in obj):
        raise DecodeError("hash_ring.owners goes with partitions, and only with it")
    partitions = vnodes = None
    if has_partitions:
        partitions = codec.as_int(
            obj["partitions"], "hash_ring.partitions", lo=1, hi=MAX_PARTITIONS
        )
        if partitions & (partitions - 1):
            raise DecodeError("hash_ring.partitions must be a power of two")
    else:
        vnodes = codec.as_int(obj["vnodes"], "hash_ring.vnodes", lo=1, hi=MAX_VNODES)
    names, weights, zones = _decode_nodes(obj["nodes"])
    if vnodes is not None:
        _check_token_counts([_token_count(vnodes, w) for w in weights], names)
        return Decoded(replicas, None, vnodes, names, weights, zones, [])
    owners = _decode_owners(obj["owners"], names, partitions or 0)
    if owners:
        targets = shares(len(owners), dict(zip(names, weights, strict=True)))
        counts = dict.fromkeys(names, 0)
        for owner in owners:
            counts[owner] += 1
        for name in names:
            if not targets[name].floor <= counts[name] <= targets[name].ceil:
                raise DecodeError(
                    f"hash_ring.owners gives {name!r} {counts[name]} partitions; its share is "
                    f"{targets[name].floor}..{targets[name].ceil}"
                )
    return Decoded(replicas, partitions, None, names, weights, zones, owners)


def _check_hash(obj: Mapping[str, object], hash_key: bytes | None) -> None:
    kind = obj["hash"]
    if kind == "murmur3":
        if "key_id" in obj:
            raise DecodeError("hash_ring.key_id is only allowed with a keyed hash")
        if hash_key is not None:
            raise DecodeError("the ring was encoded without a hash_key, but one was given")
        return
    if kind != "blake2b-keyed":
        raise DecodeError("hash_ring.hash must be 'murmur3' or 'blake2b-keyed'")
    if "key_id" not in obj:
        raise DecodeError("hash_ring is missing field(s): key_id")
    key_id = codec.as_str(obj["key_id"], "hash_ring.key_id", max_len=16)
    if hash_key is None:
        raise DecodeError("the ring was encoded with a keyed hash: pass its hash_key")
    try:
        token_function(hash_key)
        expected = _key_id(hash_key)
    except (TypeError, ValueError):
        raise DecodeError("hash_key must be bytes, 16..64 long") from None
    if key_id != expected:
        raise DecodeError("hash_key is not the secret the ring was encoded with")


def _decode_owners(value: object, names: Sequence[str], partitions: int) -> list[str]:
    raw = codec.as_list(value, "hash_ring.owners", max_items=MAX_PARTITIONS)
    if not names:
        if raw:
            raise DecodeError("hash_ring.owners must be empty when there are no nodes")
        return []
    if len(raw) != partitions:
        raise DecodeError(f"hash_ring.owners must have {partitions} entries, got {len(raw)}")
    last = len(names) - 1
    owners: list[str] = []
    for i, item in enumerate(raw):
        if type(item) is not int or not 0 <= item <= last:
            raise DecodeError(f"hash_ring.owners[{i}] must be an integer in 0..{last}")
        owners.append(names[item])
    return owners


def _check_token_counts(counts: Sequence[int], names: Sequence[str]) -> None:
    """Refuse a decoded strategy-1 ring with too many tokens, before any is placed."""
    for name, count in zip(names, counts, strict=True):
        if count > MAX_NODE_TOKENS:
            raise DecodeError(f"hash_ring.nodes: {name!r} has too many tokens")
    total = sum(counts)
    if total > MAX_DECODED_TOKENS:
        raise DecodeError(f"hash_ring has {total} tokens in all; the limit is {MAX_DECODED_TOKENS}")


def _decode_nodes(value: object) -> tuple[list[str], list[float], list[str | None]]:
    items = codec.as_list(value, "hash_ring.nodes", max_items=MAX_NODES)
    names: list[str] = []
    weights: list[float] = []
    zones: list[str | None] = []
    for i, item in enumerate(items):
        what = f"hash_ring.nodes[{i}]"
        obj = codec.fields(item, what, required=("id", "weight"), optional=("zone",))
        name = codec.as_str(obj["id"], f"{what}.id", max_len=MAX_NODE_ID_LEN)
        weight = codec.as_float(obj["weight"], f"{what}.weight", lo=0.0)
        if not weight > 0:
            raise DecodeError(f"{what}.weight must be > 0")
        zone = None
        if "zone" in obj:
            zone = codec.as_str(obj["zone"], f"{what}.zone", max_len=MAX_NODE_ID_LEN)
        if names and name <= names[-1]:
            raise DecodeError(f"{what}.id must sort after the previous id (sorted, no duplicates)")
        names.append(name)
        weights.append(weight)
        zones.append(zone)
    return names, weights, zones
