"""Docstrings render in the API reference: example sections are parsed as code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import dynamo_core

PACKAGE = Path(dynamo_core.__file__).parent
# mkdocstrings (griffe, Google style) turns an ``Examples:`` section into code blocks; a singular
# ``Example:`` is an admonition whose ``>>>`` lines run together into one paragraph.
SINGULAR = re.compile(r"^\s*Example:\s*$", re.MULTILINE)


def docstrings() -> list[tuple[str, str]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node, clean=False)
                if doc:
                    name = getattr(node, "name", path.stem)
                    found.append((f"{path.relative_to(PACKAGE)}:{name}", doc))
    return found


def test_example_sections_are_parsed_as_code() -> None:
    docs = docstrings()
    assert len(docs) > 200
    assert [where for where, doc in docs if SINGULAR.search(doc)] == []
    with_examples = [where for where, doc in docs if "Examples:" in doc]
    assert len(with_examples) >= 14
