# syntax=docker/dockerfile:1
# One image for the three Mishards services. The command picks the service:
#   docker run mishards mishards-router | mishards-meta | mishards-discovery
# The wheels are built and installed by deploy/build-wheels.sh and
# deploy/install-wheels.sh, the same scripts tests/deploy runs. Where the build cannot
# reach the package index (podman on the project's machines: `make build`), the host
# builds every wheel into build/wheels first and the image installs only those.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements/constraints.txt requirements/constraints.txt
COPY libs/common libs/common
COPY libs/cli libs/cli
COPY services/meta services/meta
COPY services/discovery services/discovery
COPY services/router services/router
COPY deploy/build-wheels.sh deploy/install-wheels.sh deploy/
# build/wheel[s]: the host's wheels when present; a glob may match nothing, a COPY may not,
# hence constraints.txt (unused in /wheels) beside it.
COPY requirements/constraints.txt build/wheel[s] /wheels/
RUN python -m venv /opt/mishards \
    && set -- /wheels/mishards_router-*.whl \
    && if [ -e "$1" ]; then export PIP_NO_INDEX=1; else deploy/build-wheels.sh /wheels; fi \
    && PYTHON=/opt/mishards/bin/python deploy/install-wheels.sh /wheels requirements/constraints.txt
COPY deploy/healthcheck.py /opt/mishards/bin/mishards-healthcheck

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="mishards" \
      org.opencontainers.image.description="Sharding middleware for Milvus 2.x: router, meta and discovery" \
      org.opencontainers.image.source="https://github.com/milvus-io/mishards"
RUN groupadd --system --gid 10001 mishards \
    && useradd --system --uid 10001 --gid mishards --home-dir /var/lib/mishards --create-home mishards \
    && mkdir -p /var/log/mishards \
    && chown mishards:mishards /var/log/mishards
COPY --from=build /opt/mishards /opt/mishards
ENV PATH=/opt/mishards/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOG_PATH=/var/log/mishards \
    SERVER_HOST=0.0.0.0
WORKDIR /var/lib/mishards
USER 10001:10001
# router 19530, meta 19541, discovery 19542; Prometheus 9191-9193
EXPOSE 19530 19541 19542 9191 9192 9193
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/opt/mishards/bin/mishards-healthcheck"]
CMD ["mishards-router"]
