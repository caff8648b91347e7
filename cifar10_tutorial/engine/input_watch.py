"""Notices an input pipeline that can no longer feed the training steps.

    watch = InputWatch(graph.inputs, coord, sess)   # after the queue runners
    ...; if watch.error: stop                       # a records.DataError
    watch.stop()

A step waiting on a queue that will never fill would wait forever; the
watch closes the queue instead, so the step returns and the loop reports
the file.
"""
import threading

from cifar10_tutorial.core import errors
from cifar10_tutorial.core import records


class InputWatch(object):
  """Notices, within seconds, an input pipeline that can no longer feed the
  steps: a record file changed under the trainer (truncated, deleted, made
  unreadable: its readers then find no whole record, and a step would wait
  for a batch forever), or a reader that failed. It then closes the
  example queue, so that the step waiting on it returns, and keeps the
  reason, one line naming the file, in `error`."""

  EVERY_SECS = 1.0

  def __init__(self, inputs, coord, sess):
    self.error = None
    self._inputs, self._coord, self._sess = inputs, coord, sess
    self._sizes = records.sizes(inputs.files)
    self._done = threading.Event()
    self._thread = threading.Thread(target=self._watch, name='input-watch',
                                    daemon=True)
    self._thread.start()

  def check(self):
    """The error, if the input can no longer feed the steps (also called
    by the loop when a run found the queue closed and empty: the readers
    can fail and close it between two looks)."""
    if self.error is None:
      problem = records.changed(self._sizes)
      if problem is None and self._coord.should_stop():
        try:
          self._coord.raise_requested_exception()
        except Exception as e:   # pylint: disable=broad-except
          problem = 'expected the input threads to read the records, found ' \
                    'them stopped: %s' % errors.reason(e)
      if problem:
        self.error = records.DataError(problem)
    return self.error

  def _watch(self):
    while not self._done.wait(self.EVERY_SECS):
      if self.check():
        try:
          self._sess.run(self._inputs.close)
        except Exception:   # pylint: disable=broad-except
          pass   # the session is closing: the step returns anyway
        return

  def stop(self):
    self._done.set()
    self._thread.join(timeout=5)
