"""`userphoto demo`: load the contoso.example demo organization."""

from __future__ import annotations

import click

from .. import demo as demo_org
from . import Context, cli, pass_ctx


@cli.command()
@pass_ctx
def demo(ctx: Context) -> None:
    """Load the contoso.example demo organization (~50 users with generated photos).

    Some have no photo, one has an sd_only account, one is disabled, one hides their photo
    and one shows a picture from a web address. Users that already exist are left alone,
    so running it twice is harmless.
    """
    app = ctx.app
    app.settings.write_default()
    added = photos = 0
    everyone = list(demo_org.people())
    with click.progressbar(everyone, label="demo users", show_pos=True) as bar:
        for person in bar:
            if app.store.find_user(person.user.address):
                continue
            app.store.add_user(person.user, actor="demo", via="demo")
            added += 1
            if person.photo is not None:
                app.photos.set(person.user.address, person.photo, actor="demo", via="demo")
                photos += 1
    click.echo(
        f"{demo_org.DOMAIN}: {added} users added ({photos} with photos), "
        f"{len(everyone) - added} already present"
    )
    click.echo(f"try: userphoto get adele.vance@{demo_org.DOMAIN} --size 240 -o adele.jpg")
