# cifar10_tutorial: `make train`, `make eval` beside it, `make test`.
# Every target sets up what it needs (a .venv with the pinned packages, data).
# Every path variable may hold spaces: `make train TRAIN_DIR="my runs/a"`.

PYTHON ?= python3
VENV ?= .venv
DATA_DIR ?= data
TRAIN_DIR ?= train_dirs/cifar10_train
EVAL_DIR ?= train_dirs/cifar10_eval
LOGDIR ?= train_dirs
MAX_STEPS ?= 100000
BATCH_SIZE ?= 128
RUN_ONCE ?= 0
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

PY := "$(VENV)/bin/python"
# make's own names (targets, prerequisites) cannot hold a plain space.
space := $(subst ,, )
STAMP := $(subst $(space),\ ,$(VENV))/.installed-stamp
TF_FLAGS := $(if $(filter 1,$(TF_LOGS)),--tf_logs)

.PHONY: install data train train-multigpu train-cluster eval predict convert \
  tensorboard \
  plot test bench clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv "$(VENV)"
	$(PY) -m pip install -q -r requirements-dev.txt
	touch "$(VENV)/.installed-stamp"

data: $(STAMP)
	$(PY) -m cifar10_tutorial.cifar10_data --data_dir "$(DATA_DIR)" \
	  $(if $(CIFAR10_ARCHIVE),--archive "$(CIFAR10_ARCHIVE)")

train: data
	$(PY) -m cifar10_tutorial.cifar10_train --data_dir "$(DATA_DIR)" \
	  --train_dir "$(TRAIN_DIR)" --max_steps $(MAX_STEPS) \
	  --batch_size $(BATCH_SIZE) $(TF_FLAGS) $(ARGS)

# Towers on the GPUs; with no GPU, on virtual CPU devices (said in the log).
train-multigpu: data
	$(PY) -m cifar10_tutorial.cifar10_multi_gpu_train --data_dir "$(DATA_DIR)" \
	  --train_dir "$(TRAIN_DIR)" --max_steps $(MAX_STEPS) \
	  --batch_size $(BATCH_SIZE) --num_gpus $(NUM_GPUS) --tower_device auto \
	  $(TF_FLAGS) $(ARGS)

# A cluster on TensorFlow's distributed runtime, on this machine's loopback.
train-cluster: data
	$(PY) -m cifar10_tutorial.cluster_launch --data_dir "$(DATA_DIR)" \
	  --train_dir "$(TRAIN_DIR)" --max_steps $(MAX_STEPS) \
	  --batch_size $(BATCH_SIZE) --workers $(WORKERS) --ps $(PS) \
	  $(TF_FLAGS) $(ARGS)

eval: data
	$(PY) -m cifar10_tutorial.cifar10_eval --data_dir "$(DATA_DIR)" \
	  --checkpoint_dir "$(TRAIN_DIR)" --eval_dir "$(EVAL_DIR)" \
	  --run_once=$(RUN_ONCE) $(TF_FLAGS) $(ARGS)

predict: $(STAMP)
	$(PY) -m cifar10_tutorial.predict --data_dir "$(DATA_DIR)" \
	  --checkpoint_dir "$(TRAIN_DIR)" $(TF_FLAGS) $(ARGS) -- $(IMAGES)

convert: $(STAMP)
	$(PY) -m cifar10_tutorial.convert --src "$(SRC)" --out "$(OUT)" $(ARGS)

tensorboard: $(STAMP)
	$(PY) -m cifar10_tutorial.board --logdir "$(LOGDIR)" --port $(PORT)

plot: $(STAMP)
	$(PY) -m cifar10_tutorial.plot --train_dir "$(TRAIN_DIR)" \
	  --eval_dir "$(EVAL_DIR)" --out "$(PLOT)"

bench: data
	$(PY) -m cifar10_tutorial.bench --data_dir "$(DATA_DIR)" $(ARGS)

# The browser test needs Debian's chromium: installed here when possible
# (root, registry reachable), else that one test is skipped and says why.
test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || \
	  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 || \
	  echo "note: could not install chromium; the browser test will be skipped"
	$(PY) -m pytest -q -rs tests

clean:
	rm -rf "$(VENV)"
