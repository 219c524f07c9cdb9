"""A publisher process for the concurrency and crash tests.

python -m tests.model_store.publisher STORE NAME COUNT MODEL [EXTRA_FILE]
publishes COUNT versions (MODEL as model.onnx, EXTRA_FILE as blob.bin) and prints each number.
"""

from __future__ import annotations

import sys
from pathlib import Path

from model_store import open_store
from tests.model_store.helpers import manifest_for


def main(argv: list[str]) -> None:
    store_dir, name, count, model = argv[:4]
    files = {"model.onnx": Path(model)}
    if len(argv) > 4:
        files["blob.bin"] = Path(argv[4])
    store = open_store(store_dir)
    for _ in range(int(count)):
        version = store.publish(name, files, manifest_for(name))
        sys.stdout.write(f"{version}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
