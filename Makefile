# The two commands a newcomer needs: `docker compose up` runs the stack, `make test` runs the tests.
PY := .venv/bin/python
export PYTHONPATH := $(CURDIR)
export PATH := $(CURDIR)/.cache/bin:$(CURDIR)/.cache/tools/bin:$(PATH)

.PHONY: setup test lint test-fast bench bench-quick generate stack stack-down

setup:  ## install pinned tools and the venv under .cache/ and .venv/ (idempotent)
	bash scripts/setup.sh

test: setup lint  ## everything CI runs: unit, component, deploy and end-to-end tests
	$(PY) -m pytest -ra

test-fast: setup  ## unit and deploy checks only
	$(PY) -m pytest -ra tests/unit tests/deploy

lint: setup
	$(PY) -m ruff check .

bench: setup  ## the full benchmark suite (minutes); prints a table, writes bench/results/
	$(PY) -m bench

bench-quick: setup
	$(PY) -m bench --quick

generate: setup  ## write every generated file: settings copies, monitoring rules and dashboards, the chart README (helm-docs)
	$(PY) -m scripts.generate
	$(PY) -m deploy.monitoring
	bash scripts/chart-readme.sh helm/voice-agents

stack:  ## the compose stack with local stand-in images and the provider fakes (see README)
	bash scripts/docker-stack.sh up

stack-down:  ## stop the compose stack and its dockerd
	bash scripts/docker-stack.sh down
