"""The images' hashed locks (written by .ci/lock.sh) agree with pyproject.toml, for the images'
Python (CPython 3.12 on Linux x86-64):

- every serving requirement (the base dependencies, the s3 and otel extras, and the gpu extra
  in the CUDA image) is pinned at a version its specifier allows; in serve-cpu, onnxruntime
  (the CPU build of the same release) takes onnxruntime-gpu's place;
- every pin is needed: its "# via" notes lead back to inductive, through requirements that
  pyproject.toml still has;
- every pin carries hashes (`pip install --require-hashes` refuses the file otherwise);
- where this virtualenv has a pinned package at the pinned version, everything that package
  requires on the image's Python is pinned, within its specifier, too;
- the build lock satisfies `[build-system] requires`.

Change a requirement in pyproject.toml without running .ci/lock.sh and these fail.
"""

from __future__ import annotations

import tomllib
from collections import deque
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy.helpers import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# The marker environment of the images' interpreter (python:3.12-slim, Ubuntu 24.04's python3).
IMAGE_PYTHON = {
    "implementation_name": "cpython",
    "implementation_version": "3.12.3",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_system": "Linux",
    "platform_version": "",
    "python_full_version": "3.12.3",
    "python_version": "3.12",
    "sys_platform": "linux",
}
ROOT = "inductive (pyproject.toml)"


@dataclass(frozen=True)
class Image:
    lock: str
    extras: tuple[str, ...]
    # A requirement of pyproject.toml → the package this image's lock pins in its place.
    swaps: dict[str, str] = field(default_factory=dict)
    # Input files of .ci/lock.sh that may appear in "# via" notes, with what they may pin.
    inputs: dict[str, set[str]] = field(default_factory=dict)


IMAGES = {
    "serve": Image("requirements-serve.lock", ("s3", "gpu", "otel")),
    "serve-cpu": Image(
        "requirements-serve-cpu.lock",
        ("s3", "otel"),
        swaps={"onnxruntime-gpu": "onnxruntime"},
        inputs={"-r serve-cpu.in": {"onnxruntime"}},
    ),
}


@dataclass
class Pin:
    version: Version
    hashes: int = 0
    via: set[str] = field(default_factory=set)


def read_lock(path: Path) -> dict[str, Pin]:
    """uv's requirements format: `name==version \\`, `--hash=sha256:…` lines, then `# via` notes
    (one parent on the same line, or one per following `#   parent` line)."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if raw[:1].isalnum():
            name, _, rest = raw.partition("==")
            current = pins[canonicalize_name(name)] = Pin(Version(rest.split()[0]))
        elif current is None:
            continue  # the header
        elif line.startswith("--hash=sha256:"):
            current.hashes += 1
        elif line.startswith("# via"):
            if line[len("# via") :].strip():
                current.via.add(line[len("# via") :].strip())
        elif line.startswith("#   "):
            current.via.add(line[len("#   ") :].strip())
    return pins


def _applies(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**IMAGE_PYTHON, "extra": e}) for e in extras | {""})


def serving_requirements(extras: tuple[str, ...]) -> list[Requirement]:
    texts = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        texts += PYPROJECT["project"]["optional-dependencies"][extra]
    return [r for r in map(Requirement, texts) if _applies(r, set())]


def _pinned_name(image: Image, req: Requirement) -> str:
    name = canonicalize_name(req.name)
    return image.swaps.get(name, name)


@pytest.fixture(params=sorted(IMAGES), scope="module")
def image(request: pytest.FixtureRequest) -> Image:
    return IMAGES[request.param]


@pytest.fixture(scope="module")
def pins(image: Image) -> dict[str, Pin]:
    return read_lock(REPO / ".ci" / image.lock)


def test_every_serving_requirement_is_pinned_within_its_specifier(
    image: Image, pins: dict[str, Pin]
) -> None:
    requirements = serving_requirements(image.extras)
    assert {"uvicorn", "boto3", "numpy"} <= {canonicalize_name(r.name) for r in requirements}
    for req in requirements:
        name = _pinned_name(image, req)
        assert name in pins, f"{image.lock}: {req} is not pinned (run .ci/lock.sh)"
        assert req.specifier.contains(pins[name].version, prereleases=True), (
            f"{image.lock}: {name}=={pins[name].version} does not satisfy {req} (run .ci/lock.sh)"
        )
    if image.swaps:
        assert not set(image.swaps) & set(pins), "a swapped-out package is pinned as well"


def test_every_pin_is_needed_and_hashed(image: Image, pins: dict[str, Pin]) -> None:
    direct = {_pinned_name(image, r) for r in serving_requirements(image.extras)}
    children: dict[str, set[str]] = {name: set() for name in pins}
    reached: deque[str] = deque()
    for name, pin in pins.items():
        assert pin.hashes >= 1, f"{image.lock}: {name} has no hash"
        assert pin.via, f"{image.lock}: {name} says nothing about what needs it"
        for parent in pin.via:
            if parent == ROOT:
                assert name in direct, (
                    f"{image.lock}: {name} is pinned for a requirement that pyproject.toml no "
                    "longer has (run .ci/lock.sh)"
                )
                reached.append(name)
            elif parent in image.inputs:
                assert name in image.inputs[parent], (parent, name)
                reached.append(name)
            else:
                # A package the lock does not pin (onnxruntime-gpu in serve-cpu) stands for the
                # one pinned in its place.
                key: str = canonicalize_name(parent)
                key = image.swaps.get(key, key)
                assert key in pins, f"{image.lock}: {name} is needed by {parent}, not pinned"
                children[key].add(name)
    seen = set(reached)
    while reached:
        for child in children[reached.popleft()] - seen:
            seen.add(child)
            reached.append(child)
    assert seen == set(pins), f"{image.lock}: needed by nothing: {sorted(set(pins) - seen)}"
    assert direct <= seen


def _installed_metadata(name: str, version: Version, image: Image) -> list[Requirement] | None:
    """Requirements of `name` at `version` from this virtualenv, or from the package it stands
    in for (the same release); None when neither is installed at that version."""
    for candidate in (name, *(old for old, new in image.swaps.items() if new == name)):
        try:
            dist = distribution(candidate)
        except PackageNotFoundError:
            continue
        if Version(dist.version) == version:
            return [Requirement(text) for text in dist.requires or []]
    return None


def test_what_pinned_packages_require_is_pinned(image: Image, pins: dict[str, Pin]) -> None:
    """Walks the requirement graph from pyproject through the installed packages' metadata:
    each requirement that applies on the image's Python must be pinned within its specifier."""
    todo = deque(
        (_pinned_name(image, r), set(r.extras)) for r in serving_requirements(image.extras)
    )
    walked: set[tuple[str, frozenset[str]]] = set()
    checked = 0
    while todo:
        name, extras = todo.popleft()
        key = (name, frozenset(extras))
        if key in walked:
            continue
        walked.add(key)
        assert name in pins, f"{image.lock}: {name} is not pinned (run .ci/lock.sh)"
        requirements = _installed_metadata(name, pins[name].version, image)
        if requirements is None:
            continue  # this virtualenv has another version: its metadata is not at hand
        for req in requirements:
            if not _applies(req, extras):
                continue
            child = _pinned_name(image, req)
            assert child in pins, f"{image.lock}: {name} requires {req}, which is not pinned"
            assert req.specifier.contains(pins[child].version, prereleases=True), (
                f"{image.lock}: {name} requires {req}, pinned {pins[child].version}"
            )
            checked += 1
            todo.append((child, set(req.extras)))
    assert checked > 0 or not any(
        _installed_metadata(n, p.version, image) for n, p in pins.items()
    ), "nothing was checked although the virtualenv has pinned versions"


def test_build_lock_satisfies_the_build_system() -> None:
    pins = read_lock(REPO / ".ci/requirements-build.lock")
    for req in map(Requirement, PYPROJECT["build-system"]["requires"]):
        name = canonicalize_name(req.name)
        assert name in pins, f"requirements-build.lock: {req} is not pinned (run .ci/lock.sh)"
        assert req.specifier.contains(pins[name].version)
        assert pins[name].hashes >= 1


def test_license_is_an_spdx_expression() -> None:
    """PEP 639: a string, not the deprecated table setuptools warns about at every install."""
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    # setuptools reads the expression from 77 on; older ones reject the string outright.
    (setuptools,) = map(Requirement, PYPROJECT["build-system"]["requires"])
    assert not setuptools.specifier.contains("76.1")
