# The project's commands. `make demo` and `make test` work on a fresh Debian/Ubuntu machine
# with Python 3.11+; they install what they need, system packages included.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# Stage commands say `python`; this makes it the project's virtual environment.
RUN := PATH="$(BIN):$$PATH"
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PORT ?= 8000
# `make test` runs the suite on this many pytest-xdist workers. Much of the suite waits (on
# services held to a 0.1 CPU quota, on git pushes, on health polls), so four workers shorten
# it on a two-core runner too; tests that judge time judge CPU cost, which the other workers
# do not move. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 4

.PHONY: help install system-deps demo test mutation-check lint serve bench bench-servers bench-peers bench-batching bench-latency quantization gate-steadiness docs report clean

help:
	@echo "make demo    - install, run the whole pipeline (dvc repro) on the demo model, say what next"
	@echo "make test    - install everything the tests need and run the whole suite"
	@echo "make mutation-check - break each guard in turn; the tests must catch every one"
	@echo "make serve   - serve build/candidate on http://127.0.0.1:$(PORT)"
	@echo "make bench   - every serving path side by side under 512 MB, and CPU per request"
	@echo "make bench-servers - candidate WSGI servers side by side, hostile traffic at 0.1 CPU"
	@echo "make bench-peers - ours, MLServer and BentoML serving the candidate: CPU, memory, start"
	@echo "make bench-batching - CPU per request at 1, 4, 16 clients, with batching and without"
	@echo "make bench-latency - in-process latency benchmarks (pytest-benchmark)"
	@echo "make gate-steadiness - the gate twice, beside two busy processes and without: reports/gate_steadiness.json"
	@echo "make quantization - every quantization mode side by side (reports/quantization.md)"
	@echo "make docs    - write every measured figure from reports/ into README.md and docs/*.md"
	@echo "make report  - reports/release.md and release.html for the candidate (BASE=main to compare)"

# System packages: git-lfs for promotion, python3-venv where Debian split it off, and a
# headless browser for the release page's test (Debian's chromium; a Chrome already there does).
system-deps:
	@missing=""; \
	command -v git-lfs >/dev/null 2>&1 || missing="$$missing git-lfs"; \
	$(PYTHON) -c "import ensurepip, venv" >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		command -v google-chrome >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		$(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

$(STAMP): pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[service,pipeline,test]'
	touch $@

install: $(STAMP)

# The summary shows what failed too: it runs whatever `dvc repro` returns; repro's failure wins.
demo: install
	@status=0; $(RUN) dvc repro || status=$$?; \
	$(RUN) python -m pipeline.summary --next-steps || [ $$status -ne 0 ] || status=$$?; \
	exit $$status

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install system-deps lint
	$(RUN) python -m pytest -n $(TEST_WORKERS) --dist worksteal

serve: install
	@test -f build/candidate/manifest.json || $(RUN) dvc repro convert
	$(RUN) MODEL_DIR=build/candidate gunicorn service.app:app --bind 127.0.0.1:$(PORT) \
		--workers 1 --worker-class service.worker.JsonErrorGeventWorker \
		--worker-connections 1000 --no-control-socket

bench: install
	$(RUN) dvc repro parity
	$(RUN) python -m benchmarks.run

bench-servers: install
	@test -f build/candidate/manifest.json || $(RUN) dvc repro convert
	$(RUN) python -m benchmarks.servers

# Each guard of docs/guards.md made to always pass, in a copy of the repository: a test must fail.
mutation-check: install system-deps
	$(RUN) python tests/mutation_check.py

# Its own target: `make bench` converts every quantization and runs TensorFlow paths, while this
# one needs only the candidate, and installs two peer venvs (build/peers/) on its first run.
bench-peers: install
	@test -f build/candidate/manifest.json || $(RUN) dvc repro convert
	$(RUN) python -m benchmarks.peers

# The candidate served with its batch-N model and, beside it, without (every sample its own invoke).
bench-batching: install
	@test -f build/candidate/manifest.json || $(RUN) dvc repro convert
	$(RUN) python -m benchmarks.batching_figures build/candidate data/demo/heldout.npz

bench-latency: install
	$(RUN) python -m pytest tests/test_latency_benchmarks.py --benchmark-enable \
		--benchmark-columns=median,iqr,ops --benchmark-sort=name

# Writes under reports/ only; `make docs` is the one step that copies its table into the docs.
quantization: install
	$(RUN) dvc repro parity
	$(RUN) python -m pipeline.conversion.compare_quantization

gate-steadiness: install
	$(RUN) dvc repro parity
	$(RUN) python -m benchmarks.gate_steadiness

docs: install
	$(RUN) python -m pipeline.report.docs

# The release report; BASE is a git ref whose committed reports to compare against.
report: install
	$(RUN) python -m pipeline.report $(if $(BASE),--base $(BASE))

clean:
	rm -rf build/.candidate.partial build/bench build/peers build/quantization .pytest_cache .ruff_cache
