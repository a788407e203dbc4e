# Set-up on a fresh machine: `make demo` or `make test` creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch 2.13.0: on CPU-only Linux machines the CPU wheel is taken when one is available
# locally (pip's find-links); override TORCH_SPEC to pick another build.
TORCH_SPEC ?= torch==2.13.0
# Triton kernels run on CPU tensors only in Triton's interpreter: use it without a GPU.
HAVE_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1 || echo 0)
ifeq ($(HAVE_GPU),1)
TEST_ENV :=
else
TEST_ENV := TRITON_INTERPRET=1
endif

.PHONY: demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --progress-bar on "$(TORCH_SPEC)"
	touch $@

$(VENV)/.demo: $(VENV)/.torch pyproject.toml
	$(BIN)/pip install -e ".[demo]"
	touch $@

$(VENV)/.test: $(VENV)/.torch pyproject.toml
	$(BIN)/pip install -e ".[test]"
	# the oracles: mmdet / mmdet3d drawing code and mmpose's codecs, without their dependency trees
	# (opencv-python-headless: cv2, which mmpose's keypoint decoding imports)
	$(BIN)/pip install -q --no-deps mmdet==3.3.0 mmdet3d==1.4.0 mmpose==1.3.2 opencv-python-headless
	touch $@

demo: $(VENV)/.demo
	$(BIN)/python -m gaussdraw demo --out demo.png

test: $(VENV)/.test
	$(TEST_ENV) $(BIN)/python -m pytest -q

bench: $(VENV)/.demo
	$(BIN)/python -m gaussdraw bench

clean:
	rm -rf $(VENV) demo.png
