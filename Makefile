# The two set-up commands of the README: `make train` and `make test`. Both create .venv
# (Python 3.11) on first use and skip the install while pyproject.toml is unchanged.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: install train test test-quick bench tensorboard clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

train: install
	$(BIN)/ganlab train $(ARGS)

# One process per core (pytest-xdist), each torch on one thread: tiny tensors gain nothing from
# two threads, and two processes keep both cores busy (the README gives the measured times).
TEST := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n auto

test: install
	$(TEST) $(ARGS)

test-quick: install
	$(TEST) -m 'not slow' $(ARGS)

bench: install
	$(BIN)/python -m benchmarks.run $(ARGS)
	$(BIN)/python -m benchmarks.loop_vs_hand --resolution 28
	$(BIN)/python -m benchmarks.loop_vs_hand --resolution 32
	$(BIN)/python -m benchmarks.diffusion_vs_hand --model ddpm
	$(BIN)/python -m benchmarks.diffusion_vs_hand --model flow

tensorboard: install
	$(BIN)/tensorboard --logdir outputs --samples_per_plugin images=100000  # every sample grid (not a random 10; 0 serves none)

clean:
	rm -rf outputs multirun .pytest_cache build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
