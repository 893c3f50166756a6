# Serving image (minimal for now; the hardened multi-stage build is the deploy issue's work).
# The runtime needs no torch: numpy, onnxruntime, tokenizers, pyyaml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY training ./training
RUN pip install --no-cache-dir . && useradd --uid 10001 --no-create-home logdistill
# Build the model first (`make model`); the artifact is verified against SHA256SUMS at start-up.
COPY models/default /models/default
USER 10001
ENTRYPOINT ["logdistill"]
CMD ["classify", "--model", "/models/default"]
