"""A history checker for set workloads (Jepsen's *set-full* model, as used on Riak).

Clients add unique elements to sets (shopping carts) and record each add as it is *invoked* and,
if the store acknowledged it, as *ok*; a failed or timed-out add stays unacknowledged. After the
faults stop and replicas converge, the final contents of every set are read. The checker then
classifies every element:

* **lost** — acknowledged, but absent from the final read. Any lost element is a violation of
  durability: the store said yes and then forgot.
* **recovered** — not acknowledged (failed or unknown) but present. Legal: a write that timed out
  at the client may still have reached enough replicas.
* **unexpected** — present but never attempted (a resurrected or corrupted value). A violation.

So the final set must lie between *what must be there* (the acknowledged adds) and *what may be
there* (every attempted add).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Generic, TypeVar

import attrs

__all__ = ["SetCheck", "SetHistory"]

K = TypeVar("K", bound=Hashable)
E = TypeVar("E", bound=Hashable)


@attrs.frozen
class SetCheck(Generic[K, E]):
    """The verdict of [`SetHistory.check`][dynamo_core.testing.SetHistory.check].

    Element lists are sorted by ``(repr(key), repr(element))``, so the verdict is deterministic.
    """

    attempted: int
    acknowledged: int
    lost: tuple[tuple[K, E], ...]
    recovered: tuple[tuple[K, E], ...]
    unexpected: tuple[tuple[K, E], ...]

    @property
    def ok(self) -> bool:
        """True when nothing acknowledged was lost and nothing unexpected appeared."""
        return not self.lost and not self.unexpected

    def summary(self) -> dict[str, int]:
        """Counts only: attempted, acknowledged, lost, recovered, unexpected."""
        return {
            "attempted": self.attempted,
            "acknowledged": self.acknowledged,
            "lost": len(self.lost),
            "recovered": len(self.recovered),
            "unexpected": len(self.unexpected),
        }


def _order(pair: tuple[Hashable, Hashable]) -> tuple[str, str]:
    return repr(pair[0]), repr(pair[1])


class SetHistory(Generic[K, E]):
    """Records adds to sets and checks a final read against them.

    Examples:
        >>> history = SetHistory()
        >>> op = history.invoke("cart", "apple")
        >>> history.ok(op)
        >>> _ = history.invoke("cart", "pear")  # timed out: never acknowledged
        >>> history.check({"cart": {"pear"}}).summary()
        {'attempted': 2, 'acknowledged': 1, 'lost': 1, 'recovered': 1, 'unexpected': 0}
    """

    __slots__ = ("_acked", "_ops")

    def __init__(self) -> None:
        self._ops: list[tuple[K, E]] = []
        self._acked: set[int] = set()

    def invoke(self, key: K, element: E) -> int:
        """Record that a client is about to add `element` to set `key`; return the op id.

        Elements should be unique per set (a client id and a counter), so that a present element
        says which add put it there.
        """
        self._ops.append((key, element))
        return len(self._ops) - 1

    def ok(self, op: int) -> None:
        """Record that the store acknowledged op `op`.

        Raises:
            ValueError: `op` is not an id returned by `invoke`.
        """
        if not 0 <= op < len(self._ops):
            raise ValueError(f"op must be an id returned by invoke(), got {op}")
        self._acked.add(op)

    @property
    def acknowledged(self) -> int:
        """How many adds were acknowledged so far."""
        return len(self._acked)

    def must_contain(self) -> dict[K, set[E]]:
        """The acknowledged elements of every set."""
        out: dict[K, set[E]] = {}
        for op in self._acked:
            key, element = self._ops[op]
            out.setdefault(key, set()).add(element)
        return out

    def check(self, final: Mapping[K, Iterable[E]]) -> SetCheck[K, E]:
        """Classify every element against the final contents of the sets.

        Args:
            final: The converged contents of every set that was written (a missing key reads as
                empty).

        Returns:
            The verdict: lost, recovered and unexpected elements.
        """
        final_sets = {key: set(elements) for key, elements in final.items()}
        attempted: dict[tuple[K, E], bool] = {}
        for op, pair in enumerate(self._ops):
            attempted[pair] = attempted.get(pair, False) or op in self._acked
        lost, recovered = [], []
        for (key, element), acked in attempted.items():
            present = element in final_sets.get(key, ())
            if acked and not present:
                lost.append((key, element))
            elif present and not acked:
                recovered.append((key, element))
        unexpected = [
            (key, element)
            for key, elements in final_sets.items()
            for element in elements
            if (key, element) not in attempted
        ]
        return SetCheck(
            attempted=len(attempted),
            acknowledged=sum(attempted.values()),
            lost=tuple(sorted(lost, key=_order)),
            recovered=tuple(sorted(recovered, key=_order)),
            unexpected=tuple(sorted(unexpected, key=_order)),
        )
