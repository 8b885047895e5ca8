"""`userphoto store ...`: the store itself (moving a deployment from SQLite to PostgreSQL)."""

from __future__ import annotations

import click

from ..errors import InvalidArgument
from ..store import open_store, redact
from ..store.copy import copy_store
from .root import Context, cli, pass_ctx


@cli.group("store")
def store_group() -> None:
    """The store behind this deployment: SQLite (embedded) or PostgreSQL (many nodes).

    \b
    Example:
      userphoto store copy --to postgresql://userphoto@db.contoso.example/userphoto
    """


@store_group.command("copy")
@click.option(
    "--to",
    "target_url",
    required=True,
    metavar="URL",
    help="The store to fill: postgresql://USER@HOST/DB (or sqlite:///PATH).",
)
@click.option("--batch", default=500, show_default=True, help="Rows per transaction.")
@pass_ctx
def store_copy(ctx: Context, target_url: str, batch: int) -> None:
    """Copy everything in this deployment's store into another store, then verify it.

    Users, aliases, every photo version with its renditions (byte for byte), removal
    records, directory thumbnails, tokens, partners, the audit log and sync state all move.
    Afterwards both stores are read in full: row counts and SHA-256 hashes must match.

    Stop `serve` and `sync` first so nothing changes during the copy. An interrupted copy
    resumes where it stopped when run again; a repeated copy moves nothing.

    \b
    Example (SQLite to PostgreSQL):
      createdb -O userphoto userphoto
      userphoto store copy --to postgresql://userphoto@db.contoso.example/userphoto
      then in userphoto.toml:  [store] url = "postgresql://userphoto@db.contoso.example/userphoto"
    """
    source_url = ctx.app.settings.store_url
    if target_url.rstrip("/") == source_url.rstrip("/"):
        raise InvalidArgument("--to names the store this deployment already uses.")
    if batch < 1:
        raise InvalidArgument("--batch must be at least 1.")
    source = ctx.app.store
    target = open_store(target_url)
    try:
        click.echo(f"copying {redact(source_url)} -> {redact(target_url)}")
        report = copy_store(source, target, batch=batch)
    finally:
        target.close()
    for t in report.tables:
        click.echo(
            f"  {t.name:21} {t.moved:>9,} copied  {t.rows:>9,} in all  sha256 {t.digest[:16]}"
        )
    rows = sum(t.rows for t in report.tables)
    click.echo(
        f"verified: {len(report.tables)} tables, {rows:,} rows; counts and hashes match "
        f"({report.moved:,} rows moved by this run)."
    )
    click.echo(f'next: set [store] url = "{redact(target_url)}" in {ctx.app.settings.config_path}')
