"""`userphoto init`."""

from __future__ import annotations

import click

from ..store import redact
from .root import Context, cli, pass_ctx


@cli.command()
@pass_ctx
def init(ctx: Context) -> None:
    """Create the data folder, a commented userphoto.toml and an empty store.

    Safe to run again: existing configuration and data are kept, and the store's schema is
    migrated to the current version.

    \b
    Examples:
      userphoto init
      userphoto --home /srv/userphoto init      another data folder
      USERPHOTO_HOME=/srv/userphoto userphoto init
    """
    settings = ctx.app.settings
    created = settings.write_default()
    _ = ctx.app.store  # opening the store creates or migrates it
    click.echo(f"data folder: {settings.home}")
    click.echo(f"config:      {settings.config_path} ({'created' if created else 'kept'})")
    click.echo(f"store:       {redact(settings.store_url)}")
