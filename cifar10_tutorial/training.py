"""The training loop all the trainers share: resume, train, checkpoint.

    graph = train_graph.build_graph(cfg)
    train(graph, cfg, config, checkpoint_secs=600)
    run(cfg, devices)        # both, in a graph of its own (the trainers)

`train` resumes from the newest readable checkpoint in --train_dir (holding
the dir's lock for the run), runs the graph's steps to --max_steps (several
per session.run where the graph has its in-graph loop), logs progress,
writes summaries and checkpoints, and stops cleanly on a signal or a loss
that is not finite. In a cluster (cluster.py) the chief does all that
against the shared variables, and the other workers only train.
"""
import collections
import contextlib
import glob
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time

import numpy as np
import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10
from cifar10_tutorial import defaults
from cifar10_tutorial import machine
from cifar10_tutorial import program
from cifar10_tutorial import progress
from cifar10_tutorial import records
from cifar10_tutorial import rundir
from cifar10_tutorial import stopping
from cifar10_tutorial import summaries
from cifar10_tutorial import train_graph

log = logging.getLogger('cifar10_tutorial')


class LossDivergedError(RuntimeError):
  """The loss became NaN or infinite; the step was not checkpointed."""


class ClusterError(RuntimeError):
  """A peer of a cluster stopped answering; the message says which way."""


# How this trainer takes part in a cluster (cluster.py), or None on one
# machine: its session's target, whether it is the chief (the one that
# writes checkpoints and summaries), the seconds after which a peer that
# does not answer is an error, and its name in messages ('worker 1').
Cluster = collections.namedtuple('Cluster', ['target', 'is_chief',
                                             'timeout_secs', 'name'])


class _Progress(object):
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


class _Checkpoints(object):
  """Saves every `secs` seconds or every `steps` steps, and on demand; one
  line per checkpoint, so the user knows where a restart resumes."""

  def __init__(self, saver, sess, train_dir, secs, steps, size=0):
    self._saver, self._sess = saver, sess
    self._train_dir = train_dir
    self._prefix = os.path.join(train_dir, 'model.ckpt')
    self._secs, self.steps = secs, steps
    self._size = size   # bytes one checkpoint takes
    self._saved_step, self._saved_time = None, time.time()

  def due(self, step):
    """Whether a checkpoint is due at `step`: a multiple of `steps` was
    reached or passed (a cluster's global step can jump over one), or
    `secs` went by."""
    if self.steps:
      return step // self.steps > (self._saved_step or 0) // self.steps
    return time.time() - self._saved_time >= self._secs

  def save(self, step):
    if step == self._saved_step:
      return
    train_dir = self._train_dir
    free = shutil.disk_usage(train_dir).free
    if free < self._size:
      # Said before TensorFlow starts a save that cannot finish.
      path, last = rundir.latest(train_dir)
      raise rundir.RunDirError(
          '%s: expected room for the checkpoint of step %d (%.1f MB), found '
          '%.1f MB free; the last complete one is %s (step %d)' % (
              train_dir, step, self._size / 1e6, free / 1e6, path, last))
    try:
      self._saver.save(self._sess, self._prefix, global_step=step)
    except (tf.errors.OpError, OSError) as e:
      # What a failed save leaves: its temporary folder and the unlisted
      # files of this step. Never a listed, complete checkpoint.
      name = '%s-%d' % (self._prefix, step)
      shutil.rmtree(name + '_temp', ignore_errors=True)
      if os.path.basename(name) not in [
          os.path.basename(n) for n in rundir.listed(train_dir)[0]]:
        for leftover in glob.glob(glob.escape(name) + '.*'):
          os.remove(leftover)
      problem = rundir.disk_problem(train_dir, e)
      if problem:
        path, last = rundir.latest(train_dir)
        raise rundir.RunDirError('%s writing the checkpoint of step %d; the '
                                 'last complete one is %s (step %d)' % (
                                     problem, step, path, last))
      raise
    self._saved_step, self._saved_time = step, time.time()
    log.info('saved checkpoint at step %d', step)


def _next_run(step, cfg, checkpoint_steps):
  """How many steps the next run takes: up to --steps_per_run, ending at
  the next summary step, checkpoint step (if by steps) or --max_steps."""
  ends = [cfg.max_steps, step + cfg.steps_per_run,
          (step // defaults.SAVE_SUMMARIES_STEPS + 1) *
          defaults.SAVE_SUMMARIES_STEPS]
  if checkpoint_steps:
    ends.append((step // checkpoint_steps + 1) * checkpoint_steps)
  return min(ends) - step


class _InputWatch(object):
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
                    'them stopped: %s' % program.reason(e)
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


def _check(first, losses):
  bad = np.flatnonzero(~np.isfinite(losses))
  if bad.size:
    raise LossDivergedError('the loss became %s at step %d' % (
        losses[bad[0]], first + bad[0] + 1))


def train(graph, cfg, config, checkpoint_secs=None, checkpoint_steps=None,
          cluster=None):
  """The training loop: resumes, trains to cfg.max_steps, checkpoints.

  Holds --train_dir for the run (rundir.locked), resumes from its newest
  readable checkpoint, and refuses settings that would change the run's
  math unless --allow_changed_settings. Checkpoints go every
  --save_checkpoint_secs or --save_checkpoint_steps if given, else every
  `checkpoint_secs` or `checkpoint_steps` (the trainer's default), at the
  start and at the last step. Summaries go every 100th step, for the batch
  that step trained on. Returns the final step; raises
  stopping.Interrupted after a clean stop on a signal.

  In a `cluster` (a Cluster), the chief does all that in the shared
  variables; the other workers only train, once the chief's variables are
  ready, until the global step reaches --max_steps.
  """
  try:
    if cluster and not cluster.is_chief:
      if graph.agreement is None:   # a parameter-server cluster's worker
        return _work(graph, cfg, config, cluster)
      return _follow(graph, cfg, config, cluster)
    return _train_chief(graph, cfg, config, checkpoint_secs,
                        checkpoint_steps, cluster)
  except tf.errors.DeadlineExceededError as e:
    if not cluster:
      raise
    raise ClusterError(
        '%s: expected a step to finish within %d s, found none did (%s): a '
        'peer is dead or hung%s' % (cluster.name, cluster.timeout_secs,
                                    program.reason(e),
                                    '; a synchronous step waits for every '
                                    'worker' if graph.sync or graph.agreement
                                    else ''))
  except (tf.errors.UnavailableError, tf.errors.AbortedError,
          tf.errors.CancelledError) as e:
    if not cluster:
      raise
    raise ClusterError(
        '%s: expected the cluster to answer, found it gone (%s): %s' % (
            cluster.name, _peer_reason(e),
            'another worker stopped? Start them all again: the chief '
            'resumes from its last checkpoint' if graph.agreement else
            'a parameter server stopped? Start the cluster again: the chief '
            'resumes from its last checkpoint'))


def _peer_reason(error):
  """Which peer, and what its connection said, from a cluster's error
  (TensorFlow's message is a page of op names and logs)."""
  message = getattr(error, 'message', '')
  target = re.search(r'remote target (\S+) while calling', message)
  said = re.search(r'grpc_message:"([^"]*)"', message)
  if target and said:
    return '%s: %s' % (target.group(1), said.group(1))
  return program.reason(error)


def _train_chief(graph, cfg, config, checkpoint_secs, checkpoint_steps,
                 cluster):
  with rundir.locked(cfg.train_dir):
    rundir.remove_leftovers(cfg.train_dir)
    rundir.check_list(cfg.train_dir)
    path, step = rundir.resume_point(cfg.train_dir)
    if path:
      rundir.relist(cfg.train_dir, step)
    if step >= cfg.max_steps:
      log.info('%s is already at step %d (--max_steps %d): nothing to do',
               path, step, cfg.max_steps)
      if graph.agreement is None:
        return step
      # The others wait for this process's variables: hand them over.
      return _run(graph, cfg, config, path, None, None, cluster,
                  writes=False)[0]
    if stopping.requested():
      raise stopping.Interrupted(stopping.requested(),
                                 'stopped before training started')
    rundir.record_start(cfg.train_dir, dict(
        vars(cfg), examples_per_step=graph.examples_per_step,
        **graph.settings), step, getattr(cfg, 'allow_changed_settings', False))
    if path:
      cifar10.check_classes(path, graph.settings.get(
          'classes', defaults.CLASS_NAMES), cfg.data_dir)
      log.info('resuming from %s (step %d)', path, step)
    else:
      log.info('starting a new run in %s', cfg.train_dir)
    if cfg.save_checkpoint_secs or cfg.save_checkpoint_steps:
      checkpoint_secs = cfg.save_checkpoint_secs
      checkpoint_steps = cfg.save_checkpoint_steps
    return _train_locked(graph, cfg, config, path, checkpoint_secs,
                         checkpoint_steps, cluster)


def _train_locked(graph, cfg, config, path, checkpoint_secs,
                  checkpoint_steps, cluster):
  try:
    step, peer_stopped = _run(graph, cfg, config, path, checkpoint_secs,
                              checkpoint_steps, cluster)
  except LossDivergedError as e:
    path, step = rundir.latest(cfg.train_dir)
    raise LossDivergedError('%s; nothing was saved after the last checkpoint: '
                            'the next run resumes from %s (step %d)' %
                            (e, path, step))
  except tf.errors.ResourceExhaustedError as e:
    problem = rundir.disk_problem(cfg.train_dir, e)
    if problem:
      raise problem
    raise machine.OutOfMemoryError(
        '--batch_size %d: expected a training step to fit in the memory of '
        '%s, found it does not (%s); try a smaller --batch_size' % (
            cfg.batch_size, 'the GPU' if machine.gpu_count() else 'this '
            'machine', program.reason(e)))
  if stopping.requested():
    raise stopping.Interrupted(
        stopping.requested(), 'interrupted at step %d; checkpoint saved in %s: '
        'run again to resume' % (step, cfg.train_dir))
  if peer_stopped:
    raise stopping.Interrupted(
        signal.SIGTERM, 'stopped at step %d with the other processes (one was '
        'asked to stop); checkpoint saved in %s: run again to resume' % (
            step, cfg.train_dir))
  log.info('stopped at step %d; checkpoint in %s', step, cfg.train_dir)
  return step


@contextlib.contextmanager
def _session(cluster, config):
  """A session and its run, with a cluster's timeout (a step that waits on
  a dead peer must end as an error, not hang). Closed at the end; after a
  cluster's error the close is not waited for: it would wait on the peer
  that is gone (TensorFlow gives it 30 s, then logs an error)."""
  sess = tf.Session(cluster.target if cluster else '', config=config)
  options = None
  if cluster:
    options = tf.RunOptions(timeout_in_ms=1000 * cluster.timeout_secs)
  try:
    yield sess, lambda fetches, feed=None: sess.run(fetches, feed,
                                                    options=options)
  except Exception:
    if not cluster:
      sess.close()
      raise
    threading.Thread(target=sess.close, daemon=True).start()
    raise
  sess.close()


def _steps(graph, run, count, step):
  """One run of `count` ordinary (not summary) steps from `step`: their
  losses."""
  if graph.loop is None:   # a synchronous cluster: one step a run
    _, loss = run([graph.summary_step.train_op, graph.summary_step.total_loss])
    return np.array([loss])
  feed = {graph.steps: count}
  if graph.until is not None:   # others train too: stop where we would
    feed[graph.until] = step + count
  done, losses = run(graph.loop, feed)
  return losses[:done]


def _follow(graph, cfg, config, cluster):
  """A process of an all-reduce run other than the chief: the chief's
  steps, from the variables it hands over at the start; it writes nothing
  (the chief keeps the checkpoints and summaries)."""
  step, peer_stopped = _run(graph, cfg, config, None, None, None, cluster,
                            writes=False)
  if stopping.requested() or peer_stopped:
    raise stopping.Interrupted(stopping.requested() or signal.SIGTERM,
                               '%s: %s at step %d (the chief keeps the '
                               'checkpoints)' % (
                                   cluster.name, 'interrupted' if
                                   stopping.requested() else
                                   'stopped with the others', step))
  log.info('%s: stopped at step %d', cluster.name, step)
  return step


def _agree(graph, run, count):
  """(stop, steps): whether to stop before the next run, and how many steps
  it takes. Alone: stop when asked to. Where processes train together (an
  all-reduce run), they vote: all stop when any was asked to, and all take
  the fewest steps any of them planned, so they always run the same steps
  (0 when one has reached its --max_steps)."""
  wanted = stopping.requested() is not None
  if graph.agreement is None:
    return wanted, count
  vote = run(graph.agreement.anyone,
             {graph.agreement.wants: [float(wanted), -float(count)]})
  return vote[0] > 0, int(-vote[1])


def _run(graph, cfg, config, path, checkpoint_secs, checkpoint_steps,
         cluster=None, writes=True):
  """Restores or initializes, runs the steps; returns the step it stopped
  at and whether it stopped because another process of an all-reduce run
  was asked to. Not `writes`: such a process other than the chief, which
  writes nothing."""
  saver = writer = None
  if writes or path:
    # Relative paths in the `checkpoint` list: a copied or moved train dir
    # keeps working, and rotation never reaches another folder. In a
    # cluster the chief saves every variable itself (not sharded, which
    # would make each parameter server write its part on its own disk).
    saver = tf.train.Saver(graph.saved, sharded=not cluster,
                           max_to_keep=rundir.KEEP,
                           save_relative_paths=True)
  if writes:
    writer, checkpoint_bytes = _start_files(graph, cfg)
  init = tf.global_variables_initializer()
  local_init = tf.local_variables_initializer()
  summary_fetches = [graph.summary_step.train_op,
                     graph.summary_step.total_loss]
  if writes:
    summary_fetches.append(summaries.fetches(graph.summary_step.summaries))
  tf.get_default_graph().finalize()
  coord = tf.train.Coordinator()
  with _session(cluster, config) as (sess, run):
    if path:
      saver.restore(sess, path)
      # What the rotation may remove: the newest kept up to this one.
      saver.recover_last_checkpoints(
          [p for s, p in rundir.checkpoints(cfg.train_dir)
           if s <= int(path.rsplit('-', 1)[1])][-rundir.KEEP:])
    else:
      run(init)
    run(local_init)
    if graph.sync:
      run(graph.sync.worker_init)
      run(graph.sync.chief_init)
    threads = tf.train.start_queue_runners(sess, coord)
    if graph.sync:   # the chief applies each synchronous step
      threads += graph.sync.releaser.create_threads(sess, coord, start=True)
    watch = _InputWatch(graph.inputs, coord, sess) if graph.inputs else None
    try:
      run(graph.prime)   # an all-reduce run: the chief's variables, to all
      step = run(graph.global_step)
      checkpoints = None
      if writes:
        writer.add_session_log(tf.SessionLog(status=tf.SessionLog.START),
                               step)
        checkpoints = _Checkpoints(saver, sess, cfg.train_dir,
                                   checkpoint_secs, checkpoint_steps,
                                   checkpoint_bytes)
        checkpoints.save(step)
      else:
        log.info('%s: training from global step %d', cluster.name, step)
      shown = _Progress(writer, step, graph.examples_per_step,
                        cfg.log_frequency, cfg.max_steps, quiet=not writes)
      summarized = None   # the step of the last summary
      every = defaults.SAVE_SUMMARIES_STEPS
      stop = False
      while True:
        first = step
        # Summaries at the first step, then each time a multiple of 100 is
        # reached (or passed, when other workers of a cluster trained).
        summary = summarized is None or step // every > summarized // every
        planned = 1 if summary else _next_run(step, cfg, checkpoint_steps)
        if watch and watch.error:
          break
        stop, count = _agree(graph, run, max(0, min(
            planned, cfg.max_steps - step)))
        if stop or count <= 0:
          break
        try:
          if summary:
            values = run(summary_fetches)
            losses = np.array([values[1]])
            _check(first, losses)
            if writes:
              _write_summary(writer, graph, values[2], first)
            summarized = first
          else:
            losses = _steps(graph, run, count, step)
            _check(first, losses)
        except tf.errors.OutOfRangeError:
          if not (watch and watch.check()):
            raise
          # The queue was closed under the run: the steps it did count.
          step = run(graph.global_step)
          break
        step = (run(graph.global_step) if cluster and graph.agreement is None
                else first + len(losses))
        shown.ran(first, losses, step)
        if checkpoints and checkpoints.due(step):
          checkpoints.save(step)
      if checkpoints:
        checkpoints.save(step)
      if watch and watch.error:
        raise records.DataError('%s; stopped at step %d%s' % (
            watch.error, step, ', checkpoint saved' if checkpoints else ''))
    finally:
      if watch:
        watch.stop()
      unwinding = sys.exc_info()[0] is not None
      try:
        if writer:
          writer.close()
      except (RuntimeError, OSError) as e:
        # A full disk fails the last flush too; the error that got here
        # first is the one to report.
        if not unwinding:
          raise rundir.disk_problem(cfg.train_dir, e) or e
      finally:
        _join(coord, threads, cluster, unwinding)
  return step, stop and not stopping.requested()


def _start_files(graph, cfg):
  """Writes the graph into the train dir and opens its event file, after
  checking there is room for them and a checkpoint. Returns the summary
  writer and the bytes one checkpoint takes."""
  graph_def = tf.get_default_graph().as_graph_def()
  # A checkpoint: the saved variables, its graph (.meta), some slack.
  checkpoint_bytes = int(1.05 * sum(
      v.shape.num_elements() * v.dtype.size
      for v in graph.saved or tf.global_variables()) +
                         graph_def.ByteSize() + 1e6)
  # Before the first file: room for the graph (graph.pbtxt, the events) and
  # one checkpoint, or one line now.
  need = 3 * graph_def.ByteSize() + checkpoint_bytes
  free = shutil.disk_usage(cfg.train_dir).free
  if free < need:
    raise rundir.RunDirError(
        '%s: expected room to start a run (%.1f MB), found %.1f MB free' % (
            cfg.train_dir, need / 1e6, free / 1e6))
  try:
    tf.io.write_graph(graph_def, cfg.train_dir, 'graph.pbtxt')
  except (tf.errors.OpError, OSError) as e:
    raise rundir.disk_problem(cfg.train_dir, e) or e
  return (tf.summary.FileWriter(cfg.train_dir, tf.get_default_graph()),
          checkpoint_bytes)


def _write_summary(writer, graph, values, step):
  try:
    summary = summaries.to_summary(graph.summary_step.summaries, values)
  except summaries.NonFiniteError as e:
    raise LossDivergedError('%s at step %d' % (e, step + 1))
  writer.add_summary(summary, step)


def _join(coord, threads, cluster, unwinding=False):
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
                            program.reason(e))


def _work(graph, cfg, config, cluster):
  """A worker of a cluster other than the chief: waits for the chief's
  variables, then trains until the global step reaches --max_steps. It
  writes nothing: the chief keeps the checkpoints and summaries."""
  ready = tf.report_uninitialized_variables(tf.global_variables())
  local_init = tf.local_variables_initializer()
  tf.get_default_graph().finalize()
  coord = tf.train.Coordinator()
  with _session(cluster, config) as (sess, run):
    started = time.time()
    # Every half second, not TensorFlow's 30 s readiness poll: a worker
    # starts within a second of the chief's session.
    while len(run(ready)):
      if time.time() - started > cluster.timeout_secs:
        raise ClusterError(
            '%s: expected the chief (worker 0) to initialize the variables, '
            'found them not ready after %d s: is it running?' % (
                cluster.name, cluster.timeout_secs))
      time.sleep(0.5)
    run(local_init)
    if graph.sync:
      run(graph.sync.worker_init)
    threads = tf.train.start_queue_runners(sess, coord)
    try:
      run(graph.prime)
      step = run(graph.global_step)
      log.info('%s: training from global step %d', cluster.name, step)
      shown = _Progress(None, step, graph.examples_per_step,
                        cfg.log_frequency, cfg.max_steps)
      while step < cfg.max_steps and not stopping.requested():
        first = step
        losses = _steps(graph, run, _next_run(step, cfg, None), step)
        _check(first, losses)
        step = run(graph.global_step)
        shown.ran(first, losses, step)
    finally:
      _join(coord, threads, cluster)
  if stopping.requested():
    raise stopping.Interrupted(stopping.requested(), '%s: interrupted at '
                               'step %d (the chief keeps the checkpoints)' %
                               (cluster.name, step))
  log.info('%s: stopped at step %d', cluster.name, step)
  return step


def run(cfg, devices=None, cpu_devices=1, **checkpoint_every):
  """Builds the graph for `devices` in a graph of its own and trains it.

  `devices` are GPUs, or CPU devices (`cpu_devices` of them, virtual ones
  for towers on the CPU); the 'auto' options are decided for them.
  `checkpoint_every` is the trainer's default `checkpoint_secs` or
  `checkpoint_steps`. Returns the final step.
  """
  with tf.Graph().as_default():
    cfg, graph, config = train_graph.prepare(cfg, devices, cpu_devices)
    return train(graph, cfg, config, **checkpoint_every)
