"""The training loop all the trainers share: resume, train, checkpoint.

    cfg, placement = settings.for_trainer(flag_values, devices)  # every auto
    build_and_train(cfg, placement)   # the graph, then train (below)
    train(graph, cfg, session_config, cluster=None)

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
from cifar10_tutorial.engine import train_graph

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


def build_and_train(cfg, placement, cpu_devices=1):
  """Builds the training graph of `placement` (settings.for_trainer's) in
  a graph of its own and trains it; `cpu_devices` the session's CPU
  devices (virtual ones for towers on the CPU). Returns the final step."""
  with tf.Graph().as_default():
    graph = train_graph.build_graph(cfg, placement)
    return train(graph, cfg, machine.session_config(cfg, cpu_devices))


class _Training(object):
  """One training run: what every part of it needs, held in one place."""

  def __init__(self, graph, cfg, config, cluster):
    self.graph, self.cfg, self.config = graph, cfg, config
    self.cluster = cluster
    self.checkpoint_secs = cfg.save_checkpoint_secs
    self.checkpoint_steps = cfg.save_checkpoint_steps
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
        log.info('%s is already at step %d (--max_steps %d): nothing to do',
                 path, step, cfg.max_steps)
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
    graph, cfg, cluster = self.graph, self.cfg, self.cluster
    saver = writer = snapshot = graph_text = None
    # Relative paths in the `checkpoint` list: a copied or moved train dir
    # keeps working, and rotation never reaches another folder. In a
    # cluster the chief saves every variable itself (not sharded, which
    # would make each parameter server write its part on its own disk).
    saving = dict(sharded=not cluster, max_to_keep=rundir.KEEP,
                  save_relative_paths=True)
    if writes or path:
      saver = tf.train.Saver(graph.saved, **saving)
    if writes:
      # Checkpoints are written from a copy, while training goes on.
      snapshot = checkpoints.Snapshot(graph.saved or tf.global_variables(),
                                      **saving)
    init = tf.global_variables_initializer()
    local_init = tf.local_variables_initializer()
    summary_fetches = [graph.summary_step.train_op,
                       graph.summary_step.total_loss]
    if writes:
      summary_fetches.append(summaries.fetches(graph.summary_step.summaries))
    tf.get_default_graph().finalize()
    coord = tf.train.Coordinator()
    with steps.session(cluster, self.config) as (sess, fetch):
      if path:
        saver.restore(sess, path)
        if snapshot:
          # What the rotation may remove: the newest kept up to this one.
          snapshot.saver.recover_last_checkpoints(
              [p for s, p in rundir.checkpoints(cfg.train_dir)
               if s <= int(path.rsplit('-', 1)[1])][-rundir.KEEP:])
      else:
        fetch(init)
      fetch(local_init)
      if graph.sync:
        fetch(graph.sync.worker_init)
        fetch(graph.sync.chief_init)
      threads = tf.train.start_queue_runners(sess, coord)
      if graph.sync:   # the chief applies each synchronous step
        threads += graph.sync.releaser.create_threads(sess, coord,
                                                      start=True)
      watch = (input_watch.InputWatch(graph.inputs, coord, sess)
               if graph.inputs else None)
      saves = None
      # From here a stop request finishes a step and checkpoints; before,
      # it stops at once, and a new run leaves nothing.
      stopping.work_underway()
      try:
        if writes:
          if self.lock:
            self.lock.keep()   # the run's first files: the folder is the run's
          writer, checkpoint_bytes, graph_text = checkpoints.start_files(
              graph, cfg)
        fetch(graph.prime)   # all-reduce: the chief's variables, to all
        step = fetch(graph.global_step)
        if writes:
          writer.add_session_log(tf.SessionLog(status=tf.SessionLog.START),
                                 step)
          # Its runs held to a cluster's deadline, as the steps are.
          saves = checkpoints.Checkpoints(
              saver, steps.FetchSession(sess, fetch), cfg.train_dir,
              self.checkpoint_secs, self.checkpoint_steps, checkpoint_bytes,
              snapshot)
          saves.save(step)
        elif step < cfg.max_steps:
          log.info('%s: training from global step %d', cluster.name, step)
        shown = steps.Progress(writer, step, graph.examples_per_step,
                         cfg.log_frequency, cfg.max_steps, quiet=not writes)
        summarized = None   # the step of the last summary
        every = defaults.SAVE_SUMMARIES_STEPS
        stop = False
        while True:
          first = step
          # Summaries at the first step, then each time a multiple of 100 is
          # reached (or passed, when other workers of a cluster trained).
          summary = (summarized is None or
                     step // every > summarized // every)
          planned = (1 if summary else
                     steps.next_run(step, cfg, self.checkpoint_steps))
          if watch and watch.error:
            break
          stop, count = steps.agree(graph, fetch, max(0, min(
              planned, cfg.max_steps - step)))
          if stop or count <= 0:
            break
          try:
            if summary:
              values = fetch(summary_fetches)
              losses = np.array([values[1]])
              check_losses(first, losses)
              if writes:
                _write_summary(writer, graph, values[2], first)
              summarized = first
            else:
              losses = steps.run(graph, fetch, count, step)
              check_losses(first, losses)
          except tf.errors.OutOfRangeError:
            if not (watch and watch.check()):
              raise
            # The queue was closed under the run: the steps it did count.
            step = fetch(graph.global_step)
            break
          # A parameter-server cluster's chief: others advance it too.
          step = (fetch(graph.global_step)
                  if cluster and graph.agreement is None
                  else first + len(losses))
          shown.ran(first, losses, step)
          if self.start and writes:
            rundir.record_start(cfg.train_dir, self.start)
            self.start = None
          if saves:
            saves.check()
            if saves.due(step):
              saves.save(step)
        if saves:
          saves.save(step)
          saves.wait()
        if watch and watch.error:
          raise records.DataError('%s; stopped at step %d%s' % (
              watch.error, step, ', checkpoint saved' if saves else ''))
      finally:
        if watch:
          watch.stop()
        unwinding = sys.exc_info()[0] is not None
        if saves and unwinding:
          # A save still being written ends before the session does; what
          # it says is second to the error that got here first.
          try:
            saves.wait()
          except Exception as e:
            log.debug('a checkpoint being written: %s', e)
        try:
          if writer:
            graph_text.join()
            writer.close()
        except (RuntimeError, OSError) as e:
          # A full disk fails the last flush too; the error that got here
          # first is the one to report.
          if not unwinding:
            raise rundir.disk_problem(cfg.train_dir, e) or e
        finally:
          steps.join_threads(coord, threads, cluster, unwinding)
    return step, stop and not stopping.requested()


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
