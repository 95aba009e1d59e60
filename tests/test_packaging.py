"""A wheel built from the tree installs into a fresh virtualenv and imports."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_wheel_installs_into_a_fresh_venv_and_imports(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("dynamo_core-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "dynamo_core/py.typed" in names
    assert {"_dynamo_core_hypothesis.py", "_dynamo_core_pytest.py"} <= set(names)  # entry points
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "docs/"))]

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    # The fresh venv has no dependencies of its own: lend it ours through PYTHONPATH, which is
    # not a site directory, so the editable install of the working tree stays invisible to it.
    deps = sysconfig.get_paths()["purelib"]
    code = (
        "import dynamo_core, sys\n"
        "print(dynamo_core.__file__)\n"
        "print(dynamo_core.__version__)\n"
        "print(dynamo_core.token('abc'))"
    )
    result = subprocess.run(
        [str(python), "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": deps, "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        text=True,
    )
    location, version, token = result.stdout.split()
    assert location.startswith(str(env_dir)), location
    import dynamo_core

    assert version == dynamo_core.__version__
    assert int(token) == dynamo_core.token("abc")
