"""The quorum concept page shows the state diagrams the code actually has."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from dynamo_core.quorum import CoordinatorState, GetCoordinator, PutCoordinator

SCRIPT = Path(__file__).parent.parent / "docs" / "gen_quorum_diagrams.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_quorum_diagrams", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_diagrams_match_the_transition_tables() -> None:
    script = load_script()
    page = script.PAGE.read_text(encoding="utf-8")
    assert script.render(page) == page, "run: python docs/gen_quorum_diagrams.py"
    assert script.main(["--check"]) == 0


@pytest.mark.parametrize("coordinator", [PutCoordinator, GetCoordinator], ids=["put", "get"])
def test_every_transition_is_drawn(coordinator: type[PutCoordinator[object]]) -> None:  # type: ignore[type-var]
    script = load_script()
    name = "put" if coordinator is PutCoordinator else "get"
    section = script.section(name)
    figure = script.svg(name, coordinator.TRANSITIONS)
    assert f"]({script.figure(name).name})" in section
    assert "mermaid" not in section  # drawn as SVG: the site needs no JavaScript
    for row in coordinator.TRANSITIONS:
        assert f"| `{row.source.value}` | {row.event.value} | `{row.target.value}` |" in section
        edge = f'<g data-from="{row.source.value}" data-to="{row.target.value}">'
        assert edge in figure
        drawn = figure.split(edge, 1)[1].split("</g>", 1)[0]
        assert row.event.value.split()[-1] in drawn  # the label names the event
    for state in CoordinatorState:
        assert f'font-weight="bold">{state.value}</text>' in figure
    states = {row.source for row in coordinator.TRANSITIONS} | {
        row.target for row in coordinator.TRANSITIONS
    }
    assert states == set(CoordinatorState)


def test_a_stale_page_is_detected(tmp_path: Path) -> None:
    script = load_script()
    page = script.PAGE.read_text(encoding="utf-8")
    stale = page.replace("| `IDLE` | start | `WAITING` |", "| `IDLE` | start | `CLOSED` |", 1)
    assert stale != page
    assert script.render(stale) == page
    broken = page.replace(script.end("get"), "")
    with pytest.raises(ValueError, match="markers"):
        script.render(broken)
