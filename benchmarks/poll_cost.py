"""What one store poll costs at 500 and 1,000 models: CPU seconds and S3 requests, reading the
whole store as a poll did before change markers, against reading the change marker alone.

    python -m benchmarks.poll_cost [--models 500,1000] [--backends local,s3] [--polls 3]

For each store size and backend (a directory; SeaweedFS through the S3 backend, started by the
harness), it publishes that many tiny models (benchmarks/sized_models.py), then times the
reads a poll makes, in this process, the way `ModelManager._poll_forever` makes them:

- full: list the models (a listing, and one per model for its complete versions), then per
  model its versions, its config and, for an alias policy, its aliases (what `sync` reads);
- marker: one read of the store-wide change marker, which is all an unchanged store costs a
  poll now (lifecycle/store_changes.py; a full poll still runs every 60 s at the latest).

CPU is this process's CPU time per poll (the store client's work; the S3 server's is not in
it), S3 requests are counted on botocore's `before-send` event. Writes
benchmarks/results/poll-cost/<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.reporting import machine_summary, write_json_record
from benchmarks.sized_models import publish_sized
from model_store import ModelStore, open_store

RESULTS = Path(__file__).resolve().parent / "results" / "poll-cost"


def full_poll(store: ModelStore) -> int:
    names = store.list_models()
    for name in names:
        store.list_versions(name)
        config = store.config(name)
        if config.version_policy.kind in ("alias", "canary"):
            store.aliases(name)
    return len(names)


def marker_poll(store: ModelStore) -> int:
    store.changes()
    return 0


def measure(store: ModelStore, poll: Callable[[ModelStore], int], polls: int) -> dict[str, Any]:
    requests = [0]
    client = getattr(store.backend, "client", None)
    if client is not None:

        def count(**_: Any) -> None:
            requests[0] += 1

        client.meta.events.register("before-send", count)
    cpu, wall = [], []
    for _ in range(polls):
        c0, w0 = time.process_time(), time.perf_counter()
        poll(store)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    if client is not None:
        client.meta.events.unregister("before-send", count)
    return {
        "cpu_s_per_poll": statistics.median(cpu),
        "wall_s_per_poll": statistics.median(wall),
        "s3_requests_per_poll": requests[0] / polls if client is not None else None,
    }


def fill(uri: str, count: int, scratch: Path) -> float:
    """`count` models: published one by one in a directory; on S3 (where a publish takes
    about a second on this machine) the first is published and copied object by object under
    the other names, its manifest renamed, with the same objects a publish leaves."""
    started = time.perf_counter()
    if not uri.startswith("s3://"):
        for i in range(count):
            publish_sized(uri, f"m{i:04d}", 256, float(i), scratch)
        return time.perf_counter() - started
    publish_sized(uri, "m0000", 256, 0.0, scratch)
    backend: Any = open_store(uri).backend
    base = backend._root + "m0000/"
    objects = {
        obj["Key"][len(base) :]: backend.client.get_object(Bucket=backend.bucket, Key=obj["Key"])[
            "Body"
        ].read()
        for page in backend._list(base)
        for obj in page.get("Contents", [])
    }

    def copy(i: int) -> None:
        name = f"m{i:04d}"
        for rest, body in objects.items():
            if rest.endswith("manifest.json"):
                body = body.replace(b'"m0000"', f'"{name}"'.encode())
            key = f"{backend._root}{name}/{rest}"
            backend.client.put_object(Bucket=backend.bucket, Key=key, Body=body)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(copy, range(1, count)))
    backend.write_changes(b"filled")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="500,1000")
    parser.add_argument("--backends", default="local,s3")
    parser.add_argument("--polls", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.models.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="poll-cost-") as tmp:
        root = Path(tmp)
        for backend in args.backends.split(","):
            seaweed = None
            if backend == "s3":
                import os

                from benchmarks.harness.seaweed import SeaweedS3

                seaweed = SeaweedS3(root / "seaweed")
                seaweed.start()
                os.environ.update(seaweed.env())
            try:
                for count in sizes:
                    if seaweed is not None:
                        uri = seaweed.uri(f"p{uuid.uuid4().hex[:8]}/models")
                    else:
                        uri = str(root / f"store-{count}")
                    build_s = fill(uri, count, root / "scratch")
                    store = open_store(uri)
                    for kind, poll in (("full", full_poll), ("marker", marker_poll)):
                        figures = measure(store, poll, args.polls)
                        row = {"backend": backend, "models": count, "poll": kind,
                               "store_build_s": build_s, **figures}  # fmt: skip
                        rows.append(row)
                        print(json.dumps(row))
            finally:
                if seaweed is not None:
                    seaweed.stop()
    report = {
        "command": "python -m benchmarks.poll_cost "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_summary(),
        "rows": rows,
    }
    path = write_json_record(RESULTS, report)
    print(f"written {path}")


if __name__ == "__main__":
    main()
