"""The production layout in docker-compose.yml is the one the design brief asks for."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jsonschema
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
    assert services["beat"]["command"][:5] == ["celery", "-A", "tasks.worker", "--quiet", "beat"]
    assert services["beat"]["deploy"]["replicas"] == 1
    beats = [name for name, svc in services.items() if "beat" in svc.get("command", [])]
    assert beats == ["beat"]
    for name in ("web", "worker", "beat"):
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"


# --- the compose file is valid and names only what the project has --------------------------


BIN = Path(sys.executable).parent
# ${NAME}, ${NAME:-default}, ${NAME:?message}; $$ is an escaped dollar.
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)(?::?[-?][^}]*)?\}")
SOURCES = ("workflow", "web", "tasks", "insurer_sim")
# How the code reads a setting: os.environ.get("X"), _int("X", ...), click's envvar="X".
READ = re.compile(
    r'(?:environ\.get\(|_int\(|_float\(|_date\(|_tolerance\(|envvar=)"([A-Z][A-Z0-9_]+)"'
)
# A request's WSGI environ (the simulator's routing, gunicorn's access lines), not settings.
WSGI_ENVIRON = {
    "RAW_URI", "REQUEST_URI", "PATH_INFO", "REMOTE_ADDR", "HTTP_USER_AGENT", "REQUEST_METHOD"
}


def env_example() -> set[str]:
    """The variables .env.example documents, set or commented out (``# NAME=``)."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s?([A-Z][A-Z0-9_]+)=", text, flags=re.M))


def test_compose_file_is_valid_against_the_compose_specification():
    # tests/compose-spec.json: the schema of github.com/compose-spec/compose-spec (Apache-2.0),
    # what `docker compose config` validates with; Docker itself is not on our machines.
    schema = json.loads((ROOT / "tests" / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(compose())


def test_every_service_has_a_health_check_and_a_restart_policy():
    for name, service in compose()["services"].items():
        assert "healthcheck" in service, name
        assert service.get("restart") == "unless-stopped", name


def test_every_variable_the_compose_file_uses_is_documented_in_env_example():
    used = set(VARIABLE.findall((ROOT / "docker-compose.yml").read_text()))
    assert used, "the pattern found no ${VARIABLE} at all"
    assert used - env_example() == set()


def test_every_setting_the_code_reads_is_documented_in_env_example():
    read = set()
    for package in SOURCES:
        for path in (ROOT / package).rglob("*.py"):
            read |= set(READ.findall(path.read_text(encoding="utf-8")))
    read -= WSGI_ENVIRON
    assert {"SECRET_KEY", "XINBAO_INSURER_URL", "LOG_LEVEL"} <= read  # the scan works
    assert read - env_example() == set()


def _commands() -> list[tuple[str, list[str]]]:
    """Each service's command and each CMD health check, as argument lists."""
    found = []
    for name, service in compose()["services"].items():
        found.append((name, list(service["command"])))
        test = service["healthcheck"]["test"]
        if test[0] == "CMD":
            found.append((f"{name} healthcheck", test[1:]))
        elif test[0] == "CMD-SHELL":
            found.append((f"{name} healthcheck", shlex.split(test[1])))
    return found


def test_every_program_a_service_runs_is_installed_with_the_project():
    for name, argv in _commands():
        program = argv[0]
        if program in ("redis-server", "redis-cli"):
            continue  # the redis image's
        assert (BIN / program).exists() or program == "python", f"{name}: {program}"


def test_every_module_and_app_the_services_name_exists():
    names = {arg for _, argv in _commands() for arg in argv}
    assert "tasks.worker" in names and "web:create_app()" in names
    code = (
        "import tasks.worker, web, flower.options;"
        "assert callable(web.create_app);"
        "from tornado.options import options;"
        "assert {'port', 'basic-auth'} <= set(options._options)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    # The python -c health checks at least compile.
    for name, argv in _commands():
        if argv[0] == "python":
            compile(argv[argv.index("-c") + 1], name, "exec")


def test_the_xinbao_subcommands_the_services_run_exist():
    for name, argv in _commands():
        if argv[0] != "xinbao":
            continue
        # Only the subcommand path (no options): its --help must work.
        words = [a for a in argv[1:] if not a.startswith("-")][:1]
        result = subprocess.run([str(BIN / "xinbao"), *words, "--help"], capture_output=True,
                                text=True, cwd=ROOT)
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_flower_asks_for_a_password_and_listens_on_loopback_only():
    flower = compose()["services"]["flower"]
    assert any(a.startswith("--basic-auth=${FLOWER_BASIC_AUTH:?") for a in flower["command"])
    assert all(p.startswith("127.0.0.1:") for p in flower["ports"])


def test_dockerfile_copies_what_exists():
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), line


def test_webhook_deliveries_have_their_own_worker():
    services = compose()["services"]
    worker, hooks = services["worker"]["command"], services["webhooks"]["command"]
    # The deal pipeline's worker never takes a delivery; the webhooks worker only those.
    assert worker[worker.index("-Q") + 1] == "celery"
    assert hooks[:4] == ["celery", "-A", "tasks.worker", "worker"]
    assert hooks[hooks.index("-Q") + 1] == "webhooks"
    assert hooks[hooks.index("--pool") + 1] == "threads"
