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

log = logging.getLogger('cifar10_tutorial')


class LossDivergedError(RuntimeError):
  """The loss became NaN or infinite; the step was not checkpointed."""


class _ProgressHook(tf.train.SessionRunHook):
  """Checks every step's loss, logs progress, records examples/sec.

  It runs before the checkpoint hook (as a chief-only hook), so a step whose
  loss is not finite raises before it can be saved: the last checkpoint on
  disk stays the last good one. The loss it checks and logs is the one of the
  batch the step trained on; the examples/sec it logs is also written to the
  summaries, so console and TensorBoard show the same figure.
  """

  def __init__(self, loss, global_step, examples_per_step, log_frequency,
               summary_dir):
    self._loss = loss
    self._global_step = global_step
    self._examples_per_step = examples_per_step
    self._log_frequency = log_frequency
    self._summary_dir = summary_dir
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


def run(train_op, total_loss, global_step, summaries, examples_per_step, cfg,
        save_checkpoint_secs=None, save_checkpoint_steps=None, config=None):
  """The training loop: resumes, trains to cfg.max_steps, checkpoints.

  Both trainers build their graph and call this; `examples_per_step` is what
  one step trains on (batch size x towers). Returns the final step.
  """
  path, step = checkpoint_step(cfg.train_dir)
  if step >= cfg.max_steps:
    log.info('%s is already at step %d (--max_steps %d): nothing to do',
             path, step, cfg.max_steps)
    return step
  if path:
    log.info('resuming from %s (step %d)', path, step)
  else:
    log.info('starting a new run in %s', cfg.train_dir)
  flags.write_config(cfg.train_dir, 'config.json', dict(vars(cfg),
                                                        start_step=step))
  progress = _ProgressHook(total_loss, global_step, examples_per_step,
                           cfg.log_frequency, cfg.train_dir)
  scaffold = tf.train.Scaffold(summary_op=tf.summary.merge(summaries))
  saver_hook = tf.train.CheckpointSaverHook(
      cfg.train_dir, save_secs=save_checkpoint_secs,
      save_steps=save_checkpoint_steps, scaffold=scaffold,
      listeners=[_SaveLogger()])
  try:
    _train_loop(train_op, scaffold, progress, saver_hook, config or
                session_config(cfg), cfg)
  except LossDivergedError as e:
    path, step = checkpoint_step(cfg.train_dir)
    raise LossDivergedError('%s; nothing was saved after the last checkpoint: '
                            'the next run resumes from %s (step %d)' %
                            (e, path, step))
  log.info('stopped at step %d; checkpoint in %s', progress.step,
           cfg.train_dir)
  return progress.step


def _train_loop(train_op, scaffold, progress, saver_hook, config, cfg):
  # Hook order matters: the progress hook checks the loss before the saver
  # can checkpoint a step whose loss was not finite.
  with tf.train.MonitoredTrainingSession(
      checkpoint_dir=cfg.train_dir, scaffold=scaffold,
      chief_only_hooks=[progress, saver_hook,
                        tf.train.StopAtStepHook(last_step=cfg.max_steps)],
      save_checkpoint_secs=None, save_checkpoint_steps=None,
      save_summaries_steps=defaults.SAVE_SUMMARIES_STEPS,
      log_step_count_steps=None, config=config) as sess:
    while not sess.should_stop():
      sess.run(train_op)


TrainGraph = collections.namedtuple(
    'TrainGraph', ['train_op', 'total_loss', 'global_step', 'summaries',
                   'examples_per_step'])


def build_graph(cfg):
  """The single-device training graph, in the current default graph."""
  global_step = tf.train.get_or_create_global_step()
  queue = cifar10_input.train_queue(cfg.data_dir, cfg.batch_size,
                                    cfg.input_threads)
  images, labels = queue.dequeue(cfg.batch_size)
  model = cifar10.inference(images)
  total_loss, losses = cifar10.loss(model, labels)
  lr = cifar10.learning_rate(global_step, cfg.batch_size, queue.num_records)
  loss_update, summaries = cifar10.loss_averages(losses + [total_loss])
  grads = cifar10.gradient_descent(lr).compute_gradients(total_loss,
                                                         model.variables)
  train_op, more = cifar10.apply_and_average(grads, global_step, lr,
                                             [loss_update])
  summaries += more + cifar10.activation_summaries(model, images)
  summaries.append(queue.fill_summary())
  return TrainGraph(train_op, total_loss, global_step, summaries,
                    cfg.batch_size)


def train(cfg):
  """Builds the single-device graph and trains it. Returns the final step."""
  with tf.Graph().as_default():
    g = build_graph(cfg)
    return run(g.train_op, g.total_loss, g.global_step, g.summaries,
               g.examples_per_step, cfg,
               save_checkpoint_secs=defaults.SAVE_CHECKPOINT_SECS)


def parse_args(argv):
  p = flags.parser(__doc__)
  flags.add_training_flags(p)
  return p.parse_args(argv)


def main(argv=None):
  cfg = parse_args(sys.argv[1:] if argv is None else argv)
  flags.setup_logging(cfg)
  try:
    train(cfg)
  except (cifar10_input.DataError, LossDivergedError) as e:
    log.error('error: %s', e)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
