# One image for web, worker and beat; docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY workflow ./workflow
COPY web ./web
COPY tasks ./tasks
COPY insurer_sim ./insurer_sim
# No data/: the demo file and its public tokens stay out of the production image.
RUN pip install . && useradd --system --home /app xinbao
USER xinbao
EXPOSE 8000
CMD ["gunicorn", "--config", "python:web.gunicorn_conf", "--bind", "0.0.0.0:8000", "--workers", "4", "web:create_app()"]
