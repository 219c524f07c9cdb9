"""Project-level contracts: the serving install has no torch, the README stays true."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_serving_install_has_no_torch() -> None:
    base = _names(_pyproject()["project"]["dependencies"])
    assert "torch" not in base
    assert {"onnxruntime-gpu", "fastapi", "uvicorn", "prometheus-client"} <= base


def test_torch_is_pinned_exactly_so_cpu_machines_get_the_cpu_wheel() -> None:
    train = _pyproject()["project"]["optional-dependencies"]["train"]
    torch_pins = [r for r in train if _names([r]) == {"torch"}]
    assert torch_pins
    assert all("==" in r for r in torch_pins), torch_pins


def test_readme_settings_table_is_current() -> None:
    table = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "settings_table.py")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.strip()
    assert table in (ROOT / "README.md").read_text(), (
        "README settings table is stale: run `python .ci/settings_table.py --write`"
    )


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    assert "make serve" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
def test_the_wheel_ships_the_console_files(tmp_path: Path) -> None:
    """`pip install .` (the serving image's install) must carry the console's pages and scripts,
    which are package data, not modules."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("service", "model_store", "training"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [wheel] = (tmp_path / "dist").glob("inductive-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    console = ROOT / "service" / "console"
    expected = {p.relative_to(ROOT).as_posix() for p in console.rglob("*") if p.is_file()}
    expected = {p for p in expected if "__pycache__" not in p}
    assert expected
    assert expected <= shipped, sorted(expected - shipped)


# Every module of these packages must import: a module removed or renamed on one branch leaves
# dangling imports in modules merged from others, which nothing else may load in a test.
IMPORTED_PACKAGES = ("benchmarks", "service", "model_store", "training")


def _modules(package: str, excluded: list[re.Pattern[str]]) -> list[str]:
    names = []
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if any(pattern.search(relative) for pattern in excluded):
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def test_every_module_imports() -> None:
    # The files mypy skips (the peers' scripts, run in their own venvs) are skipped here too.
    excluded = [re.compile(p) for p in _pyproject()["tool"]["mypy"]["exclude"]]
    modules = [m for package in IMPORTED_PACKAGES for m in _modules(package, excluded)]
    assert "benchmarks.closedloop" in modules
    assert not any(m.startswith("benchmarks.contenders.mlserver") for m in modules)
    # One fresh interpreter imports them all and names each that fails, with its error.
    script = (
        "import importlib, sys\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *modules],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "", "modules that do not import:\n" + done.stdout
