"""Run the Python blocks the docs mark as runnable, and write the outputs the docs show.

The conventions, for every page under ``docs/``:

* A fenced ``python`` block is one of three kinds, said by the line just above its fence:

  * ``<!-- runnable -->``: it runs. The runnable blocks of one page run in order, in one
    namespace (a block may use the names an earlier one defined), in an empty temporary
    directory. Write them as a reader would type them: imports included, no hidden setup.
  * ``<!-- not runnable: <why> -->``: a sketch that cannot run alone (it needs a server, a
    network or the reader's own functions); the reason is required.
  * no marker, when the block only includes a file of ``examples/`` by a snippet line
    (``--8<-- "examples/..."``): the examples are run by ``tests/test_examples.py``.

  Any other ``python`` block is an error: nothing in the docs may silently fail to run.
* A fenced ``text`` block right after ``<!-- output: python examples/<file>.py [args] -->``
  holds what that command prints (``| lines 2-3`` keeps those lines only); right after
  ``<!-- output -->``, what the page's last runnable block above it printed. This script writes
  them; nobody types them.

Usage::

    python docs/gen_outputs.py           # run every block, rewrite the outputs
    python docs/gen_outputs.py --check   # exit 1 if a block fails or an output is stale

``tests/test_docs.py`` runs the check on every page.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).parent
ROOT = DOCS.parent
RUNNABLE = "<!-- runnable -->"
NOT_RUNNABLE = re.compile(r"<!-- not runnable: \S.* -->")
OUTPUT = re.compile(r"<!-- output(?:: (?P<command>.+?))? -->")
LINES = re.compile(r"(?P<command>.+?) \| lines (?P<first>\d+)-(?P<last>\d+)")
SNIPPET = re.compile(r'^--8<-- "examples/[^"]+"$')


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: where it starts, its language, its body and its marker."""

    line: int  # 1-based line of the opening fence
    lang: str
    body: str
    marker: str  # the line just above the fence
    end: int  # 0-based index of the closing fence line


class DocsError(Exception):
    """A block is unmarked, a runnable block failed, or an output marker is malformed."""


def pages() -> list[Path]:
    """Every Markdown page of the docs, in a stable order."""
    return sorted(DOCS.rglob("*.md"))


def blocks(text: str) -> list[Block]:
    """The top-level fenced blocks of a page."""
    lines = text.split("\n")
    found = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("```"):
            lang = lines[i][3:].strip().split(" ")[0]
            start = i
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                i += 1
            if i == len(lines):
                raise DocsError(f"line {start + 1}: a fence is never closed")
            marker = lines[start - 1].strip() if start else ""
            body = "\n".join(lines[start + 1 : i])
            found.append(Block(start + 1, lang, body, marker, i))
        i += 1
    return found


def check_markers(name: str, text: str) -> None:
    """Raise DocsError unless every python block is runnable, explained, or a snippet include."""
    for block in blocks(text):
        if block.lang != "python" or block.marker == RUNNABLE:
            continue
        if NOT_RUNNABLE.fullmatch(block.marker) or SNIPPET.fullmatch(block.body.strip()):
            continue
        raise DocsError(
            f"{name}:{block.line}: mark this python block '{RUNNABLE}' (it will run) or "
            "'<!-- not runnable: <why> -->', on the line just above its fence"
        )


def run_command(command: str) -> str:
    """Run ``python examples/<file>.py [args]`` from an empty directory and return its stdout."""
    selected = LINES.fullmatch(command)
    words = shlex.split(selected["command"] if selected else command)
    examples = ROOT / "examples"
    script = (ROOT / words[1]).resolve() if len(words) > 1 else examples
    if words[:1] != ["python"] or script.parent != examples.resolve() or script.suffix != ".py":
        raise DocsError(f"output commands run 'python examples/<file>.py', not {command!r}")
    with tempfile.TemporaryDirectory() as directory:
        result = subprocess.run(  # noqa: PLW1510 - checked below, with the output
            [sys.executable, str(script), *words[2:]],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=300,
        )
    if result.returncode:
        raise DocsError(f"{command!r} failed:\n{result.stdout}\n{result.stderr}")
    out = result.stdout
    if selected:
        first, last = int(selected["first"]), int(selected["last"])
        printed = out.splitlines()
        if not 1 <= first <= last <= len(printed):
            raise DocsError(f"{command!r}: the command printed {len(printed)} lines")
        out = "\n".join(printed[first - 1 : last]) + "\n"
    return out


def render(name: str, text: str, command: Callable[[str], str] = run_command) -> str:
    """Run the page's runnable blocks in order; return the page with every output rewritten."""
    check_markers(name, text)
    lines = text.split("\n")
    namespace: dict[str, object] = {"__name__": f"docs:{name}"}
    printed: str | None = None
    replacements: list[tuple[int, int, str]] = []  # (first body line, closing fence, text)
    with tempfile.TemporaryDirectory() as directory, contextlib.chdir(directory):
        for block in blocks(text):
            if block.lang == "python" and block.marker == RUNNABLE:
                out = io.StringIO()
                code = compile(block.body, f"{name}:{block.line}", "exec")
                try:
                    with contextlib.redirect_stdout(out):
                        exec(code, namespace)
                except Exception as error:
                    raise DocsError(f"{name}:{block.line}: the runnable block failed") from error
                printed = out.getvalue()
                continue
            marker = OUTPUT.fullmatch(block.marker)
            if marker is None:
                continue
            if block.lang != "text":
                raise DocsError(f"{name}:{block.line}: an output goes in a ```text block")
            if marker["command"] is None:
                if printed is None:
                    raise DocsError(f"{name}:{block.line}: no runnable block printed above")
                shown = printed
            else:
                shown = command(marker["command"])
            replacements.append((block.line, block.end, shown.rstrip("\n")))
    for first, end, shown in reversed(replacements):
        lines[first:end] = shown.split("\n") if shown else []
    return "\n".join(lines)


def cached(function: Callable[[str], str]) -> Callable[[str], str]:
    """Run each command once per process (a page may show parts of one run)."""
    memo: dict[str, str] = {}

    def run(command: str) -> str:
        if command not in memo:
            memo[command] = function(command)
        return memo[command]

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    args = parser.parse_args(argv)
    command = cached(run_command)
    stale = []
    for page in pages():
        name = page.relative_to(DOCS).as_posix()
        current = page.read_text(encoding="utf-8")
        try:
            fresh = render(name, current, command)
        except DocsError as error:
            print(f"{error}: {error.__cause__ or ''}", file=sys.stderr)
            return 1
        if fresh != current:
            stale.append(name)
            if not args.check:
                page.write_text(fresh, encoding="utf-8")
    if stale:
        verb = "out of date (run python docs/gen_outputs.py)" if args.check else "updated"
        print(f"{verb}: {', '.join(stale)}", file=sys.stderr if args.check else sys.stdout)
        return 1 if args.check else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
