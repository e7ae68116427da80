"""``xinbao customs import FILE``: the customs export records feed (docs/trade-documents.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from web.cli_support import fail
from workflow.identifiers import printable
from workflow.redis_client import connect
from workflow.reference.customs import parse_customs_csv, store_customs
from workflow.reference.tabular import TabularError
from workflow.settings import load_settings

# Rejected rows listed one by one up to this many; the rest are counted.
MAX_LISTED = 200


@click.group("customs")
def customs() -> None:
    """Customs export records (报关单), checked against the invoices' declaration numbers."""


@customs.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--replace",
    is_flag=True,
    help="Make FILE the whole feed (records it leaves out are removed); refused if any row"
    " is bad. Default: merge by declaration number.",
)
@click.option("--redis-url", envvar="REDIS_URL", help="Redis to use (default $REDIS_URL).")
def customs_import(file: Path, replace: bool, redis_url: str | None) -> None:
    """Import customs export records from FILE (CSV, UTF-8 or GB18030).

    Columns (Chinese or English headers, any order, others ignored): 报关单号 /
    declaration_number, 统一社会信用代码 / exporter_uscc, 运抵国 / destination_country (ISO
    alpha-2), 币制 / currency (ISO 4217), 金额 / amount, 出口日期 / export_date.

    Good rows are stored, each replacing the stored record of its declaration number; bad
    rows are listed with their line numbers (exit status 1). Safe to repeat.
    """
    name = click.format_filename(file)
    try:
        parsed = parse_customs_csv(file.read_bytes())
    except OSError as exc:
        fail(f"{name}: not imported, cannot read the file: {exc.strerror or exc}")
    except TabularError as exc:
        fail(f"{name}: not imported, {exc}")
    for line, problem in parsed.rejected[:MAX_LISTED]:
        click.echo(f"{name}:{line}: {printable(problem)}", err=True)
    if len(parsed.rejected) > MAX_LISTED:
        click.echo(f"... and {len(parsed.rejected) - MAX_LISTED} more bad rows", err=True)
    if replace and parsed.rejected:
        # Replacing with a file minus its bad rows would drop their records from the feed.
        fail(f"{name}: not imported, --replace needs every row good ({len(parsed.rejected)} bad)")
    if not parsed.records and not replace:
        fail(f"{name}: nothing imported, no good rows")
    client = connect(load_settings(), redis_url, socket_timeout=None)
    done = store_customs(
        client, parsed.records, replace=replace, source=f"file:{printable(file.name)}"
    )
    summary = (
        f"{name}: imported {len(parsed.records)} records ({done.added} new, {done.changed}"
        f" changed, {done.unchanged} unchanged"
    )
    summary += f", {done.removed} removed)" if replace else ")"
    summary += f"; the feed holds {done.total}"
    if parsed.rejected:
        summary += f"; {len(parsed.rejected)} bad rows not imported"
    click.echo(summary)
    if parsed.rejected:
        sys.exit(1)


