# Everything runs through uv with the pyenv-provided Python 3.12 (no interpreter downloads).
export UV_PYTHON_DOWNLOADS := never
export PYENV_VERSION ?= 3.11.7:3.12.1:3.13.0
export SAM_CLI_TELEMETRY := 0
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: setup demo test unit functional integration fuzz lint checkov format typecheck bench events validate build clean

setup:  ## create .venv from the lock file and install aws-sam-cli as a separate tool
	./scripts/bootstrap

demo: setup  ## the local end-to-end demo (embedded AWS, no account needed)
	uv run --frozen logpipe demo

test: setup  ## the whole test suite
	uv run --frozen pytest

unit:
	uv run --frozen pytest -m unit
functional:
	uv run --frozen pytest -m functional
integration:
	uv run --frozen pytest -m integration

FUZZ_SECONDS ?= 120
FUZZ_CORPUS ?= .cache/fuzz-corpus
fuzz: setup  ## coverage-guided fuzzing of the ingest path (atheris), corpus seeded from events/ and the workload generator
	uv run --frozen python tests/fuzz/atheris_ingest.py --seed-corpus $(FUZZ_CORPUS)/seeds
	mkdir -p $(FUZZ_CORPUS)/found
	uv run --frozen python tests/fuzz/atheris_ingest.py $(FUZZ_CORPUS)/found $(FUZZ_CORPUS)/seeds \
		-max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 -artifact_prefix=$(FUZZ_CORPUS)/

lint:  ## ruff (rich rule set), formatting check, mypy --strict, cfn-lint, sam validate --lint, checkov
	uv run --frozen ruff check .
	uv run --frozen ruff format --check .
	uv run --frozen mypy --strict layers/core/logpipe functions cli tests bench events
	uv run --frozen cfn-lint template.yaml
	sam validate --lint
	$(MAKE) --no-print-directory checkov

checkov:  ## checkov on template.yaml (a separate uv tool; every skip is justified in the template)
	checkov --file template.yaml --framework cloudformation --skip-download --quiet --compact

format:
	uv run --frozen ruff format .
	uv run --frozen ruff check --fix .

bench:  ## throughput, cold start and memory, each against a floor measured in the same run
	uv run --frozen python bench/ingest.py
	uv run --frozen python bench/cold_start.py
	uv run --frozen python bench/memory.py

events:  ## regenerate events/ (fixed times, committed), and copies stamped now in events/now/ for sam local invoke -e
	uv run --frozen python events/generate.py
	uv run --frozen logpipe restamp events/*.json --out events/now

validate:
	sam validate --lint

build:
	sam build

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
