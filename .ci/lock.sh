#!/usr/bin/env bash
# Writes the hashed locks the images install from (Dockerfile), for the images' own Python:
# CPython 3.12 on Linux x86-64 (manylinux 2.28: Ubuntu 24.04 and Debian 12 both qualify).
#
#   .ci/requirements-serve.lock      serve (CUDA) image: inductive[s3,gpu,otel], onnxruntime-gpu
#   .ci/requirements-serve-cpu.lock  serve-cpu image: the same with onnxruntime (the CPU build
#                                    of the same release) in place of onnxruntime-gpu
#   .ci/requirements-build.lock      setuptools, which builds inductive's own wheel in the images
#
# Every package is pinned at the version installed in the virtualenv (what the test suite runs)
# when it has one, else at the newest that pyproject.toml allows; uv (pinned in the dev extra)
# resolves for 3.12 whatever Python runs this script. tests/deploy/test_locks.py fails when
# pyproject.toml and a lock disagree; .ci/audit.sh audits the two serve locks.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
cd "$ROOT"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Constraints: the virtualenv's versions; onnxruntime (CPU) at the onnxruntime-gpu release.
"$PYTHON" - >"$work/installed.txt" <<'PY'
from importlib.metadata import distributions, version

from packaging.utils import canonicalize_name

pins = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
pins.pop("inductive", None)
pins.setdefault("onnxruntime", version("onnxruntime-gpu"))
print("\n".join(f"{name}=={pin}" for name, pin in sorted(pins.items())))
PY
echo "onnxruntime" >"$work/serve-cpu.in"
"$PYTHON" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))' \
    >"$work/build.in"

# The "# via" notes name what needs each pin (tests/deploy/test_locks.py walks them); the
# constraints and the temporary input files are this script's business, so they are left out.
compile() {
    local out="$1"
    shift
    "$PYTHON" -m uv pip compile --quiet --python-version 3.12 --python-platform x86_64-manylinux_2_28 \
        --generate-hashes --custom-compile-command ".ci/lock.sh" \
        --constraint "$work/installed.txt" "$@" -o "$out"
    sed -i -e "\#-c $work/installed.txt#d" -e "s#$work/##g" "$out"
}
compile .ci/requirements-serve.lock pyproject.toml --extra s3 --extra gpu --extra otel
compile .ci/requirements-serve-cpu.lock pyproject.toml "$work/serve-cpu.in" --extra s3 --extra otel \
    --no-emit-package onnxruntime-gpu
compile .ci/requirements-build.lock "$work/build.in"
grep -c "==" .ci/requirements-serve.lock .ci/requirements-serve-cpu.lock .ci/requirements-build.lock
