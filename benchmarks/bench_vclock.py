"""Vector clocks: VectorClock beside the `vectorclock` package and a bare-dict floor.

Clocks of 3 and 50 entries. `a` and `b` share a base history and each has one more write at a
different node, so they are concurrent (the case where `compare` cannot stop early and `merge`
changes something).

* **vectorclock** (PyPI) has no merge or increment: the user code a user would write is timed
  (a dict comprehension of maxima over the union of keys; copy, `get_clock`, `set_clock`). Its
  `compare(other, False)` returns 0 for both "equal" and "concurrent". Its only codec is a JSON
  string (`str()` / `VectorClock.from_string`).
* **dict floor**: the same work on a bare ``dict[str, int]`` inlined in one function, with no
  timestamps, no validation and no object to build: the one-pass comparison, the max-merge, a copy
  with one counter bumped, and for the codec a ``{"type", "v", "entries"}`` envelope around a
  copy of the dict, decoded with the envelope check and a per-entry type and range check.
* **ours**: `VectorClock` with timestamps; the codec row is ``from_dict(to_dict())`` (the codec
  form, a JSON-safe dict); the *bytes* row adds ``codec.dumps`` / ``codec.loads`` and is shown
  beside the package's JSON string round trip.
"""

from __future__ import annotations

from benchmarks.harness import Case, Group
from dynamo_core import VectorClock, codec

_MAX = 2**63 - 1


def _floor_compare(a: dict[str, int], b: dict[str, int]) -> str:
    before = after = False
    shared = 0
    for node, x in a.items():
        y = b.get(node)
        if y is None:
            after = True
            continue
        shared += 1
        if x > y:
            after = True
        elif x < y:
            before = True
    if shared < len(b):
        before = True
    if before and after:
        return "concurrent"
    if before:
        return "before"
    return "after" if after else "equal"


def _floor_merge(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    merged = a.copy()
    for node, y in b.items():
        if y > merged.get(node, 0):
            merged[node] = y
    return merged


def _floor_increment(a: dict[str, int], node: str) -> dict[str, int]:
    out = a.copy()
    out[node] = out.get(node, 0) + 1
    return out


def _floor_round_trip(a: dict[str, int]) -> dict[str, int]:
    encoded = {"type": "vclock", "v": 1, "entries": dict(a)}
    if type(encoded) is not dict or encoded.get("type") != "vclock" or encoded.get("v") != 1:
        raise ValueError("bad envelope")
    entries = encoded["entries"]
    if type(entries) is not dict:
        raise ValueError("bad entries")
    out: dict[str, int] = {}
    for node, counter in entries.items():
        if type(node) is not str or not 0 < len(node) <= 255:
            raise ValueError("bad node")
        if type(counter) is not int or not 0 < counter <= _MAX:
            raise ValueError("bad counter")
        out[node] = counter
    return out


def _groups(n: int) -> list[Group]:
    from vectorclock.vectorclock import VectorClock as PeerClock

    nodes = [f"node-{i:03d}" for i in range(n)]
    base = {node: 5 + i % 7 for i, node in enumerate(nodes)}
    stamps = {node: 1_732_000_000.0 + i for i, node in enumerate(nodes)}
    dict_a = dict(base)
    dict_a[nodes[0]] += 1
    dict_b = dict(base)
    dict_b[nodes[-1]] += 1
    ours_base = VectorClock(base, timestamps=stamps)
    ours_a = ours_base.increment(nodes[0], now=1_732_000_100.0)
    ours_b = ours_base.increment(nodes[-1], now=1_732_000_101.0)
    peer_a = PeerClock(dict_a)
    peer_b = PeerClock(dict_b)
    bump = nodes[n // 2]
    now = 1_732_000_200.0
    assert ours_a.compare(ours_b).value == _floor_compare(dict_a, dict_b) == "concurrent"
    assert dict(ours_a.merge(ours_b).items()) == _floor_merge(dict_a, dict_b)

    def peer_merge() -> object:
        a, b = peer_a.clocks, peer_b.clocks
        return PeerClock({k: max(a.get(k, 0), b.get(k, 0)) for k in a.keys() | b.keys()})

    def peer_increment() -> object:
        clock = PeerClock(peer_a.clocks)
        clock.set_clock(bump, clock.get_clock(bump, 0) + 1)
        return clock

    compared = ("vectorclock", "dict floor")
    return [
        Group(
            f"compare (concurrent), {n} entries",
            [
                Case("VectorClock.compare", lambda: ours_a.compare(ours_b)),
                Case("vectorclock", lambda: peer_a.compare(peer_b, False)),
                Case("dict floor", lambda: _floor_compare(dict_a, dict_b)),
            ],
            compare=compared,
        ),
        Group(
            f"merge, {n} entries",
            [
                Case("VectorClock.merge", lambda: ours_a.merge(ours_b)),
                Case("vectorclock", peer_merge),
                Case("dict floor", lambda: _floor_merge(dict_a, dict_b)),
            ],
            compare=compared,
        ),
        Group(
            f"increment, {n} entries",
            [
                Case("VectorClock.increment", lambda: ours_a.increment(bump, now)),
                Case("vectorclock", peer_increment),
                Case("dict floor", lambda: _floor_increment(dict_a, bump)),
            ],
            compare=compared,
        ),
        Group(
            f"codec round trip, {n} entries",
            [
                Case("to_dict/from_dict", lambda: VectorClock.from_dict(ours_a.to_dict())),
                Case(
                    "... through bytes",
                    lambda: VectorClock.from_dict(codec.loads(codec.dumps(ours_a.to_dict()))),
                ),
                Case("vectorclock", lambda: PeerClock.from_string(str(peer_a))),
                Case("dict floor", lambda: _floor_round_trip(dict_a)),
            ],
            compare=compared,
        ),
    ]


def groups(quick: bool) -> list[Group]:
    return _groups(3) + _groups(50)
