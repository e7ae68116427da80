"""Review 2 (adversarial): `make run` against an existing Redis (REDIS_URL set)."""

from __future__ import annotations

import json
import os

from click.testing import CliRunner

from tests.test_devstack import devstack
from web import cli
from workflow import keys


def test_make_run_with_redis_url_does_not_replace_that_redis_reference_data(
    tmp_path, monkeypatch, fake_redis
):
    """HIGH. With REDIS_URL set, devstack uses that Redis (e.g. a shared staging one) and still
    runs `xinbao load data/demo.json` on it. Since loads now replace every section the file
    contains, that deletes all of the Redis' own policies, limits, declarations, overdues,
    whitelists, banks and exporters (and adds the public demo tokens). Before baeeda9..HEAD a
    load only upserted. Expected: an external Redis is not overwritten with the demo without an
    explicit opt-in (e.g. XINBAO_DEMO=1), or the stack refuses/asks."""
    monkeypatch.setattr(cli.redis.Redis, "from_url", staticmethod(lambda url, **kw: fake_redis))
    own = tmp_path / "own.json"
    demo = json.loads(devstack.DEMO_FILE.read_text(encoding="utf-8"))
    bank = {**demo["banks"][0], "bank_id": "OUR-OWN-BANK"}
    own.write_text(json.dumps({"banks": [bank]}))
    assert CliRunner().invoke(cli.main, ["load", str(own)]).exit_code == 0

    def run(args, env=None, check=False, **_):
        result = CliRunner().invoke(cli.main, [str(a) for a in args[1:]], env=env)
        assert result.exit_code == 0, result.output
        return result

    monkeypatch.setenv("REDIS_URL", "redis://staging.example:6379/0")
    monkeypatch.delenv("XINBAO_DEMO", raising=False)
    monkeypatch.setattr(devstack.subprocess, "run", run)
    url = devstack.start_redis([], lock_fd=-1)  # REDIS_URL set: no private server
    devstack.load_demo({**dict(os.environ), "REDIS_URL": url})
    assert fake_redis.exists(keys.bank("OUR-OWN-BANK")), (
        "make run wiped the banks of the Redis at REDIS_URL and put the demo's in their place"
    )
