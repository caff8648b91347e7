"""Starts a whole cluster on this machine (what `make train-cluster` runs).

    python -m cifar10_tutorial.cluster.launch --workers 2 --ps 1 --max_steps 2000
    python -m cifar10_tutorial.cluster.launch --workers 2 --ps 0   # all-reduce

Starts --ps parameter servers and --workers workers of cifar10_dist_train
on free loopback ports, each in a process group of its own that this
launcher owns, and prefixes each one's lines with its name (`worker 1 |
...`). With --ps 0 the workers all-reduce their gradients instead (one
copy of the variables each; worker.py). On a machine with GPUs each worker
gets one of them, in turn (CUDA_VISIBLE_DEVICES); the parameter servers
none. When the workers are done it stops the parameter servers; its exit
status is the chief's. Ctrl-C, SIGTERM or SIGHUP (a closed terminal) is
passed to the workers (the chief saves a checkpoint), then the servers are
stopped; a second one stops everything at once. Nothing it started
outlives it: each task also stops by itself, the chief after a checkpoint,
when the launcher is killed (children.py). The training flags are the other
trainers' and go to every worker. The processes and their supervision are
processes.py's, which cifar10_multi_gpu_train uses too.
"""
if __name__ == '__main__':
  from cifar10_tutorial.shell import quiet
  quiet.install(program='cluster_launch', doc=__doc__)   # --help before TensorFlow

import sys

from cifar10_tutorial.cluster import private_net
from cifar10_tutorial.cluster import processes
from cifar10_tutorial.core import errors
from cifar10_tutorial.shell import flags
from cifar10_tutorial.shell import program


class LaunchError(RuntimeError):
  """A cluster that cannot be started as asked; the message says why."""


def launch(cfg):
  """make train-cluster: runs the cluster to the end; returns the chief's
  exit status. Its tasks run in a private network (private_net); where
  this machine allows none, it refuses unless --allow_open_ports."""
  gpus = processes.visible_gpus()
  if not cfg.ps and gpus and cfg.workers > len(gpus):
    # NCCL refuses two workers of one all-reduce on the same GPU.
    raise LaunchError('--workers %d --ps 0: expected at most one worker per '
                      'GPU, found %d GPUs (%s)' % (
                          cfg.workers, len(gpus), ', '.join(gpus)))
  try:
    net = private_net.start_or_open(cfg.allow_open_ports, 'the tasks')
  except private_net.Unavailable as e:
    raise LaunchError(
        'expected to keep the cluster\'s processes in a network of their '
        'own (reachable from nowhere else), found this machine allows none '
        '(%s); add %s to run them listening on every interface, '
        'unauthenticated' % (e, errors.option('allow_open_ports')))
  return processes.run(
      cfg, flags.to_argv(cfg, flags.TRAINING + flags.CLUSTER), cfg.workers,
      cfg.ps, [gpus[i % len(gpus)] if gpus else None
               for i in range(cfg.workers)],
      ['worker %d' % i for i in range(cfg.workers)], net)


def main(argv=None):
  return program.main('cluster_launch', __doc__, launch, argv,
                      errors=[LaunchError], on_signal=program.FINISH_STEP)


if __name__ == '__main__':
  sys.exit(main())
