"""Effects shared by every protocol core.

The sans-I/O cores (quorum coordinators, Merkle exchange, hinted handoff, the node) return the
effects of each input as frozen values, and a driver carries them out. Effects that mean the same
thing in every core live here, so a driver's `match` handles them once.
"""

from __future__ import annotations

import attrs

__all__ = ["SetTimer"]


@attrs.frozen
class SetTimer:
    """Effect: call the core's ``on_timer(now)`` once the clock reaches `at`.

    It replaces any earlier timer of the same core, and the same time is always available from
    the core's ``deadline()``, so a driver may also ignore this effect and poll ``deadline()``.
    """

    at: float
