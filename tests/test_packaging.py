"""The built wheel works on its own: a fresh venv with only it and its core dependencies.

No site-packages are lent to the fresh venv, so an import of a dev-only package (pytest,
hypothesis, rich) anywhere on the path of a command fails here as it would for a user.
Dependencies come from wheels pip already has (its cache or the configured find-links), so the
test needs no network once `make` has installed the dev environment.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import dynamo_core

ROOT = Path(__file__).parent.parent
CORE_DEPENDENCIES = ("attrs", "sortedcontainers", "mmh3")
# An example that needs more than the core dependencies says so in a line of its own:
# ``# requires: WHAT``.
EXTRA = re.compile(r"^# requires: (.+)$", re.MULTILINE)
PLAIN_EXAMPLES = sorted(
    p for p in (ROOT / "examples").glob("*.py") if not EXTRA.search(p.read_text("utf-8"))
)


def run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A venv holding the wheel and the core dependencies, nothing else; returns (bin, wheel)."""
    tmp = tmp_path_factory.mktemp("wheel")
    dist, wheelhouse = tmp / "dist", tmp / "wheelhouse"
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, ROOT],
        check=True,
        capture_output=True,
    )
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in CORE_DEPENDENCIES]
    subprocess.run(
        [*pip, "download", "-q", "--no-deps", "--only-binary=:all:", "-d", wheelhouse, *pins],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("dynamo_core-*.whl")
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    subprocess.run(
        [
            bin_dir / "python",
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--find-links",
            wheelhouse,
            wheel,
        ],
        check=True,
        capture_output=True,
    )
    return bin_dir, wheel


def env_for(bin_dir: Path) -> dict[str, str]:
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(bin_dir.parent)}


def test_the_wheel_holds_the_package_and_nothing_else(fresh_venv: tuple[Path, Path]) -> None:
    _, wheel = fresh_venv
    names = zipfile.ZipFile(wheel).namelist()
    assert "dynamo_core/py.typed" in names
    assert {"_dynamo_core_hypothesis.py", "_dynamo_core_pytest.py"} <= set(names)  # entry points
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "docs/", "examples/"))]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Project-URL: " in text
    # Dev tools are not published as extras a user would install.
    extras = set(re.findall(r"^Provides-Extra: (\S+)$", text, re.MULTILINE))
    assert not extras & {"test", "lint", "docs", "bench"}, extras


def test_only_the_core_dependencies_are_installed(
    fresh_venv: tuple[Path, Path], tmp_path: Path
) -> None:
    bin_dir, _ = fresh_venv
    result = run(
        bin_dir / "python", "-m", "pip", "list", "--format=json", cwd=tmp_path, env=env_for(bin_dir)
    )
    names = {p["name"].lower() for p in json.loads(result.stdout)}
    assert names - {"pip", "setuptools"} == {"dynamo-core", *CORE_DEPENDENCIES}


def test_the_command_works_after_a_plain_install(
    fresh_venv: tuple[Path, Path], tmp_path: Path
) -> None:
    bin_dir, _ = fresh_venv
    env = env_for(bin_dir)
    command = bin_dir / "dynamo-core"

    help_ = run(command, "--help", cwd=tmp_path, env=env)
    assert help_.returncode == 0, help_.stderr
    for sub in ("demo", "simulate", "serve", "put", "get", "stats"):
        assert sub in help_.stdout

    for sub in ("serve", "put", "get", "stats"):  # each loads its own modules on use
        sub_help = run(command, sub, "--help", cwd=tmp_path, env=env)
        assert sub_help.returncode == 0, sub_help.stderr
        assert f"usage: dynamo-core {sub}" in sub_help.stdout
    refused = run(command, "serve", "--id", "a", "--listen", "localhost", "--data", "d",
                  cwd=tmp_path, env=env)  # fmt: skip
    assert refused.returncode == 2 and "--listen must be 'host:port'" in refused.stderr
    assert not (tmp_path / "d").exists()

    version = run(command, "--version", cwd=tmp_path, env=env)
    assert version.returncode == 0, version.stderr
    assert dynamo_core.__version__ in version.stdout

    demo = run(command, "demo", cwd=tmp_path, env=env)
    assert demo.returncode == 0, demo.stderr
    assert "cart" in demo.stdout

    simulate = run(command, "simulate", "--seeds", "3", "--json", cwd=tmp_path, env=env)
    assert simulate.returncode == 0, simulate.stderr
    summary = json.loads(simulate.stdout.strip().splitlines()[-1])
    assert summary["seeds"] == 3, summary
    assert summary["failed_seeds"] == [] and summary["lost"] == 0, summary


def test_the_testing_package_imports_without_pytest_or_hypothesis(
    fresh_venv: tuple[Path, Path], tmp_path: Path
) -> None:
    bin_dir, _ = fresh_venv
    code = (
        "import sys\n"
        "from dynamo_core.testing import Simulation, SetHistory, SimulatedCluster\n"
        "import dynamo_core\n"
        "from dynamo_core.testing import SimulationConfig\n"
        "result = Simulation(1, SimulationConfig(ops=50)).run()\n"
        "print(dynamo_core.__file__, result.ok)"
    )
    result = run(bin_dir / "python", "-c", code, cwd=tmp_path, env=env_for(bin_dir))
    assert result.returncode == 0, result.stderr
    location, ok = result.stdout.split()
    assert location.startswith(str(bin_dir.parent)), location
    assert ok == "True"
    # The conformance suite is the one part that needs pytest: it says so.
    missing = run(
        bin_dir / "python",
        "-c",
        "from dynamo_core.testing import StorageConformance",
        cwd=tmp_path,
        env=env_for(bin_dir),
    )
    assert missing.returncode == 1
    assert "ModuleNotFoundError" in missing.stderr


def test_examples_exist_for_the_plain_install() -> None:
    assert len(PLAIN_EXAMPLES) >= 10


@pytest.mark.parametrize("path", PLAIN_EXAMPLES, ids=[p.stem for p in PLAIN_EXAMPLES])
def test_an_example_without_extras_runs_after_a_plain_install(
    fresh_venv: tuple[Path, Path], tmp_path: Path, path: Path
) -> None:
    bin_dir, _ = fresh_venv
    result = run(bin_dir / "python", path, cwd=tmp_path, env=env_for(bin_dir))
    assert result.returncode == 0, f"{path.name}:\n{result.stdout}\n{result.stderr}"
    assert result.stdout.strip()
