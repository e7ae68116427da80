"""The ``celery -A tasks.worker`` target: the Celery app of a fully configured Flask app."""

from web import create_app

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
