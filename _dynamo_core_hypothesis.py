"""Hypothesis's entry point for dynamo_core: registers the strategies for ``st.from_type``, lazily.

Hypothesis imports this module on every ``import hypothesis`` in an environment where
dynamo-core is installed, so it must cost nearly nothing. It lives outside the package, so
importing it imports no ``dynamo_core`` module, and it registers each type only once the module
that defines it is imported (at once for those already imported). What it registers is a
function that loads the strategy from `dynamo_core.testing.strategies` when ``st.from_type`` first
resolves the type.

PYTEST_DONT_REWRITE: hypothesis imports it before pytest could rewrite it (it asserts nothing).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

__all__: list[str] = []

# The types with a registered strategy, by defining module. A test keeps it in step with
# dynamo_core.testing.strategies.register_type_strategies.
TYPES: dict[str, tuple[str, ...]] = {
    "dynamo_core.dvv": ("DVVSet",),
    "dynamo_core.hashing": ("TokenRange",),
    "dynamo_core.hints.wire": ("Hint", "HintAck"),
    "dynamo_core.membership": ("Change", "GossipDigest", "GossipUpdate", "VersionRecord"),
    "dynamo_core.merkle.tree": ("MerkleTree",),
    "dynamo_core.messages.anti_entropy": (
        "ExchangeMessage",
        "RepairPull",
        "RepairPush",
        "SyncDiff",
        "SyncOffer",
    ),
    "dynamo_core.messages.replication": (
        "FetchReply",
        "FetchRequest",
        "Forward",
        "ForwardReply",
        "Heartbeat",
        "ReadRepair",
        "StoreReply",
        "StoreRequest",
    ),
    "dynamo_core.messages.results": ("GetReply", "PutReply", "RequestFailed"),
    "dynamo_core.quorum.policy": ("QuorumPolicy",),
    "dynamo_core.ring.hashring": ("HashRing",),
    "dynamo_core.streaming": ("StreamBatch", "StreamPull"),
    "dynamo_core.testing.faults": ("FaultPlan",),
    "dynamo_core.vclock": ("VectorClock", "Versioned"),
}

_lock = threading.Lock()


def _resolve(thing: Any) -> Any:
    """The strategy for `thing`, loaded on first use (``st.from_type`` calls this)."""
    from dynamo_core.testing.strategies import strategy_for_type  # noqa: PLC0415

    return strategy_for_type(thing)


def _register(module: ModuleType) -> None:
    from hypothesis import strategies as st  # noqa: PLC0415  # hypothesis is loaded by now

    for name in TYPES[module.__name__]:
        kind = getattr(
            module, name, None
        )  # never break the user's import (a test keeps TYPES whole)
        if isinstance(kind, type):
            st.register_type_strategy(kind, _resolve)


class _RegisteringLoader(importlib.abc.Loader):
    """Runs the real loader, then registers the module's types."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        _register(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_resource_reader, ...
        return getattr(self._inner, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Wraps the loaders of the modules in `TYPES`; finds nothing itself."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in TYPES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec: importlib.machinery.ModuleSpec | None = finder.find_spec(fullname, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _RegisteringLoader(spec.loader)
            return spec
        return None


# An installed dynamo_core's lines: never the explanation of a user's failing test.
UNHELPFUL = ("/site-packages/dynamo_core/**", "/dist-packages/dynamo_core/**")


def _quiet_explanations() -> None:
    """Keep hypothesis's explain phase from blaming an installed dynamo_core's lines.

    The explain phase reports the lines that only failing examples ran. In a library those are
    symptoms, not causes: the ``return False`` of an ``__eq__`` the test's assertion called, the
    ``__repr__`` its message called, the ``raise`` of a conformance check. Hypothesis has no
    public setting for this, so its list of unhelpful locations is extended when it has one; a
    working copy of dynamo_core (outside site-packages) is still explained.
    """
    try:
        from hypothesis.internal import scrutineer  # noqa: PLC0415
    except ImportError:  # pragma: no cover - a hypothesis without the explain phase
        return
    current = getattr(scrutineer, "UNHELPFUL_LOCATIONS", None)
    if isinstance(current, tuple) and not set(UNHELPFUL) <= set(current):
        scrutineer.UNHELPFUL_LOCATIONS = current + UNHELPFUL


def _hypothesis_setup_hook() -> None:
    """Register dynamo_core's types now if they are imported, else when they are."""
    _quiet_explanations()
    with _lock:
        if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
            sys.meta_path.insert(0, _Finder())
    for name in sorted(TYPES):
        module = sys.modules.get(name)
        if module is not None:
            _register(module)
