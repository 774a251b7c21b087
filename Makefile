# make demo: the main job (the whole flow on the built-in examples)
# make test: the test suite
# make test-fast: the test suite without the tests marked slow (training, simulation, synthesis, wheel)
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
	scripts/setup_da4ml.sh
	$(VENV)/bin/python -m pytest -n auto --dist loadfile

test-fast: setup
	$(VENV)/bin/python -m pytest -n auto --dist loadfile -m "not slow"

check-wheel: setup
	scripts/check_wheel.sh

bench: setup bench-da4ml
	$(VENV)/bin/python scripts/bench_network.py
	$(VENV)/bin/python scripts/bench_lut.py
	$(VENV)/bin/python scripts/bench_scan.py
	$(VENV)/bin/python scripts/bench_ii.py

bench-da4ml: setup
	scripts/setup_da4ml.sh
	$(VENV)/bin/python scripts/bench_da4ml.py

lock: setup
	$(VENV)/bin/python -m pip freeze --exclude-editable | grep -v '^trigger' > requirements.lock.new
	(echo "# Exact versions of the whole Python stack (pip freeze of a working .venv). Regenerate: make lock"; cat requirements.lock.new) > requirements.lock
	rm requirements.lock.new

clean:
	rm -rf $(VENV) .venv-da4ml build *.egg-info
