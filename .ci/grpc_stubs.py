"""Generate the gRPC door's Python stubs from service/grpc/protos/*.proto, or check them.

python .ci/grpc_stubs.py          # regenerate into a temporary directory; exit 1 if any differs
python .ci/grpc_stubs.py --write  # rewrite service/grpc/protos/*_pb2.py and *_pb2.pyi

protoc (grpcio-tools, pinned in the dev extra) writes `<name>_pb2.py` (message classes) and
`<name>_pb2.pyi` (their types). One line is then changed: generated code adds its descriptors to
protobuf's process-wide default pool, where tritonclient.grpc, KServe and MLServer all add
*their* copy of the same `inference.*` messages, and the second copy to arrive fails the import
with "duplicate symbol". Ours go to a pool of their own, so the server (or a test, or a user's
process) can import any of those packages beside ours. Stubs are committed rather than built at
install time so that the serving install needs no protoc.
"""

from __future__ import annotations

import difflib
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PROTOS = Path(__file__).resolve().parents[1] / "service" / "grpc" / "protos"
DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
OWN_POOL = "_descriptor_pool.DescriptorPool().AddSerializedFile("
NOTE = (
    "# Rewritten by .ci/grpc_stubs.py: a descriptor pool of its own, not protobuf's default one\n"
    "# (where tritonclient.grpc registers the same message names).\n"
)


def generate(out: Path) -> list[Path]:
    """Writes the stubs of every proto into `out`; returns their paths."""
    written = []
    for proto in sorted(PROTOS.glob("*.proto")):
        status = protoc.main(
            ["protoc", f"-I{PROTOS}", f"--python_out={out}", f"--pyi_out={out}", str(proto)]
        )
        if status != 0:
            raise SystemExit(f"protoc failed on {proto.name} ({status})")
        module = out / f"{proto.stem}_pb2.py"
        code = module.read_text()
        if code.count(DEFAULT_POOL) != 1:
            raise SystemExit(f"{module.name}: protoc's output no longer adds to the default pool")
        module.write_text(NOTE + code.replace(DEFAULT_POOL, OWN_POOL))
        written += [module, module.with_suffix(".pyi")]
    return written


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        stale = []
        for path in fresh:
            committed = PROTOS / path.name
            if "--write" in sys.argv:
                committed.write_text(path.read_text())
            elif not committed.exists() or committed.read_text() != path.read_text():
                stale.append(committed)
                old = committed.read_text().splitlines() if committed.exists() else []
                diff = difflib.unified_diff(old, path.read_text().splitlines(), lineterm="")
                sys.stderr.write("\n".join(list(diff)[:40]) + "\n")
    if stale:
        names = ", ".join(p.name for p in stale)
        sys.stderr.write(f"stale gRPC stubs: {names}; run `python .ci/grpc_stubs.py --write`\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
