"""`userphoto import | export`: bulk import from a folder or zip, and backup export."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from .. import archive, bulk
from ..bulk import PROBLEMS, WOULD, Item, Status
from ..errors import InvalidArgument
from ..matching import DEFAULT_PATTERN
from ..review import review_sheet
from . import Context, cli, pass_ctx
from .photos import size_param

ORDER = [Status.IMPORTED, Status.REPLACED, Status.UNCHANGED, Status.KEPT, *PROBLEMS]
PROBLEM_LINES = 20


def _line(item: Item, dry_run: bool) -> str:
    status = item.status or Status.FAILED
    word = WOULD.get(status, status.value) if dry_run else status.value
    target = f" -> {item.user}" if item.user and status not in (Status.AMBIGUOUS,) else ""
    detail = f"  ({item.detail})" if item.detail else ""
    return f"{word:<13} {item.file}{target}{detail}"


def _summary(items: list[Item], dry_run: bool) -> str:
    counts = bulk.summary(items)
    parts = []
    for status in ORDER:
        if counts[status]:
            word = f"to {WOULD[status]}" if dry_run and status in WOULD else status.value
            parts.append(f"{counts[status]} {word}")
    return f"{len(items)} files: " + (", ".join(parts) or "nothing to do")


@cli.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--match",
    "pattern",
    default=DEFAULT_PATTERN,
    show_default=True,
    help="File name (without extension) as a pattern over user fields: {mail}, "
    "{local}, {first}, {last}, {name}, {id}, or any directory attribute such as "
    "{employeeID} or {sAMAccountName}. Case- and accent-insensitive; aliases count.",
)
@click.option(
    "--map",
    "mapping",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Match by a mapping file instead of --match: CSV with a header row, then one "
    "'file name, user' per line; the user is a mail address, alias, user id or employee id "
    "(the files AD Photo Editor and CodeTwo take). Comma, semicolon or tab separated.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show matched / unmatched / ambiguous / invalid files; write nothing.",
)
@click.option(
    "--on-conflict",
    type=click.Choice(["skip", "replace"]),
    default="skip",
    show_default=True,
    help="A user who already has a different photo: keep it, or replace it.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1, 256),
    default=os.cpu_count() or 1,
    show_default="all cores",
    help="Worker processes.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write one row per file to FILE: JSON if it ends in .json, else CSV.",
)
@click.option(
    "--review",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a contact sheet of every crop imported to FILE (.html, else an image such as "
    ".png), guesses framed in red, to check hundreds of crops at a glance.",
)
@pass_ctx
def import_photos(
    ctx: Context,
    path: Path,
    pattern: str,
    mapping: Path | None,
    dry_run: bool,
    on_conflict: str,
    jobs: int,
    report: Path | None,
    review: Path | None,
) -> None:
    """Import every photo in PATH (a folder or a zip), matching file names to users.

    Each file is validated, face-cropped and rendered at every size, as `set` does. Files
    with a photo identical to the user's saved one are skipped, so re-running is safe and
    resumes an interrupted import. Bad files are reported; they never stop the run. Exits 1
    when a file was invalid or could not be stored. --dry-run decodes and checks each file
    as the import does (it only renders nothing), and exits 1 when one is invalid. Only
    regular files inside PATH are read: links, FIFOs and devices are listed as skipped, with
    the reason, and never opened. Unmatched files say when another --match would match them.

    \b
    Examples:
      userphoto import photos/ --dry-run                    preview: who matches what
      userphoto import photos.zip --match '{first}.{last}'
      userphoto import hr-export/ --match '{employeeID}' --on-conflict replace --report r.csv
      userphoto import new-hires/ --review sheet.html       then check the crops at a glance
      userphoto import photos/ --map people.csv --dry-run   file name -> address or employee id
      userphoto import backup/                              restore a `userphoto export`
                                                            (users, settings, crops as they were)
    """
    app = ctx.app
    if archive.is_export(path) and not dry_run:
        _restore(ctx, path)
        return
    if mapping is not None and pattern != DEFAULT_PATTERN:
        raise click.UsageError("Give --match or --map, not both.")
    try:
        matcher = (
            bulk.load_map(app.store, mapping)
            if mapping is not None
            else bulk.load_matcher(app.store, pattern)
        )
        sources = bulk.scan(path)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    the_plan = bulk.plan(sources, matcher)
    pending = len(the_plan.pending)
    started = time.monotonic()
    progress = None
    if pending:
        from tqdm import tqdm

        progress = tqdm(
            total=pending,
            unit="photo",
            desc="checking" if dry_run else "importing",
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.5,
            leave=False,
        )
    try:
        items = bulk.run(
            the_plan,
            app.photos,
            app.settings,
            jobs=jobs,
            replace=on_conflict == "replace",
            dry_run=dry_run,
            progress=progress,
        )
    finally:
        if report is not None:
            bulk.write_report(the_plan.items, report)
    elapsed = time.monotonic() - started

    # The dry run is the preview, so it lists every file; a real run lists only problems,
    # and only the first few of each kind (the report has them all).
    for status in ORDER if dry_run else PROBLEMS:
        lines = [_line(i, dry_run) for i in items if i.status is status]
        limit = len(lines) if dry_run else PROBLEM_LINES
        for line in lines[:limit]:
            click.echo(line)
        if len(lines) > limit:
            more = "see --report" if report else "list them with --report FILE"
            click.echo(f"... and {len(lines) - limit} more {status.value} ({more})")
    counts = bulk.summary(items)
    if the_plan.hint:
        click.echo(f"hint: {the_plan.hint}" + ("" if dry_run else " (preview it with --dry-run)"))
    if dry_run:
        click.echo(f"dry run, nothing written. {_summary(items, True)}")
        if counts[Status.INVALID]:
            sys.exit(1)  # as the import itself will
        return
    guesses = [i for i in items if i.crop_guess]
    for item in guesses[:PROBLEM_LINES]:
        click.echo(f"{'check crop':<13} {item.file} -> {item.user}  ({item.detail})")
    if len(guesses) > PROBLEM_LINES:
        click.echo(f"... and {len(guesses) - PROBLEM_LINES} more crops to check (see --review)")
    flagged = [i for i in items if i.checks]
    for item in flagged[:PROBLEM_LINES]:
        click.echo(f"{'photo checks':<13} {item.file} -> {item.user}  ({item.checks})")
    if len(flagged) > PROBLEM_LINES:
        click.echo(f"... and {len(flagged) - PROBLEM_LINES} more photos with failed checks")
    done = sum(1 for i in items if i.status in (Status.IMPORTED, Status.REPLACED))
    rate = f", {pending / elapsed:.1f} files/s" if pending and elapsed > 0 else ""
    click.echo(f"{_summary(items, False)} ({done} stored in {elapsed:.1f} s{rate})")
    if guesses:
        click.echo(
            f"{len(guesses)} crops were guesses (no face, a doubtful one, or several faces): "
            "check them and fix any with `userphoto set ADDRESS FILE --crop X,Y,SIZE`"
        )
    if report is not None:
        click.echo(f"report: {report}")
    if review is not None:
        shown = review_sheet(items, app.store, review)
        click.echo(f"review sheet: {review} ({shown} crops, {len(guesses)} marked)")
    if counts[Status.INVALID] or counts[Status.FAILED]:
        sys.exit(1)


def _restore(ctx: Context, path: Path) -> None:
    """`import DIR` of a `userphoto export`: users, settings and photos as they were."""
    try:
        result = archive.restore(path, ctx.app.photos, ctx.app.settings)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    for problem in result.problems:
        click.echo(f"failed        {problem}", err=True)
    click.echo(
        f"restored the export in {path} ({archive.MANIFEST}): {result.users_added} users added, "
        f"{result.users_updated} updated, {result.photos} photos stored as exported "
        f"(not cropped again), {result.unchanged} unchanged"
        + (f", {len(result.problems)} failed" if result.problems else "")
    )
    if result.problems:
        sys.exit(1)


@cli.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--size",
    callback=size_param,
    help="Pixel size or EWS code (96, HR240x240); default each photo's largest.",
)
@pass_ctx
def export_photos(ctx: Context, directory: Path, size: int | None) -> None:
    """Write every user's saved photo to DIRECTORY as <address>.jpg, with a manifest (backup).

    The manifest (userphoto-export.json) keeps every user, alias, account state, picture and
    visibility option, and each photo's crop box, crop reason and source hash.
    `userphoto import DIRECTORY` restores all of it, into a fresh store too, without
    cropping the photos again; other tools can still read the files by name.

    \b
    Examples:
      userphoto export backup/                  every photo at its largest size
      userphoto export small/ --size HR96x96    one size for another tool
      userphoto import backup/                  restore it (into a fresh store too)
    """
    result = archive.export(ctx.app.store, directory, size)
    click.echo(
        f"exported {result.written} photos and {result.users} users to {directory} "
        f"(manifest {archive.MANIFEST})"
    )
    for address in result.skipped:
        click.echo(f"skipped {address}: not usable as a file name", err=True)
