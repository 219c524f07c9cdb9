"""What service/http/runner.py relies on from uvicorn, which only runs the process: if a release
changes one of these members, this fails before a server does (pyproject.toml pins the minor
range they were tested with).

uvicorn runs in a thread of the test process here, with our real connections and app over an
empty store, so that the members are exercised as the server uses them, not only looked up."""

from __future__ import annotations

import inspect
import signal
import threading
import time
from pathlib import Path

import uvicorn
from uvicorn.server import ServerState

from service.http.app import create_app
from service.http.connection import HttpConnection
from service.http.runner import DrainingServer, protocol_factory
from service.settings import Settings
from tests.service.helpers import free_port
from tests.service.raw import Reader, connect, request


def test_the_members_the_runner_uses_exist() -> None:
    state = ServerState()
    assert isinstance(state.connections, set)
    assert isinstance(state.tasks, set)
    assert list(inspect.signature(uvicorn.Server.handle_exit).parameters) == [
        "self", "sig", "frame",
    ]  # fmt: skip
    for name in ("serve", "run", "shutdown"):
        assert callable(getattr(uvicorn.Server, name))
    config = uvicorn.Config(lambda: None, timeout_graceful_shutdown=3)
    assert config.timeout_graceful_shutdown == 3
    server = uvicorn.Server(config)
    assert (server.should_exit, server.force_exit, server.started) == (False, False, False)
    assert server.server_state.connections == set()


def _start(tmp_path: Path, linger_s: float = 0.0) -> tuple[DrainingServer, threading.Thread, str]:
    port = free_port()
    settings = Settings(
        store=str(tmp_path / "store"),
        cache_dir=str(tmp_path / "cache"),
        providers="cpu",
        model_control_mode="none",
        port=port,
    )
    service = create_app(settings)
    config = uvicorn.Config(
        service.app,
        host="127.0.0.1",
        port=port,
        http=protocol_factory(service),
        ws="none",
        lifespan="on",
        log_config=None,
    )
    server = DrainingServer(config, service, grace_s=5.0, linger_s=linger_s)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn stopped"
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def test_uvicorn_runs_our_connections_and_shuts_them_down(tmp_path: Path) -> None:
    """The factory is called per connection with uvicorn's keywords, its connections are in
    `server_state.connections`, and shutdown calls `shutdown()` on each, then waits for them."""
    server, thread, url = _start(tmp_path)
    with connect(url) as sock:
        sock.sendall(request("GET", "/v2/health/live"))
        reader = Reader(sock)
        assert reader.response()[0] == 200
        (connection,) = server.server_state.connections
        assert isinstance(connection, HttpConnection)
        server.should_exit = True  # an idle keep-alive connection is closed at once
        assert reader.closed(within=5.0)
    thread.join(10)
    assert not thread.is_alive()
    assert server.server_state.connections == set()


def test_a_signal_drains_through_handle_exit(tmp_path: Path) -> None:
    """`handle_exit` starts the drain (readiness false), which then sets `should_exit` and
    `config.timeout_graceful_shutdown` for uvicorn's own shutdown."""
    server, thread, url = _start(tmp_path, linger_s=1.0)
    server.handle_exit(signal.SIGTERM, None)
    time.sleep(0.2)
    with connect(url) as sock:  # the listener stays open for the linger, answering 503
        sock.sendall(request("GET", "/v2/health/ready"))
        status, headers, _ = Reader(sock).response()
    assert (status, headers["connection"]) == (503, "close")
    thread.join(10)
    assert not thread.is_alive()
    assert server.should_exit
    assert server.config.timeout_graceful_shutdown is not None
