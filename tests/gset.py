"""A test-only replica state shared by the hint tests: a grow-only set of strings."""

from __future__ import annotations

from typing import Any, Self

import attrs

from dynamo_core import codec


@attrs.frozen
class GSet:
    """The simplest lawful ReplicaState: sync is union, descends is superset."""

    items: frozenset[str] = frozenset()

    def sync(self, other: GSet) -> GSet:
        return GSet(self.items | other.items)

    def descends(self, other: GSet) -> bool:
        return self.items >= other.items

    def to_dict(self) -> dict[str, Any]:
        items: list[codec.JSONValue] = [*sorted(self.items)]
        return codec.envelope("gset", {"items": items})

    @classmethod
    def from_dict(cls, data: object) -> Self:
        obj = codec.open_envelope(data, "gset", required=("items",))
        items = codec.as_list(obj["items"], "gset.items", max_items=10_000)
        return cls(frozenset(codec.as_str(x, "gset.items[]", min_len=0) for x in items))


def gs(*items: str) -> GSet:
    return GSet(frozenset(items))
