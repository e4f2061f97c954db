# roadwatch — the two commands are `make run` and `make test`; `make help` lists the rest.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SHARED ?= $(abspath ../shared)
STAMP := $(VENV)/.installed
APT_FILES := $(wildcard services/*/apt-packages.txt deploy/apt-packages.txt)

.DEFAULT_GOAL := help
.PHONY: help run test venv system-deps proto proto-check settings-doc lock test-slow bench bench-ingest bench-detect bench-registry bench-portal bench-board bench-track bench-track-checkpoint bench-notify bench-e2e bench-bad-input chaos chaos-video chaos-cluster eval-plates eval-video report deploy-check deploy-generate clean finetune finetune-smoke

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

run: venv ## start NATS, PostgreSQL and every service on this machine (Ctrl-C stops all)
	@$(BIN)/roadwatch stack-env var
	@$(BIN)/honcho -d . -f var/Procfile -e var/run.env start

test: venv system-deps ## run the test suite on real NATS, PostgreSQL and models (all but the `slow` whole-data-set runs)
	$(BIN)/pytest -n 2 --dist loadscope -m "not slow"

test-slow: venv ## the `slow` tests: real models over whole data sets (every labelled plate, the whole Sai Gon clip)
	$(BIN)/pytest -m slow

venv: $(STAMP) ## create .venv with the pinned dependencies (done by run and test)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "setuptools==80.9.0"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

system-deps: ## install the Debian packages the tests need (GStreamer RTSP server...), when missing
	@pkgs="$$(cat $(APT_FILES) /dev/null | grep -vE '^\s*(#|$$)' | tr '\n' ' ')"; \
	if [ -n "$$pkgs" ] && ! dpkg -s $$pkgs >/dev/null 2>&1; then \
	  echo "installing $$pkgs"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$pkgs >/dev/null; \
	fi

proto: venv ## regenerate proto/schemas/*.json and proto/asyncapi.yaml from the Structs
	$(BIN)/python -m proto.generate

proto-check: venv ## fail when the generated contract files are stale
	$(BIN)/python -m proto.generate --check

settings-doc: venv ## regenerate README.md's configuration table from the Settings classes
	$(BIN)/python -m services.runtime.settings_doc

lock: venv ## re-pin requirements.lock from the installed environment
	@(echo "# Pinned dependency tree for Python 3.11 (regenerate: make lock)"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e') > requirements.lock

bench: bench-ingest bench-detect bench-track bench-track-checkpoint bench-registry bench-portal bench-board bench-notify bench-e2e bench-bad-input ## run every benchmark (figures as ratios to a baseline of the same run)

bench-ingest: venv ## CPU per camera-minute vs a bare PyAV decode
	$(BIN)/python bench/ingest_cpu.py --shared $(SHARED)

bench-detect: venv ## detect frames/s at batch 1/4/8 vs a bare onnxruntime loop
	$(BIN)/python bench/detect_throughput.py --shared $(SHARED)

bench-registry: venv ## owner lookups/s over NATS vs pgbench -S, import time for a million rows
	$(BIN)/python bench/registry_lookup.py

bench-track: venv ## tracker detections/s per camera vs decode-only
	$(BIN)/python bench/track_throughput.py --shared $(SHARED)

bench-track-checkpoint: venv ## a camera's tracking checkpoint per frame (snapshot, put into the bucket) vs tracking the frame; its size
	$(BIN)/python bench/track_checkpoint.py

bench-portal: venv ## portal cases/s, public lookups/s, decisions/s vs bare SQL
	$(BIN)/python bench/portal_throughput.py

bench-board: venv ## camera wall refresh per camera (8 cameras at 5 fps) and API p95 with the wall vs without
	$(BIN)/python bench/portal_board.py --shared $(SHARED)

bench-notify: venv ## notices/s end to end vs bare PDF rendering and bare SMTP sends
	$(BIN)/python bench/notify_throughput.py --shared $(SHARED)

bench-e2e: venv ## 1/4/8 cameras at 5 fps end to end vs the models alone, paced PyAV decode, pgbench -S (--json)
	$(BIN)/python bench/system/e2e_load.py --shared $(SHARED)

bench-bad-input: venv ## 10,000 malformed messages to dead letters, garbage cameras, schemathesis
	$(BIN)/python bench/system/bad_input.py --shared $(SHARED)

chaos: venv ## kill -9 every service, nats-server and PostgreSQL during a seeded run; exact case/notice counts
	$(BIN)/python chaos/chaos_run.py --shared $(SHARED)

chaos-video: venv ## a real clip end to end, undisturbed vs kill -9 of detect, track, notify and a nats-server restart
	$(BIN)/python chaos/chaos_run.py --video --shared $(SHARED)

chaos-cluster: venv ## 3-node JetStream cluster, R3 streams: one node killed mid-run and back; lost, duplicated, outage
	$(BIN)/python chaos/chaos_run.py --cluster

eval-plates: venv ## exact-match plate accuracy on ../shared/data/plates, per subset
	$(BIN)/python bench/eval_plates.py --shared $(SHARED)

eval-video: venv ## vehicle recall/precision, crossings, violations, ID switches on the labelled clips -> docs/ACCURACY.md
	$(BIN)/python eval/eval_video.py --shared $(SHARED) --write docs/ACCURACY.md

report: venv ## the coordination report of an agency: make report FROM=2026-11-16 TO=2026-11-22 AGENCY=ttdh-ubnd [SEND=1] (DATABASE_URL)
	$(BIN)/roadwatch report --from $(FROM) --to $(TO) --agency $(AGENCY) --out var/reports $(if $(SEND),--send)

deploy-check: venv system-deps ## lint, render and validate deploy/ (yamllint, kustomize, kubernetes-validate, CRDs, promtool, hadolint)
	bash deploy/check

deploy-generate: venv ## regenerate the Prometheus rules, Grafana dashboards and NATS chart values in deploy/
	$(BIN)/python deploy/generate.py && $(BIN)/python deploy/nats/sync_values.py

# --- fine-tuning (training/): its own virtualenv, never the services' .venv -------------------
TRAIN_VENV := training/.venv
TRAIN_BIN := $(TRAIN_VENV)/bin
TRAIN_STAMP := $(TRAIN_VENV)/.installed
FINETUNE_DIR ?= var/finetune
TRAIN_ENV := PYTHONPATH=$(CURDIR) OMP_NUM_THREADS=1

$(TRAIN_STAMP): training/requirements.txt
	@test -x $(TRAIN_BIN)/python || $(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_BIN)/python -m pip install --quiet --disable-pip-version-check -r training/requirements.txt
	@touch $@

finetune: $(TRAIN_STAMP) ## pseudo-label, fine-tune YOLOX-Nano (~90 min, nice 19), export and evaluate; logs in var/finetune/
	@mkdir -p $(FINETUNE_DIR)
	@echo "progress: tail -f $(FINETUNE_DIR)/pseudolabel.log $(FINETUNE_DIR)/train.log"
	$(TRAIN_ENV) $(TRAIN_BIN)/python -m training.check_weights --onnx $(SHARED)/models/yolox_nano.onnx \
	  --video $(SHARED)/data/video/vn_haiphong_intersection.mp4
	$(TRAIN_ENV) nice -n 19 $(TRAIN_BIN)/python -m training.pseudolabel --shared $(SHARED) \
	  --out $(FINETUNE_DIR)/data > $(FINETUNE_DIR)/pseudolabel.log 2>&1
	$(TRAIN_ENV) nice -n 19 $(TRAIN_BIN)/python -m training.check_labels --shared $(SHARED) \
	  --json $(FINETUNE_DIR)/label-check.json | tee $(FINETUNE_DIR)/label-check.log
	$(TRAIN_ENV) nice -n 19 $(TRAIN_BIN)/python -m training.train --recipe training/recipe.json \
	  --onnx $(SHARED)/models/yolox_nano.onnx --data $(FINETUNE_DIR)/data --out $(FINETUNE_DIR)/run \
	  > $(FINETUNE_DIR)/train.log 2>&1
	$(TRAIN_ENV) nice -n 19 $(TRAIN_BIN)/python -m training.evaluate --video-dir $(SHARED)/data/video \
	  --model $(FINETUNE_DIR)/run/model.onnx --names $(FINETUNE_DIR)/run/classes.names \
	  --json $(FINETUNE_DIR)/eval-finetuned.json | tee $(FINETUNE_DIR)/eval.log
	$(TRAIN_ENV) nice -n 19 $(TRAIN_BIN)/python -m training.evaluate --video-dir $(SHARED)/data/video \
	  --model $(SHARED)/models/yolox_nano.onnx --json $(FINETUNE_DIR)/eval-stock.json | tee -a $(FINETUNE_DIR)/eval.log
	@echo "model: $(FINETUNE_DIR)/run/model.onnx + classes.names; copy them to models/ with the card's figures"

finetune-smoke: venv $(TRAIN_STAMP) ## a few fine-tune iterations on a handful of frames; the export must load and decode
	$(BIN)/pytest -q tests/training

clean: ## remove var/ (local NATS and PostgreSQL data) and caches
	rm -rf var .pytest_cache
