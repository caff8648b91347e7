"""The training graph every trainer shares: one builder for 1..N towers.

    graph = build_graph(cfg)                                # cifar10_train
    graph = build_graph(cfg, placement.for_towers(          # cifar10_multi_gpu_train
        'replicated', ['/gpu:0', '/gpu:1']))
    graph = build_graph(cfg, placement.Collective(...))     # one process of N
    loop.train(graph, cfg, config)                          # the loop: loop.py

The placement (placement.py) says where the variables live and how the
towers' gradients are combined: with none, the graph is the single-device
trainer's: one tower, no tower scope, TensorFlow places the ops (on the GPU
if there is one). With towers (`tower_0` ... on `/gpu:i`), each dequeues
its own batch; the towers' gradients become one update, applied with the
moving averages. Either way the checkpoints are the same, under the
tutorial's names, so `make eval` reads them and every trainer resumes the
others' runs.

A training step (dequeue, gradients, update, moving averages, global step)
is built twice: once with the summaries, run alone every 100th step, and
once inside an in-graph loop that runs --steps_per_run steps per
session.run, so that on a GPU Python and the session are paid once per N
steps instead of every step.
"""
import collections

import tensorflow.compat.v1 as tf
from tensorflow.python.ops import data_flow_ops

from cifar10_tutorial import cifar10
from cifar10_tutorial import cifar10_input
from cifar10_tutorial.core import defaults
from cifar10_tutorial.core import records
from cifar10_tutorial.engine import machine
from cifar10_tutorial.engine import placement as placements

# What build_graph makes and train runs.
TrainGraph = collections.namedtuple('TrainGraph', [
    'global_step', 'examples_per_step',   # batch size x towers x processes
    'summary_step',   # a Step: one step that also computes the summaries
    'steps',          # how many steps `loop` runs (fed)
    'loop',           # (steps done, their losses); the losses are
                      # checked after the run (a NaN does not stop it)
    'prime',          # runs once before the first step (fills the staging)
    'saved',          # the variables a checkpoint holds (None: all)
    'settings',       # what the run's math depends on, beyond the flags
    'sync',           # a synchronous cluster's SyncSteps, or None
    'until',          # a cluster's loop also stops at this global step (fed);
                      # None elsewhere
    'agreement',      # processes that train together: their vote to stop
                      # (placement.Agreement), run before each run; or None
    'inputs',         # an Inputs: what the steps read, for the input watch
])
# The record files the training queue reads ([] for a test's queue), and
# the op that closes it (cancelling its readers), so that a step waiting
# for a batch that will never come returns.
Inputs = collections.namedtuple('Inputs', ['files', 'close'])
# One training step: its update op, loss and summary items.
Step = collections.namedtuple('Step', ['train_op', 'total_loss', 'summaries'])
# What one tower builds: its gradients, total loss, loss-average update and
# summary items.
Tower = collections.namedtuple('Tower', ['grads', 'total_loss',
                                         'loss_update', 'summaries'])


def tower(images, labels, opt, lrn='matmul', precision='fp32', reuse=False,
          loss_averages=None, with_summaries=True,
          class_names=defaults.CLASS_NAMES):
  """The network, its loss and its gradients on one batch.

  Run inside a tower's device and name scope; `reuse` once the network's
  variables exist. Each tower keeps its own loss, loss averages
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


def build_graph(cfg, placement=None, queue=None, sync=None, cluster=False):
  """The training graph, in the current default graph.

  `placement` (placement.py): where the variables live and how the towers'
  gradients are combined; None is the single-device trainer's. `cfg` has
  its 'auto' options resolved (machine.resolve). `queue` replaces the
  training queue (tests feed fixed batches). `sync` (a
  sync_steps.SyncSteps) makes each step wait for one batch's gradients from
  every worker of a parameter-server cluster, averaged: then the step is
  built once, without the in-graph loop, and the moving averages are
  updated by the chief's releaser, once a step. `cluster`: the graph of an
  asynchronous cluster's worker (its loop also stops at a global step:
  loop_graph).
  """
  placement = placement or placements.OneDevice()
  shared = placement.shared
  with placements.device(shared):
    global_step = tf.train.get_or_create_global_step()
  data = None   # which data, for the run's settings; tests' queues: none
  if queue is None:
    queue = cifar10_input.train_queue(   # checks the record files first
        cfg.data_dir, cfg.batch_size, cfg.input_threads, cfg.input_pipeline,
        raw=cfg.preprocess_on == 'device')
    data = records.fingerprint(records.data_files(cfg.data_dir))
  towers = placement.devices
  examples_per_step = (cfg.batch_size * len(towers) * placement.replicas *
                       (sync.workers if sync else 1))
  default_device = '/gpu:0' if machine.gpu_count() else '/cpu:0'
  feeds = [Feed(queue, cfg.batch_size, device or default_device,
                cfg.prefetch_to_device) for device in towers]
  with placements.device(shared):
    averages = cifar10.moving_averages(global_step)
  loss_averages = [cifar10.LossAverages() for _ in towers]
  built = []   # the builds so far: the first makes the variables

  def step(with_summaries):
    with placements.device(shared):
      lr = cifar10.learning_rate(global_step, examples_per_step,
                                 queue.num_records)
    opt = cifar10.gradient_descent(lr)
    parts, refills = [], []
    for i, feed in enumerate(feeds):
      with placement.tower(i, bool(built)) as reuse:
        images, labels, refill = feed.batch()
        parts.append(tower(images, labels, opt, cfg.lrn, cfg.precision,
                           reuse=reuse, loss_averages=loss_averages[i],
                           with_summaries=with_summaries,
                           class_names=queue.class_names))
        refills.append(refill)
    built.append(with_summaries)
    update = placement.combine(parts, lr)
    extra_updates = [t.loss_update for t in parts] + refills + update.extra
    with placements.device(shared):
      if sync:
        train_op = tf.group(
            sync.apply_gradients(update.grads, global_step,
                                 cifar10.gradient_descent(lr), averages),
            *extra_updates, name='train')
      else:
        train_op = cifar10.apply_and_average(update.grads, global_step, lr,
                                             averages, extra_updates)
    items = []
    if with_summaries:
      items = cifar10.training_summaries(update.grads, lr)
      for t in parts:
        items += t.summaries
      items.append(queue.fill_summary())
    return Step(train_op, update.total_loss, items)

  graph = loop_graph(step, global_step, examples_per_step,
                     tf.group(*[f.prime for f in feeds]), with_loop=not sync,
                     bounded=cluster)
  decay_steps = int(queue.num_records / examples_per_step *
                    defaults.NUM_EPOCHS_PER_DECAY)
  graph = graph._replace(sync=sync, settings={
      'training_records': queue.num_records, 'lr_decay_steps': decay_steps,
      'data': data, 'classes': list(queue.class_names)},
                         inputs=Inputs(queue.files, queue.queue.close(
                             cancel_pending_enqueues=True)))
  return placement.finish(graph)


def prepare(cfg, devices=None, cpu_devices=1, placement=None, **build):
  """What every trainer does first: `cfg` with its 'auto' options decided
  for `devices` (machine.training_settings), the training graph in the
  current default graph (build_graph; the placement from
  --variable_update for towers on `devices`, unless given), and the
  session's settings. Returns (cfg, graph, session config)."""
  cfg = machine.training_settings(cfg, devices)
  if placement is None:
    placement = placements.for_towers(getattr(cfg, 'variable_update', None),
                                      devices)
  graph = build_graph(cfg, placement, **build)
  return cfg, graph, machine.session_config(cfg, cpu_devices)


def loop_graph(step, global_step, examples_per_step, prime=None,
               with_loop=True, bounded=False):
  """A TrainGraph from `step(with_summaries)`, which builds one whole
  training step and returns a Step. It is built first with summaries
  (making the variables), then inside the in-graph loop without them
  (unless not `with_loop`: then every step runs the first build).
  `bounded`: the loop also stops once the global step reaches a fed value
  (`until`), for workers of a cluster, whose global step others advance
  too: else each would finish its run of steps past --max_steps."""
  summary_step = step(True)
  if not with_loop:
    return TrainGraph(global_step, examples_per_step, summary_step, None,
                      None, prime or tf.no_op(), None, {}, None, None, None,
                      None)
  steps = tf.placeholder(tf.int32, [], name='steps_per_run')
  until = (tf.placeholder(global_step.dtype.base_dtype, [],
                          name='until_global_step') if bounded else None)

  def going(i, losses):
    more = i < steps
    if until is None:
      return more
    # Read once the last iteration's step has counted itself: `i` comes
    # after its update.
    with tf.control_dependencies([i]):
      reached = global_step.read_value()
    return tf.logical_and(more, reached < until)

  def body(i, losses):
    # The next step starts once this one's update is issued (a GPU runs
    # them in order), not once its loss is back on the host: a loss in the
    # loop's condition would make the host wait for the GPU every step.
    # The losses are checked after the run (loop.check_losses).
    s = step(False)
    with tf.control_dependencies([s.train_op]):
      return i + 1, losses.write(i, tf.identity(s.total_loss))

  done, losses = tf.while_loop(
      going, body,
      [tf.constant(0),
       tf.TensorArray(tf.float32, size=steps, element_shape=[])],
      name='train_loop')
  return TrainGraph(global_step, examples_per_step, summary_step, steps,
                    (done, losses.stack()), prime or tf.no_op(), None, {},
                    None, until, None, None)
