"""A live progress line on a terminal; plain log lines everywhere else.

On a terminal, training redraws one line in place (step / max_steps, loss,
examples/sec, ETA) and eval shows how far its pass is; the permanent log
lines (every --log_frequency steps, checkpoints, results) print above it.
When stdout is not a terminal (CI, `> train.log`) nothing is redrawn: only
the plain log lines, with no control characters.
"""
import logging
import sys
import time

_CLEAR_TO_END = '\x1b[K'


class LiveLine(object):
  """One line redrawn in place, at most every `min_interval` seconds."""

  def __init__(self, stream, min_interval=0.2):
    self.stream = stream
    self.enabled = stream.isatty()
    self._min_interval = min_interval
    self._shown = False
    self._last = 0.0

  def show(self, text):
    now = time.time()
    if not self.enabled or now - self._last < self._min_interval:
      return
    self.stream.write('\r' + text + _CLEAR_TO_END)
    self.stream.flush()
    self._shown, self._last = True, now

  def clear(self):
    if self._shown:
      self.stream.write('\r' + _CLEAR_TO_END)
      self.stream.flush()
      self._shown = False


_stdout_line = None


def live_line():
  """The live line on stdout, shared by the hooks and the log handler."""
  global _stdout_line
  if _stdout_line is None or _stdout_line.stream is not sys.stdout:
    _stdout_line = LiveLine(sys.stdout)
  return _stdout_line


class Handler(logging.StreamHandler):
  """Clears the live line before each log line, so the two never mix."""

  def emit(self, record):
    live_line().clear()
    super(Handler, self).emit(record)


def duration(seconds):
  """'1:02:03' for 3,723 seconds."""
  seconds = int(max(seconds, 0))
  return '%d:%02d:%02d' % (seconds // 3600, seconds // 60 % 60, seconds % 60)


class Rate(object):
  """Seconds per step, smoothed, for the ETA (the first step is the queue
  warm-up, so a plain average would be off for a long time)."""

  def __init__(self, smoothing=0.1):
    self._smoothing = smoothing
    self.seconds_per_step = None
    self._last = None

  def tick(self, steps=1):
    """After a run of `steps` steps."""
    now = time.time()
    if self._last is not None:
      step_time = (now - self._last) / steps
      if self.seconds_per_step is None:
        self.seconds_per_step = step_time
      else:
        self.seconds_per_step += self._smoothing * (step_time -
                                                    self.seconds_per_step)
    self._last = now
