"""The production layout in docker-compose.yml is the one the design brief asks for."""

from __future__ import annotations

import yaml

from tests.support import ROOT


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_redis_keeps_every_write_and_never_evicts():
    command = compose()["services"]["redis"]["command"]
    joined = " ".join(command)
    assert "--appendonly yes" in joined
    # The setting make chaos proves "no accepted deal lost" with, also against a host crash.
    assert "--appendfsync always" in joined
    assert "--maxmemory-policy noeviction" in joined
    assert "--hash-max-ziplist-value 1024" in joined  # deals stay compact listpacks


def test_web_worker_and_exactly_one_beat():
    services = compose()["services"]
    assert "gunicorn" in services["web"]["command"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "tasks.worker", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "tasks.worker", "beat"]
    assert services["beat"]["deploy"]["replicas"] == 1
    beats = [name for name, svc in services.items() if "beat" in svc.get("command", [])]
    assert beats == ["beat"]
    for name in ("web", "worker", "beat"):
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"


def test_webhook_deliveries_have_their_own_worker():
    services = compose()["services"]
    worker, hooks = services["worker"]["command"], services["webhooks"]["command"]
    # The deal pipeline's worker never takes a delivery; the webhooks worker only those.
    assert worker[worker.index("-Q") + 1] == "celery"
    assert hooks[:4] == ["celery", "-A", "tasks.worker", "worker"]
    assert hooks[hooks.index("-Q") + 1] == "webhooks"
    assert hooks[hooks.index("--pool") + 1] == "threads"
