"""The naive baseline's ``celery -A`` target (Flask's ``make_celery.py``)."""

from tests.stress.naive_app import create_app

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
