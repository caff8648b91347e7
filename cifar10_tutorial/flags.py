"""Command-line flags shared by the entry points, parsed in main() only.

Flags keep the tutorial's names (`--data_dir`, `--train_dir`, `--max_steps`,
...). Booleans are real booleans: `--run_once`, `--run_once=true` and
`--run_once false` all mean what they say, and `--run_once maybe` is an
error. Unknown flags and bad values exit with one line and status 2.
"""
import argparse
import json
import logging
import os
import sys

import cifar10_tutorial
from cifar10_tutorial import defaults
from cifar10_tutorial import progress

_TRUE = ('1', 'true', 't', 'yes', 'y', 'on')
_FALSE = ('0', 'false', 'f', 'no', 'n', 'off')


def boolean(text):
  value = str(text).strip().lower()
  if value in _TRUE:
    return True
  if value in _FALSE:
    return False
  raise argparse.ArgumentTypeError('expected true or false, found %r' % text)


def positive_int(text):
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError('expected a whole number, found %r' % text)
  if value <= 0:
    raise argparse.ArgumentTypeError('expected a number above 0, found %d'
                                     % value)
  return value


class _Formatter(argparse.ArgumentDefaultsHelpFormatter,
                 argparse.RawDescriptionHelpFormatter):
  pass


def parser(doc):
  """An ArgumentParser whose --help shows the module doc and every default."""
  return argparse.ArgumentParser(description=doc, formatter_class=_Formatter)


def add_bool(p, name, default, help_text):
  p.add_argument('--' + name, type=boolean, nargs='?', const=True,
                 default=default, metavar='BOOL', help=help_text)


def add_data_dir(p):
  p.add_argument('--data_dir', default='data',
                 help='folder holding cifar-10-batches-bin/ (the tutorial\'s '
                      'meaning), or that folder itself')


def add_training_flags(p):
  """The flags both trainers share, with the tutorial's defaults."""
  add_data_dir(p)
  p.add_argument('--train_dir', default='train_dirs/cifar10_train',
                 help='where checkpoints and summaries go; an existing run '
                      'there is resumed, never deleted')
  p.add_argument('--max_steps', type=positive_int, default=defaults.MAX_STEPS,
                 help='global step at which training stops')
  p.add_argument('--batch_size', type=positive_int,
                 default=defaults.BATCH_SIZE, help='examples per step '
                 '(per tower, for the multi-GPU trainer)')
  p.add_argument('--log_frequency', type=positive_int,
                 default=defaults.LOG_FREQUENCY,
                 help='steps between progress lines')
  p.add_argument('--input_threads', type=positive_int,
                 default=defaults.INPUT_THREADS,
                 help='preprocessing threads filling the example queue '
                      '(the tutorial: one per CPU)')
  add_input_pipeline_flag(p)
  every = p.add_mutually_exclusive_group()
  every.add_argument('--save_checkpoint_secs', type=positive_int,
                     help='seconds between checkpoints (default: 600 for '
                          'cifar10_train)')
  every.add_argument('--save_checkpoint_steps', type=positive_int,
                     help='steps between checkpoints (default: 1,000 for '
                          'cifar10_multi_gpu_train)')
  add_bool(p, 'log_device_placement', False,
           'log the device every op runs on')
  add_model_flags(p)
  add_common_flags(p)


def add_input_pipeline_flag(p):
  p.add_argument('--input_pipeline', choices=['batched', 'per_example'],
                 default='batched',
                 help='batched: read and distort %d records per call, each '
                      'with its own random draws (about 6x less CPU per '
                      'example); per_example: one record per call, as in the '
                      'tutorial. Same distributions' % defaults.READ_CHUNK)


def add_model_flags(p):
  p.add_argument('--lrn', choices=['matmul', 'tf'], default='matmul',
                 help='local response normalization: matmul (a banded matrix '
                      'product, faster) or tf (tf.nn.lrn); same numbers')
  p.add_argument('--precision', choices=['fp32', 'bf16', 'bf16_emulated'],
                 default='fp32',
                 help='bf16: convolutions and matrix products in bfloat16 '
                      '(faster only on CPUs with bfloat16 matrix units, such '
                      'as AMX, and on GPUs); variables, loss and averages '
                      'stay float32. bf16_emulated: the same roundings in '
                      'float32 kernels, to check bf16\'s accuracy on a CPU '
                      'without bfloat16 units')


def add_common_flags(p):
  add_bool(p, 'tf_logs', False,
           'show TensorFlow\'s own C++ logs and deprecation warnings')


def setup_logging(cfg):
  """Our progress lines on stdout; TensorFlow's own chatter only if asked."""
  logging.basicConfig(level=logging.INFO, handlers=[progress.Handler(
      sys.stdout)], format='%(asctime)s %(message)s', datefmt='%H:%M:%S')
  tf_logger = logging.getLogger('tensorflow')
  # TensorFlow's logger prints through its own handler: not through ours too.
  tf_logger.propagate = False
  tf_logger.setLevel(logging.INFO if cfg.tf_logs else logging.WARNING)
  cifar10_tutorial.show_tensorflow_deprecations(cfg.tf_logs)


def write_config(directory, name, config):
  """Writes the resolved flags as JSON, atomically, into `directory`."""
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, name)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(config, f, indent=2, sort_keys=True)
    f.write('\n')
  os.replace(tmp, path)
  return path
