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
trainers' and go to every worker. cifar10_multi_gpu_train starts its
processes, one per GPU, with `replicas` here.
"""
if __name__ == '__main__':
  from cifar10_tutorial.shell import quiet
  quiet.install()

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from cifar10_tutorial.core import children
from cifar10_tutorial.core import stopping
from cifar10_tutorial.shell import flags
from cifar10_tutorial.shell import program

log = logging.getLogger('cifar10_tutorial')
GRACE_SECS = 60   # for workers to finish and the chief to checkpoint


def free_ports(n):
  """`n` loopback ports that were free a moment ago."""
  sockets = [socket.socket() for _ in range(n)]
  try:
    for s in sockets:
      s.bind(('127.0.0.1', 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


class Task(object):
  """One process of the cluster, its lines prefixed with its name."""

  _print_lock = threading.Lock()

  def __init__(self, name, argv, env=None):
    self.name = name
    self.proc = children.start(
        [sys.executable, '-u', '-m',
         'cifar10_tutorial.cluster.cifar10_dist_train'] +
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    self._reader = threading.Thread(target=self._relay, daemon=True)
    self._reader.start()

  def _relay(self):
    for line in self.proc.stdout:
      with self._print_lock:
        sys.stdout.write('%s | %s' % (self.name, line))
        sys.stdout.flush()

  def signal(self, signum):
    if self.proc.poll() is None:
      try:
        os.killpg(self.proc.pid, signum)
      except ProcessLookupError:
        pass

  def wait(self, timeout):
    try:
      self.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      self.signal(signal.SIGKILL)
      self.proc.wait()
    self._reader.join(timeout=5)
    return self.proc.returncode


def _describe(code):
  return ('killed by signal %d' % -code if code < 0 else
          'exit status %d' % code)


def visible_gpus(environ=os.environ):
  """The GPUs this process may use, by the names CUDA_VISIBLE_DEVICES
  gives them (all of this machine's where it is not set)."""
  listed = environ.get('CUDA_VISIBLE_DEVICES')
  if listed is not None:
    return [g.strip() for g in listed.split(',')
            if g.strip() and not g.strip().startswith('-')]
  from cifar10_tutorial.engine import machine   # TensorFlow: only when needed
  return [str(i) for i in range(machine.gpu_count())]


def _sees(gpu):
  """The environment of a task that sees only `gpu` (None: no GPU). NCCL
  still reaches the other tasks' GPUs directly: NCCL_DEBUG=INFO shows every
  channel between two H200s' tasks "via P2P/CUMEM" (NVLink)."""
  return dict(os.environ, CUDA_VISIBLE_DEVICES='' if gpu is None else gpu)


class LaunchError(RuntimeError):
  """A cluster that cannot be started as asked; the message says why."""


def launch(cfg):
  """make train-cluster: runs the cluster to the end; returns the chief's
  exit status."""
  gpus = visible_gpus()
  if not cfg.ps and gpus and cfg.workers > len(gpus):
    # NCCL refuses two workers of one all-reduce on the same GPU.
    raise LaunchError('--workers %d --ps 0: expected at most one worker per '
                      'GPU, found %d GPUs (%s)' % (
                          cfg.workers, len(gpus), ', '.join(gpus)))
  return run(cfg, flags.to_argv(cfg, flags.TRAINING + flags.CLUSTER),
             cfg.workers, cfg.ps, [gpus[i % len(gpus)] if gpus else None
                                   for i in range(cfg.workers)],
             ['worker %d' % i for i in range(cfg.workers)])


def replicas(cfg, devices, argv):
  """cifar10_multi_gpu_train's processes: one worker of an all-reduce
  cluster per tower device ('/gpu:i': that GPU alone; '/cpu:i': none),
  with `argv`; returns the chief's exit status."""
  gpus = visible_gpus() if devices[0].startswith('/gpu') else []
  return run(cfg, argv, len(devices), 0,
             [gpus[int(d.rsplit(':', 1)[1])] if gpus else None
              for d in devices],
             ['tower %d' % i for i in range(len(devices))])


def nccl_meeting_point(ps, gpus, environ=os.environ):
  """The environment that tells an all-reduce's workers on GPUs (`ps` 0,
  `gpus` not all None) where their NCCL meets, for the all-reduce that XLA
  compiles (worker.compiled_all_reduce): a free loopback port, unless the
  user set NCCL_COMM_ID. Empty otherwise."""
  if ps or not any(g is not None for g in gpus) or 'NCCL_COMM_ID' in environ:
    return {}
  return {'NCCL_COMM_ID': '127.0.0.1:%d' % free_ports(1)[0]}


def run(cfg, argv, workers, ps, gpus, names):
  """Starts `ps` parameter servers and `workers` workers (`names`, worker
  i seeing GPU `gpus[i]` alone, None: none), each with `argv`, and
  supervises them to the end."""
  ports = free_ports(ps + workers)
  ps_hosts = ['127.0.0.1:%d' % p for p in ports[:ps]]
  worker_hosts = ['127.0.0.1:%d' % p for p in ports[ps:]]
  common = list(argv) + ['--worker_hosts', ','.join(worker_hosts)]
  if ps_hosts:
    common += ['--ps_hosts', ','.join(ps_hosts)]
    log.info('cluster: parameter servers at %s; workers at %s (worker 0 is '
             'the chief, writing into %s)', ', '.join(ps_hosts),
             ', '.join(worker_hosts), cfg.train_dir)
  else:
    log.info('all-reduce: %s at %s (%s is the chief, writing into %s)',
             ', '.join(names), ', '.join(worker_hosts), names[0],
             cfg.train_dir)
  nccl = nccl_meeting_point(ps, gpus)
  servers, tasks = [], []
  try:
    servers = [Task('ps %d' % i, ['--job_name', 'ps', '--task_index', str(i)]
                    + common, env=_sees(None)) for i in range(ps)]
    tasks = [Task(names[i], ['--job_name', 'worker', '--task_index', str(i)]
                  + common, env=dict(_sees(gpus[i]), **nccl))
             for i in range(workers)]
    return _supervise(servers, tasks, all_reduce=not ps)
  finally:
    for task in servers + tasks:   # whatever happened: nothing left over
      task.signal(signal.SIGKILL)
      task.wait(timeout=10)


def _supervise(servers, workers, all_reduce=False):
  """Waits for the chief. Passes a stop request on to the workers. A lost
  worker: the others go on (asynchronous), or, where every step waits for
  every worker (all-reduce), they are stopped."""
  chief, reported, forwarded = workers[0], set(), False
  while True:
    if stopping.requested() and not forwarded:
      # The same request (a closed terminal's as a SIGTERM): the chief
      # checkpoints, then stops, with the status the user expects.
      passed = (signal.SIGINT if stopping.requested() == signal.SIGINT
                else signal.SIGTERM)
      for task in workers:
        task.signal(passed)
      forwarded, deadline = True, time.time() + GRACE_SECS
    for task in workers + servers:
      code = task.proc.poll()
      if code is not None and task not in reported:
        reported.add(task)
        if code and task is not chief and not forwarded:
          if not all_reduce:
            log.warning('%s exited (%s); the others go on', task.name,
                        _describe(code))
            continue
          log.error('%s exited (%s): every step needs it; stopping the '
                    'others (the chief resumes from its last checkpoint)',
                    task.name, _describe(code))
          for other in workers:
            other.signal(signal.SIGTERM)
          forwarded, deadline = True, time.time() + GRACE_SECS
        elif task in servers and not forwarded:
          log.error('%s exited (%s): the workers will lose the variables',
                    task.name, _describe(code))
    if chief.proc.poll() is not None:
      break
    if forwarded and time.time() > deadline:
      log.error('the workers did not stop within %d s: stopping them',
                GRACE_SECS)
      break
    time.sleep(0.2)
  # The chief is done: the other workers stop by themselves at the same
  # global step; if the chief failed, they are asked to.
  settle = time.time() + 5
  while time.time() < settle and any(t.proc.poll() is None
                                     for t in workers[1:]):
    time.sleep(0.2)
  for task in workers[1:]:
    task.signal(signal.SIGINT)
    task.wait(timeout=30)
  for task in servers:
    task.signal(signal.SIGTERM)
    task.wait(timeout=10)
  code = chief.wait(timeout=10)
  log.info('%s: the chief ended with %s', 'all-reduce done' if all_reduce
           else 'cluster done', _describe(code))
  return code if code >= 0 else 128 - code


def main(argv=None):
  return program.main('cluster_launch', __doc__, launch, argv,
                      errors=[LaunchError], on_signal=program.FINISH_STEP)


if __name__ == '__main__':
  sys.exit(main())
