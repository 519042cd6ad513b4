# The delaycast image: the `delaycast` CLI, used by the worker, API and demo producer services of
# docker-compose.yml (e.g. `docker compose run --rm worker --help`).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    DELAYCAST_HOME=/var/lib/delaycast

WORKDIR /app

# Dependencies first, pinned by constraints.txt, in their own layer: editing the code does not
# reinstall them. The confluent-kafka and psycopg2-binary wheels bring librdkafka and libpq, so
# no compiler is needed.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /var/lib/delaycast --create-home delaycast

# Not root: the worker only needs its home (models, Faust's data dir).
USER delaycast
VOLUME ["/var/lib/delaycast"]

ENTRYPOINT ["delaycast"]
CMD ["--help"]
