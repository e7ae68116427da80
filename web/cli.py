"""The ``xinbao`` command (and ``flask load``): load reference data from a JSON file."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import redis
from flask.cli import with_appcontext

from workflow.demo import expand_relative_dates_json
from workflow.logs import configure_logging
from workflow.reference import (
    ReferenceFileError,
    ReferenceLoadConflict,
    parse_reference_json,
    store_reference,
)
from workflow.settings import load_settings


def load_file(path: Path, client: redis.Redis) -> dict[str, int]:
    """Validate the whole file, then write it in one transaction, each section it contains
    replacing that section; returns their counts. Raises ReferenceFileError."""
    text = path.read_text(encoding="utf-8")
    # Dates written "today-14" (the demo's) count from the day of loading, in UTC as the workflow.
    data = parse_reference_json(expand_relative_dates_json(text, datetime.now(UTC).date()))
    counts = store_reference(client, data)
    return {section: n for section, n in counts.items() if section in (data.sections or ())}


def _load(path: Path, client: redis.Redis) -> None:
    try:
        counts = load_file(path, client)
    except ReferenceFileError as exc:
        click.echo(f"{path}: not loaded, {len(exc.problems)} problem(s):", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(1)
    except ReferenceLoadConflict as exc:
        click.echo(f"{path}: not loaded, {exc}", err=True)
        sys.exit(1)
    summary = ", ".join(f"{n} {section}" for section, n in counts.items()) or "nothing"
    click.echo(f"{path}: loaded {summary} (each replacing its section; others untouched)")


@click.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def load_command(file: Path) -> None:
    """Load reference data (policies, limits, declarations, whitelists, banks, tokens)."""
    from flask import current_app

    _load(file, current_app.extensions["redis"])


@click.group()
def main() -> None:
    """Xinbao operator commands."""
    configure_logging()


@main.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--redis-url", envvar="REDIS_URL", help="Redis to load into (default $REDIS_URL).")
def load(file: Path, redis_url: str | None) -> None:
    """Load reference data from FILE (JSON): each section in it replaces that section whole,
    sections it leaves out are untouched. A bad file loads nothing. Safe to repeat."""
    url = redis_url or load_settings().redis_url
    _load(file, redis.Redis.from_url(url, decode_responses=True))


if __name__ == "__main__":
    main()
