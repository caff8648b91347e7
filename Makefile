# cifar10_tutorial: `make train`, `make eval` beside it, `make test`.
# Every target sets up what it needs (a .venv with the pinned packages, data).
# Every path variable may hold spaces: `make train TRAIN_DIR="my runs/a"`.

# Every variable reaches the programs as data, never as shell code: the
# recipes read each one from the environment ("$$NAME"), so quotes, $,
# backticks, ; or spaces in a value are part of the value (TRAIN_DIR="my
# runs/a"). ARGS and IMAGES are split at spaces (and IMAGES' wildcards
# expanded), nothing more. Make's own $(...) syntax is expanded by make
# itself, before any recipe: don't put it in a value.
# Unset, a program's flag keeps the program's own default (--help).

PYTHON ?= python3
VENV ?= .venv
DATA_DIR ?= data
TRAIN_DIR ?= train_dirs/cifar10_train
EVAL_DIR ?= train_dirs/cifar10_eval
LOGDIR ?= train_dirs
MAX_STEPS ?=
BATCH_SIZE ?=
RUN_ONCE ?= 0
# The program's own default is 1 tower; this target is for several.
NUM_GPUS ?= 2
# make train-cluster: workers and parameter servers on this machine.
WORKERS ?= 2
PS ?= 1
CIFAR10_ARCHIVE ?=
PORT ?= 6006
PLOT ?= train_dirs/cifar10_plot.png
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
  RUN_ONCE NUM_GPUS WORKERS PS CIFAR10_ARCHIVE PORT PLOT IMAGES SRC OUT ARGS \
  TEST_WORKERS

PY := "$$VENV/bin/python"
# make's own names (targets, prerequisites) cannot hold a plain space.
space := $(subst ,, )
STAMP := $(subst $(space),\ ,$(VENV))/.installed-stamp
TF_FLAGS := $(if $(filter 1,$(TF_LOGS)),--tf_logs)
# The flags a trainer takes from MAX_STEPS and BATCH_SIZE, where they are set.
STEPS := $${MAX_STEPS:+--max_steps "$$MAX_STEPS"} \
  $${BATCH_SIZE:+--batch_size "$$BATCH_SIZE"}

.PHONY: install data train train-multigpu train-cluster eval predict convert \
  tensorboard \
  plot test bench clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || "$$PYTHON" -m venv "$$VENV"
	$(PY) -m pip install -q -r requirements-dev.txt
	touch "$$VENV/.installed-stamp"

# Each program is exec'd: make waits for it, so on Ctrl-C or SIGTERM its
# last lines (the checkpoint it saved) come before make's own.
data: $(STAMP)
	exec $(PY) -m cifar10_tutorial.tools.cifar10_data --data_dir "$$DATA_DIR" \
	  $${CIFAR10_ARCHIVE:+--archive "$$CIFAR10_ARCHIVE"}

train: data
	exec $(PY) -m cifar10_tutorial.cifar10_train --data_dir "$$DATA_DIR" \
	  --train_dir "$$TRAIN_DIR" $(STEPS) $(TF_FLAGS) $$ARGS

# Towers on the GPUs; with no GPU, on virtual CPU devices (said in the log).
train-multigpu: data
	exec $(PY) -m cifar10_tutorial.cifar10_multi_gpu_train \
	  --data_dir "$$DATA_DIR" --train_dir "$$TRAIN_DIR" $(STEPS) \
	  --num_gpus "$$NUM_GPUS" --tower_device auto $(TF_FLAGS) $$ARGS

# A cluster on TensorFlow's distributed runtime, on this machine's loopback.
train-cluster: data
	exec $(PY) -m cifar10_tutorial.cluster.launch --data_dir "$$DATA_DIR" \
	  --train_dir "$$TRAIN_DIR" $(STEPS) --workers "$$WORKERS" --ps "$$PS" \
	  $(TF_FLAGS) $$ARGS

eval: data
	exec $(PY) -m cifar10_tutorial.cifar10_eval --data_dir "$$DATA_DIR" \
	  --checkpoint_dir "$$TRAIN_DIR" --eval_dir "$$EVAL_DIR" \
	  --run_once="$$RUN_ONCE" $(TF_FLAGS) $$ARGS

predict: $(STAMP)
	exec $(PY) -m cifar10_tutorial.own_images.predict --data_dir "$$DATA_DIR" \
	  --checkpoint_dir "$$TRAIN_DIR" $(TF_FLAGS) $$ARGS -- $$IMAGES

convert: $(STAMP)
	exec $(PY) -m cifar10_tutorial.own_images.convert --src "$$SRC" \
	  --out "$$OUT" $$ARGS

tensorboard: $(STAMP)
	exec $(PY) -m cifar10_tutorial.tools.board --logdir "$$LOGDIR" --port "$$PORT"

plot: $(STAMP)
	exec $(PY) -m cifar10_tutorial.tools.plot --train_dir "$$TRAIN_DIR" \
	  --eval_dir "$$EVAL_DIR" --out "$$PLOT"

bench: data
	exec $(PY) -m cifar10_tutorial.tools.bench --data_dir "$$DATA_DIR" $$ARGS

# The browser test needs Debian's chromium: installed here when possible
# (root, registry reachable), else that one test is skipped and says why.
test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || \
	  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 || \
	  echo "note: could not install chromium; the browser test will be skipped"
	n=$$(nproc 2>/dev/null || echo 2); n=$$((n < 8 ? n + 1 : 9)); \
	  exec $(PY) -m pytest -q -rs -n "$${TEST_WORKERS:-$$n}" tests

clean:
	rm -rf -- "$$VENV"
