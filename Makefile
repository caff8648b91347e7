# cifar10_tutorial: `make train`, `make eval` beside it, `make test`.
# `make` alone lists the targets. Every target sets up what it needs (a .venv
# with the locked packages, the data).
#
# Every variable reaches the programs as data, never as shell code: the
# recipes read each one from the environment ("$$NAME"), so quotes, $,
# backticks, ; or spaces in a value are part of the value (TRAIN_DIR="my
# runs/a"). ARGS and IMAGES are split at spaces (and IMAGES' wildcards
# expanded), nothing more. Make's own $(...) syntax is expanded by make
# itself, before any recipe: don't put it in a value.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
# Unset (or empty), a variable leaves the program's own default, which
# --help shows: data/, train_dirs/cifar10_train, train_dirs/cifar10_eval,
# logs under train_dirs/ on 127.0.0.1:6006, the plot in
# train_dirs/cifar10_plot.png, 2 workers and 1 parameter server.
DATA_DIR ?=
TRAIN_DIR ?=
EVAL_DIR ?=
LOGDIR ?=
MAX_STEPS ?=
BATCH_SIZE ?=
RUN_ONCE ?=
# The one default of its own: the program's is 1 tower, and this target is
# for several.
NUM_GPUS ?= 2
# make train-cluster: workers and parameter servers on this machine.
WORKERS ?=
PS ?=
CIFAR10_ARCHIVE ?=
PORT ?=
HOST ?=
PLOT ?=
# make predict: image files or folders, separated by spaces.
IMAGES ?=
# make convert: a folder (or .zip/.tar.gz) of train/<class>/ and
# test/<class>/ images, and the data folder to write.
SRC ?=
OUT ?=
TF_LOGS ?= 0
# Extra flags for the program a target runs, e.g. ARGS="--log_frequency 100".
ARGS ?=
# make test: how many tests run at once (pytest-xdist); unset, one more
# than the cores, at most 9 (most of a test is waiting on a program it
# started, and TensorFlow's import).
TEST_WORKERS ?=
export PYTHON VENV DATA_DIR TRAIN_DIR EVAL_DIR LOGDIR MAX_STEPS BATCH_SIZE \
  RUN_ONCE NUM_GPUS WORKERS PS CIFAR10_ARCHIVE PORT HOST PLOT IMAGES SRC OUT \
  ARGS TEST_WORKERS

PY := "$$VENV/bin/python"
# make's own names (targets, prerequisites) cannot hold a plain space.
space := $(subst ,, )
STAMP := $(subst $(space),\ ,$(VENV))/.installed-stamp
TEST_STAMP := $(subst $(space),\ ,$(VENV))/.test-tools-stamp
TF_FLAGS := $(if $(filter 1,$(TF_LOGS)),--tf_logs)
# A program's flag from a variable, only where the variable is set:
# $(call flag,TRAIN_DIR,train_dir) is --train_dir "$TRAIN_DIR" or nothing.
flag = $${$(1):+--$(2) "$$$(1)"}
DATA := $(call flag,DATA_DIR,data_dir)
STEPS := $(call flag,MAX_STEPS,max_steps) $(call flag,BATCH_SIZE,batch_size)
# Runs the command $(1): prints it as it runs (each argument quoted as a
# shell would need it), then becomes it, so make waits for it and its last
# lines (the checkpoint it saved, on Ctrl-C) come before make's own. The
# program knows make started it, and words its hints as make variables.
run = @set -- $(1); shown=$$(printf '%q ' "$$@"); echo "$${shown% }"; \
  export CIFAR10_VIA_MAKE=1; exec "$$@"

.DEFAULT_GOAL := help
.PHONY: help install lock data train train-multigpu train-cluster eval \
  predict convert tensorboard plot test browser bench clean

help:
	@echo 'make train            set up .venv and data/, train (Ctrl-C stops, run again resumes)'
	@echo 'make eval             beside it: evaluate each new checkpoint (RUN_ONCE=1: the latest, once)'
	@echo 'make train-multigpu   towers on NUM_GPUS GPUs (default 2)'
	@echo 'make train-cluster    a cluster on this machine: WORKERS=2 PS=1 (PS=0: all-reduce)'
	@echo 'make tensorboard      TensorBoard on LOGDIR (train_dirs/), HOST:PORT (127.0.0.1:6006)'
	@echo 'make plot             loss and precision @ 1 as a PNG (PLOT=...)'
	@echo 'make predict IMAGES="a.jpg dir/"   classify your own images'
	@echo 'make convert SRC=folder OUT=folder  your own images to record files (DATA_DIR=OUT)'
	@echo 'make data             get CIFAR-10 into data/ (CIFAR10_ARCHIVE=a local copy)'
	@echo 'make test             the test suite (installs pytest into .venv)'
	@echo 'make bench            speed and accuracy measurements (ARGS="--parts ...")'
	@echo 'make install | lock | browser | clean   the venv; refresh requirements.lock;'
	@echo '                      Chromium for the browser test (apt, root); remove .venv'
	@echo 'Variables: DATA_DIR TRAIN_DIR EVAL_DIR MAX_STEPS BATCH_SIZE NUM_GPUS ARGS="--flag value"'
	@echo '           TF_LOGS=1 shows TensorFlow'"'"'s own logs. Each program'"'"'s --help lists its flags:'
	@echo '           $(VENV)/bin/python -m cifar10_tutorial.cifar10_train --help'

install: $(STAMP)

# The packages of requirements.txt at the versions requirements.lock pins
# (and what they pull in, pinned there too).
$(STAMP): requirements.txt requirements.lock
	@test -x $(PY) || "$$PYTHON" -m venv "$$VENV"
	@echo 'installing the locked packages into $(VENV) ...'
	@$(PY) -m pip install -q -r requirements.txt -c requirements.lock
	@touch "$$VENV/.installed-stamp"

$(TEST_STAMP): $(STAMP) requirements-test.txt
	@$(PY) -m pip install -q -r requirements-test.txt -c requirements.lock
	@touch "$$VENV/.test-tools-stamp"

# requirements.lock again, from a new venv of the two requirements files.
lock:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  "$$PYTHON" -m venv "$$tmp/venv"; \
	  "$$tmp/venv/bin/pip" install -q -r requirements.txt -r requirements-test.txt; \
	  { sed -n '/^#/p' requirements.lock; "$$tmp/venv/bin/pip" freeze; } > "$$tmp/lock"; \
	  mv "$$tmp/lock" requirements.lock; echo 'wrote requirements.lock'

data: $(STAMP)
	$(call run,$(PY) -m cifar10_tutorial.tools.cifar10_data $(DATA) \
	  $(call flag,CIFAR10_ARCHIVE,archive))

train: data
	$(call run,$(PY) -m cifar10_tutorial.cifar10_train $(DATA) \
	  $(call flag,TRAIN_DIR,train_dir) $(STEPS) $(TF_FLAGS) $$ARGS)

# Towers on the GPUs; with no GPU, on virtual CPU devices (said in the log).
train-multigpu: data
	$(call run,$(PY) -m cifar10_tutorial.cifar10_multi_gpu_train $(DATA) \
	  $(call flag,TRAIN_DIR,train_dir) $(STEPS) \
	  $(call flag,NUM_GPUS,num_gpus) --tower_device auto $(TF_FLAGS) $$ARGS)

# A cluster on TensorFlow's distributed runtime, on this machine, in a
# network of its own (README, "Keeping a cluster private").
train-cluster: data
	$(call run,$(PY) -m cifar10_tutorial.cluster.launch $(DATA) \
	  $(call flag,TRAIN_DIR,train_dir) $(STEPS) $(call flag,WORKERS,workers) \
	  $(call flag,PS,ps) $(TF_FLAGS) $$ARGS)

eval: data
	$(call run,$(PY) -m cifar10_tutorial.cifar10_eval $(DATA) \
	  $(call flag,TRAIN_DIR,checkpoint_dir) $(call flag,EVAL_DIR,eval_dir) \
	  $${RUN_ONCE:+--run_once="$$RUN_ONCE"} $(TF_FLAGS) $$ARGS)

predict: $(STAMP)
	$(call run,$(PY) -m cifar10_tutorial.own_images.predict $(DATA) \
	  $(call flag,TRAIN_DIR,checkpoint_dir) $(TF_FLAGS) $$ARGS -- $$IMAGES)

convert: $(STAMP)
	$(call run,$(PY) -m cifar10_tutorial.own_images.convert --src "$$SRC" \
	  --out "$$OUT" $$ARGS)

tensorboard: $(STAMP)
	$(call run,$(PY) -m cifar10_tutorial.tools.board $(call flag,LOGDIR,logdir) \
	  $(call flag,HOST,host) $(call flag,PORT,port))

plot: $(STAMP)
	$(call run,$(PY) -m cifar10_tutorial.tools.plot \
	  $(call flag,TRAIN_DIR,train_dir) $(call flag,EVAL_DIR,eval_dir) \
	  $(call flag,PLOT,out))

bench: data
	$(call run,$(PY) -m cifar10_tutorial.tools.bench $(DATA) $$ARGS)

# The test tools go into .venv only here. The browser test needs Chromium:
# `make browser` installs it (Debian's package, as root); without it that
# one test is skipped, and says why.
test: $(TEST_STAMP)
	@n=$$(nproc 2>/dev/null || echo 2); n=$$((n < 8 ? n + 1 : 9)); \
	  set -- $(PY) -m pytest -q -rs -n "$${TEST_WORKERS:-$$n}" tests; \
	  shown=$$(printf '%q ' "$$@"); echo "$${shown% }"; exec "$$@"

browser:
	@command -v chromium >/dev/null 2>&1 && echo 'chromium is installed' || \
	  { echo 'installing chromium (apt-get, as root) ...'; \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

clean:
	rm -rf -- "$$VENV"
