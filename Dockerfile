# The image MLflow Projects runs svpkit in (docker/MLproject; `mlflow run docker ...`, local Docker
# or `--backend kubernetes`). Build it from the repository root:
#
#   docker build -t svpkit:latest .
#
# The default base is a plain Python image; PyPI's Linux torch wheels bundle the CUDA runtime, so
# the same image trains on NVIDIA GPUs when the container gets them (--gpus all, or a Kubernetes
# nvidia.com/gpu limit) and on CPU otherwise. torchrun (multi-GPU in one container) is part of torch.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg

# git: MLflow records the source version; build-essential: plugins that compile (fastText).
RUN apt-get update \
    && apt-get install -y --no-install-recommends git build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/svpkit
COPY locks ./locks
RUN python -m pip install -c locks/main.txt torch==2.14.1 torchvision==0.29.1
COPY pyproject.toml README.md ./
COPY svpkit ./svpkit
RUN python -m pip install -c locks/main.txt .
COPY plugins ./plugins
RUN for plugin in plugins/*/; do \
        if [ -f "$plugin/pyproject.toml" ]; then python -m pip install -c locks/main.txt "$plugin"; fi; \
    done
# Presets and the plain MLproject travel with the image (presets are read from /opt/svpkit/projects).
COPY projects ./projects
COPY MLproject python_env.yaml ./

# Data sets are mounted (e.g. /data) and passed with --data-path; the digits default is embedded.
RUN python -m svpkit plugins list
CMD ["python", "-m", "svpkit", "--help"]
