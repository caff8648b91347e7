"""Trains the tutorial's network on several GPUs at once (data parallel).

    python -m cifar10_tutorial.cifar10_multi_gpu_train --num_gpus 2
    python -m cifar10_tutorial.cifar10_multi_gpu_train --num_gpus 2 \\
        --tower_device cpu      # no GPU: towers on virtual CPU devices

Each of the N towers trains the network on its own batch, so one step
trains on N x --batch_size examples; the towers' gradients become one
update. Where the variables live and how the gradients are combined is
--variable_update (placement.py):

- collective (the default on GPUs): one process per GPU, each a whole
  single-GPU trainer with its own input pipeline, staged batches and
  compiled loop and its own copy of the variables; every step one NCCL
  all-reduce, compiled into the loop's XLA program, sums the towers'
  gradients. The processes are an all-reduce cluster on this machine's
  loopback (cluster/processes.py, cluster/worker.py): their lines are
  prefixed `tower i |`, and tower 0 writes the checkpoints.
- cpu (the tutorial's, and the default without GPUs): one input pipeline
  fills one example queue; the variables live once on the CPU, where the
  towers' gradients are averaged and applied.
- first_tower: the same, with the variables on the first tower's device.
- replicated: one process, a copy of the variables on each GPU, the
  gradients summed by NCCL in the graph.

With one GPU, collective and replicated build the single-device trainer's
graph. The graph, the loop, summaries, checkpoints and resuming are the
engine's (train_graph.py, loop.py), shared with the single-device trainer, so
checkpoints have the same variable names and `make eval` reads them as they
are. Checkpoints every 1,000 steps and at the last step.
"""
if __name__ == '__main__':
  # Run as a program: hide TensorFlow's known C++ noise, before importing it.
  from cifar10_tutorial.shell import quiet
  quiet.install(program='cifar10_multi_gpu_train', doc=__doc__)   # --help before TensorFlow

import logging
import os
import sys

import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10
from cifar10_tutorial.cluster import private_net
from cifar10_tutorial.cluster import processes
from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import errors
from cifar10_tutorial.engine import loop
from cifar10_tutorial.engine import machine
from cifar10_tutorial.engine import rundir
from cifar10_tutorial.engine import settings
from cifar10_tutorial.engine import train_graph
from cifar10_tutorial.shell import flags
from cifar10_tutorial.shell import program

log = logging.getLogger('cifar10_tutorial')


def train(cfg):
  """Builds the towers and trains them to --max_steps."""
  devices, cpu_devices = machine.tower_devices(cfg.num_gpus, cfg.tower_device)
  if devices[0].startswith('/gpu'):   # NCCL's sockets, if any, on loopback
    os.environ.setdefault('NCCL_SOCKET_IFNAME', 'lo')
  cfg, placement = settings.for_trainer(
      cfg, devices, checkpoint_steps=defaults.MULTI_GPU_CHECKPOINT_STEPS)
  examples = cfg.batch_size * len(devices)
  if placement is None:   # a process per tower
    net = _private_network(cfg, len(devices))
    if net:
      log.info('%d towers on %s, %d examples per step: a process each, '
               'their gradients summed by an all-reduce%s', len(devices),
               ', '.join(devices), examples,
               ' (NCCL)' if devices[0].startswith('/gpu') else '')
      return processes.for_towers(cfg, devices,
                                 flags.to_argv(cfg, flags.TRAINING), net)
    cfg, placement = settings.for_trainer(
        settings.replace(cfg, variable_update='replicated'), devices)
  log.info('%d towers on %s, %d examples per step', len(devices),
           ', '.join(devices), examples)
  with tf.Graph().as_default():
    # The towers: each builds cifar10.train_step on a batch of its own, on
    # its device and in its name scope (tower_0, tower_1, ...); the
    # placement turns their gradients into one update: averaged on the CPU
    # and applied once (placement.average_gradients, the tutorial's), or
    # summed on every GPU by NCCL (placement.all_sum, replicated). Then the
    # loop every trainer runs.
    graph = train_graph.build_graph(cfg, placement)
    loop.train(graph, cfg, machine.session_config(cfg, cpu_devices))


def _private_network(cfg, towers):
  """The process per tower's private network (cluster/private_net.py):
  TensorFlow's runtime listens on every interface, unauthenticated. Where
  this machine allows none: the towers in one process instead
  (--variable_update replicated, no port open), unless --allow_open_ports;
  either way in one line."""
  try:
    return private_net.start_or_open(cfg.allow_open_ports,
                                     'the towers\' processes')
  except private_net.Unavailable as e:
    log.warning('warning: this machine allows no private network for a '
                'process per tower (%s): training the %d towers in one '
                'process instead (--variable_update replicated), which opens '
                'no port; %s runs the processes anyway', e, towers,
                errors.option('allow_open_ports'))
    return None


def main(argv=None):
  return program.main('cifar10_multi_gpu_train', __doc__, train, argv,
                      errors=[loop.LossDivergedError,
                              cifar10.ClassCountError,
                              machine.OutOfMemoryError, rundir.RunDirError,
                              machine.DeviceError],
                      on_signal=program.FINISH_STEP)


if __name__ == '__main__':
  sys.exit(main())
