"""Lazy public names for a package's `__init__`: each loads its defining module on first use.

A package keeps a table of ``name -> module`` and two two-line functions::

    def __getattr__(name: str) -> Any:
        return _lazy.load(__name__, _SOURCES, name)

    def __dir__() -> list[str]:
        return _lazy.names(__name__, __all__)

so ``import package`` stays cheap and ``from package import Name`` loads only Name's module.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Mapping
from typing import Any


def load(package: str, sources: Mapping[str, str], name: str) -> Any:
    """Import `name` from its module (``sources[name]``) and cache it on `package`.

    Raises:
        AttributeError: `name` is not one of the package's lazy names.
    """
    source = sources.get(name)
    if source is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
    return value


def names(package: str, public: Iterable[str]) -> list[str]:
    """What `dir(package)` shows: what it holds now plus every public name."""
    return sorted({*vars(sys.modules[package]), *public})
