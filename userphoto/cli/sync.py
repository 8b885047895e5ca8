"""`userphoto sync`: load users and directory photos from LDAP / Active Directory."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from ..errors import UserPhotoError
from ..model import User
from ..store import Store
from .root import Context, cli, pass_ctx

if TYPE_CHECKING:  # LDAP code loads only when a sync command runs
    from ..directory.config import DirectoryConfig
    from ..directory.status import SyncReport
    from ..directory.sync import SyncEngine


class NoDirectory(UserPhotoError):
    code = "no_directory"


def directory_config(ctx: Context) -> DirectoryConfig:
    config = ctx.app.directory
    if config is None:
        raise NoDirectory(
            f"No directory is configured. Add a [directory] section with uri and base_dn to "
            f"{ctx.app.settings.config_path} (README: Directory)."
        )
    return config


@cli.command("sync")
@click.option("--full", is_flag=True, help="Read every user (initial load; notices deletions).")
@click.option("--watch", is_flag=True, help="Keep running: pick up changes within seconds.")
@click.option("--status", "show_status", is_flag=True, help="Show the last runs and problems.")
@click.option("--user", "user_key", metavar="ADDRESS", help="With --status: one user's sync facts.")
@click.option("--json", "as_json", is_flag=True, help="With --status: the same facts as JSON.")
@click.option(
    "--force", is_flag=True, help="With --full: mark users gone even beyond delete_guard."
)
@click.option("-v", "--verbose", is_flag=True, help="Log retries and every run.")
@pass_ctx
def sync(
    ctx: Context,
    full: bool,
    watch: bool,
    show_status: bool,
    user_key: str | None,
    force: bool,
    verbose: bool,
    as_json: bool,
) -> None:
    """Sync users and their thumbnailPhoto from the directory into userphoto.

    Without options: a delta since the last run (a full sync the first time).

    \b
    Examples:
      userphoto sync --full          initial load; marks users gone from the directory
      userphoto sync                 what changed since the last run
      userphoto sync --watch         continuously: changes pushed by OpenLDAP (syncprov),
                                     else polled every watch_interval
      userphoto sync --status        last full/delta/watch runs, counts, errors
      userphoto sync --status --json the same as JSON, for monitoring
      userphoto sync --status --user ada@contoso.example
                                     one user's directory facts (--json too)

    The directory photo fills the directory-thumbnail slot only: once a user has an HD photo,
    the HD store is authoritative. Unchanged photos and users are not rewritten.
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    if sum((full, watch, show_status)) > 1:
        raise click.UsageError("Give at most one of --full, --watch, --status.")
    if force and not full:
        raise click.UsageError("--force only applies to --full (the run that marks users gone).")
    if user_key and not show_status:
        raise click.UsageError("--user goes with --status.")
    if as_json and not show_status:
        raise click.UsageError("--json goes with --status.")
    if show_status:
        if as_json:
            click.echo(json.dumps(_status_record(ctx.app.store, user_key), indent=2))
        else:
            _status(ctx.app.store, user_key)
        return
    from ..directory.sync import SyncEngine
    from ..directory.sync.photos import use_pool

    config = directory_config(ctx)
    use_pool(ctx.app.pool)  # directory photos in the App's pool, under the [limits] job limits
    engine = SyncEngine(ctx.app.store, config)
    if watch:
        _watch(ctx, engine)
        return
    report = engine.full(force=force) if full else engine.delta()
    click.echo(report.summary())
    for problem in report.problems[:20]:
        click.echo(f"  problem: {problem}", err=True)
    if len(report.problems) > 20:
        click.echo(f"  ... {len(report.problems) - 20} more (userphoto sync --status)", err=True)
    if not report.ok:
        raise SystemExit(1)


# One active `sync --watch` per store: it holds this lease and renews it every LEASE_RENEW
# seconds; a standby takes over once LEASE_TTL passes without renewal (a killed process).
LEASE = "directory.sync"
LEASE_TTL = 6.0
LEASE_RENEW = 2.0
STANDBY_POLL = 1.0


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _watch(ctx: Context, engine: SyncEngine) -> None:
    from ..directory.sync.watch import watch as follow

    config = engine.config
    store = ctx.app.store
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    drain = None
    if config.writeback:
        from ..directory.writeback import WriteBack

        drain = WriteBack(store, config).drain

    def after(report: SyncReport) -> None:
        if report.changed:
            click.echo(report.summary(), err=not report.ok)

    me = _holder()
    while not stop.is_set():
        if not _wait_for_lease(store, me, stop):
            break
        click.echo(f"active ({me}); Ctrl-C stops")
        cycle = threading.Event()  # ends this turn as the active sync
        keeper = threading.Thread(
            target=_keep_lease, args=(store, me, stop, cycle), name="sync-lease", daemon=True
        )
        keeper.start()
        try:
            follow(engine, cycle, after_cycle=after, drain=drain, announce=click.echo)
        finally:
            cycle.set()
            keeper.join()
        if not stop.is_set():
            click.echo(f"{me} lost the sync lease; standing by", err=True)
    with contextlib.suppress(UserPhotoError):
        store.release_lease(LEASE, me)  # a clean stop hands over at once
    click.echo("stopped")


def _wait_for_lease(store: Store, me: str, stop: threading.Event) -> bool:
    """Block as the standby until this process holds the lease (False: asked to stop)."""
    said = None
    while not stop.is_set():
        try:
            if store.take_lease(LEASE, me, LEASE_TTL) is not None:
                return True
            other = store.get_lease(LEASE)
            if other is not None and other.holder != said:
                click.echo(
                    f"standby ({me}): {other.holder} is the active sync since "
                    f"{other.since:%Y-%m-%d %H:%M:%S}; taking over if it stops renewing"
                )
                said = other.holder
        except UserPhotoError as exc:  # the store is unreachable: keep waiting
            click.echo(f"standby ({me}): {exc}", err=True)
        stop.wait(STANDBY_POLL)
    return False


def _keep_lease(store: Store, me: str, stop: threading.Event, cycle: threading.Event) -> None:
    """Renew the lease while this process is active; end the turn when it is lost."""
    while not cycle.is_set():
        if stop.wait(LEASE_RENEW):
            cycle.set()
            return
        try:
            if store.take_lease(LEASE, me, LEASE_TTL) is None:
                cycle.set()  # another process took over (we stalled past the TTL)
        except UserPhotoError:
            lease = None
            with contextlib.suppress(UserPhotoError):
                lease = store.get_lease(LEASE)
            if lease is None or lease.holder != me or lease.expires < datetime.now(UTC):
                cycle.set()


def _status(store: Store, user_key: str | None) -> None:
    from ..directory import status

    if user_key:
        _user_status(store, user_key)
        return
    click.echo(
        status.format_status(status.load(store), pending_writebacks=len(store.pending_writebacks()))
    )
    lease = store.get_lease(LEASE)
    if lease is None:
        click.echo("active sync: none (no `sync --watch` holds the lease)")
    elif lease.expires < datetime.now(UTC):
        click.echo(
            f"active sync: none; {lease.holder} stopped renewing at "
            f"{lease.expires:%Y-%m-%d %H:%M:%S} UTC (a standby takes over)"
        )
    else:
        click.echo(
            f"active sync: {lease.holder} since {lease.since:%Y-%m-%d %H:%M:%S} UTC "
            f"(lease renewed until {lease.expires:%H:%M:%S})"
        )


def _status_record(store: Store, user_key: str | None) -> dict[str, Any]:
    """What `sync --status` prints, as data: the recorded runs, the lease, or one user."""
    from ..directory import status

    if user_key:
        return _user_record(store, user_key)
    lease = store.get_lease(LEASE)
    return {
        "runs": status.load(store),  # "full", "delta", "watch", "last_ok_<mode>" as recorded
        "pending_writebacks": len(store.pending_writebacks()),
        "active_sync": None
        if lease is None
        else {
            "holder": lease.holder,
            "since": lease.since.isoformat(timespec="seconds"),
            "expires": lease.expires.isoformat(timespec="seconds"),
            "renewing": lease.expires >= datetime.now(UTC),
        },
    }


def _find(store: Store, key: str) -> User:
    from ..errors import UnknownUser

    user = store.find_user(key)
    if user is None:
        raise UnknownUser(f"No user {key!r}.")
    return user


def _user_record(store: Store, key: str) -> dict[str, Any]:
    user = _find(store, key)
    a = user.attributes
    thumb = store.get_directory_thumbnail(user.id)
    return {
        "address": user.address,
        "source": user.source,
        "directory_gone": user.directory_gone,
        "dn": a.get("dn"),
        "directory_id": a.get("directory_id"),
        "directory_changed": a.get("directory_changed"),
        "directory_photo": None
        if thumb is None
        else {
            "usable": bool(thumb.jpeg),
            "width": thumb.width,
            "height": thumb.height,
            "written_by_us": thumb.written_by_us,
            "raw_size": thumb.raw_size,
            "seen": thumb.seen.isoformat(timespec="seconds"),
            "problem": thumb.problem or None,
        },
    }


def _user_status(store: Store, key: str) -> None:
    user = _find(store, key)
    a = user.attributes
    click.echo(
        f"{user.address}: source {user.source}"
        + (", GONE from the directory" if user.directory_gone else "")
    )
    click.echo(f"  dn: {a.get('dn', '-')}")
    click.echo(f"  directory id: {a.get('directory_id', '-')}")
    click.echo(f"  last directory change seen: {a.get('directory_changed', '-')}")
    thumb = store.get_directory_thumbnail(user.id)
    if thumb is None:
        click.echo("  directory photo: none")
        return
    who = "written back by userphoto" if thumb.written_by_us else "from the directory"
    usable = f"{thumb.width}×{thumb.height} JPEG" if thumb.jpeg else "no usable photo"
    click.echo(
        f"  directory photo served: {usable}, {who}; the directory's value: "
        f"{thumb.raw_size:,} bytes, seen {thumb.seen.isoformat(timespec='seconds')}"
    )
    if thumb.problem:
        click.echo(f"  problem with the directory's value: {thumb.problem}")
