"""Every number of the tutorial, in one place, with where it comes from.

These are the defaults of the classic TensorFlow CIFAR-10 tutorial (queue
version). Flags and tests override them; nothing else restates them.
"""
import os

# --- Data: the CIFAR-10 "binary version" archive (University of Toronto). ---
DATA_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz'
ARCHIVE_NAME = 'cifar-10-binary.tar.gz'
ARCHIVE_BYTES = 170052171
ARCHIVE_MD5 = 'c32a1d4ab5d03f1284b67883e8d87530'
BATCHES_DIR = 'cifar-10-batches-bin'
TRAIN_FILES = tuple('data_batch_%d.bin' % i for i in range(1, 6))
TEST_FILES = ('test_batch.bin',)
CLASS_NAMES = ('airplane', 'automobile', 'bird', 'cat', 'deer',
               'dog', 'frog', 'horse', 'ship', 'truck')
# One class name per line, beside the record files; where it is present
# (the official archive has it, `make convert` writes it), the class names
# and their number come from it.
META_FILE = 'batches.meta.txt'
MAX_CLASSES = 255   # a record's label is one byte

# A record: 1 label byte, then 32x32x3 image bytes stored depth-major
# (1,024 red, 1,024 green, 1,024 blue, each row-major).
NUM_CLASSES = 10
SOURCE_HEIGHT = SOURCE_WIDTH = 32
DEPTH = 3
LABEL_BYTES = 1
IMAGE_BYTES = SOURCE_HEIGHT * SOURCE_WIDTH * DEPTH   # 3,072
RECORD_BYTES = LABEL_BYTES + IMAGE_BYTES             # 3,073
EXAMPLES_PER_EPOCH_TRAIN = 50000                      # 5 files x 10,000
EXAMPLES_PER_EPOCH_EVAL = 10000

# --- Input pipeline. ---
IMAGE_SIZE = 24                 # random (train) or central (eval) crop
MAX_BRIGHTNESS_DELTA = 63       # random_brightness, on 0..255 pixel values
CONTRAST_LOWER, CONTRAST_UPPER = 0.2, 1.8
# The shuffling queue holds 40% of an epoch before the first batch leaves it
# (20,000 examples for training, 4,000 for eval on the real data); capacity is
# that minimum plus 3 batches.
MIN_FRACTION_OF_EXAMPLES_IN_QUEUE = 0.4
FILENAME_QUEUE_CAPACITY = 32    # string_input_producer's default
# Preprocessing threads: the later tutorial uses one per CPU (the oldest, 16).
INPUT_THREADS = os.cpu_count() or 1
BATCH_SIZE = 128
# Not the tutorial's: records per reader call in the batched input path.
READ_CHUNK = 128

# --- Network (1,068,298 trainable parameters). ---
CONV_STDDEV = 5e-2              # conv1, conv2 weights
LOCAL_STDDEV = 0.04             # local3, local4 weights
LOCAL_WEIGHT_DECAY = 0.004      # local3, local4 only; others have none
SOFTMAX_STDDEV = 1 / 192.0
LRN_DEPTH_RADIUS = 4
LRN_BIAS = 1.0
LRN_ALPHA = 0.001 / 9.0
LRN_BETA = 0.75

# --- Training. ---
INITIAL_LEARNING_RATE = 0.1
LEARNING_RATE_DECAY_FACTOR = 0.1
NUM_EPOCHS_PER_DECAY = 350.0    # staircase: int(50,000 / 128 * 350) = 136,718
MOVING_AVERAGE_DECAY = 0.9999   # shadow weights that eval restores
LOSS_AVERAGE_DECAY = 0.9        # '<loss>/avg', for the summaries only
# The tutorial's own max_steps was 1,000,000; its published ~86% is at 100K
# steps, which is where this project stops by default.
MAX_STEPS = 100000
LOG_FREQUENCY = 10              # steps between console lines
SAVE_SUMMARIES_STEPS = 100
SAVE_CHECKPOINT_SECS = 600      # single-device trainer
MULTI_GPU_CHECKPOINT_STEPS = 1000
# Not the tutorial's: training steps per session.run on a GPU (an in-graph
# loop; see --steps_per_run). Chosen by measurement (README, "On a GPU").
GPU_STEPS_PER_RUN = 100

# --- Evaluation. ---
EVAL_INTERVAL_SECS = 300
# Not the tutorial's (it evaluated in batches of 128): fewer, larger runs.
EVAL_BATCH_SIZE = 500

# --- The choices of every option that has them (flags.py offers them; the
# code they choose in checks them). ---
PRECISIONS = ('fp32', 'bf16', 'bf16_emulated')
INPUT_PIPELINES = ('batched', 'per_example')
LRNS = ('matmul', 'tf')
TOWER_DEVICES = ('gpu', 'cpu', 'auto')
EVAL_DATA = ('test', 'train_eval')
EVAL_DEVICES = ('cpu', 'gpu')
PREPROCESS_ON = ('auto', 'cpu', 'device')
VARIABLE_UPDATES = ('auto', 'collective', 'replicated', 'first_tower', 'cpu')
AUTO = 'auto'   # an option's value that engine/settings.py decides
