"""The training core both trainers share: one graph for 1..N towers, the loop.

    graph = build_graph(cfg)                       # cifar10_train
    graph = build_graph(cfg, ['/gpu:0', '/gpu:1'])   # cifar10_multi_gpu_train
    final_step = train(graph, cfg, config, checkpoint_secs=600)

With no devices, the graph is the single-device trainer's: one tower, no
tower scope, TensorFlow places the ops (on the GPU if there is one). With a
list of devices, one tower per device (`tower_0` ... on `/gpu:i`), each
dequeuing its own batch; the variables live once, on the CPU, under the
tutorial's names; the towers' gradients are averaged, applied once, and the
moving averages updated. Either way the checkpoints are the same, so `make
eval` reads them and either trainer resumes the other's run.

`train` resumes from the latest checkpoint in --train_dir, trains to
--max_steps, logs progress, writes summaries every 100 steps and
checkpoints, and stops cleanly on a signal or a loss that is not finite.
"""
import collections
import json
import logging
import os
import time

import numpy as np
import tensorflow.compat.v1 as tf

from cifar10_tutorial import cifar10
from cifar10_tutorial import cifar10_input
from cifar10_tutorial import defaults
from cifar10_tutorial import progress
from cifar10_tutorial import stopping

log = logging.getLogger('cifar10_tutorial')

# What build_graph makes and train runs: examples_per_step is batch size x
# towers.
TrainGraph = collections.namedtuple(
    'TrainGraph', ['train_op', 'total_loss', 'global_step', 'summaries',
                   'examples_per_step'])
# What one tower builds: its gradients, total loss, loss-average update and
# summaries.
Tower = collections.namedtuple('Tower', ['grads', 'total_loss',
                                         'loss_update', 'summaries'])

_VARIABLE_OPS = ('Variable', 'VariableV2', 'VarHandleOp')


class LossDivergedError(RuntimeError):
  """The loss became NaN or infinite; the step was not checkpointed."""


# --- The graph. ---


def _on(device):
  """Places variables on the CPU (shared by all towers), the rest on device."""
  def place(op):
    return '/cpu:0' if op.type in _VARIABLE_OPS else device
  return place


def tower(images, labels, opt, lrn='matmul', precision='fp32', reuse=False):
  """The network, its loss and its gradients on one batch.

  Run inside a tower's device and name scope; the towers after the first
  pass `reuse=True`, so the network's variables exist once. Each tower keeps
  its own loss, loss averages and summaries.
  """
  with tf.variable_scope(tf.get_variable_scope(), reuse=reuse):
    model = cifar10.inference(images, lrn=lrn, precision=precision)
  total, losses = cifar10.loss(model, labels)
  update, summaries = cifar10.loss_averages(losses + [total])
  grads = opt.compute_gradients(total, model.variables)
  summaries += cifar10.activation_summaries(model, images, labels)
  return Tower(grads, total, update, summaries)


def tower_gradients(batches, devices, opt, lrn='matmul', precision='fp32'):
  """One tower per (images, labels) batch, on its device, `tower_i`."""
  towers = []
  for i, ((images, labels), device) in enumerate(zip(batches, devices)):
    with tf.device(_on(device)), tf.name_scope('tower_%d' % i):
      towers.append(tower(images, labels, opt, lrn, precision, reuse=i > 0))
  return towers


def average_gradients(tower_grads):
  """The mean over towers of each variable's gradient, computed on the CPU.

  With equal tower batches, this is the gradient of the loss over all
  N x batch examples (weight decay included once, as each tower's loss has
  it whole).
  """
  averaged = []
  with tf.device('/cpu:0'), tf.name_scope('average_gradients'):
    for pairs in zip(*tower_grads):
      grads = [g for g, _ in pairs]
      averaged.append((tf.add_n(grads) / float(len(grads)), pairs[0][1]))
  return averaged


def build_graph(cfg, devices=None):
  """The training graph, in the current default graph.

  `devices` None: the single-device trainer. A list: one tower on each,
  variables on the CPU (the tutorial's multi-GPU trainer).
  """
  shared = '/cpu:0' if devices else None   # where the shared state lives
  with tf.device(shared):
    global_step = tf.train.get_or_create_global_step()
  queue = cifar10_input.train_queue(cfg.data_dir, cfg.batch_size,
                                    cfg.input_threads, cfg.input_pipeline)
  examples_per_step = cfg.batch_size * len(devices or [None])
  with tf.device(shared):
    lr = cifar10.learning_rate(global_step, examples_per_step,
                               queue.num_records)
  opt = cifar10.gradient_descent(lr)
  if devices:
    towers = tower_gradients([queue.dequeue(cfg.batch_size) for _ in devices],
                             devices, opt, cfg.lrn, cfg.precision)
    grads = average_gradients([t.grads for t in towers])
  else:
    images, labels = queue.dequeue(cfg.batch_size)
    towers = [tower(images, labels, opt, cfg.lrn, cfg.precision)]
    grads = towers[0].grads
  with tf.device(shared):
    train_op, summaries = cifar10.apply_and_average(
        grads, global_step, lr, [t.loss_update for t in towers])
    if devices:
      total_loss = tf.add_n([t.total_loss for t in towers],
                            name='mean_total_loss') / len(towers)
    else:
      total_loss = towers[0].total_loss
  for t in towers:
    summaries += t.summaries
  summaries.append(queue.fill_summary())
  return TrainGraph(train_op, total_loss, global_step, summaries,
                    examples_per_step)


# --- The loop. ---


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


def write_config(directory, name, config):
  """Writes the resolved flags as JSON, atomically, into `directory`."""
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, name)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(config, f, indent=2, sort_keys=True)
    f.write('\n')
  os.replace(tmp, path)
  return path


def train(graph, cfg, config, checkpoint_secs=None, checkpoint_steps=None):
  """The training loop: resumes, trains to cfg.max_steps, checkpoints.

  Checkpoints go every --save_checkpoint_secs or --save_checkpoint_steps if
  given, else every `checkpoint_secs` or `checkpoint_steps` (the trainer's
  default), and at the last step. Returns the final step; raises
  stopping.Interrupted after a clean stop on a signal.
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
  write_config(cfg.train_dir, 'config.json', dict(vars(cfg), start_step=step))
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
    _run_steps(graph.train_op, scaffold, hook, saver_hook, config, cfg)
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


def _run_steps(train_op, scaffold, progress_hook, saver_hook, config, cfg):
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


def run(cfg, devices=None, cpu_devices=1, **checkpoint_every):
  """Builds the graph for `devices` in a graph of its own and trains it.

  `cpu_devices` is how many CPU devices the session makes (virtual ones
  for towers on the CPU); `checkpoint_every` is the trainer's default
  `checkpoint_secs` or `checkpoint_steps`. Returns the final step.
  """
  from cifar10_tutorial import machine
  with tf.Graph().as_default():
    return train(build_graph(cfg, devices), cfg,
                 machine.session_config(cfg, cpu_devices), **checkpoint_every)
