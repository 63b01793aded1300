# The README's two commands. Both set up a fresh machine first (scripts/setup.sh, idempotent).
VENV ?= .venv
RESULTS ?= results
PYTEST_ARGS ?=

.PHONY: setup run test

setup:
	@bash scripts/setup.sh

# The main job: the quickstart study (every selection method, K and k on the offline `digits`
# data) on an embedded local Ray; it ends by drawing its figures and report into
# $(RESULTS)/quickstart/figures. Re-running skips the trials already done.
run: setup
	$(VENV)/bin/hiddenlab study run quickstart --storage $(RESULTS)

test: setup
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)
