"""Ctrl-C and SIGTERM: a clean stop the first time, at once the second.

The first SIGINT or SIGTERM calls the program's `first` function (the
trainers finish the step and save a checkpoint; eval just stops) and starts
a watchdog: if the program has not exited GRACE_SECS later, it exits then.
A second signal exits at once. Exit status is 128 + the signal number
(130 for Ctrl-C, 143 for SIGTERM), as shells expect.
"""
import contextlib
import logging
import os
import signal
import sys
import threading

log = logging.getLogger('cifar10_tutorial')
GRACE_SECS = 25
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received = []


class Interrupted(Exception):
  """The run stopped on a signal; the message says where."""

  def __init__(self, signum, message):
    super(Interrupted, self).__init__(message)
    self.exit_code = 128 + signum


def requested():
  """The signal number of a stop request, or None."""
  return _received[0] if _received else None


def _exit_now(signum, why):
  log.error(why)
  sys.stdout.flush()
  os._exit(128 + signum)


@contextlib.contextmanager
def on_signals(first):
  """Handles SIGINT and SIGTERM in the block (main thread only).

  `first(signum)` runs on the first signal, in the main thread; it may
  raise Interrupted to unwind at once.
  """
  watchdogs = []

  def handler(signum, frame):
    if _received:
      _exit_now(signum, 'second signal: quitting at once')
    _received.append(signum)
    watchdog = threading.Timer(GRACE_SECS, _exit_now, (
        signum, 'did not stop within %d s: quitting' % GRACE_SECS))
    watchdog.daemon = True
    watchdog.start()
    watchdogs.append(watchdog)
    first(signum)

  if threading.current_thread() is not threading.main_thread():
    yield
    return
  previous = {s: signal.signal(s, handler) for s in _SIGNALS}
  try:
    yield
  finally:
    for s, h in previous.items():
      signal.signal(s, h)
    for watchdog in watchdogs:
      watchdog.cancel()
    del _received[:]
