"""`userphoto demo`: load the contoso.example demo organization."""

from __future__ import annotations

import click

from .. import auth
from .. import demo as demo_org
from .root import Context, cli, pass_ctx

ADMIN = f"it@{demo_org.DOMAIN}"
MEMBER = f"adele.vance@{demo_org.DOMAIN}"


@cli.command()
@pass_ctx
def demo(ctx: Context) -> None:
    """Load the contoso.example demo organization (~50 users with generated photos).

    Some have no photo, one has an sd_only account, one is disabled, one hides their photo
    and one shows a picture from a web address. Users that already exist are left alone,
    so running it twice is harmless.

    Ends with the address `userphoto serve` will listen on and two fresh tokens to sign in
    or call the APIs with: an admin's and a member's (adele.vance@contoso.example).

    \b
    Examples:
      userphoto demo
      userphoto --home /tmp/try demo && userphoto --home /tmp/try serve    a throwaway trial
    """
    app = ctx.app
    if app.settings.write_default():
        click.echo(f"created the data folder {app.settings.home} (as `userphoto init` does)")
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
    click.echo(f"try: userphoto get {MEMBER} --size 240 -o adele.jpg")
    # Fresh tokens every run: only their hashes are stored, so old ones cannot be shown again.
    _record, admin = auth.create_token(app.store, ADMIN, admin=True)
    _record, member = auth.create_token(app.store, MEMBER)
    host, port = app.settings.server.host, app.settings.server.port
    click.echo(f"web pages and APIs (after `userphoto serve`): http://{host}:{port}/")
    click.echo(f"admin token  ({ADMIN}): {admin}")
    click.echo(f"member token ({MEMBER}): {member}")
