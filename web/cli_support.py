"""What every `xinbao` command shares: how a refusal is said, and which files it takes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from workflow.identifiers import printable

# A reference or feed file: must exist (readability is checked when it is opened, with a
# clear message).
FILE = click.Path(exists=True, readable=False, path_type=Path)


def fail(message: str) -> NoReturn:
    """Say why on stderr (unprintable characters escaped) and exit with status 1."""
    click.echo(f"error: {printable(message)}", err=True)
    sys.exit(1)
