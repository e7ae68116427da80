"""The task tests share the API tests' app: fakeredis, demo data, Celery eager, a test clock."""

from tests.web.conftest import app, clock  # noqa: F401 - fixtures re-exported
