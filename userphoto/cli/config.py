"""`userphoto config check | docs`: validate the settings and show what is in effect."""

from __future__ import annotations

from pathlib import Path

import click

from .. import config as conf
from . import Context, cli, pass_ctx, require_data_folder


@cli.group("config")
def config_group() -> None:
    """Check userphoto.toml and USERPHOTO_* overrides; print the settings reference.

    \b
    Examples:
      userphoto config check
      userphoto config docs > docs/configuration.md
    """


@config_group.command("check")
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The file to check (default: userphoto.toml in the data folder).",
)
@pass_ctx
def config_check(ctx: Context, file: Path | None) -> None:
    """Validate a config file and the USERPHOTO_<SECTION>_<KEY> environment overrides, then
    print every setting in effect and where it comes from (file, environment, default).

    Secrets (the bind password, a password in the store URL) are masked. Exits 1 on an
    error: an unknown section or key (with the closest known one), a value of the wrong
    type, or a [directory] setting that cannot work.

    \b
    Examples:
      userphoto config check
      userphoto config check --file /etc/userphoto/userphoto.toml
      USERPHOTO_SERVER_PORT=9090 userphoto config check
    """
    if file is None:
        require_data_folder(ctx.home)
    settings = conf.Settings.load(ctx.home, file)
    from ..directory.config import DirectoryConfig  # its values' own rules (sizes, URIs)

    DirectoryConfig.from_settings(settings)
    shown = settings.config_path if settings.config_path.exists() else "none (all defaults)"
    click.echo(f"# config file: {shown}")
    click.echo("# valid; the settings in effect (secrets masked):")
    section = None
    for key, value, origin in settings.effective():
        if key.section != section:
            section = key.section
            click.echo(f"\n[{section}]")
        if value is None:
            click.echo(f"# {key.name} is unset")
            continue
        where = f"environment {key.env}" if origin == "environment" else origin
        click.echo(f"{key.name} = {conf.toml_value(value)}   # {where}")


@config_group.command("docs")
def config_docs() -> None:
    """Print the settings reference (docs/configuration.md) from the one declaration.

    \b
    Example:
      userphoto config docs > docs/configuration.md
    """
    click.echo(conf.markdown(), nl=False)
