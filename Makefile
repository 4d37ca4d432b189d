# Every target creates or reuses .venv with the machine's python3, so each is one command on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test bench lint install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[tensorflow,images,test]'
	touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[tensorflow,images,test,bench]'
	touch $(BENCH_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m seqkit.demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(BENCH_STAMP)
	$(PY) -m benchmarks

# seqlint on the project itself (seqkit's own PyDataset classes must stay clean).
lint: $(STAMP)
	$(VENV)/bin/seqlint check .

clean:
	rm -rf $(VENV) build *.egg-info demo_data .bench_cache
