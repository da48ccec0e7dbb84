# syntax=docker/dockerfile:1
# One image for every service; the command picks which runs:
#   python -m registry | python -m router | python -m deliverer | python tools/create_topics.py
# Build: docker build -t wink-webhooks:dev .   (docker compose builds it for you)

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
# uv comes from PyPI (pinned to the version that wrote uv.lock); the packages come from uv.lock only.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src

# Third-party dependencies first, from the lock and the member manifests alone, so a code change
# does not reinstall them (separate layer, cached).
COPY pyproject.toml uv.lock ./
# Every workspace member's manifest (uv refuses a workspace with a member missing; a test keeps this
# list equal to [tool.uv.workspace] members).
COPY libs/common/pyproject.toml libs/common/pyproject.toml
COPY libs/cli/pyproject.toml libs/cli/pyproject.toml
COPY libs/devtools/pyproject.toml libs/devtools/pyproject.toml
COPY services/registry/pyproject.toml services/registry/pyproject.toml
COPY services/router/pyproject.toml services/router/pyproject.toml
COPY services/deliverer/pyproject.toml services/deliverer/pyproject.toml
RUN uv sync --frozen --no-dev --all-packages --no-install-workspace

# Then our own packages, installed as wheels (not editable) so the runtime image needs no source tree.
COPY libs libs
COPY services services
RUN uv sync --frozen --no-dev --all-packages --no-editable

FROM ${PYTHON_IMAGE} AS runtime
# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY tools/create_topics.py /app/tools/create_topics.py
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
# registry HTTP API, router web (/metrics, /readyz), deliverer /metrics
EXPOSE 8080 6066 9100
CMD ["python", "-m", "registry"]
