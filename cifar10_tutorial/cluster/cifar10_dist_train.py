"""Trains the tutorial's network across machines: parameter servers and
workers on TensorFlow's own distributed runtime.

    # on each host, one process per task:
    python -m cifar10_tutorial.cluster.cifar10_dist_train --job_name ps --task_index 0 \\
        --ps_hosts h0:2222 --worker_hosts h1:2222,h2:2222
    python -m cifar10_tutorial.cluster.cifar10_dist_train --job_name worker --task_index 0 \\
        --ps_hosts h0:2222 --worker_hosts h1:2222,h2:2222 --train_dir /shared/run
    # or with TF_CONFIG='{"cluster": {...}, "task": {"type": "worker", "index": 1}}'

The variables live on the parameter servers; each worker reads its own
copy of the data through its own queue pipeline and trains the same network
with the same schedule, moving averages and summaries as the other trainers.
Worker 0, the chief, writes the checkpoints and summaries into --train_dir,
with the tutorial's names: `make eval` reads them, and `make train` or the
chief again resumes them. Asynchronous by default; --sync_replicas for
synchronous steps. `make train-cluster` starts a whole cluster on this
machine (cluster/launch.py). The work is worker.py's and the loop's
(engine/loop.py).
"""
if __name__ == '__main__':
  # Started by the launcher into its private network: join it first of all,
  # while this process has one thread (private_net.py).
  from cifar10_tutorial.cluster import private_net
  try:
    private_net.join()
  except OSError as e:
    import sys
    sys.stderr.write('error: expected to join the launcher\'s private network, '
                     'found %s; not starting\n' % e)
    sys.exit(1)
  # Run as a program: hide TensorFlow's known C++ noise, before importing it.
  from cifar10_tutorial.shell import quiet
  quiet.install(program='cifar10_dist_train', doc=__doc__)   # --help before TensorFlow

import os
import sys

from cifar10_tutorial import cifar10
from cifar10_tutorial.cluster import worker
from cifar10_tutorial.engine import loop
from cifar10_tutorial.engine import machine
from cifar10_tutorial.engine import rundir
from cifar10_tutorial.shell import program


def on_signal(cfg):
  """A parameter server stops once the chief is gone (worker.serve); a
  worker finishes its step (the chief then saves a checkpoint)."""
  try:
    job = worker.role(cfg).job
  except worker.ClusterError:
    job = 'worker'   # the error is said when the program starts
  if job == 'ps':
    return program.Notice('stopping once the chief is done (at most %d s)' %
                          worker.CHIEF_GRACE_SECS)
  return program.FINISH_STEP


def main(argv=None):
  return program.main('cifar10_dist_train', __doc__, worker.run, argv,
                      errors=[loop.LossDivergedError, worker.ClusterError,
                              cifar10.ClassCountError,
                              machine.OutOfMemoryError, rundir.RunDirError],
                      on_signal=on_signal)


if __name__ == '__main__':
  code = main()
  # Its outcome is printed and its files are closed: exit now. Tearing down
  # TensorFlow's server can wait on a peer that is gone (a dead worker of a
  # synchronous cluster): that would be a hang after the error.
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)
