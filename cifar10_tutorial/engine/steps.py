"""Training steps in a session, for the loop (loop.py) and a cluster's
workers (cluster/worker.py): the session with a cluster's deadline, a run
of k steps, the vote of processes that train together, the progress lines,
and the input threads' end.

    with session(cluster, config) as (sess, fetch):
      losses = run(graph, fetch, next_run(step, cfg, every), step)
      shown.ran(step, losses)          # shown = StepLog(writer, step, ...)
"""
import collections
import contextlib
import logging
import threading
import time

import numpy as np
import tensorflow.compat.v1 as tf
from tensorflow.python.client import session as session_lib

from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import errors
from cifar10_tutorial.core import progress
from cifar10_tutorial.core import records
from cifar10_tutorial.core import stopping

log = logging.getLogger('cifar10_tutorial')


def next_run(step, cfg, checkpoint_steps):
  """How many steps the next run takes: up to --steps_per_run, ending at
  the next summary step, checkpoint step (if by steps) or --max_steps."""
  ends = [cfg.max_steps, step + cfg.steps_per_run,
          (step // defaults.SAVE_SUMMARIES_STEPS + 1) *
          defaults.SAVE_SUMMARIES_STEPS]
  if checkpoint_steps:
    ends.append((step // checkpoint_steps + 1) * checkpoint_steps)
  return min(ends) - step


# A cluster's deadline for the first runs of each kind of fetch, which
# also build and compile it: XLA on a GPU took 13 s for a parameter-server
# worker's first run of 100 steps on an idle H200 (2026-11-30), longer on a
# busy machine. That is not a peer's silence; nor is a synchronous peer's
# wait for the other's first runs, a run or two later (seen on a busy
# 2-GPU host), hence the first FIRST_RUNS of each kind. Later runs get the
# --peer_timeout_secs deadline.
FIRST_RUN_SECS = 120
FIRST_RUNS = 3


def _kind(fetches):
  """What makes two fetches the same run to TensorFlow: their names."""
  return tuple(getattr(t, 'name', None) or repr(t)
               for t in tf.nest.flatten(fetches))


def _with_deadlines(sess, timeout_secs):
  """sess.run held to `timeout_secs`, or FIRST_RUN_SECS if longer for the
  first FIRST_RUNS runs of each kind: of fetches, and of `shape`, where the
  fed values change what XLA compiles (a compiled loop's step count)."""
  ran = collections.Counter()
  later = tf.RunOptions(timeout_in_ms=1000 * timeout_secs)
  first = tf.RunOptions(timeout_in_ms=1000 * max(timeout_secs,
                                                 FIRST_RUN_SECS))

  def fetch(fetches, feed=None, shape=None):
    kind = (_kind(fetches), shape)
    options = later if ran[kind] >= FIRST_RUNS else first
    out = sess.run(fetches, feed, options=options)
    ran[kind] += 1
    return out
  return fetch


def _without_deadlines(sess):
  """sess.run as `fetch`, for a trainer alone."""
  def fetch(fetches, feed=None, shape=None):
    del shape   # no deadline to choose
    return sess.run(fetches, feed)
  return fetch


class FetchSession(session_lib.SessionInterface):
  """A session whose runs are `fetch`'s, for what takes a session and not a
  fetch: the Saver that writes a checkpoint. In a cluster, a save that
  waits on a dead or hung parameter server then ends as an error too,
  at the same deadline as a step."""

  def __init__(self, sess, fetch):
    self._sess, self._fetch = sess, fetch

  @property
  def graph(self):
    return self._sess.graph

  @property
  def sess_str(self):
    return self._sess.sess_str

  def run(self, fetches, feed_dict=None, options=None, run_metadata=None):
    del options, run_metadata   # the deadline is fetch's
    return self._fetch(fetches, feed_dict)


@contextlib.contextmanager
def session(cluster, config):
  """A session and `fetch(fetches, feed=None, shape=None)`, its run, with a
  cluster's timeout (a step that waits on a dead peer must end as an
  error, not hang; the first runs of each kind, and of each `shape`, get
  FIRST_RUN_SECS at least). Closed at the end; after a cluster's error the
  close is not waited for: it would wait on the peer that is gone
  (TensorFlow gives it 30 s, then logs an error)."""
  sess = tf.Session(cluster.target if cluster else '', config=config)
  fetch = (_with_deadlines(sess, cluster.timeout_secs) if cluster else
           _without_deadlines(sess))
  try:
    yield sess, fetch
  except Exception:
    if not cluster:
      sess.close()
      raise
    threading.Thread(target=sess.close, daemon=True).start()
    raise
  sess.close()


def run(graph, fetch, count, step):
  """One run of `count` ordinary (not summary) steps from `step`: their
  losses."""
  if graph.loop is None:   # runs of one step (a CPU's, a synchronous cluster)
    _, loss = fetch([graph.summary_step.train_op,
                     graph.summary_step.total_loss])
    return np.array([loss])
  feed = {graph.run_length: count}
  if graph.until is not None:   # others train too: stop where we would
    feed[graph.until] = step + count
  # A compiled loop is compiled again for each step count.
  done, losses = fetch(graph.loop, feed, shape=count)
  return losses[:done]


def agree(graph, fetch, count):
  """(stop, steps): whether to stop before the next run, and how many steps
  it takes. Alone: stop when asked to. Where processes train together (an
  all-reduce run), they vote: all stop when any was asked to, and all take
  the fewest steps any of them planned, so they always run the same steps
  (0 when one has reached its --max_steps)."""
  wanted = stopping.requested() is not None
  if graph.agreement is None:
    return wanted, count
  vote = fetch(graph.agreement.anyone,
             {graph.agreement.wants: [float(wanted), -float(count)]})
  return vote[0] > 0, int(-vote[1])


def join_threads(coord, threads, cluster, unwinding=False):
  """Stops the queue runners' threads. A synchronous cluster's releaser
  waits on the parameter servers for gradients that no longer come; closing
  the session ends that wait, so it gets a short grace. An input thread's
  failure, which join raises, is one line; while another error is on its
  way out, that one is reported instead (the input watch named the file)."""
  coord.request_stop()
  try:
    coord.join(threads, stop_grace_period_secs=2 if cluster else 10,
               ignore_live_threads=True)
  except Exception as e:   # pylint: disable=broad-except
    if unwinding:
      return
    raise records.DataError('expected the input threads to read the '
                            'records, found them stopped: %s' %
                            errors.reason(e))


class StepLog(object):
  """Logs step, loss and examples/sec every --log_frequency steps, writes
  the same examples/sec to the summaries, and keeps a live line on a
  terminal. The loss logged for a step is the loss of that step's batch;
  the speed is averaged since the last logged run."""

  def __init__(self, writer, step, examples_per_step, log_frequency,
               max_steps, quiet=False):
    self._writer = writer
    self._quiet = quiet   # another process of the run logs the progress
    self._examples_per_step = examples_per_step
    self._log_frequency = log_frequency
    self._max_steps = max_steps
    self._rate = progress.Rate()
    self._live = progress.live_line()
    self._last_step, self._last_time = step, time.time()
    self._loss = float('nan')   # this trainer's latest

  def ran(self, first, losses, last=None):
    """After a run of len(losses) steps from step `first`, which ends at
    global step `last` (beyond first + len(losses) when other workers of a
    cluster trained meanwhile; a worker's run can even find the cluster
    already at its end, and train none)."""
    last = first + len(losses) if last is None else last
    if len(losses):
      self._loss = losses[-1]
    if self._quiet:
      return
    self._rate.tick(max(last - first, 1))
    if self._live.enabled and self._rate.seconds_per_step:
      self._live.show('step %d/%d  loss %.2f  %.1f examples/sec  ETA %s' % (
          last, self._max_steps, self._loss,
          self._examples_per_step / self._rate.seconds_per_step,
          progress.duration((self._max_steps - last) *
                            self._rate.seconds_per_step)))
    logged = [s for s in range(first + 1, last + 1)
              if s % self._log_frequency == 0]
    if not logged:
      return
    now = time.time()
    sec_per_batch = (now - self._last_time) / (last - self._last_step)
    examples_per_sec = self._examples_per_step / sec_per_batch
    for s in logged:
      # This trainer's loss of that step, or its latest before it.
      loss = (losses[min(s - first, len(losses)) - 1] if len(losses)
              else self._loss)
      log.info('step %d, loss = %.2f (%.1f examples/sec; %.3f sec/batch)',
               s, loss, examples_per_sec, sec_per_batch)
      if self._writer is None:   # a cluster's worker other than the chief
        continue
      self._writer.add_summary(tf.Summary(value=[
          tf.Summary.Value(tag='examples_per_sec',
                           simple_value=examples_per_sec),
          tf.Summary.Value(tag='sec_per_batch', simple_value=sec_per_batch),
      ]), s)
    self._last_step, self._last_time = last, now
