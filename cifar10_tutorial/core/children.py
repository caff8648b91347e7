"""The processes a program starts never outlive it.

    proc = children.start(argv, stdout=subprocess.PIPE)   # the parent
    children.follow_parent()         # the child: program.main calls it

A child started here runs in a process group of its own (the parent decides
when it gets a signal) and knows its parent's process id. When it starts,
the child asks the kernel to send it PARENT_GONE when that parent ends,
however it ends (`kill -9` included); stopping.py takes that as a SIGTERM
once the parent is really gone: a trainer then finishes its step and saves
a checkpoint. (The kernel sends it whenever the thread that started the
child ends, and a parent's other threads may outlive that one for a moment:
so its own signal, counted once, not a second SIGTERM that would mean "quit
at once".) A parent that is gone before the child asks is noticed too, and
the orphan's output, which nobody reads any more, goes to /dev/null.
Linux only (prctl); elsewhere the child just runs on.
"""
import ctypes
import os
import signal
import subprocess

PARENT_VARIABLE = 'CIFAR10_TUTORIAL_PARENT'
PARENT_GONE = signal.SIGUSR1
_PR_SET_PDEATHSIG = 1
_parent = []   # the parent's process id, once follow_parent has seen it


def environment(env=None):
  """`env` (default: ours) marked as a child of this process."""
  return dict(os.environ if env is None else env,
              **{PARENT_VARIABLE: str(os.getpid())})


def start(argv, env=None, **popen):
  """subprocess.Popen(argv) in a new session, as a child that follows this
  process (it stops when this process ends)."""
  return subprocess.Popen(argv, env=environment(env), start_new_session=True,
                          **popen)


def run(argv, env=None, timeout=None, **popen):
  """subprocess.run's work with start(): waits, returns a CompletedProcess;
  the child is killed if this process stops waiting (a signal, a timeout)."""
  proc = start(argv, env, **popen)
  try:
    out, err = proc.communicate(timeout=timeout)
  except BaseException:
    kill(proc)
    raise
  return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def kill(proc):
  """Ends `proc` and its group at once, and waits for it."""
  try:
    os.killpg(proc.pid, signal.SIGKILL)
  except (ProcessLookupError, PermissionError):
    pass
  proc.wait()


def follow_parent(signum=PARENT_GONE):
  """In a child started by start(): `signum` for this process when its
  parent ends, or now if it has ended already. Nothing for other processes.
  Call it once the handler of `signum` is in place."""
  parent = os.environ.pop(PARENT_VARIABLE, None)
  if not parent or not parent.isdigit():
    return
  try:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
  except (OSError, AttributeError):
    return   # not Linux
  _parent.append(int(parent))
  if os.getppid() != int(parent):   # gone before we asked
    os.kill(os.getpid(), signum)


def orphaned():
  """Whether the parent that started this process has ended. Then nobody
  reads this process's output any more: it goes to /dev/null from here on,
  so that writing a line cannot fail (a broken pipe) before the process
  has stopped cleanly."""
  if not _parent or os.getppid() == _parent[0]:
    return False
  null = os.open(os.devnull, os.O_WRONLY)
  os.dup2(null, 1)
  os.dup2(null, 2)
  os.close(null)
  return True
