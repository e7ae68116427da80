"""Celery side of Xinbao: the app factory hook and the thin tasks that drive deals."""
