# Development commands; docs/development.md ("Running the tests") says what each tier runs and how long it takes.
# PYTHON is the interpreter with the project installed (`make quick PYTHON=.venv/bin/python`).
PYTHON ?= python
# The fast tier: everything but the tests over ~20 s, the browser and real-Hub tests, the tests that start a
# server (the app, the stand-in Hub) and the family matrix's repeats (tests/support/tiers.py), on 2 workers (one
# test module per worker at a time, so a module's shared model is built once).
QUICK_MARKERS = not slow and not browser and not hub and not server and not matrix
PYTEST_ARGS ?=

.PHONY: quick test lint docs

quick:
	$(PYTHON) -m pytest -n 2 --dist loadscope -q -m "$(QUICK_MARKERS)" $(PYTEST_ARGS)

# The whole suite, as CI runs it (the README's test command, after the installs).
test:
	$(PYTHON) -m pytest $(PYTEST_ARGS)

lint:
	ruff check .
	ruff format --check .

docs:
	$(PYTHON) -m mkdocs build --strict
