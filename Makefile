# Two commands set everything up: `make run` (the main job) and `make test` (every test).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test agent test-tools clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP) agent
	$(BIN)/machinescan demo

test: $(STAMP) agent test-tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

agent: $(STAMP)
	$(BIN)/python -m machinescan.agent.build dist/machinescan-agent.pyz

test-tools:
	scripts/install-test-tools

clean:
	rm -rf $(VENV) dist build
