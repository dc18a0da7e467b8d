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
# Dependencies first, in their own cached layer: only pyproject.toml changes them. They are
# installed through placeholder packages, removed afterwards with everything setuptools
# left behind: its build/ folder would otherwise hand the empty placeholders to the real
# install below, whose files are older than that folder's copies (the image then shipped
# empty __init__.py files and crashed on start).
COPY pyproject.toml README.md ./
# Versions are constrained in pyproject.toml's serve extra; a lock file would pin them.
# hadolint ignore=DL3013
RUN mkdir app inference registry \
    && touch app/__init__.py inference/__init__.py registry/__init__.py \
    && pip install ".[serve]" \
    && pip uninstall -y bert-compress \
    && rm -rf app inference registry build ./*.egg-info
# Then the service's code (the offline compression package is not part of the image).
COPY app ./app
COPY inference ./inference
COPY registry ./registry
# Install, slim the venv, and check the result from /, where the source tree cannot shadow
# the installed package. Removed: the packaging tools (25 MB), onnxruntime's C-API library
# (34 MB; the Python binding links the runtime itself), its offline tools (quantization,
# transformers optimizer: 9 MB) and numpy's build and test helpers.
# hadolint ignore=DL3013,DL3003
RUN pip install --no-deps . \
    && rm -rf build ./*.egg-info \
    && SITE=$(python -c "import sysconfig; print(sysconfig.get_path('purelib'))") \
    && python -m pip uninstall -y pip setuptools wheel \
    && rm -rf "$SITE"/onnxruntime/capi/libonnxruntime.so* \
        "$SITE"/onnxruntime/transformers "$SITE"/onnxruntime/quantization \
        "$SITE"/onnxruntime/tools "$SITE"/onnxruntime/datasets "$SITE"/onnxruntime/backend \
        "$SITE"/numpy/f2py "$SITE"/numpy/distutils "$SITE"/numpy/_pyinstaller \
        "$SITE"/numpy/*/tests "$SITE"/numpy/tests \
    && cd / \
    && python -c "import sys, app.main, onnxruntime, registry; from registry import ModelRef; \
assert app.__file__.startswith('/opt/venv/'), app.__file__; \
assert 'torch' not in sys.modules; print('image check ok:', app.__file__)"

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
