# Production image: the same lock file and Debian package list as `make`.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 OMP_THREAD_LIMIT=1 \
    AIRFLOW_HOME=/opt/airflow AIRFLOW__CORE__DAGS_FOLDER=/opt/sta/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/sta/plugins AIRFLOW__CORE__LOAD_EXAMPLES=False
WORKDIR /opt/sta
COPY packages.txt requirements.lock pyproject.toml ./
RUN apt-get update && xargs -a packages.txt apt-get install -y --no-install-recommends \
    && rm -rf /var/lib/apt/lists/*
RUN pip install -r requirements.lock apache-airflow-providers-celery==3.* "celery<5.7" psycopg2-binary
COPY . .
RUN pip install --no-deps -e .
USER 1000
