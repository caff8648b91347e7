"""A run's settings: the flags with every "auto" decided, once.

    cfg, placement = settings.for_trainer(flag_values, devices)
    graph = train_graph.build_graph(cfg, placement)      # reads, never writes

The flags and this machine (where the towers are, this process's place
among N processes) become settings that nothing downstream changes: a
`Settings` refuses to be written to, and config.json records it. On GPUs
the "auto" options turn on what makes a GPU fast (several steps a run, XLA,
batches staged on the device, the distortions there, the whole run as one
XLA program, a process per GPU); elsewhere they stay the tutorial's way.
The placement of the variables (placement.py) is chosen here too, since the
compiled loop depends on it.
"""
import argparse
import collections
import logging
import os

from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import gpus
from cifar10_tutorial.engine import machine
from cifar10_tutorial.engine import placement as placements

log = logging.getLogger('cifar10_tutorial')


class Settings(argparse.Namespace):
  """A run's settings, read-only: a change is a new Settings (`replace`)."""

  def __init__(self, **values):   # pylint: disable=super-init-not-called
    self.__dict__.update(values)

  def __setattr__(self, name, value):
    raise AttributeError('the run\'s settings are decided once, in '
                         'settings.py: %s cannot be set to %r here' % (
                             name, value))


def replace(cfg, **changes):
  """A copy of `cfg` with `changes`: a decision made after the settings
  (the multi-GPU trainer's fallback), made here too."""
  return Settings(**dict(vars(cfg), **changes))


def on_gpu(devices=None):
  """Whether training runs on GPUs: the towers' `devices`, or, for None
  (one device, placed by TensorFlow), whether this machine has a GPU."""
  return devices[0].startswith('/gpu') if devices else gpus.count() > 0


def resolve(cfg, on_gpu):
  """`cfg` as Settings, each "auto" decided for towers on GPUs or not: the
  in-graph loop (compiled by XLA), XLA, prefetching, preprocessing on the
  device and a process per GPU on GPUs; the tutorial's way otherwise. The
  compiled loop as far as the flags tell (for_trainer also asks the
  placement)."""
  values = dict(vars(cfg))
  auto = defaults.AUTO
  if values['steps_per_run'] == auto:
    values['steps_per_run'] = defaults.GPU_STEPS_PER_RUN if on_gpu else 1
  for name in ('xla', 'prefetch_to_device'):
    if values[name] == auto:
      values[name] = on_gpu
  if values.get('variable_update') == auto:
    values['variable_update'] = 'collective' if on_gpu else 'cpu'
  if values['preprocess_on'] == auto:
    values['preprocess_on'] = ('device' if on_gpu and values['input_pipeline']
                               == 'batched' else 'cpu')
  if values.get('compiled_loop') == auto:
    values['compiled_loop'] = (on_gpu and values['xla'] is True and
                               values['preprocess_on'] == 'device' and
                               loop_blocker(Settings(**values)) is None)
  return Settings(**values)


def loop_blocker(cfg):
  """What in the runs' settings keeps the in-graph loop from being one XLA
  program (--compiled_loop), or None."""
  if cfg.steps_per_run <= 1:
    return 'runs of one step (--steps_per_run %d)' % cfg.steps_per_run
  if not cfg.prefetch_to_device:
    return 'no batches staged on the device (--prefetch_to_device false)'
  return None


def why_not_compiled(cfg, placement, parameter_servers=False):
  """What keeps the in-graph loop from being one XLA program, or None: it
  needs runs of several steps, raw batches staged on the device (distorted
  there), one tower a process, an all-reduce (if any) that XLA compiles
  too, and no parameter servers."""
  blocker = loop_blocker(cfg)
  if blocker:
    return blocker
  if cfg.preprocess_on != 'device':
    return 'distortions on the CPU (--preprocess_on cpu)'
  if parameter_servers:
    return 'a parameter-server cluster'
  if len(placement.devices) != 1:
    return '%d towers in one process' % len(placement.devices)
  if not placement.compiles_all_reduce:
    return ('variables or an all-reduce outside XLA (--variable_update %s)'
            % getattr(cfg, 'variable_update', 'cpu'))
  return None


def compiled_all_reduce(cfg, gpu, environ=os.environ):
  """Whether an all-reduce process compiles its all-reduce into the step's
  XLA program: on a GPU, with XLA, where NCCL_COMM_ID says where the
  processes' NCCL meets (XLA's NCCL is set up by address, not through
  TensorFlow's runtime: the launcher sets it; across machines, a free port
  of worker 0's host). CIFAR10_ALL_REDUCE=kernel asks for TensorFlow's
  kernel instead. ValueError for an NCCL_COMM_ID that is not host:port."""
  meet = environ.get('NCCL_COMM_ID')
  if not (gpu and cfg.xla is not False and meet and
          environ.get('CIFAR10_ALL_REDUCE') != 'kernel'):
    return False
  host, _, port = meet.rpartition(':')
  if not (host and port.isdigit() and 0 < int(port) < 65536):
    raise ValueError('NCCL_COMM_ID: expected host:port, where the workers\' '
                     'NCCL meets (worker 0\'s host and a free port), found '
                     '%r' % meet)
  return True


# A process of an all-reduce run: its rank among `replicas`, its tower's
# device, its CPU, and the deadline of the first broadcast.
Place = collections.namedtuple('Place', ['rank', 'replicas', 'tower_device',
                                         'cpu_device', 'timeout_secs'])


def for_trainer(cfg, devices=None, place=None, parameter_servers=False,
                checkpoint_secs=None, checkpoint_steps=None,
                environ=os.environ):
  """(Settings, placement) of a trainer: the flag values `cfg` with every
  "auto" decided for towers on `devices` (None: one device), or for one
  process of an all-reduce run (`place`, a Place), or for a
  parameter-server cluster's worker; the placement of the variables (None
  where each tower is a process of its own, which makes its own with
  `place`); and the checkpoint cadence (the trainer's default,
  `checkpoint_secs` or `checkpoint_steps`, unless a flag gives one). On
  CPUs, a step must fit in memory (OutOfMemoryError before any work)."""
  gpu = (on_gpu(devices) if place is None else
         'gpu' in place.tower_device.lower())
  cfg = resolve(cfg, gpu)
  if not gpu:
    machine.check_fits(cfg.batch_size, len(devices or [None]))
  slow = machine.precision_warning(cfg.precision, int(gpu))
  if slow:
    log.warning('warning: %s', slow)
  changes = {}
  update = getattr(cfg, 'variable_update', None)
  if place is not None:
    placement = placements.Collective(
        place.rank, place.replicas, place.tower_device, place.cpu_device,
        place.timeout_secs, compiled=compiled_all_reduce(cfg, gpu, environ))
  elif devices and len(devices) > 1 and update == 'collective':
    placement = None   # a process per tower, each with its own (`place`)
  else:
    if devices and len(devices) == 1 and update in ('collective',
                                                    'replicated'):
      devices = None   # one copy on one device: the single-device graph
    placement = placements.for_towers(update, devices)
  if cfg.compiled_loop is True and placement is not None:
    why_not = why_not_compiled(cfg, placement, parameter_servers)
    if why_not:
      # Asked for (or "auto" on a GPU): one line why not; the settings
      # record what runs.
      log.info('the in-graph loop runs in TensorFlow\'s executor, not as one '
               'XLA program: %s', why_not)
      changes['compiled_loop'] = False
  if not (cfg.save_checkpoint_secs or cfg.save_checkpoint_steps):
    changes.update(save_checkpoint_secs=checkpoint_secs,
                   save_checkpoint_steps=checkpoint_steps)
  return replace(cfg, **changes), placement
