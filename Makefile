# make demo: the main job (the whole flow on the built-in examples)
# make test: the test suite
#   (pytest-xdist's worksteal: idle workers take tests from busy ones, so no file order is kept by hand;
#   the comparisons with da4ml, marked bench, run under make bench)
# make test-fast: the test suite without the tests marked slow (any that compiles or runs a tool, training, wheel)
# make check-wheel: build the wheel, install it in a fresh venv and run the CLI from outside the checkout
# make setup: only the set-up (.venv with the pinned stack, system tools); quick when done
VENV := .venv
STAMP := $(VENV)/.setup-done

.PHONY: setup demo test test-fast check-wheel bench bench-da4ml lock clean
setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock scripts/setup.sh scripts/install_system_tools.sh
	scripts/setup.sh
	touch $@

demo: setup
	$(VENV)/bin/trigger demo

test: setup
	$(VENV)/bin/python -m pytest -n auto --dist worksteal -m "not bench"

test-fast: setup
	$(VENV)/bin/python -m pytest -n auto --dist worksteal -m "not slow and not bench"

check-wheel: setup
	scripts/check_wheel.sh

bench: setup bench-da4ml
	$(VENV)/bin/python scripts/bench_network.py
	$(VENV)/bin/python scripts/bench_lut.py
	$(VENV)/bin/python scripts/bench_scan.py
	$(VENV)/bin/python scripts/bench_ii.py

bench-da4ml: setup
	scripts/setup_da4ml.sh
	$(VENV)/bin/python -m pytest -m bench tests/test_da4ml_bench.py
	$(VENV)/bin/python scripts/bench_da4ml.py

lock: setup
	$(VENV)/bin/python -m pip freeze --exclude-editable | grep -v '^trigger' > requirements.lock.new
	(echo "# Exact versions of the whole Python stack (pip freeze of a working .venv). Regenerate: make lock"; cat requirements.lock.new) > requirements.lock
	rm requirements.lock.new

clean:
	rm -rf $(VENV) .venv-da4ml build *.egg-info
