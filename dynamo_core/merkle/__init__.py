"""Merkle trees for anti-entropy: incremental tictac trees, exact diffs and a frugal exchange.

Replicas drift — a hint is dropped, a write half-lands, a disk is replaced — and must find the few
keys that differ without shipping everything. Dynamo keeps one Merkle tree per key range and
compares trees top-down; this package provides the tree and the comparison protocol, in three
modules: `tree` (the tree), `wire` (the exchange messages and their codec) and `exchange` (the
sans-I/O exchange and an in-process driver). Every public name is importable from here.

* [`MerkleTree`][dynamo_core.merkle.MerkleTree] covers one token range split into ``2**depth``
  *segments*. Each leaf is the XOR of the strong per-item digests of the keys in its segment (a
  *tictac* leaf, as in Riak), so a write updates its leaf in O(1) with no rescan, in any order,
  and trees over disjoint data merge by XOR. Inner nodes are BLAKE2b-128 hashes, domain-separated
  from leaves and bound to their height; the root binds the tree's depth, range and token
  function, so trees of different shape never compare equal.
* [`item_digest`][dynamo_core.merkle.item_digest] computes the per-item digest once per write
  (BLAKE2b-128 over the length-prefixed key and the value bytes); the tree only XORs it.
* [`MerkleTree.diff`][dynamo_core.merkle.MerkleTree.diff] returns the maximal differing token
  ranges, exact at segment granularity.
* [`MerkleExchange`][dynamo_core.merkle.MerkleExchange] is a sans-I/O protocol between two
  replicas: it descends several levels per round trip into differing subtrees only, then fetches
  the ``(key, digest)`` lists of the differing segments and reports the keys that are missing on
  either side or different.
* [`depth_for`][dynamo_core.merkle.depth_for] chooses a tree's depth from its key count, as
  Cassandra does: a node with 1,000 ranges and 1M keys keeps its trees under 20 MiB (36 MiB at
  worst), within a 64 MiB budget.

Hash layout (all BLAKE2b with a 16-byte digest and a library personalization):

```text
item digest   = BLAKE2b-128(person="dynamo-core/item", len(key) as 8 bytes BE || key || value)
leaf (h = 0)  = XOR of the item digests of the segment's keys   (16 zero bytes when empty)
node (h >= 1) = BLAKE2b-128(person="dynamo-core/tree", 0x01 || h || left || right)
root          = BLAKE2b-128(person="dynamo-core/tree", 0x02 || format || depth || start
                            || end - 1 || token-function fingerprint || top node)
```
"""

from __future__ import annotations

from dynamo_core._check import MAX_KEY_BYTES
from dynamo_core.merkle.exchange import (
    Done,
    Effect,
    ExchangeReport,
    ExchangeRole,
    ExchangeState,
    Failed,
    ItemSource,
    LoadItems,
    MerkleExchange,
    Send,
    run_exchange,
)
from dynamo_core.merkle.tree import (
    DEFAULT_DEPTH,
    DIGEST_SIZE,
    MAX_DEPTH,
    MAX_LEVELS_PER_ROUND,
    MerkleTree,
    depth_for,
    item_digest,
    tree_memory,
)
from dynamo_core.merkle.wire import (
    Abort,
    Close,
    GetItems,
    GetNodes,
    Hello,
    InSync,
    Items,
    Message,
    Nodes,
    UseDepth,
    decode_message,
    encode_message,
    message_from_dict,
)

__all__ = [
    "DEFAULT_DEPTH",
    "DIGEST_SIZE",
    "MAX_DEPTH",
    "MAX_KEY_BYTES",
    "MAX_LEVELS_PER_ROUND",
    "Abort",
    "Close",
    "Done",
    "Effect",
    "ExchangeReport",
    "ExchangeRole",
    "ExchangeState",
    "Failed",
    "GetItems",
    "GetNodes",
    "Hello",
    "InSync",
    "ItemSource",
    "Items",
    "LoadItems",
    "MerkleExchange",
    "MerkleTree",
    "Message",
    "Nodes",
    "Send",
    "UseDepth",
    "decode_message",
    "depth_for",
    "encode_message",
    "item_digest",
    "message_from_dict",
    "run_exchange",
    "tree_memory",
]
