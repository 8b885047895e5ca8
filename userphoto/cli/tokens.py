"""`userphoto token ...` and `userphoto partner ...`: who may call the HTTP APIs."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from .. import auth
from ..errors import InvalidArgument, NotFound
from .root import Context, cli, pass_ctx


@cli.group()
def token() -> None:
    """Bearer tokens for members and admins (only a hash is stored).

    \b
    Examples:
      userphoto token create ada@contoso.example
      userphoto token list
      userphoto token revoke 3f2a9c
    """


_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def lifetime(text: str | None, default_days: int) -> timedelta | None:
    """`--expires`: 90d, 12h, 30m, 2w or `never`; unset: `[server] token_days` (0: never)."""
    if text is None:
        return timedelta(days=default_days) if default_days > 0 else None
    if text.strip().lower() == "never":
        return None
    match = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text.lower())
    if not match or int(match[1]) == 0:
        raise InvalidArgument(
            f"--expires {text!r}: give a number and a unit (30m, 12h, 90d, 2w) or never."
        )
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


@token.command("create")
@click.argument("address")
@click.option("--admin", is_flag=True, help="May change anyone's photo (and use admin APIs).")
@click.option(
    "--expires",
    metavar="AGE",
    help="How long the token lasts: 30m, 12h, 90d, 2w or never "
    "(default: [server] token_days, 90 days).",
)
@pass_ctx
def token_create(ctx: Context, address: str, admin: bool, expires: str | None) -> None:
    """Print a new token for ADDRESS. It is shown once; store it safely.

    \b
    Examples:
      userphoto token create ada@contoso.example
      userphoto token create it@contoso.example --admin --expires 30d
      userphoto token create backup@contoso.example --admin --expires never
      curl -H "Authorization: Bearer $(userphoto token create ada@contoso.example)" ...
    """
    app = ctx.app
    lasts = lifetime(expires, app.settings.server.token_days)
    record, secret = auth.create_token(app.store, address, admin=admin, lifetime=lasts)
    click.echo(secret)
    kind = "admin" if admin else "member"
    until = f"expires {record.expires:%Y-%m-%d %H:%M} UTC" if record.expires else "never expires"
    click.echo(f"token {record.id}: {kind} {record.address}, {until}", err=True)


def _when(value: datetime | None, none: str) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else none


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per token, in a list.")
@pass_ctx
def token_list(ctx: Context, as_json: bool) -> None:
    """List tokens (ids, owners, kinds, created, expiry, last use; never the tokens).

    Last use is recorded at most once a minute by each serving process.

    \b
    Examples:
      userphoto token list
      userphoto token list --json | jq '.[] | select(.expired)'
    """
    tokens = ctx.app.store.list_tokens()
    now = datetime.now(UTC)
    if as_json:
        rows = [
            {
                "id": t.id,
                "address": t.address,
                "kind": "admin" if t.admin else "member",
                "created": t.created.isoformat(),
                "expires": t.expires.isoformat() if t.expires else None,
                "expired": t.expired(now),
                "last_used": t.last_used.isoformat() if t.last_used else None,
            }
            for t in tokens
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    for t in tokens:
        kind = "admin" if t.admin else "member"
        expiry = _when(t.expires, "never")
        if t.expired(now):
            expiry += " (expired)"
        click.echo(
            f"{t.id}  {kind:6}  {t.address}  created {_when(t.created, '')}  "
            f"expires {expiry}  last used {_when(t.last_used, 'never')}"
        )


@token.command("revoke")
@click.argument("token_id")
@pass_ctx
def token_revoke(ctx: Context, token_id: str) -> None:
    """Revoke the token with TOKEN_ID (from `token list`); servers drop it within a second.

    \b
    Example:
      userphoto token revoke 3f2a9c
    """
    if not ctx.app.store.delete_token(token_id):
        raise NotFound(f"No token {token_id!r}; `userphoto token list` shows them.")
    click.echo(f"revoked {token_id}")


@cli.group()
def partner() -> None:
    """Federation partners whose users present signed JWTs (external viewers).

    \b
    Examples:
      userphoto partner add fabrikam.example
      userphoto partner list
    """


@partner.command("add")
@click.argument("domain")
@click.option(
    "--public-key",
    "public_key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The partner's PEM public key (RSA → RS256, EC P-256 → ES256).",
)
@pass_ctx
def partner_add(ctx: Context, domain: str, public_key: Path | None) -> None:
    """Register DOMAIN as a partner; prints the HS256 shared secret unless --public-key.

    The partner's users send `Authorization: Bearer <JWT>` with iss=DOMAIN, sub=their
    address, aud=one of this organization's domains and exp. They see what external
    viewers may see (visibility 'everyone', never directory-only photos).

    \b
    Examples:
      userphoto partner add fabrikam.example                 prints the HS256 secret
      userphoto partner add fabrikam.example --public-key fabrikam.pem
    """
    pem = None
    if public_key is not None:
        try:
            pem = public_key.read_bytes()
        except OSError as exc:
            raise InvalidArgument(f"Cannot read {public_key}: {exc.strerror}.") from None
    record, secret = auth.add_partner(ctx.app.store, domain, pem)
    if secret is not None:
        click.echo(secret)
    click.echo(f"partner {record.domain}: {record.algorithm}", err=True)


@partner.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list: domain, algorithm, created.")
@pass_ctx
def partner_list(ctx: Context, as_json: bool) -> None:
    """List partners and their signature algorithms (never secrets).

    \b
    Examples:
      userphoto partner list
      userphoto partner list --json
    """
    partners = ctx.app.store.list_partners()
    if as_json:
        listing = [
            {"domain": p.domain, "algorithm": p.algorithm, "created": p.created.isoformat()}
            for p in partners
        ]
        click.echo(json.dumps(listing, indent=2))
        return
    for p in partners:
        click.echo(f"{p.domain}  {p.algorithm}  {p.created:%Y-%m-%d %H:%M}")


@partner.command("remove")
@click.argument("domain")
@pass_ctx
def partner_remove(ctx: Context, domain: str) -> None:
    """Stop accepting DOMAIN's tokens.

    \b
    Example:
      userphoto partner remove fabrikam.example
    """
    if not ctx.app.store.delete_partner(domain.strip().lower()):
        raise NotFound(f"No partner {domain!r}.")
    click.echo(f"removed {domain}")
