"""One virtualenv per peer server, installed by the suite from a committed lock file.

Each peer (MLServer, KServe, LitServe, BentoML) brings its own dependency pins, which clash with
ours and with each other (MLServer wants an older FastAPI and uvloop), so each runs from a venv
of its own under `benchmarks/.work/venvs/<peer>`, built with `uv` from
`requirements/<peer>.txt`: every package pinned, ONNX Runtime at the release our service runs.
A venv is reused while its lock file and interpreter are unchanged (a stamp file holds their
digest), so only the first run, or a changed pin, pays for the install.

    python -m benchmarks.contenders.venvs [PEER ...]   # build (or check) the venvs now
    python -m benchmarks.contenders.venvs --lock       # re-resolve requirements/*.txt from *.in
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().with_name("requirements")
VENVS = Path(__file__).resolve().parents[1] / ".work" / "venvs"
PEERS = ("mlserver", "kserve", "litserve", "bentoml")
# The machine the locks are resolved for: CPython 3.11 on x86-64 Linux (what CI runs).
_LOCK_TARGET = ("--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28")
log = logging.getLogger(__name__)


class VenvError(RuntimeError):
    pass


def uv_binary() -> str:
    """`uv` from our venv (the dev extra pins it), else from PATH."""
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.is_file() else shutil.which("uv")
    if found is None:
        raise VenvError("uv is not installed: .venv/bin/pip install 'uv==0.13.8' (dev extra)")
    return found


def _digest(lock: Path) -> str:
    version = sys.version.split()[0]
    return hashlib.sha256(lock.read_bytes() + f"\npython {version}".encode()).hexdigest()


def ensure_venv(peer: str, root: Path = VENVS, requirements: Path = REQUIREMENTS) -> Path:
    """The Python interpreter of `peer`'s venv, installing it first when its lock changed."""
    lock = requirements / f"{peer}.txt"
    if not lock.is_file():
        raise VenvError(f"no lock file {lock}; peers: {', '.join(PEERS)}")
    venv = root / peer
    python = venv / "bin" / "python"
    stamp = venv / ".lock-sha256"
    digest = _digest(lock)
    root.mkdir(parents=True, exist_ok=True)
    # Two runs (a test session and a benchmark) must not build the same venv at once.
    with (root / f".{peer}.lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if python.is_file() and stamp.is_file() and stamp.read_text() == digest:
            return python
        started = time.monotonic()
        log.info("installing %s's venv from %s into %s", peer, lock.name, venv)
        uv = uv_binary()
        steps = [
            [uv, "venv", "--quiet", "--clear", "--python", sys.executable, str(venv)],
            [uv, "pip", "install", "--quiet", "--python", str(python), "-r", str(lock)],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise VenvError(f"`{' '.join(step)}` failed:\n{done.stderr[-3000:]}")
        stamp.write_text(digest)
        log.info("%s's venv ready in %.0f s", peer, time.monotonic() - started)
    return python


def lock(peer: str) -> None:
    """Re-resolves `requirements/<peer>.txt` from `<peer>.in` (needs the package index)."""
    subprocess.run(
        [
            *(uv_binary(), "pip", "compile", "--quiet", *_LOCK_TARGET),
            *("--custom-compile-command", "python -m benchmarks.contenders.venvs --lock"),
            *(str(REQUIREMENTS / f"{peer}.in"), "-o", str(REQUIREMENTS / f"{peer}.txt")),
        ],
        check=True,
    )


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.contenders.venvs", description=__doc__
    )
    parser.add_argument("peers", nargs="*", help=f"default: all of {', '.join(PEERS)}")
    parser.add_argument("--lock", action="store_true", help="re-resolve the lock files")
    args = parser.parse_args(argv)
    unknown = set(args.peers) - set(PEERS)
    if unknown:
        parser.error(f"unknown peers {sorted(unknown)}; choose from {', '.join(PEERS)}")
    for peer in args.peers or PEERS:
        if args.lock:
            lock(peer)
        else:
            started = time.monotonic()
            python = ensure_venv(peer)
            print(f"{peer}: {python} ({time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
