"""The property-testing how-to's example finds what it says it finds (its last line is JSON)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parent.parent / "examples" / "property_testing.py"


def test_the_example_catches_the_broken_merge_and_the_broken_backend(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["merge_laws"] == "hold"
    # Shrunk to the smallest conflict that shows the bug: two siblings, one item, quantity 1...
    siblings = found["broken_merge_siblings"]
    assert len(siblings) == 2
    assert sum(sum(cart.values()) for cart in siblings) == 1
    # ...which the broken merge counts twice when it sees the siblings twice.
    (item,) = found["broken_merge_once"]
    assert found["broken_merge_once"] == {item: 1}
    assert found["broken_merge_twice"] == {item: 2}
    # The backend's failure names the operation, its arguments and both results.
    failure = found["storage_failure"]
    assert failure.startswith("list(store.scan(")
    assert "returned [(" in failure and "; expected []" in failure
