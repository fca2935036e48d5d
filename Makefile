# kdteach: the two commands of the README are `make lab` and `make test`.
# Both create (or reuse) the project-local virtual environment .venv and install kdteach into it.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision are installed as a matching PyPI pair (CUDA builds; they run on CPU too).
TORCH_PAIR ?= torch==2.14.1 torchvision==0.29.1
# Faster CPU training and no multi-second malloc stalls; exported so Jupyter kernels inherit it.
export GLIBC_TUNABLES ?= glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736
# The test suite runs at the small `ci` budget unless told otherwise.
TEST_BUDGET ?= ci
PYTEST_ARGS ?=

.PHONY: env lab test warm notebooks bench clean-env

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH_PAIR)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# The course's JupyterLab settings (jupyterlab/overrides.json: no news prompt), read by the venv's JupyterLab.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json

$(LAB_SETTINGS): jupyterlab/overrides.json $(VENV)/.installed
	mkdir -p $(dir $@)
	cp jupyterlab/overrides.json $@

env: $(VENV)/.installed $(LAB_SETTINGS)

lab: $(VENV)/.installed $(LAB_SETTINGS)
	$(VENV)/bin/jupyter lab notebooks/

# Warm the shared cached teachers once, then unit tests (the browser test among them) + every notebook under nbval.
test: $(VENV)/.installed $(LAB_SETTINGS)
	KDTEACH_BUDGET=$(TEST_BUDGET) $(PY) -m kdteach zoo warm --quiet
	KDTEACH_BUDGET=$(TEST_BUDGET) $(PY) -m pytest tests notebooks \
		--nbval-lax --nbval-current-env --nbval-sanitize-with .ci/nbval-sanitize.cfg \
		-p no:cacheprovider $(PYTEST_ARGS)

warm: $(VENV)/.installed
	KDTEACH_BUDGET=$(TEST_BUDGET) $(PY) -m kdteach zoo warm

# Re-execute every notebook in place at the ci budget (refreshes committed outputs).
notebooks: $(VENV)/.installed
	KDTEACH_BUDGET=ci $(PY) -m kdteach notebooks run notebooks

bench: $(VENV)/.installed
	$(PY) bench/bench_train.py

clean-env:
	rm -rf $(VENV)
