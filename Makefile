# cifar10_tutorial: `make train`, `make eval` beside it, `make test`.
# Every target sets up what it needs (a .venv with the pinned packages, data).
# Every path variable may hold spaces: `make train TRAIN_DIR="my runs/a"`.

# Every variable reaches the programs as data, never as shell code: the
# recipes read each one from the environment ("$$NAME"), so quotes, $,
# backticks, ; or spaces in a value are part of the value (TRAIN_DIR="my
# runs/a"). ARGS and IMAGES are split at spaces (and IMAGES' wildcards
# expanded), nothing more. Make's own $(...) syntax is expanded by make
# itself, before any recipe: don't put it in a value.

PYTHON ?= python3
VENV ?= .venv
# Unset (or empty), a variable leaves the program's own default, which
# --help shows: data/, train_dirs/cifar10_train, train_dirs/cifar10_eval,
# logs under train_dirs/ on port 6006, the plot in
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
  RUN_ONCE NUM_GPUS WORKERS PS CIFAR10_ARCHIVE PORT PLOT IMAGES SRC OUT ARGS \
  TEST_WORKERS

PY := "$$VENV/bin/python"
# make's own names (targets, prerequisites) cannot hold a plain space.
space := $(subst ,, )
STAMP := $(subst $(space),\ ,$(VENV))/.installed-stamp
TF_FLAGS := $(if $(filter 1,$(TF_LOGS)),--tf_logs)
# A program's flag from a variable, only where the variable is set:
# $(call flag,TRAIN_DIR,train_dir) is --train_dir "$TRAIN_DIR" or nothing.
flag = $${$(1):+--$(2) "$$$(1)"}
DATA := $(call flag,DATA_DIR,data_dir)
STEPS := $(call flag,MAX_STEPS,max_steps) $(call flag,BATCH_SIZE,batch_size)

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
	exec $(PY) -m cifar10_tutorial.tools.cifar10_data $(DATA) \
	  $(call flag,CIFAR10_ARCHIVE,archive)

train: data
	exec $(PY) -m cifar10_tutorial.cifar10_train $(DATA) \
	  $(call flag,TRAIN_DIR,train_dir) $(STEPS) $(TF_FLAGS) $$ARGS

# Towers on the GPUs; with no GPU, on virtual CPU devices (said in the log).
train-multigpu: data
	exec $(PY) -m cifar10_tutorial.cifar10_multi_gpu_train $(DATA) \
	  $(call flag,TRAIN_DIR,train_dir) $(STEPS) \
	  $(call flag,NUM_GPUS,num_gpus) --tower_device auto $(TF_FLAGS) $$ARGS

# A cluster on TensorFlow's distributed runtime, on this machine's loopback.
train-cluster: data
	exec $(PY) -m cifar10_tutorial.cluster.launch $(DATA) \
	  $(call flag,TRAIN_DIR,train_dir) $(STEPS) $(call flag,WORKERS,workers) \
	  $(call flag,PS,ps) $(TF_FLAGS) $$ARGS

eval: data
	exec $(PY) -m cifar10_tutorial.cifar10_eval $(DATA) \
	  $(call flag,TRAIN_DIR,checkpoint_dir) $(call flag,EVAL_DIR,eval_dir) \
	  $${RUN_ONCE:+--run_once="$$RUN_ONCE"} $(TF_FLAGS) $$ARGS

predict: $(STAMP)
	exec $(PY) -m cifar10_tutorial.own_images.predict $(DATA) \
	  $(call flag,TRAIN_DIR,checkpoint_dir) $(TF_FLAGS) $$ARGS -- $$IMAGES

convert: $(STAMP)
	exec $(PY) -m cifar10_tutorial.own_images.convert --src "$$SRC" \
	  --out "$$OUT" $$ARGS

tensorboard: $(STAMP)
	exec $(PY) -m cifar10_tutorial.tools.board $(call flag,LOGDIR,logdir) \
	  $(call flag,PORT,port)

plot: $(STAMP)
	exec $(PY) -m cifar10_tutorial.tools.plot $(call flag,TRAIN_DIR,train_dir) \
	  $(call flag,EVAL_DIR,eval_dir) $(call flag,PLOT,out)

bench: data
	exec $(PY) -m cifar10_tutorial.tools.bench $(DATA) $$ARGS

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
