"""`userphoto diagnose` and `userphoto doctor`: why a photo does or does not show."""

from __future__ import annotations

import json
import sys

import click

from .. import diagnose as troubleshooter
from ..directory import status as sync_status
from ..directory.probe import live_directory_check
from ..doctor import doctor as check_everyone
from ..model import ClientProfile
from .photos import size_param
from .root import Context, cli, pass_ctx


@cli.command()
@click.argument("target")
@click.option(
    "--viewer", metavar="ADDRESS", help="Who looks: a member's (or partner user's) address."
)
@click.option(
    "--external",
    metavar="DOMAIN",
    help="Who looks: a user of this domain; without --token their request carries no "
    "credential (answered as an anonymous one), with it the token decides.",
)
@click.option("--anonymous", is_flag=True, help="Who looks: an anonymous caller (Libravatar, web).")
@click.option(
    "--token", metavar="JWT", help="Check the credential a caller presents (e.g. a partner JWT)."
)
@click.option(
    "--client",
    type=click.Choice([c.value for c in ClientProfile]),
    default="hd",
    show_default=True,
    help="legacy = Lync 2010 (SD only), hd = Lync 2013+, web.",
)
@click.option("--size", callback=size_param, help="Requested size: 96, 240, HR648x648 ...")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable verdict.")
@pass_ctx
def diagnose(
    ctx: Context,
    target: str,
    viewer: str | None,
    external: str | None,
    anonymous: bool,
    token: str | None,
    client: str,
    size: int | None,
    as_json: bool,
) -> None:
    """Explain what a viewer sees of TARGET's photo, why, and the commands that fix it.

    Runs the same resolution rule the APIs serve from (visibility → HD photo store →
    directory thumbnail → web address → default), prints each step's verdict, names the
    symptom (own photo not shown / others can't see it / no HD photo) and every cause.
    Without a viewer option the viewer is a member of the organization. Also shows what
    each API answers that viewer (native, Graph, EWS, /avatar/).

    Every cause between the viewer and the photo is listed, with its fix; apply the fixes
    in the order printed. A user's own choice (picture hidden or default, visibility
    'nobody') is marked as such: its fix overrides the user.

    Exits 1 when a cause is at error level (a fault to repair), 0 otherwise.

    \b
    Examples:
      userphoto diagnose ada@contoso.example
      userphoto diagnose ada@contoso.example --viewer ada@contoso.example   # her own view
      userphoto diagnose ada@contoso.example --external fabrikam.example
      userphoto diagnose ada@contoso.example --client legacy --size 240
    """
    if sum(map(bool, (viewer, external, anonymous))) > 1:
        raise click.UsageError("Give at most one of --viewer, --external, --anonymous.")
    verdict = troubleshooter.diagnose(
        ctx.app,
        target,
        viewer=viewer,
        external=external,
        anonymous=anonymous,
        token=token,
        client=client,
        size=size,
        directory_check=live_directory_check(ctx.app.settings),
    )
    click.echo(json.dumps(verdict.to_dict(), indent=2) if as_json else verdict.text())
    if verdict.errors:
        sys.exit(1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@pass_ctx
def doctor(ctx: Context, as_json: bool) -> None:
    """Check every user's photo at once: counts per finding, examples, worst offenders.

    Exits 1 when anything is at error level (for monitoring), 0 otherwise.
    `userphoto diagnose ADDRESS` then explains any single user.

    \b
    Examples:
      userphoto doctor
      userphoto doctor --json | jq '.findings'    for monitoring
    """
    app = ctx.app
    total = app.store.count_users()
    show = total > 20_000 and not as_json and sys.stderr.isatty()
    with click.progressbar(length=total, label="checking", file=sys.stderr, hidden=not show) as bar:

        def phase(text: str) -> None:
            bar.label = text
            bar.render_progress()  # shows the new step at once

        report = check_everyone(
            app, progress=bar.update, phase=phase, sync_runs=sync_status.load(app.store)
        )
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.text())
    if report.errors:
        sys.exit(1)
