"""The import rules of the layers, read from the source with `ast` (see the architecture page).

* The primitives (every top-level module of the library that is not a runtime, a CLI or a test
  helper) never import the node, the runtimes or the test helpers.
* Inside `dynamo_core.node`: the leaves (`keyspace`, `config`, `effects`, `contexts`) import
  no other module of the package; the shared layer (`replica`, the store, and `state`, what every
  part reads) imports leaves and itself only; a part (`coordination`, `liveness`, `anti_entropy`,
  `membership`, `streams`) imports leaves and the shared layer — never `core`, never another
  part; nothing but the package's `__init__` imports `core`, and the core imports every part.
* Inside a primitive split into a package (`merkle`, `hints`, `quorum`, `ring`): each module
  imports only the modules listed before it (the tree never imports the exchange); the
  `__init__` re-exports.
* No import cycle among module-level imports anywhere in the library.
* No module of the library is over 1,200 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "dynamo_core"
NODE = "dynamo_core.node"
LEAVES = {f"{NODE}.{name}" for name in ("keyspace", "config", "effects", "contexts")}
SHARED = {f"{NODE}.{name}" for name in ("replica", "state")}
EXPECTED_PARTS = {
    f"{NODE}.{name}"
    for name in ("coordination", "liveness", "anti_entropy", "membership", "streams")
}
ABOVE = ("dynamo_core.node", "dynamo_core.aio", "dynamo_core.testing", "dynamo_core.cli")
# the hypothesis strategies (a test helper) sit above the primitives too
ABOVE_MODULES = {"dynamo_core.strategies"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The library module `name` refers to (a module, or the package that holds the name)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str, *, top_level_only: bool = False) -> set[str]:
    """The library modules `module` imports (anywhere in it, or at module level only)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names = [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            if name.split(".")[0] == "dynamo_core":
                target = _resolve(name)
                if target is not None and target != module:
                    found.add(target)
    return found - {"dynamo_core"}  # the lazy package root is every module's parent


def _is_above(module: str) -> bool:
    return module in ABOVE_MODULES or any(
        module == top or module.startswith(top + ".") for top in ABOVE
    )


PRIMITIVES = sorted(
    m for m in MODULES if m.count(".") >= 1 and not _is_above(m) and m != "dynamo_core.__main__"
)
# the primitives split into packages, each module in the order it may import the others
SPLIT = {
    "dynamo_core.merkle": ("tree", "wire", "exchange"),
    "dynamo_core.hints": ("wire", "store", "handoff"),
    "dynamo_core.quorum": ("policy", "messages", "coordinators"),
    "dynamo_core.ring": ("bounds", "transfers", "encoding", "invariants", "placement", "hashring"),
}
NODE_MODULES = sorted(m for m in MODULES if m.startswith(NODE + "."))
PARTS = sorted(set(NODE_MODULES) - LEAVES - SHARED - {f"{NODE}.core"})


def test_the_layers_are_found() -> None:
    assert set(NODE_MODULES) >= LEAVES
    assert set(PARTS) == EXPECTED_PARTS
    assert {"dynamo_core.ring", "dynamo_core.quorum", "dynamo_core.merkle"} <= set(PRIMITIVES)
    # the reader sees through the aliases: `from dynamo_core.node import keyspace` is the module
    assert f"{NODE}.keyspace" in imports(f"{NODE}.replica")


@pytest.mark.parametrize("module", PRIMITIVES)
def test_a_primitive_imports_nothing_above_it(module: str) -> None:
    assert not [m for m in imports(module) if _is_above(m)]


@pytest.mark.parametrize("package", sorted(SPLIT))
def test_a_split_primitive_imports_only_its_earlier_modules(package: str) -> None:
    order = [f"{package}.{name}" for name in SPLIT[package]]
    assert set(order) == {m for m in MODULES if m.startswith(package + ".")}
    for i, module in enumerate(order):
        inside = {m for m in imports(module) if m.startswith(package + ".")}
        assert inside <= set(order[:i]), (module, inside - set(order[:i]))


@pytest.mark.parametrize("module", sorted(LEAVES))
def test_a_leaf_of_the_node_imports_no_other_node_module(module: str) -> None:
    assert not [m for m in imports(module) if m.startswith(NODE)]


@pytest.mark.parametrize("module", sorted(SHARED))
def test_the_shared_layer_imports_leaves_and_itself_only(module: str) -> None:
    inside = {m for m in imports(module) if m.startswith(NODE)}
    assert inside <= LEAVES | SHARED, inside - LEAVES - SHARED


@pytest.mark.parametrize("module", PARTS)
def test_a_part_imports_neither_the_core_nor_another_part(module: str) -> None:
    inside = {m for m in imports(module) if m.startswith(NODE)}
    assert inside <= LEAVES | SHARED, inside - LEAVES - SHARED


def test_the_core_wires_every_part() -> None:
    assert set(PARTS) <= imports(f"{NODE}.core")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_1200_lines(module: str) -> None:
    assert len(MODULES[module].read_text(encoding="utf-8").splitlines()) <= 1200


def test_only_the_package_imports_the_core() -> None:
    users = {m for m in MODULES if f"{NODE}.core" in imports(m)}
    assert users == {NODE}


def test_no_import_cycles() -> None:
    graph = {m: imports(m, top_level_only=True) for m in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(path: list[str]) -> None:
        module = path[-1]
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit([*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit([module])
