"""The processes of an all-reduce or parameter-server cluster on this
machine: started, supervised to the end, and never left behind.

    code = processes.run(cfg, argv, workers, ps, gpus, names, net)   # the launcher's
    code = processes.for_towers(cfg, devices, argv, net)             # the multi-GPU trainer's

Each task is a process of cifar10_dist_train in a process group of its own,
its lines prefixed with its name (`worker 1 | ...`), on a free loopback
port, in the private network `net` (private_net.py) where there is one. On
a machine with GPUs each worker sees one of them (CUDA_VISIBLE_DEVICES);
the parameter servers none. A stop request (Ctrl-C, SIGTERM, SIGHUP) goes
on to the workers (the chief checkpoints) and wakes stopped ones; a task
stopped with SIGSTOP is named; a lost one stops the run where every step
needs it. Whatever ends this process (the run's end, an error, a second
signal, its own deadline), every task is killed with its group and
reaped; if it is killed itself, the private network's holder guards them.
"""
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from cifar10_tutorial.cluster import worker
from cifar10_tutorial.core import children
from cifar10_tutorial.core import gpus as machine_gpus
from cifar10_tutorial.core import stopping

log = logging.getLogger('cifar10_tutorial')


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


# What a task says when it stops before its work is underway (stopping.py,
# program.py).
_QUICK_STOP = re.compile(r'(^|\] |\d\d:\d\d:\d\d )stopped \([\w-]+\)'
                         r'( before training started)?$')


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
      if stopping.requested() and _QUICK_STOP.search(line):
        continue   # the launcher's own line said it: not once per task
      with self._print_lock:
        sys.stdout.write('%s | %s' % (self.name, line))
        sys.stdout.flush()

  def signal(self, signum):
    if self.proc.poll() is None:
      try:
        os.killpg(self.proc.pid, signum)
      except ProcessLookupError:
        pass

  def ask_to_stop(self, signum):
    """`signum`, then SIGCONT: a task stopped with SIGSTOP (or Ctrl-Z)
    wakes up to act on it, as a shell does for its stopped jobs."""
    self.signal(signum)
    self.signal(signal.SIGCONT)

  def stopped(self):
    """Whether the task is stopped by SIGSTOP (state T), and so answers no
    peer. A debugger's stop (state t) is left alone: someone is at it."""
    return self.proc.poll() is None and state(self.proc.pid) == 'T'

  def kill(self):
    """SIGKILL for the task's whole group (its output filter too), reaped."""
    self.signal(signal.SIGKILL)
    try:
      self.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
      pass

  def wait(self, timeout):
    try:
      self.proc.wait(timeout=max(0, timeout))
    except subprocess.TimeoutExpired:
      self.kill()
    self._reader.join(timeout=5)
    return self.proc.returncode


def state(pid):
  """A process's state letter from /proc (R, S, T, ...), None if gone."""
  try:
    with open('/proc/%d/stat' % pid, 'rb') as f:
      return f.read().rsplit(b')', 1)[1].split()[0].decode()
  except (OSError, IndexError):
    return None


def _describe(code):
  if code is None:
    return 'no exit (killed)'
  return ('killed by signal %d' % -code if code < 0 else
          'exit status %d' % code)


def visible_gpus(environ=os.environ):
  """The GPUs this process may use, by the names CUDA_VISIBLE_DEVICES
  gives them (all of this machine's where it is not set)."""
  listed = environ.get('CUDA_VISIBLE_DEVICES')
  if listed is not None:
    return [g.strip() for g in listed.split(',')
            if g.strip() and not g.strip().startswith('-')]
  return [str(i) for i in range(machine_gpus.count())]


def _sees(gpu):
  """The environment of a task that sees only `gpu` (None: no GPU). NCCL
  still reaches the other tasks' GPUs directly: NCCL_DEBUG=INFO shows every
  channel between two H200s' tasks "via P2P/CUMEM" (NVLink)."""
  return dict(os.environ, CUDA_VISIBLE_DEVICES='' if gpu is None else gpu)


def for_towers(cfg, devices, argv, net):
  """cifar10_multi_gpu_train's processes: one worker of an all-reduce
  cluster per tower device ('/gpu:i': that GPU alone; '/cpu:i': none),
  with `argv`, in the private network `net` (None: none); returns the
  chief's exit status."""
  gpus = visible_gpus() if devices[0].startswith('/gpu') else []
  return run(cfg, argv, len(devices), 0,
             [gpus[int(d.rsplit(':', 1)[1])] if gpus else None
              for d in devices],
             ['tower %d' % i for i in range(len(devices))], net)


def nccl_meeting_point(ps, gpus, environ=os.environ):
  """The environment that tells an all-reduce's workers on GPUs (`ps` 0,
  `gpus` not all None) where their NCCL meets, for the all-reduce that XLA
  compiles (settings.compiled_all_reduce): a free loopback port, unless the
  user set NCCL_COMM_ID, and NCCL's other sockets on loopback (unless the
  user set NCCL_SOCKET_IFNAME). Empty otherwise."""
  if ps or not any(g is not None for g in gpus) or 'NCCL_COMM_ID' in environ:
    return {}
  # NCCL's other sockets on loopback too: all on one machine.
  return {'NCCL_COMM_ID': '127.0.0.1:%d' % free_ports(1)[0],
          'NCCL_SOCKET_IFNAME': environ.get('NCCL_SOCKET_IFNAME', 'lo')}


# A stop request reaches every task at once, and each has stopping's
# GRACE_SECS of its own to finish its step and checkpoint. The launcher
# waits STOP_SECS for them, kills what is left, and is done before its own
# GRACE_SECS could end it.
STOP_SECS = stopping.GRACE_SECS - 5
# A task stopped with SIGSTOP (state T) for this long is named: where every
# step needs it, the run is stopped (its peers' own timeout would blame one
# of them, and later).
STALLED_SECS = 10


def run(cfg, argv, workers, ps, gpus, names, net=None):
  """Starts `ps` parameter servers and `workers` workers (`names`, worker
  i seeing GPU `gpus[i]` alone, None: none), each with `argv`, in the
  private network `net` (a private_net.Network; None: this machine's), and
  supervises them to the end. Whatever ends this process (the end of the
  run, an error, a second signal, its own deadline), no task outlives it:
  each is killed, with its group, and reaped."""
  servers, tasks = [], []

  def leave_nothing():
    for task in servers + tasks:
      task.kill()
    if net:
      net.close()

  try:
    with stopping.before_quitting(leave_nothing):
      return _start(cfg, argv, workers, ps, gpus, names, net, servers, tasks)
  finally:
    leave_nothing()


def _start(cfg, argv, workers, ps, gpus, names, net, servers, tasks):
  """run's work: the tasks started into `servers` and `tasks` (which the
  caller kills, whatever happens), then supervised."""
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
  private = net.environment() if net else {}
  if net and net.isolated:
    log.info('the tasks run in a network of their own, loopback only: '
             'nothing outside them reaches their ports')
  nccl = nccl_meeting_point(ps, gpus)
  # Each task calls itself by the name its lines are prefixed with.
  private[worker.NAMES_VARIABLE] = ','.join(names)
  stopping.work_underway()   # a stop request goes on to the tasks
  for i in range(ps):
    servers.append(Task('ps %d' % i, ['--job_name', 'ps', '--task_index',
                                      str(i)] + common,
                        env=dict(_sees(None), **private)))
    if net:
      net.watch(servers[-1].proc.pid)
  for i in range(workers):
    tasks.append(Task(names[i], ['--job_name', 'worker', '--task_index',
                                 str(i)] + common,
                      env=dict(_sees(gpus[i]), **nccl, **private)))
    if net:
      net.watch(tasks[-1].proc.pid)
  return _Supervisor(servers, tasks, all_reduce=not ps,
                     every_step=not ps or getattr(cfg, 'sync_replicas',
                                                  False), net=net).run()


class _Supervisor(object):
  """Waits for the chief; passes a stop request on to the workers; names a
  task that stopped answering. A lost worker: the others go on
  (asynchronous), or, where every step waits for every worker (all-reduce,
  synchronous), they are stopped."""

  def __init__(self, servers, workers, all_reduce, every_step, net=None):
    self.servers, self.workers, self.chief = servers, workers, workers[0]
    self.net = net   # its holder guards the tasks should this process die
    self.all_reduce, self.every_step = all_reduce, every_step
    # Synchronous steps on parameter servers: the chief's last step needs a
    # batch from every worker, so the others are asked to stop only once
    # the chief has checkpointed (all-reduce processes vote instead).
    self.chief_first = every_step and not all_reduce
    self.stop_at = None   # once the workers were asked to stop
    self.fault = False    # stopped for a lost or stopped task
    self.exited, self.named = set(), set()
    self.stopped_since = {}   # task: when it was first seen stopped

  def run(self):
    while self.chief.proc.poll() is None:
      if stopping.requested() and self.stop_at is None:
        # The same request (a closed terminal's as a SIGTERM): the chief
        # checkpoints, then stops, with the status the user expects.
        self.stop(signal.SIGINT if stopping.requested() == signal.SIGINT
                  else signal.SIGTERM)
      self._look()
      if self.stop_at and time.time() > self.stop_at:
        late = [t.name for t in self.workers if t.proc.poll() is None]
        log.error('%s did not stop within %d s: killing %s', ', '.join(late),
                  STOP_SECS, 'it' if len(late) == 1 else 'them')
        break
      time.sleep(0.2)
    return self._finish()

  def stop(self, signum):
    """Asks the workers to stop (the chief checkpoints; with synchronous
    steps the others go on until it has); wakes every stopped task: a
    parameter server's variables are in the chief's checkpoint."""
    for task in self.workers:
      if task is self.chief or not self.chief_first:
        task.ask_to_stop(signum)
      task.signal(signal.SIGCONT)
    for task in self.servers:
      task.signal(signal.SIGCONT)
    self.stop_at = time.time() + STOP_SECS

  def _look(self):
    now = time.time()
    if self.net:
      self.net.wake()   # a stopped guard guards nothing
    for task in self.workers + self.servers:
      code = task.proc.poll()
      if code is not None:
        if task not in self.exited:
          self.exited.add(task)
          self._lost(task, code)
      elif task.stopped():
        since = self.stopped_since.setdefault(task, now)
        if now - since >= STALLED_SECS and task not in self.named:
          self.named.add(task)
          self._stalled(task, now - since)
      else:
        self.stopped_since.pop(task, None)

  def _stopped_peers(self, task):
    return [t.name for t in self.workers + self.servers
            if t is not task and t.stopped()]

  def _lost(self, task, code):
    if task is self.chief or self.stop_at:
      return   # the chief: the run is over; asked to stop: as expected
    stopped = self._stopped_peers(task)
    waited = (' waiting on %s, which %s stopped (SIGSTOP) and answers no '
              'peer' % (', '.join(stopped), 'is' if len(stopped) == 1 else
                        'are') if stopped else '')
    if task in self.servers:
      log.error('%s exited (%s): the workers will lose the variables',
                task.name, _describe(code))
    elif not code:
      return
    elif not self.every_step:
      log.warning('%s exited (%s)%s; the others go on', task.name,
                  _describe(code), waited)
    else:
      log.error('%s exited (%s)%s: every step needs it; stopping the others '
                '(the chief resumes from its last checkpoint)', task.name,
                _describe(code), waited)
      self.fault = True
      self.stop(signal.SIGTERM)

  def _stalled(self, task, secs):
    if task not in self.servers and not self.every_step:
      log.warning('%s is stopped (SIGSTOP): the others go on without it%s',
                  task.name, '' if task is not self.chief else
                  '; no checkpoint is written until it goes on (SIGCONT)')
      return
    if self.stop_at:
      return
    log.error('%s is stopped (SIGSTOP) and has answered no peer for %d s: '
              '%s; waking it to stop the run (the chief checkpoints)',
              task.name, secs, 'the workers need its variables' if task in
              self.servers else 'every step needs it')
    self.fault = True
    self.stop(signal.SIGTERM)

  def _finish(self):
    """Once the chief is done: the other workers stop by themselves at the
    same global step, else they are asked to; then the parameter servers.
    Within the stop's deadline, if there is one. Returns the chief's exit
    status (as the shell gives it)."""
    end = self.stop_at + 3 if self.stop_at else None

    def wait(task, secs):
      task.wait(min(secs, end - time.time()) if end else secs)

    code = self.chief.wait(min(10, end - time.time()) if end else 10)
    # The others stop at the chief's last global step by themselves; after
    # a chief that failed (a refused start, say) they are asked at once.
    settle = time.time() + (5 if code == 0 else 0)
    while (time.time() < min(settle, end or settle) and
           any(t.proc.poll() is None for t in self.workers[1:])):
      time.sleep(0.2)
    for task in self.workers[1:]:
      task.ask_to_stop(signal.SIGTERM)
    for task in self.workers[1:]:
      wait(task, 20 if code == 0 else 5)
    for task in self.servers:
      task.ask_to_stop(signal.SIGTERM)
      wait(task, 10)
    log.info('%s: the chief ended with %s', 'all-reduce done' if
             self.all_reduce else 'cluster done', _describe(code))
    if stopping.requested() and code:
      return 128 + stopping.requested()   # the user's signal, whatever the
      # chief's own was (it got SIGTERM for a SIGHUP, or was killed late)
    if self.fault and code:
      return 1   # stopped for a fault: an error
    return code if code >= 0 else 128 - code
