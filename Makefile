# Everything a fresh machine needs: `make demo` (main job) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
MODEL  := models/default
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv model demo test bench clean

venv: $(VENV)/.installed

# torch==2.13.0 resolves to the CPU wheel on disk (pip's find-links); nothing else is that big.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[train,dev]'
	touch $@

model: venv $(MODEL)/SHA256SUMS

$(MODEL)/SHA256SUMS:
	$(BIN)/logdistill train --out $(MODEL)

demo: model
	$(BIN)/python -m training.demo --model $(MODEL)

test: venv
	$(BIN)/python -m pytest -q

bench: model
	$(BIN)/python bench/run.py --model $(MODEL) --out bench/results/latest.json

clean:
	rm -rf $(VENV) models build *.egg-info
