"""A cluster on one machine, reachable from nowhere else.

TensorFlow's gRPC server listens on every network interface of its
machine (0.0.0.0, fixed in its C++), whatever address the cluster spec
gives, and it authenticates nobody: whoever reaches a task's port can run
graphs in it, and a graph reads and writes files. So the processes of a
cluster on one machine (`make train-cluster`, `make train-multigpu`'s
process per GPU) run in a network namespace of their own whose only
interface is its own loopback: they reach each other, nothing outside
reaches them (not even this machine's other processes on 127.0.0.1).

    net = private_net.start()          # Unavailable where the kernel refuses
    task = children.start(argv, env=dict(env, **net.environment()))
    net.watch(task.pid)                # its group, if the launcher is killed
    # the started program, first thing: private_net.join()

The namespace is made by a small process of its own (`hold`), which the
tasks then join as they start, before anything else (a process must be
single-threaded to change namespaces). As root, a network namespace
alone; otherwise within a user namespace that maps the user to itself
(files, GPUs and signals work as before), where the kernel allows one to
unprivileged users. Linux only.

The same process is the tasks' guardian (`start(isolate=False)` for that
alone): should the launcher end without stopping them (`kill -9`), it
wakes each task's group (a stopped task cannot act on the kernel's
parent-gone signal until it is continued), lets them stop as on SIGTERM,
and kills what is left after GUARD_SECS.
"""
import ctypes
import errno
import fcntl
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time

from cifar10_tutorial.core import children

log = logging.getLogger('cifar10_tutorial')
VARIABLE = 'CIFAR10_PRIVATE_NET'   # /proc/<holder>/ns, for the tasks
# How long the tasks of a launcher that is gone get to stop by themselves
# (the chief checkpoints) before they are killed: within a program's own
# 25 s of grace (stopping.py).
GUARD_SECS = 23
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


class Unavailable(RuntimeError):
  """This machine lets no process make a network namespace; says why."""


def _libc():
  return ctypes.CDLL(None, use_errno=True)


def _call(name, *args):
  if getattr(_libc(), name)(*args) != 0:
    number = ctypes.get_errno()
    raise OSError(number, '%s: %s' % (name, os.strerror(number)))


def _write(path, text):
  with open(path, 'w') as f:
    f.write(text)


def _loopback_up():
  """The new namespace's loopback starts down: up, as `ip link set lo up`."""
  with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    request = struct.pack('16sH22x', b'lo', 0)
    flags = struct.unpack('16sH22x', fcntl.ioctl(s, _SIOCGIFFLAGS,
                                                 request))[1]
    fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack('16sH22x', b'lo',
                                              flags | _IFF_UP))


def _unshare():
  """Moves this (single-threaded) process into a new network namespace
  with only loopback, up. Unavailable, saying why, where it cannot."""
  tried = []
  if os.geteuid() == 0:
    try:
      _call('unshare', _CLONE_NEWNET)
      _loopback_up()
      return
    except OSError as e:
      tried.append(str(e))
  uid, gid = os.geteuid(), os.getegid()
  try:
    _call('unshare', _CLONE_NEWUSER | _CLONE_NEWNET)
    # This user as itself in the new user namespace (one line each, the
    # one mapping an unprivileged process may write for itself).
    _write('/proc/self/setgroups', 'deny')
    _write('/proc/self/uid_map', '%d %d 1' % (uid, uid))
    _write('/proc/self/gid_map', '%d %d 1' % (gid, gid))
    _loopback_up()
  except OSError as e:
    tried.append(str(e))
    if e.errno in (errno.EPERM, errno.EACCES):
      tried.append('unprivileged user namespaces are not allowed here')
    elif e.errno == errno.ENOSPC:
      tried.append('no namespaces left to this user')
    raise Unavailable('; '.join(tried))


def hold(isolate=True):
  """The holder: makes the namespace (if `isolate`), says `ready` (or
  `unavailable: why`) on stdout, then keeps it while the launcher writes
  the process groups to watch (`watch PGID` lines) on its stdin. When that
  ends without `done` (the launcher is gone), it guards them (guard)."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)   # the launcher's to handle
  if isolate:
    try:
      _unshare()
    except Unavailable as e:
      print('unavailable: %s' % e, flush=True)
      return 1
  print('ready', flush=True)
  groups = []
  for line in sys.stdin:
    if line.strip() == 'done':
      return 0
    if line.startswith('watch ') and line.split()[1].isdigit():
      groups.append(int(line.split()[1]))
  guard(groups)
  return 0


def _alive(group):
  try:
    os.killpg(group, 0)
    return True
  except ProcessLookupError:
    return False
  except PermissionError:
    return True


def guard(groups, grace=GUARD_SECS):
  """Wakes the process `groups` (SIGCONT: a stopped task then acts on its
  pending parent-gone signal, a trainer stopping as on SIGTERM), waits up
  to `grace` seconds for them to end, and kills what is left."""
  for group in groups:
    try:
      os.killpg(group, signal.SIGTERM)
      os.killpg(group, signal.SIGCONT)
    except OSError:
      pass
  deadline = time.time() + grace
  while time.time() < deadline and any(_alive(g) for g in groups):
    time.sleep(0.2)
  for group in groups:
    try:
      os.killpg(group, signal.SIGKILL)
    except OSError:
      pass


class Network(object):
  """A namespace kept by a holder process, which also guards the tasks
  (`watch`); `close()` ends the holder once the launcher has stopped them
  itself (the namespace goes when its last task does)."""

  def __init__(self, holder, isolated=True):
    self._holder = holder
    self.isolated = isolated
    self.path = '/proc/%d/ns' % holder.pid

  def environment(self):
    """What a task's environment needs to join the namespace."""
    return {VARIABLE: self.path} if self.isolated else {}

  def watch(self, group):
    """Process group `group` is to be stopped, and killed, if the
    launcher ends without doing so."""
    try:
      self._holder.stdin.write('watch %d\n' % group)
      self._holder.stdin.flush()
    except (OSError, ValueError):
      pass   # the holder is gone: the launcher still kills its tasks

  def wake(self):
    """SIGCONT for the holder, which a stopped one needs to guard."""
    try:
      os.kill(self._holder.pid, signal.SIGCONT)
    except OSError:
      pass

  def close(self):
    try:
      self._holder.stdin.write('done\n')
      self._holder.stdin.close()
    except (OSError, ValueError):
      pass
    children.kill(self._holder)


def start(isolate=True):
  """A private network for a cluster's tasks, kept and guarded by a
  holder process (a Network); Unavailable, saying why, where this machine
  allows none. `isolate` False: the guard alone (no namespace)."""
  holder = children.start(
      [sys.executable, '-c', 'import sys; from cifar10_tutorial.cluster '
       'import private_net; sys.exit(private_net.hold(%s))' % isolate],
      stdin=subprocess.PIPE,
      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
  said = holder.stdout.readline().strip()
  if said != 'ready':
    children.kill(holder)
    raise Unavailable(said.split(': ', 1)[-1] or 'the holder process ended')
  return Network(holder, isolate)


def start_or_open(allow_open, whose):
  """start(); where this machine allows no private network: with
  `allow_open` (--allow_open_ports), a warning that `whose` processes listen
  on every interface and the guard alone, else Unavailable."""
  try:
    return start()
  except Unavailable as e:
    if not allow_open:
      raise
    log.warning('warning: this machine allows no private network (%s): %s '
                'listen on every interface, unauthenticated, as '
                '--allow_open_ports asks', e, whose)
    return start(isolate=False)   # the guard alone


def join(environ=os.environ):
  """In a task started with a Network's environment: moves this process
  into that namespace, first thing (single-threaded). Nothing elsewhere.
  OSError if it cannot: the task must then not start, rather than listen
  where the launcher promised it would not."""
  path = environ.pop(VARIABLE, None)
  if not path:
    return False
  mine = os.stat('/proc/self/ns/user').st_ino
  if os.stat(os.path.join(path, 'user')).st_ino != mine:
    _setns(os.path.join(path, 'user'), _CLONE_NEWUSER)
  _setns(os.path.join(path, 'net'), _CLONE_NEWNET)
  return True


def _setns(path, kind):
  fd = os.open(path, os.O_RDONLY)
  try:
    _call('setns', fd, kind)
  finally:
    os.close(fd)


def joined():
  """Whether this process is in a private network: its interfaces are
  loopback only."""
  try:
    with open('/proc/self/net/dev') as f:
      names = [line.split(':')[0].strip() for line in f.readlines()[2:]]
  except OSError:
    return False
  return names == ['lo']

