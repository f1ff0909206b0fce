# crossmedia — every target creates .venv and installs the package the first time it is needed.
#   make train TASK=hashing [MODEL=csq] [DEVICES=2] [NODES=1] [PRECISION=bf16-mixed] [MAX_EPOCHS=3] [ARGS="--trainer.x y"]
#   make eval MODEL=csq       make test [TEST_WORKERS=2]       make zoo       make data DATASET=digits       make bench
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CM := $(BIN)/crossmedia
STAMP := $(VENV)/.installed
# torch comes first and pinned: a newer release on PyPI would pull a multi-GB CUDA build.
TORCH ?= torch==2.14.1 torchvision==0.29.1

TASK ?= hashing
MODEL ?=
DEVICES ?= 1
NODES ?= 1
PRECISION ?=
MAX_EPOCHS ?=
ARGS ?=
DATASET ?= digits
# pytest-xdist workers of make test (each on one torch thread); 0 runs the suite in this process
TEST_WORKERS ?= 2

.PHONY: install train eval test data zoo bench clean distclean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The default entry is looked up first and its failure (an unknown TASK) ends the target with
# that one-line message; `set -x` then echoes the fit command that runs.
train: $(STAMP)
	@model='$(MODEL)'; test -n "$$model" || model=$$($(CM) zoo default '$(TASK)') || exit 2; \
	set -x; $(CM) fit -c "$$model" \
		--trainer.devices=$(DEVICES) --trainer.num_nodes=$(NODES) \
		$(if $(PRECISION),--trainer.precision=$(PRECISION)) \
		$(if $(MAX_EPOCHS),--trainer.max_epochs=$(MAX_EPOCHS)) $(ARGS)

eval: $(STAMP)
	@test -n "$(MODEL)" || { echo "usage: make eval MODEL=<zoo name>  (see: make zoo)"; exit 2; }
	$(CM) zoo eval $(MODEL)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS)) $(ARGS)

data: $(STAMP)
	$(CM) data prepare $(DATASET) $(ARGS)

zoo: $(STAMP)
	$(CM) zoo list

bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf runs lightning_logs wandb .pytest_cache build dist src/*.egg-info
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
