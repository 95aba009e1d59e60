"""Every example in examples/ runs to completion: the docs include them, so they must work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


def check_sqlite_sync(summary: dict[str, Any]) -> None:
    assert summary["in_sync"] is True and summary["identical"] is True
    assert summary["depths"] == [11, 12] and summary["compared_at_depth"] == 11
    # 205 keys only b has, 10 edited on a, 6 deleted on b, 1 deleted on b then re-created on a
    assert summary["differing"] == summary["repaired"] == 222
    assert summary["tombstones"] == 6
    assert 0 < summary["bytes_sent"] < summary["full_copy_bytes"] / 2


def check_redis_kv(summary: dict[str, Any]) -> None:
    assert summary["lost"] == 0
    assert summary["acknowledged"] == summary["on_every_store"] == 81
    assert summary["hinted"] == 40  # the 40 writes made while r2 was down, one hint each
    assert summary["hints_delivered"] == 41 and summary["hints_left"] == 0  # + the shared cart
    assert summary["siblings"] == 2 and summary["after_merge"] == 1


def check_find_a_bug(summary: dict[str, Any]) -> None:
    # Hypothesis finds the forgotten hints and shrinks the schedule to a few readable events...
    assert summary["found"] is True
    assert 1 <= summary["shrunk_events"] <= 10
    assert len(summary["shrunk_schedule"]) >= summary["shrunk_events"]
    assert any(" crash " in line for line in summary["shrunk_schedule"])
    # ...and the store with its hints on disk passes every schedule drawn.
    assert summary["fixed_examples"] >= 300


# Examples that end with a JSON summary line, and what it must say.
SUMMARIES: dict[str, Callable[[dict[str, Any]], None]] = {
    "sqlite_sync": check_sqlite_sync,
    "redis_kv": check_redis_kv,
    "find_a_bug": check_find_a_bug,
}
# Programs an example needs beyond Python; `.ci/run` installs them, so CI never skips.
PROGRAMS = {"redis_kv": "redis-server"}


def test_there_are_examples() -> None:
    assert EXAMPLES, "examples/ has no scripts"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path: Path, tmp_path: Path) -> None:
    program = PROGRAMS.get(path.stem)
    if program is not None and shutil.which(program) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{program} is missing in CI: .ci/run must install it")
        pytest.skip(f"{program} is not installed (apt-get install {program})")
    result = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{path.name} failed:\n{result.stdout}\n{result.stderr}"
    assert result.stdout.strip(), f"{path.name} printed nothing"
    check = SUMMARIES.get(path.stem)
    if check is not None:
        check(json.loads(result.stdout.strip().splitlines()[-1]))


def test_every_summary_check_has_its_example() -> None:
    assert set(SUMMARIES) | set(PROGRAMS) <= {p.stem for p in EXAMPLES}
