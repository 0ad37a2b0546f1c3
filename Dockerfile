# Production image: the same lock file and Debian package list as `make`.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 OMP_THREAD_LIMIT=1 \
    AIRFLOW_HOME=/opt/airflow AIRFLOW__CORE__DAGS_FOLDER=/opt/sta/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/sta/plugins AIRFLOW__CORE__LOAD_EXAMPLES=False
WORKDIR /opt/sta
COPY packages.txt requirements.lock pyproject.toml ./
RUN apt-get update && grep -vE '^\s*(#|$)' packages.txt | xargs apt-get install -y --no-install-recommends \
    && rm -rf /var/lib/apt/lists/*
# Every Python package, and only those, from the lock file (celery, redis and psycopg2 included).
RUN pip install -r requirements.lock
COPY . .
RUN pip install --no-deps --no-build-isolation --config-settings editable_mode=compat -e .
USER 1000
