"""What this machine has (GPUs, CPU features), and what follows from it:
where the towers go, how a session is configured, when a precision is slow.
"""
import argparse
import logging

import tensorflow.compat.v1 as tf

from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import errors

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


def gpu_count():
  return len(tf.config.list_physical_devices('GPU'))


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
  gpus = 0 if getattr(cfg, 'eval_device', None) == 'cpu' else gpu_count()
  return precision_warning(cfg.precision, gpus)


def tower_devices(num_towers, tower_device):
  """The device of each tower, and the CPU devices the session must create.

  `tower_device` is 'gpu' (towers on /gpu:i; too few GPUs is an error),
  'cpu' (towers on N virtual CPU devices: for testing and for looking at the
  tower graph, no faster than one device on a CPU) or 'auto' (GPUs when
  there are any, else virtual CPU devices).
  """
  found = gpu_count()
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


def on_gpu(devices=None):
  """Whether training runs on GPUs: the towers' `devices`, or, for None
  (one device, placed by TensorFlow), whether this machine has one."""
  return devices[0].startswith('/gpu') if devices else gpu_count() > 0


def training_settings(cfg, devices=None):
  """`cfg` with its 'auto' options decided for `devices` (resolve), after
  checking, when they are CPUs, that a step fits in memory (on GPUs a step
  that does not fit is caught when it runs)."""
  gpu = on_gpu(devices)
  cfg = resolve(cfg, gpu)
  if not gpu:
    check_fits(cfg.batch_size, len(devices or [None]))
  return cfg


def resolve(cfg, on_gpu):
  """A copy of the training flags with each 'auto' decided: the in-graph
  loop (compiled with XLA), XLA, prefetching, preprocessing on the device
  and a process per GPU when the towers are on GPUs (`on_gpu`), the
  tutorial's way otherwise."""
  cfg = argparse.Namespace(**vars(cfg))
  if cfg.steps_per_run == defaults.AUTO:
    cfg.steps_per_run = defaults.GPU_STEPS_PER_RUN if on_gpu else 1
  if cfg.xla == defaults.AUTO:
    cfg.xla = on_gpu
  if cfg.prefetch_to_device == defaults.AUTO:
    cfg.prefetch_to_device = on_gpu
  if hasattr(cfg, 'variable_update'):
    cfg.variable_update = variable_update(cfg.variable_update, on_gpu)
  if cfg.preprocess_on == defaults.AUTO:
    cfg.preprocess_on = ('device' if on_gpu and cfg.input_pipeline == 'batched'
                         else 'cpu')
  if getattr(cfg, 'compiled_loop', None) == defaults.AUTO:
    # What it needs (train_graph.why_not_compiled also asks the queue and
    # the placement).
    cfg.compiled_loop = (on_gpu and cfg.xla is True and
                         cfg.preprocess_on == 'device' and
                         loop_blocker(cfg) is None)
  return cfg


def loop_blocker(cfg):
  """What in the runs' settings keeps the in-graph loop from being one XLA
  program (--compiled_loop), or None."""
  if cfg.steps_per_run <= 1:
    return 'runs of one step (--steps_per_run %d)' % cfg.steps_per_run
  if not cfg.prefetch_to_device:
    return 'no batches staged on the device (--prefetch_to_device false)'
  return None


def variable_update(update, on_gpu):
  """--variable_update with 'auto' decided: a process per GPU, their
  gradients all-reduced, on GPUs; the tutorial's variables on the CPU
  otherwise."""
  if update != defaults.AUTO:
    return update
  return 'collective' if on_gpu else 'cpu'


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
