"""What this machine has (memory, CPU features; its GPUs are core/gpus.py's)
and what follows from it: where the towers go, whether a step fits, how a
session is configured, when a precision is slow. The "auto" options are
decided from it in settings.py.
"""
import logging

import tensorflow.compat.v1 as tf

from cifar10_tutorial.core import errors
from cifar10_tutorial.core import gpus

log = logging.getLogger('cifar10_tutorial')


class DeviceError(RuntimeError):
  """Asked for more GPUs than the machine has."""


class OutOfMemoryError(RuntimeError):
  """A training step does not fit in memory."""


# Host memory a training step takes on the CPU, measured with
# /usr/bin/time on `cifar10_train --max_steps 3` (2-vCPU machine, 2026-11-23):
# peak RSS 1.05 GB at batch 128, 2.43 GB at 1,024, 7.10 GB at 4,096.
BASE_BYTES = 0.85e9
BYTES_PER_EXAMPLE = 1.55e6


def available_memory(path='/proc/meminfo'):
  """Bytes of memory available to a new program, or None if unknown."""
  try:
    with open(path) as f:
      for line in f:
        if line.startswith('MemAvailable:'):
          return int(line.split()[1]) * 1024
  except (OSError, ValueError, IndexError):
    pass
  return None


def check_fits(batch_size, towers, available=None):
  """OutOfMemoryError, before any session, if `towers` CPU towers of
  `batch_size` examples need more memory than this machine has free."""
  available = available_memory() if available is None else available
  need = BASE_BYTES + BYTES_PER_EXAMPLE * batch_size * towers
  if available is None or need <= available:
    return
  largest = max(1, int((available - BASE_BYTES) / BYTES_PER_EXAMPLE / towers))
  raise OutOfMemoryError(
      '--batch_size %d: expected a batch that fits in memory, found a '
      'training step needs about %.0f GB (%.2f MB an example) and %.0f GB is '
      'available; try %s or less' % (
          batch_size, need / 1e9, BYTES_PER_EXAMPLE / 1e6, available / 1e9,
          errors.option('batch_size', largest)))


def cpu_flags(path='/proc/cpuinfo'):
  """The CPU's feature flags (empty where /proc/cpuinfo is not readable)."""
  try:
    with open(path) as f:
      for line in f:
        if line.startswith('flags'):
          return set(line.split(':', 1)[1].split())
  except OSError:
    pass
  return set()


def precision_warning(precision, gpus, flags=None):
  """Why `precision` will be slow on this machine, or None.

  TensorFlow's fast (oneDNN) bfloat16 kernels need AVX-512; without it and
  without a GPU, bf16 runs in fallback kernels many times slower than fp32.
  """
  flags = cpu_flags() if flags is None else flags
  if precision != 'bf16' or gpus or 'avx512f' in flags:
    return None
  return ('--precision bf16 on a CPU without AVX-512 or bfloat16 units and '
          'no GPU runs in TensorFlow\'s slow fallback kernels: expect it to '
          'be many times slower than fp32 (13-16x measured on an AVX2 CPU). '
          '--precision bf16_emulated makes the same roundings at fp32 '
          'speed, to check its accuracy.')


def precision_warning_for(cfg):
  """precision_warning for a program's flags: eval on the CPU sees no GPU."""
  if not hasattr(cfg, 'precision'):
    return None
  found = 0 if getattr(cfg, 'eval_device', None) == 'cpu' else gpus.count()
  return precision_warning(cfg.precision, found)


def tower_devices(num_towers, tower_device):
  """The device of each tower, and the CPU devices the session must create.

  `tower_device` is 'gpu' (towers on /gpu:i; too few GPUs is an error),
  'cpu' (towers on N virtual CPU devices: for testing and for looking at the
  tower graph, no faster than one device on a CPU) or 'auto' (GPUs when
  there are any, else virtual CPU devices).
  """
  found = gpus.count()
  if tower_device == 'auto':
    tower_device = 'gpu' if found else 'cpu'
    if not found:
      log.info('no GPU found: running %d towers on %d virtual CPU devices',
               num_towers, num_towers)
  if tower_device == 'gpu':
    if num_towers > found:
      plural = '' if num_towers == 1 else 's'
      raise DeviceError(
          '--num_gpus %d: expected %d GPU%s, found %d (add %s '
          'to run %d tower%s on virtual CPU devices)' %
          (num_towers, num_towers, plural, found,
           errors.option('tower_device', 'cpu'), num_towers, plural))
    return ['/gpu:%d' % i for i in range(num_towers)], 1
  return ['/cpu:%d' % i for i in range(num_towers)], num_towers


def session_config(cfg, cpu_devices=1):
  """Soft placement (ops without a GPU kernel fall back to the CPU),
  `cpu_devices` CPU devices (virtual ones beyond the first, for towers),
  GPU memory taken as needed rather than all of it (so eval, TensorBoard
  or a second job fit beside a trainer), and XLA if cfg.xla."""
  config = tf.ConfigProto(allow_soft_placement=True,
                          log_device_placement=cfg.log_device_placement,
                          device_count={'CPU': cpu_devices})
  config.gpu_options.allow_growth = True
  if getattr(cfg, 'xla', False) is True:
    config.graph_options.optimizer_options.global_jit_level = (
        tf.OptimizerOptions.ON_2)   # as --tf_xla_auto_jit=2
  return config
