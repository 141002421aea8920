# The image the Kubernetes backends run (docs/distributed.md, docs/orchestration.md):
# the project's locked environment (uv.lock, extras k8s for the Prefect Kubernetes worker) and
# its code. Data, the DVC cache and MLflow store live on the shared volume, not in the image.
#   docker build -t w2v-cnn:dev .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DVC_NO_ANALYTICS=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* && pip install --no-cache-dir uv

WORKDIR /app
# Dependencies first (cached layer while only the code changes), compiled to bytecode now:
# with PYTHONDONTWRITEBYTECODE every pod would otherwise compile TensorFlow, Prefect and MLflow
# again on each start.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --extra k8s --no-install-project --no-cache --compile-bytecode
COPY tasks/ tasks/
COPY flows/ flows/
COPY scripts/ scripts/
COPY params.yaml dvc.yaml prefect.yaml ./
RUN uv sync --frozen --extra k8s --no-cache
