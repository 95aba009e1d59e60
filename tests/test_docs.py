"""The docs cannot drift: every runnable block runs, every shown output is a real run's.

The conventions (see ``docs/gen_outputs.py``): a ``python`` block marked ``<!-- runnable -->``
runs, with the page's earlier runnable blocks, in an empty directory; a block marked
``<!-- not runnable: <why> -->`` is a sketch; a block that only includes a file of
``examples/`` is run by ``tests/test_examples.py``; any other ``python`` block fails here. A
``text`` block after ``<!-- output ... -->`` must equal what its command (or the runnable block
above it) prints. The figures drawn by ``docs/gen_*_figure.py`` must match the library too.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

DOCS = Path(__file__).parent.parent / "docs"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, DOCS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


GEN = load("gen_outputs")
PAGES = [page.relative_to(DOCS).as_posix() for page in GEN.pages()]
RUN = GEN.cached(GEN.run_command)


@pytest.mark.parametrize("name", PAGES)
def test_page_runs_and_shows_what_it_prints(name: str) -> None:
    page = (DOCS / name).read_text(encoding="utf-8")
    assert GEN.render(name, page, RUN) == page, f"{name} is stale: run python docs/gen_outputs.py"


def test_the_learning_pages_show_runs() -> None:
    shown = {name: (DOCS / name).read_text(encoding="utf-8") for name in PAGES}
    assert shown["learn/five-questions.md"].count("<!-- output: python examples/") == 5
    assert (
        "<!-- output: python examples/eventual_consistency.py -->"
        in shown["learn/eventual-consistency.md"]
    )
    assert shown["learn/exercises.md"].count("<!-- output: python examples/exercises.py") == 3
    assert sum(text.count(GEN.RUNNABLE) for text in shown.values()) >= 15


def test_an_unmarked_python_block_is_refused() -> None:
    page = "# t\n\n```python\nx = 1\n```\n"
    with pytest.raises(GEN.DocsError, match=r"t.md:3: mark this python block"):
        GEN.render("t.md", page)
    assert GEN.render("t.md", page.replace("```python", "<!-- runnable -->\n```python")) == (
        page.replace("```python", "<!-- runnable -->\n```python")
    )
    sketch = page.replace("```python", "<!-- not runnable: needs a server -->\n```python")
    assert GEN.render("t.md", sketch) == sketch
    with pytest.raises(GEN.DocsError, match="mark this python block"):
        GEN.render("t.md", page.replace("```python", "<!-- not runnable: -->\n```python"))


def test_a_failing_block_names_its_page_and_line() -> None:
    page = "# t\n\n<!-- runnable -->\n```python\nx = 1\n```\n\n<!-- runnable -->\n```python\n"
    page += "assert x == 2\n```\n"
    with pytest.raises(GEN.DocsError, match=r"t.md:9: the runnable block failed") as error:
        GEN.render("t.md", page)
    assert isinstance(error.value.__cause__, AssertionError)


def test_outputs_are_rewritten_from_the_run() -> None:
    page = (
        "<!-- runnable -->\n```python\nprint('hello', 6 * 7)\n```\n\n<!-- output -->\n```text\n"
        "hello 41\n```\n\n<!-- output: python examples/x.py a | lines 2-3 -->\n```text\n```\n"
    )
    calls: list[str] = []

    def command(line: str) -> str:
        calls.append(line)
        return "one\ntwo\nthree\n"

    fresh = GEN.render("t.md", page, command)
    assert "```text\nhello 42\n```" in fresh
    assert calls == ["python examples/x.py a | lines 2-3"]
    assert GEN.render("t.md", fresh, command) == fresh


def test_output_lines_select_and_commands_are_confined() -> None:
    assert GEN.run_command("python examples/exercises.py growth | lines 2-2").startswith("10 -> 15")
    with pytest.raises(GEN.DocsError, match="printed 2 lines"):
        GEN.run_command("python examples/exercises.py growth | lines 2-9")
    for bad in ("rm -rf /", "python /etc/passwd", "python", "python examples/../setup.py", " "):
        with pytest.raises(GEN.DocsError, match="output commands run"):
            GEN.run_command(bad)
    with pytest.raises(GEN.DocsError, match="no runnable block printed"):
        GEN.render("t.md", "<!-- output -->\n```text\n```\n")
    with pytest.raises(GEN.DocsError, match="text block"):
        GEN.render("t.md", "<!-- output -->\n```sh\n```\n")


@pytest.mark.parametrize("script", ["gen_quorum_figure", "gen_vclock_figure", "gen_handoff_figure"])
def test_figure_is_what_the_library_draws(script: str) -> None:
    assert load(script).main(["--check"]) == 0, f"run: python docs/{script}.py"


def test_the_figures_say_what_the_runs_did() -> None:
    overlap = (DOCS / "concepts" / "quorum-overlap.svg").read_text(encoding="utf-8")
    assert overlap.count("the read finds the write") == 1
    assert overlap.count("the read misses the write") == 2
    clocks = (DOCS / "concepts" / "vector-clocks.svg").read_text(encoding="utf-8")
    assert "D3 vs D4: concurrent" in clocks
    assert "[Sx,3] [Sy,1] [Sz,1]" in clocks
    ring = (DOCS / "concepts" / "ring.svg").read_text(encoding="utf-8")
    assert "only e received data" in ring
