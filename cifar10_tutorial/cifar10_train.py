"""Trains the tutorial's network on one device.

    python -m cifar10_tutorial.cifar10_train --train_dir train_dirs/cifar10_train

Reads the training batches through the queue pipeline, trains with plain SGD,
logs step, loss, examples/sec and sec/batch every --log_frequency steps,
writes summaries every 100 steps and a checkpoint every 10 minutes and at the
last step. A run in --train_dir is resumed from its latest checkpoint, never
deleted. `run()` is the training loop the multi-GPU trainer shares.
"""
if __name__ == '__main__':
  # Run as a program: hide TensorFlow's known C++ noise, before importing it.
  from cifar10_tutorial import quiet
  quiet.install()

import collections
import logging
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10
from cifar10_tutorial import cifar10_input
from cifar10_tutorial import defaults
from cifar10_tutorial import flags
from cifar10_tutorial import progress
from cifar10_tutorial import stopping

log = logging.getLogger('cifar10_tutorial')


# What a trainer builds and the training loop runs: examples_per_step is
# batch size x towers.
TrainGraph = collections.namedtuple(
    'TrainGraph', ['train_op', 'total_loss', 'global_step', 'summaries',
                   'examples_per_step'])


class LossDivergedError(RuntimeError):
  """The loss became NaN or infinite; the step was not checkpointed."""


class _ProgressHook(tf.train.SessionRunHook):
  """Checks every step's loss, logs progress, records examples/sec.

  It runs before the checkpoint hook (as a chief-only hook), so a step whose
  loss is not finite raises before it can be saved: the last checkpoint on
  disk stays the last good one. The loss it checks and logs is the one of the
  batch the step trained on; the examples/sec it logs is also written to the
  summaries, so console and TensorBoard show the same figure. On a terminal
  it also keeps a live line with the step, loss, speed and time left.
  """

  def __init__(self, loss, global_step, examples_per_step, log_frequency,
               summary_dir, max_steps):
    self._loss = loss
    self._global_step = global_step
    self._examples_per_step = examples_per_step
    self._log_frequency = log_frequency
    self._summary_dir = summary_dir
    self._max_steps = max_steps
    self._rate = progress.Rate()
    self._live = progress.live_line()
    self.step = None

  def begin(self):
    self._writer = tf.summary.FileWriterCache.get(self._summary_dir)

  def after_create_session(self, session, coord):
    self.step = session.run(self._global_step)
    self._last_step, self._last_time = self.step, time.time()

  def before_run(self, run_context):
    return tf.train.SessionRunArgs(self._loss)

  def after_run(self, run_context, run_values):
    self.step += 1
    loss = run_values.results
    if not np.isfinite(loss):
      raise LossDivergedError('the loss became %s at step %d' % (loss,
                                                                 self.step))
    if stopping.requested():
      run_context.request_stop()   # the saver's end() checkpoints this step
    self._rate.tick()
    if self._live.enabled and self._rate.seconds_per_step:
      self._live.show('step %d/%d  loss %.2f  %.1f examples/sec  ETA %s' % (
          self.step, self._max_steps, loss,
          self._examples_per_step / self._rate.seconds_per_step,
          progress.duration((self._max_steps - self.step) *
                            self._rate.seconds_per_step)))
    if self.step % self._log_frequency == 0:
      now = time.time()
      steps = self.step - self._last_step
      sec_per_batch = (now - self._last_time) / steps
      examples_per_sec = self._examples_per_step / sec_per_batch
      log.info('step %d, loss = %.2f (%.1f examples/sec; %.3f sec/batch)',
               self.step, loss, examples_per_sec, sec_per_batch)
      self._writer.add_summary(tf.Summary(value=[
          tf.Summary.Value(tag='examples_per_sec',
                           simple_value=examples_per_sec),
          tf.Summary.Value(tag='sec_per_batch', simple_value=sec_per_batch),
      ]), self.step)
      self._last_step, self._last_time = self.step, now


class _SaveLogger(tf.train.CheckpointSaverListener):
  """One line per checkpoint, so the user knows where a restart resumes."""

  def after_save(self, session, global_step_value):
    log.info('saved checkpoint at step %d', global_step_value)


def checkpoint_step(train_dir):
  """(path, global step) of the latest checkpoint in train_dir, or (None, 0)."""
  path = tf.train.latest_checkpoint(train_dir)
  if not path:
    return None, 0
  return path, int(tf.train.load_variable(path, 'global_step'))


def session_config(cfg, **kwargs):
  """Soft placement (ops without a GPU kernel fall back to the CPU)."""
  return tf.ConfigProto(allow_soft_placement=True,
                        log_device_placement=cfg.log_device_placement,
                        **kwargs)


def run(graph, cfg, config=None, checkpoint_secs=None, checkpoint_steps=None):
  """The training loop: resumes, trains to cfg.max_steps, checkpoints.

  Both trainers build a TrainGraph and call this. Checkpoints go every
  --save_checkpoint_secs or --save_checkpoint_steps if given, else every
  `checkpoint_secs` or `checkpoint_steps` (the trainer's default), and at
  the last step. Returns the final step; raises stopping.Interrupted after
  a clean stop on a signal.
  """
  path, step = checkpoint_step(cfg.train_dir)
  if step >= cfg.max_steps:
    log.info('%s is already at step %d (--max_steps %d): nothing to do',
             path, step, cfg.max_steps)
    return step
  if stopping.requested():
    raise stopping.Interrupted(stopping.requested(),
                               'stopped before training started')
  if path:
    log.info('resuming from %s (step %d)', path, step)
  else:
    log.info('starting a new run in %s', cfg.train_dir)
  flags.write_config(cfg.train_dir, 'config.json', dict(vars(cfg),
                                                        start_step=step))
  if cfg.save_checkpoint_secs or cfg.save_checkpoint_steps:
    checkpoint_secs = cfg.save_checkpoint_secs
    checkpoint_steps = cfg.save_checkpoint_steps
  hook = _ProgressHook(graph.total_loss, graph.global_step,
                       graph.examples_per_step, cfg.log_frequency,
                       cfg.train_dir, cfg.max_steps)
  scaffold = tf.train.Scaffold(summary_op=tf.summary.merge(graph.summaries))
  saver_hook = tf.train.CheckpointSaverHook(
      cfg.train_dir, save_secs=checkpoint_secs, save_steps=checkpoint_steps,
      scaffold=scaffold, listeners=[_SaveLogger()])
  try:
    _train_loop(graph.train_op, scaffold, hook, saver_hook, config or
                session_config(cfg), cfg)
  except LossDivergedError as e:
    path, step = checkpoint_step(cfg.train_dir)
    raise LossDivergedError('%s; nothing was saved after the last checkpoint: '
                            'the next run resumes from %s (step %d)' %
                            (e, path, step))
  if stopping.requested():
    raise stopping.Interrupted(
        stopping.requested(), 'interrupted at step %d; checkpoint saved in %s: '
        'run again to resume' % (hook.step, cfg.train_dir))
  log.info('stopped at step %d; checkpoint in %s', hook.step, cfg.train_dir)
  return hook.step


def _train_loop(train_op, scaffold, progress_hook, saver_hook, config, cfg):
  # Hook order matters: the progress hook checks the loss before the saver
  # can checkpoint a step whose loss was not finite.
  with tf.train.MonitoredTrainingSession(
      checkpoint_dir=cfg.train_dir, scaffold=scaffold,
      chief_only_hooks=[progress_hook, saver_hook,
                        tf.train.StopAtStepHook(last_step=cfg.max_steps)],
      save_checkpoint_secs=None, save_checkpoint_steps=None,
      save_summaries_steps=defaults.SAVE_SUMMARIES_STEPS,
      log_step_count_steps=None, config=config) as sess:
    while not sess.should_stop():
      sess.run(train_op)


def build_graph(cfg):
  """The single-device training graph, in the current default graph."""
  global_step = tf.train.get_or_create_global_step()
  queue = cifar10_input.train_queue(cfg.data_dir, cfg.batch_size,
                                    cfg.input_threads,
                                    cfg.input_pipeline)
  images, labels = queue.dequeue(cfg.batch_size)
  model = cifar10.inference(images, lrn=cfg.lrn, precision=cfg.precision)
  total_loss, losses = cifar10.loss(model, labels)
  lr = cifar10.learning_rate(global_step, cfg.batch_size, queue.num_records)
  loss_update, summaries = cifar10.loss_averages(losses + [total_loss])
  grads = cifar10.gradient_descent(lr).compute_gradients(total_loss,
                                                         model.variables)
  train_op, more = cifar10.apply_and_average(grads, global_step, lr,
                                             [loss_update])
  summaries += more + cifar10.activation_summaries(model, images,
                                                        labels)
  summaries.append(queue.fill_summary())
  return TrainGraph(train_op, total_loss, global_step, summaries,
                    cfg.batch_size)


def train(cfg):
  """Builds the single-device graph and trains it. Returns the final step."""
  with tf.Graph().as_default():
    return run(build_graph(cfg), cfg,
               checkpoint_secs=defaults.SAVE_CHECKPOINT_SECS)


def parse_args(argv):
  p = flags.parser(__doc__)
  flags.add_training_flags(p)
  return p.parse_args(argv)


def guarded(train_fn, cfg, errors=()):
  """Runs a trainer as a program: one-line errors, clean stops on signals.

  Returns the exit status: 0, 1 for an error the user can fix, 128 + signal
  number after a stop on Ctrl-C or SIGTERM.
  """
  def first(signum):
    log.info('stopping: finishing this step and saving a checkpoint '
             '(Ctrl-C again to quit at once)')
  warning = cifar10.precision_warning(cfg.precision, cifar10.gpu_count())
  if warning:
    log.warning('warning: %s', warning)
  try:
    with stopping.on_signals(first):
      train_fn(cfg)
  except stopping.Interrupted as e:
    log.info('%s', e)
    return e.exit_code
  except (cifar10_input.DataError, LossDivergedError) + tuple(errors) as e:
    log.error('error: %s', e)
    return 1
  return 0


def main(argv=None):
  cfg = parse_args(sys.argv[1:] if argv is None else argv)
  flags.setup_logging(cfg)
  return guarded(train, cfg)


if __name__ == '__main__':
  sys.exit(main())
