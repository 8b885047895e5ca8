"""Running `userphoto serve`: the serving app on granian, configured from `[server]`.

granian (Rust: hyper + tokio) owns every HTTP concern — HTTP/1.1 framing, pipelining,
`Expect: 100-continue`, HTTP/2 over TLS (ALPN), header size and read timeout, write
back-pressure, graceful shutdown, worker supervision. The app speaks RSGI (`PhotoServer.__rsgi__`).

    [server]
    host = "127.0.0.1"        port = 8080        workers = 1
    tls_cert = ""             tls_key = ""      # both set: HTTPS (and HTTP/2 via ALPN)
    header_timeout = 10       # s to receive a request head
    max_connections = 4096    # connections served at once per worker; more wait to be accepted
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
H2_STREAMS = 16  # HTTP/2 streams open at once per connection (granian's default: 200)
H2_SEND_BUFFER = 64 * 1024  # bytes queued per HTTP/2 stream ahead of the client's window
# The `serve` process, for its workers to die with (internal: not a USERPHOTO_ setting).
MAIN_PID = "_USERPHOTO_SERVE_PID"


def create_app() -> Any:
    """The RSGI app of one worker process (granian imports and calls this in each worker)."""
    from ..app import App
    from ..workers import die_with
    from .logs import configure
    from .server import PhotoServer

    # granian does not end its workers when the main process is killed outright (`kill -9`
    # runs no handler): they would go on serving, re-parented to init, and hold the port.
    # A parent-death signal plus a watchdog on the main process's pid (in case it died
    # before this line) end this worker with it; its image workers end with it in turn.
    if main := os.environ.get(MAIN_PID):
        die_with(int(main))
    app = App.load(os.environ.get("USERPHOTO_HOME") or None)
    configure(str(app.settings.get("server", "access_log", "json")))  # structured lines
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
    cert = settings.get("server", "tls_cert", "")
    key = settings.get("server", "tls_key", "")
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
    from granian.http import HTTP1Settings, HTTP2Settings
    from granian.log import LogLevels
    from granian.server import Server

    tls = tls_paths(settings)
    os.environ[MAIN_PID] = str(os.getpid())  # inherited by the workers (see create_app)
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
        # A connection cap per worker; beyond it connections wait, silently, in the backlog.
        # An idle or slow connection costs little here (~14 KB: 1,000 idle and 512 busy took
        # 20 MB), while a cap they can fill locks everyone else out: with 512, that flood
        # left new clients unserved for 15 s. Caps per client, answered with 503: nginx.
        backpressure=int(settings.get("server", "max_connections", 4096)),
        http1_settings=HTTP1Settings(
            header_read_timeout=int(float(settings.get("server", "header_timeout", 10)) * 1000),
            keep_alive=True,
            max_buffer_size=HEAD_BUFFER,
        ),
        # HTTP/2 (over TLS, or h2c on a plain port): each open stream holds its whole answer
        # until the client reads it, so a client that opens streams and never reads held
        # 200 answers per connection (+49 MB for 240 KB photos). 16 streams bound that to
        # 16 answers; a browser queues the rest. HTTP/1.1 needs nothing: the server reads
        # the next pipelined request only once the previous answer is written out.
        http2_settings=HTTP2Settings(
            max_concurrent_streams=H2_STREAMS,
            max_send_buffer_size=H2_SEND_BUFFER,
        ),
        ssl_cert=tls[0] if tls else None,
        ssl_key=tls[1] if tls else None,
        respawn_failed_workers=True,
        respawn_interval=1.0,
        workers_kill_timeout=int(settings.get("server", "shutdown_seconds", 10)),
        log_level=LogLevels.warning,
        log_access=False,  # ours is structured and leaves tokens and queries out
    )
    server.serve()
