"""`userphoto serve`: the HTTP APIs and web pages in one process."""

from __future__ import annotations

import errno
import socket

import click

from ..errors import UserPhotoError
from .root import Context, cli, pass_ctx


@cli.command("serve")
@click.option(
    "--host", default=None, help="Address to listen on (default [server] host, 127.0.0.1)."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port (default [server] port, 8080).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes (each keeps its own answer cache; a dead one is restarted).",
)
@pass_ctx
def serve(ctx: Context, host: str | None, port: int | None, workers: int) -> None:
    """Serve the native, Graph, EWS and Libravatar photo APIs and the web pages.

    Runs on granian (HTTP/1.1; HTTPS and HTTP/2 when [server] tls_cert and tls_key are set).
    SIGTERM or Ctrl-C lets in-flight requests finish ([server] shutdown_seconds) and stops.
    One access-log line per request goes to stderr ([server] access_log = json|logfmt|off);
    /metrics, /healthz and /readyz are for the operator.

    \b
    Examples:
      userphoto serve                            127.0.0.1:8080 (from userphoto.toml)
      userphoto serve --host 0.0.0.0 --port 80
      curl -H "Authorization: Bearer $TOKEN" localhost:8080/v1/users/ada@contoso.example/photo
    """
    import os

    from ..api.run import run, tls_paths

    settings = ctx.app.settings
    if not settings.home.is_dir():
        click.echo(f"created the data folder {settings.home}", err=True)
    settings.make_home()
    settings.require_files()  # a missing TLS key or secret file: the error `config check` shows
    ctx.app.store  # noqa: B018 - create and migrate the store once, before workers start
    settings.public_url  # noqa: B018 - a bad [server] public_url is one clear line, here
    os.environ["USERPHOTO_HOME"] = str(settings.home)
    host = host or settings.server.host
    port = settings.server.port if port is None else port
    # Bind first, then say where we serve: a taken port is one clear line, not a traceback.
    try:
        socket.create_server((host, port)).close()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserPhotoError(
                f"port {port} on {host} is in use (another `userphoto serve`?); pick another "
                "with `userphoto serve --port N` or [server] port in userphoto.toml"
            ) from None
        raise UserPhotoError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    scheme = "https" if tls_paths(settings) else "http"
    click.echo(f"userphoto serving on {scheme}://{host}:{port}/ (Ctrl-C stops)", err=True)
    run(settings, host, port, workers=workers)
