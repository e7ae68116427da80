"""`xinbao insurer-sim`: the insurer simulator (insurer_sim/) on its own port and data."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import click

from web.cli_support import fail
from workflow.reference import ReferenceFileError
from workflow.settings import SIM_API_KEY

BOOK = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command("insurer-sim")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5100, show_default=True, type=int)
@click.option(
    "--data",
    type=BOOK,
    default=str(Path(__file__).resolve().parent.parent / "data" / "demo.json"),
    help="The insurer's book, in the reference-data JSON format (default data/demo.json).",
)
@click.option("--today", type=click.DateTime(["%Y-%m-%d"]), help="Day relative dates count from.")
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    envvar="XINBAO_SIM_API_KEYS",
    help="An API key the simulator accepts (repeatable; default the development key).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the fault dice.")
@click.option("--faults", envvar="XINBAO_SIM_FAULTS", help="Faults in force, as JSON.")
@click.option("--callback-url", envvar="XINBAO_SIM_CALLBACK_URL", help="Webhook for jobs.")
@click.option("--callback-secret", envvar="XINBAO_SIM_CALLBACK_SECRET", default="")
@click.option("--job-delay", default=0.0, type=float, help="Seconds a job stays pending.")
@click.option("--claim-review", default=0.0, type=float, help="Seconds a claim stays pending.")
def insurer_sim(
    host: str,
    port: int,
    data: Path,
    today: datetime | None,
    api_keys: tuple[str, ...],
    seed: int,
    faults: str | None,
    callback_url: str | None,
    callback_secret: str,
    job_delay: float,
    claim_review: float,
) -> None:
    """Run the insurer simulator (its own app, port and data) until interrupted."""
    from werkzeug.serving import make_server

    from insurer_sim import create_sim_app, load_book
    from insurer_sim.faults import FaultError, parse_faults_json

    day = today.date() if today else datetime.now(UTC).date()
    try:
        book = load_book(data, day)
    except ReferenceFileError as exc:
        fail(f"{click.format_filename(data)}: " + "; ".join(exc.problems))
    try:
        app = create_sim_app(
            book,
            api_keys=list(api_keys) or [SIM_API_KEY],
            seed=seed,
            faults=parse_faults_json(faults),
            callback_url=callback_url,
            callback_secret=callback_secret,
            job_delay_s=job_delay,
            claim_review_s=claim_review,
        )
    except FaultError as exc:
        fail(f"--faults: {exc}")
    server = make_server(host, port, app, threaded=True)
    click.echo(f"insurer simulator on http://{host}:{server.port} ({len(book.policies)} policies)")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
