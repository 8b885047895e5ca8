"""`userphoto set | get | remove`: the Set-/Get-/Remove-UserPhoto lifecycle."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InvalidArgument
from ..model import SD_MAX, Account, CropBox, parse_size
from . import Context, cli, pass_ctx, read_photo_file


def _crop(_ctx: click.Context, _param: click.Parameter, value: str | None) -> CropBox | None:
    try:
        return CropBox.parse(value) if value else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def size_param(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    """Click callback for a `--size` option: a pixel size or an EWS code (96, HR240x240)."""
    try:
        return parse_size(value) if value else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command("set")
@click.argument("address")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--preview", is_flag=True, help="Store as an unsaved preview (then --save or --cancel)."
)
@click.option("--save", is_flag=True, help="Save the pending preview as the photo.")
@click.option("--cancel", is_flag=True, help="Discard the pending preview; the saved photo stays.")
@click.option(
    "--crop",
    callback=_crop,
    metavar="X,Y,SIZE",
    help="Square crop box in pixels of the upright image (default: face-aware or centre).",
)
@pass_ctx
def set_photo(
    ctx: Context,
    address: str,
    file: Path | None,
    preview: bool,
    save: bool,
    cancel: bool,
    crop: CropBox | None,
) -> None:
    """Upload FILE as ADDRESS's photo, or --save / --cancel a pending preview.

    FILE may be JPEG, PNG, GIF, WebP or AVIF (checked by content). It is validated,
    turned upright, converted to sRGB, cropped square and rendered at every HD size up to its
    own (48 … 648; never upscaled) plus the 96×96 directory thumbnail. The automatic photo
    checks (one face, face size, sharpness, exposure, resolution; `[policy]`) are printed
    one line each; a check set to `refuse` refuses the upload (docs/checks.md).

    \b
    Examples:
      userphoto set ada@contoso.example ada.jpg                  upload and save
      userphoto set ada@contoso.example ada.jpg --preview        upload a preview
      userphoto set ada@contoso.example --save                   save the preview
      userphoto set ada@contoso.example ada.jpg --crop 120,40,800
    """
    photos = ctx.app.photos
    if sum((file is not None, save, cancel)) != 1:
        raise InvalidArgument("Give either FILE, --save or --cancel (exactly one).")
    ctx.user(address)  # unknown: near-miss suggestions, as `diagnose` gives
    if save:
        photo = photos.save(address)
        click.echo(f"saved the preview of {address} as version {photo.version}")
        return
    if cancel:
        photos.cancel(address)
        click.echo(f"discarded the preview of {address}; the saved photo is unchanged")
        return
    assert file is not None
    data = read_photo_file(file, ctx.app.settings.limits.max_bytes)
    photo = photos.set(address, data, preview=preview, crop=crop)
    what = "preview stored (save with --save, discard with --cancel)" if preview else "saved"
    click.echo(
        f"{address}: {what}; version {photo.version}, "
        f"{photo.source_format} {photo.source_width}×{photo.source_height}, "
        f"crop {photo.crop} ({photo.crop_decision}), sizes {','.join(map(str, photo.sizes))}"
    )
    for result in photo.checks:
        click.echo(f"check {result.id}: {result.outcome}: {result.words}")
    if photo.crop_decision.guess:
        click.echo(
            f"note: the crop is a guess ({photo.crop_decision.reason.value}); check it, and give "
            f"the box yourself with --crop X,Y,SIZE if it is wrong",
            err=True,
        )
    user = photos.user(address)
    if user.account is Account.SD_ONLY:
        click.echo(
            f"note: {address} has an sd_only account, so only sizes up to {SD_MAX} were kept",
            err=True,
        )
    elif photo.largest < 648:
        click.echo(
            f"note: the crop is {photo.crop.size}px, so the largest size is "
            f"{photo.largest} (648×648 or more gives every size)",
            err=True,
        )


@cli.command("get")
@click.argument("address")
@click.option(
    "--size", callback=size_param, help="Pixel size or EWS code (96, HR240x240); default largest."
)
@click.option("--preview", is_flag=True, help="Get the pending preview instead of the saved photo.")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the JPEG ('-' for standard output).",
)
@pass_ctx
def get_photo(ctx: Context, address: str, size: int | None, preview: bool, output: Path) -> None:
    """Write ADDRESS's saved photo (or --preview) as a JPEG.

    A size the photo was never rendered at gives the largest one below it, as EWS does.

    \b
    Examples:
      userphoto get ada@contoso.example -o ada.jpg
      userphoto get ada@contoso.example --size HR96x96 -o ada-96.jpg
      userphoto get ada@contoso.example --preview -o - | display -    the pending preview
    """
    ctx.user(address)  # unknown: near-miss suggestions, as `diagnose` gives
    _photo, chosen, data = ctx.app.photos.get(address, size=size, preview=preview)
    if str(output) == "-":
        click.echo(data, nl=False)  # bytes go to the binary stream as they are
        return
    output.write_bytes(data)
    note = f" (largest available below {size})" if size and chosen != size else ""
    click.echo(f"wrote {output}: {chosen}×{chosen} JPEG, {len(data)} bytes{note}")


@cli.command("remove")
@click.argument("address")
@click.option(
    "--clear-record",
    is_flag=True,
    help="Clear the removal record so the directory photo shows again.",
)
@pass_ctx
def remove_photo(ctx: Context, address: str, clear_record: bool) -> None:
    """Remove ADDRESS's photo, leaving a removal record.

    The record stops viewers falling back to the directory thumbnail (as
    Remove-UserPhoto does); `--clear-record` lifts it.

    \b
    Examples:
      userphoto remove ada@contoso.example
      userphoto remove ada@contoso.example --clear-record    the directory photo shows again
    """
    photos = ctx.app.photos
    ctx.user(address)  # unknown: near-miss suggestions, as `diagnose` gives
    if clear_record:
        if photos.clear_record(address):
            click.echo(f"cleared the removal record of {address}; the directory photo may show")
        else:
            click.echo(f"{address} had no removal record")
        return
    photos.remove(address)
    click.echo(
        f"removed the photo of {address}; a removal record now blocks the directory "
        "fallback (clear it with --clear-record)"
    )
