"""`xinbao whitelist`: import a programme's member list from CSV or XLSX, list programmes."""

from __future__ import annotations

import csv
import hashlib
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import redis

from web.cli_support import fail
from workflow.identifiers import printable
from workflow.redis_client import connect
from workflow.reference import whitelist_file, whitelist_import
from workflow.settings import load_settings


@click.group("whitelist")
def whitelist() -> None:
    """Import and list the unified-insurance whitelist programmes (统保名单)."""


_REDIS_URL = click.option(
    "--redis-url", envvar="REDIS_URL", help="Redis to use (default $REDIS_URL)."
)


def _client(redis_url: str | None) -> redis.Redis:
    # With REDIS_SENTINELS set the URL gives the database only; the sentinels name the primary.
    return connect(load_settings(), redis_url, socket_timeout=None)


# Rejected rows and added/removed members shown; --rejected-out writes every rejected row.
_SHOW_REJECTED = 50
_SHOW_CHANGED = 5
# Files smaller than this read in well under a second: no progress bar.
_PROGRESS_FROM_ROWS = 20_000


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def _read_members(file: Path, encoding: str | None) -> whitelist_file.MemberList:
    source = whitelist_file.MemberFile(file, encoding)
    if not (_stderr_is_tty() and source.rows_estimate >= _PROGRESS_FROM_ROWS):
        return source.read()
    with click.progressbar(
        length=source.rows_estimate, label="reading rows", file=sys.stderr
    ) as bar:
        return source.read(progress=bar.update)


def _first(codes: list[str]) -> str:
    more = len(codes) - _SHOW_CHANGED
    return ", ".join(codes[:_SHOW_CHANGED]) + (f", … ({more:,} more)" if more > 0 else "")


def _echo_change(change: whitelist_import.Change) -> None:
    for label, codes in (("added", change.added), ("removed", change.removed)):
        click.echo(f"  {label} {len(codes):,}" + (f": {_first(codes)}" if codes else ""))
    click.echo(f"  unchanged {change.unchanged:,}")


def _write_rejected(path: Path, rejected: list[whitelist_file.Rejected]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "uscc", "name", "kind", "reason"])
        for r in rejected:
            writer.writerow([r.line, r.value, r.name, r.kind, r.reason])


@whitelist.command("import")
# A directory or unreadable file is reported like any bad file; only a missing path is a usage
# error (as for `xinbao load`).
@click.argument("file", type=click.Path(exists=True, readable=False, path_type=Path))
@click.option("--programme", required=True, help="Programme id (letters, digits, _ . -).")
@click.option("--region", required=True, help="Region the programme covers, e.g. Ningbo.")
@click.option(
    "--valid-from", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day (ISO)."
)
@click.option(
    "--valid-to", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last day (ISO)."
)
@click.option(
    "--encoding",
    help="Encoding of a CSV file (default: UTF-8, with or without BOM, else GB18030).",
)
@click.option("--dry-run", is_flag=True, help="Validate and show the change; write nothing.")
@click.option(
    "--rejected-out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write every rejected row (line, uscc, name, kind, reason) to this CSV file.",
)
@_REDIS_URL
def whitelist_import_command(
    file: Path,
    programme: str,
    region: str,
    valid_from: datetime,
    valid_to: datetime,
    encoding: str | None,
    dry_run: bool,
    rejected_out: Path | None,
    redis_url: str | None,
) -> None:
    """Replace the programme's member list by the USCCs of FILE (CSV or XLSX).

    The header row names the columns 统一社会信用代码 (or uscc) and optionally 企业名称 (or
    name); other columns are ignored. Rows with a bad USCC are reported with their line and
    left out; the others replace the programme's list whole, in one step. Exit status 1
    when nothing valid is left or the file cannot be read.
    """
    spec = whitelist_import.ProgrammeSpec(
        programme, region.strip(), valid_from.date(), valid_to.date()
    )
    problems = whitelist_import.spec_problems(spec)
    if problems:
        fail("; ".join(problems))
    name = click.format_filename(file)
    try:
        members = _read_members(file, encoding)
    except whitelist_file.WhitelistFileError as exc:
        fail(f"{name}: not imported: {exc}")
    read_as = members.kind.upper() + (f", {members.encoding}" if members.encoding else "")
    click.echo(
        f"{name} ({read_as}): {members.rows:,} data rows after the header on line"
        f" {members.header_line}: {len(members.members):,} valid, {len(members.rejected):,}"
        " rejected"
    )
    for r in members.rejected[:_SHOW_REJECTED]:
        who = f" ({r.name})" if r.name else ""
        click.echo(f"  line {r.line}: {r.value or '-'}{who}: {r.reason}", err=True)
    if len(members.rejected) > _SHOW_REJECTED:
        hint = "" if rejected_out else "; --rejected-out FILE lists them all"
        click.echo(f"  … {len(members.rejected) - _SHOW_REJECTED:,} more rejected{hint}", err=True)
    if rejected_out and members.rejected:
        try:
            _write_rejected(rejected_out, members.rejected)
        except OSError as exc:
            fail(f"--rejected-out: cannot write {rejected_out}: {exc.strerror or exc}")
    if not members.members:
        fail(f"{name}: not imported: no valid members")
    client = _client(redis_url)
    title = f"programme {programme} ({spec.region}, {spec.valid_from} to {spec.valid_to})"
    try:
        if dry_run:
            change = whitelist_import.preview_import(client, spec, members.members)
            click.echo(f"dry run, nothing written: {title} would change:")
            _echo_change(change)
            return
        raw = file.read_bytes()
        done = whitelist_import.import_whitelist(
            client,
            spec,
            members.members,
            now=datetime.now(UTC),
            file_name=printable(file.name),
            file_sha256=hashlib.sha256(raw).hexdigest(),
            rejected=len(members.rejected),
        )
    except whitelist_import.WhitelistImportError as exc:
        fail(f"{name}: not imported: {exc}")
    click.echo(f"{title}: version {done.version} imported, {done.members:,} members")
    _echo_change(done.change)


@whitelist.command("list")
@_REDIS_URL
def whitelist_list(redis_url: str | None) -> None:
    """List the programmes: region, validity, member count, source (file or import)."""
    rows = whitelist_import.list_programmes(_client(redis_url))
    click.echo(
        f"{'PROGRAMME':<24}  {'REGION':<12}  {'VALID FROM':<10}  {'VALID TO':<10}  "
        f"{'MEMBERS':>8}  {'SOURCE':<6}  {'VERSION':>7}  IMPORTED AT (UTC)"
    )
    for r in rows:
        click.echo(
            f"{r.programme:<24}  {r.region:<12}  {r.valid_from:<10}  {r.valid_to:<10}  "
            f"{r.members:>8}  {r.source:<6}  {r.version or '-':>7}  {r.imported_at or '-'}"
        )
