"""Starts a whole cluster on this machine (what `make train-cluster` runs).

    python -m cifar10_tutorial.cluster_launch --workers 2 --ps 1 --max_steps 2000

Starts --ps parameter servers and --workers workers of cifar10_dist_train
on free loopback ports, each in a process group of its own that this
launcher owns, and prefixes each one's lines with its name (`worker 1 |
...`). When the workers are done it stops the parameter servers; its exit
status is the chief's. Ctrl-C is passed to the workers (the chief saves a
checkpoint), then the servers are stopped; a second Ctrl-C stops everything
at once. Nothing it started is left running when it returns. The training
flags are the other trainers' and go to every worker.
"""
if __name__ == '__main__':
  from cifar10_tutorial import quiet
  quiet.install()

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from cifar10_tutorial import flags
from cifar10_tutorial import program
from cifar10_tutorial import stopping

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

  def __init__(self, name, argv):
    self.name = name
    self.proc = subprocess.Popen(
        [sys.executable, '-u', '-m', 'cifar10_tutorial.cifar10_dist_train'] +
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)   # its own group: ours to signal and end
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


def launch(cfg):
  """Runs the cluster to the end; returns the chief's exit status."""
  ports = free_ports(cfg.ps + cfg.workers)
  ps_hosts = ['127.0.0.1:%d' % p for p in ports[:cfg.ps]]
  worker_hosts = ['127.0.0.1:%d' % p for p in ports[cfg.ps:]]
  common = flags.to_argv(cfg, flags.TRAINING + flags.CLUSTER) + [
      '--ps_hosts', ','.join(ps_hosts), '--worker_hosts',
      ','.join(worker_hosts)]
  log.info('cluster: parameter servers at %s; workers at %s (worker 0 is the '
           'chief, writing into %s)', ', '.join(ps_hosts),
           ', '.join(worker_hosts), cfg.train_dir)
  servers, workers = [], []
  try:
    servers = [Task('ps %d' % i, ['--job_name', 'ps', '--task_index', str(i)]
                    + common) for i in range(cfg.ps)]
    workers = [Task('worker %d' % i, ['--job_name', 'worker', '--task_index',
                                      str(i)] + common)
               for i in range(cfg.workers)]
    return _supervise(servers, workers)
  finally:
    for task in servers + workers:   # whatever happened: nothing left over
      task.signal(signal.SIGKILL)
      task.wait(timeout=10)


def _supervise(servers, workers):
  chief, reported, forwarded = workers[0], set(), False
  while True:
    if stopping.requested() and not forwarded:
      for task in workers:
        task.signal(signal.SIGINT)   # the chief checkpoints, then stops
      forwarded, deadline = True, time.time() + GRACE_SECS
    for task in workers + servers:
      code = task.proc.poll()
      if code is not None and task not in reported:
        reported.add(task)
        if code and task is not chief and not forwarded:
          log.warning('%s exited (%s); the others go on', task.name,
                      _describe(code))
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
  log.info('cluster done: the chief ended with %s', _describe(code))
  return code if code >= 0 else 128 - code


def main(argv=None):
  return program.main('cluster_launch', __doc__, launch, argv,
                      on_signal=program.FINISH_STEP)


if __name__ == '__main__':
  sys.exit(main())
