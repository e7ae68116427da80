"""Review 2 (adversarial): tokens loaded from a file vs tokens issued with `xinbao token add`."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tests.web.conftest import HAIXIN
from web import cli
from workflow import tokens


def run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(cli.main, list(args), input=stdin)


def test_a_reload_does_not_silently_rebind_a_live_token_to_another_principal(
    into_fake_redis, fake_redis, tmp_path
):
    """MEDIUM. `xinbao token add` refuses a token already in use ("already in use"), but
    `xinbao load` of a file naming the same token with another subject overwrites its principal
    without a word: an exporter's token becomes a bank's token (it can now decide on BOC-NB's
    deals), and `token list` shows it as loaded from the file. A load should refuse (or at
    least report) a token that is live for a different principal, as `token add` does."""
    assert run("load", "data/demo.json").exit_code == 0
    secret = "vault-token-abcdefghijklmnop"
    added = run("token", "add", "--exporter", HAIXIN, "--stdin", stdin=secret + "\n")
    assert added.exit_code == 0, added.output
    path = tmp_path / "more.json"
    path.write_text(json.dumps({"tokens": [{"token": secret, "bank_id": "BOC-NB"}]}))
    result = run("load", str(path))
    assert tokens.lookup(fake_redis, secret) == tokens.Principal("exporter", HAIXIN), (
        f"the exporter's token now speaks for {tokens.lookup(fake_redis, secret)}; "
        f"load said: {result.output!r}"
    )
