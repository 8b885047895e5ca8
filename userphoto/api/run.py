"""Running `userphoto serve`: the serving app on granian, configured from `[server]`.

granian (Rust: hyper + tokio) owns every HTTP concern — HTTP/1.1 framing, pipelining,
`Expect: 100-continue`, HTTP/2 over TLS (ALPN), header size and read timeout, write
back-pressure, graceful shutdown, worker supervision. The app speaks RSGI (`PhotoServer.__rsgi__`).

    [server]
    host = "127.0.0.1"        port = 8080        workers = 1
    tls_cert = ""             tls_key = ""      # both set: HTTPS (and HTTP/2 via ALPN)
    header_timeout = 10       # s to receive a request head
    max_connections = 512     # connections served at once per worker; more wait to be accepted
    shutdown_seconds = 10     # SIGTERM: in-flight requests get this long to finish
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import UserPhotoError

HEAD_BUFFER = 64 * 1024  # request heads beyond this get 431


def create_app() -> Any:
    """The RSGI app of one worker process (granian imports and calls this in each worker)."""
    from ..app import App
    from .logs import configure
    from .server import PhotoServer

    app = App.load(os.environ.get("USERPHOTO_HOME") or None)
    configure(app.settings.server.access_log)  # structured lines
    server = PhotoServer(app)
    # The cyclic garbage collector was the largest single cost of the serving process under
    # cache misses (py-spy, --gil): every cached answer is a few container objects that live
    # long, so collections came often and walked the growing cache. What exists at start-up
    # is frozen out of its reach, and a collection waits for 50,000 new objects instead of
    # 700 (reference counting still frees everything else at once): 1.1-1.5x the cold
    # misses per second in alternating runs (BENCHMARKS.md).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    return server


def tls_paths(settings: Settings) -> tuple[Path, Path] | None:
    cert = settings.server.tls_cert
    key = settings.server.tls_key
    if not cert and not key:
        return None
    if not (cert and key):
        raise UserPhotoError(
            "Set both [server] tls_cert and tls_key (PEM files), or neither.",
            code="config",
        )
    paths = (Path(str(cert)).expanduser(), Path(str(key)).expanduser())
    for path in paths:
        if not path.is_file():
            raise UserPhotoError(f"TLS file {path} does not exist ([server] tls_cert/tls_key).")
    return paths


def run(settings: Settings, host: str, port: int, *, workers: int = 1) -> None:
    """Serve until SIGTERM or Ctrl-C (in-flight requests finish first, within a bound)."""
    from granian.constants import HTTPModes, Interfaces, Loops, RuntimeModes, TaskImpl
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    tls = tls_paths(settings)
    server = Server(
        "userphoto.api.run:create_app",
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        factory=True,
        workers=workers,
        # granian's knobs, measured in bench/serve_knobs.py (BENCHMARKS.md, Serving): none is
        # both faster and safe here. Its Rust task implementation costs less CPU per cached
        # answer but breaks anyio (`asyncio.all_tasks()` misses its tasks: Starlette's
        # run_in_threadpool fails); the multi-threaded runtime, pipeline flush, thread counts
        # and back-pressure made no difference beyond the noise; and `http1` mode does not
        # enforce the head size limit (max_buffer_size, 431) in granian 2.8.
        runtime_mode=RuntimeModes.st,
        task_impl=TaskImpl.asyncio,
        loop=Loops.uvloop,
        http=HTTPModes.auto,
        websockets=False,
        backlog=2048,
        backpressure=settings.server.max_connections,  # a connection cap
        http1_settings=HTTP1Settings(
            header_read_timeout=int(settings.server.header_timeout * 1000),
            keep_alive=True,
            max_buffer_size=HEAD_BUFFER,
        ),
        ssl_cert=tls[0] if tls else None,
        ssl_key=tls[1] if tls else None,
        respawn_failed_workers=True,
        respawn_interval=1.0,
        workers_kill_timeout=settings.server.shutdown_seconds,
        log_level=LogLevels.warning,
        log_access=False,  # ours is structured and leaves tokens and queries out
    )
    server.serve()
