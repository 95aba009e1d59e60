"""Light imports: each primitive loads a handful of modules, and the package resolves lazily.

Each check runs in a fresh interpreter (a subprocess), because this process has already
imported most of the library.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import dynamo_core

# Modules that an embedder of one primitive must never pay for.
HEAVY = ("sqlite3", "asyncio", "hypothesis", "pytest", "rich", "ssl")

# What each import loads from the library, exactly. The shared base: the package (its
# `__init__` resolves names lazily), the version, validation, errors and the codec.
BASE = {"dynamo_core", "dynamo_core._version", "dynamo_core._lazy"}
CHECKED = BASE | {"dynamo_core._check", "dynamo_core.codec", "dynamo_core.errors"}
IMPORT_SETS = {
    "dynamo_core": BASE,
    "dynamo_core.vclock": CHECKED | {"dynamo_core.vclock"},
    "dynamo_core.dvv": CHECKED | {"dynamo_core.vclock", "dynamo_core.dvv"},
    "dynamo_core.ring": CHECKED
    | {"dynamo_core.hashing", "dynamo_core._claim", "dynamo_core.ring"}
    | {
        f"dynamo_core.ring.{name}"
        for name in ("bounds", "transfers", "encoding", "invariants", "placement", "hashring")
    },
    "dynamo_core.merkle": CHECKED
    | {
        "dynamo_core.hashing",
        "dynamo_core.effects",
        "dynamo_core.merkle",
        "dynamo_core.merkle.tree",
        "dynamo_core.merkle.wire",
        "dynamo_core.merkle.exchange",
    },
    "dynamo_core.quorum": CHECKED
    | {"dynamo_core.interfaces", "dynamo_core.effects", "dynamo_core.quorum"}
    | {f"dynamo_core.quorum.{name}" for name in ("policy", "messages", "coordinators")},
    # the synchronous driver: no asyncio
    "dynamo_core.drive": BASE
    | {"dynamo_core.errors", "dynamo_core.interfaces", "dynamo_core.effects", "dynamo_core.drive"},
}


def loaded_by(statement: str) -> set[str]:
    code = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        f"{statement}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return set(json.loads(result.stdout))


@pytest.mark.parametrize("module", sorted(IMPORT_SETS))
def test_a_primitive_loads_only_its_own_modules(module: str) -> None:
    loaded = loaded_by(f"import {module}")
    ours = {name for name in loaded if name.split(".")[0] == "dynamo_core"}
    assert ours == IMPORT_SETS[module]
    assert not [name for name in loaded if name.split(".")[0] in HEAVY]


def test_a_name_from_the_package_loads_only_its_module() -> None:
    loaded = loaded_by("from dynamo_core import VectorClock")
    assert {n for n in loaded if n.startswith("dynamo_core")} == IMPORT_SETS["dynamo_core.vclock"]


def test_the_simulation_and_checker_need_neither_pytest_nor_hypothesis() -> None:
    loaded = loaded_by(
        "from dynamo_core.testing import Simulation, SetHistory, QuorumHarness, FakeClock\n"
        "import dynamo_core.cli"
    )
    assert not [n for n in loaded if n.split(".")[0] in ("pytest", "_pytest", "hypothesis")]
    assert "dynamo_core.testing.storage" not in loaded


def test_the_conformance_suite_still_resolves_through_the_package() -> None:
    loaded = loaded_by("from dynamo_core.testing import StorageConformance")
    assert {"dynamo_core.testing.storage", "pytest", "hypothesis"} <= loaded


def test_every_public_name_resolves_and_is_listed() -> None:
    assert set(dynamo_core._SOURCES) == set(dynamo_core.__all__) - {"__version__"}
    for name in dynamo_core.__all__:
        value = getattr(dynamo_core, name)
        module = dynamo_core._SOURCES.get(name)
        if module is not None and isinstance(value, type):
            assert value.__module__.startswith(module), name
    assert set(dynamo_core.__all__) <= set(dir(dynamo_core))


def test_unknown_names_raise_attribute_error() -> None:
    import dynamo_core.testing

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = dynamo_core.Nope
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = dynamo_core.testing.Nope
    assert not hasattr(dynamo_core, "Nope")
    assert set(dynamo_core.testing.__all__) <= set(dir(dynamo_core.testing))
    assert set(dynamo_core.testing._SOURCES) == set(dynamo_core.testing.__all__)
    for name in dynamo_core.testing.__all__:
        assert getattr(dynamo_core.testing, name) is not None, name
