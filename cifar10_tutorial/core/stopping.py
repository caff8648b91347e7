"""Ctrl-C and SIGTERM: a clean stop the first time, at once the second.

SIGHUP (the terminal was closed) counts as the same request, unless it was
ignored when the program started (`nohup`): then it stays ignored. So does
the end of the parent process that started this one (children.py), once.
The first SIGINT, SIGTERM or SIGHUP calls the program's `first` function (the
trainers finish the step and save a checkpoint; eval just stops) and starts
a watchdog: if the program has not exited GRACE_SECS later, it exits then.
A second signal (half a second or more after the first: closer, it is the
same request delivered twice) exits at once. Exit status is 128 + the
signal number
(130 for Ctrl-C, 143 for SIGTERM), as shells expect.

Before a program's own handling is in place (importing TensorFlow takes
seconds) and after it is gone, `quiet_until_handled` makes a signal end
the program at once with that status and no traceback. A program that
started others registers what must happen to them before any quick exit
(`before_quitting`): the deadline's exit does not run `finally` blocks.
"""
import contextlib
import logging
import os
import signal
import sys
import threading
import time

from cifar10_tutorial.core import children

log = logging.getLogger('cifar10_tutorial')
GRACE_SECS = 25
# Signals this close to the first are the same request delivered twice: make
# passes a SIGTERM on to the program it runs, which its process group got
# already; a terminal's Ctrl-C reaches a whole group. A person's second
# Ctrl-C comes later.
SAME_REQUEST_SECS = 0.5
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_received = []
_last_words = []   # functions run before a quick exit (before_quitting)


class Interrupted(Exception):
  """The run stopped on a signal; the message says where."""

  def __init__(self, signum, message):
    super(Interrupted, self).__init__(message)
    self.exit_code = 128 + signum


def requested():
  """The signal number of a stop request, or None."""
  return _received[0] if _received else None


_underway = []


def work_underway():
  """From here on a stop request finishes the work in flight (a trainer's
  step and checkpoint); before, a program with nothing to save can stop at
  once (program.FINISH_STEP)."""
  _underway.append(True)


def underway():
  return bool(_underway)


def _exit_now(signum, why):
  log.error(why)
  for last in list(_last_words):
    try:
      last()
    except Exception as e:   # pylint: disable=broad-except
      log.error('while quitting: %s', e)
  sys.stdout.flush()
  os._exit(128 + signum)


@contextlib.contextmanager
def before_quitting(last):
  """In the block, `last()` runs before the program quits at once (a
  second signal, or the grace period's end), in whatever thread quits:
  what a launcher does to leave no process of its own behind."""
  _last_words.append(last)
  try:
    yield
  finally:
    _last_words.remove(last)


def _quietly(signum, frame):
  del frame
  try:
    os.write(2, ('stopped (%s)\n' % name(signum)).encode())
  except OSError:
    pass
  os._exit(128 + signum)


def quiet_until_handled():
  """Until on_signals takes over (and again once it is done), SIGINT,
  SIGTERM and SIGHUP (unless ignored, as under nohup) end this process at
  once, with 128 + the signal number and one line: a Ctrl-C while
  TensorFlow is imported is no traceback. Main thread only."""
  for s in _SIGNALS:
    if s == signal.SIGHUP and signal.getsignal(s) is signal.SIG_IGN:
      continue
    signal.signal(s, _quietly)


def name(signum):
  """How the user sent `signum`: 'Ctrl-C', 'SIGTERM', ..."""
  if signum == signal.SIGINT:
    return 'Ctrl-C'
  try:
    return signal.Signals(signum).name
  except ValueError:
    return 'signal %d' % signum


class _Deadline(object):
  """Keeps the promise to stop when the main thread cannot hear it.

  Python runs signal handlers in the main thread only, between bytecodes:
  a main thread blocked inside TensorFlow (a session.run waiting on a
  starved queue, a session that does not close) would never run one. But
  Python's own C-level handler also writes each signal's number to a
  wakeup file descriptor at once, whatever the main thread is doing; this
  thread reads them. At the first stop request it starts the grace timer
  (exit GRACE_SECS later unless the program has ended); at the second it
  exits at once. The Python handler, when it runs, does the clean stop.
  """

  def __init__(self):
    self._read, self._write = os.pipe()
    os.set_blocking(self._write, False)
    self._previous = signal.set_wakeup_fd(self._write,
                                          warn_on_full_buffer=False)
    self._timer, self._count, self._first = None, 0, 0.0
    thread = threading.Thread(target=self._watch, name='stop-deadline',
                              daemon=True)
    thread.start()

  def _watch(self):
    while True:
      try:
        data = os.read(self._read, 64)
      except OSError:
        return
      if not data:
        return
      for signum in data:
        if signum == children.PARENT_GONE:
          if self._count or not children.orphaned():
            continue   # a parent thread ended, not the parent
          signum = signal.SIGTERM
        elif signum not in _SIGNALS:
          continue
        now = time.time()
        if self._count and now - self._first < SAME_REQUEST_SECS:
          continue   # the same request, delivered twice
        self._count += 1
        if self._count > 1:
          _exit_now(signum, 'second signal: quitting at once')
        self._first = now
        self._timer = threading.Timer(GRACE_SECS, _exit_now, (
            signum, 'did not stop within %d s: quitting' % GRACE_SECS))
        self._timer.daemon = True
        self._timer.start()

  def close(self):
    signal.set_wakeup_fd(self._previous)
    if self._timer:
      self._timer.cancel()
    os.close(self._write)   # the thread reads the end and returns
    os.close(self._read)


@contextlib.contextmanager
def on_signals(first):
  """Handles SIGINT, SIGTERM and SIGHUP in the block (main thread only).

  `first(signum)` runs on the first signal, in the main thread; it may
  raise Interrupted to unwind at once. Whatever the main thread is blocked
  on, the program ends GRACE_SECS after the first signal, and at once on
  a second (_Deadline).
  """

  def handler(signum, frame):
    if _received:
      return   # a second signal: the deadline thread quits
    _received.append(signum)
    first(signum)

  def parent_gone(signum, frame):
    # The parent that started us ended: a SIGTERM, unless a stop is
    # already under way (never a "second signal").
    if children.orphaned() and not _received:
      handler(signal.SIGTERM, frame)

  if threading.current_thread() is not threading.main_thread():
    yield
    return
  previous = {s: signal.signal(s, handler) for s in _SIGNALS
              if s != signal.SIGHUP or
              signal.getsignal(s) is not signal.SIG_IGN}
  previous[children.PARENT_GONE] = signal.signal(children.PARENT_GONE,
                                                 parent_gone)
  deadline = _Deadline()
  try:
    yield
  finally:
    for s, h in previous.items():
      signal.signal(s, h)
    deadline.close()
    del _received[:]
    del _underway[:]
