"""kill_during: reads acknowledgements, kills with SIGKILL, returns every line printed."""

from __future__ import annotations

import pytest

from dynamo_core.testing import kill_during

COUNTER = r"""
import sys
i = 0
while True:
    sys.stdout.write(f"{i}\n" if i % 3 else f"about {i}\n")
    sys.stdout.flush()
    i += 1
"""


def test_kills_after_the_acknowledgements_and_returns_every_line() -> None:
    lines = kill_during(COUNTER, after=50, seed=1)
    assert len(lines) >= 50
    expected = [f"{i}" if i % 3 else f"about {i}" for i in range(len(lines))]
    assert lines == expected  # in order, nothing lost from the pipe, nothing invented


def test_counts_only_the_lines_that_acknowledge() -> None:
    lines = kill_during(COUNTER, after=40, seed=2, acknowledges=lambda line: line[0].isdigit())
    acknowledged = [line for line in lines if line[0].isdigit()]
    assert len(acknowledged) >= 40
    assert len(lines) >= 60  # the "about" lines came in between and did not count


def test_passes_arguments_and_environment() -> None:
    script = "import os, sys\nprint(sys.argv[1], os.environ['CRASH_MARK'], flush=True)\n"
    script += "import time\ntime.sleep(60)\n"
    lines = kill_during(script, "hello", after=1, env={"CRASH_MARK": "mark", "PATH": ""})
    assert lines == ["hello mark"]


def test_a_writer_that_exits_early_is_an_error() -> None:
    script = "import sys\nprint('one', flush=True)\nsys.stderr.write('boom')\nsys.exit(3)\n"
    with pytest.raises(RuntimeError, match=r"status 3 after 1 of 5 .*boom"):
        kill_during(script, after=5)


def test_a_writer_that_dies_otherwise_is_an_error() -> None:
    script = "import os, signal\nprint('x', flush=True)\nos.kill(os.getpid(), signal.SIGTERM)\n"
    script += "import time\ntime.sleep(60)\n"
    with pytest.raises(RuntimeError, match="not killed by SIGKILL"):
        kill_during(script, after=1, jitter=0.5)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"after": -1}, ValueError),
        ({"after": 1.0}, TypeError),
        ({"after": 1, "jitter": 0}, ValueError),
        ({"after": 1, "jitter": "1"}, TypeError),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error, match="after|jitter"):
        kill_during(COUNTER, **kwargs)  # type: ignore[arg-type]
