# dfer: `make demo` and `make test` each set everything up on a fresh machine first.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
DFER := $(VENV)/bin/dfer
STAMP := $(VENV)/.dfer-installed

DATASET ?= cremad
ROOT ?=
PRESET ?= base
DEVICE ?=
FUSION ?=
MODALITIES ?=
# The demo's store and run (make demo) carry no preset in their names.
ifeq ($(DATASET),demo)
STORE ?= cache/demo
RUN ?= runs/demo
endif
STORE ?= cache/$(DATASET)-$(PRESET)
RUN ?= runs/$(DATASET)-$(PRESET)$(if $(FUSION),-$(FUSION))$(if $(MODALITIES),-$(MODALITIES))
EXTRACT_RECIPE := $(wildcard recipes/$(DATASET)/extract.yaml)
TRAIN_RECIPE := $(wildcard recipes/$(DATASET)/train.yaml)
INIT ?= $(RUN)
FT_RUN ?= $(patsubst $(RUN)%,$(RUN)-ft%,$(INIT))
FINETUNE_RECIPE := $(wildcard recipes/$(DATASET)/finetune.yaml)

.PHONY: install test test-all demo extract train finetune ravdess-speech clean

install: $(STAMP)

# Re-runs whenever a dependency file changes; pip skips what is already installed.
$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: install
	$(PY) -m pytest -q -m "not slow"

test-all: install
	$(PY) -m pytest -q

# extract -> train -> evaluate on the bundled CREMA-D sample, tiny encoders, CPU
demo: install
	$(DFER) extract cremad samples/cremad --out cache/demo --recipe recipes/demo/extract.yaml
	$(DFER) info cache/demo
	$(DFER) train cache/demo --out runs/demo --recipe recipes/demo/train.yaml
	$(DFER) evaluate runs/demo --store cache/demo

# make extract DATASET=ravdess ROOT=/data/RAVDESS [PRESET=base] [DEVICE=cuda]
extract: install
	@test -n "$(ROOT)" || (echo "make extract needs ROOT=/path/to/$(DATASET)"; exit 2)
	$(DFER) extract $(DATASET) $(ROOT) --out $(STORE) $(if $(EXTRACT_RECIPE),--recipe $(EXTRACT_RECIPE)) \
		--preset $(PRESET) $(if $(DEVICE),--device $(DEVICE))
	$(DFER) info $(STORE)

# make train DATASET=ravdess [PRESET=base] [FUSION=late] [MODALITIES=audio]
train: install
	$(DFER) train $(STORE) --out $(RUN) $(if $(TRAIN_RECIPE),--recipe $(TRAIN_RECIPE)) \
		$(if $(FUSION),--fusion $(FUSION)) $(if $(MODALITIES),--modalities $(MODALITIES)) $(if $(DEVICE),--device $(DEVICE))

# make finetune DATASET=demo  |  make finetune DATASET=ravdess INIT=runs/ravdess-base/fold1 DEVICE=cuda
finetune: install
	$(DFER) finetune $(STORE) --init $(INIT) --out $(FT_RUN) $(if $(FINETUNE_RECIPE),--recipe $(FINETUNE_RECIPE)) \
		$(if $(DEVICE),--device $(DEVICE))
	$(DFER) evaluate $(FT_RUN) --store $(STORE)

# RAVDESS speech (actors 01-18), audio only, on a CPU, one command: stage 1 -> 2 -> 3 cross-validated by actor,
# the final model (all 18 actors) at $(OUT)/final, and the eGeMAPS + SVM baseline on the same folds; prints the
# three result rows side by side (recipes/ravdess_speech/RESULTS.md has them with times).
SPEECH := recipes/ravdess_speech
ravdess-speech: SPEECH_ROOT = $(or $(ROOT),../shared/data/ravdess_speech_16k)
ravdess-speech: OUT ?= runs/ravdess_speech
ravdess-speech: install
	$(DFER) extract ravdess $(SPEECH_ROOT) --out $(OUT)/cache --recipe $(SPEECH)/extract.yaml
	$(DFER) train $(OUT)/cache --out $(OUT)/stage2 --recipe $(SPEECH)/train.yaml
	$(DFER) finetune $(OUT)/cache --init $(OUT)/stage2 --out $(OUT)/stage3 --recipe $(SPEECH)/finetune.yaml
	$(DFER) train $(OUT)/cache --out $(OUT)/final-stage2 --recipe $(SPEECH)/train.yaml --fold none
	$(DFER) finetune $(OUT)/cache --init $(OUT)/final-stage2 --out $(OUT)/final --recipe $(SPEECH)/finetune.yaml
	$(PY) bench/egemaps_svm.py --root $(SPEECH_ROOT) --out $(OUT)/egemaps
	@cat $(OUT)/stage2/results.md; tail -n 1 $(OUT)/stage3/results.md; tail -n 1 $(OUT)/egemaps/results.md

clean:
	rm -rf cache/demo runs/demo runs/demo-ft .pytest_cache
