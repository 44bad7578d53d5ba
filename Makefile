# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install palm-bayes, run the main job on the shipped example data
#   make test   - create .venv if needed, install (and Debian's chromium for the browser test), run ruff and the tests
# PYTHON / VENV pick the interpreter and the environment (CI's second leg: PYTHON=python3.12 VENV=.venv-py312).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= demo_out

.PHONY: install demo test browser clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(BIN)/palm-bayes forecast examples/al_curves_yeast_svc.csv --max-points 8 --out $(OUT)/forecast
	$(BIN)/palm-bayes decide $(OUT)/forecast --target 0.8 --cost-per-label 1 --value-per-point 50 --out $(OUT)/decide
	$(BIN)/palm-bayes fit --base_path examples/al_runs/Yeast/SVC_RBF --method entropy_b20 --out_dir $(OUT)/fit

# the report's browser test needs Debian's chromium and chromedriver (installed here when missing; needs root)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "make test: installing Debian's chromium and chromium-driver with apt-get (about 100 packages, needs" \
	       "root): tests/test_report_browser.py opens report.html in a headless browser to check its layout."; \
	  apt-get install -y -q chromium chromium-driver || \
	  { apt-get update -q && apt-get install -y -q chromium chromium-driver; }; }

test: install browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(OUT)
