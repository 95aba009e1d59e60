"""The conformance suite, run by pytest against broken backends, says what broke and how.

Each test writes a small project of its own (a backend with one planted bug and a test module
subclassing the suite) and runs pytest on it in a subprocess, as a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

BACKENDS = '''
from collections.abc import Iterator

from dynamo_core import MemoryStorage
from dynamo_core.errors import StorageClosedError


class LazyScan(MemoryStorage):
    """Validates scan's arguments in a generator: on the first next(), not when called."""

    def scan(self, start=None, end=None) -> Iterator[tuple[bytes, bytes]]:
        yield from super().scan(start, end)


class InclusiveEnd(MemoryStorage):
    """Yields the key equal to `end` too."""

    def scan(self, start=None, end=None):
        pairs = list(super().scan(start, None))
        return iter([(k, v) for k, v in pairs if end is None or k <= end])


class OpenAfterClose(MemoryStorage):
    """Keeps answering get() after close()."""

    def get(self, key):
        try:
            return super().get(key)
        except StorageClosedError:
            return None
'''

SUITE = """
from dynamo_core.testing import StorageConformance

from backends import InclusiveEnd, LazyScan, OpenAfterClose


class TestLazyScan(StorageConformance):
    def make_storage(self, directory):
        return LazyScan()


class TestInclusiveEnd(StorageConformance):
    def make_storage(self, directory):
        return InclusiveEnd()


class TestOpenAfterClose(StorageConformance):
    def make_storage(self, directory):
        return OpenAfterClose()


def test_the_suite_is_rewritten():
    import sys

    loader = sys.modules["dynamo_core.testing.storage"].__loader__
    assert type(loader).__name__ == "AssertionRewritingHook"
"""


def _pytest(project: Path, *args: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--tb=short", *args],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.stdout + result.stderr


def _project(tmp_path: Path, conftest: str = "") -> Path:
    (tmp_path / "backends.py").write_text(BACKENDS)
    (tmp_path / "test_backends.py").write_text(SUITE)
    if conftest:
        (tmp_path / "conftest.py").write_text(textwrap.dedent(conftest))
    return tmp_path


def test_failures_name_the_operation_its_arguments_and_both_results(tmp_path: Path) -> None:
    out = _pytest(
        _project(tmp_path),
        "-k",
        "non_bytes or half_open or closed_store or rewritten",
    )
    # A generator-based scan: the operation, the value, what was expected and the rule.
    assert (
        "store.scan('text') returned <generator object LazyScan.scan at" in out
        and "expected TypeError naming 'start' (the Storage contract: scan validates its "
        "arguments when called, not on the first next())"
        in out
    ), out
    # An inclusive end bound: the call and both key lists.
    assert (
        "keys of store.scan(b'\\x03', b'\\x07') returned [b'\\x03', b'\\x04', b'\\x05', "
        "b'\\x06', b'\\x07']; expected [b'\\x03', b'\\x04', b'\\x05', b'\\x06']" in out
    ), out
    # The closed-store check says which of its operations failed.
    assert (
        "after close(), store.get(b'k') returned None; expected StorageClosedError "
        "(the Storage contract: every operation after close() raises StorageClosedError)" in out
    ), out
    # Backends without the bug pass the same checks.
    assert "TestOpenAfterClose::test_scan_bounds_are_half_open" not in out
    assert "FAILED test_backends.py::test_the_suite_is_rewritten" not in out, out


FAST = """
from hypothesis import Phase, settings

# The explain phase traces every line: slow before Python 3.12, and not what is tested here.
settings.register_profile("fast", phases=[Phase.generate, Phase.shrink], database=None)
settings.load_profile("fast")
"""


def test_the_stateful_check_names_the_operation_and_both_results(tmp_path: Path) -> None:
    out = _pytest(_project(tmp_path, FAST), "-k", "TestInclusiveEnd and stateful")
    assert "returned [" in out and "; expected [" in out, out
    assert "list(store.scan(" in out or "dict(store.scan())" in out, out


def test_the_plugin_can_be_turned_on_by_hand(tmp_path: Path) -> None:
    project = _project(tmp_path, 'pytest_plugins = ["dynamo_core.testing.pytest_plugin"]\n')
    out = _pytest(project, "-k", "rewritten", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    assert "1 passed" in out, out


def test_without_the_plugin_the_suite_is_not_rewritten(tmp_path: Path) -> None:
    """The control: what the plugin changes (so the test above could fail)."""
    out = _pytest(_project(tmp_path), "-k", "rewritten", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    assert "1 failed" in out, out


def test_pytest_starts_without_importing_dynamo_core(tmp_path: Path) -> None:
    (tmp_path / "test_start.py").write_text(
        "import sys\n\n\ndef test_nothing_loaded():\n"
        "    assert '_dynamo_core_pytest' in sys.modules  # the plugin is on\n"
        "    assert not [m for m in sys.modules if m.startswith('dynamo_core')]\n"
    )
    assert "1 passed" in _pytest(tmp_path)
