"""The training loop all the trainers share: resume, train, checkpoint.

    cfg, placement = settings.for_trainer(flag_values, devices)  # every auto
    graph = train_graph.build_graph(cfg, placement)
    train(graph, cfg, machine.session_config(cfg))   # the loop (_Run.train)

`train` resumes from the newest readable checkpoint in --train_dir (holding
the dir's lock for the run), runs the graph's steps to --max_steps (several
per session run where the graph has its in-graph loop: steps.py), logs
progress, writes summaries and checkpoints (checkpoints.py), and stops
cleanly on a signal, on an input that can no longer feed it
(input_watch.py) or on a loss that is not finite. Where processes train
together (an all-reduce run of cifar10_multi_gpu_train, a cluster:
cluster/worker.py), the chief does all that and the others follow its
steps, writing nothing.
"""
import collections
import logging
import signal
import sys

import numpy as np
import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10
from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import errors
from cifar10_tutorial.core import gpus
from cifar10_tutorial.core import records
from cifar10_tutorial.core import stopping
from cifar10_tutorial.core import summaries
from cifar10_tutorial.engine import checkpoints
from cifar10_tutorial.engine import input_watch
from cifar10_tutorial.engine import machine
from cifar10_tutorial.engine import rundir
from cifar10_tutorial.engine import steps

log = logging.getLogger('cifar10_tutorial')


class LossDivergedError(RuntimeError):
  """The loss became NaN or infinite; the step was not checkpointed."""


# How this trainer takes part in a run of several processes (cluster/), or
# None alone: its session's target, whether it is the chief (the one that
# writes checkpoints and summaries), the seconds after which a peer that
# does not answer is an error, and its name in messages ('worker 1').
Cluster = collections.namedtuple('Cluster', ['target', 'is_chief',
                                             'timeout_secs', 'name'])


def train(graph, cfg, config, cluster=None):
  """The training loop: resumes, trains to cfg.max_steps, checkpoints.

  `cfg` is the run's Settings (settings.py). Holds --train_dir for the run
  (rundir.locked), resumes from its newest readable checkpoint, and refuses
  settings that would change the run's math unless
  --allow_changed_settings. Checkpoints go every --save_checkpoint_secs or
  --save_checkpoint_steps (the trainer's default is in the settings), at
  the start and at the last step. Summaries go every 100th step, for the
  batch that step trained on. Returns the final step; raises
  stopping.Interrupted after a clean stop on a signal.

  With a `cluster` (a Cluster) of an all-reduce run, the chief does all
  that, and the others train the same steps from the variables the chief
  hands over, writing nothing.
  """
  training = _Training(graph, cfg, config, cluster)
  if cluster and not cluster.is_chief:
    return training.follow()
  return training.lead()


class _Training(object):
  """One training run: what every part of it needs, held in one place."""

  def __init__(self, graph, cfg, config, cluster):
    self.graph, self.cfg, self.config = graph, cfg, config
    self.cluster = cluster
    self.start = None   # config.json's new content, once a run has trained
    self.lock = None    # the train dir's (rundir.Lock), kept once written

  def lead(self):
    """The chief, or a trainer alone: holds the train dir, resumes or
    starts the run, and says how it ended. Every check that can refuse the
    start comes before anything is written there."""
    cfg, graph = self.cfg, self.graph
    rundir.check_train_dir(cfg.train_dir)
    with rundir.locked(cfg.train_dir) as lock:
      path, step = rundir.resume_point(cfg.train_dir)
      if path:
        cifar10.check_classes(path, graph.settings.get(
            'classes', defaults.CLASS_NAMES), cfg.data_dir)
      if step < cfg.max_steps:
        self.start = rundir.check_start(cfg.train_dir, dict(
            vars(cfg), examples_per_step=graph.examples_per_step,
            **graph.settings), step,
                                        getattr(cfg, 'allow_changed_settings',
                                                False))
      if path:   # an existing run: its folder and lock file stay
        lock.keep()
      rundir.remove_leftovers(cfg.train_dir)
      rundir.check_list(cfg.train_dir)
      if path:
        rundir.relist(cfg.train_dir, step)
      self.lock = lock   # kept once the run writes its first file
      if step >= cfg.max_steps:
        log.info('%s is already at step %d (%s): nothing to do', path, step,
                 errors.option('max_steps', cfg.max_steps))
        if not self.cluster:
          return step
        # The others wait for this process's variables: hand them over.
        return self._loop(path, writes=False)[0]
      if stopping.requested():
        raise stopping.Interrupted(stopping.requested(),
                                   'stopped before training started')
      if path:
        log.info('resuming from %s (step %d)', path, step)
      else:
        log.info('starting a new run in %s', cfg.train_dir)
      return self._lead_from(path)

  def _lead_from(self, path):
    cfg = self.cfg
    try:
      step, peer_stopped = self._loop(path)
    except LossDivergedError as e:
      path, step = rundir.latest(cfg.train_dir)
      raise LossDivergedError('%s; nothing was saved after the last '
                              'checkpoint: the next run resumes from %s '
                              '(step %d)' % (e, path, step))
    except tf.errors.ResourceExhaustedError as e:
      problem = rundir.disk_problem(cfg.train_dir, e)
      if problem:
        raise problem
      raise machine.OutOfMemoryError(
          '--batch_size %d: expected a training step to fit in the memory '
          'of %s, found it does not (%s); try a smaller --batch_size' % (
              cfg.batch_size, 'the GPU' if gpus.count() else 'this '
              'machine', errors.reason(e)))
    if stopping.requested():
      raise stopping.Interrupted(
          stopping.requested(), 'interrupted at step %d; checkpoint saved in '
          '%s: run again to resume' % (step, cfg.train_dir))
    if peer_stopped:
      raise stopping.Interrupted(
          signal.SIGTERM, 'stopped at step %d with the other processes (one '
          'was asked to stop); checkpoint saved in %s: run again to resume' %
          (step, cfg.train_dir))
    log.info('stopped at step %d; checkpoint in %s', step, cfg.train_dir)
    return step

  def follow(self):
    """A process of an all-reduce run other than the chief: the chief's
    steps, from the variables it hands over at the start; it writes nothing
    (the chief keeps the checkpoints and summaries)."""
    name = self.cluster.name
    step, peer_stopped = self._loop(None, writes=False)
    if stopping.requested() or peer_stopped:
      raise stopping.Interrupted(stopping.requested() or signal.SIGTERM,
                                 '%s: %s at step %d (the chief keeps the '
                                 'checkpoints)' % (
                                     name, 'interrupted' if
                                     stopping.requested() else
                                     'stopped with the others', step))
    log.info('%s: stopped at step %d', name, step)
    return step

  def _loop(self, path, writes=True):
    """Restores or initializes, runs the steps; returns the step it stopped
    at and whether it stopped because another process of an all-reduce run
    was asked to. Not `writes`: such a process other than the chief, which
    writes nothing."""
    run = _Run(self, path, writes)   # its ops, before the graph is final
    tf.get_default_graph().finalize()
    with steps.session(self.cluster, self.config) as (sess, fetch):
      run.start(sess, fetch)          # restore or initialize, input threads
      try:
        step = run.begin()            # its files, the first checkpoint
        step, stop = run.train(step)  # runs of steps to --max_steps or a stop
        run.finish(step)              # the last checkpoint
      finally:
        run.close(unwinding=sys.exc_info()[0] is not None)
    return step, stop and not stopping.requested()


class _Run(object):
  """One session of a training run, in the order it happens: the ops it
  needs (made here, before the graph is final), then start, begin, train,
  finish and close."""

  def __init__(self, training, path, writes):
    graph, cluster = training.graph, training.cluster
    self.training, self.graph, self.cfg = training, graph, training.cfg
    self.cluster, self.path, self.writes = cluster, path, writes
    self.saver = self.snapshot = self.writer = self.graph_text = None
    self.saves = self.watch = self.shown = None
    self.threads = []
    # Relative paths in the `checkpoint` list: a copied or moved train dir
    # keeps working, and rotation never reaches another folder. In a
    # cluster the chief saves every variable itself (not sharded, which
    # would make each parameter server write its part on its own disk).
    self.saving = dict(sharded=not cluster, max_to_keep=rundir.KEEP,
                       save_relative_paths=True)
    if writes or path:
      self.saver = tf.train.Saver(graph.saved, **self.saving)
    if writes:
      # Checkpoints are written from a copy, while training goes on.
      self.snapshot = checkpoints.Snapshot(
          graph.saved or tf.global_variables(), **self.saving)
    self.init = tf.global_variables_initializer()
    self.local_init = tf.local_variables_initializer()
    self.summary_fetches = [graph.summary_step.train_op,
                            graph.summary_step.total_loss]
    if writes:
      self.summary_fetches.append(
          summaries.fetches(graph.summary_step.summaries))
    self.coord = tf.train.Coordinator()

  def start(self, sess, fetch):
    """Restores the checkpoint at `path`, or initializes; starts the input
    threads (and a synchronous cluster's releaser) and the input watch."""
    graph, cfg, path = self.graph, self.cfg, self.path
    self.sess, self.fetch = sess, fetch
    if path:
      self.saver.restore(sess, path)
      if self.snapshot:
        # What the rotation may remove: the newest kept up to this one.
        self.snapshot.saver.recover_last_checkpoints(
            [p for s, p in rundir.saved(cfg.train_dir)
             if s <= int(path.rsplit('-', 1)[1])][-rundir.KEEP:])
    else:
      fetch(self.init)
    fetch(self.local_init)
    if graph.sync:
      fetch(graph.sync.worker_init)
      fetch(graph.sync.chief_init)
    self.threads = tf.train.start_queue_runners(sess, self.coord)
    if graph.sync:   # the chief applies each synchronous step
      self.threads += graph.sync.releaser.create_threads(sess, self.coord,
                                                         start=True)
    if graph.inputs:
      self.watch = input_watch.InputWatch(graph.inputs, self.coord, sess)
    # From here a stop request finishes a step and checkpoints; before, it
    # stops at once, and a new run leaves nothing.
    stopping.work_underway()

  def begin(self):
    """The run's first files and checkpoint (the chief's); the global step
    it starts from, after the first run (all-reduce: the chief's
    variables, to all)."""
    graph, cfg, fetch = self.graph, self.cfg, self.fetch
    if self.writes:
      if self.training.lock:
        self.training.lock.keep()   # its first files: the folder is the run's
      self.writer, size, self.graph_text = checkpoints.start_files(graph, cfg)
    fetch(graph.prime)
    step = fetch(graph.global_step)
    if self.writes:
      self.writer.add_session_log(tf.SessionLog(status=tf.SessionLog.START),
                                  step)
      # Its runs held to a cluster's deadline, as the steps are.
      self.saves = checkpoints.Saves(
          self.saver, steps.FetchSession(self.sess, fetch), cfg.train_dir,
          cfg.save_checkpoint_secs, cfg.save_checkpoint_steps, size,
          self.snapshot)
      self.saves.save(step)
    elif step < cfg.max_steps:
      log.info('%s: training from global step %d', self.cluster.name, step)
    self.shown = steps.StepLog(self.writer, step, graph.examples_per_step,
                                cfg.log_frequency, cfg.max_steps,
                                quiet=not self.writes)
    return step

  def train(self, step):
    """Runs steps from `step` until --max_steps, a stop request (of any of
    the processes of an all-reduce run) or an input that can no longer
    feed them; summaries at the first step and every 100th, a checkpoint
    when due. Returns (the step reached, whether a vote stopped it)."""
    cfg, every = self.cfg, defaults.SAVE_SUMMARIES_STEPS
    summarized, stop = None, False   # the step of the last summary
    while not (self.watch and self.watch.error):
      # Summaries at the first step, then each time a multiple of 100 is
      # reached (or passed, when other workers of a cluster trained).
      summary = summarized is None or step // every > summarized // every
      planned = (1 if summary else
                 steps.next_run(step, cfg, cfg.save_checkpoint_steps))
      stop, count = steps.agree(self.graph, self.fetch,
                                max(0, min(planned, cfg.max_steps - step)))
      if stop or count <= 0:
        break
      first = step
      losses = self._run(step, count, summary)
      if losses is None:   # the input watch closed the queue under the run
        return self.fetch(self.graph.global_step), stop
      if summary:
        summarized = first
      # A parameter-server cluster's chief: others advance it too.
      step = (self.fetch(self.graph.global_step)
              if self.cluster and self.graph.agreement is None
              else first + len(losses))
      self.shown.ran(first, losses, step)
      self._after_run(step)
    return step, stop

  def _run(self, first, count, summary):
    """One session run from step `first`: the summary step, or `count`
    steps; their losses (checked), or None where the input watch closed
    the queue under it."""
    try:
      if not summary:
        losses = steps.run(self.graph, self.fetch, count, first)
        check_losses(first, losses)
        return losses
      values = self.fetch(self.summary_fetches)
      losses = np.array([values[1]])
      check_losses(first, losses)
      if self.writes:
        _write_summary(self.writer, self.graph, values[2], first)
      return losses
    except tf.errors.OutOfRangeError:
      if not (self.watch and self.watch.check()):
        raise
      return None

  def _after_run(self, step):
    """The settings recorded once a run has trained; a checkpoint when
    due (and what became of the one before)."""
    if self.training.start and self.writes:
      rundir.record_start(self.cfg.train_dir, self.training.start)
      self.training.start = None
    if self.saves:
      self.saves.check()
      if self.saves.due(step):
        self.saves.save(step)

  def finish(self, step):
    """The last checkpoint, written; the input's failure, if that is why
    the run stopped."""
    if self.saves:
      self.saves.save(step)
      self.saves.wait()
    if self.watch and self.watch.error:
      raise records.DataError('%s; stopped at step %d%s' % (
          self.watch.error, step, ', checkpoint saved' if self.saves else ''))

  def close(self, unwinding):
    """Stops the input watch and threads, ends a save still being written
    and closes the event file; while an error is on its way out, theirs
    are second to it."""
    if self.watch:
      self.watch.stop()
    if self.saves and unwinding:
      try:
        self.saves.wait()
      except Exception as e:   # pylint: disable=broad-except
        log.debug('a checkpoint being written: %s', e)
    try:
      if self.writer:
        self.graph_text.join()
        self.writer.close()
    except (RuntimeError, OSError) as e:
      # A full disk fails the last flush too; the error that got here
      # first is the one to report.
      if not unwinding:
        raise rundir.disk_problem(self.cfg.train_dir, e) or e
    finally:
      steps.join_threads(self.coord, self.threads, self.cluster, unwinding)


def check_losses(first, losses):
  bad = np.flatnonzero(~np.isfinite(losses))
  if bad.size:
    raise LossDivergedError('the loss became %s at step %d' % (
        losses[bad[0]], first + bad[0] + 1))


def _write_summary(writer, graph, values, step):
  try:
    summary = summaries.to_summary(graph.summary_step.summaries, values)
  except summaries.NonFiniteError as e:
    raise LossDivergedError('%s at step %d' % (e, step + 1))
  writer.add_summary(summary, step)
