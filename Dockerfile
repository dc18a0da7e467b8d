# syntax=docker/dockerfile:1
# The prediction service: onnxruntime + tokenizers, no torch. Build from the repo root:
#   docker build -t textclf .
#   docker run -p 8000:8000 -e APP_API_KEY=... textclf
# The registry in models/ is baked in at /srv/models; mount another over it to change it.

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
# Dependencies first, in their own cached layer: only pyproject.toml changes them.
COPY pyproject.toml README.md ./
# Versions are constrained in pyproject.toml's serve extra; a lock file would pin them.
# hadolint ignore=DL3013
RUN mkdir app registry compression \
    && touch app/__init__.py registry/__init__.py compression/__init__.py \
    && pip install ".[serve]" \
    && pip uninstall -y bert-compress
# Then the code (compression/ is copied for the package metadata; its deps are not).
COPY app ./app
COPY registry ./registry
COPY compression ./compression
# hadolint ignore=DL3013
RUN pip install --no-deps . \
    && python -c "import app.main, sys; assert 'torch' not in sys.modules"

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    APP_MODELS_DIR=/srv/models
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app
COPY --from=builder /opt/venv /opt/venv
COPY --chown=10001:10001 models/ /srv/models/
USER 10001:10001
WORKDIR /srv
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
CMD ["python", "-m", "app", "--host", "0.0.0.0", "--port", "8000"]
