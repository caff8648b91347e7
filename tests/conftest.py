"""Tiny CIFAR-10 record files written by the tests, and shared runs."""
import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest

from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import records
from cifar10_tutorial.shell import quiet

# What every program sets before it imports TensorFlow: the same for the
# tests that build graphs in their own process.
quiet.tensorflow_defaults()
quiet.show_tensorflow_deprecations(False)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def on_the_cpu(config=None):
  """`config` (default: a new one) with no GPU: for tests that compare
  numbers, which run on the CPU on every machine. On a GPU, TensorFlow's
  default TF32 products and cuDNN's nondeterministic algorithms differ by
  more than those tests' tolerances; what runs on GPUs is checked in
  test_gpu.py, with tolerances of its own."""
  import tensorflow.compat.v1 as tf
  config = config or tf.ConfigProto()
  config.device_count['GPU'] = 0
  config.allow_soft_placement = True   # ops pinned to a GPU run here too
  return config


def random_examples(n, seed):
  rng = np.random.RandomState(seed)
  images = rng.randint(0, 256, size=(n, 32, 32, 3)).astype(np.uint8)
  labels = rng.randint(0, defaults.NUM_CLASSES, size=n).astype(np.uint8)
  return images, labels


def write_data(data_dir, train_per_file=16, test_records=30, seed=0):
  """Writes data_dir/cifar-10-batches-bin (records.write_random, as the
  bench does); returns the (images, labels) of training and of test."""
  folder = records.write_random(str(data_dir), train_per_file * 5,
                                test_records, seed)
  parts = [records.read_records(os.path.join(folder, name))
           for name in defaults.TRAIN_FILES]
  train = tuple(np.concatenate(arrays) for arrays in zip(*parts))
  test = records.read_records(os.path.join(folder, defaults.TEST_FILES[0]))
  return train, test


@pytest.fixture
def tiny_data(tmp_path):
  data_dir = tmp_path / 'data'
  train, test = write_data(data_dir)
  return str(data_dir), train, test


# The environment of a program that must take the CPU path on any machine.
NO_GPU = {'CUDA_VISIBLE_DEVICES': ''}


def run_module(module, *args, timeout=120, cwd=ROOT, env=None):
  """Runs `python -m cifar10_tutorial.<module> args` as a user would
  (`env`: variables to add to ours)."""
  env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
  return subprocess.run(
      [sys.executable, '-m', 'cifar10_tutorial.' + module] + list(args),
      cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='session')
def trained_run(tmp_path_factory):
  """A 6-step training run on tiny data, made once through the CLI."""
  base = tmp_path_factory.mktemp('run')
  data_dir = str(base / 'data')
  train, test = write_data(data_dir)
  train_dir = str(base / 'train')
  result = run_module('cifar10_train', '--data_dir', data_dir, '--train_dir',
                      train_dir, '--max_steps', '6', '--batch_size', '8',
                      '--log_frequency', '2')
  assert result.returncode == 0, result.stdout + result.stderr
  return dict(data_dir=data_dir, train_dir=train_dir, result=result,
              train=train, test=test)


class Running(object):
  """A CLI run in the background whose output lines can be waited for."""

  def __init__(self, module, *args, env=None):
    import threading
    self.proc = subprocess.Popen(
        [sys.executable, '-m', 'cifar10_tutorial.' + module] + list(args),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, **env) if env else None)
    self.lines = []
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()

  def _read(self):
    for line in self.proc.stdout:
      self.lines.append(line)

  @property
  def output(self):
    return ''.join(self.lines)

  def wait_for(self, text, timeout=180):
    """Returns once `text` is in the output. The default allows for a GPU's
    first steps, which compile XLA programs: 25 s and more a compile when
    the suite runs 16 tests at once on a 2-GPU host."""
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
      if text in self.output:
        return
      if self.proc.poll() is not None and not self._reader.is_alive():
        break
      time.sleep(0.1)
    raise AssertionError('no %r within %ds in:\n%s' % (text, timeout,
                                                        self.output))

  def stop(self):
    if self.proc.poll() is None:
      self.proc.terminate()
    self.proc.wait(timeout=30)
    self._reader.join(timeout=5)


def summary_tags(directory):
  """{tag: [step, ...]} of every summary in the event files of directory."""
  import glob
  import tensorflow.compat.v1 as tf
  tags = {}
  for path in glob.glob(os.path.join(directory, 'events.out.*')):
    for event in tf.train.summary_iterator(path):
      for value in event.summary.value:
        tags.setdefault(value.tag, []).append(event.step)
  return tags


@contextlib.contextmanager
def small_filesystem(path, size, read_only=False):
  """A tmpfs of `size` at `path`, or None where this machine cannot mount
  one (not root, no mount namespace)."""
  os.makedirs(path)
  options = 'size=%s%s' % (size, ',ro' if read_only else '')
  mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs',
                            path], capture_output=True).returncode == 0
  try:
    yield path if mounted else None
  finally:
    if mounted:
      subprocess.run(['umount', '-l', path])
