# Everything a fresh machine needs: `make demo` (main job) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
MODEL  := models/default
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv model demo test bench clean prometheus

venv: $(VENV)/.installed

# torch==2.13.0 resolves to the CPU wheel on disk (pip's find-links); nothing else is that big.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[train,demo,dev]'
	touch $@

model: venv $(MODEL)/SHA256SUMS

$(MODEL)/SHA256SUMS:
	$(BIN)/logdistill train --out $(MODEL)

# Embedded broker (tansu), Loghub replayed through `logdistill serve`, live summary; exits when done.
DEMO_ARGS ?=
demo: model
	$(BIN)/logdistill demo --model $(MODEL) $(DEMO_ARGS)

test: venv prometheus
	$(BIN)/python -m pytest -q

# A real Prometheus server for tests/test_prometheus_scrape.py: the Debian package, once (a no-op
# when the binary is there). The suite needs it: if it cannot be installed, `make test` stops here.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
prometheus:
	@command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus \
	  >/dev/null; } || { echo "error: could not install prometheus (apt-get); the tests need it" >&2; exit 1; }

# The bench's extra (confluent-kafka, compared with kafka-python end to end), once per pyproject change.
$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install -q -e '.[bench]'
	touch $@

bench: model $(VENV)/.bench-installed
	$(BIN)/python bench/run.py --model $(MODEL) --out bench/results/latest.json

clean:
	rm -rf $(VENV) models build *.egg-info
