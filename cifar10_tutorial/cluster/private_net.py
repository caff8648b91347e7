"""A cluster on one machine, reachable from nowhere else.

TensorFlow's gRPC server listens on every network interface of its
machine (0.0.0.0, fixed in its C++), whatever address the cluster spec
gives, and it authenticates nobody: whoever reaches a task's port can run
graphs in it, and a graph reads and writes files. So the processes of a
cluster on one machine (`make train-cluster`, `make train-multigpu`'s
process per GPU) run in a network namespace of their own whose only
interface is its own loopback: they reach each other, nothing outside
reaches them (not even this machine's other processes on 127.0.0.1).

    net = private_net.start()          # None where the kernel refuses
    children.start(argv, env=dict(env, **net.environment()))
    # the started program, first thing: private_net.join()

The namespace is made by a small process of its own (`hold`), which the
tasks then join as they start, before anything else (a process must be
single-threaded to change namespaces). As root, a network namespace
alone; otherwise within a user namespace that maps the user to itself
(files, GPUs and signals work as before), where the kernel allows one to
unprivileged users. Linux only.
"""
import ctypes
import errno
import fcntl
import os
import socket
import struct
import subprocess
import sys

from cifar10_tutorial.core import children

VARIABLE = 'CIFAR10_PRIVATE_NET'   # /proc/<holder>/ns, for the tasks
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


def hold():
  """The holder: makes the namespace, says `ready` (or `unavailable:
  why`) on stdout, then keeps it until its stdin ends (the launcher is
  done or gone) or its parent ends."""
  children.follow_parent()   # SIGUSR1, deadly by default, if it ends
  try:
    _unshare()
  except Unavailable as e:
    print('unavailable: %s' % e, flush=True)
    return 1
  print('ready', flush=True)
  sys.stdin.read()
  return 0


class Network(object):
  """A namespace kept by a holder process; `close()` ends the holder (the
  namespace goes when its last task does)."""

  def __init__(self, holder):
    self._holder = holder
    self.path = '/proc/%d/ns' % holder.pid

  def environment(self):
    """What a task's environment needs to join the namespace."""
    return {VARIABLE: self.path}

  def close(self):
    children.kill(self._holder)


def start():
  """A private network for a cluster's tasks (a Network), or Unavailable
  saying why this machine allows none."""
  holder = children.start(
      [sys.executable, '-m', 'cifar10_tutorial.cluster.private_net'],
      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  said = holder.stdout.readline().strip()
  if said != 'ready':
    children.kill(holder)
    raise Unavailable(said.split(': ', 1)[-1] or 'the holder process ended')
  return Network(holder)


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


if __name__ == '__main__':
  sys.exit(hold())
