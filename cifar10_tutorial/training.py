"""The training core both trainers share: one graph for 1..N towers, the loop.

    graph = build_graph(cfg)                       # cifar10_train
    graph = build_graph(cfg, ['/gpu:0', '/gpu:1'])   # cifar10_multi_gpu_train
    train(graph, cfg, config, checkpoint_secs=600)

With no devices, the graph is the single-device trainer's: one tower, no
tower scope, TensorFlow places the ops (on the GPU if there is one). With a
list of devices, one tower per device (`tower_0` ... on `/gpu:i`), each
dequeuing its own batch; the variables live once, on the CPU, under the
tutorial's names; the towers' gradients are averaged, applied once, and the
moving averages updated. Either way the checkpoints are the same, so `make
eval` reads them and either trainer resumes the other's run.

A training step (dequeue, gradients, update, moving averages, global step)
is built twice: once with the summaries, run alone every 100th step, and
once inside an in-graph loop that runs --steps_per_run steps per
session.run, so that on a GPU Python and the session are paid once per N
steps instead of every step. `train` resumes from the latest checkpoint in
--train_dir, runs steps to --max_steps, logs progress, writes summaries and
checkpoints, and stops cleanly on a signal or a loss that is not finite.
"""
import collections
import contextlib
import glob
import logging
import os
import shutil
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf
from tensorflow.python.ops import data_flow_ops

from cifar10_tutorial import cifar10
from cifar10_tutorial import cifar10_input
from cifar10_tutorial import defaults
from cifar10_tutorial import machine
from cifar10_tutorial import progress
from cifar10_tutorial import records
from cifar10_tutorial import rundir
from cifar10_tutorial import stopping
from cifar10_tutorial import summaries

log = logging.getLogger('cifar10_tutorial')

# What build_graph makes and train runs.
TrainGraph = collections.namedtuple('TrainGraph', [
    'global_step', 'examples_per_step',   # batch size x towers
    'summary_step',   # a Step: one step that also computes the summaries
    'steps',          # how many steps `loop` runs (fed)
    'loop',           # (steps done, their losses): stops early at a NaN
    'prime',          # runs once before the first step (fills the staging)
    'saved',          # the variables a checkpoint holds (None: all)
    'settings',       # what the run's math depends on, beyond the flags
])
# One training step: its update op, loss and summary items.
Step = collections.namedtuple('Step', ['train_op', 'total_loss', 'summaries'])
# What one tower builds: its gradients, total loss, loss-average update and
# summary items.
Tower = collections.namedtuple('Tower', ['grads', 'total_loss',
                                         'loss_update', 'summaries'])

_VARIABLE_OPS = ('Variable', 'VariableV2', 'VarHandleOp')


class LossDivergedError(RuntimeError):
  """The loss became NaN or infinite; the step was not checkpointed."""


# --- The graph. ---


def _on(device, variables='/cpu:0'):
  """Places variables on `variables` (shared by all towers), the rest on
  `device`."""
  def place(op):
    return variables if op.type in _VARIABLE_OPS else device
  return place


def tower(images, labels, opt, lrn='matmul', precision='fp32', reuse=False,
          loss_averages=None, with_summaries=True,
          class_names=defaults.CLASS_NAMES):
  """The network, its loss and its gradients on one batch.

  Run inside a tower's device and name scope; the towers after the first,
  and every build after the first, pass `reuse=True`, so the network's
  variables exist once. Each tower keeps its own loss, loss averages
  (`loss_averages`, a cifar10.LossAverages kept across builds) and
  summaries.
  """
  with tf.variable_scope(tf.get_variable_scope(), reuse=reuse):
    model = cifar10.inference(images, lrn=lrn, precision=precision,
                              num_classes=len(class_names))
  total, losses = cifar10.loss(model, labels)
  loss_averages = loss_averages or cifar10.LossAverages()
  update, averages = loss_averages.update(losses + [total])
  grads = opt.compute_gradients(total, model.variables)
  items = []
  if with_summaries:
    items = (cifar10.loss_summaries(losses + [total], averages) +
             cifar10.activation_summaries(model, images, labels,
                                          class_names))
  return Tower(grads, total, update, items)


def tower_gradients(batches, devices, opt, lrn='matmul', precision='fp32'):
  """One tower per (images, labels) batch, on its device, `tower_i`."""
  towers = []
  for i, ((images, labels), device) in enumerate(zip(batches, devices)):
    with tf.device(_on(device)), tf.name_scope('tower_%d' % i):
      towers.append(tower(images, labels, opt, lrn, precision, reuse=i > 0))
  return towers


def average_gradients(tower_grads, device='/cpu:0'):
  """The mean over towers of each variable's gradient, computed on `device`.

  With equal tower batches, this is the gradient of the loss over all
  N x batch examples (weight decay included once, as each tower's loss has
  it whole).
  """
  averaged = []
  with tf.device(device), tf.name_scope('average_gradients'):
    for pairs in zip(*tower_grads):
      grads = [g for g, _ in pairs]
      averaged.append((tf.add_n(grads) / float(len(grads)), pairs[0][1]))
  return averaged


def all_reduce(tower_grads, devices):
  """For each tower, the mean gradient of each of its own variables,
  computed on its own device from all towers' gradients, in the same order
  everywhere, so that every copy of the variables gets the same update."""
  reduced = [[] for _ in devices]
  with tf.name_scope('all_reduce'):
    for pairs in zip(*tower_grads):
      grads = [g for g, _ in pairs]
      for mine, device, (_, var) in zip(reduced, devices, pairs):
        with tf.device(device):
          mine.append((tf.add_n(grads) / float(len(grads)), var))
  return reduced


def _renamed(prefix):
  """A variable getter that puts `prefix` before each variable's name (and
  nothing else: op names, so summary tags, stay the tutorial's)."""
  def rename(getter, name, *args, **kwargs):
    return getter(prefix + name, *args, **kwargs)
  return rename


def _replicas(devices):
  """(the first tower's variable, its copy) for each copy of the towers
  after the first: their names are the first's under `tower_i/`."""
  first = {v.op.name: v for v in tf.global_variables()}
  return [(first[v.op.name.split('/', 1)[1]], v)
          for i in range(1, len(devices))
          for v in tf.global_variables(scope='tower_%d/' % i)]


class Feed(object):
  """One tower's batches from the shared queue, on the tower's device.

  With `prefetch`, a staging area on `device` always holds the next batch:
  each step takes it and, in the same step, dequeues and copies the one
  after, so the copy overlaps the step instead of preceding it. `prime`
  puts the first batch in. A raw queue's images are preprocessed here, on
  the device.
  """

  def __init__(self, queue, batch_size, device, prefetch):
    self.queue, self.batch_size, self.device = queue, batch_size, device
    self._area, self.prime = None, tf.no_op()
    if prefetch:
      images, labels = queue.queue.dtypes
      image_shape = queue.queue.shapes[0].as_list()
      with tf.device(device):
        self._area = data_flow_ops.StagingArea(
            [images, labels], shapes=[[batch_size] + image_shape,
                                      [batch_size]])
      self.prime = self._refill()

  def _refill(self):
    batch = self.queue.dequeue(self.batch_size)
    with tf.device(self.device):
      return self._area.put(batch)

  def batch(self):
    """(images, labels, refill op) for one step."""
    if self._area is None:
      images, labels = self.queue.dequeue(self.batch_size)
      refill = tf.no_op()
    else:
      with tf.device(self.device):
        images, labels = self._area.get()
      refill = self._refill()
    with tf.device(self.device):
      return self.queue.finish(images), labels, refill


def build_graph(cfg, devices=None, queue=None):
  """The training graph, in the current default graph.

  `devices` None: the single-device trainer. A list: one tower on each,
  the variables where --variable_update says (the tutorial's multi-GPU
  trainer: on the CPU). `cfg` has its 'auto' options resolved
  (machine.resolve). `queue` replaces the training queue (tests feed fixed
  batches).
  """
  update = cfg.variable_update if devices else None
  replicated = update == 'replicated'
  # Where the variables and their update go, for one copy of them.
  home = {'cpu': '/cpu:0', 'first_tower': devices and devices[0]}.get(update)
  # The global step, learning rate and mean loss: beside the (first copy
  # of the) variables, so that a step on GPUs never waits on the CPU for
  # them. (One GPU measured 41,800 examples/s with them on the CPU, against
  # 88,700 for the single-device trainer, which has them on the GPU.)
  shared = home or (devices and devices[0])
  with tf.device(shared):
    global_step = tf.train.get_or_create_global_step()
  data = None   # which data, for the run's settings; tests' queues: none
  if queue is None:
    queue = cifar10_input.train_queue(   # checks the record files first
        cfg.data_dir, cfg.batch_size, cfg.input_threads, cfg.input_pipeline,
        raw=cfg.preprocess_on == 'device')
    data = records.fingerprint(records.data_files(cfg.data_dir))
  towers = devices or [None]
  examples_per_step = cfg.batch_size * len(towers)
  default_device = '/gpu:0' if machine.gpu_count() else '/cpu:0'
  feeds = [Feed(queue, cfg.batch_size, device or default_device,
                cfg.prefetch_to_device) for device in towers]
  with tf.device(shared):
    averages = cifar10.moving_averages(global_step)
  loss_averages = [cifar10.LossAverages() for _ in towers]
  built = []   # how many steps have been built: the first makes variables

  def step(with_summaries):
    with tf.device(shared):
      lr = cifar10.learning_rate(global_step, examples_per_step,
                                 queue.num_records)
    opt = cifar10.gradient_descent(lr)
    parts, refills = [], []
    for i, (feed, device) in enumerate(zip(feeds, towers)):
      own_copy = replicated and i > 0   # variables under tower_i/
      copy_scope = (tf.variable_scope(
          tf.get_variable_scope(), auxiliary_name_scope=False,
          custom_getter=_renamed('tower_%d/' % i))
                    if own_copy else contextlib.nullcontext())
      with tf.device(_on(device, home) if home else device), \
          tf.name_scope('tower_%d' % i if devices else None), copy_scope:
        images, labels, refill = feed.batch()
        parts.append(tower(images, labels, opt, cfg.lrn, cfg.precision,
                           reuse=bool(built) or (i > 0 and not own_copy),
                           loss_averages=loss_averages[i],
                           with_summaries=with_summaries,
                           class_names=queue.class_names))
        refills.append(refill)
    built.append(with_summaries)
    tower_grads = [t.grads for t in parts]
    if replicated:
      reduced = all_reduce(tower_grads, devices)
      grads = reduced[0]
      # The copies after the first: the same update, no averages of their
      # own (the first copy's are the ones saved).
      refills += [cifar10.gradient_descent(lr).apply_gradients(g)
                  for g in reduced[1:]]
    elif devices:
      grads = average_gradients(tower_grads, home)
    else:
      grads = parts[0].grads
    with tf.device(shared):
      train_op = cifar10.apply_and_average(
          grads, global_step, lr, averages,
          [t.loss_update for t in parts] + refills)
      if devices:
        total_loss = tf.add_n([t.total_loss for t in parts],
                              name='mean_total_loss') / len(parts)
      else:
        total_loss = parts[0].total_loss
    items = []
    if with_summaries:
      items = cifar10.training_summaries(grads, lr)
      for t in parts:
        items += t.summaries
      items.append(queue.fill_summary())
    return Step(train_op, total_loss, items)

  graph = loop_graph(step, global_step, examples_per_step,
                     tf.group(*[f.prime for f in feeds]))
  decay_steps = int(queue.num_records / examples_per_step *
                    defaults.NUM_EPOCHS_PER_DECAY)
  graph = graph._replace(settings={
      'training_records': queue.num_records, 'lr_decay_steps': decay_steps,
      'data': data, 'classes': list(queue.class_names)})
  if not replicated:
    return graph
  # One copy is saved, under the tutorial's names; the others start from it
  # (after initialization or a restore: `prime` runs after both).
  pairs = _replicas(devices)
  copies = {r for _, r in pairs}
  sync = tf.group(*[r.assign(v) for v, r in pairs])
  return graph._replace(
      prime=tf.group(graph.prime, sync),
      saved=[v for v in tf.global_variables() if v not in copies])


def loop_graph(step, global_step, examples_per_step, prime=None):
  """A TrainGraph from `step(with_summaries)`, which builds one whole
  training step and returns a Step. It is built first with summaries
  (making the variables), then inside the in-graph loop without them."""
  summary_step = step(True)
  steps = tf.placeholder(tf.int32, [], name='steps_per_run')

  def body(i, finite, losses):
    s = step(False)
    with tf.control_dependencies([s.train_op]):
      loss = tf.identity(s.total_loss)
    return i + 1, tf.math.is_finite(loss), losses.write(i, loss)

  done, _, losses = tf.while_loop(
      lambda i, finite, losses: tf.logical_and(finite, i < steps), body,
      [tf.constant(0), tf.constant(True),
       tf.TensorArray(tf.float32, size=steps, element_shape=[])],
      name='train_loop')
  return TrainGraph(global_step, examples_per_step, summary_step, steps,
                    (done, losses.stack()), prime or tf.no_op(), None, {})


# --- The loop. ---


class _Progress(object):
  """Logs step, loss and examples/sec every --log_frequency steps, writes
  the same examples/sec to the summaries, and keeps a live line on a
  terminal. The loss logged for a step is the loss of that step's batch;
  the speed is averaged since the last logged run."""

  def __init__(self, writer, step, examples_per_step, log_frequency,
               max_steps):
    self._writer = writer
    self._examples_per_step = examples_per_step
    self._log_frequency = log_frequency
    self._max_steps = max_steps
    self._rate = progress.Rate()
    self._live = progress.live_line()
    self._last_step, self._last_time = step, time.time()

  def ran(self, first, losses):
    """After a run of len(losses) steps from step `first`."""
    last = first + len(losses)
    self._rate.tick(len(losses))
    if self._live.enabled and self._rate.seconds_per_step:
      self._live.show('step %d/%d  loss %.2f  %.1f examples/sec  ETA %s' % (
          last, self._max_steps, losses[-1],
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
      log.info('step %d, loss = %.2f (%.1f examples/sec; %.3f sec/batch)',
               s, losses[s - first - 1], examples_per_sec, sec_per_batch)
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
    self._prefix = os.path.join(train_dir, 'model.ckpt')
    self._secs, self.steps = secs, steps
    self._size = size   # bytes one checkpoint takes
    self._saved_step, self._saved_time = None, time.time()

  def due(self, step):
    if self.steps:
      return step % self.steps == 0
    return time.time() - self._saved_time >= self._secs

  def save(self, step):
    if step == self._saved_step:
      return
    train_dir = os.path.dirname(self._prefix)
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
      if name not in [p for _, p in rundir.checkpoints(
          os.path.dirname(self._prefix))]:
        for leftover in glob.glob(glob.escape(name) + '.*'):
          os.remove(leftover)
      problem = rundir.disk_problem(os.path.dirname(self._prefix), e)
      if problem:
        path, last = rundir.latest(os.path.dirname(self._prefix))
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


def _check(first, losses):
  bad = np.flatnonzero(~np.isfinite(losses))
  if bad.size:
    raise LossDivergedError('the loss became %s at step %d' % (
        losses[bad[0]], first + bad[0] + 1))


def train(graph, cfg, config, checkpoint_secs=None, checkpoint_steps=None):
  """The training loop: resumes, trains to cfg.max_steps, checkpoints.

  Holds --train_dir for the run (rundir.locked), resumes from its newest
  readable checkpoint, and refuses settings that would change the run's
  math unless --allow_changed_settings. Checkpoints go every
  --save_checkpoint_secs or --save_checkpoint_steps if given, else every
  `checkpoint_secs` or `checkpoint_steps` (the trainer's default), at the
  start and at the last step. Summaries go every 100th step, for the batch
  that step trained on. Returns the final step; raises
  stopping.Interrupted after a clean stop on a signal.
  """
  with rundir.locked(cfg.train_dir):
    path, step = rundir.resume_point(cfg.train_dir)
    if step >= cfg.max_steps:
      log.info('%s is already at step %d (--max_steps %d): nothing to do',
               path, step, cfg.max_steps)
      return step
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
      rundir.relist(cfg.train_dir, step)
    else:
      log.info('starting a new run in %s', cfg.train_dir)
    if cfg.save_checkpoint_secs or cfg.save_checkpoint_steps:
      checkpoint_secs = cfg.save_checkpoint_secs
      checkpoint_steps = cfg.save_checkpoint_steps
    return _train_locked(graph, cfg, config, path, checkpoint_secs,
                         checkpoint_steps)


def _train_locked(graph, cfg, config, path, checkpoint_secs,
                  checkpoint_steps):
  try:
    step = _run(graph, cfg, config, path, checkpoint_secs, checkpoint_steps)
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
            'machine', (e.message.strip().splitlines() or ['out of '
                                                           'memory'])[0]))
  if stopping.requested():
    raise stopping.Interrupted(
        stopping.requested(), 'interrupted at step %d; checkpoint saved in %s: '
        'run again to resume' % (step, cfg.train_dir))
  log.info('stopped at step %d; checkpoint in %s', step, cfg.train_dir)
  return step


def _run(graph, cfg, config, path, checkpoint_secs, checkpoint_steps):
  """Runs the steps; returns the step it stopped at."""
  # Relative paths in the `checkpoint` list: a copied or moved train dir
  # keeps working, and rotation never reaches another folder.
  saver = tf.train.Saver(graph.saved, sharded=True, max_to_keep=5,
                         save_relative_paths=True)
  init = tf.global_variables_initializer()
  local_init = tf.local_variables_initializer()
  summary_fetches = [graph.summary_step.train_op,
                     graph.summary_step.total_loss,
                     summaries.fetches(graph.summary_step.summaries)]
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
  writer = tf.summary.FileWriter(cfg.train_dir, tf.get_default_graph())
  tf.get_default_graph().finalize()
  coord = tf.train.Coordinator()
  with tf.Session(config=config) as sess:
    if path:
      saver.restore(sess, path)
      saver.recover_last_checkpoints(
          [p for _, p in rundir.checkpoints(cfg.train_dir)])
    else:
      sess.run(init)
    sess.run(local_init)
    threads = tf.train.start_queue_runners(sess, coord)
    try:
      sess.run(graph.prime)
      step = sess.run(graph.global_step)
      writer.add_session_log(tf.SessionLog(status=tf.SessionLog.START), step)
      checkpoints = _Checkpoints(saver, sess, cfg.train_dir, checkpoint_secs,
                                 checkpoint_steps, checkpoint_bytes)
      checkpoints.save(step)
      shown = _Progress(writer, step, graph.examples_per_step,
                        cfg.log_frequency, cfg.max_steps)
      while step < cfg.max_steps and not stopping.requested():
        first = step
        if step % defaults.SAVE_SUMMARIES_STEPS == 0:
          _, loss, values = sess.run(summary_fetches)
          losses = np.array([loss])
          _check(first, losses)
          try:
            summary = summaries.to_summary(graph.summary_step.summaries,
                                           values)
          except summaries.NonFiniteError as e:
            raise LossDivergedError('%s at step %d' % (e, first + 1))
          writer.add_summary(summary, first)
        else:
          done, losses = sess.run(graph.loop, {
              graph.steps: _next_run(step, cfg, checkpoints.steps)})
          losses = losses[:done]
          _check(first, losses)
        step = first + len(losses)
        shown.ran(first, losses)
        if checkpoints.due(step):
          checkpoints.save(step)
      checkpoints.save(step)
    finally:
      unwinding = sys.exc_info()[0] is not None
      try:
        writer.close()
      except (RuntimeError, OSError) as e:
        # A full disk fails the last flush too; the error that got here
        # first is the one to report.
        if not unwinding:
          raise rundir.disk_problem(cfg.train_dir, e) or e
      finally:
        coord.request_stop()
        coord.join(threads, stop_grace_period_secs=10,
                   ignore_live_threads=True)
  return step


def run(cfg, devices=None, cpu_devices=1, **checkpoint_every):
  """Builds the graph for `devices` in a graph of its own and trains it.

  `devices` are GPUs, or CPU devices (`cpu_devices` of them, virtual ones
  for towers on the CPU); the 'auto' options are decided for them.
  `checkpoint_every` is the trainer's default `checkpoint_secs` or
  `checkpoint_steps`. Returns the final step.
  """
  on_gpu = (devices[0].startswith('/gpu') if devices
            else machine.gpu_count() > 0)
  cfg = machine.resolve(cfg, on_gpu)
  if not on_gpu:   # on GPUs, a step that does not fit is caught when it runs
    machine.check_fits(cfg.batch_size, len(devices or [None]))
  with tf.Graph().as_default():
    return train(build_graph(cfg, devices), cfg,
                 machine.session_config(cfg, cpu_devices), **checkpoint_every)
